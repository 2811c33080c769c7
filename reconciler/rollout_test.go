package reconciler

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/sqlite"
)

const patchID = "openssl-3.0.13"

// call is one command the fake runner received.
type call struct {
	Host    string
	Phase   vulnzero.Phase
	Script  string
	Env     map[string]string
	Timeout time.Duration
}

func (c call) String() string { return c.Host + ":" + string(c.Phase) }

// behaviour decides a host's result for a phase: an exit code, or an error
// for a transport failure.
type behaviour func(ph vulnzero.Phase) (int, error)

func exitOn(phase vulnzero.Phase, code int) behaviour {
	return func(ph vulnzero.Phase) (int, error) {
		if ph == phase {
			return code, nil
		}
		return 0, nil
	}
}

// fakeRunner plays hosts: every command succeeds unless the host has a
// behaviour. It records every call in order.
type fakeRunner struct {
	mu    sync.Mutex
	calls []call
	hosts map[string]behaviour
	// hook runs before a command returns (used to simulate a crash).
	hook func(ctx context.Context, c call) error
	// respond, when set and handled, decides a command's result instead of
	// the host's behaviour (boot ids, reboots, stage checks).
	respond func(ctx context.Context, c call) (res fleet.Result, err error, handled bool)
}

func (f *fakeRunner) Run(ctx context.Context, h vulnzero.Host, cmd fleet.Command) (fleet.Result, error) {
	c := call{Host: h.Name, Phase: vulnzero.Phase(cmd.Env["VZ_PHASE"]), Script: string(cmd.Script), Env: cmd.Env, Timeout: cmd.Timeout}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	b, hook, respond := f.hosts[h.Name], f.hook, f.respond
	f.mu.Unlock()
	res := fleet.Result{Host: h.Name, Started: time.Now(), Stdout: "ran " + string(c.Phase) + "\n"}
	if hook != nil {
		if err := hook(ctx, c); err != nil {
			return res, err
		}
	}
	if respond != nil {
		if r, err, ok := respond(ctx, c); ok {
			r.Host = h.Name
			return r, err
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if b != nil {
		code, err := b(c.Phase)
		res.ExitCode = code
		return res, err
	}
	return res, nil
}

func (f *fakeRunner) set(host string, b behaviour) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hosts[host] = b
}

func (f *fakeRunner) taken() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeRunner) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// hostsCalled is the sorted set of hosts in calls.
func hostsCalled(calls []call) []string {
	var hs []string
	for _, c := range calls {
		hs = append(hs, c.Host)
	}
	return slices.Compact(slices.Sorted(slices.Values(hs)))
}

// phasesOn lists the phases run on one host, in order.
func phasesOn(calls []call, host string) string {
	var ps []string
	for _, c := range calls {
		if c.Host == host {
			ps = append(ps, string(c.Phase))
		}
	}
	return strings.Join(ps, ",")
}

type fakeSource struct {
	mu sync.Mutex
	d  Desired
}

func (f *fakeSource) Desired(context.Context) (Desired, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.d, nil
}

func (f *fakeSource) set(fn func(*Desired)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.d)
}

type revertCall struct {
	PatchID  string
	Revision vulnzero.Revision
	Reason   string
}

type fakeReverter struct {
	mu    sync.Mutex
	calls []revertCall
	err   error
}

func (f *fakeReverter) RevertPatch(_ context.Context, id string, rev vulnzero.Revision, reason string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, revertCall{id, rev, reason})
	if f.err != nil {
		return "", f.err
	}
	return fmt.Sprintf("revert-sha-%d", len(f.calls)), nil
}

type fakeNotifier struct {
	mu     sync.Mutex
	events []Event
}

func (f *fakeNotifier) Notify(_ context.Context, e Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
	return nil
}

// kinds lists the events received, as "kind:rollout".
func (f *fakeNotifier) kinds() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []string
	for _, e := range f.events {
		s = append(s, fmt.Sprintf("%s:%d", e.Kind, e.Rollout.ID))
	}
	return strings.Join(s, " ")
}

// env is a reconciler over a real SQLite store (a temp file) with fake
// hosts, source, reverter and notifier, a stepping clock and a recorded soak.
type env struct {
	t      *testing.T
	store  store.Store
	runner *fakeRunner
	source *fakeSource
	revert *fakeReverter
	notify *fakeNotifier
	m      *Metrics
	r      *Reconciler

	// configure, when set, edits the Config of every reconciler built.
	configure func(*Config)

	mu    sync.Mutex
	waits []time.Duration
	// skew moves the clock: Now is base + skew + one second per call.
	skew atomic.Int64
}

