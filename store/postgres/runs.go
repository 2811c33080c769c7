package postgres

import (
	"context"
	"fmt"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

const scanRunColumns = `id, source, run_trigger, state, started_at, finished_at, imports,
	findings_read, findings_new, findings_updated, findings_fixed, hosts_covered, error_message,
	unmatched_hosts_count, unmatched_hosts`

// RecordScanRun implements store.Store.
func (s *Store) RecordScanRun(ctx context.Context, r store.ScanRun) (store.ScanRun, error) {
	r.StartedAt, r.FinishedAt = asStored(r.StartedAt), asStored(r.FinishedAt)
	args := []any{r.Source, r.Trigger, string(r.State), timeArg(r.StartedAt), timeArg(r.FinishedAt), r.Imports,
		r.Read, r.New, r.Updated, r.Fixed, r.Hosts, r.Error, r.Unmatched, store.EncodeHosts(r.UnmatchedHosts)}
	if r.ID == 0 {
		err := s.pool.QueryRow(ctx, `INSERT INTO scan_runs (source, run_trigger, state, started_at, finished_at,
			imports, findings_read, findings_new, findings_updated, findings_fixed, hosts_covered, error_message,
			unmatched_hosts_count, unmatched_hosts)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id`, args...).Scan(&r.ID)
		if err != nil {
			return store.ScanRun{}, fmt.Errorf("record scan run of %s: %w", r.Source, err)
		}
		return r, nil
	}
	res, err := s.pool.Exec(ctx, `UPDATE scan_runs SET source = $1, run_trigger = $2, state = $3,
		started_at = $4, finished_at = $5, imports = $6, findings_read = $7, findings_new = $8,
		findings_updated = $9, findings_fixed = $10, hosts_covered = $11, error_message = $12,
		unmatched_hosts_count = $13, unmatched_hosts = $14
		WHERE id = $15`, append(args, r.ID)...)
	if err != nil {
		return store.ScanRun{}, fmt.Errorf("record scan run %d of %s: %w", r.ID, r.Source, err)
	}
	if res.RowsAffected() == 0 {
		return store.ScanRun{}, fmt.Errorf("record scan run %d of %s: %w", r.ID, r.Source, vulnzero.ErrNotFound)
	}
	return r, nil
}

// ListScanRuns implements store.Store.
func (s *Store) ListScanRuns(ctx context.Context, f store.ScanRunFilter) ([]store.ScanRun, error) {
	var limit any // NULL: no limit
	if f.Limit > 0 {
		limit = f.Limit
	}
	rows, err := s.pool.Query(ctx, `SELECT `+scanRunColumns+` FROM scan_runs
		WHERE ($1 = '' OR source = $1) ORDER BY id DESC LIMIT $2`, f.Source, limit)
	if err != nil {
		return nil, fmt.Errorf("list scan runs: %w", err)
	}
	defer rows.Close()
	var out []store.ScanRun
	for rows.Next() {
		r, err := scanScanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list scan runs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list scan runs: %w", err)
	}
	return out, nil
}

func scanScanRun(row interface{ Scan(...any) error }) (store.ScanRun, error) {
	var r store.ScanRun
	var state string
	var unmatched string
	err := row.Scan(&r.ID, &r.Source, &r.Trigger, &state, timeCol{&r.StartedAt}, timeCol{&r.FinishedAt}, &r.Imports,
		&r.Read, &r.New, &r.Updated, &r.Fixed, &r.Hosts, &r.Error, &r.Unmatched, &unmatched)
	if err != nil {
		return r, err
	}
	r.State = store.ScanRunState(state)
	r.UnmatchedHosts, err = store.DecodeHosts(unmatched)
	return r, err
}
