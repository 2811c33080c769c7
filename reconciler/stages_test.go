package reconciler

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
)

// describe renders stages so table cases read like a plan:
// "name[hosts]/maxFailures" joined by " | ", with soak, parallelism, check
// and switch when set.
func describe(stages []vulnzero.Stage) string {
	var parts []string
	for _, s := range stages {
		p := fmt.Sprintf("%s[%s]/%d", s.Name, strings.Join(s.Hosts, " "), s.MaxFailures)
		if s.Soak > 0 {
			p += " soak " + s.Soak.String()
		}
		if s.MaxParallel > 0 {
			p += fmt.Sprintf(" par %d", s.MaxParallel)
		}
		if s.Check != nil {
			p += " check"
			if s.ConsecutiveErrorLimit > 0 {
				p += fmt.Sprintf("×%d", s.ConsecutiveErrorLimit)
			}
		}
		if s.SwitchTo != "" {
			p += " switch " + s.SwitchFrom + "→" + s.SwitchTo
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " | ")
}

func names(n int) []string {
	var hs []string
	for i := n; i >= 1; i-- {
		hs = append(hs, fmt.Sprintf("h%d", i))
	}
	return hs
}

func TestResolveStrategies(t *testing.T) {
	probe := &vulnzero.StageCheck{URL: "http://lb/healthz"}
	bgInv := vulnzero.Inventory{Groups: map[string][]string{"blue": {"h1", "h2"}, "green": {"h3", "h4"}}}
	bg := vulnzero.RolloutSpec{Strategy: policies.StrategyBlueGreen, Groups: []string{"blue", "green"}, MaxFailures: "50%",
		Soak: 15 * time.Minute, Check: probe, ConsecutiveErrorLimit: 3}
	tests := []struct {
		name  string
		spec  vulnzero.RolloutSpec
		hosts []string
		inv   vulnzero.Inventory
		live  string
		want  string
	}{{
		name:  "rolling: batches of a count, the last one short",
		spec:  vulnzero.RolloutSpec{Strategy: policies.StrategyRolling, BatchSize: "3", MaxFailures: "1", MaxParallel: 2, Soak: time.Minute},
		hosts: names(7),
		want:  "batch 1/3[h1 h2 h3]/1 soak 1m0s par 2 | batch 2/3[h4 h5 h6]/1 soak 1m0s par 2 | batch 3/3[h7]/1 soak 1m0s par 2",
	}, {
		name:  "rolling: a share of the fleet is rounded up; maxFailures is a share of each batch",
		spec:  vulnzero.RolloutSpec{Strategy: policies.StrategyRolling, BatchSize: "25%", MaxFailures: "50%"},
		hosts: names(6),
		want:  "batch 1/3[h1 h2]/1 | batch 2/3[h3 h4]/1 | batch 3/3[h5 h6]/1",
	}, {
		name:  "rolling: a batch larger than the fleet is one batch",
		spec:  vulnzero.RolloutSpec{Strategy: policies.StrategyRolling, BatchSize: "10"},
		hosts: names(3),
		want:  "batch 1/1[h1 h2 h3]/0",
	}, {
		name: "canary: the canary tolerates nothing unless it says so; later stages take the spec's budget",
		spec: vulnzero.RolloutSpec{Strategy: policies.StrategyCanary, MaxFailures: "1", Stages: []vulnzero.StageSpec{
			{Hosts: "1"}, {Hosts: "50%"}, {Hosts: "100%", MaxFailures: "0"}}},
		hosts: names(6),
		want:  "1[h1]/0 | 50%[h2 h3]/1 | 100%[h4 h5 h6]/0",
	}, {
		name: "canary: stage settings over the spec's",
		spec: vulnzero.RolloutSpec{MaxParallel: 5, Check: probe, ConsecutiveErrorLimit: 2, Stages: []vulnzero.StageSpec{
			{Hosts: "1", Soak: 10 * time.Minute, MaxParallel: 1}, {Hosts: "100%", ConsecutiveErrorLimit: 4}}},
		hosts: names(4),
		want:  "1[h1]/0 soak 10m0s par 1 check×2 | 100%[h2 h3 h4]/0 par 5 check×4",
	}, {
		name:  "all-at-once: the spec's budget and soak",
		spec:  vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce, MaxFailures: "25%", Soak: time.Minute},
		hosts: names(8),
		want:  "all[h1 h2 h3 h4 h5 h6 h7 h8]/2 soak 1m0s",
	}, {
		name:  "blue-green, blue live: patch green, switch, soak, then blue",
		spec:  bg,
		hosts: names(4),
		inv:   bgInv,
		live:  "blue",
		want:  "green[h3 h4]/1 soak 15m0s check×3 switch blue→green | blue[h1 h2]/1 check×3",
	}, {
		name:  "blue-green, green live: the other way round",
		spec:  bg,
		hosts: names(4),
		inv:   bgInv,
		live:  "green",
		want:  "blue[h1 h2]/1 soak 15m0s check×3 switch green→blue | green[h3 h4]/1 check×3",
	}, {
		name:  "blue-green, unknown live group: the first group is live",
		spec:  bg,
		hosts: names(4),
		inv:   bgInv,
		want:  "green[h3 h4]/1 soak 15m0s check×3 switch blue→green | blue[h1 h2]/1 check×3",
	}, {
		name:  "blue-green, idle group already patched: still switch before patching the live one",
		spec:  bg,
		hosts: []string{"h1", "h2"},
		inv:   bgInv,
		live:  "blue",
		want:  "green[]/0 soak 15m0s check×3 switch blue→green | blue[h1 h2]/1 check×3",
	}, {
		name:  "blue-green, only the idle group pending: one stage and the switch",
		spec:  bg,
		hosts: []string{"h3"},
		inv:   bgInv,
		live:  "blue",
		want:  "green[h3]/0 soak 15m0s check×3 switch blue→green",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stages, err := ResolveStagesIn(tc.spec, tc.hosts, tc.inv, tc.live)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(stages); got != tc.want {
				t.Errorf("stages:\n got  %s\n want %s", got, tc.want)
			}
		})
	}
}