// advance moves the reconciler's clock forward.
func (e *env) advance(d time.Duration) { e.skew.Add(int64(d)) }

func testPatch(rev vulnzero.Revision) vulnzero.DesiredPatch {
	return vulnzero.DesiredPatch{Revision: rev, Commit: "commit-" + string(rev), Patch: vulnzero.Patch{
		APIVersion: vulnzero.APIVersion, Kind: vulnzero.KindPatch, ID: patchID, Title: "Upgrade openssl",
		Package:      vulnzero.PackageRef{Name: "openssl", Manager: vulnzero.APT, FixedVersion: "3.0.13"},
		Targets:      vulnzero.Targets{Selector: map[string]string{"role": "web"}},
		HealthChecks: []vulnzero.HealthCheck{{Name: "nginx", Command: "systemctl is-active nginx"}},
		Timeouts:     vulnzero.Timeouts{Verify: 90 * time.Second},
		Scripts: vulnzero.Scripts{
			Apply:    []byte("apply " + rev),
			Verify:   []byte("verify " + rev),
			Rollback: []byte("rollback " + rev),
		},
	}}
}

// fleetOf is n hosts h01…hn labelled role=web.
func fleetOf(n int) vulnzero.Inventory {
	var inv vulnzero.Inventory
	for i := 1; i <= n; i++ {
		inv.Hosts = append(inv.Hosts, vulnzero.Host{Name: fmt.Sprintf("h%02d", i), Address: "127.0.0.1", Labels: map[string]string{"role": "web"}})
	}
	return inv
}

func newEnv(t *testing.T, hosts int, patches ...vulnzero.DesiredPatch) *env {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{
		t:      t,
		store:  st,
		runner: &fakeRunner{hosts: map[string]behaviour{}},
		source: &fakeSource{d: Desired{Commit: "main-1", Patches: patches, Inventory: fleetOf(hosts), Policies: policies.Defaults()}},
		revert: &fakeReverter{},
		notify: &fakeNotifier{},
		m:      NewMetrics(prometheus.NewRegistry()),
	}
	e.r = e.newReconciler()
	return e
}

// newReconciler builds a fresh Reconciler on the same store and fakes, as a
// restarted process would.
func (e *env) newReconciler() *Reconciler {
	var tick atomic.Int64
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg := Config{
		Source: e.source, Runner: e.runner, Store: e.store, Reverter: e.revert, Notifier: e.notify,
		Now: func() time.Time {
			return base.Add(time.Duration(tick.Add(1))*time.Second + time.Duration(e.skew.Load()))
		},
		Wait: func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.waits = append(e.waits, d)
			return ctx.Err()
		},
		Metrics: e.m,
	}
	if e.configure != nil {
		e.configure(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) runOnce() Report {
	e.t.Helper()
	rep, err := e.r.RunOnce(e.t.Context())
	if err != nil {
		e.t.Fatalf("RunOnce: %v\n%s", err, rep)
	}
	return rep
}

func (e *env) ledger() map[string]vulnzero.LedgerEntry {
	e.t.Helper()
	es, err := e.store.ListLedger(e.t.Context())
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]vulnzero.LedgerEntry{}
	for _, x := range es {
		m[x.Host] = x
	}
	return m
}

