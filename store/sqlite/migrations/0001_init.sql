-- VulnZero schema, SQLite flavour. Times are TEXT in UTC at microsecond
-- precision ("2006-01-02T15:04:05.000000Z"), fixed width so they sort; a
-- zero time is NULL. Tables are STRICT so a wrongly typed bind fails loudly.

CREATE TABLE imports (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    scanner     TEXT    NOT NULL,
    file        TEXT    NOT NULL,
    complete    INTEGER NOT NULL,
    imported_at TEXT    NOT NULL
) STRICT;

CREATE TABLE findings (
    host          TEXT    NOT NULL,
    package       TEXT    NOT NULL,
    cve           TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    scanner       TEXT    NOT NULL,
    os            TEXT    NOT NULL,
    os_family     TEXT    NOT NULL,
    ecosystem     TEXT    NOT NULL,
    installed     TEXT    NOT NULL,
    fixed_version TEXT    NOT NULL,
    title         TEXT    NOT NULL,
    severity      INTEGER NOT NULL,
    cvss          REAL    NOT NULL,
    cvss_vector   TEXT    NOT NULL,
    rule_id       TEXT    NOT NULL,
    first_seen    TEXT    NOT NULL,
    last_seen     TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    fixed_at      TEXT,
    -- the last import that reported this finding: a complete import fixes
    -- the open findings of its source and hosts that it did not touch
    import_id     INTEGER NOT NULL REFERENCES imports (id),
    PRIMARY KEY (host, package, cve)
) STRICT;

CREATE INDEX findings_source_host ON findings (source, host, status);
CREATE INDEX findings_status ON findings (status);

CREATE TABLE pull_requests (
    number     INTEGER PRIMARY KEY,
    patch_id   TEXT NOT NULL,
    branch     TEXT NOT NULL,
    base       TEXT NOT NULL,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    state      TEXT NOT NULL,
    head_sha   TEXT NOT NULL,
    merge_sha  TEXT NOT NULL,
    url        TEXT NOT NULL,
    created_at TEXT,
    updated_at TEXT
) STRICT;

-- At most one open PR per branch: a crashed run finds its PR instead of
-- opening a second one.
CREATE UNIQUE INDEX pull_requests_open_branch ON pull_requests (branch) WHERE state = 'open';
CREATE INDEX pull_requests_state ON pull_requests (state);

CREATE TABLE statuses (
    sha         TEXT NOT NULL,
    context     TEXT NOT NULL,
    state       TEXT NOT NULL,
    description TEXT NOT NULL,
    target_url  TEXT NOT NULL,
    updated_at  TEXT,
    PRIMARY KEY (sha, context)
) STRICT;

CREATE TABLE rollouts (
    id         INTEGER PRIMARY KEY,
    patch_id   TEXT    NOT NULL,
    revision   TEXT    NOT NULL,
    commit_sha TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    strategy   TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    stages     TEXT    NOT NULL, -- JSON array of vulnzero.Stage
    stage      INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    revert_sha TEXT    NOT NULL,
    created_at TEXT,
    updated_at TEXT
) STRICT;

CREATE INDEX rollouts_patch ON rollouts (patch_id);
CREATE INDEX rollouts_state ON rollouts (state);

CREATE TABLE host_steps (
    rollout_id    INTEGER NOT NULL REFERENCES rollouts (id),
    host          TEXT    NOT NULL,
    phase         TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    exit_code     INTEGER NOT NULL,
    stdout        BLOB, -- command output is bytes, not always UTF-8; NULL when empty
    stderr        BLOB,
    error_message TEXT    NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    PRIMARY KEY (rollout_id, host, phase)
) STRICT;

CREATE TABLE ledger (
    host            TEXT    NOT NULL,
    patch_id        TEXT    NOT NULL,
    revision        TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    commit_sha      TEXT    NOT NULL,
    rollout_id      INTEGER NOT NULL, -- 0 when not from a rollout; no foreign key
    script_apply    BLOB,
    script_verify   BLOB,
    script_rollback BLOB,
    updated_at      TEXT,
    PRIMARY KEY (host, patch_id)
) STRICT;

CREATE TABLE quarantine (
    patch_id       TEXT NOT NULL,
    revision       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    quarantined_at TEXT,
    PRIMARY KEY (patch_id, revision)
) STRICT;

CREATE TABLE transcripts (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    ref        TEXT NOT NULL,
    body       BLOB, -- NULL when empty
    created_at TEXT
) STRICT;
