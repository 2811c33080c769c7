package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"iter"
	"sort"
	"strings"
	"unicode/utf8"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// stageBatch is how many findings one INSERT into the staging table
// carries: SQLite binds at most 32766 parameters per statement, and 16 a
// row × 256 rows stays well below while amortizing the statement cost.
const stageBatch = 256

// stageWidth is the number of values a staged finding binds: the
// stageColumns and fixed_at (NULL for an open finding, else when the
// scanner says it was fixed).
const stageWidth = 16

// stageColumns are the columns of a staged finding, in bind order.
const stageColumns = `host, package, cve, source, scanner, os, os_family, ecosystem, installed,
	fixed_version, title, severity, cvss, cvss_vector, rule_id`

// ImportFindings implements store.Store in two steps on one connection, so
// that memory stays flat and the write lock is held only briefly:
//
//  1. Stream: the sequence is read finding by finding into a temporary
//     table of the connection (private, on disk beyond SQLite's page cache,
//     keyed by host, package and CVE so a repeated key keeps its last
//     occurrence), in multi-row inserts. Nothing else is written, and the
//     database's write lock is not taken: other writers go on while a large
//     scan is parsed.
//  2. Merge: one IMMEDIATE transaction records the import, counts new and
//     updated keys against the findings table, upserts the staged findings
//     with one INSERT … SELECT … ON CONFLICT, and closes the covered hosts'
//     findings the import did not report.
//
// If the sequence fails, or a finding is invalid, only the temporary table
// was written, and it is dropped: nothing is stored. Text is stored as
// valid UTF-8 without NUL bytes (see cleanText), as PostgreSQL stores it.
func (s *Store) ImportFindings(ctx context.Context, imp vulnzero.Import, findings iter.Seq2[vulnzero.Finding, error]) (vulnzero.ImportResult, error) {
	imp = store.PrepareImport(imp, s.now)
	res, err := s.importFindings(ctx, imp, findings)
	if err != nil {
		return vulnzero.ImportResult{}, fmt.Errorf("import %s: %w", imp.Source, err)
	}
	s.logger.Debug("imported findings", "source", imp.Source, "import", res.ImportID,
		"read", res.Read, "new", res.New, "updated", res.Updated, "fixed", res.Fixed)
	return res, nil
}

func (s *Store) importFindings(ctx context.Context, imp vulnzero.Import, findings iter.Seq2[vulnzero.Finding, error]) (res vulnzero.ImportResult, err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `CREATE TEMP TABLE import_stage (
		host TEXT NOT NULL, package TEXT NOT NULL, cve TEXT NOT NULL, source TEXT NOT NULL,
		scanner TEXT NOT NULL, os TEXT NOT NULL, os_family TEXT NOT NULL, ecosystem TEXT NOT NULL,
		installed TEXT NOT NULL, fixed_version TEXT NOT NULL, title TEXT NOT NULL,
		severity INTEGER NOT NULL, cvss REAL NOT NULL, cvss_vector TEXT NOT NULL, rule_id TEXT NOT NULL,
		fixed_at TEXT,
		PRIMARY KEY (host, package, cve)
	)`); err != nil {
		return res, fmt.Errorf("create staging table: %w", err)
	}
	defer func() {
		// The connection goes back to the pool: leave it as it was. A
		// cancelled ctx must not keep the table, so drop it without ctx.
		if _, derr := conn.ExecContext(context.WithoutCancel(ctx), `DROP TABLE temp.import_stage`); derr != nil && err == nil {
			err = fmt.Errorf("drop staging table: %w", derr)
		}
	}()

	hosts, read, err := s.stage(ctx, conn, imp, findings)
	if err != nil {
		return res, err
	}
	res.Read = read
	err = inConnTx(ctx, conn, func(tx *sql.Tx) error {
		return s.merge(ctx, tx, imp, hosts, &res)
	})
	return res, err
}

// stage reads the sequence into the staging table and returns the hosts
// of its coverage markers and how many findings it read.
func (s *Store) stage(ctx context.Context, conn *sql.Conn, imp vulnzero.Import, findings iter.Seq2[vulnzero.Finding, error]) (map[string]bool, int, error) {
	hosts := map[string]bool{}
	full, err := conn.PrepareContext(ctx, stageInsert(stageBatch))
	if err != nil {
		return nil, 0, fmt.Errorf("prepare staging insert: %w", err)
	}
	defer full.Close()
	args := make([]any, 0, stageWidth*stageBatch)
	rows := 0
	flush := func() error {
		if rows == 0 {
			return nil
		}
		var err error
		if rows == stageBatch {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = conn.ExecContext(ctx, stageInsert(rows), args...)
		}
		if err != nil {
			return fmt.Errorf("stage findings: %w", err)
		}
		args, rows = args[:0], 0
		return nil
	}
	read := 0
	for f, err := range findings {
		if err != nil {
			return nil, 0, err
		}
		if store.IsCoverageMarker(f) {
			hosts[cleanText(f.Host)] = true
			continue
		}
		read++
		f, err = store.PrepareFinding(imp, read, f)
		if err != nil {
			return nil, 0, err
		}
		c := cleanText
		var fixedAt any // NULL: open
		if f.Status == vulnzero.FindingFixed {
			fixedAt = timeArg(f.FixedAt)
		}
		args = append(args, c(f.Host), c(f.Package), c(f.CVE), c(f.Source), c(f.Scanner), c(f.OS),
			c(f.OSFamily), c(f.Ecosystem), c(f.Installed), c(f.Fixed), c(f.Title), int(f.Severity), f.CVSS,
			c(f.CVSSVector), c(f.RuleID), fixedAt)
		if rows++; rows == stageBatch {
			if err := flush(); err != nil {
				return nil, 0, err
			}
		}
	}
	return hosts, read, flush()
}

