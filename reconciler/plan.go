package reconciler

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
)

// Desired is the state main of the remediation repository asks for.
type Desired struct {
	Commit string // head of main
	// CommitTime is when Commit was made: for a merge, the merge time
	// (the start of the merge-to-first-host metric). Zero when unknown.
	CommitTime time.Time
	Patches    []vulnzero.DesiredPatch // every patch under patches/ at Commit
	Inventory  vulnzero.Inventory
	Policies   policies.Set
}

// Observed is what the store says happened.
type Observed struct {
	Ledger      []vulnzero.LedgerEntry
	Active      []vulnzero.Rollout // non-terminal rollouts
	Rollouts    []vulnzero.Rollout // all, for history
	Quarantined []vulnzero.Quarantine
}

// ActionKind is what the executor does for an Action.
type ActionKind string

const (
	// StartRollout: a desired revision is not applied on some target hosts
	// and no rollout for the patch is active.
	StartRollout ActionKind = "start"
	// ResumeRollout: a non-terminal rollout exists; continue it from what the
	// store recorded.
	ResumeRollout ActionKind = "resume"
	// RollbackRemoved: a revision is applied (per the ledger) on hosts where
	// main no longer wants it; run the ledger's rollback.sh there.
	RollbackRemoved ActionKind = "rollback"
	// Skip: nothing will be done for the patch; Reason says why.
	Skip ActionKind = "skip"
)

// Action is one step of a plan. Plan fills the fields that matter for its
// Kind; the rest stay zero.
type Action struct {
	Kind      ActionKind
	PatchID   string
	Revision  vulnzero.Revision
	Hosts     []string         // hosts the action touches, sorted
	Stages    []vulnzero.Stage // StartRollout: resolved stages; ResumeRollout: the rollout's
	Strategy  string
	RolloutID int64 // ResumeRollout
	Reason    string
	// ActiveGroup: StartRollout of a blue-green rollout, the group serving
	// traffic as it starts.
	ActiveGroup string
}

func (a Action) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", a.Kind, a.PatchID)
	if a.Revision != "" {
		fmt.Fprintf(&b, "@%s", a.Revision.Short())
	}
	if a.RolloutID != 0 {
		fmt.Fprintf(&b, " rollout %d", a.RolloutID)
	}
	if len(a.Hosts) > 0 {
		fmt.Fprintf(&b, " on %d host(s)", len(a.Hosts))
	}
	if len(a.Stages) > 0 {
		sizes := make([]string, len(a.Stages))
		for i, s := range a.Stages {
			sizes[i] = fmt.Sprint(len(s.Hosts))
		}
		fmt.Fprintf(&b, " in stages %s", strings.Join(sizes, "→"))
	}
	if a.Reason != "" {
		fmt.Fprintf(&b, ": %s", a.Reason)
	}
	return b.String()
}

// reasonSuperseded starts the Reason of an apply rollout abandoned because
// main moved on (its revision changed or the patch was removed). Such a
// rollout did not fail, so it does not block the same revision from being
// rolled out again if a person brings it back.
const reasonSuperseded = "superseded: "

// Plan compares desired with observed and returns what to do, in a
// deterministic order: resumptions of active rollouts first (by rollout ID),
// then one group of actions per patch (by patch ID). It is a pure function.
//
// Rules, per patch:
//   - while any rollout of the patch is active, it is resumed and nothing
//     else is planned for the patch (a Skip says so): two rollouts of one
//     patch never run at once, and the next reconcile sees their result;
//   - a quarantined revision, or one whose apply rollout already failed, is
//     skipped;
//   - targets are the inventory hosts the patch's Targets match; hosts whose
//     ledger already holds this revision as applied are not targeted again,
//     so a new revision rolls out to every target; hosts where this revision
//     failed inside a tolerated failure budget are not retried (a Skip names
//     them);
//   - a revision applied on hosts main no longer wants there — the patch left
//     main, or its revision changed and the host is no longer a target — is
//     rolled back with the rollback.sh the ledger recorded, one action per
//     (patch, revision) found in the ledger.
func Plan(d Desired, o Observed) []Action {
	var actions []Action

	active := slices.SortedFunc(slices.Values(o.Active), func(a, b vulnzero.Rollout) int { return cmp.Compare(a.ID, b.ID) })
	busy := map[string][]vulnzero.Rollout{} // patch → active rollouts
	for _, r := range active {
		busy[r.PatchID] = append(busy[r.PatchID], r)
		actions = append(actions, resumeAction(d, r))
	}

	quarantined := map[patchRev]bool{}
	for _, q := range o.Quarantined {
		quarantined[patchRev{q.PatchID, q.Revision}] = true
	}
	failed := map[patchRev]vulnzero.Rollout{}
	for _, r := range o.Rollouts {
		if r.Kind == vulnzero.RolloutApply && (r.State == vulnzero.RolloutFailed || r.State == vulnzero.RolloutRolledBack) && !strings.HasPrefix(r.Reason, reasonSuperseded) {
			failed[patchRev{r.PatchID, r.Revision}] = r
		}
	}
	ledger := map[string][]vulnzero.LedgerEntry{} // patch → entries, by host
	for _, e := range o.Ledger {
		ledger[e.PatchID] = append(ledger[e.PatchID], e)
	}
	for _, es := range ledger {
		slices.SortFunc(es, func(a, b vulnzero.LedgerEntry) int { return cmp.Compare(a.Host, b.Host) })
	}
	desired := map[string]vulnzero.DesiredPatch{}
	for _, dp := range d.Patches {
		desired[dp.Patch.ID] = dp
	}

	ids := map[string]bool{}
	for id := range desired {
		ids[id] = true
	}
	for id := range ledger {
		ids[id] = true
	}
	pols := d.Policies
	if len(pols.Rollouts) == 0 {
		pols = policies.Defaults()
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		dp, isDesired := desired[id]
		if rs := busy[id]; len(rs) > 0 {
			actions = append(actions, Action{Kind: Skip, PatchID: id, Revision: dp.Revision, Reason: fmt.Sprintf("waiting for active rollout %d", rs[0].ID)})
			continue
		}
		if !isDesired {
			actions = append(actions, rollbackActions(d.Inventory, id, ledger[id], "patch is no longer on main")...)
			continue
		}
		actions = append(actions, planDesired(d.Inventory, pols, dp, ledger[id], quarantined, failed, o.Rollouts)...)
	}
	return actions
}

