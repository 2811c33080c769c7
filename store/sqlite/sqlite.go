// Package sqlite is the embedded store.Store: one SQLite database file (or an
// in-memory database) through the pure-Go modernc.org/sqlite driver. It is
// the default when no database URL is configured.
//
// The database runs in WAL mode with a busy timeout, foreign keys on, and
// every transaction begun IMMEDIATE, so concurrent writers queue for the one
// write lock instead of failing with "database is locked" when a reader tries
// to upgrade. Migrations are embedded and applied by Open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/internal/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// busyTimeout is how long a writer waits for the write lock. Imports hold it
// for the length of their write transaction (the input is read before it
// begins), which is well under this even for large scans.
const busyTimeout = 10 * time.Second

// Store is a store.Store on SQLite.
type Store struct {
	db     *sql.DB
	logger *slog.Logger
	now    func() time.Time

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path and applies
// pending migrations. path is a file name, ":memory:" for a private
// in-memory database, or a "file:" URI. logger may be nil.
func Open(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, fmt.Errorf("open sqlite: empty path: %w", vulnzero.ErrInvalid)
	}
	sep := "?"
	if strings.HasPrefix(path, "file:") {
		if strings.Contains(path, "?") {
			sep = "&"
		}
	} else if strings.Contains(path, "?") {
		return nil, fmt.Errorf("open sqlite %s: a plain path cannot contain '?'; use a file: URI: %w", path, vulnzero.ErrInvalid)
	}
	dsn := path + sep + strings.Join([]string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()),
		"_pragma=journal_mode(WAL)",
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(NORMAL)",
		"_txlock=immediate",
	}, "&")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if path == ":memory:" || strings.Contains(path, "mode=memory") {
		// Every connection to ":memory:" is a separate database: keep one.
		db.SetMaxOpenConns(1)
	}
	s := &Store{db: db, logger: logger, now: time.Now}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction with its record.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrate.Load(migrationFS, "migrations")
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var newest int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&newest); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	if latest := ms[len(ms)-1].Version; newest > latest {
		return fmt.Errorf("database schema version %d is newer than this build knows (%d): %w", newest, latest, vulnzero.ErrConflict)
	}
	for _, m := range ms {
		applied := false
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			applied = true
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.Version, m.Name, timeArg(s.now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		if applied {
			s.logger.Info("applied migration", "store", "sqlite", "migration", m.Name)
		}
	}
	return nil
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
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

// timeLayout is fixed width so that stored times sort as text.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// timeArg is a time as stored: NULL when zero, else UTC text.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Truncate(store.Precision).Format(timeLayout)
}

// asStored is t as it reads back.
func asStored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(store.Precision)
}

// timeCol scans a stored time (NULL is zero) into *t.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	var s string
	switch v := v.(type) {
	case nil:
		*c.t = time.Time{}
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("scan time: unexpected %T", v)
	}
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return fmt.Errorf("scan time %q: %w", s, err)
	}
	*c.t = t
	return nil
}

