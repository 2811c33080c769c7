package reconciler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
)

// defaultStages are the stages of the built-in RolloutPolicy (canary 1 →
// 10% → 25% → 100%), used when a spec names none. Read from the embedded
// policy so the two cannot disagree.
func defaultStages() []vulnzero.StageSpec {
	d := policies.Defaults()
	return d.Rollouts[len(d.Rollouts)-1].Stages
}

// ResolveStages turns a rollout spec into concrete stages over hosts, for
// every strategy but blue-green (which needs the inventory's groups: see
// ResolveStagesIn).
func ResolveStages(spec vulnzero.RolloutSpec, hosts []string) ([]vulnzero.Stage, error) {
	return ResolveStagesIn(spec, hosts, vulnzero.Inventory{}, "")
}

// ResolveStagesIn turns a rollout spec into concrete stages over hosts.
// Hosts are sorted first, so resolving again gives the same stages.
//
//   - all-at-once is one stage with every host (failure budget and soak from
//     the spec's last stage, if any, else the spec's own).
//   - canary reads the spec's stages (the default canary 1 → 10% → 25% →
//     100% when it has none) as cumulative targets: "1" is one host, "10%" is
//     ceil(10% of N) hosts in total, at least one; each stage gets the hosts
//     not yet covered, and stages that would add none are dropped. Hosts a
//     spec leaves uncovered (its last stage is below 100%) get a final
//     "100%" stage with the last stage's failure budget, since main wants the
//     patch on every target (Argo Rollouts promotes fully after its last
//     step the same way). The first stage — the canary — tolerates no
//     failure unless it says so; later stages without a budget take the
//     spec's.
//   - rolling cuts the hosts into batches of BatchSize (a count, or a share
//     of all hosts rounded up), each a stage with the spec's budget and
//     soak (Ansible's serial).
//   - blue-green needs the two groups of spec.Groups in inv, and live, the
//     group serving traffic now (the first group when empty or unknown).
//     Stage 1 is the idle group's hosts; once they and the stage check pass,
//     traffic switches to the idle group and the spec's soak runs while the
//     old group, untouched, is the rollback target. Stage 2 patches the old
//     group, idle by then. Stage 1 is kept even with no host of its own to
//     patch, for its switch. A host in neither group, or in both, is an
//     error: there is no safe moment to patch it.
//
// maxFailures is a count or a share of the stage's own hosts, rounded down.
// Stage-level settings (check, consecutive error limit, check interval,
// maxParallel) are a stage's own, else the spec's.
func ResolveStagesIn(spec vulnzero.RolloutSpec, hosts []string, inv vulnzero.Inventory, live string) ([]vulnzero.Stage, error) {
	hosts = slices.Compact(slices.Sorted(slices.Values(hosts)))
	if len(hosts) == 0 {
		return nil, fmt.Errorf("resolve stages: no hosts: %w", vulnzero.ErrInvalid)
	}
	var stages []vulnzero.Stage
	var err error
	switch spec.Strategy {
	case policies.StrategyAllAtOnce:
		stages, err = resolveAllAtOnce(spec, hosts)
	case "", policies.StrategyCanary:
		stages, err = resolveCanary(spec, hosts)
	case policies.StrategyRolling:
		stages, err = resolveRolling(spec, hosts)
	case policies.StrategyBlueGreen:
		stages, err = resolveBlueGreen(spec, hosts, inv, live)
	default:
		err = fmt.Errorf("resolve stages: strategy %q is not one of %s, %s, %s, %s: %w", spec.Strategy,
			policies.StrategyAllAtOnce, policies.StrategyCanary, policies.StrategyRolling, policies.StrategyBlueGreen, vulnzero.ErrInvalid)
	}
	if err != nil {
		return nil, err
	}
	return stages, nil
}

