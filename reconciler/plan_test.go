package reconciler

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
)

// web builds an inventory of hosts h1…hn labelled role=web.
func web(n int) vulnzero.Inventory {
	var inv vulnzero.Inventory
	for i := 1; i <= n; i++ {
		inv.Hosts = append(inv.Hosts, vulnzero.Host{Name: fmt.Sprintf("h%d", i), Address: "127.0.0.1", Labels: map[string]string{"role": "web"}})
	}
	return inv
}

func patch(id string, rev vulnzero.Revision, hosts ...string) vulnzero.DesiredPatch {
	t := vulnzero.Targets{Selector: map[string]string{"role": "web"}}
	if len(hosts) > 0 {
		t = vulnzero.Targets{Hosts: hosts}
	}
	return vulnzero.DesiredPatch{Revision: rev, Commit: "c0ffee", Patch: vulnzero.Patch{ID: id, Targets: t}}
}

// led is a ledger entry: "h1=r1:applied".
func led(id, spec string) vulnzero.LedgerEntry {
	host, rest, _ := strings.Cut(spec, "=")
	rev, state, _ := strings.Cut(rest, ":")
	return vulnzero.LedgerEntry{Host: host, PatchID: id, Revision: vulnzero.Revision(rev), State: vulnzero.LedgerState(state)}
}

func leds(id string, specs ...string) []vulnzero.LedgerEntry {
	var es []vulnzero.LedgerEntry
	for _, s := range specs {
		es = append(es, led(id, s))
	}
	return es
}

// summary renders an action on one line so table cases read like a plan:
// "start p1@r1 [h1 h2] stages [h1|h2]".
func summary(a Action) string {
	s := fmt.Sprintf("%s %s@%s", a.Kind, a.PatchID, a.Revision)
	if a.RolloutID != 0 {
		s += fmt.Sprintf(" #%d", a.RolloutID)
	}
	if len(a.Hosts) > 0 && a.Kind != Skip {
		s += fmt.Sprintf(" %v", a.Hosts)
	}
	if a.Kind == StartRollout {
		var parts []string
		for _, st := range a.Stages {
			parts = append(parts, strings.Join(st.Hosts, " "))
		}
		s += " stages [" + strings.Join(parts, "|") + "]"
	}
	if a.Kind == Skip || a.Kind == ResumeRollout {
		s += ": " + a.Reason
	}
	return s
}