// blobArg stores empty bytes as NULL, so empty and nil read back alike.
func blobArg(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func textBlobArg(s string) any { return blobArg([]byte(s)) }

func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUniqueViolation(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKeyViolation(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// placeholders returns "$from, $from+1, …" for n values.
func placeholders(from, n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = fmt.Sprintf("$%d", from+i)
	}
	return strings.Join(ps, ", ")
}

const findingColumns = `host, package, cve, source, scanner, os, os_family, ecosystem, installed,
	fixed_version, title, severity, cvss, cvss_vector, rule_id, first_seen, last_seen, status, fixed_at`

// ListFindings implements store.Store.
func (s *Store) ListFindings(ctx context.Context, f store.FindingFilter) ([]vulnzero.Finding, error) {
	var conds []string
	var args []any
	add := func(col string, v string) {
		if v != "" {
			args = append(args, v)
			conds = append(conds, fmt.Sprintf("%s = $%d", col, len(args)))
		}
	}
	add("host", f.Host)
	add("status", string(f.Status))
	add("source", f.Source)
	q := `SELECT ` + findingColumns + ` FROM findings`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ") //nolint:gosec // G202: fixed column names; values are placeholders
	}
	q += ` ORDER BY host, package, cve`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list findings: %w", err)
	}
	defer rows.Close()
	var out []vulnzero.Finding
	for rows.Next() {
		var x vulnzero.Finding
		if err := rows.Scan(&x.Host, &x.Package, &x.CVE, &x.Source, &x.Scanner, &x.OS, &x.OSFamily,
			&x.Ecosystem, &x.Installed, &x.Fixed, &x.Title, &x.Severity, &x.CVSS, &x.CVSSVector, &x.RuleID,
			timeCol{&x.FirstSeen}, timeCol{&x.LastSeen}, &x.Status, timeCol{&x.FixedAt}); err != nil {
			return nil, fmt.Errorf("list findings: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list findings: %w", err)
	}
	return out, nil
}

// ListImports implements store.Store.
func (s *Store) ListImports(ctx context.Context) ([]vulnzero.Import, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, source, scanner, file, complete, imported_at
		FROM imports ORDER BY imported_at DESC, id DESC`)
	if err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	defer rows.Close()
	var out []vulnzero.Import
	for rows.Next() {
		var imp vulnzero.Import
		if err := rows.Scan(&imp.ID, &imp.Source, &imp.Scanner, &imp.File, &imp.Complete, timeCol{&imp.At}); err != nil {
			return nil, fmt.Errorf("list imports: %w", err)
		}
		out = append(out, imp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list imports: %w", err)
	}
	return out, nil
}

const prColumns = `number, patch_id, branch, base, title, body, state, head_sha, merge_sha, url, created_at, updated_at`

func scanPR(row interface{ Scan(...any) error }) (vulnzero.PullRequest, error) {
	var p vulnzero.PullRequest
	err := row.Scan(&p.Number, &p.PatchID, &p.Branch, &p.Base, &p.Title, &p.Body, &p.State, &p.HeadSHA,
		&p.MergeSHA, &p.URL, timeCol{&p.CreatedAt}, timeCol{&p.UpdatedAt})
	return p, err
}

// CreatePR implements store.Store. Numbers are MAX+1 inside the (IMMEDIATE,
// hence serialized) transaction, so they have no gaps.
func (s *Store) CreatePR(ctx context.Context, pr vulnzero.PullRequest) (vulnzero.PullRequest, error) {
	if pr.State == "" {
		pr.State = vulnzero.PROpen
	}
	pr.CreatedAt, pr.UpdatedAt = asStored(pr.CreatedAt), asStored(pr.UpdatedAt)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if pr.State == vulnzero.PROpen {
			var open int
			err := tx.QueryRowContext(ctx, `SELECT number FROM pull_requests WHERE branch = $1 AND state = 'open'`,
				pr.Branch).Scan(&open)
			if err == nil {
				return fmt.Errorf("pull request %d is open for it: %w", open, vulnzero.ErrConflict)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM pull_requests`).Scan(&pr.Number); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO pull_requests (`+prColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			pr.Number, pr.PatchID, pr.Branch, pr.Base, pr.Title, pr.Body, string(pr.State), pr.HeadSHA,
			pr.MergeSHA, pr.URL, timeArg(pr.CreatedAt), timeArg(pr.UpdatedAt))
		if isUniqueViolation(err) {
			return fmt.Errorf("another pull request is open for it: %w", vulnzero.ErrConflict)
		}
		return err
	})
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("create pull request for branch %s: %w", pr.Branch, err)
	}
	return pr, nil
}

// UpdatePR implements store.Store.
func (s *Store) UpdatePR(ctx context.Context, pr vulnzero.PullRequest) error {
	r, err := s.db.ExecContext(ctx, `UPDATE pull_requests SET patch_id = $2, branch = $3, base = $4, title = $5,
		body = $6, state = $7, head_sha = $8, merge_sha = $9, url = $10, created_at = $11, updated_at = $12
		WHERE number = $1`,
		pr.Number, pr.PatchID, pr.Branch, pr.Base, pr.Title, pr.Body, string(pr.State), pr.HeadSHA,
		pr.MergeSHA, pr.URL, timeArg(pr.CreatedAt), timeArg(pr.UpdatedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("update pull request %d: another pull request is open for branch %s: %w", pr.Number, pr.Branch, vulnzero.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("update pull request %d: %w", pr.Number, err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("update pull request %d: %w", pr.Number, err)
	} else if n == 0 {
		return fmt.Errorf("update pull request %d: %w", pr.Number, vulnzero.ErrNotFound)
	}
	return nil
}

// GetPR implements store.Store.
func (s *Store) GetPR(ctx context.Context, number int) (vulnzero.PullRequest, error) {
	p, err := scanPR(s.db.QueryRowContext(ctx, `SELECT `+prColumns+` FROM pull_requests WHERE number = $1`, number))
	if errors.Is(err, sql.ErrNoRows) {
		return vulnzero.PullRequest{}, fmt.Errorf("get pull request %d: %w", number, vulnzero.ErrNotFound)
	}
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("get pull request %d: %w", number, err)
	}
	return p, nil
}

// ListPRs implements store.Store.
func (s *Store) ListPRs(ctx context.Context, states ...vulnzero.PRState) ([]vulnzero.PullRequest, error) {
	q := `SELECT ` + prColumns + ` FROM pull_requests`
	var args []any
	for _, st := range states {
		args = append(args, string(st))
	}
	if len(states) > 0 {
		q += ` WHERE state IN (` + placeholders(1, len(states)) + `)` //nolint:gosec // G202: placeholders only
	}
	q += ` ORDER BY number`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list pull requests: %w", err)
	}
	defer rows.Close()
	var out []vulnzero.PullRequest
	for rows.Next() {
		p, err := scanPR(rows)
		if err != nil {
			return nil, fmt.Errorf("list pull requests: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pull requests: %w", err)
	}
	return out, nil
}

// SetStatus implements store.Store.
func (s *Store) SetStatus(ctx context.Context, st vulnzero.CommitStatus) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO statuses (sha, context, state, description, target_url, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (sha, context) DO UPDATE SET state = excluded.state, description = excluded.description,
			target_url = excluded.target_url, updated_at = excluded.updated_at`,
		st.SHA, st.Context, string(st.State), st.Description, st.TargetURL, timeArg(st.UpdatedAt))
	if err != nil {
		return fmt.Errorf("set status %s on %s: %w", st.Context, st.SHA, err)
	}
	return nil
}