func (e *env) rollout(id int64) vulnzero.Rollout {
	e.t.Helper()
	r, err := e.store.GetRollout(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func counter(t *testing.T, cv *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := cv.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func histogramCount(t *testing.T, hv *prometheus.HistogramVec, labels ...string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := hv.WithLabelValues(labels...).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// resumed asserts the report is a resumption followed by the Skip that keeps
// the patch waiting for it, and returns the resumption.
func resumed(t *testing.T, rep Report) Outcome {
	t.Helper()
	if len(rep.Outcomes) != 2 || rep.Outcomes[0].Action.Kind != ResumeRollout ||
		rep.Outcomes[1].Action.Kind != Skip || !strings.HasPrefix(rep.Outcomes[1].Detail, "waiting for active rollout") {
		t.Fatalf("want a resumption and a waiting skip, got:\n%s", rep)
	}
	return rep.Outcomes[0]
}

// onlyOutcome asserts the report holds one outcome and returns it.
func onlyOutcome(t *testing.T, rep Report) Outcome {
	t.Helper()
	if len(rep.Outcomes) != 1 {
		t.Fatalf("want one outcome, got:\n%s", rep)
	}
	return rep.Outcomes[0]
}

func TestCanaryRolloutSucceedsStageByStage(t *testing.T) {
	e := newEnv(t, 10, testPatch("r1"))
	o := onlyOutcome(t, e.runOnce())
	if o.Action.Kind != StartRollout || o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s, want a started rollout that succeeded", o)
	}

	// Stages in order: every command of stage k before any of stage k+1.
	calls := e.runner.taken()
	stages := [][]string{{"h01"}, {"h02", "h03"}, {"h04", "h05", "h06", "h07", "h08", "h09", "h10"}}
	stageOf := map[string]int{}
	for i, hs := range stages {
		for _, h := range hs {
			stageOf[h] = i
		}
	}
	last := 0
	for i, c := range calls {
		if s := stageOf[c.Host]; s < last {
			t.Fatalf("call %d (%s) of stage %d came after stage %d had started: %v", i, c, s+1, last+1, calls)
		} else {
			last = s
		}
	}
	for h := range stageOf {
		if got := phasesOn(calls, h); got != "apply,verify,health" {
			t.Errorf("phases on %s = %s, want apply,verify,health", h, got)
		}
	}

	// Scripts, environment and timeouts.
	c := calls[0]
	if c.Script != "apply r1" || c.Env["VZ_PATCH_ID"] != patchID || c.Env["VZ_HOST"] != "h01" || c.Env["VZ_PHASE"] != "apply" || c.Timeout != DefaultApplyTimeout {
		t.Errorf("first call = %+v, want apply.sh of r1 with VZ_* env and the default apply timeout", c)
	}
	for _, c := range calls {
		if c.Phase == vulnzero.PhaseVerify && c.Timeout != 90*time.Second {
			t.Errorf("verify timeout = %s, want the patch's 1m30s", c.Timeout)
		}
		if c.Phase == vulnzero.PhaseHealth && c.Script != "systemctl is-active nginx" {
			t.Errorf("health script = %q", c.Script)
		}
	}

	// The ledger says applied everywhere, with revision, commit and scripts.
	led := e.ledger()
	if len(led) != 10 {
		t.Fatalf("ledger has %d entries, want 10", len(led))
	}
	for h, x := range led {
		if x.State != vulnzero.LedgerApplied || x.Revision != "r1" || x.Commit != "commit-r1" || x.RolloutID != o.RolloutID || string(x.Scripts.Rollback) != "rollback r1" {
			t.Errorf("ledger %s = %+v", h, x)
		}
	}
	ro := e.rollout(o.RolloutID)
	if ro.State != vulnzero.RolloutSucceeded || ro.Stage != 2 || ro.Commit != "commit-r1" || ro.Revision != "r1" || ro.Kind != vulnzero.RolloutApply || ro.Strategy != "canary" {
		t.Errorf("rollout = %+v", ro)
	}
	steps, err := e.store.ListHostSteps(t.Context(), ro.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 30 {
		t.Errorf("%d host steps, want 30 (10 hosts × apply, verify, health)", len(steps))
	}
	for _, s := range steps {
		if s.State != vulnzero.StepSucceeded || s.FinishedAt.IsZero() || s.Stdout == "" {
			t.Errorf("step %+v, want succeeded with output and a finish time", s)
		}
	}
	if !slices.Equal(e.waits, []time.Duration{10 * time.Minute}) {
		t.Errorf("soaks = %v, want the canary's 10m only", e.waits)
	}

	if got := counter(t, e.m.Rollouts, "apply", "succeeded"); got != 1 {
		t.Errorf("rollouts{apply,succeeded} = %v", got)
	}
	if got := counter(t, e.m.HostResults, "apply", "ok"); got != 10 {
		t.Errorf("host_results{apply,ok} = %v, want 10", got)
	}
	if got := histogramCount(t, e.m.ReconcileDuration, "ok"); got != 1 {
		t.Errorf("reconcile duration samples = %d, want 1", got)
	}

	// Converged: the next reconcile does nothing.
	e.runner.reset()
	if rep := e.runOnce(); len(rep.Outcomes) != 0 || len(e.runner.taken()) != 0 {
		t.Errorf("second reconcile acted:\n%s", rep)
	}
}

func TestCanaryFailureRollsBackOnlyTheCanary(t *testing.T) {
	e := newEnv(t, 10, testPatch("r1"))
	e.runner.set("h01", exitOn(vulnzero.PhaseApply, 1))
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack {
		t.Fatalf("outcome = %s, want rolled_back", o)
	}
	calls := e.runner.taken()
	if got := fmt.Sprint(calls); got != "[h01:apply h01:rollback]" {
		t.Errorf("calls = %s, want the canary's apply then its rollback, nothing else", got)
	}
	if calls[1].Script != "rollback r1" || calls[1].Timeout != DefaultRollbackTimeout {
		t.Errorf("rollback call = %+v, want the ledger's rollback.sh with the default timeout", calls[1])
	}
	led := e.ledger()
	if len(led) != 1 || led["h01"].State != vulnzero.LedgerRolledBack {
		t.Errorf("ledger = %+v, want only h01, rolled back", led)
	}
	if len(e.revert.calls) != 1 {
		t.Fatalf("reverter called %d times, want once", len(e.revert.calls))
	}
	rc := e.revert.calls[0]
	if rc.PatchID != patchID || rc.Revision != "r1" || rc.Reason != "stage 1 (1): apply failed on h01: exit status 1" {
		t.Errorf("revert call = %+v, want the reason to name stage, phase and host", rc)
	}
	q, err := e.store.ListQuarantined(t.Context())
	if err != nil || len(q) != 1 || q[0].PatchID != patchID || q[0].Revision != "r1" {
		t.Errorf("quarantined = %+v, %v; want r1", q, err)
	}
	if got, want := e.notify.kinds(), fmt.Sprintf("failed:%d rolled_back:%d", o.RolloutID, o.RolloutID); got != want || e.notify.events[1].Rollout.RevertSHA != "revert-sha-1" {
		t.Errorf("notifier events = %s (%+v), want %s, the last with the revert SHA", got, e.notify.events, want)
	}
	ro := e.rollout(o.RolloutID)
	if ro.State != vulnzero.RolloutRolledBack || ro.RevertSHA != "revert-sha-1" || !strings.Contains(ro.Reason, "h01") {
		t.Errorf("rollout = %+v", ro)
	}
	for _, want := range []struct {
		cv     *prometheus.CounterVec
		labels []string
	}{
		{e.m.Rollouts, []string{"apply", "failed"}},
		{e.m.Rollouts, []string{"apply", "rolled_back"}},
		{e.m.Rollbacks, []string{"failure"}},
		{e.m.HostResults, []string{"apply", "failed"}},
		{e.m.HostResults, []string{"rollback", "ok"}},
	} {
		if got := counter(t, want.cv, want.labels...); got != 1 {
			t.Errorf("counter %v = %v, want 1", want.labels, got)
		}
	}

	// The quarantined revision is not tried again.
	e.runner.reset()
	o = onlyOutcome(t, e.runOnce())
	if o.Action.Kind != Skip || o.Detail != "revision is quarantined" || len(e.runner.taken()) != 0 {
		t.Errorf("next reconcile: %s (calls %v), want a quarantine skip", o, e.runner.taken())
	}
}

func TestStageTwoFailureRollsBackCanaryAndStageTwo(t *testing.T) {
	e := newEnv(t, 10, testPatch("r1"))
	e.runner.set("h03", exitOn(vulnzero.PhaseVerify, 2))
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack || o.Detail != "stage 2 (25%): verify failed on h03: exit status 2" {
		t.Fatalf("outcome = %s", o)
	}
	calls := e.runner.taken()
	if got := hostsCalled(calls); !slices.Equal(got, []string{"h01", "h02", "h03"}) {
		t.Errorf("hosts touched = %v, want the canary and stage 2 only", got)
	}
	for _, h := range []string{"h01", "h02"} {
		if got := phasesOn(calls, h); got != "apply,verify,health,rollback" {
			t.Errorf("phases on %s = %s", h, got)
		}
	}
	if got := phasesOn(calls, "h03"); got != "apply,verify,rollback" {
		t.Errorf("phases on h03 = %s", got)
	}
	led := e.ledger()
	if len(led) != 3 {
		t.Errorf("ledger = %+v, want h01–h03", led)
	}
	for h, x := range led {
		if x.State != vulnzero.LedgerRolledBack {
			t.Errorf("ledger %s = %s, want rolled_back", h, x.State)
		}
	}
	if len(e.revert.calls) != 1 || !strings.Contains(e.revert.calls[0].Reason, "stage 2") {
		t.Errorf("revert calls = %+v", e.revert.calls)
	}
}

func TestUnreachableHostIsAFailureAndItsRollbackIsRetried(t *testing.T) {
	e := newEnv(t, 10, testPatch("r1"))
	down := func(vulnzero.Phase) (int, error) {
		return -1, fmt.Errorf("dial h01: %w", vulnzero.ErrUnreachable)
	}
	e.runner.set("h01", down)
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack || !strings.Contains(o.Detail, "unreachable") || !strings.Contains(o.Detail, "rollback failed on h01") {
		t.Fatalf("outcome = %s, want rolled_back naming the unreachable host and its failed rollback", o)
	}
	if got := counter(t, e.m.HostResults, "apply", "error"); got != 1 {
		t.Errorf("host_results{apply,error} = %v, want 1", got)
	}
	if led := e.ledger(); led["h01"].State != vulnzero.LedgerFailed {
		t.Errorf("ledger h01 = %+v, want failed: its rollback never ran", led["h01"])
	}
	if len(e.revert.calls) != 1 {
		t.Errorf("reverter calls = %d, want 1", len(e.revert.calls))
	}

	// The revert lands on main: the patch is gone, so the next reconcile
	// rolls it back where the ledger still holds it — h01, still down.
	e.source.set(func(d *Desired) { d.Patches, d.Commit = nil, "main-2" })
	o = onlyOutcome(t, e.runOnce())
	if o.Action.Kind != RollbackRemoved || o.State != vulnzero.RolloutFailed {
		t.Fatalf("outcome = %s, want a rollback rollout that failed", o)
	}
	// h01 is back: the failed rollback rollout is resumed and finishes.
	e.runner.set("h01", nil)
	e.runner.reset()
	o = resumed(t, e.runOnce())
	if o.Action.Kind != ResumeRollout || o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s, want the resumed rollback to succeed", o)
	}
	if got := fmt.Sprint(e.runner.taken()); got != "[h01:rollback]" {
		t.Errorf("calls = %s", got)
	}
	if led := e.ledger(); led["h01"].State != vulnzero.LedgerRolledBack {
		t.Errorf("ledger h01 = %+v, want rolled_back", led["h01"])
	}
}

func TestResumeAfterCrashRunsOnlyWhatIsLeft(t *testing.T) {
	e := newEnv(t, 10, testPatch("r1"))
	ctx := t.Context()
	dp := testPatch("r1")
	var names []string
	for _, h := range fleetOf(10).Hosts {
		names = append(names, h.Name)
	}
	stages, err := ResolveStages(vulnzero.RolloutSpec{Strategy: "canary"}, names)
	if err != nil {
		t.Fatal(err)
	}
	// A reconciler died in stage 2: h01 (canary) is applied; on h02 apply.sh
	// was started but never reported; on h03 apply succeeded and verify.sh
	// was started.
	ro, err := e.store.CreateRollout(ctx, vulnzero.Rollout{PatchID: patchID, Revision: "r1", Commit: "commit-r1",
		Kind: vulnzero.RolloutApply, Strategy: "canary", State: vulnzero.RolloutProgressing, Stages: stages, Stage: 1})
	if err != nil {
		t.Fatal(err)
	}
	put := func(x vulnzero.LedgerEntry) {
		x.PatchID, x.Revision, x.Commit, x.RolloutID, x.Scripts = patchID, "r1", "commit-r1", ro.ID, dp.Patch.Scripts
		if err := e.store.PutLedger(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	step := func(host string, ph vulnzero.Phase, st vulnzero.StepState) {
		if err := e.store.PutHostStep(ctx, vulnzero.HostStep{RolloutID: ro.ID, Host: host, Phase: ph, State: st, StartedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	put(vulnzero.LedgerEntry{Host: "h01", State: vulnzero.LedgerApplied})
	for _, ph := range []vulnzero.Phase{vulnzero.PhaseApply, vulnzero.PhaseVerify, vulnzero.PhaseHealth} {
		step("h01", ph, vulnzero.StepSucceeded)
	}
	put(vulnzero.LedgerEntry{Host: "h02", State: vulnzero.LedgerApplying})
	step("h02", vulnzero.PhaseApply, vulnzero.StepStarted)
	put(vulnzero.LedgerEntry{Host: "h03", State: vulnzero.LedgerApplying})
	step("h03", vulnzero.PhaseApply, vulnzero.StepSucceeded)
	step("h03", vulnzero.PhaseVerify, vulnzero.StepStarted)

	o := resumed(t, e.runOnce())
	if o.Action.Kind != ResumeRollout || o.RolloutID != ro.ID || o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s, want rollout %d resumed to success", o, ro.ID)
	}
	calls := e.runner.taken()
	want := map[string]string{
		"h01": "",                    // applied: never again
		"h02": "apply,verify,health", // started, no result: run again
		"h03": "verify,health",       // apply done; verify started
		"h04": "apply,verify,health",
		"h10": "apply,verify,health",
	}
	for h, w := range want {
		if got := phasesOn(calls, h); got != w {
			t.Errorf("phases on %s = %q, want %q", h, got, w)
		}
	}
	if len(e.waits) != 0 {
		t.Errorf("soaks = %v, want none (the canary's soak was before the crash)", e.waits)
	}
	for h, x := range e.ledger() {
		if x.State != vulnzero.LedgerApplied {
			t.Errorf("ledger %s = %s, want applied", h, x.State)
		}
	}
}

func TestKilledMidStageResumesWithoutReapplying(t *testing.T) {
	dp := testPatch("r1")
	dp.Patch.Rollout = &vulnzero.RolloutSpec{MaxParallel: 1} // one host at a time: the crash point is exact
	e := newEnv(t, 10, dp)

	ctx, kill := context.WithCancel(t.Context())
	e.runner.hook = func(_ context.Context, c call) error {
		if c.Host == "h05" && c.Phase == vulnzero.PhaseApply {
			kill() // the process dies while apply.sh runs on h05
			return context.Canceled
		}
		return nil
	}
	if _, err := e.r.RunOnce(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("RunOnce = %v, want it cut short by the kill", err)
	}
	atCrash := e.ledger()
	if atCrash["h04"].State != vulnzero.LedgerApplied || atCrash["h05"].State != vulnzero.LedgerApplying {
		t.Fatalf("ledger at crash: h04 %s, h05 %s; want applied and applying", atCrash["h04"].State, atCrash["h05"].State)
	}

	e.runner.hook = nil
	e.runner.reset()
	e.r = e.newReconciler() // a new process
	o := resumed(t, e.runOnce())
	if o.Action.Kind != ResumeRollout || o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s", o)
	}
	calls := e.runner.taken()
	for h, x := range atCrash {
		if x.State == vulnzero.LedgerApplied && phasesOn(calls, h) != "" {
			t.Errorf("%s was applied before the crash but ran %s again", h, phasesOn(calls, h))
		}
	}
	if got := phasesOn(calls, "h05"); got != "apply,verify,health" {
		t.Errorf("h05 ran %q after the restart, want its interrupted apply again", got)
	}
	if got := hostsCalled(calls); !slices.Equal(got, []string{"h05", "h06", "h07", "h08", "h09", "h10"}) {
		t.Errorf("hosts run after the restart = %v", got)
	}
}

func TestFailedRolloutResumesItsRollback(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mainHolds  vulnzero.Revision
		wantRevert int
	}{
		{"revision still on main: revert written once", "r1", 1},
		{"main moved on: no revert of what main holds now", "r2", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 4, testPatch(tc.mainHolds))
			ctx := t.Context()
			// Died after recording the failure and rolling back h02 only.
			ro, err := e.store.CreateRollout(ctx, vulnzero.Rollout{PatchID: patchID, Revision: "r1", Commit: "commit-r1",
				Kind: vulnzero.RolloutApply, Strategy: "canary", State: vulnzero.RolloutFailed, Stage: 1,
				Reason: "stage 2 (100%): apply failed on h02: exit status 1",
				Stages: []vulnzero.Stage{{Name: "1", Hosts: []string{"h01"}}, {Name: "100%", Hosts: []string{"h02", "h03", "h04"}}}})
			if err != nil {
				t.Fatal(err)
			}
			scripts := testPatch("r1").Patch.Scripts
			for _, x := range []vulnzero.LedgerEntry{
				{Host: "h01", State: vulnzero.LedgerApplied},
				{Host: "h02", State: vulnzero.LedgerRolledBack},
				{Host: "h03", State: vulnzero.LedgerFailed},
			} {
				x.PatchID, x.Revision, x.RolloutID, x.Scripts = patchID, "r1", ro.ID, scripts
				if err := e.store.PutLedger(ctx, x); err != nil {
					t.Fatal(err)
				}
			}
			o := resumed(t, e.runOnce())
			if o.State != vulnzero.RolloutRolledBack {
				t.Fatalf("outcome = %s", o)
			}
			calls := e.runner.taken()
			if len(calls) != 2 || !slices.Equal(hostsCalled(calls), []string{"h01", "h03"}) || calls[0].Phase != vulnzero.PhaseRollback {
				t.Errorf("calls = %v, want rollback on h01 and h03 only", calls)
			}
			if len(e.revert.calls) != tc.wantRevert {
				t.Errorf("revert calls = %d, want %d", len(e.revert.calls), tc.wantRevert)
			}
			got := e.rollout(ro.ID)
			if tc.wantRevert == 0 && !strings.Contains(got.Reason, "revert skipped") {
				t.Errorf("reason = %q, want it to say the revert was skipped", got.Reason)
			}
			if q, _ := e.store.ListQuarantined(ctx); len(q) != 1 || q[0].Revision != "r1" {
				t.Errorf("quarantined = %+v, want r1", q)
			}
			for h, x := range e.ledger() {
				if x.State != vulnzero.LedgerRolledBack {
					t.Errorf("ledger %s = %s", h, x.State)
				}
			}
		})
	}
}

func TestRemovedPatchIsRolledBackWhereApplied(t *testing.T) {
	dp := testPatch("r1")
	dp.Patch.Rollout = &vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce}
	e := newEnv(t, 4, dp)
	if o := onlyOutcome(t, e.runOnce()); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("apply: %s", o)
	}
	// h04 left the fleet of targets long ago: its entry is already rolled back.
	if err := e.store.PutLedger(t.Context(), vulnzero.LedgerEntry{Host: "h04", PatchID: patchID, Revision: "r1", State: vulnzero.LedgerRolledBack}); err != nil {
		t.Fatal(err)
	}

	// A person reverts the patch's merge: main no longer has it, and the
	// rollback must use the rollback.sh the ledger recorded.
	e.source.set(func(d *Desired) { d.Patches, d.Commit = nil, "main-2" })
	e.runner.reset()
	o := onlyOutcome(t, e.runOnce())
	if o.Action.Kind != RollbackRemoved || o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s, want a rollback rollout that succeeded", o)
	}
	calls := e.runner.taken()
	if len(calls) != 3 || !slices.Equal(hostsCalled(calls), []string{"h01", "h02", "h03"}) {
		t.Errorf("calls = %v, want one rollback on each of h01–h03", calls)
	}
	for _, c := range calls {
		if c.Script != "rollback r1" || c.Env["VZ_PHASE"] != "rollback" {
			t.Errorf("call %+v, want the ledger's rollback.sh", c)
		}
	}
	ro := e.rollout(o.RolloutID)
	if ro.Kind != vulnzero.RolloutRollback || ro.Commit != "main-2" || ro.Revision != "r1" {
		t.Errorf("rollout = %+v", ro)
	}
	for h, x := range e.ledger() {
		if x.State != vulnzero.LedgerRolledBack {
			t.Errorf("ledger %s = %s, want rolled_back", h, x.State)
		}
		if h != "h04" && x.RolloutID != ro.ID {
			t.Errorf("ledger %s rollout = %d, want %d", h, x.RolloutID, ro.ID)
		}
	}
	if got := counter(t, e.m.Rollbacks, "removed"); got != 1 {
		t.Errorf("rollbacks{removed} = %v", got)
	}
	e.runner.reset()
	if rep := e.runOnce(); len(rep.Outcomes) != 0 || len(e.runner.taken()) != 0 {
		t.Errorf("after the rollback the fleet should be converged:\n%s", rep)
	}
}

