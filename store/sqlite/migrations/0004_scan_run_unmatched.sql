-- Scanned hosts the inventory does not know, per scan run: how many, and
-- the first names (a JSON array of strings; store.MaxUnmatchedHosts).

ALTER TABLE scan_runs ADD COLUMN unmatched_hosts_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE scan_runs ADD COLUMN unmatched_hosts TEXT NOT NULL DEFAULT '[]';