type patchRev struct {
	patch string
	rev   vulnzero.Revision
}

func resumeAction(d Desired, r vulnzero.Rollout) Action {
	a := Action{Kind: ResumeRollout, PatchID: r.PatchID, Revision: r.Revision, Stages: r.Stages,
		Strategy: r.Strategy, RolloutID: r.ID, Hosts: stageHosts(r.Stages)}
	switch {
	case r.State == vulnzero.RolloutFailed && r.Kind == vulnzero.RolloutApply:
		a.Reason = "stage failed: finish rolling back touched hosts"
	case r.State == vulnzero.RolloutFailed:
		a.Reason = "retry hosts whose rollback failed"
	case r.Kind == vulnzero.RolloutRollback:
		a.Reason = "continue rolling back"
	case !wants(d, r.PatchID, r.Revision):
		a.Reason = "revision no longer on main: roll back touched hosts"
	case r.State == vulnzero.RolloutPaused:
		a.Reason = "paused by an operator"
	case r.State == vulnzero.RolloutWaiting && !r.WaitUntil.IsZero():
		a.Reason = "waiting for a maintenance window (opens " + r.WaitUntil.UTC().Format(time.RFC3339) + ")"
	case r.State == vulnzero.RolloutWaiting:
		a.Reason = "waiting for a maintenance window (none opens within a year)"
	default:
		a.Reason = fmt.Sprintf("continue at stage %d of %d", r.Stage+1, len(r.Stages))
	}
	return a
}

// wants reports whether main holds patch id at revision rev.
func wants(d Desired, id string, rev vulnzero.Revision) bool {
	for _, dp := range d.Patches {
		if dp.Patch.ID == id {
			return dp.Revision == rev
		}
	}
	return false
}

func planDesired(inv vulnzero.Inventory, pols policies.Set, dp vulnzero.DesiredPatch, entries []vulnzero.LedgerEntry,
	quarantined map[patchRev]bool, failed map[patchRev]vulnzero.Rollout, history []vulnzero.Rollout) []Action {
	id, rev := dp.Patch.ID, dp.Revision
	var targets []vulnzero.Host
	targeted := map[string]bool{}
	for _, h := range inv.Hosts {
		if dp.Patch.Targets.Matches(h) {
			targets = append(targets, h)
			targeted[h.Name] = true
		}
	}

	// Hosts holding an older revision that the new one no longer targets.
	var actions []Action
	var stale []vulnzero.LedgerEntry
	for _, e := range entries {
		if e.Revision != rev && !targeted[e.Host] {
			stale = append(stale, e)
		}
	}
	actions = append(actions, rollbackActions(inv, id, stale, "revision "+rev.Short()+" no longer targets these hosts")...)

	skip := func(format string, args ...any) []Action {
		return append(actions, Action{Kind: Skip, PatchID: id, Revision: rev, Reason: fmt.Sprintf(format, args...)})
	}
	if quarantined[patchRev{id, rev}] {
		return skip("revision is quarantined")
	}
	if r, ok := failed[patchRev{id, rev}]; ok {
		return skip("rollout %d of this revision ended %s", r.ID, r.State)
	}
	if len(targets) == 0 {
		return skip("targets match no inventory host")
	}
	// A host that failed this revision in a rollout that went on (its stage
	// tolerated the failure) is not retried: retrying would make it the
	// canary of a new rollout, whose failure would revert the patch for the
	// whole fleet. A person (or a new revision) decides.
	done := map[string]vulnzero.LedgerState{}
	var failedHosts []string
	for _, e := range entries {
		if e.Revision == rev && (e.State == vulnzero.LedgerApplied || e.State == vulnzero.LedgerFailed) && targeted[e.Host] {
			done[e.Host] = e.State
			if e.State == vulnzero.LedgerFailed {
				failedHosts = append(failedHosts, e.Host)
			}
		}
	}
	if len(failedHosts) > 0 {
		actions = append(actions, Action{Kind: Skip, PatchID: id, Revision: rev, Hosts: failedHosts,
			Reason: "revision failed on these hosts within the failure budget; not retried: " + strings.Join(failedHosts, ", ")})
	}
	var pending []string
	for _, h := range targets {
		if _, ok := done[h.Name]; !ok {
			pending = append(pending, h.Name)
		}
	}
	if len(pending) == 0 {
		return actions // up to date
	}
	slices.Sort(pending)
	spec, _ := pols.RolloutFor(dp.Patch, targets)
	live := ""
	if spec.Strategy == policies.StrategyBlueGreen {
		// Two blue-green rollouts over one pair of groups would switch
		// traffic under each other.
		if busy, ok := blueGreenBusy(history, spec.Groups); ok {
			return skip("waiting for blue-green rollout %d over groups %s", busy.ID, strings.Join(spec.Groups, " and "))
		}
		live = activeGroup(history, spec.Groups)
	}
	stages, err := ResolveStagesIn(spec, pending, inv, live)
	if err != nil {
		return skip("rollout spec: %v", err)
	}
	return append(actions, Action{Kind: StartRollout, PatchID: id, Revision: rev, Hosts: pending,
		Stages: stages, Strategy: strategyName(spec), ActiveGroup: live})
}

