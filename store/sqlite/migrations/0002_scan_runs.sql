-- Run history of configured scan sources (scan/source): one row per
-- scheduled or on-demand run, including runs skipped because the previous
-- one was still going.

CREATE TABLE scan_runs (
    id               INTEGER PRIMARY KEY,
    source           TEXT    NOT NULL,
    run_trigger      TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    imports          INTEGER NOT NULL,
    findings_read    INTEGER NOT NULL,
    findings_new     INTEGER NOT NULL,
    findings_updated INTEGER NOT NULL,
    findings_fixed   INTEGER NOT NULL,
    hosts_covered    INTEGER NOT NULL,
    error_message    TEXT    NOT NULL
) STRICT;

CREATE INDEX scan_runs_source ON scan_runs (source, id);