func TestResolveBlueGreenErrors(t *testing.T) {
	spec := vulnzero.RolloutSpec{Strategy: policies.StrategyBlueGreen, Groups: []string{"blue", "green"}}
	inv := vulnzero.Inventory{Groups: map[string][]string{"blue": {"h1", "h2"}, "green": {"h2", "h3"}}}
	for _, tc := range []struct {
		hosts []string
		want  string
	}{
		{[]string{"h1", "h2"}, "hosts in both groups green and blue: h2"},
		{[]string{"h1", "h9"}, "hosts in neither group blue nor green: h9"},
	} {
		_, err := ResolveStagesIn(spec, tc.hosts, inv, "blue")
		if !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("hosts %v: err = %v, want ErrInvalid mentioning %q", tc.hosts, err, tc.want)
		}
	}
}

func TestPlanBlueGreen(t *testing.T) {
	pols, err := policies.Parse(map[string][]byte{"policies/bg.yaml": []byte(`apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: bg
spec:
  strategy: blue-green
  blueGreen:
    groups: [blue, green]
    switch: {host: lb, command: switch}
`)})
	if err != nil {
		t.Fatal(err)
	}
	inv := web(4)
	inv.Groups = map[string][]string{"blue": {"h1", "h2"}, "green": {"h3", "h4"}}
	d := Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: inv, Policies: pols}
	bgRollout := func(id int64, patchID string, state vulnzero.RolloutState, active string) vulnzero.Rollout {
		return vulnzero.Rollout{ID: id, PatchID: patchID, Revision: "r0", Kind: vulnzero.RolloutApply, Strategy: policies.StrategyBlueGreen,
			State: state, ActiveGroup: active, Stages: []vulnzero.Stage{{Name: "green", Group: "green", SwitchTo: "green"}, {Name: "blue", Group: "blue"}}}
	}
	tests := []struct {
		name    string
		history []vulnzero.Rollout
		want    string
	}{
		{"no history: blue is live, green goes first", nil, "start p1@r1 [h1 h2 h3 h4] stages [h3 h4|h1 h2] live blue"},
		{"the latest blue-green rollout left green live", []vulnzero.Rollout{bgRollout(1, "p0", vulnzero.RolloutSucceeded, "blue"),
			bgRollout(2, "p9", vulnzero.RolloutRolledBack, "green")}, "start p1@r1 [h1 h2 h3 h4] stages [h1 h2|h3 h4] live green"},
		{"another blue-green rollout over the groups is going: wait", []vulnzero.Rollout{bgRollout(5, "p9", vulnzero.RolloutWaiting, "blue")},
			"skip p1@r1: waiting for blue-green rollout 5 over groups blue and green"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range Plan(d, Observed{Rollouts: tc.history}) {
				s := summary(a)
				if a.ActiveGroup != "" {
					s += " live " + a.ActiveGroup
				}
				got = append(got, s)
			}
			if strings.Join(got, "\n") != tc.want {
				t.Errorf("plan:\n got  %s\n want %s", strings.Join(got, "\n"), tc.want)
			}
		})
	}
}

func TestPlanResumeReasons(t *testing.T) {
	d := Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: web(2), Policies: policies.Defaults()}
	at := time.Date(2025, 3, 1, 22, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ro   vulnzero.Rollout
		want string
	}{
		{vulnzero.Rollout{ID: 1, PatchID: "p1", Revision: "r1", Kind: vulnzero.RolloutApply, State: vulnzero.RolloutPaused}, "paused by an operator"},
		{vulnzero.Rollout{ID: 1, PatchID: "p1", Revision: "r1", Kind: vulnzero.RolloutApply, State: vulnzero.RolloutWaiting, WaitUntil: at},
			"waiting for a maintenance window (opens 2025-03-01T22:00:00Z)"},
	} {
		acts := Plan(d, Observed{Active: []vulnzero.Rollout{tc.ro}})
		if len(acts) == 0 || acts[0].Kind != ResumeRollout || acts[0].Reason != tc.want {
			t.Errorf("%s: plan %v, want a resumption saying %q", tc.ro.State, acts, tc.want)
		}
	}
}