func TestPlan(t *testing.T) {
	defaults := policies.Defaults()
	active := func(id int64, patchID string, rev vulnzero.Revision, kind vulnzero.RolloutKind, state vulnzero.RolloutState) vulnzero.Rollout {
		return vulnzero.Rollout{ID: id, PatchID: patchID, Revision: rev, Kind: kind, State: state, Stage: 1,
			Stages: []vulnzero.Stage{{Name: "1", Hosts: []string{"h1"}}, {Name: "100%", Hosts: []string{"h2", "h3", "h4"}}}}
	}
	tests := []struct {
		name    string
		desired Desired
		obs     Observed
		want    []string
	}{{
		name:    "new patch rolls out canary first",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: web(4), Policies: defaults},
		want:    []string{"start p1@r1 [h1 h2 h3 h4] stages [h1|h2 h3 h4]"},
	}, {
		name:    "already applied everywhere: nothing to do",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: web(4), Policies: defaults},
		obs:     Observed{Ledger: leds("p1", "h1=r1:applied", "h2=r1:applied", "h3=r1:applied", "h4=r1:applied")},
		want:    nil,
	}, {
		name:    "partially applied: only the rest is targeted",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: web(4), Policies: defaults},
		obs:     Observed{Ledger: leds("p1", "h1=r1:applied", "h2=r1:applied", "h4=r1:rolled_back")},
		want:    []string{"start p1@r1 [h3 h4] stages [h3|h4]"},
	}, {
		name:    "new revision of an applied patch rolls out to every target",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r2")}, Inventory: web(4), Policies: defaults},
		obs:     Observed{Ledger: leds("p1", "h1=r1:applied", "h2=r1:applied", "h3=r1:applied", "h4=r1:applied")},
		want:    []string{"start p1@r2 [h1 h2 h3 h4] stages [h1|h2 h3 h4]"},
	}, {
		name:    "new revision no longer targets some hosts: roll the old one back there",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r2", "h1", "h2")}, Inventory: web(4), Policies: defaults},
		obs:     Observed{Ledger: leds("p1", "h1=r1:applied", "h2=r1:applied", "h3=r1:applied", "h4=r1:applied")},
		want: []string{
			"rollback p1@r1 [h3 h4]",
			"start p1@r2 [h1 h2] stages [h1|h2]",
		},
	}, {
		name:    "removed patch is rolled back where the ledger holds it",
		desired: Desired{Inventory: web(4), Policies: defaults},
		obs:     Observed{Ledger: leds("p1", "h1=r1:applied", "h2=r1:failed", "h3=r1:rolled_back")},
		want:    []string{"rollback p1@r1 [h1 h2]"},
	}, {
		name:    "removed patch on a host gone from the inventory: skip that host",
		desired: Desired{Inventory: web(2), Policies: defaults},
		obs:     Observed{Ledger: leds("p1", "h1=r1:applied", "h9=r1:applied")},
		want: []string{
			"rollback p1@r1 [h1]",
			"skip p1@r1: cannot roll back on hosts missing from the inventory: h9",
		},
	}, {
		name:    "removed patch applied at two revisions: one rollback per revision",
		desired: Desired{Inventory: web(4), Policies: defaults},
		obs:     Observed{Ledger: leds("p1", "h1=r1:applied", "h2=r2:applied")},
		want:    []string{"rollback p1@r1 [h1]", "rollback p1@r2 [h2]"},
	}, {
		name:    "quarantined revision is skipped",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: web(4), Policies: defaults},
		obs:     Observed{Quarantined: []vulnzero.Quarantine{{PatchID: "p1", Revision: "r1"}}},
		want:    []string{"skip p1@r1: revision is quarantined"},
	}, {
		name:    "a rolled back rollout of this revision blocks it",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: web(4), Policies: defaults},
		obs:     Observed{Rollouts: []vulnzero.Rollout{{ID: 3, PatchID: "p1", Revision: "r1", Kind: vulnzero.RolloutApply, State: vulnzero.RolloutRolledBack}}},
		want:    []string{"skip p1@r1: rollout 3 of this revision ended rolled_back"},
	}, {
		name:    "a superseded rollout does not block its revision coming back",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1", "h1")}, Inventory: web(4), Policies: defaults},
		obs: Observed{Rollouts: []vulnzero.Rollout{{ID: 3, PatchID: "p1", Revision: "r1", Kind: vulnzero.RolloutApply,
			State: vulnzero.RolloutRolledBack, Reason: reasonSuperseded + "main no longer holds revision r1"}}},
		want: []string{"start p1@r1 [h1] stages [h1]"},
	}, {
		name:    "active rollout resumes; nothing else for its patch",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: web(4), Policies: defaults},
		obs: Observed{
			Ledger: leds("p1", "h1=r1:applied"),
			Active: []vulnzero.Rollout{active(7, "p1", "r1", vulnzero.RolloutApply, vulnzero.RolloutProgressing)},
		},
		want: []string{
			"resume p1@r1 #7 [h1 h2 h3 h4]: continue at stage 2 of 2",
			"skip p1@r1: waiting for active rollout 7",
		},
	}, {
		name:    "active rollout of a revision main dropped resumes to roll back",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r2")}, Inventory: web(4), Policies: defaults},
		obs:     Observed{Active: []vulnzero.Rollout{active(7, "p1", "r1", vulnzero.RolloutApply, vulnzero.RolloutProgressing)}},
		want: []string{
			"resume p1@r1 #7 [h1 h2 h3 h4]: revision no longer on main: roll back touched hosts",
			"skip p1@r2: waiting for active rollout 7",
		},
	}, {
		name:    "failed rollout resumes to finish its rollback",
		desired: Desired{Inventory: web(4), Policies: defaults},
		obs: Observed{
			Ledger: leds("p1", "h1=r1:failed"),
			Active: []vulnzero.Rollout{active(7, "p1", "r1", vulnzero.RolloutApply, vulnzero.RolloutFailed)},
		},
		want: []string{
			"resume p1@r1 #7 [h1 h2 h3 h4]: stage failed: finish rolling back touched hosts",
			"skip p1@: waiting for active rollout 7",
		},
	}, {
		name:    "targets match no inventory host",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1", "db9")}, Inventory: web(4), Policies: defaults},
		want:    []string{"skip p1@r1: targets match no inventory host"},
	}, {
		name:    "a host that failed within the budget is not retried",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("p1", "r1")}, Inventory: web(4), Policies: defaults},
		obs:     Observed{Ledger: leds("p1", "h1=r1:applied", "h2=r1:failed")},
		want: []string{
			"skip p1@r1: revision failed on these hosts within the failure budget; not retried: h2",
			"start p1@r1 [h3 h4] stages [h3|h4]",
		},
	}, {
		name: "resumptions first, then patches by id; empty policies mean the defaults",
		desired: Desired{Patches: []vulnzero.DesiredPatch{patch("zz", "r1", "h1"), patch("aa", "r1", "h2"), patch("p1", "r1")},
			Inventory: web(4)},
		obs: Observed{
			Ledger: leds("old", "h3=r0:applied"),
			Active: []vulnzero.Rollout{active(9, "p1", "r1", vulnzero.RolloutApply, vulnzero.RolloutProgressing),
				active(8, "gone", "r5", vulnzero.RolloutRollback, vulnzero.RolloutProgressing)},
		},
		want: []string{
			"resume gone@r5 #8 [h1 h2 h3 h4]: continue rolling back",
			"resume p1@r1 #9 [h1 h2 h3 h4]: continue at stage 2 of 2",
			"start aa@r1 [h2] stages [h2]",
			"rollback old@r0 [h3]",
			"skip p1@r1: waiting for active rollout 9",
			"start zz@r1 [h1] stages [h1]",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range Plan(tt.desired, tt.obs) {
				got = append(got, summary(a))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Plan:\n got  %s\n want %s", strings.Join(got, "\n      "), strings.Join(tt.want, "\n      "))
			}
			// Pure and deterministic: the same input gives the same plan.
			var again []string
			for _, a := range Plan(tt.desired, tt.obs) {
				again = append(again, summary(a))
			}
			if !slices.Equal(got, again) {
				t.Errorf("Plan is not deterministic:\n %v\n %v", got, again)
			}
		})
	}
}

