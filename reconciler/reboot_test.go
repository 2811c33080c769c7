package reconciler

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/policies"
)

// bootSim plays hosts that reboot: each has a boot id; the reboot command
// takes the host down for down boot-id reads (they fail as unreachable),
// after which it is up with a new id. Hosts that never come back have
// down < 0.
type bootSim struct {
	mu       sync.Mutex
	boots    map[string]int // host → boot count
	down     map[string]int // host → reads left while down
	stuck    bool           // reboots never finish
	reboots  map[string]int
	applyOut string
}

func newBootSim() *bootSim {
	return &bootSim{boots: map[string]int{}, down: map[string]int{}, reboots: map[string]int{}}
}

func (b *bootSim) id(host string) string { return fmt.Sprintf("%s-boot-%d", host, b.boots[host]) }

func (b *bootSim) respond(_ context.Context, c call) (fleet.Result, error, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case c.Script == bootIDCommand:
		if n := b.down[c.Host]; n > 0 || b.stuck && b.reboots[c.Host] > 0 {
			b.down[c.Host] = n - 1
			if n == 1 {
				b.boots[c.Host]++
			}
			return fleet.Result{ExitCode: -1}, fmt.Errorf("dial %s: %w", c.Host, vulnzero.ErrUnreachable), true
		}
		return fleet.Result{Stdout: b.id(c.Host) + "\n"}, nil, true
	case c.Phase == vulnzero.PhaseReboot:
		b.reboots[c.Host]++
		b.down[c.Host] = 2
		return fleet.Result{}, nil, true
	case c.Phase == vulnzero.PhaseApply:
		return fleet.Result{Stdout: b.applyOut}, nil, true
	}
	return fleet.Result{}, nil, false
}

func (b *bootSim) rebootsOf(host string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reboots[host]
}

// phaseTrail is the phases run on a host, with boot id reads as "boot_id".
func phaseTrail(calls []call, host string) string {
	var ps []string
	for _, c := range calls {
		if c.Host != host {
			continue
		}
		if c.Script == bootIDCommand {
			ps = append(ps, "boot_id")
		} else {
			ps = append(ps, string(c.Phase))
		}
	}
	return strings.Join(ps, ",")
}

func TestReboot(t *testing.T) {
	marker := "upgraded\n" + RebootRequiredMarker + "\n"
	for _, tc := range []struct {
		name     string
		mode     vulnzero.Reboot
		applyOut string
		want     string // phases on h01
		pending  bool
	}{
		{"if-required, and apply says so: reboot, wait for a new boot id, verify",
			vulnzero.RebootIfRequired, marker, "apply,boot_id,reboot,boot_id,boot_id,boot_id,verify,health", false},
		{"if-required, not required: no reboot", vulnzero.RebootIfRequired, "upgraded\n", "apply,verify,health", false},
		{"always: reboot without being asked", vulnzero.RebootAlways, "upgraded\n", "apply,boot_id,reboot,boot_id,boot_id,boot_id,verify,health", false},
		{"never, though required: the host is marked pending reboot", vulnzero.RebootNever, marker, "apply,verify,health", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dp := allAtOnce("r1")
			dp.Patch.Reboot = tc.mode
			e := newEnv(t, 1, dp)
			sim := newBootSim()
			sim.applyOut = tc.applyOut
			e.runner.respond = sim.respond
			o := onlyOutcome(t, e.runOnce())
			if o.State != vulnzero.RolloutSucceeded {
				t.Fatalf("outcome = %s", o)
			}
			calls := e.runner.taken()
			if got := phaseTrail(calls, "h01"); got != tc.want {
				t.Errorf("h01 ran %s\nwant     %s", got, tc.want)
			}
			step := e.steps(o.RolloutID)["h01/reboot"]
			switch {
			case tc.pending:
				if !PendingReboot(step) || !strings.Contains(step.Stdout, "pending reboot") {
					t.Errorf("reboot step = %+v, want skipped as pending", step)
				}
				if p := e.progress(o.RolloutID); len(p.PendingReboot) != 1 || p.PendingReboot[0] != "h01" {
					t.Errorf("progress pending reboots = %v", p.PendingReboot)
				}
			case strings.Contains(tc.want, "reboot"):
				if step.State != vulnzero.StepSucceeded || !strings.Contains(step.Stdout, "boot_id before: h01-boot-0") || !strings.Contains(step.Stdout, "boot_id after: h01-boot-1") {
					t.Errorf("reboot step = %+v", step)
				}
				for _, c := range calls {
					if c.Phase == vulnzero.PhaseReboot && c.Script != policies.DefaultRebootCommand {
						t.Errorf("reboot command = %q, want the default", c.Script)
					}
				}
				if len(e.waits) != 3 || e.waits[0] != DefaultRebootPoll {
					t.Errorf("waits = %v, want three polls of %s", e.waits, DefaultRebootPoll)
				}
			default:
				if step.Phase != "" {
					t.Errorf("unexpected reboot step %+v", step)
				}
			}
		})
	}
}

