package reconciler

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
)

// The env's clock starts at 2025-03-01 12:00 UTC (a Saturday) and ticks a
// second per read; advance jumps it.

func allAtOnce(rev vulnzero.Revision) vulnzero.DesiredPatch {
	dp := testPatch(rev)
	dp.Patch.Rollout = &vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce}
	return dp
}

func TestOutsideItsWindowARolloutWaitsThenRuns(t *testing.T) {
	e := newEnv(t, 3, allAtOnce("r1"))
	e.policy("  windows:\n    - name: nights\n      kind: allow\n      schedule: \"0 22 * * *\"\n      duration: 2h\n")
	nights := time.Date(2025, 3, 1, 22, 0, 0, 0, time.UTC)

	rep := e.runOnce()
	o := onlyOutcome(t, rep)
	if o.Action.Kind != StartRollout || o.State != vulnzero.RolloutWaiting || !o.WaitUntil.Equal(nights) || !rep.WakeAt.Equal(nights) {
		t.Fatalf("outcome = %s (wait until %s, wake at %s), want waiting for 22:00", o, o.WaitUntil, rep.WakeAt)
	}
	if calls := e.runner.taken(); len(calls) != 0 {
		t.Fatalf("commands ran outside the window: %v", calls)
	}
	ro := e.rollout(o.RolloutID)
	if ro.State != vulnzero.RolloutWaiting || !ro.WaitUntil.Equal(nights) || !strings.Contains(ro.Reason, "3 host(s) outside their maintenance window: h01, h02, h03") {
		t.Errorf("stored rollout = %+v", ro)
	}

	// Polled again before the window: still waiting, nothing rewritten.
	before := ro.UpdatedAt
	e.advance(3 * time.Hour)
	o = resumed(t, e.runOnce())
	if o.State != vulnzero.RolloutWaiting || !strings.HasPrefix(o.Action.Reason, "waiting for a maintenance window (opens 2025-03-01T22:00:00Z)") {
		t.Errorf("outcome = %s", o)
	}
	if ro := e.rollout(o.RolloutID); !ro.UpdatedAt.Equal(before) {
		t.Errorf("a poll of a waiting rollout rewrote it (updated %s → %s)", before, ro.UpdatedAt)
	}

	e.advance(7 * time.Hour) // 22:00 and a few ticks
	o = resumed(t, e.runOnce())
	if o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("in the window: %s", o)
	}
	if ro := e.rollout(o.RolloutID); !ro.WaitUntil.IsZero() || ro.Reason != "" {
		t.Errorf("finished rollout keeps wait %s / reason %q", ro.WaitUntil, ro.Reason)
	}
	if got := hostsCalled(e.runner.taken()); len(got) != 3 {
		t.Errorf("hosts run = %v", got)
	}
}

func TestDenyWindowPerGroupWins(t *testing.T) {
	e := newEnv(t, 4, allAtOnce("r1"))
	e.groups(map[string][]string{"db": {"h01", "h02"}})
	// Changes are allowed all day, but the db group is frozen 11:00–15:00.
	e.policy("  windows:\n    - kind: allow\n      schedule: \"0 0 * * *\"\n      duration: 24h\n" +
		"    - kind: deny\n      schedule: \"0 11 * * *\"\n      duration: 4h\n      groups: [db]\n")
	o := onlyOutcome(t, e.runOnce())
	freezeEnds := time.Date(2025, 3, 1, 15, 0, 0, 0, time.UTC)
	if o.State != vulnzero.RolloutWaiting || !o.WaitUntil.Equal(freezeEnds) {
		t.Fatalf("outcome = %s until %s, want waiting until the freeze ends", o, o.WaitUntil)
	}
	if got := hostsCalled(e.runner.taken()); !slices.Equal(got, []string{"h03", "h04"}) {
		t.Errorf("hosts run during the db freeze = %v, want the other group only", got)
	}
	e.runner.reset()
	e.advance(3 * time.Hour)
	if o := resumed(t, e.runOnce()); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("after the freeze: %s", o)
	}
	if got := hostsCalled(e.runner.taken()); !slices.Equal(got, []string{"h01", "h02"}) {
		t.Errorf("hosts run after the freeze = %v, want the db hosts only (no host twice)", got)
	}
}