// ListStatuses implements store.Store.
func (s *Store) ListStatuses(ctx context.Context, sha string) ([]vulnzero.CommitStatus, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT sha, context, state, description, target_url, updated_at
		FROM statuses WHERE sha = $1 ORDER BY context`, sha)
	if err != nil {
		return nil, fmt.Errorf("list statuses of %s: %w", sha, err)
	}
	defer rows.Close()
	var out []vulnzero.CommitStatus
	for rows.Next() {
		var st vulnzero.CommitStatus
		if err := rows.Scan(&st.SHA, &st.Context, &st.State, &st.Description, &st.TargetURL, timeCol{&st.UpdatedAt}); err != nil {
			return nil, fmt.Errorf("list statuses of %s: %w", sha, err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list statuses of %s: %w", sha, err)
	}
	return out, nil
}

const rolloutColumns = `id, patch_id, revision, commit_sha, kind, strategy, state, stages, stage, reason,
	revert_sha, created_at, updated_at, wait_until, active_group`

func scanRollout(row interface{ Scan(...any) error }) (vulnzero.Rollout, error) {
	var r vulnzero.Rollout
	var stages string
	err := row.Scan(&r.ID, &r.PatchID, &r.Revision, &r.Commit, &r.Kind, &r.Strategy, &r.State, &stages,
		&r.Stage, &r.Reason, &r.RevertSHA, timeCol{&r.CreatedAt}, timeCol{&r.UpdatedAt}, timeCol{&r.WaitUntil}, &r.ActiveGroup)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal([]byte(stages), &r.Stages); err != nil {
		return r, fmt.Errorf("rollout %d stages: %w", r.ID, err)
	}
	return r, nil
}

// CreateRollout implements store.Store.
func (s *Store) CreateRollout(ctx context.Context, r vulnzero.Rollout) (vulnzero.Rollout, error) {
	stages, err := json.Marshal(r.Stages)
	if err != nil {
		return vulnzero.Rollout{}, fmt.Errorf("create rollout of %s: stages: %w", r.PatchID, err)
	}
	r.CreatedAt, r.UpdatedAt, r.WaitUntil = asStored(r.CreatedAt), asStored(r.UpdatedAt), asStored(r.WaitUntil)
	err = s.db.QueryRowContext(ctx, `INSERT INTO rollouts (patch_id, revision, commit_sha, kind, strategy, state,
			stages, stage, reason, revert_sha, created_at, updated_at, wait_until, active_group)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`,
		r.PatchID, string(r.Revision), r.Commit, string(r.Kind), r.Strategy, string(r.State), string(stages),
		r.Stage, r.Reason, r.RevertSHA, timeArg(r.CreatedAt), timeArg(r.UpdatedAt), timeArg(r.WaitUntil), r.ActiveGroup).Scan(&r.ID)
	if err != nil {
		return vulnzero.Rollout{}, fmt.Errorf("create rollout of %s: %w", r.PatchID, err)
	}
	return r, nil
}

// UpdateRollout implements store.Store.
func (s *Store) UpdateRollout(ctx context.Context, r vulnzero.Rollout) error {
	stages, err := json.Marshal(r.Stages)
	if err != nil {
		return fmt.Errorf("update rollout %d: stages: %w", r.ID, err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE rollouts SET patch_id = $2, revision = $3, commit_sha = $4,
			kind = $5, strategy = $6, state = $7, stages = $8, stage = $9, reason = $10, revert_sha = $11,
			created_at = $12, updated_at = $13, wait_until = $14, active_group = $15
		WHERE id = $1`,
		r.ID, r.PatchID, string(r.Revision), r.Commit, string(r.Kind), r.Strategy, string(r.State),
		string(stages), r.Stage, r.Reason, r.RevertSHA, timeArg(r.CreatedAt), timeArg(r.UpdatedAt), timeArg(r.WaitUntil), r.ActiveGroup)
	if err != nil {
		return fmt.Errorf("update rollout %d: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update rollout %d: %w", r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("update rollout %d: %w", r.ID, vulnzero.ErrNotFound)
	}
	return nil
}