// stageSettings fills a stage's check, limits and window from its spec (when
// it has one) over the rollout spec's.
func stageSettings(st *vulnzero.Stage, spec vulnzero.RolloutSpec, ss *vulnzero.StageSpec) {
	st.MaxParallel, st.Check = spec.MaxParallel, spec.Check
	st.ConsecutiveErrorLimit, st.CheckInterval = spec.ConsecutiveErrorLimit, spec.CheckInterval
	if ss == nil {
		return
	}
	if ss.MaxParallel > 0 {
		st.MaxParallel = ss.MaxParallel
	}
	if ss.Check != nil {
		st.Check = ss.Check
	}
	if ss.ConsecutiveErrorLimit > 0 {
		st.ConsecutiveErrorLimit = ss.ConsecutiveErrorLimit
	}
	if ss.CheckInterval > 0 {
		st.CheckInterval = ss.CheckInterval
	}
}

func resolveAllAtOnce(spec vulnzero.RolloutSpec, hosts []string) ([]vulnzero.Stage, error) {
	st := vulnzero.Stage{Name: "all", Hosts: hosts, Soak: spec.Soak}
	mfSpec := spec.MaxFailures
	var last *vulnzero.StageSpec
	if n := len(spec.Stages); n > 0 {
		last = &spec.Stages[n-1]
		mfSpec = cmp.Or(last.MaxFailures, mfSpec)
		if last.Soak > 0 {
			st.Soak = last.Soak
		}
	}
	mf, err := maxFailures(mfSpec, len(hosts))
	if err != nil {
		return nil, fmt.Errorf("resolve stages: stage %d: %w", max(len(spec.Stages), 1), err)
	}
	st.MaxFailures = mf
	stageSettings(&st, spec, last)
	return []vulnzero.Stage{st}, nil
}

func resolveCanary(spec vulnzero.RolloutSpec, hosts []string) ([]vulnzero.Stage, error) {
	specs := spec.Stages
	if len(specs) == 0 {
		specs = defaultStages()
	}
	n := len(hosts)
	var stages []vulnzero.Stage
	covered := 0
	var mfSpecs []string // maxFailures of each kept stage, resolved once its hosts are final
	for i, ss := range specs {
		amount, pct, err := policies.ParseAmount(ss.Hosts)
		if err != nil {
			return nil, fmt.Errorf("resolve stages: stage %d hosts: %w: %w", i+1, err, vulnzero.ErrInvalid)
		}
		if _, _, err := parseMaxFailures(ss.MaxFailures); err != nil {
			return nil, fmt.Errorf("resolve stages: stage %d: %w", i+1, err)
		}
		target := amount
		if pct {
			target = (amount*n + 99) / 100 // ceil
			if amount > 0 && target < 1 {
				target = 1
			}
		}
		target = min(target, n)
		if target <= covered {
			continue
		}
		st := vulnzero.Stage{Name: ss.Hosts, Hosts: hosts[covered:target:target], Soak: ss.Soak}
		if st.Soak == 0 {
			st.Soak = spec.Soak
		}
		stageSettings(&st, spec, &specs[i])
		mf := ss.MaxFailures
		if mf == "" && len(stages) > 0 { // the canary tolerates nothing by default
			mf = spec.MaxFailures
		}
		stages = append(stages, st)
		mfSpecs = append(mfSpecs, mf)
		covered = target
	}
	if covered < n {
		last := specs[len(specs)-1]
		st := vulnzero.Stage{Name: "100%", Hosts: hosts[covered:]}
		stageSettings(&st, spec, &last)
		stages = append(stages, st)
		mfSpecs = append(mfSpecs, cmp.Or(last.MaxFailures, spec.MaxFailures))
	}
	for i := range stages {
		mf, err := maxFailures(mfSpecs[i], len(stages[i].Hosts))
		if err != nil {
			return nil, fmt.Errorf("resolve stages: stage %q: %w", stages[i].Name, err)
		}
		stages[i].MaxFailures = mf
	}
	return stages, nil
}