func TestPlanUsesPatchRolloutOverride(t *testing.T) {
	dp := patch("p1", "r1")
	dp.Patch.Rollout = &vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce}
	acts := Plan(Desired{Patches: []vulnzero.DesiredPatch{dp}, Inventory: web(3), Policies: policies.Defaults()}, Observed{})
	if len(acts) != 1 || acts[0].Strategy != policies.StrategyAllAtOnce || len(acts[0].Stages) != 1 || len(acts[0].Stages[0].Hosts) != 3 {
		t.Fatalf("want one all-at-once stage of 3 hosts, got %+v", acts)
	}
}

// stageSummary renders stages as "size/maxFailures" per stage.
func stageSummary(stages []vulnzero.Stage) string {
	var parts []string
	for _, s := range stages {
		parts = append(parts, fmt.Sprintf("%d/%d", len(s.Hosts), s.MaxFailures))
	}
	return strings.Join(parts, " ")
}

func hostNames(n int) []string {
	var hs []string
	for i := n; i >= 1; i-- { // reversed on purpose: ResolveStages sorts
		hs = append(hs, fmt.Sprintf("h%03d", i))
	}
	return hs
}

func TestResolveStages(t *testing.T) {
	canary := vulnzero.RolloutSpec{Strategy: policies.StrategyCanary} // no stages: the defaults
	st := func(hosts, mf string) vulnzero.StageSpec { return vulnzero.StageSpec{Hosts: hosts, MaxFailures: mf} }
	tests := []struct {
		name  string
		spec  vulnzero.RolloutSpec
		hosts int
		want  string // size/maxFailures per stage
	}{
		{"default canary, 1 host: only the canary", canary, 1, "1/0"},
		{"default canary, 5 hosts: 10% adds none, 25% = 2 in total", canary, 5, "1/0 1/0 3/0"},
		{"default canary, 6 hosts", canary, 6, "1/0 1/0 4/0"},
		{"default canary, 10 hosts", canary, 10, "1/0 2/0 7/0"},
		{"default canary, 200 hosts: 10% of 30 and of 150 tolerated", canary, 200, "1/0 19/0 30/3 150/15"},
		{"empty strategy is canary", vulnzero.RolloutSpec{}, 10, "1/0 2/0 7/0"},
		{"all-at-once: one stage", vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce}, 7, "7/0"},
		{"all-at-once takes the last stage's budget", vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce,
			Stages: []vulnzero.StageSpec{st("1", "0"), st("100%", "20%")}}, 10, "10/2"},
		{"counts and shares mix; maxFailures is floored", vulnzero.RolloutSpec{Stages: []vulnzero.StageSpec{
			st("2", "1"), st("50%", "50%"), st("100%", "10%")}}, 10, "2/1 3/1 5/0"},
		{"a count beyond the fleet is the fleet", vulnzero.RolloutSpec{Stages: []vulnzero.StageSpec{st("5", "")}}, 3, "3/0"},
		{"a spec ending below 100% gets a final stage", vulnzero.RolloutSpec{Stages: []vulnzero.StageSpec{
			st("1", "0"), st("50%", "1")}}, 10, "1/0 4/1 5/1"},
		{"0% adds nothing", vulnzero.RolloutSpec{Stages: []vulnzero.StageSpec{st("0%", ""), st("100%", "")}}, 4, "4/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stages, err := ResolveStages(tt.spec, hostNames(tt.hosts))
			if err != nil {
				t.Fatal(err)
			}
			if got := stageSummary(stages); got != tt.want {
				t.Errorf("stages = %s, want %s", got, tt.want)
			}
			// Every host exactly once, in sorted order across stages.
			var all []string
			for _, s := range stages {
				all = append(all, s.Hosts...)
			}
			want := slices.Sorted(slices.Values(hostNames(tt.hosts)))
			if !slices.Equal(all, want) {
				t.Errorf("hosts across stages = %v, want %v", all, want)
			}
		})
	}
}

