package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// TestRolloutPauseResumeAbortShow drives the operator commands against a
// real SQLite store holding a rollout mid-way, and reads them back through
// `rollout show` and the reconciler's own view of the requests.
func TestRolloutPauseResumeAbortShow(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VZ_DATA_DIR", dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	ro, err := st.CreateRollout(ctx, vulnzero.Rollout{PatchID: "apt-libfoo-1.0.1", Revision: "0123456789abcdef", Commit: "c0ffee",
		Kind: vulnzero.RolloutApply, Strategy: "canary", State: vulnzero.RolloutProgressing, Stage: 1,
		Stages: []vulnzero.Stage{{Name: "1", Hosts: []string{"web-1"}}, {Name: "100%", Hosts: []string{"web-2", "web-3", "web-4"}, MaxParallel: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []vulnzero.HostStep{
		{Host: "web-1", Phase: vulnzero.PhaseApply, State: vulnzero.StepSucceeded, StartedAt: t0, FinishedAt: t0.Add(2 * time.Minute)},
		{Host: "web-1", Phase: vulnzero.PhaseReboot, State: vulnzero.StepSkipped, StartedAt: t0.Add(2 * time.Minute), FinishedAt: t0.Add(2 * time.Minute)},
		{Host: "web-2", Phase: vulnzero.PhaseApply, State: vulnzero.StepSucceeded, StartedAt: t0.Add(3 * time.Minute), FinishedAt: t0.Add(7 * time.Minute)},
	} {
		s.RolloutID = ro.ID
		if err := st.PutHostStep(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []vulnzero.LedgerEntry{{Host: "web-1", State: vulnzero.LedgerApplied}, {Host: "web-2", State: vulnzero.LedgerApplied}} {
		e.PatchID, e.Revision, e.RolloutID = ro.PatchID, ro.Revision, ro.ID
		if err := st.PutLedger(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	out, _, err := run(t, "rollout", "pause", "1", "--by", "alice")
	if err != nil || !strings.Contains(out, "rollout 1: pause requested by alice") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	out, _, err = run(t, "rollout", "show", "1")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Hosts:    2 done, 0 failed, 0 running, 2 pending",
		// Mean host 3m; web-3 and web-4 one at a time.
		"ETA:      6m0s (about ",
		"Operator: paused by alice at ",
		"Reboot:   pending on web-1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	if i, j := strings.Index(out, "Operator:"), strings.Index(out, "Stage 1"); i < 0 || j < 0 || i > j {
		t.Errorf("status should come before the stages:\n%s", out)
	}

	if _, _, err := run(t, "rollout", "resume", "1", "--by", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, "rollout", "abort", "1", "--by", "carol"); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, "rollout", "pause", "1")
	if err == nil || !strings.Contains(err.Error(), "already aborted") {
		t.Errorf("pause after abort: %v", err)
	}
	if _, _, err := run(t, "rollout", "abort", "x"); err == nil || !strings.Contains(err.Error(), `"x" is not a rollout id`) {
		t.Errorf("bad id: %v", err)
	}

	st, err = sqlite.Open(ctx, filepath.Join(dir, "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := reconciler.ReadControl(ctx, st, 1)
	if err != nil || !c.Aborted || c.By != "carol" {
		t.Errorf("control = %+v, %v; want aborted by carol", c, err)
	}
}

func TestFormatStatusWaiting(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	r := vulnzero.Rollout{ID: 4, State: vulnzero.RolloutWaiting, WaitUntil: now.Add(10 * time.Hour), ActiveGroup: "green"}
	got := formatStatus(r, reconciler.Progress{Pending: 3}, reconciler.Control{}, now)
	for _, want := range []string{
		"ETA:      unknown",
		"Waiting:  next maintenance window opens 2025-03-01T22:00:00Z (in 10h0m0s)",
		"Live:     group green serves traffic",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("status lacks %q:\n%s", want, got)
		}
	}
}