func resolveRolling(spec vulnzero.RolloutSpec, hosts []string) ([]vulnzero.Stage, error) {
	if spec.BatchSize == "" {
		return nil, fmt.Errorf("resolve stages: rolling needs a batchSize: %w", vulnzero.ErrInvalid)
	}
	amount, pct, err := policies.ParseAmount(spec.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("resolve stages: batchSize: %w: %w", err, vulnzero.ErrInvalid)
	}
	n := len(hosts)
	size := amount
	if pct {
		size = (amount*n + 99) / 100
	}
	if size < 1 {
		return nil, fmt.Errorf("resolve stages: batchSize %q is no host: %w", spec.BatchSize, vulnzero.ErrInvalid)
	}
	batches := (n + size - 1) / size
	var stages []vulnzero.Stage
	for i := range batches {
		part := hosts[i*size : min((i+1)*size, n) : min((i+1)*size, n)]
		mf, err := maxFailures(spec.MaxFailures, len(part))
		if err != nil {
			return nil, fmt.Errorf("resolve stages: %w", err)
		}
		st := vulnzero.Stage{Name: fmt.Sprintf("batch %d/%d", i+1, batches), Hosts: part, MaxFailures: mf, Soak: spec.Soak}
		stageSettings(&st, spec, nil)
		stages = append(stages, st)
	}
	return stages, nil
}

func resolveBlueGreen(spec vulnzero.RolloutSpec, hosts []string, inv vulnzero.Inventory, live string) ([]vulnzero.Stage, error) {
	g := spec.Groups
	if len(g) != 2 || g[0] == g[1] {
		return nil, fmt.Errorf("resolve stages: blue-green needs two groups, got %q: %w", g, vulnzero.ErrInvalid)
	}
	if live != g[0] && live != g[1] {
		live = g[0]
	}
	idle := g[0]
	if live == g[0] {
		idle = g[1]
	}
	var idleHosts, liveHosts, neither, both []string
	for _, h := range hosts {
		inIdle, inLive := slices.Contains(inv.Groups[idle], h), slices.Contains(inv.Groups[live], h)
		switch {
		case inIdle && inLive:
			both = append(both, h)
		case inIdle:
			idleHosts = append(idleHosts, h)
		case inLive:
			liveHosts = append(liveHosts, h)
		default:
			neither = append(neither, h)
		}
	}
	if len(both) > 0 {
		return nil, fmt.Errorf("resolve stages: blue-green: hosts in both groups %s and %s: %s: %w", idle, live, strings.Join(both, ", "), vulnzero.ErrInvalid)
	}
	if len(neither) > 0 {
		return nil, fmt.Errorf("resolve stages: blue-green: hosts in neither group %s nor %s: %s: %w", g[0], g[1], strings.Join(neither, ", "), vulnzero.ErrInvalid)
	}
	mf1, err := maxFailures(spec.MaxFailures, len(idleHosts))
	if err != nil {
		return nil, fmt.Errorf("resolve stages: %w", err)
	}
	first := vulnzero.Stage{Name: idle, Hosts: idleHosts, MaxFailures: mf1, Soak: spec.Soak, Group: idle, SwitchTo: idle, SwitchFrom: live}
	stageSettings(&first, spec, nil)
	stages := []vulnzero.Stage{first}
	if len(liveHosts) > 0 {
		mf2, err := maxFailures(spec.MaxFailures, len(liveHosts))
		if err != nil {
			return nil, fmt.Errorf("resolve stages: %w", err)
		}
		second := vulnzero.Stage{Name: live, Hosts: liveHosts, MaxFailures: mf2, Group: live}
		stageSettings(&second, spec, nil)
		stages = append(stages, second)
	}
	return stages, nil
}

func parseMaxFailures(s string) (int, bool, error) {
	if s == "" {
		return 0, false, nil
	}
	n, pct, err := policies.ParseAmount(s)
	if err != nil {
		return 0, false, fmt.Errorf("maxFailures: %w: %w", err, vulnzero.ErrInvalid)
	}
	return n, pct, nil
}

// maxFailures resolves "2" or "10%" of stageHosts (rounded down); empty is 0.
func maxFailures(s string, stageHosts int) (int, error) {
	n, pct, err := parseMaxFailures(s)
	if err != nil {
		return 0, err
	}
	if pct {
		return n * stageHosts / 100, nil
	}
	return n, nil
}