func TestEmergencyLaneForKEV(t *testing.T) {
	const lane = "  emergency:\n    kev: true\n  windows:\n    - kind: allow\n      schedule: \"0 22 * * *\"\n      duration: 2h\n"
	for _, tc := range []struct {
		name   string
		policy string
		kev    KEVSet
		want   vulnzero.RolloutState
	}{
		{"a KEV-listed CVE skips the allow window", lane, KEVSet{"CVE-2024-3094": true}, vulnzero.RolloutSucceeded},
		{"not listed: waits", lane, KEVSet{"CVE-2021-44228": true}, vulnzero.RolloutWaiting},
		{"the policy does not allow the lane: waits", "  windows:\n    - kind: allow\n      schedule: \"0 22 * * *\"\n      duration: 2h\n",
			KEVSet{"CVE-2024-3094": true}, vulnzero.RolloutWaiting},
		{"deny still wins over the lane", lane + "    - kind: deny\n      schedule: \"0 0 * * 6\"\n      duration: 24h\n",
			KEVSet{"CVE-2024-3094": true}, vulnzero.RolloutWaiting},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dp := allAtOnce("r1")
			dp.Patch.CVEs = []string{"CVE-2024-3094"}
			e := newEnv(t, 2, dp)
			e.configure = func(c *Config) { c.KEV = tc.kev }
			e.r = e.newReconciler()
			e.policy(tc.policy)
			if o := onlyOutcome(t, e.runOnce()); o.State != tc.want {
				t.Errorf("outcome = %s, want %s", o, tc.want)
			}
		})
	}
}

func TestWindowClosingMidStageDefersTheRest(t *testing.T) {
	dp := allAtOnce("r1")
	dp.Patch.Rollout.MaxParallel = 1
	e := newEnv(t, 5, dp)
	e.policy("  windows:\n    - kind: allow\n      schedule: \"0 12 * * *\"\n      duration: 1h\n")
	e.runner.hook = func(_ context.Context, c call) error {
		if c.Host == "h02" && c.Phase == vulnzero.PhaseApply {
			e.advance(2 * time.Hour) // the window closes while h02 runs
		}
		return nil
	}
	o := onlyOutcome(t, e.runOnce())
	tomorrow := time.Date(2025, 3, 2, 12, 0, 0, 0, time.UTC)
	if o.State != vulnzero.RolloutWaiting || !o.WaitUntil.Equal(tomorrow) {
		t.Fatalf("outcome = %s until %s, want waiting for tomorrow's window", o, o.WaitUntil)
	}
	if got := phasesOn(e.runner.taken(), "h02"); got != "apply,verify,health" {
		t.Errorf("h02, in flight when the window closed, ran %q; want it finished", got)
	}
	if got := hostsCalled(e.runner.taken()); !slices.Equal(got, []string{"h01", "h02"}) {
		t.Errorf("hosts run = %v", got)
	}
	e.runner.hook = nil
	e.runner.reset()
	e.advance(22 * time.Hour)
	if o := resumed(t, e.runOnce()); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("next window: %s", o)
	}
	if got := hostsCalled(e.runner.taken()); !slices.Equal(got, []string{"h03", "h04", "h05"}) {
		t.Errorf("hosts run in the next window = %v", got)
	}
}

func TestRollbacksIgnoreWindows(t *testing.T) {
	e := newEnv(t, 2, allAtOnce("r1"))
	if o := onlyOutcome(t, e.runOnce()); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("apply: %s", o)
	}
	// Now a freeze starts, and a person reverts the patch on main.
	e.policy("  windows:\n    - kind: deny\n      schedule: \"0 0 * * *\"\n      duration: 24h\n")
	e.source.set(func(d *Desired) { d.Patches = nil })
	e.runner.reset()
	if o := onlyOutcome(t, e.runOnce()); o.Action.Kind != RollbackRemoved || o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("rollback during a freeze: %s", o)
	}
	if len(e.runner.taken()) != 2 {
		t.Errorf("calls = %v, want both hosts rolled back", e.runner.taken())
	}
}
