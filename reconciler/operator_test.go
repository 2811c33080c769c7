package reconciler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/store/sqlite"
)

func (e *env) request(id int64, op Op, by string) {
	e.t.Helper()
	if err := RequestOp(e.t.Context(), e.store, id, op, by, time.Now()); err != nil {
		e.t.Fatal(err)
	}
}

// requestWhen makes the runner file an operator request when a host's
// apply starts (the rollout has ID 1: the first of the test's store).
func (e *env) requestWhen(host string, op Op) {
	e.runner.hook = func(ctx context.Context, c call) error {
		if c.Host == host && c.Phase == vulnzero.PhaseApply {
			return RequestOp(ctx, e.store, 1, op, "ops-alice", time.Now())
		}
		return nil
	}
}

func TestPauseMidStageThenResume(t *testing.T) {
	dp := allAtOnce("r1")
	dp.Patch.Rollout.MaxParallel = 1
	e := newEnv(t, 6, dp)
	e.requestWhen("h03", OpPause)
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutPaused {
		t.Fatalf("outcome = %s, want paused", o)
	}
	if got := hostsCalled(e.runner.taken()); !slices.Equal(got, []string{"h01", "h02", "h03"}) {
		t.Errorf("hosts run = %v, want h01–h03 (h03 was in flight and finishes)", got)
	}
	if got := phasesOn(e.runner.taken(), "h03"); got != "apply,verify,health" {
		t.Errorf("h03 ran %q", got)
	}

	// Paused: reconciles do nothing.
	e.runner.hook = nil
	e.runner.reset()
	if o := resumed(t, e.runOnce()); o.State != vulnzero.RolloutPaused || o.Action.Reason != "paused by an operator" || len(e.runner.taken()) != 0 {
		t.Fatalf("while paused: %s, calls %v", o, e.runner.taken())
	}
	p := e.progress(o.RolloutID)
	if p.Done != 3 || p.Pending != 3 || p.ETAKnown {
		t.Errorf("progress while paused = %+v, want 3 done, 3 pending, no ETA", p)
	}

	e.request(o.RolloutID, OpResume, "ops-bob")
	if o := resumed(t, e.runOnce()); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("after resume: %s", o)
	}
	if got := hostsCalled(e.runner.taken()); !slices.Equal(got, []string{"h04", "h05", "h06"}) {
		t.Errorf("hosts run after resume = %v, want the rest, none twice", got)
	}
}

func TestAbortRollsBackTouchedHostsWithoutRevert(t *testing.T) {
	e := newEnv(t, 10, testPatch("r1")) // canary 1 → 2 → 7
	// Filed while stage 2 (h02, h03) runs: both were dispatched already, so
	// the abort is honoured before the first host of stage 3.
	e.requestWhen("h03", OpAbort)
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack || !strings.HasPrefix(o.Detail, "aborted by operator ops-alice at ") || !strings.Contains(o.Detail, "in stage 3 of 3") {
		t.Fatalf("outcome = %s", o)
	}
	calls := e.runner.taken()
	if got := hostsCalled(calls); !slices.Equal(got, []string{"h01", "h02", "h03"}) {
		t.Errorf("hosts = %v, want the canary and stage 2 only", got)
	}
	for _, h := range []string{"h01", "h02", "h03"} {
		if !strings.HasSuffix(phasesOn(calls, h), "rollback") {
			t.Errorf("%s ran %s, want a rollback last", h, phasesOn(calls, h))
		}
	}
	for h, x := range e.ledger() {
		if x.State != vulnzero.LedgerRolledBack {
			t.Errorf("ledger %s = %s", h, x.State)
		}
	}
	if len(e.revert.calls) != 0 {
		t.Errorf("an abort wrote a revert: %+v", e.revert.calls)
	}
	if q, _ := e.store.ListQuarantined(t.Context()); len(q) != 0 {
		t.Errorf("an abort quarantined %+v", q)
	}
	if got := e.notify.kinds(); got != fmt.Sprintf("aborted:%d", o.RolloutID) {
		t.Errorf("notifications = %s", got)
	}
	if got := counter(t, e.m.Rollbacks, "aborted"); got != 1 {
		t.Errorf("rollbacks{aborted} = %v", got)
	}
	// Main still holds r1, but it is not started again until it changes.
	e.runner.hook = nil
	e.runner.reset()
	if o := onlyOutcome(t, e.runOnce()); o.Action.Kind != Skip || !strings.Contains(o.Detail, "ended rolled_back") || len(e.runner.taken()) != 0 {
		t.Errorf("after the abort: %s", o)
	}
}