// activeGroup is the blue-green group serving traffic: as the latest
// blue-green rollout over these groups left it, else the first group.
func activeGroup(history []vulnzero.Rollout, groups []string) string {
	var latest vulnzero.Rollout
	for _, r := range history {
		if r.Strategy == policies.StrategyBlueGreen && slices.Contains(groups, r.ActiveGroup) && r.ID > latest.ID {
			latest = r
		}
	}
	if latest.ID != 0 {
		return latest.ActiveGroup
	}
	if len(groups) > 0 {
		return groups[0]
	}
	return ""
}

// blueGreenBusy finds a non-terminal blue-green rollout touching groups.
func blueGreenBusy(history []vulnzero.Rollout, groups []string) (vulnzero.Rollout, bool) {
	for _, r := range history {
		if r.Strategy != policies.StrategyBlueGreen || r.State.Terminal() {
			continue
		}
		if slices.Contains(groups, r.ActiveGroup) || slices.ContainsFunc(r.Stages, func(s vulnzero.Stage) bool { return slices.Contains(groups, s.Group) }) {
			return r, true
		}
	}
	return vulnzero.Rollout{}, false
}

// rollbackActions groups the ledger entries that still hold a patch on a
// host (anything but rolled_back) by revision: one RollbackRemoved per
// revision, since a rollout records one revision. Hosts missing from the
// inventory cannot be reached and get a Skip naming them.
func rollbackActions(inv vulnzero.Inventory, id string, entries []vulnzero.LedgerEntry, why string) []Action {
	byRev := map[vulnzero.Revision][]string{}
	lost := map[vulnzero.Revision][]string{}
	for _, e := range entries {
		if e.State == vulnzero.LedgerRolledBack {
			continue
		}
		if _, ok := inv.Host(e.Host); !ok {
			lost[e.Revision] = append(lost[e.Revision], e.Host)
			continue
		}
		byRev[e.Revision] = append(byRev[e.Revision], e.Host)
	}
	revs := map[vulnzero.Revision]bool{}
	for r := range byRev {
		revs[r] = true
	}
	for r := range lost {
		revs[r] = true
	}
	var actions []Action
	for _, rev := range slices.Sorted(maps.Keys(revs)) {
		if hosts := byRev[rev]; len(hosts) > 0 {
			slices.Sort(hosts)
			actions = append(actions, Action{Kind: RollbackRemoved, PatchID: id, Revision: rev, Hosts: hosts,
				Stages: []vulnzero.Stage{{Name: "all", Hosts: hosts}}, Reason: why})
		}
		if hosts := lost[rev]; len(hosts) > 0 {
			slices.Sort(hosts)
			actions = append(actions, Action{Kind: Skip, PatchID: id, Revision: rev, Hosts: hosts,
				Reason: "cannot roll back on hosts missing from the inventory: " + strings.Join(hosts, ", ")})
		}
	}
	return actions
}

func stageHosts(stages []vulnzero.Stage) []string {
	var hosts []string
	for _, s := range stages {
		hosts = append(hosts, s.Hosts...)
	}
	return hosts
}

func strategyName(spec vulnzero.RolloutSpec) string {
	if spec.Strategy == "" {
		return policies.StrategyCanary
	}
	return spec.Strategy
}
