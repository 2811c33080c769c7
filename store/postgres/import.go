package postgres

import (
	"context"
	"fmt"
	"iter"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// stageColumns are the columns of a staged finding, in COPY order; seq is
// the finding's place in the import, so a repeated key keeps its last.
// fixed_at is NULL for an open finding, else when the scanner says it was
// fixed.
var stageColumns = []string{"seq", "host", "package", "cve", "source", "scanner", "os", "os_family",
	"ecosystem", "installed", "fixed_version", "title", "severity", "cvss", "cvss_vector", "rule_id", "fixed_at"}

// findingValues are the staged columns the findings table takes.
const findingValues = `host, package, cve, source, scanner, os, os_family, ecosystem, installed,
	fixed_version, title, severity, cvss, cvss_vector, rule_id`

// ImportFindings implements store.Store in one transaction: the sequence
// is streamed with COPY into a temporary staging table (nothing is held
// in memory; the server spills to disk), repeated keys are dropped there
// (the last occurrence wins), and one statement counts new and updated
// keys against the findings as they were and upserts them all; a complete
// import then closes the covered hosts' findings it did not report. If the
// sequence fails, COPY is aborted and the transaction rolled back: nothing
// is stored. Text is stored as valid UTF-8 without NUL bytes (see
// cleanText): PostgreSQL's text type cannot hold a NUL.
func (s *Store) ImportFindings(ctx context.Context, imp vulnzero.Import, findings iter.Seq2[vulnzero.Finding, error]) (vulnzero.ImportResult, error) {
	imp = store.PrepareImport(imp, s.now)
	var res vulnzero.ImportResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = importTx(ctx, tx, imp, findings)
		return err
	})
	if err != nil {
		return vulnzero.ImportResult{}, fmt.Errorf("import %s: %w", imp.Source, err)
	}
	s.logger.Debug("imported findings", "source", imp.Source, "import", res.ImportID,
		"read", res.Read, "new", res.New, "updated", res.Updated, "fixed", res.Fixed)
	return res, nil
}

func importTx(ctx context.Context, tx pgx.Tx, imp vulnzero.Import, findings iter.Seq2[vulnzero.Finding, error]) (vulnzero.ImportResult, error) {
	var res vulnzero.ImportResult
	// Sorts and hashes over a whole scan: let them work in memory. LOCAL
	// ends with the transaction.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
		return res, fmt.Errorf("set work_mem: %w", err)
	}
	// ON COMMIT DROP, and a rollback drops it too: the pooled connection
	// is left as it was either way.
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE import_stage (
		seq bigint NOT NULL, host text NOT NULL, package text NOT NULL, cve text NOT NULL,
		source text NOT NULL, scanner text NOT NULL, os text NOT NULL, os_family text NOT NULL,
		ecosystem text NOT NULL, installed text NOT NULL, fixed_version text NOT NULL, title text NOT NULL,
		severity integer NOT NULL, cvss double precision NOT NULL, cvss_vector text NOT NULL,
		rule_id text NOT NULL, fixed_at timestamptz
	) ON COMMIT DROP`); err != nil {
		return res, fmt.Errorf("create staging table: %w", err)
	}
	src := newStageSource(imp, findings)
	defer src.stop()
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"import_stage"}, stageColumns, src)
	if src.err != nil {
		// The sequence's own error (bad input), not COPY's report of it.
		return res, src.err
	}
	if err != nil {
		return res, fmt.Errorf("stage findings: %w", err)
	}
	res.Read = int(n)

	// A key repeated in the report keeps its last occurrence. Repeats are
	// rare: one hash aggregate over the keys finds them, and nothing needs
	// sorting or copying the wide staged rows.
	if _, err := tx.Exec(ctx, `DELETE FROM import_stage s USING (
			SELECT host, package, cve, max(seq) AS last FROM import_stage
			GROUP BY host, package, cve HAVING count(*) > 1
		) d WHERE s.host = d.host AND s.package = d.package AND s.cve = d.cve AND s.seq < d.last`); err != nil {
		return res, fmt.Errorf("drop repeated findings: %w", err)
	}
	// Temporary tables are never analyzed on their own: without numbers
	// the planner would join a ten-finding import against the whole
	// findings table.
	if _, err := tx.Exec(ctx, `ANALYZE import_stage`); err != nil {
		return res, fmt.Errorf("analyze staged findings: %w", err)
	}

	err = tx.QueryRow(ctx, `INSERT INTO imports (source, scanner, file, complete, imported_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		imp.Source, imp.Scanner, imp.File, imp.Complete, timeArg(imp.At)).Scan(&res.ImportID)
	if err != nil {
		return res, fmt.Errorf("insert import: %w", err)
	}
	// One statement, one snapshot: prev sees the findings as they were
	// before up writes them, so a key reported open that was open is
	// updated and one that was absent or fixed is new (a reopened finding
	// is news); a key the scanner reports fixed that was open is fixed,
	// and one already fixed keeps its fixed_at.
	var closed int
	err = tx.QueryRow(ctx, `WITH prev AS (
			SELECT s.fixed_at IS NOT NULL AS gone, f.status
			FROM import_stage s LEFT JOIN findings f USING (host, package, cve)
		), up AS (
			INSERT INTO findings (`+findingValues+`, first_seen, last_seen, status, fixed_at, import_id)
			SELECT `+findingValues+`, $1, $1, CASE WHEN fixed_at IS NULL THEN 'open' ELSE 'fixed' END, fixed_at, $2
			FROM import_stage
			ON CONFLICT (host, package, cve) DO UPDATE SET
				source = excluded.source, scanner = excluded.scanner, os = excluded.os,
				os_family = excluded.os_family, ecosystem = excluded.ecosystem, installed = excluded.installed,
				fixed_version = excluded.fixed_version, title = excluded.title, severity = excluded.severity,
				cvss = excluded.cvss, cvss_vector = excluded.cvss_vector, rule_id = excluded.rule_id,
				last_seen = excluded.last_seen, status = excluded.status,
				fixed_at = CASE WHEN excluded.status = 'open' THEN NULL
					WHEN findings.status = 'fixed' THEN findings.fixed_at ELSE excluded.fixed_at END,
				import_id = excluded.import_id
		)
		SELECT count(*) FILTER (WHERE NOT gone AND status = 'open'),
			count(*) FILTER (WHERE NOT gone AND status IS DISTINCT FROM 'open'),
			count(*) FILTER (WHERE gone AND status = 'open')
		FROM prev`, timeArg(imp.At), res.ImportID).Scan(&res.Updated, &res.New, &closed)
	if err != nil {
		return res, fmt.Errorf("upsert findings: %w", err)
	}

	rows, err := tx.Query(ctx, `SELECT DISTINCT host FROM import_stage`)
	if err != nil {
		return res, fmt.Errorf("list hosts: %w", err)
	}
	staged, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return res, fmt.Errorf("list hosts: %w", err)
	}
	hosts := src.hosts
	for _, h := range staged {
		hosts[h] = true
	}
	for h := range hosts {
		res.Hosts = append(res.Hosts, h)
	}
	sort.Strings(res.Hosts)
	res.Fixed = closed
	if !imp.Complete || len(res.Hosts) == 0 {
		return res, nil
	}
	tag, err := tx.Exec(ctx, `UPDATE findings SET status = 'fixed', fixed_at = $1
		WHERE source = $2 AND host = ANY($3) AND status = 'open' AND import_id <> $4`,
		timeArg(imp.At), imp.Source, res.Hosts, res.ImportID)
	if err != nil {
		return res, fmt.Errorf("fix findings of %s: %w", imp.Source, err)
	}
	res.Fixed += int(tag.RowsAffected())
	return res, nil
}