func TestAbortWaitingRolloutTouchesNothing(t *testing.T) {
	e := newEnv(t, 3, allAtOnce("r1"))
	e.policy("  windows:\n    - kind: allow\n      schedule: \"0 22 * * *\"\n      duration: 2h\n")
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutWaiting {
		t.Fatalf("outcome = %s", o)
	}
	e.request(o.RolloutID, OpPause, "")
	if o := resumed(t, e.runOnce()); o.State != vulnzero.RolloutPaused {
		t.Fatalf("paused: %s", o)
	}
	if ro := e.rollout(o.RolloutID); !ro.WaitUntil.IsZero() {
		t.Errorf("a paused rollout keeps its window %s", ro.WaitUntil)
	}
	e.request(o.RolloutID, OpAbort, "ops-carol")
	if o := resumed(t, e.runOnce()); o.State != vulnzero.RolloutRolledBack {
		t.Fatalf("aborted: %s", o)
	}
	if calls := e.runner.taken(); len(calls) != 0 {
		t.Errorf("abort of an untouched rollout ran %v", calls)
	}
}

func TestRequestOpRefusals(t *testing.T) {
	e := newEnv(t, 2, allAtOnce("r1"))
	ctx := t.Context()
	if err := RequestOp(ctx, e.store, 99, OpPause, "", time.Now()); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("unknown rollout: %v", err)
	}
	o := onlyOutcome(t, e.runOnce())
	for _, tc := range []struct {
		id   int64
		op   Op
		want error
		msg  string
	}{
		{o.RolloutID, OpPause, vulnzero.ErrConflict, "already ended succeeded"},
		{o.RolloutID, "restart", vulnzero.ErrInvalid, `operation "restart"`},
	} {
		err := RequestOp(ctx, e.store, tc.id, tc.op, "", time.Now())
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s rollout %d: %v, want %v mentioning %q", tc.op, tc.id, err, tc.want, tc.msg)
		}
	}
	rb, err := e.store.CreateRollout(ctx, vulnzero.Rollout{PatchID: "gone", Revision: "r0", Kind: vulnzero.RolloutRollback, State: vulnzero.RolloutProgressing})
	if err != nil {
		t.Fatal(err)
	}
	if err := RequestOp(ctx, e.store, rb.ID, OpAbort, "", time.Now()); !errors.Is(err, vulnzero.ErrConflict) {
		t.Errorf("abort of a rollback rollout: %v, want ErrConflict", err)
	}
	ap, err := e.store.CreateRollout(ctx, vulnzero.Rollout{PatchID: "p", Revision: "r0", Kind: vulnzero.RolloutApply, State: vulnzero.RolloutProgressing})
	if err != nil {
		t.Fatal(err)
	}
	e.request(ap.ID, OpAbort, "")
	if err := RequestOp(ctx, e.store, ap.ID, OpResume, "", time.Now()); !errors.Is(err, vulnzero.ErrConflict) || !strings.Contains(err.Error(), "already aborted") {
		t.Errorf("resume after abort: %v, want ErrConflict", err)
	}
	c, err := ReadControl(ctx, e.store, ap.ID)
	if err != nil || !c.Aborted || c.Paused {
		t.Errorf("control = %+v, %v", c, err)
	}
}

// TestPauseAndAbortDuringSoak runs on synctest's clock with the real soak
// timer: an operator's request stops a 10-minute soak within ControlPoll,
// the soak's end survives the pause, and after a resume past it the next
// stage starts at once.
func TestPauseAndAbortDuringSoak(t *testing.T) {
	for _, op := range []Op{OpPause, OpAbort} {
		t.Run(string(op), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vz.db"), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				dp := testPatch("r1")
				dp.Patch.Rollout = &vulnzero.RolloutSpec{Stages: []vulnzero.StageSpec{{Hosts: "1", Soak: 10 * time.Minute}, {Hosts: "100%"}}}
				runner := &fakeRunner{hosts: map[string]behaviour{}}
				src := &fakeSource{d: Desired{Commit: "main-1", Patches: []vulnzero.DesiredPatch{dp}, Inventory: fleetOf(3), Policies: policies.Defaults()}}
				r, err := New(Config{Source: src, Runner: runner, Store: st, Reverter: &fakeReverter{}, ControlPoll: 5 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				t0 := time.Now()
				type result struct {
					rep Report
					err error
				}
				done := make(chan result, 1)
				go func() {
					rep, err := r.RunOnce(ctx)
					done <- result{rep, err}
				}()
				time.Sleep(time.Minute) // the canary is through; its soak runs
				synctest.Wait()
				if err := RequestOp(ctx, st, 1, op, "ops", time.Now()); err != nil {
					t.Fatal(err)
				}
				res := <-done
				if res.err != nil {
					t.Fatal(res.err)
				}
				if took := time.Since(t0); took > time.Minute+5*time.Second {
					t.Errorf("the soak went on %s after the request", took-time.Minute)
				}
				ro, err := st.GetRollout(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				if op == OpAbort {
					if ro.State != vulnzero.RolloutRolledBack || phasesOn(runner.taken(), "h01") != "apply,verify,health,rollback" {
						t.Fatalf("aborted during soak: %+v, calls %v", ro, runner.taken())
					}
					return
				}
				if ro.State != vulnzero.RolloutPaused || ro.Stage != 0 || !ro.WaitUntil.Equal(t0.Add(10*time.Minute)) {
					t.Fatalf("paused during soak: state %s stage %d wait %s; want paused in stage 1 with the soak's end", ro.State, ro.Stage, ro.WaitUntil)
				}
				time.Sleep(20 * time.Minute)
				if err := RequestOp(ctx, st, 1, OpResume, "ops", time.Now()); err != nil {
					t.Fatal(err)
				}
				resumedAt := time.Now()
				rep, err := r.RunOnce(ctx)
				if err != nil || rep.Outcomes[0].State != vulnzero.RolloutSucceeded {
					t.Fatalf("after resume: %v\n%s", err, rep)
				}
				if took := time.Since(resumedAt); took > time.Second { // SQLite's busy retries take a few fake ms
					t.Errorf("resume waited %s; the soak was over", took)
				}
				if got := hostsCalled(runner.taken()); len(got) != 3 {
					t.Errorf("hosts = %v", got)
				}
			})
		})
	}
}