// GetRollout implements store.Store.
func (s *Store) GetRollout(ctx context.Context, id int64) (vulnzero.Rollout, error) {
	r, err := scanRollout(s.db.QueryRowContext(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return vulnzero.Rollout{}, fmt.Errorf("get rollout %d: %w", id, vulnzero.ErrNotFound)
	}
	if err != nil {
		return vulnzero.Rollout{}, fmt.Errorf("get rollout %d: %w", id, err)
	}
	return r, nil
}

// ListRollouts implements store.Store.
func (s *Store) ListRollouts(ctx context.Context, f store.RolloutFilter) ([]vulnzero.Rollout, error) {
	var conds []string
	var args []any
	if f.PatchID != "" {
		args = append(args, f.PatchID)
		conds = append(conds, fmt.Sprintf("patch_id = $%d", len(args)))
	}
	if len(f.States) > 0 {
		conds = append(conds, `state IN (`+placeholders(len(args)+1, len(f.States))+`)`)
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	q := `SELECT ` + rolloutColumns + ` FROM rollouts`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ") //nolint:gosec // G202: fixed column names; values are placeholders
	}
	q += ` ORDER BY id`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	defer rows.Close()
	var out []vulnzero.Rollout
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("list rollouts: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

// PutHostStep implements store.Store.
func (s *Store) PutHostStep(ctx context.Context, st vulnzero.HostStep) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO host_steps (rollout_id, host, phase, state, exit_code, stdout,
			stderr, error_message, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (rollout_id, host, phase) DO UPDATE SET state = excluded.state,
			exit_code = excluded.exit_code, stdout = excluded.stdout, stderr = excluded.stderr,
			error_message = excluded.error_message, started_at = excluded.started_at,
			finished_at = excluded.finished_at`,
		st.RolloutID, st.Host, string(st.Phase), string(st.State), st.ExitCode, textBlobArg(st.Stdout),
		textBlobArg(st.Stderr), st.Error, timeArg(st.StartedAt), timeArg(st.FinishedAt))
	if isForeignKeyViolation(err) {
		return fmt.Errorf("put %s step of rollout %d on %s: rollout %d: %w", st.Phase, st.RolloutID, st.Host, st.RolloutID, vulnzero.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("put %s step of rollout %d on %s: %w", st.Phase, st.RolloutID, st.Host, err)
	}
	return nil
}

// ListHostSteps implements store.Store.
func (s *Store) ListHostSteps(ctx context.Context, rolloutID int64) ([]vulnzero.HostStep, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT rollout_id, host, phase, state, exit_code, stdout, stderr,
			error_message, started_at, finished_at
		FROM host_steps WHERE rollout_id = $1 ORDER BY host, started_at NULLS FIRST, phase`, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("list host steps of rollout %d: %w", rolloutID, err)
	}
	defer rows.Close()
	var out []vulnzero.HostStep
	for rows.Next() {
		var st vulnzero.HostStep
		var stdout, stderr []byte
		if err := rows.Scan(&st.RolloutID, &st.Host, &st.Phase, &st.State, &st.ExitCode, &stdout, &stderr,
			&st.Error, timeCol{&st.StartedAt}, timeCol{&st.FinishedAt}); err != nil {
			return nil, fmt.Errorf("list host steps of rollout %d: %w", rolloutID, err)
		}
		st.Stdout, st.Stderr = string(stdout), string(stderr)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list host steps of rollout %d: %w", rolloutID, err)
	}
	return out, nil
}

// PutLedger implements store.Store.
func (s *Store) PutLedger(ctx context.Context, e vulnzero.LedgerEntry) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO ledger (host, patch_id, revision, state, commit_sha, rollout_id,
			script_apply, script_verify, script_rollback, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (host, patch_id) DO UPDATE SET revision = excluded.revision, state = excluded.state,
			commit_sha = excluded.commit_sha, rollout_id = excluded.rollout_id,
			script_apply = excluded.script_apply, script_verify = excluded.script_verify,
			script_rollback = excluded.script_rollback, updated_at = excluded.updated_at`,
		e.Host, e.PatchID, string(e.Revision), string(e.State), e.Commit, e.RolloutID,
		blobArg(e.Scripts.Apply), blobArg(e.Scripts.Verify), blobArg(e.Scripts.Rollback), timeArg(e.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put ledger %s on %s: %w", e.PatchID, e.Host, err)
	}
	return nil
}

// ListLedger implements store.Store.
func (s *Store) ListLedger(ctx context.Context) ([]vulnzero.LedgerEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT host, patch_id, revision, state, commit_sha, rollout_id,
			script_apply, script_verify, script_rollback, updated_at
		FROM ledger ORDER BY host, patch_id`)
	if err != nil {
		return nil, fmt.Errorf("list ledger: %w", err)
	}
	defer rows.Close()
	var out []vulnzero.LedgerEntry
	for rows.Next() {
		var e vulnzero.LedgerEntry
		if err := rows.Scan(&e.Host, &e.PatchID, &e.Revision, &e.State, &e.Commit, &e.RolloutID,
			&e.Scripts.Apply, &e.Scripts.Verify, &e.Scripts.Rollback, timeCol{&e.UpdatedAt}); err != nil {
			return nil, fmt.Errorf("list ledger: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list ledger: %w", err)
	}
	return out, nil
}

// Quarantine implements store.Store.
func (s *Store) Quarantine(ctx context.Context, q vulnzero.Quarantine) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO quarantine (patch_id, revision, reason, quarantined_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (patch_id, revision) DO NOTHING`,
		q.PatchID, string(q.Revision), q.Reason, timeArg(q.At))
	if err != nil {
		return fmt.Errorf("quarantine %s@%s: %w", q.PatchID, q.Revision.Short(), err)
	}
	return nil
}

// ListQuarantined implements store.Store.
func (s *Store) ListQuarantined(ctx context.Context) ([]vulnzero.Quarantine, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT patch_id, revision, reason, quarantined_at
		FROM quarantine ORDER BY patch_id, revision`)
	if err != nil {
		return nil, fmt.Errorf("list quarantined: %w", err)
	}
	defer rows.Close()
	var out []vulnzero.Quarantine
	for rows.Next() {
		var q vulnzero.Quarantine
		if err := rows.Scan(&q.PatchID, &q.Revision, &q.Reason, timeCol{&q.At}); err != nil {
			return nil, fmt.Errorf("list quarantined: %w", err)
		}
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list quarantined: %w", err)
	}
	return out, nil
}

// AddTranscript implements store.Store.
func (s *Store) AddTranscript(ctx context.Context, t vulnzero.Transcript) (vulnzero.Transcript, error) {
	t.CreatedAt = asStored(t.CreatedAt)
	err := s.db.QueryRowContext(ctx, `INSERT INTO transcripts (kind, ref, body, created_at)
		VALUES ($1, $2, $3, $4) RETURNING id`,
		t.Kind, t.Ref, textBlobArg(t.Body), timeArg(t.CreatedAt)).Scan(&t.ID)
	if err != nil {
		return vulnzero.Transcript{}, fmt.Errorf("add %s transcript for %s: %w", t.Kind, t.Ref, err)
	}
	return t, nil
}

// GetTranscript implements store.Store.
func (s *Store) GetTranscript(ctx context.Context, id int64) (vulnzero.Transcript, error) {
	var t vulnzero.Transcript
	var body []byte
	err := s.db.QueryRowContext(ctx, `SELECT id, kind, ref, body, created_at FROM transcripts WHERE id = $1`, id).
		Scan(&t.ID, &t.Kind, &t.Ref, &body, timeCol{&t.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return vulnzero.Transcript{}, fmt.Errorf("get transcript %d: %w", id, vulnzero.ErrNotFound)
	}
	if err != nil {
		return vulnzero.Transcript{}, fmt.Errorf("get transcript %d: %w", id, err)
	}
	t.Body = string(body)
	return t, nil
}

// ListTranscripts implements store.Store.
func (s *Store) ListTranscripts(ctx context.Context, kind, ref string) ([]vulnzero.Transcript, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, kind, ref, body, created_at FROM transcripts
		WHERE kind = $1 AND ref = $2 ORDER BY id`, kind, ref)
	if err != nil {
		return nil, fmt.Errorf("list %s transcripts for %s: %w", kind, ref, err)
	}
	defer rows.Close()
	var out []vulnzero.Transcript
	for rows.Next() {
		var t vulnzero.Transcript
		var body []byte
		if err := rows.Scan(&t.ID, &t.Kind, &t.Ref, &body, timeCol{&t.CreatedAt}); err != nil {
			return nil, fmt.Errorf("list %s transcripts for %s: %w", kind, ref, err)
		}
		t.Body = string(body)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s transcripts for %s: %w", kind, ref, err)
	}
	return out, nil
}
