package reconciler

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// policy replaces the source's policies with one RolloutPolicy (spec lines
// indented by two spaces) over the defaults.
func (e *env) policy(spec string) {
	e.t.Helper()
	doc := "apiVersion: vulnzero.dev/v1\nkind: RolloutPolicy\nname: test\nspec:\n" + spec
	pols, err := policies.Parse(map[string][]byte{"policies/test.yaml": []byte(doc)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.source.set(func(d *Desired) { d.Policies = pols })
}

// addHost adds a host outside the patch's targets (a load balancer).
func (e *env) addHost(name string) {
	e.source.set(func(d *Desired) {
		d.Inventory.Hosts = append(d.Inventory.Hosts, vulnzero.Host{Name: name, Address: "127.0.0.1", Labels: map[string]string{"role": "lb"}})
	})
}

func (e *env) groups(g map[string][]string) {
	e.source.set(func(d *Desired) { d.Inventory.Groups = g })
}

func (e *env) steps(id int64) map[string]vulnzero.HostStep {
	e.t.Helper()
	list, err := e.store.ListHostSteps(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]vulnzero.HostStep{}
	for _, s := range list {
		m[s.Host+"/"+string(s.Phase)] = s
	}
	return m
}

// indexOf is the position of the first call matching host and phase (-1).
func indexOf(calls []call, host string, ph vulnzero.Phase) int {
	return slices.IndexFunc(calls, func(c call) bool { return c.Host == host && c.Phase == ph })
}

// TestRollingSlidingWindow: inside a batch at most maxParallel hosts run at
// once, and a host starts as soon as a slot frees (not in waves); no host of
// the next batch starts before the batch is through. Durations are real
// sleeps on synctest's fake clock.
func TestRollingSlidingWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vz.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		dp := testPatch("r1")
		dp.Patch.HealthChecks = nil
		dp.Patch.Rollout = &vulnzero.RolloutSpec{Strategy: policies.StrategyRolling, BatchSize: "4", MaxParallel: 2}
		var mu sync.Mutex
		start, end := map[string]time.Time{}, map[string]time.Time{}
		running, most := 0, 0
		runner := &fakeRunner{hosts: map[string]behaviour{}, respond: func(ctx context.Context, c call) (fleet.Result, error, bool) {
			if c.Phase != vulnzero.PhaseApply {
				return fleet.Result{}, nil, true
			}
			mu.Lock()
			start[c.Host] = time.Now()
			running++
			most = max(most, running)
			mu.Unlock()
			d := time.Second
			if c.Host == "h01" {
				d = 10 * time.Second
			}
			time.Sleep(d)
			mu.Lock()
			running--
			end[c.Host] = time.Now()
			mu.Unlock()
			return fleet.Result{}, nil, true
		}}
		src := &fakeSource{d: Desired{Commit: "main-1", Patches: []vulnzero.DesiredPatch{dp}, Inventory: fleetOf(6), Policies: policies.Defaults()}}
		r, err := New(Config{Source: src, Runner: runner, Store: st, Reverter: &fakeReverter{}})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		rep, err := r.RunOnce(t.Context())
		if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].State != vulnzero.RolloutSucceeded {
			t.Fatalf("RunOnce: %v\n%s", err, rep)
		}
		if most != 2 {
			t.Errorf("at most %d hosts ran at once, want 2 (maxParallel)", most)
		}
		at := func(m map[string]time.Time, h string) time.Duration { return m[h].Sub(t0) }
		// Batch 1 is h01–h04: h01 takes 10s, the others 1s each.
		// (Allow a few fake milliseconds of SQLite busy retries.)
		for h, want := range map[string]time.Duration{"h01": 0, "h02": 0, "h03": time.Second, "h04": 2 * time.Second} {
			if got := at(start, h); got < want || got > want+500*time.Millisecond {
				t.Errorf("%s started at %s, want %s (a sliding window, not waves)", h, got, want)
			}
		}
		if at(start, "h05") < at(end, "h01") || at(start, "h06") < at(end, "h01") {
			t.Errorf("batch 2 started at %s/%s, before batch 1 ended at %s", at(start, "h05"), at(start, "h06"), at(end, "h01"))
		}
		ro, err := st.GetRollout(t.Context(), rep.Outcomes[0].RolloutID)
		if err != nil {
			t.Fatal(err)
		}
		if ro.Strategy != policies.StrategyRolling || describe(ro.Stages) != "batch 1/2[h01 h02 h03 h04]/0 par 2 | batch 2/2[h05 h06]/0 par 2" {
			t.Errorf("rollout %s stages %s", ro.Strategy, describe(ro.Stages))
		}
	})
}

