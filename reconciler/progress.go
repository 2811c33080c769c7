package reconciler

import (
	"slices"
	"time"

	"vulnzero.dev/vulnzero"
)

// Progress is a rollout's status for people (`vulnzero rollout show`, the
// dashboard): where it is, how its hosts stand, and when it should end.
type Progress struct {
	Stage  int // current stage, 1-based
	Stages int
	// Host counts over every stage. Done: the change is through (applied,
	// or rolled back for a rollback rollout); RolledBack: undone after a
	// failure or abort.
	Done, Failed, Running, Pending, RolledBack int
	// PendingReboot lists hosts that want a reboot the patch did not do.
	PendingReboot []string
	// HostTime is the mean time a finished host took, from its first step's
	// start to its last step's end; zero when no host finished yet.
	HostTime time.Duration
	// ETA is the estimated time left, from HostTime, the hosts left per
	// stage and each stage's parallelism, plus the soaks to come. It is
	// known (ETAKnown) only while the rollout progresses and HostTime is
	// (or only soaks are left).
	ETA      time.Duration
	ETAKnown bool
}

type hostStatus int

const (
	statusPending hostStatus = iota
	statusRunning
	statusDone
	statusFailed
	statusRolledBack
)

// RolloutProgress computes a rollout's Progress from its recorded steps and
// the ledger (all entries; those of other patches are ignored).
func RolloutProgress(ro vulnzero.Rollout, steps []vulnzero.HostStep, ledger []vulnzero.LedgerEntry, now time.Time) Progress {
	p := Progress{Stage: min(ro.Stage+1, len(ro.Stages)), Stages: len(ro.Stages)}
	byHost := map[string][]vulnzero.HostStep{}
	for _, s := range steps {
		byHost[s.Host] = append(byHost[s.Host], s)
		if PendingReboot(s) && !slices.Contains(p.PendingReboot, s.Host) {
			p.PendingReboot = append(p.PendingReboot, s.Host)
		}
	}
	slices.Sort(p.PendingReboot)
	entries := map[string]vulnzero.LedgerEntry{}
	for _, e := range ledger {
		if e.PatchID == ro.PatchID && e.Revision == ro.Revision && e.RolloutID == ro.ID {
			entries[e.Host] = e
		}
	}
	status := map[string]hostStatus{}
	var total time.Duration
	var finished int
	for _, h := range stageHosts(ro.Stages) {
		st := hostState(ro, byHost[h], entries[h])
		status[h] = st
		switch st {
		case statusDone:
			p.Done++
		case statusFailed:
			p.Failed++
		case statusRunning:
			p.Running++
		case statusRolledBack:
			p.RolledBack++
		default:
			p.Pending++
		}
		if d, ok := hostDuration(byHost[h]); ok && (st == statusDone || st == statusFailed) {
			total += d
			finished++
		}
	}
	if finished > 0 {
		p.HostTime = total / time.Duration(finished)
	}
	if ro.State != vulnzero.RolloutProgressing && ro.State != vulnzero.RolloutPending {
		return p
	}
	var eta time.Duration
	hostsLeft := false
	for i := ro.Stage; i < len(ro.Stages); i++ {
		st := ro.Stages[i]
		left := 0
		for _, h := range st.Hosts {
			if s := status[h]; s == statusPending || s == statusRunning {
				left++
			}
		}
		if left > 0 {
			hostsLeft = true
			par := st.MaxParallel
			if par <= 0 {
				par = DefaultMaxParallel
			}
			eta += time.Duration((left+par-1)/par) * p.HostTime
		}
		switch {
		case i == ro.Stage && left == 0 && !ro.WaitUntil.IsZero():
			eta += max(ro.WaitUntil.Sub(now), 0) // soaking now
		default:
			eta += st.Soak
		}
	}
	if !hostsLeft || p.HostTime > 0 {
		p.ETA, p.ETAKnown = eta, true
	}
	return p
}

func hostState(ro vulnzero.Rollout, steps []vulnzero.HostStep, e vulnzero.LedgerEntry) hostStatus {
	if ro.Kind == vulnzero.RolloutRollback {
		if e.State == vulnzero.LedgerRolledBack {
			return statusDone
		}
		for _, s := range steps {
			if s.Phase == vulnzero.PhaseRollback {
				switch s.State {
				case vulnzero.StepFailed:
					return statusFailed
				case vulnzero.StepStarted:
					return statusRunning
				}
			}
		}
		return statusPending
	}
	switch e.State {
	case vulnzero.LedgerApplied:
		return statusDone
	case vulnzero.LedgerFailed:
		return statusFailed
	case vulnzero.LedgerApplying:
		return statusRunning
	case vulnzero.LedgerRolledBack:
		return statusRolledBack
	}
	// The ledger moved on (a later rollout): read the steps.
	st := statusPending
	for _, s := range steps {
		switch s.State {
		case vulnzero.StepFailed:
			if s.Phase != vulnzero.PhaseRollback {
				return statusFailed
			}
		case vulnzero.StepStarted:
			st = statusRunning
		case vulnzero.StepSucceeded:
			if st == statusPending {
				st = statusDone
			}
		}
	}
	return st
}

// hostDuration is from the first apply-side step's start to the last one's
// end (rollback steps are not part of a host's rollout time).
func hostDuration(steps []vulnzero.HostStep) (time.Duration, bool) {
	var start, end time.Time
	for _, s := range steps {
		if s.Phase == vulnzero.PhaseRollback || s.StartedAt.IsZero() || s.FinishedAt.IsZero() {
			continue
		}
		if start.IsZero() || s.StartedAt.Before(start) {
			start = s.StartedAt
		}
		if s.FinishedAt.After(end) {
			end = s.FinishedAt
		}
	}
	if start.IsZero() || end.Before(start) {
		return 0, false
	}
	return end.Sub(start), true
}