// stageSource feeds COPY from the findings sequence, one row at a time: it
// pulls the sequence (iter.Pull2), so nothing but the current finding is
// in memory. Coverage markers become hosts; a sequence error or an
// invalid finding ends the COPY with that error.
type stageSource struct {
	imp   vulnzero.Import
	next  func() (vulnzero.Finding, error, bool)
	stop  func()
	hosts map[string]bool
	n     int
	row   []any
	err   error
}

func newStageSource(imp vulnzero.Import, findings iter.Seq2[vulnzero.Finding, error]) *stageSource {
	next, stop := iter.Pull2(findings)
	return &stageSource{imp: imp, next: next, stop: stop, hosts: map[string]bool{}, row: make([]any, len(stageColumns))}
}

func (s *stageSource) Next() bool {
	for {
		f, err, ok := s.next()
		if !ok {
			return false
		}
		if err != nil {
			s.err = err
			return false
		}
		if store.IsCoverageMarker(f) {
			s.hosts[cleanText(f.Host)] = true
			continue
		}
		s.n++
		f, err = store.PrepareFinding(s.imp, s.n, f)
		if err != nil {
			s.err = err
			return false
		}
		c := cleanText
		s.row[0], s.row[1], s.row[2], s.row[3] = int64(s.n), c(f.Host), c(f.Package), c(f.CVE)
		s.row[4], s.row[5], s.row[6], s.row[7] = c(f.Source), c(f.Scanner), c(f.OS), c(f.OSFamily)
		s.row[8], s.row[9], s.row[10], s.row[11] = c(f.Ecosystem), c(f.Installed), c(f.Fixed), c(f.Title)
		s.row[12], s.row[13], s.row[14], s.row[15] = int32(f.Severity), f.CVSS, c(f.CVSSVector), c(f.RuleID) //nolint:gosec // G115: severities are 0–4
		s.row[16] = nil
		if f.Status == vulnzero.FindingFixed {
			s.row[16] = timeArg(f.FixedAt)
		}
		return true
	}
}

func (s *stageSource) Values() ([]any, error) { return s.row, nil }

func (s *stageSource) Err() error { return s.err }

// cleanText makes s storable as text: valid UTF-8 (an invalid byte becomes
// U+FFFD) and no NUL, which PostgreSQL's text cannot hold (it becomes
// U+FFFD too). The SQLite store does the same, so both keep the same
// findings.
func cleanText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