const blueGreenPolicy = `  strategy: blue-green
  soak: 5m
  blueGreen:
    groups: [blue, green]
    switch:
      host: lb1
      command: /usr/local/bin/lb-switch
`

func blueGreenEnv(t *testing.T) *env {
	dp := testPatch("r1")
	dp.Patch.HealthChecks = nil
	e := newEnv(t, 4, dp)
	e.policy(blueGreenPolicy)
	e.addHost("lb1")
	e.groups(map[string][]string{"blue": {"h01", "h02"}, "green": {"h03", "h04"}})
	return e
}

func TestBlueGreenPatchesIdleGroupSwitchesThenTheOld(t *testing.T) {
	e := blueGreenEnv(t)
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s", o)
	}
	calls := e.runner.taken()
	sw := indexOf(calls, "lb1", vulnzero.PhaseSwitch)
	if sw < 0 {
		t.Fatalf("no switch on lb1: %v", calls)
	}
	c := calls[sw]
	if c.Script != "/usr/local/bin/lb-switch" || c.Env["VZ_ACTIVE_GROUP"] != "green" || c.Env["VZ_PREVIOUS_GROUP"] != "blue" {
		t.Errorf("switch call = %+v", c)
	}
	for _, h := range []string{"h03", "h04"} {
		if i := indexOf(calls, h, vulnzero.PhaseVerify); i < 0 || i > sw {
			t.Errorf("green host %s verified at %d, want before the switch at %d", h, i, sw)
		}
	}
	for _, h := range []string{"h01", "h02"} {
		if i := indexOf(calls, h, vulnzero.PhaseApply); i < sw {
			t.Errorf("blue host %s applied at %d, want after the switch at %d", h, i, sw)
		}
	}
	if !slices.Equal(e.waits, []time.Duration{5 * time.Minute}) {
		t.Errorf("soaks = %v, want 5m after the switch (the rollback window)", e.waits)
	}
	ro := e.rollout(o.RolloutID)
	if ro.ActiveGroup != "green" || ro.Strategy != policies.StrategyBlueGreen {
		t.Errorf("rollout active group %q strategy %q, want green", ro.ActiveGroup, ro.Strategy)
	}
	if s := e.steps(ro.ID)["switch:green/switch"]; s.State != vulnzero.StepSucceeded {
		t.Errorf("switch step = %+v", s)
	}
}

func TestBlueGreenFailureSwitchesBackBeforeRollingBackTheNewGroup(t *testing.T) {
	e := blueGreenEnv(t)
	e.runner.set("h01", exitOn(vulnzero.PhaseVerify, 1)) // a blue host, in stage 2 (after the switch)
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack || !strings.Contains(o.Detail, "stage 2 (blue): verify failed on h01") {
		t.Fatalf("outcome = %s", o)
	}
	calls := e.runner.taken()
	var switches []string
	for _, c := range calls {
		if c.Phase == vulnzero.PhaseSwitch {
			switches = append(switches, c.Env["VZ_ACTIVE_GROUP"])
		}
	}
	if !slices.Equal(switches, []string{"green", "blue"}) {
		t.Fatalf("switches = %v, want to green, then back to blue", switches)
	}
	back := slices.IndexFunc(calls, func(c call) bool { return c.Phase == vulnzero.PhaseSwitch && c.Env["VZ_ACTIVE_GROUP"] == "blue" })
	for _, h := range []string{"h01", "h02"} {
		if i := indexOf(calls, h, vulnzero.PhaseRollback); i < 0 || i > back {
			t.Errorf("blue host %s rolled back at %d, want before the switch back at %d", h, i, back)
		}
	}
	for _, h := range []string{"h03", "h04"} {
		if i := indexOf(calls, h, vulnzero.PhaseRollback); i < back {
			t.Errorf("green host %s rolled back at %d, want after traffic left it at %d", h, i, back)
		}
	}
	if ro := e.rollout(o.RolloutID); ro.ActiveGroup != "blue" {
		t.Errorf("active group = %q, want blue (the rollback target) again", ro.ActiveGroup)
	}
	if len(e.revert.calls) != 1 {
		t.Errorf("revert calls = %d, want 1", len(e.revert.calls))
	}
}