func TestRebootTimeoutFailsTheHost(t *testing.T) {
	dp := allAtOnce("r1")
	dp.Patch.Reboot = vulnzero.RebootAlways
	e := newEnv(t, 2, dp)
	e.policy("  reboot:\n    command: /sbin/reboot\n    timeout: 1m\n    pollInterval: 10s\n")
	sim := newBootSim()
	sim.stuck = true
	e.runner.respond = sim.respond
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack || !strings.Contains(o.Detail, "reboot failed on h01: no new boot_id within 1m0s") {
		t.Fatalf("outcome = %s", o)
	}
	calls := e.runner.taken()
	if i := indexOf(calls, "h01", vulnzero.PhaseReboot); i < 0 || calls[i].Script != "/sbin/reboot" {
		t.Errorf("reboot call: %v", calls)
	}
	if indexOf(calls, "h01", vulnzero.PhaseVerify) >= 0 {
		t.Errorf("verify ran on a host that did not come back")
	}
	if e.waits[0] != 10*time.Second {
		t.Errorf("poll interval = %s, want the policy's 10s", e.waits[0])
	}
}

func TestRebootResumedAfterTheHostCameBackIsNotRepeated(t *testing.T) {
	dp := allAtOnce("r1")
	dp.Patch.Reboot = vulnzero.RebootAlways
	e := newEnv(t, 1, dp)
	ctx := t.Context()
	ro, err := e.store.CreateRollout(ctx, vulnzero.Rollout{PatchID: patchID, Revision: "r1", Commit: "commit-r1", Kind: vulnzero.RolloutApply,
		Strategy: policies.StrategyAllAtOnce, State: vulnzero.RolloutProgressing, Stages: []vulnzero.Stage{{Name: "all", Hosts: []string{"h01"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// The reconciler died after sending the reboot: its step is started,
	// with the boot id seen before.
	for _, s := range []vulnzero.HostStep{
		{Phase: vulnzero.PhaseApply, State: vulnzero.StepSucceeded, Stdout: "upgraded\n"},
		{Phase: vulnzero.PhaseReboot, State: vulnzero.StepStarted, Stdout: bootIDPrefix + "h01-boot-0\n"},
	} {
		s.RolloutID, s.Host, s.StartedAt = ro.ID, "h01", time.Now()
		if err := e.store.PutHostStep(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	sim := newBootSim()
	sim.boots["h01"] = 1 // it came back
	e.runner.respond = sim.respond
	if o := resumed(t, e.runOnce()); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s", o)
	}
	if got := phaseTrail(e.runner.taken(), "h01"); got != "boot_id,verify,health" {
		t.Errorf("h01 ran %s, want a boot id read then verify (no second reboot)", got)
	}
	if sim.rebootsOf("h01") != 0 {
		t.Errorf("rebooted again")
	}
	if s := e.steps(ro.ID)["h01/reboot"]; s.State != vulnzero.StepSucceeded || !strings.Contains(s.Stdout, "h01-boot-1") {
		t.Errorf("reboot step = %+v", s)
	}
}

func (e *env) progress(id int64) Progress {
	e.t.Helper()
	steps, err := e.store.ListHostSteps(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	ledger, err := e.store.ListLedger(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	return RolloutProgress(e.rollout(id), steps, ledger, time.Now())
}
