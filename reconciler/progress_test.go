package reconciler

import (
	"slices"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

func TestRolloutProgress(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	stages := []vulnzero.Stage{
		{Name: "1", Hosts: []string{"a"}, Soak: 10 * time.Minute},
		{Name: "50%", Hosts: []string{"b", "c", "d", "e"}, MaxParallel: 2},
		{Name: "100%", Hosts: []string{"f", "g", "h", "i", "j"}, Soak: 5 * time.Minute},
	}
	// done builds the steps of a host that took d from at.
	done := func(host string, at time.Time, d time.Duration) []vulnzero.HostStep {
		return []vulnzero.HostStep{
			{RolloutID: 1, Host: host, Phase: vulnzero.PhaseApply, State: vulnzero.StepSucceeded, StartedAt: at, FinishedAt: at.Add(d / 2)},
			{RolloutID: 1, Host: host, Phase: vulnzero.PhaseVerify, State: vulnzero.StepSucceeded, StartedAt: at.Add(d / 2), FinishedAt: at.Add(d)},
		}
	}
	led := func(host string, st vulnzero.LedgerState) vulnzero.LedgerEntry {
		return vulnzero.LedgerEntry{Host: host, PatchID: "p", Revision: "r1", RolloutID: 1, State: st}
	}
	tests := []struct {
		name   string
		ro     vulnzero.Rollout
		steps  []vulnzero.HostStep
		ledger []vulnzero.LedgerEntry
		want   Progress
	}{{
		name: "nothing finished yet: no ETA",
		ro:   vulnzero.Rollout{ID: 1, PatchID: "p", Revision: "r1", State: vulnzero.RolloutProgressing, Stages: stages},
		ledger: []vulnzero.LedgerEntry{led("a", vulnzero.LedgerApplying),
			{Host: "b", PatchID: "other", Revision: "r1", RolloutID: 1, State: vulnzero.LedgerApplied}}, // another patch: ignored
		want: Progress{Stage: 1, Stages: 3, Running: 1, Pending: 9},
	}, {
		name: "in stage 2: waves of the window per stage, plus the soaks to come",
		ro:   vulnzero.Rollout{ID: 1, PatchID: "p", Revision: "r1", State: vulnzero.RolloutProgressing, Stages: stages, Stage: 1},
		steps: slices.Concat(done("a", t0, 2*time.Minute), done("b", t0.Add(11*time.Minute), 4*time.Minute),
			[]vulnzero.HostStep{{RolloutID: 1, Host: "c", Phase: vulnzero.PhaseApply, State: vulnzero.StepStarted, StartedAt: t0.Add(11 * time.Minute)}}),
		ledger: []vulnzero.LedgerEntry{led("a", vulnzero.LedgerApplied), led("b", vulnzero.LedgerApplied), led("c", vulnzero.LedgerApplying)},
		// Mean host 3m. Stage 2: c, d, e left, 2 at once → 2 waves = 6m.
		// Stage 3: 5 hosts, 10 at once → 1 wave = 3m, then its 5m soak.
		want: Progress{Stage: 2, Stages: 3, Done: 2, Running: 1, Pending: 7, HostTime: 3 * time.Minute, ETA: 14 * time.Minute, ETAKnown: true},
	}, {
		name:   "soaking after the canary: what is left of the soak counts",
		ro:     vulnzero.Rollout{ID: 1, PatchID: "p", Revision: "r1", State: vulnzero.RolloutProgressing, Stages: stages, WaitUntil: now.Add(4 * time.Minute)},
		steps:  done("a", t0, 2*time.Minute),
		ledger: []vulnzero.LedgerEntry{led("a", vulnzero.LedgerApplied)},
		// 4m of soak; stage 2: 4 hosts / 2 = 2 waves × 2m; stage 3: 2m + 5m.
		want: Progress{Stage: 1, Stages: 3, Done: 1, Pending: 9, HostTime: 2 * time.Minute, ETA: 15 * time.Minute, ETAKnown: true},
	}, {
		name: "waiting for a window: no ETA",
		ro: vulnzero.Rollout{ID: 1, PatchID: "p", Revision: "r1", State: vulnzero.RolloutWaiting, Stages: stages, Stage: 1,
			WaitUntil: now.Add(9 * time.Hour)},
		steps:  done("a", t0, 2*time.Minute),
		ledger: []vulnzero.LedgerEntry{led("a", vulnzero.LedgerApplied)},
		want:   Progress{Stage: 2, Stages: 3, Done: 1, Pending: 9, HostTime: 2 * time.Minute},
	}, {
		name: "failed and rolled back; a pending reboot is listed",
		ro:   vulnzero.Rollout{ID: 1, PatchID: "p", Revision: "r1", State: vulnzero.RolloutRolledBack, Stages: stages, Stage: 1},
		steps: slices.Concat(done("a", t0, 2*time.Minute), []vulnzero.HostStep{
			{RolloutID: 1, Host: "a", Phase: vulnzero.PhaseReboot, State: vulnzero.StepSkipped, StartedAt: t0, FinishedAt: t0},
			{RolloutID: 1, Host: "b", Phase: vulnzero.PhaseApply, State: vulnzero.StepFailed, StartedAt: t0, FinishedAt: t0.Add(time.Minute)},
		}),
		ledger: []vulnzero.LedgerEntry{led("a", vulnzero.LedgerRolledBack), led("b", vulnzero.LedgerRolledBack)},
		want:   Progress{Stage: 2, Stages: 3, RolledBack: 2, Pending: 8, PendingReboot: []string{"a"}},
	}, {
		name: "a rollback rollout counts rolled-back hosts as done",
		ro: vulnzero.Rollout{ID: 1, PatchID: "p", Revision: "r1", Kind: vulnzero.RolloutRollback, State: vulnzero.RolloutFailed,
			Stages: []vulnzero.Stage{{Name: "all", Hosts: []string{"a", "b", "c"}}}},
		steps: []vulnzero.HostStep{{RolloutID: 1, Host: "b", Phase: vulnzero.PhaseRollback, State: vulnzero.StepFailed, StartedAt: t0, FinishedAt: t0}},
		ledger: []vulnzero.LedgerEntry{led("a", vulnzero.LedgerRolledBack),
			{Host: "b", PatchID: "p", Revision: "r1", RolloutID: 9, State: vulnzero.LedgerApplied}},
		want: Progress{Stage: 1, Stages: 1, Done: 1, Failed: 1, Pending: 1},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := RolloutProgress(tc.ro, tc.steps, tc.ledger, now)
			if !equalProgress(got, tc.want) {
				t.Errorf("progress\n got  %+v\n want %+v", got, tc.want)
			}
		})
	}
}

func equalProgress(a, b Progress) bool {
	return a.Stage == b.Stage && a.Stages == b.Stages && a.Done == b.Done && a.Failed == b.Failed && a.Running == b.Running &&
		a.Pending == b.Pending && a.RolledBack == b.RolledBack && slices.Equal(a.PendingReboot, b.PendingReboot) &&
		a.HostTime == b.HostTime && a.ETA == b.ETA && a.ETAKnown == b.ETAKnown
}