// stageInsert is the statement that stages n findings; a repeated key
// replaces the earlier one, so the later occurrence wins.
func stageInsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT OR REPLACE INTO temp.import_stage (` + stageColumns + `, fixed_at) VALUES `)
	row := "(" + strings.Repeat("?,", stageWidth-1) + "?)"
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

// merge writes the staged import in tx.
func (s *Store) merge(ctx context.Context, tx *sql.Tx, imp vulnzero.Import, markers map[string]bool, res *vulnzero.ImportResult) error {
	err := tx.QueryRowContext(ctx, `INSERT INTO imports (source, scanner, file, complete, imported_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		imp.Source, imp.Scanner, imp.File, imp.Complete, timeArg(imp.At)).Scan(&res.ImportID)
	if err != nil {
		return fmt.Errorf("insert import: %w", err)
	}
	// Counts first, against the findings as they were: a key reported open
	// that is open is updated; one that is absent or fixed is new (a
	// reopened finding is news to whoever closed it). A key the scanner
	// reports fixed that is open is fixed.
	var stagedOpen, open, closed int
	err = tx.QueryRowContext(ctx, `SELECT
			count(*) FILTER (WHERE s.fixed_at IS NULL),
			count(f.host) FILTER (WHERE s.fixed_at IS NULL),
			count(f.host) FILTER (WHERE s.fixed_at IS NOT NULL)
		FROM temp.import_stage s
		LEFT JOIN findings f ON f.host = s.host AND f.package = s.package AND f.cve = s.cve AND f.status = 'open'`).
		Scan(&stagedOpen, &open, &closed)
	if err != nil {
		return fmt.Errorf("count findings: %w", err)
	}
	res.New, res.Updated, res.Fixed = stagedOpen-open, open, closed
	// "WHERE true" tells SQLite's parser the ON CONFLICT belongs to the
	// INSERT, not to a join in the SELECT. A key already fixed keeps its
	// fixed_at when the scanner reports it fixed again.
	_, err = tx.ExecContext(ctx, `INSERT INTO findings (`+stageColumns+`, first_seen, last_seen, status, fixed_at, import_id)
		SELECT `+stageColumns+`, $1, $1, CASE WHEN fixed_at IS NULL THEN 'open' ELSE 'fixed' END, fixed_at, $2
		FROM temp.import_stage WHERE true
		ON CONFLICT (host, package, cve) DO UPDATE SET
			source = excluded.source, scanner = excluded.scanner, os = excluded.os, os_family = excluded.os_family,
			ecosystem = excluded.ecosystem, installed = excluded.installed, fixed_version = excluded.fixed_version,
			title = excluded.title, severity = excluded.severity, cvss = excluded.cvss,
			cvss_vector = excluded.cvss_vector, rule_id = excluded.rule_id, last_seen = excluded.last_seen,
			status = excluded.status,
			fixed_at = CASE WHEN excluded.status = 'open' THEN NULL
				WHEN findings.status = 'fixed' THEN findings.fixed_at ELSE excluded.fixed_at END,
			import_id = excluded.import_id`,
		timeArg(imp.At), res.ImportID)
	if err != nil {
		return fmt.Errorf("upsert findings: %w", err)
	}

	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT host FROM temp.import_stage`)
	if err != nil {
		return fmt.Errorf("list hosts: %w", err)
	}
	hosts := markers
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return fmt.Errorf("list hosts: %w", err)
		}
		hosts[h] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("list hosts: %w", err)
	}
	for h := range hosts {
		res.Hosts = append(res.Hosts, h)
	}
	sort.Strings(res.Hosts)
	if !imp.Complete {
		return nil
	}
	fix, err := tx.PrepareContext(ctx, `UPDATE findings SET status = 'fixed', fixed_at = $1
		WHERE source = $2 AND host = $3 AND status = 'open' AND import_id <> $4`)
	if err != nil {
		return fmt.Errorf("fix findings: %w", err)
	}
	defer fix.Close()
	for _, h := range res.Hosts {
		r, err := fix.ExecContext(ctx, timeArg(imp.At), imp.Source, h, res.ImportID)
		if err != nil {
			return fmt.Errorf("fix findings of %s on %s: %w", imp.Source, h, err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		res.Fixed += int(n)
	}
	return nil
}

// inConnTx runs fn in a transaction on conn (IMMEDIATE, as every
// transaction of this store), committing when it returns nil.
func inConnTx(ctx context.Context, conn *sql.Conn, fn func(tx *sql.Tx) error) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// cleanText makes s storable as text in either database, so both stores
// keep the same findings: valid UTF-8 (an invalid byte becomes U+FFFD) and
// no NUL (PostgreSQL's text cannot hold one; it becomes U+FFFD too).
func cleanText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