func TestBlueGreenFailureBeforeTheSwitchNeverSwitches(t *testing.T) {
	e := blueGreenEnv(t)
	e.runner.set("h03", exitOn(vulnzero.PhaseApply, 1))
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack {
		t.Fatalf("outcome = %s", o)
	}
	calls := e.runner.taken()
	if i := slices.IndexFunc(calls, func(c call) bool { return c.Phase == vulnzero.PhaseSwitch }); i >= 0 {
		t.Errorf("switch ran (%v) though the idle group failed", calls[i])
	}
	if got := hostsCalled(calls); !slices.Equal(got, []string{"h03", "h04"}) {
		t.Errorf("hosts touched = %v, want only the idle group", got)
	}
	if ro := e.rollout(o.RolloutID); ro.ActiveGroup != "blue" {
		t.Errorf("active group = %q, want blue", ro.ActiveGroup)
	}
}

func TestStageCheckHTTPProbe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		limit     int
		failFirst int32 // 503s before 204s
		wantState vulnzero.RolloutState
		wantWaits int
	}{
		{"a flaky probe within the consecutive error limit passes", 3, 2, vulnzero.RolloutSucceeded, 2},
		{"a probe failing more times in a row than allowed fails the stage", 2, 5, vulnzero.RolloutRolledBack, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if hits.Add(1) <= tc.failFirst {
					http.Error(w, "draining", http.StatusServiceUnavailable)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			e := newEnv(t, 3, testPatch("r1"))
			e.policy(fmt.Sprintf("  strategy: all-at-once\n  consecutiveErrorLimit: %d\n  checkInterval: 7s\n  check:\n    url: %s/healthz\n    expectStatus: 204\n", tc.limit, srv.URL))
			o := onlyOutcome(t, e.runOnce())
			if o.State != tc.wantState {
				t.Fatalf("outcome = %s, want %s", o, tc.wantState)
			}
			if len(e.waits) != tc.wantWaits || e.waits[0] != 7*time.Second {
				t.Errorf("waits = %v, want %d of 7s between attempts", e.waits, tc.wantWaits)
			}
			s := e.steps(o.RolloutID)["stage:1/stage-check"]
			if tc.wantState == vulnzero.RolloutSucceeded {
				if s.State != vulnzero.StepSucceeded || !strings.Contains(s.Stdout, "503 Service Unavailable") || !strings.Contains(s.Stdout, "204 No Content") {
					t.Errorf("stage check step = %+v", s)
				}
				return
			}
			want := fmt.Sprintf("stage 1 (all): stage check: GET %s/healthz: status 503, want 204 (2 attempts in a row)", srv.URL)
			if !strings.HasPrefix(o.Detail, want) || s.State != vulnzero.StepFailed {
				t.Errorf("reason = %q\nwant %q; step %+v", o.Detail, want, s)
			}
			if got := hostsCalled(e.runner.taken()); len(got) != 3 {
				t.Errorf("hosts = %v, want all three applied then rolled back", got)
			}
		})
	}
}