func TestRevertErrorIsRecordedAndRevisionStillQuarantined(t *testing.T) {
	e := newEnv(t, 3, testPatch("r1"))
	e.revert.err = errors.New("push main: remote rejected")
	e.runner.set("h01", exitOn(vulnzero.PhaseHealth, 3))
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack {
		t.Fatalf("outcome = %s", o)
	}
	ro := e.rollout(o.RolloutID)
	if ro.RevertSHA != "" || !strings.Contains(ro.Reason, "revert: push main: remote rejected") || !strings.Contains(ro.Reason, `health check "nginx": exit status 3`) {
		t.Errorf("rollout = %+v, want the revert error and the failed health check in the reason", ro)
	}
	if q, _ := e.store.ListQuarantined(t.Context()); len(q) != 1 {
		t.Errorf("quarantined = %+v, want the revision quarantined anyway", q)
	}
	if led := e.ledger(); led["h01"].State != vulnzero.LedgerRolledBack {
		t.Errorf("h01 = %s, want rolled back", led["h01"].State)
	}
}

func TestSupersededRolloutRollsBackAndTheNewRevisionStarts(t *testing.T) {
	e := newEnv(t, 10, testPatch("r1"))
	ctx, kill := context.WithCancel(t.Context())
	e.runner.hook = func(_ context.Context, c call) error {
		if c.Host == "h02" && c.Phase == vulnzero.PhaseApply {
			kill()
			return context.Canceled
		}
		return nil
	}
	if _, err := e.r.RunOnce(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("RunOnce = %v", err)
	}
	var touched []string // hosts with a ledger entry: the canary, h02 and maybe h03 (same stage, in flight)
	for h := range e.ledger() {
		touched = append(touched, h)
	}
	slices.Sort(touched)
	e.runner.hook = nil
	e.runner.reset()
	// Meanwhile main moved on to r2.
	e.source.set(func(d *Desired) { d.Patches = []vulnzero.DesiredPatch{testPatch("r2")} })

	rep := e.runOnce()
	if len(rep.Outcomes) != 2 || rep.Outcomes[0].State != vulnzero.RolloutRolledBack || !strings.HasPrefix(rep.Outcomes[0].Detail, reasonSuperseded) ||
		rep.Outcomes[1].Action.Kind != Skip {
		t.Fatalf("report:\n%s\nwant the r1 rollout superseded and r2 waiting", rep)
	}
	calls := e.runner.taken()
	if len(calls) != len(touched) || !slices.Equal(hostsCalled(calls), touched) || touched[0] != "h01" || touched[1] != "h02" || len(touched) > 3 {
		t.Errorf("calls = %v, want r1's rollback on the touched hosts %v", calls, touched)
	}
	for _, c := range calls {
		if c.Phase != vulnzero.PhaseRollback || c.Script != "rollback r1" {
			t.Errorf("call %+v, want r1's rollback.sh", c)
		}
	}
	if len(e.revert.calls) != 0 {
		t.Errorf("superseding must not revert main: %+v", e.revert.calls)
	}
	e.runner.reset()
	o := onlyOutcome(t, e.runOnce())
	if o.Action.Kind != StartRollout || o.Action.Revision != "r2" || len(o.Action.Hosts) != 10 || o.State != vulnzero.RolloutSucceeded {
		t.Errorf("outcome = %s, want r2 rolled out to all 10 hosts", o)
	}
}

