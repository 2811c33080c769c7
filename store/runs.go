package store

import "time"

// ScanRunState is where one run of a configured scan source is.
type ScanRunState string

const (
	// ScanRunning: the run started and has not finished. A process that
	// dies leaves its run in this state; readers judge staleness by
	// StartedAt (see scan/source).
	ScanRunning ScanRunState = "running"
	// ScanSucceeded: every import of the run committed.
	ScanSucceeded ScanRunState = "succeeded"
	// ScanFailed: the pull or an import failed; Error says where and why.
	ScanFailed ScanRunState = "failed"
	// ScanSkipped: the run did not start because the previous run of the
	// same source was still going; Error says so.
	ScanSkipped ScanRunState = "skipped"
)

// ScanRun is the history record of one run of a configured scan source:
// when it ran, why, and what its imports changed.
type ScanRun struct {
	ID         int64
	Source     string // configured source name
	Trigger    string // "schedule" or "manual"
	State      ScanRunState
	StartedAt  time.Time
	FinishedAt time.Time // zero while running
	Imports    int       // imports committed (a file source imports each file apart)
	Read       int       // findings read
	New        int
	Updated    int
	Fixed      int
	Hosts      int    // hosts covered
	Error      string // why the run failed or was skipped; credentials stripped
}

// ScanRunFilter narrows ListScanRuns. Zero fields match everything; Limit 0
// means no limit.
type ScanRunFilter struct {
	Source string
	Limit  int
}
