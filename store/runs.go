package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

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
	// Unmatched counts the scanned hosts the inventory does not know (their
	// findings are kept under the scanner's names); UnmatchedHosts names
	// them, the first MaxUnmatchedHosts in name order.
	Unmatched      int
	UnmatchedHosts []string
}

// MaxUnmatchedHosts bounds ScanRun.UnmatchedHosts: a scan of a fleet the
// inventory does not describe at all must not make every run row huge.
const MaxUnmatchedHosts = 100

// SetUnmatched fills r's Unmatched and UnmatchedHosts from hosts.
func (r *ScanRun) SetUnmatched(hosts []string) {
	r.Unmatched = len(hosts)
	r.UnmatchedHosts = slices.Clone(hosts[:min(len(hosts), MaxUnmatchedHosts)])
}

// ScanRunFilter narrows ListScanRuns. Zero fields match everything; Limit 0
// means no limit.
type ScanRunFilter struct {
	Source string
	Limit  int
}

// EncodeHosts is how stores keep a list of host names in one text column:
// a JSON array, which holds any name.
func EncodeHosts(hosts []string) string {
	if len(hosts) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(hosts) // strings always encode
	return string(b)
}

// DecodeHosts reads what EncodeHosts wrote; no hosts is nil.
func DecodeHosts(s string) ([]string, error) {
	var hosts []string
	if err := json.Unmarshal([]byte(s), &hosts); err != nil {
		return nil, fmt.Errorf("host list %q: %w", s, err)
	}
	if len(hosts) == 0 {
		return nil, nil
	}
	return hosts, nil
}