// hangingRunner blocks apply on one host and ignores its context, as a
// wedged SSH session might.
type hangingRunner struct {
	fakeRunner
	host    string
	release chan struct{}
}

func (h *hangingRunner) Run(ctx context.Context, host vulnzero.Host, cmd fleet.Command) (fleet.Result, error) {
	if host.Name == h.host && cmd.Env["VZ_PHASE"] == string(vulnzero.PhaseApply) {
		<-h.release
		return fleet.Result{}, nil
	}
	return h.fakeRunner.Run(ctx, host, cmd)
}

// TestHangingHostCountsAsFailureAfterItsTimeout: a host whose command never
// returns (even past its context) is a failure once its timeout and the
// grace have passed; the stage goes on without it, or fails when the budget
// is spent.
func TestHangingHostCountsAsFailureAfterItsTimeout(t *testing.T) {
	for _, tc := range []struct {
		maxFailures string
		want        vulnzero.RolloutState
	}{{"1", vulnzero.RolloutSucceeded}, {"0", vulnzero.RolloutRolledBack}} {
		t.Run("maxFailures "+tc.maxFailures, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vz.db"), nil)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				dp := testPatch("r1")
				dp.Patch.Timeouts.Apply = time.Minute
				dp.Patch.Rollout = &vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce, MaxFailures: tc.maxFailures, MaxParallel: 1}
				runner := &hangingRunner{fakeRunner: fakeRunner{hosts: map[string]behaviour{}}, host: "h02", release: make(chan struct{})}
				defer close(runner.release)
				src := &fakeSource{d: Desired{Commit: "main-1", Patches: []vulnzero.DesiredPatch{dp}, Inventory: fleetOf(3), Policies: policies.Defaults()}}
				r, err := New(Config{Source: src, Runner: runner, Store: st, Reverter: &fakeReverter{}})
				if err != nil {
					t.Fatal(err)
				}
				t0 := time.Now()
				rep, err := r.RunOnce(ctx)
				if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].State != tc.want {
					t.Fatalf("RunOnce: %v\n%s", err, rep)
				}
				// The apply timeout plus the grace, and a few fake ms of SQLite busy retries.
				if took := time.Since(t0); took < time.Minute+abandonGrace || took > time.Minute+abandonGrace+time.Second {
					t.Errorf("the stage took %s, want the apply timeout plus the grace (%s)", took, time.Minute+abandonGrace)
				}
				steps, err := st.ListHostSteps(ctx, rep.Outcomes[0].RolloutID)
				if err != nil {
					t.Fatal(err)
				}
				i := slices.IndexFunc(steps, func(s vulnzero.HostStep) bool { return s.Host == "h02" && s.Phase == vulnzero.PhaseApply })
				if i < 0 || steps[i].State != vulnzero.StepFailed || !strings.Contains(steps[i].Error, "unreachable") {
					t.Fatalf("h02 apply step: %+v", steps)
				}
				if tc.want == vulnzero.RolloutSucceeded && phasesOn(runner.taken(), "h03") != "apply,verify,health" {
					t.Errorf("h03 after the hung host ran %q", phasesOn(runner.taken(), "h03"))
				}
			})
		})
	}
}