func TestStageCheckCommandOnDesignatedHost(t *testing.T) {
	e := newEnv(t, 4, testPatch("r1"))
	e.addHost("lb1")
	e.policy("  stages:\n    - hosts: \"1\"\n    - hosts: \"100%\"\n      check:\n        host: lb1\n        command: curl -fsS http://vip/health\n")
	e.runner.respond = func(_ context.Context, c call) (fleet.Result, error, bool) {
		if c.Host == "lb1" {
			return fleet.Result{ExitCode: 7, Stdout: "connection refused\n"}, nil, true
		}
		return fleet.Result{}, nil, false
	}
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutRolledBack || !strings.HasPrefix(o.Detail, "stage 2 (100%): stage check: curl -fsS http://vip/health on lb1: exit status 7") {
		t.Fatalf("outcome = %s", o)
	}
	calls := e.runner.taken()
	i := indexOf(calls, "lb1", vulnzero.PhaseStageCheck)
	if i < 0 || calls[i].Env["VZ_STAGE"] != "2" || calls[i].Script != "curl -fsS http://vip/health" {
		t.Fatalf("stage check calls: %v", calls)
	}
	// The canary's stage has no check; stage 2's runs after its hosts.
	for _, h := range []string{"h02", "h03", "h04"} {
		if j := indexOf(calls, h, vulnzero.PhaseHealth); j > i {
			t.Errorf("%s health at %d after the stage check at %d", h, j, i)
		}
	}
	if got := counter(t, e.m.HostResults, "stage-check", "failed"); got != 1 {
		t.Errorf("host_results{stage-check,failed} = %v", got)
	}
}

func TestHealthCheckConsecutiveErrorLimit(t *testing.T) {
	for _, limit := range []int{1, 2} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			dp := testPatch("r1")
			dp.Patch.Rollout = &vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce, ConsecutiveErrorLimit: limit}
			e := newEnv(t, 2, dp)
			var tries atomic.Int32
			e.runner.respond = func(_ context.Context, c call) (fleet.Result, error, bool) {
				if c.Host == "h02" && c.Phase == vulnzero.PhaseHealth && tries.Add(1) == 1 {
					return fleet.Result{ExitCode: 3}, nil, true // nginx still restarting
				}
				return fleet.Result{}, nil, false
			}
			o := onlyOutcome(t, e.runOnce())
			want := vulnzero.RolloutSucceeded
			if limit == 1 {
				want = vulnzero.RolloutRolledBack
			}
			if o.State != want {
				t.Fatalf("outcome = %s, want %s", o, want)
			}
			if got := phasesOn(e.runner.taken(), "h02"); limit == 2 && got != "apply,verify,health,health" {
				t.Errorf("h02 ran %s", got)
			}
		})
	}
}

func TestPolicyHealthChecksRunAfterThePatchs(t *testing.T) {
	e := newEnv(t, 1, testPatch("r1"))
	e.policy("  healthChecks:\n    - name: system\n      command: systemctl is-system-running\n")
	if o := onlyOutcome(t, e.runOnce()); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s", o)
	}
	var scripts []string
	for _, c := range e.runner.taken() {
		if c.Phase == vulnzero.PhaseHealth {
			scripts = append(scripts, c.Script)
		}
	}
	if !slices.Equal(scripts, []string{"systemctl is-active nginx", "systemctl is-system-running"}) {
		t.Errorf("health scripts = %v", scripts)
	}
}

func TestMetricsRolloutsByStateAndMergeToFirstHost(t *testing.T) {
	e := newEnv(t, 10, testPatch("r1"))
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	e.source.set(func(d *Desired) { d.CommitTime = base.Add(-30 * time.Second) })
	if o := onlyOutcome(t, e.runOnce()); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s", o)
	}
	e.runOnce() // observes the store again
	if got := testGauge(t, e.m.RolloutsByState, "apply", "succeeded"); got != 1 {
		t.Errorf("rollouts{apply,succeeded} = %v, want 1", got)
	}
	var m dto.Metric
	if err := e.m.MergeToFirstHost.Write(&m); err != nil {
		t.Fatal(err)
	}
	h := m.GetHistogram()
	if h.GetSampleCount() != 1 || h.GetSampleSum() < 30 || h.GetSampleSum() > 60 {
		t.Errorf("merge_to_first_host: %d samples, sum %vs; want one of 30s and a few clock ticks", h.GetSampleCount(), h.GetSampleSum())
	}
}

func testGauge(t *testing.T, gv *prometheus.GaugeVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := gv.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
