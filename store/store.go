// Package store persists VulnZero's state: findings and imports, pull
// requests and commit statuses of the local forge, rollouts, host steps, the
// per-host ledger, quarantined revisions and transcripts.
//
// Store is one interface with two implementations — store/sqlite (embedded,
// the default) and store/postgres (pgx) — held to the same behaviour by the
// conformance suite in store/storetest. Migrations are embedded in each
// implementation and applied by Open.
package store

import (
	"context"
	"iter"

	"vulnzero.dev/vulnzero"
)

// Store is VulnZero's persistent state. Every method is safe for concurrent
// use. Methods that return a single object return an error wrapping
// vulnzero.ErrNotFound when it does not exist.
//
// Times are stored in UTC at microsecond precision (see Precision) and read
// back in UTC; a zero time is stored as NULL and read back as zero.
type Store interface {
	// ImportFindings stores one import in one transaction: it reads findings
	// until the sequence ends, upserting each by Finding.Key (first_seen is
	// kept, last_seen moves, a fixed finding that returns is reopened). When
	// imp.Complete is set, open findings of the same source on the hosts the
	// import covered that it did not report are marked fixed. If the sequence
	// yields an error, or any write fails, nothing is stored and that error is
	// returned.
	//
	// Inputs go through PrepareImport and PrepareFinding: a zero imp.At is
	// now, Source and Scanner default to the import's, a finding without
	// host, package or CVE is ErrInvalid, and the lifecycle fields (FirstSeen,
	// LastSeen, Status, FixedAt) are the store's: first_seen is the At of the
	// import that first reported the key, last_seen the At of the latest, and
	// FixedAt the At of the complete import that stopped reporting it. A key
	// reported twice in one import is stored once (the later wins) and
	// counted once.
	//
	// A finding the scanner itself reports fixed (Status FindingFixed, see
	// PrepareFinding) closes an open key as of the scanner's date (counted
	// Fixed), leaves a fixed one as it was, and is stored fixed when the key
	// is new (counted neither New nor Updated).
	ImportFindings(ctx context.Context, imp vulnzero.Import, findings iter.Seq2[vulnzero.Finding, error]) (vulnzero.ImportResult, error)
	// ListFindings returns findings matching the filter, ordered by host,
	// package, CVE.
	ListFindings(ctx context.Context, f FindingFilter) ([]vulnzero.Finding, error)
	// ListImports returns imports, newest first.
	ListImports(ctx context.Context) ([]vulnzero.Import, error)

	// CreatePR records a new pull request and assigns its number (1, 2, …,
	// without gaps; pr.Number is ignored) and returns it as stored. An empty
	// State means open. A second open PR for the same branch is ErrConflict.
	CreatePR(ctx context.Context, pr vulnzero.PullRequest) (vulnzero.PullRequest, error)
	// UpdatePR replaces the PR with the same number. Reopening it while
	// another PR for its branch is open is ErrConflict.
	UpdatePR(ctx context.Context, pr vulnzero.PullRequest) error
	GetPR(ctx context.Context, number int) (vulnzero.PullRequest, error)
	// ListPRs returns PRs in the given states (all when none), by number.
	ListPRs(ctx context.Context, states ...vulnzero.PRState) ([]vulnzero.PullRequest, error)

	// SetStatus creates or replaces the status for (SHA, Context).
	SetStatus(ctx context.Context, st vulnzero.CommitStatus) error
	// ListStatuses returns the statuses of a commit, by context.
	ListStatuses(ctx context.Context, sha string) ([]vulnzero.CommitStatus, error)

	// CreateRollout records a rollout and assigns its ID.
	CreateRollout(ctx context.Context, r vulnzero.Rollout) (vulnzero.Rollout, error)
	// UpdateRollout replaces the rollout with the same ID.
	UpdateRollout(ctx context.Context, r vulnzero.Rollout) error
	GetRollout(ctx context.Context, id int64) (vulnzero.Rollout, error)
	// ListRollouts returns rollouts matching the filter, by ID.
	ListRollouts(ctx context.Context, f RolloutFilter) ([]vulnzero.Rollout, error)

	// PutHostStep creates or replaces the step keyed by (RolloutID, Host, Phase).
	// A step of a rollout that does not exist is ErrNotFound.
	PutHostStep(ctx context.Context, s vulnzero.HostStep) error
	// ListHostSteps returns a rollout's steps, by host then start time.
	ListHostSteps(ctx context.Context, rolloutID int64) ([]vulnzero.HostStep, error)

	// PutLedger creates or replaces the entry keyed by (Host, PatchID).
	PutLedger(ctx context.Context, e vulnzero.LedgerEntry) error
	// ListLedger returns every ledger entry, by host then patch.
	ListLedger(ctx context.Context) ([]vulnzero.LedgerEntry, error)

	// Quarantine records a failed revision; quarantining it twice is a no-op
	// (the first reason and time are kept).
	Quarantine(ctx context.Context, q vulnzero.Quarantine) error
	// ListQuarantined returns every quarantined revision, by patch then
	// revision.
	ListQuarantined(ctx context.Context) ([]vulnzero.Quarantine, error)

	// AddTranscript stores a transcript and assigns its ID.
	AddTranscript(ctx context.Context, t vulnzero.Transcript) (vulnzero.Transcript, error)
	GetTranscript(ctx context.Context, id int64) (vulnzero.Transcript, error)
	// ListTranscripts returns the transcripts of one kind and ref, oldest
	// first (the local forge keeps PR comments this way).
	ListTranscripts(ctx context.Context, kind, ref string) ([]vulnzero.Transcript, error)

	// RecordScanRun creates the run when run.ID is 0 and assigns its ID, or
	// else replaces the run with that ID (ErrNotFound when there is none).
	// It returns the run as stored.
	RecordScanRun(ctx context.Context, run ScanRun) (ScanRun, error)
	// ListScanRuns returns runs matching the filter, newest (highest ID)
	// first.
	ListScanRuns(ctx context.Context, f ScanRunFilter) ([]ScanRun, error)

	// Close releases the database. Calling it again is a no-op.
	Close() error
}

// FindingFilter narrows ListFindings. Zero fields match everything.
type FindingFilter struct {
	Host   string
	Status vulnzero.FindingStatus
	Source string
}

// RolloutFilter narrows ListRollouts. Zero fields match everything.
type RolloutFilter struct {
	PatchID string
	States  []vulnzero.RolloutState
}