func TestToleratedFailureDoesNotStopTheRollout(t *testing.T) {
	dp := testPatch("r1")
	dp.Patch.Rollout = &vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce,
		Stages: []vulnzero.StageSpec{{Hosts: "100%", MaxFailures: "1"}}}
	e := newEnv(t, 4, dp)
	e.runner.set("h02", exitOn(vulnzero.PhaseApply, 1))
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s, want success within the failure budget", o)
	}
	led := e.ledger()
	if led["h02"].State != vulnzero.LedgerFailed || led["h01"].State != vulnzero.LedgerApplied {
		t.Errorf("ledger = %+v", led)
	}
	// The failed host is reported, not retried in a loop.
	e.runner.reset()
	o = onlyOutcome(t, e.runOnce())
	if o.Action.Kind != Skip || !strings.Contains(o.Detail, "h02") || len(e.runner.taken()) != 0 {
		t.Errorf("next reconcile: %s", o)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := New(Config{})
	if !errors.Is(err, vulnzero.ErrInvalid) {
		t.Fatalf("New(empty) = %v, want ErrInvalid", err)
	}
	for _, want := range []string{"source", "runner", "store", "reverter"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestReportString(t *testing.T) {
	rep := Report{Commit: "0123456789abcdef", Started: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), Duration: 2 * time.Second,
		Outcomes: []Outcome{
			{Action: Action{Kind: StartRollout, PatchID: "p1", Revision: "r1", Hosts: []string{"a", "b"},
				Stages: []vulnzero.Stage{{Hosts: []string{"a"}}, {Hosts: []string{"b"}}}}, RolloutID: 4, State: vulnzero.RolloutSucceeded},
			{Action: Action{Kind: Skip, PatchID: "p2", Revision: "r9", Reason: "revision is quarantined"}, Detail: "revision is quarantined"},
		}}
	want := "reconcile of 0123456789ab at 2025-03-01T12:00:00Z (2s): 2 action(s)\n" +
		"  start p1@r1 on 2 host(s) in stages 1→1 → rollout 4 succeeded\n" +
		"  skip p2@r9: revision is quarantined\n"
	if got := rep.String(); got != want {
		t.Errorf("Report.String() =\n%s\nwant\n%s", got, want)
	}
}