func TestResolveStagesHostsAndSoak(t *testing.T) {
	spec := vulnzero.RolloutSpec{Stages: []vulnzero.StageSpec{{Hosts: "1", Soak: 10 * time.Minute}, {Hosts: "25%"}, {Hosts: "100%"}}}
	stages, err := ResolveStages(spec, []string{"e", "c", "a", "d", "b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(stages[0].Hosts) + fmt.Sprint(stages[1].Hosts) + fmt.Sprint(stages[2].Hosts)
	if got != "[a][b][c d e]" {
		t.Errorf("stage hosts = %s, want [a][b][c d e] (sorted, deduplicated, cumulative)", got)
	}
	if stages[0].Soak != 10*time.Minute || stages[0].Name != "1" || stages[2].Name != "100%" {
		t.Errorf("stage 1 = %+v, stage 3 = %+v: want soak and names kept", stages[0], stages[2])
	}
}

func TestResolveStagesErrors(t *testing.T) {
	tests := []struct {
		name  string
		spec  vulnzero.RolloutSpec
		hosts []string
		want  string
	}{
		{"no hosts", vulnzero.RolloutSpec{}, nil, "no hosts"},
		{"bad amount", vulnzero.RolloutSpec{Stages: []vulnzero.StageSpec{{Hosts: "ten"}}}, []string{"a"}, "stage 1 hosts"},
		{"bad maxFailures", vulnzero.RolloutSpec{Stages: []vulnzero.StageSpec{{Hosts: "1"}, {Hosts: "100%", MaxFailures: "lots"}}}, []string{"a"}, "stage 2: maxFailures"},
		{"unknown strategy", vulnzero.RolloutSpec{Strategy: "yolo"}, []string{"a"}, `strategy "yolo"`},
		{"blue-green without groups", vulnzero.RolloutSpec{Strategy: "blue-green"}, []string{"a"}, `blue-green needs two groups`},
		{"rolling without a batch size", vulnzero.RolloutSpec{Strategy: "rolling"}, []string{"a"}, `rolling needs a batchSize`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResolveStages(tt.spec, tt.hosts)
			if !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}
