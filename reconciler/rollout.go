package reconciler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/policies"
)

// hostFailure is why one host counted as a failure in a stage.
type hostFailure struct {
	Host  string
	Phase vulnzero.Phase
	Err   string
}

func (f hostFailure) String() string {
	return fmt.Sprintf("%s failed on %s: %s", f.Phase, f.Host, f.Err)
}

// execute runs one action and reports where its rollout ended.
func (r *Reconciler) execute(ctx context.Context, des Desired, a Action) Outcome {
	o := Outcome{Action: a}
	var ro vulnzero.Rollout
	var err error
	switch a.Kind {
	case Skip:
		r.log.Info("skip", "patch", a.PatchID, "revision", a.Revision.Short(), "reason", a.Reason)
		o.Detail = a.Reason
		return o
	case StartRollout:
		dp, ok := desiredPatch(des, a.PatchID, a.Revision)
		if !ok { // Plan only starts desired revisions
			o.Err = fmt.Errorf("start rollout of %s@%s: revision not desired: %w", a.PatchID, a.Revision.Short(), vulnzero.ErrNotFound)
			return o
		}
		ro, err = r.create(ctx, vulnzero.Rollout{PatchID: a.PatchID, Revision: a.Revision, Commit: cmp.Or(dp.Commit, des.Commit),
			Kind: vulnzero.RolloutApply, Strategy: a.Strategy, Stages: a.Stages, Reason: a.Reason, ActiveGroup: a.ActiveGroup})
		if err == nil {
			if !des.CommitTime.IsZero() {
				r.firstCmd.Store(ro.ID, des.CommitTime)
			}
			err = r.runApply(ctx, des, &ro)
			r.firstCmd.Delete(ro.ID)
		}
	case RollbackRemoved:
		ro, err = r.create(ctx, vulnzero.Rollout{PatchID: a.PatchID, Revision: a.Revision, Commit: des.Commit,
			Kind: vulnzero.RolloutRollback, Strategy: policies.StrategyAllAtOnce, Stages: a.Stages, Reason: a.Reason})
		if err == nil {
			err = r.runRollback(ctx, des, &ro)
		}
	case ResumeRollout:
		ro, err = r.cfg.Store.GetRollout(ctx, a.RolloutID)
		if err != nil {
			err = fmt.Errorf("resume rollout %d: %w", a.RolloutID, err)
			break
		}
		r.log.Info("resume rollout", "rollout", ro.ID, "patch", ro.PatchID, "state", ro.State, "stage", ro.Stage)
		switch {
		case ro.State.Terminal():
		case ro.Kind == vulnzero.RolloutRollback:
			err = r.runRollback(ctx, des, &ro)
		default:
			err = r.runApply(ctx, des, &ro)
		}
	default:
		err = fmt.Errorf("action %q: unknown kind: %w", a.Kind, vulnzero.ErrInvalid)
	}
	o.RolloutID, o.State, o.Detail, o.Err = ro.ID, ro.State, ro.Reason, err
	if ro.State == vulnzero.RolloutWaiting {
		o.WaitUntil = ro.WaitUntil
	}
	return o
}

func desiredPatch(des Desired, id string, rev vulnzero.Revision) (vulnzero.DesiredPatch, bool) {
	for _, dp := range des.Patches {
		if dp.Patch.ID == id && dp.Revision == rev {
			return dp, true
		}
	}
	return vulnzero.DesiredPatch{}, false
}

// create records a new rollout in state progressing.
func (r *Reconciler) create(ctx context.Context, ro vulnzero.Rollout) (vulnzero.Rollout, error) {
	now := r.cfg.Now()
	ro.State, ro.CreatedAt, ro.UpdatedAt = vulnzero.RolloutProgressing, now, now
	ro, err := r.cfg.Store.CreateRollout(ctx, ro)
	if err != nil {
		return ro, fmt.Errorf("create %s rollout of %s@%s: %w", ro.Kind, ro.PatchID, ro.Revision.Short(), err)
	}
	r.m.Rollouts.WithLabelValues(string(ro.Kind), string(ro.State)).Inc()
	r.log.Info("rollout started", "rollout", ro.ID, "patch", ro.PatchID, "revision", ro.Revision.Short(), "kind", ro.Kind, "stages", len(ro.Stages))
	return ro, nil
}

// save writes the rollout; when its state changed, it counts the new state.
func (r *Reconciler) save(ctx context.Context, ro *vulnzero.Rollout, prev vulnzero.RolloutState) error {
	ro.UpdatedAt = r.cfg.Now()
	if err := r.cfg.Store.UpdateRollout(ctx, *ro); err != nil {
		return fmt.Errorf("record rollout %d (%s): %w", ro.ID, ro.State, err)
	}
	if ro.State != prev {
		r.m.Rollouts.WithLabelValues(string(ro.Kind), string(ro.State)).Inc()
	}
	return nil
}

// rolloutEnv is what main says now about how a rollout runs: the policy
// (windows, blue-green switch, reboot, revert mode, extra health checks)
// and whether the patch takes the emergency lane. It is read at every
// resume, so a freeze committed to main stops a rollout already going.
type rolloutEnv struct {
	pol policies.RolloutPolicy
	par int // SSH sessions per stage unless the stage says otherwise
	// emergency names the KEV-listed CVE that puts the patch in the
	// emergency lane (allow windows lifted); empty when it is not.
	emergency string
}

func (r *Reconciler) policySet(des Desired) policies.Set {
	if len(des.Policies.Rollouts) == 0 {
		return policies.Defaults()
	}
	return des.Policies
}

func (r *Reconciler) envFor(des Desired, dp vulnzero.DesiredPatch) rolloutEnv {
	spec, pol := r.policySet(des).RolloutFor(dp.Patch, targetHosts(des.Inventory, dp.Patch))
	e := rolloutEnv{pol: pol, par: cmp.Or(max(spec.MaxParallel, 0), DefaultMaxParallel)}
	if pol.Emergency.KEV && r.cfg.KEV != nil {
		for _, cve := range dp.Patch.CVEs {
			if r.cfg.KEV.Listed(cve) {
				e.emergency = cve
				break
			}
		}
	}
	return e
}

// envForHosts is the environment of a rollout whose patch main no longer
// holds: the policy its hosts select (no patch overrides, no lane).
func (r *Reconciler) envForHosts(des Desired, names []string) rolloutEnv {
	var hosts []vulnzero.Host
	for _, n := range names {
		if h, ok := des.Inventory.Host(n); ok {
			hosts = append(hosts, h)
		}
	}
	spec, pol := r.policySet(des).RolloutFor(vulnzero.Patch{}, hosts)
	return rolloutEnv{pol: pol, par: cmp.Or(max(spec.MaxParallel, 0), DefaultMaxParallel)}
}

// window says whether a change may start on host now, and if not, when it
// may (zero: not within a year).
func (e rolloutEnv) window(inv vulnzero.Inventory, host string, now time.Time) (bool, time.Time) {
	ws := e.pol.WindowsFor(host, inv)
	if e.emergency != "" {
		ws = ws.DenyOnly()
	}
	if ws.Open(now) {
		return true, time.Time{}
	}
	next, _ := ws.NextOpen(now)
	return false, next
}

// runApply drives an apply rollout from wherever the store says it is:
//
//	an operator aborted it → roll back the touched hosts (abort);
//	an operator paused it → record paused and return;
//	progressing or waiting, stage i → run stage i (hosts already applied are
//	    skipped; hosts outside their maintenance window are deferred, and
//	    the rollout waits for the window); every host done, failures within
//	    budget → stage check, blue-green switch, soak, record stage i+1 (or
//	    succeeded); over budget → record failed, then finishFailed;
//	failed → finishFailed (roll back, revert, quarantine, notify), or
//	    finishAborted when an operator aborted it;
//	revision no longer on main → supersede (roll back touched hosts).
//
// An error leaves the rollout where it was recorded; the next reconcile
// resumes it.
func (r *Reconciler) runApply(ctx context.Context, des Desired, ro *vulnzero.Rollout) error {
	if ro.State == vulnzero.RolloutFailed {
		if strings.HasPrefix(ro.Reason, reasonAborted) {
			return r.finishAborted(ctx, des, ro)
		}
		return r.finishFailed(ctx, des, ro)
	}
	dp, ok := desiredPatch(des, ro.PatchID, ro.Revision)
	if !ok {
		return r.supersede(ctx, des, ro)
	}
	env := r.envFor(des, dp)
	if env.emergency != "" && len(env.pol.Windows) > 0 {
		r.log.Info("emergency lane: allow windows lifted", "rollout", ro.ID, "patch", ro.PatchID, "kev", env.emergency)
	}
	for {
		ctl, err := r.control(ctx, ro.ID)
		if err != nil {
			return err
		}
		switch {
		case ctl.Aborted:
			return r.abort(ctx, des, ro, ctl)
		case ctl.Paused:
			return r.pause(ctx, ro, ctl)
		case ro.State == vulnzero.RolloutPaused:
			prev := ro.State
			ro.State = vulnzero.RolloutProgressing
			r.log.Info("rollout resumed", "rollout", ro.ID, "patch", ro.PatchID, "by", ctl.By)
			if err := r.save(ctx, ro, prev); err != nil {
				return err
			}
		}
		done, err := r.runStages(ctx, des, dp, ro, env)
		if done || err != nil {
			return err
		}
		// An operator's request stopped the stage: read it again.
	}
}

// runStages runs the rollout's stages from the current one. done is false
// when an operator's pause or abort interrupted it (nothing was recorded
// for the interruption yet); otherwise the rollout is where the next
// reconcile should find it.
func (r *Reconciler) runStages(ctx context.Context, des Desired, dp vulnzero.DesiredPatch, ro *vulnzero.Rollout, env rolloutEnv) (done bool, err error) {
	for ro.Stage < len(ro.Stages) {
		st := ro.Stages[ro.Stage]
		res, err := r.applyStage(ctx, des, dp, ro, st, env)
		if err != nil {
			return true, err
		}
		if len(res.fails) > st.MaxFailures {
			return true, r.fail(ctx, des, ro, stageFailure(ro.Stage, st, res.fails))
		}
		if res.interrupted {
			return false, nil
		}
		if len(res.deferred) > 0 {
			return true, r.wait(ctx, ro, res)
		}
		if len(res.fails) > 0 {
			r.log.Warn("stage failures within budget", "rollout", ro.ID, "patch", ro.PatchID, "stage", ro.Stage+1,
				"failures", len(res.fails), "max_failures", st.MaxFailures)
		}
		if st.Check != nil {
			f, err := r.stageCheck(ctx, des, ro, st)
			if err != nil {
				return true, err
			}
			if f != nil {
				return true, r.fail(ctx, des, ro, fmt.Sprintf("stage %d (%s): %s", ro.Stage+1, st.Name, f.Err))
			}
		}
		if st.SwitchTo != "" && ro.ActiveGroup != st.SwitchTo {
			f, err := r.switchTraffic(ctx, des, ro, env, st.SwitchFrom, st.SwitchTo)
			if err != nil {
				return true, err
			}
			if f != nil {
				return true, r.fail(ctx, des, ro, fmt.Sprintf("stage %d (%s): %s", ro.Stage+1, st.Name, f.Err))
			}
		}
		if st.Soak > 0 {
			interrupted, err := r.soak(ctx, ro, st)
			if err != nil {
				return true, err
			}
			if interrupted {
				return false, nil
			}
		}
		prev := ro.State
		ro.WaitUntil = time.Time{}
		if ro.State == vulnzero.RolloutWaiting {
			ro.State, ro.Reason = vulnzero.RolloutProgressing, ""
		}
		if ro.Stage == len(ro.Stages)-1 {
			ro.State = vulnzero.RolloutSucceeded
		} else {
			ro.Stage++
		}
		if err := r.save(ctx, ro, prev); err != nil {
			return true, err
		}
		if ro.State == vulnzero.RolloutSucceeded {
			r.log.Info("rollout succeeded", "rollout", ro.ID, "patch", ro.PatchID, "revision", ro.Revision.Short())
			return true, nil
		}
	}
	// No stage left to run (a rollout recorded without stages): nothing can
	// fail any more, so it is done rather than resumed forever.
	prev := ro.State
	ro.State = vulnzero.RolloutSucceeded
	return true, r.save(ctx, ro, prev)
}

// fail records a stage failure, tells people, and rolls back.
func (r *Reconciler) fail(ctx context.Context, des Desired, ro *vulnzero.Rollout, reason string) error {
	prev := ro.State
	ro.State, ro.Reason, ro.WaitUntil = vulnzero.RolloutFailed, reason, time.Time{}
	r.log.Warn("rollout stage failed", "rollout", ro.ID, "patch", ro.PatchID, "stage", ro.Stage+1, "reason", ro.Reason)
	if err := r.save(ctx, ro, prev); err != nil {
		return err
	}
	r.notify(ctx, EventStageFailed, *ro)
	return r.finishFailed(ctx, des, ro)
}

// waitingPrefix starts the Reason of a rollout waiting for a window.
const waitingPrefix = "waiting: "

// wait records that the rollout waits for a maintenance window. Nothing is
// written when it already waited for the same time (every poll resumes a
// waiting rollout).
func (r *Reconciler) wait(ctx context.Context, ro *vulnzero.Rollout, res stageResult) error {
	hosts := res.deferred
	if len(hosts) > 5 {
		hosts = append(slices.Clone(hosts[:5]), fmt.Sprintf("and %d more", len(res.deferred)-5))
	}
	reason := waitingPrefix + fmt.Sprintf("%d host(s) outside their maintenance window: %s", len(res.deferred), strings.Join(hosts, ", "))
	if res.nextOpen.IsZero() {
		reason += " (no window opens within a year)"
	}
	if ro.State == vulnzero.RolloutWaiting && ro.WaitUntil.Equal(res.nextOpen) && ro.Reason == reason {
		return nil
	}
	prev := ro.State
	ro.State, ro.WaitUntil, ro.Reason = vulnzero.RolloutWaiting, res.nextOpen, reason
	r.log.Info("rollout waiting for a maintenance window", "rollout", ro.ID, "patch", ro.PatchID, "stage", ro.Stage+1,
		"hosts", len(res.deferred), "next", res.nextOpen)
	return r.save(ctx, ro, prev)
}

// pause records that an operator paused the rollout. A waiting rollout
// forgets its window (it is looked up again on resume); a soaking one keeps
// the end of its soak.
func (r *Reconciler) pause(ctx context.Context, ro *vulnzero.Rollout, ctl Control) error {
	if ro.State == vulnzero.RolloutPaused {
		return nil
	}
	prev := ro.State
	if prev == vulnzero.RolloutWaiting {
		ro.WaitUntil, ro.Reason = time.Time{}, ""
	}
	ro.State = vulnzero.RolloutPaused
	r.log.Info("rollout paused", "rollout", ro.ID, "patch", ro.PatchID, "stage", ro.Stage+1, "by", ctl.By)
	return r.save(ctx, ro, prev)
}

// abort records an operator's abort (state failed, reason "aborted by
// operator …") and rolls back; a restart in the middle resumes in
// finishAborted.
func (r *Reconciler) abort(ctx context.Context, des Desired, ro *vulnzero.Rollout, ctl Control) error {
	prev := ro.State
	ro.State, ro.WaitUntil = vulnzero.RolloutFailed, time.Time{}
	ro.Reason = reasonAborted + ctl.describe() + fmt.Sprintf(" in stage %d of %d", min(ro.Stage+1, len(ro.Stages)), len(ro.Stages))
	r.log.Warn("rollout aborted", "rollout", ro.ID, "patch", ro.PatchID, "by", ctl.By)
	if err := r.save(ctx, ro, prev); err != nil {
		return err
	}
	return r.finishAborted(ctx, des, ro)
}

// finishAborted rolls back every host an aborted rollout touched and ends
// it rolled_back. Unlike a failure it writes no revert and quarantines
// nothing: a person stopped it, nothing was proven wrong. Plan does not
// start the revision again (its rollout ended rolled_back) until main
// changes it.
func (r *Reconciler) finishAborted(ctx context.Context, des Desired, ro *vulnzero.Rollout) error {
	timeout := DefaultRollbackTimeout
	if dp, ok := desiredPatch(des, ro.PatchID, ro.Revision); ok {
		timeout = cmp.Or(dp.Patch.Timeouts.Rollback, timeout)
	}
	fails, err := r.rollbackTouched(ctx, des, ro, timeout)
	if err != nil {
		return err
	}
	if len(fails) > 0 && !strings.Contains(ro.Reason, "; rollback ") {
		ro.Reason += "; rollback " + joinFailures(fails)
	}
	prev := ro.State
	ro.State = vulnzero.RolloutRolledBack
	if len(fails) > 0 {
		r.notify(ctx, EventRollbackFailed, *ro)
	}
	r.notify(ctx, EventAborted, *ro)
	if err := r.save(ctx, ro, prev); err != nil {
		return err
	}
	r.m.Rollbacks.WithLabelValues("aborted").Inc()
	return nil
}

// soak waits a stage's soak time. Its end is recorded first (WaitUntil), so
// a restarted reconciler waits only what is left. An operator's pause or
// abort cuts it short (interrupted).
func (r *Reconciler) soak(ctx context.Context, ro *vulnzero.Rollout, st vulnzero.Stage) (interrupted bool, err error) {
	d := st.Soak
	if ro.WaitUntil.IsZero() {
		ro.WaitUntil = r.cfg.Now().Add(d)
		if err := r.save(ctx, ro, ro.State); err != nil {
			return false, err
		}
	} else {
		d = ro.WaitUntil.Sub(r.cfg.Now())
	}
	if d <= 0 {
		return false, nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := r.watchControl(wctx, ro.ID, cancel)
	err = r.cfg.Wait(wctx, d)
	stop()
	switch {
	case ctx.Err() != nil:
		return false, fmt.Errorf("soak rollout %d stage %d: %w", ro.ID, ro.Stage+1, ctx.Err())
	case wctx.Err() != nil:
		return true, nil
	case err != nil:
		return false, fmt.Errorf("soak rollout %d stage %d: %w", ro.ID, ro.Stage+1, err)
	}
	return false, nil
}

// stageFailure names the stage, and the first failed host and phase.
func stageFailure(i int, st vulnzero.Stage, fails []hostFailure) string {
	s := fmt.Sprintf("stage %d (%s): %s", i+1, st.Name, fails[0])
	if len(fails) > 1 {
		s += fmt.Sprintf(" (and %d more host(s); %d allowed)", len(fails)-1, st.MaxFailures)
	}
	return s
}

func targetHosts(inv vulnzero.Inventory, p vulnzero.Patch) []vulnzero.Host {
	var hs []vulnzero.Host
	for _, h := range inv.Hosts {
		if p.Targets.Matches(h) {
			hs = append(hs, h)
		}
	}
	return hs
}

// stageResult is how a stage's dispatch ended.
type stageResult struct {
	fails []hostFailure // sorted by host
	// deferred are hosts not started because their maintenance window is
	// closed; nextOpen is the earliest time one of them may start (zero:
	// none within a year).
	deferred []string
	nextOpen time.Time
	// interrupted: an operator paused or aborted the rollout, so no more
	// hosts were dispatched.
	interrupted bool
}

// applyStage applies the revision on a stage's hosts, at most MaxParallel
// at once (a sliding window: a host starts as soon as a slot frees). Before
// each host starts it checks, in order: the failure budget (once exceeded,
// no new host is dispatched), the operator's requests, and the host's
// maintenance window (closed: the host is deferred). Hosts in flight always
// finish. A host that already has a recorded step finishes whatever its
// window says — it is mid-change.
func (r *Reconciler) applyStage(ctx context.Context, des Desired, dp vulnzero.DesiredPatch, ro *vulnzero.Rollout, st vulnzero.Stage, env rolloutEnv) (stageResult, error) {
	var res stageResult
	steps, ledger, err := r.recorded(ctx, ro)
	if err != nil {
		return res, err
	}
	var remaining []string
	for _, h := range st.Hosts {
		if le := ledger[h]; le == nil || le.Revision != ro.Revision || le.State != vulnzero.LedgerApplied {
			remaining = append(remaining, h)
		}
	}
	mayStart := func(h string) (bool, time.Time) {
		if len(steps[h]) > 0 {
			return true, time.Time{}
		}
		return env.window(des.Inventory, h, r.cfg.Now())
	}
	// Leave waiting only for a host that will really run now (one whose
	// failure is already recorded runs nothing).
	runsNow := func(h string) bool {
		for _, s := range steps[h] {
			if s.State == vulnzero.StepFailed {
				return false
			}
		}
		ok, _ := mayStart(h)
		return ok
	}
	if ro.State == vulnzero.RolloutWaiting && slices.ContainsFunc(remaining, runsNow) {
		prev := ro.State
		ro.State, ro.WaitUntil, ro.Reason = vulnzero.RolloutProgressing, time.Time{}, ""
		r.log.Info("maintenance window open", "rollout", ro.ID, "patch", ro.PatchID, "stage", ro.Stage+1)
		if err := r.save(ctx, ro, prev); err != nil {
			return res, err
		}
	}
	par := st.MaxParallel
	if par <= 0 {
		par = env.par
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, par)
	)
	for _, h := range remaining {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		mu.Lock()
		halt := len(res.fails) > st.MaxFailures || len(errs) > 0 || ctx.Err() != nil
		mu.Unlock()
		if halt {
			break
		}
		ctl, err := r.control(ctx, ro.ID)
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			break
		}
		if ctl.Paused || ctl.Aborted {
			res.interrupted = true
			break
		}
		if ok, next := mayStart(h); !ok {
			res.deferred = append(res.deferred, h)
			if !next.IsZero() && (res.nextOpen.IsZero() || next.Before(res.nextOpen)) {
				res.nextOpen = next
			}
			<-sem
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f, err := r.applyHost(ctx, des, dp, ro, st, env, h, steps[h], ledger[h])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if f != nil {
				res.fails = append(res.fails, *f)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("rollout %d stage %d: %w", ro.ID, ro.Stage+1, err)
	}
	slices.SortFunc(res.fails, func(a, b hostFailure) int { return cmp.Compare(a.Host, b.Host) })
	return res, nil
}

// recorded reads what the store holds for a rollout: its host steps (host →
// phase → step) and the ledger entries of its patch (host → entry).
func (r *Reconciler) recorded(ctx context.Context, ro *vulnzero.Rollout) (map[string]map[vulnzero.Phase]vulnzero.HostStep, map[string]*vulnzero.LedgerEntry, error) {
	list, err := r.cfg.Store.ListHostSteps(ctx, ro.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("read steps of rollout %d: %w", ro.ID, err)
	}
	steps := map[string]map[vulnzero.Phase]vulnzero.HostStep{}
	for _, s := range list {
		if steps[s.Host] == nil {
			steps[s.Host] = map[vulnzero.Phase]vulnzero.HostStep{}
		}
		steps[s.Host][s.Phase] = s
	}
	entries, err := r.cfg.Store.ListLedger(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read ledger for rollout %d: %w", ro.ID, err)
	}
	ledger := map[string]*vulnzero.LedgerEntry{}
	for i := range entries {
		if entries[i].PatchID == ro.PatchID {
			ledger[entries[i].Host] = &entries[i]
		}
	}
	return steps, ledger, nil
}

// applyPhases run in this order on each host; reboot only when the patch
// asks for it (see rebootNeeded).
var applyPhases = []vulnzero.Phase{vulnzero.PhaseApply, vulnzero.PhaseReboot, vulnzero.PhaseVerify, vulnzero.PhaseHealth}

// applyHost runs apply.sh → reboot (when needed) → verify.sh → health
// checks on one host, resuming from what the store recorded:
//
//   - the ledger already says this revision is applied: nothing runs;
//   - a phase recorded as failed: the host stays failed (the decision was
//     made before a restart; retrying could hide a flaky host);
//   - a phase recorded as succeeded (or skipped) is not run again;
//   - a phase recorded as started, with no result, runs again. apply.sh is
//     idempotent by contract (the twin proves it by applying twice), so
//     re-running a step that may or may not have finished is safe, while
//     skipping it could leave a host unpatched but marked applied. A
//     started reboot first looks for a new boot id (see reboot).
//
// Before anything runs the ledger says applying (with the scripts, so the
// host can be rolled back even if main loses the patch); after, applied or
// failed. A nil failure means the host succeeded; an error means the run
// stopped (store failure, shutdown) and the host is to be resumed.
func (r *Reconciler) applyHost(ctx context.Context, des Desired, dp vulnzero.DesiredPatch, ro *vulnzero.Rollout, st vulnzero.Stage, env rolloutEnv,
	name string, prior map[vulnzero.Phase]vulnzero.HostStep, le *vulnzero.LedgerEntry) (*hostFailure, error) {
	if le != nil && le.Revision == ro.Revision && le.State == vulnzero.LedgerApplied {
		return nil, nil
	}
	entry := vulnzero.LedgerEntry{Host: name, PatchID: ro.PatchID, Revision: ro.Revision, State: vulnzero.LedgerApplying,
		Commit: ro.Commit, RolloutID: ro.ID, Scripts: dp.Patch.Scripts}
	for _, ph := range applyPhases {
		if s, ok := prior[ph]; ok && s.State == vulnzero.StepFailed {
			entry.State = vulnzero.LedgerFailed
			if err := r.putLedger(ctx, entry); err != nil {
				return nil, err
			}
			return &hostFailure{Host: name, Phase: ph, Err: stepError(s)}, nil
		}
	}
	host, ok := des.Inventory.Host(name)
	if !ok {
		return &hostFailure{Host: name, Phase: vulnzero.PhaseApply, Err: "host is not in the inventory"}, nil
	}
	if err := r.putLedger(ctx, entry); err != nil {
		return nil, err
	}
	p := dp.Patch
	applyOut := prior[vulnzero.PhaseApply].Stdout
	for _, ph := range applyPhases {
		if s := prior[ph].State; s == vulnzero.StepSucceeded || s == vulnzero.StepSkipped {
			continue
		}
		var step vulnzero.HostStep
		var err error
		switch ph {
		case vulnzero.PhaseApply:
			step, err = r.runStep(ctx, ro, host, ph, p.Scripts.Apply, cmp.Or(p.Timeouts.Apply, DefaultApplyTimeout))
			applyOut = step.Stdout
		case vulnzero.PhaseReboot:
			switch rebootNeeded(p.Reboot, applyOut) {
			case rebootNo:
				continue
			case rebootPending:
				step, err = r.pendingReboot(ctx, ro, host)
			case rebootNow:
				step, err = r.reboot(ctx, ro, host, env, prior[ph])
			}
		case vulnzero.PhaseVerify:
			step, err = r.runStep(ctx, ro, host, ph, p.Scripts.Verify, cmp.Or(p.Timeouts.Verify, DefaultVerifyTimeout))
		case vulnzero.PhaseHealth:
			checks := slices.Concat(p.HealthChecks, env.pol.HealthChecks)
			if len(checks) == 0 {
				continue
			}
			step, err = r.runHealth(ctx, ro, host, checks, cmp.Or(p.Timeouts.Verify, DefaultVerifyTimeout), st)
		}
		if err != nil {
			return nil, err
		}
		if step.State == vulnzero.StepFailed {
			entry.State = vulnzero.LedgerFailed
			if err := r.putLedger(ctx, entry); err != nil {
				return nil, err
			}
			r.log.Warn("host failed", "rollout", ro.ID, "patch", ro.PatchID, "host", name, "phase", ph, "err", step.Error)
			return &hostFailure{Host: name, Phase: ph, Err: stepError(step)}, nil
		}
	}
	entry.State = vulnzero.LedgerApplied
	return nil, r.putLedger(ctx, entry)
}

func stepError(s vulnzero.HostStep) string {
	if s.Error != "" {
		return s.Error
	}
	return fmt.Sprintf("exit status %d", s.ExitCode)
}

func (r *Reconciler) putLedger(ctx context.Context, e vulnzero.LedgerEntry) error {
	e.UpdatedAt = r.cfg.Now()
	if err := r.cfg.Store.PutLedger(ctx, e); err != nil {
		return fmt.Errorf("record ledger %s on %s (%s): %w", e.PatchID, e.Host, e.State, err)
	}
	return nil
}

// command builds what runs on a host for a phase, with the environment
// patch scripts are promised (VZ_PATCH_ID, VZ_HOST, VZ_PHASE).
func (r *Reconciler) command(ro *vulnzero.Rollout, host vulnzero.Host, ph vulnzero.Phase, script []byte, timeout time.Duration) fleet.Command {
	return fleet.Command{
		Script:  script,
		Env:     map[string]string{"VZ_PATCH_ID": ro.PatchID, "VZ_HOST": host.Name, "VZ_PHASE": string(ph)},
		Timeout: timeout,
		Sudo:    r.cfg.Sudo,
	}
}

// run runs one command with its own timeout. A Runner that has not
// returned abandonGrace after the timeout is given up on (its goroutine is
// left to end on its own) and the host counts as unreachable: one hanging
// host never stalls a stage.
func (r *Reconciler) run(ctx context.Context, host vulnzero.Host, cmd fleet.Command) (fleet.Result, error) {
	cctx, cancel := ctx, context.CancelFunc(func() {})
	if cmd.Timeout > 0 {
		cctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
	}
	defer cancel()
	type result struct {
		res fleet.Result
		err error
	}
	ch := make(chan result, 1)
	go func() {
		res, err := r.cfg.Runner.Run(cctx, host, cmd)
		ch <- result{res, err}
	}()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-cctx.Done():
	}
	grace := time.NewTimer(abandonGrace)
	defer grace.Stop()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-grace.C:
		r.log.Error("command outlived its timeout; host given up on", "host", host.Name, "phase", cmd.Env["VZ_PHASE"], "timeout", cmd.Timeout)
		return fleet.Result{Host: host.Name, ExitCode: -1}, fmt.Errorf("no result %s after the %s timeout: %w: %w", abandonGrace, cmd.Timeout, cctx.Err(), vulnzero.ErrUnreachable)
	}
}

// exec runs one command (see run) and classifies the outcome for the
// metrics: ok, failed (non-zero exit) or error (could not run, timed out).
// A shutdown (ctx ended) is returned as an error, not as a host result.
func (r *Reconciler) exec(ctx context.Context, host vulnzero.Host, ph vulnzero.Phase, cmd fleet.Command) (fleet.Result, string, error) {
	res, err := r.run(ctx, host, cmd)
	if err != nil && ctx.Err() != nil {
		return res, "", fmt.Errorf("%s on %s: %w", ph, host.Name, ctx.Err())
	}
	result := "ok"
	switch {
	case err != nil:
		result = "error"
	case res.ExitCode != 0:
		result = "failed"
	}
	r.m.HostResults.WithLabelValues(string(ph), result).Inc()
	if err != nil {
		return res, result, fmt.Errorf("%s on %s: %w", ph, host.Name, err)
	}
	return res, result, nil
}

// runStep records a step as started, runs it, and records its result. The
// returned step's State says whether the host passed; an error means the
// result could not be recorded or the run was cut short by shutdown, and the
// step stays "started" so a resume runs it again.
func (r *Reconciler) runStep(ctx context.Context, ro *vulnzero.Rollout, host vulnzero.Host, ph vulnzero.Phase, script []byte, timeout time.Duration) (vulnzero.HostStep, error) {
	return r.runCmd(ctx, ro, host.Name, host, ph, r.command(ro, host, ph, script, timeout))
}

// runCmd is runStep for any command, recorded under stepHost (a host name,
// or a rollout-level key such as "switch:green").
func (r *Reconciler) runCmd(ctx context.Context, ro *vulnzero.Rollout, stepHost string, host vulnzero.Host, ph vulnzero.Phase, cmd fleet.Command) (vulnzero.HostStep, error) {
	step := vulnzero.HostStep{RolloutID: ro.ID, Host: stepHost, Phase: ph, State: vulnzero.StepStarted, StartedAt: r.cfg.Now()}
	if err := r.putStep(ctx, step); err != nil {
		return step, err
	}
	r.firstCommand(ro.ID)
	res, result, err := r.exec(ctx, host, ph, cmd)
	if err != nil && result == "" {
		return step, err
	}
	step.ExitCode, step.Stdout, step.Stderr, step.FinishedAt = res.ExitCode, res.Stdout, res.Stderr, r.cfg.Now()
	step.State = vulnzero.StepSucceeded
	switch {
	case err != nil:
		step.State, step.Error = vulnzero.StepFailed, err.Error()
	case res.ExitCode != 0:
		step.State, step.Error = vulnzero.StepFailed, fmt.Sprintf("exit status %d", res.ExitCode)
	}
	return step, r.putStep(ctx, step)
}

// firstCommand observes the merge-to-first-host metric at the first host
// command of a rollout this process created.
func (r *Reconciler) firstCommand(id int64) {
	if v, ok := r.firstCmd.LoadAndDelete(id); ok {
		r.m.MergeToFirstHost.Observe(max(r.cfg.Now().Sub(v.(time.Time)), 0).Seconds())
	}
}

// runHealth runs health checks one after another as one step (phase
// health); the first failing check fails it and is named. A check is tried
// up to the stage's consecutive error limit, CheckInterval apart, and
// passes at its first success: a service restarting after an upgrade is
// not a failed host. Output of every attempt is kept under a "== name =="
// header.
func (r *Reconciler) runHealth(ctx context.Context, ro *vulnzero.Rollout, host vulnzero.Host, checks []vulnzero.HealthCheck, timeout time.Duration, st vulnzero.Stage) (vulnzero.HostStep, error) {
	ph := vulnzero.PhaseHealth
	step := vulnzero.HostStep{RolloutID: ro.ID, Host: host.Name, Phase: ph, State: vulnzero.StepStarted, StartedAt: r.cfg.Now()}
	if err := r.putStep(ctx, step); err != nil {
		return step, err
	}
	limit, interval := max(st.ConsecutiveErrorLimit, 1), cmp.Or(st.CheckInterval, DefaultCheckInterval)
	var stdout, stderr strings.Builder
	step.State = vulnzero.StepSucceeded
checks:
	for _, hc := range checks {
		for attempt := 1; ; attempt++ {
			res, result, err := r.exec(ctx, host, ph, r.command(ro, host, ph, []byte(hc.Command), timeout))
			if err != nil && result == "" {
				return step, err
			}
			fmt.Fprintf(&stdout, "== %s ==\n%s", hc.Name, res.Stdout)
			fmt.Fprintf(&stderr, "== %s ==\n%s", hc.Name, res.Stderr)
			step.ExitCode = res.ExitCode
			var why string
			switch {
			case err != nil:
				why = err.Error()
			case res.ExitCode != 0:
				why = fmt.Sprintf("exit status %d", res.ExitCode)
			default:
				continue checks
			}
			if attempt >= limit {
				step.State, step.Error = vulnzero.StepFailed, fmt.Sprintf("health check %q: %s", hc.Name, why)
				if limit > 1 {
					step.Error += fmt.Sprintf(" (%d attempts in a row)", attempt)
				}
				break checks
			}
			if err := r.cfg.Wait(ctx, interval); err != nil {
				return step, fmt.Errorf("health check %q on %s: %w", hc.Name, host.Name, err)
			}
		}
	}
	step.Stdout, step.Stderr, step.FinishedAt = stdout.String(), stderr.String(), r.cfg.Now()
	return step, r.putStep(ctx, step)
}

func (r *Reconciler) putStep(ctx context.Context, s vulnzero.HostStep) error {
	if err := r.cfg.Store.PutHostStep(ctx, s); err != nil {
		return fmt.Errorf("record %s step on %s for rollout %d (%s): %w", s.Phase, s.Host, s.RolloutID, s.State, err)
	}
	return nil
}

// revertMode is how the policy in force wants a revert of dp written.
func (r *Reconciler) revertMode(des Desired, dp vulnzero.DesiredPatch) string {
	_, pol := r.policySet(des).RolloutFor(dp.Patch, targetHosts(des.Inventory, dp.Patch))
	return cmp.Or(pol.Revert, policies.RevertPush)
}

// finishFailed completes a failed apply rollout: it rolls back every host
// this rollout touched, writes the revert, quarantines the revision, tells
// people, and records rolled_back. Each part is safe to repeat, so a
// restart in the middle resumes here: rolled-back hosts are skipped, and
// the revert is not written again once its SHA is recorded. If main no
// longer holds the revision by then, no revert is written (it would undo
// what main holds now) and the Reason says so.
//
// The revert is pushed onto main, or opened as a revert pull request when
// the policy's revert mode is pull-request (Config.PRReverter; without one
// no revert is written and the Reason says why). A Reverter error is kept
// in the Reason and the revision is quarantined anyway: the hosts are safe
// either way, and a person can revert by hand. Hosts whose rollback.sh
// fails keep a non-rolled-back ledger entry, so once the revert removes the
// patch from main the next reconcile retries them as a removed patch.
func (r *Reconciler) finishFailed(ctx context.Context, des Desired, ro *vulnzero.Rollout) error {
	timeout := DefaultRollbackTimeout
	if dp, ok := desiredPatch(des, ro.PatchID, ro.Revision); ok {
		timeout = cmp.Or(dp.Patch.Timeouts.Rollback, timeout)
	}
	fails, err := r.rollbackTouched(ctx, des, ro, timeout)
	if err != nil {
		return err
	}
	if len(fails) > 0 && !strings.Contains(ro.Reason, "; rollback ") {
		ro.Reason += "; rollback " + joinFailures(fails)
	}
	dp, onMain := desiredPatch(des, ro.PatchID, ro.Revision)
	if f, ok := r.cfg.Reverter.(RevertFinder); ok && ro.RevertSHA == "" && !onMain {
		// Main lost the revision: perhaps to our own revert, pushed just
		// before a crash kept its SHA from being recorded.
		sha, err := f.FindRevert(ctx, ro.PatchID, ro.Revision)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("find revert of %s@%s: %w", ro.PatchID, ro.Revision.Short(), ctx.Err())
			}
			r.log.Error("find revert", "rollout", ro.ID, "patch", ro.PatchID, "err", err)
		}
		if sha != "" {
			ro.RevertSHA = sha
			if err := r.save(ctx, ro, ro.State); err != nil {
				return err
			}
		}
	}
	if ro.RevertSHA == "" && !onMain && !strings.Contains(ro.Reason, "; revert skipped") {
		// Main moved on while this rollout was failing (a restart came in
		// between): reverting now would undo whatever main holds instead.
		ro.Reason += "; revert skipped: main no longer holds revision " + ro.Revision.Short()
	}
	if ro.RevertSHA == "" && onMain {
		reverter := r.cfg.Reverter
		if r.revertMode(des, dp) == policies.RevertPullRequest {
			reverter = r.cfg.PRReverter
		}
		if reverter == nil {
			if !strings.Contains(ro.Reason, "; revert not written") {
				ro.Reason += "; revert not written: the policy asks for a revert pull request and none can be opened here"
			}
		} else {
			sha, err := reverter.RevertPatch(ctx, ro.PatchID, ro.Revision, ro.Reason)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("revert %s@%s: %w", ro.PatchID, ro.Revision.Short(), ctx.Err())
				}
				r.log.Error("revert", "rollout", ro.ID, "patch", ro.PatchID, "err", err)
				if !strings.Contains(ro.Reason, "; revert: ") {
					ro.Reason += "; revert: " + err.Error()
				}
			}
			ro.RevertSHA = sha
			// Record the SHA at once so a restart does not write a second revert.
			if err := r.save(ctx, ro, ro.State); err != nil {
				return err
			}
		}
	}
	q := vulnzero.Quarantine{PatchID: ro.PatchID, Revision: ro.Revision, Reason: ro.Reason, At: r.cfg.Now()}
	if err := r.cfg.Store.Quarantine(ctx, q); err != nil {
		return fmt.Errorf("quarantine %s@%s: %w", ro.PatchID, ro.Revision.Short(), err)
	}
	prev := ro.State
	ro.State = vulnzero.RolloutRolledBack
	// Notify before the final save: a crash in between resumes here and the
	// store's record of sent events keeps it from sending twice; the other
	// order could lose the notification.
	if len(fails) > 0 {
		r.notify(ctx, EventRollbackFailed, *ro)
	}
	r.notify(ctx, EventRolledBack, *ro)
	if err := r.save(ctx, ro, prev); err != nil {
		return err
	}
	r.m.Rollbacks.WithLabelValues("failure").Inc()
	r.log.Warn("rollout rolled back", "rollout", ro.ID, "patch", ro.PatchID, "revision", ro.Revision.Short(),
		"revert", ro.RevertSHA, "reason", ro.Reason)
	return nil
}

// supersede abandons an apply rollout whose revision main no longer holds
// (a new revision, or the patch was removed): the hosts it touched are
// rolled back and it ends rolled_back without a revert or quarantine — a
// person moved main, nothing failed. The next reconcile plans from there.
func (r *Reconciler) supersede(ctx context.Context, des Desired, ro *vulnzero.Rollout) error {
	if !strings.HasPrefix(ro.Reason, reasonSuperseded) {
		ro.Reason = reasonSuperseded + "main no longer holds revision " + ro.Revision.Short()
		if err := r.save(ctx, ro, ro.State); err != nil {
			return err
		}
	}
	fails, err := r.rollbackTouched(ctx, des, ro, DefaultRollbackTimeout)
	if err != nil {
		return err
	}
	if len(fails) > 0 {
		ro.Reason += "; rollback " + joinFailures(fails)
		r.notify(ctx, EventRollbackFailed, *ro)
	}
	prev := ro.State
	ro.State, ro.WaitUntil = vulnzero.RolloutRolledBack, time.Time{}
	if err := r.save(ctx, ro, prev); err != nil {
		return err
	}
	r.m.Rollbacks.WithLabelValues("superseded").Inc()
	return nil
}

// rollbackTouched runs the ledger's rollback.sh on every host this rollout
// touched (ledger applying, applied or failed for its revision and ID).
//
// A blue-green rollout that already moved traffic is undone in the order
// that keeps traffic on good hosts: first the old group (idle now, and the
// rollback target) is rolled back, then traffic switches back to it, then
// the rest is rolled back.
func (r *Reconciler) rollbackTouched(ctx context.Context, des Desired, ro *vulnzero.Rollout, timeout time.Duration) ([]hostFailure, error) {
	steps, ledger, err := r.recorded(ctx, ro)
	if err != nil {
		return nil, err
	}
	var touched []vulnzero.LedgerEntry
	for _, e := range ledger {
		if e.Revision == ro.Revision && e.RolloutID == ro.ID && e.State != vulnzero.LedgerRolledBack {
			touched = append(touched, *e)
		}
	}
	sw := switchStage(ro)
	if sw == nil || sw.SwitchFrom == "" || ro.ActiveGroup != sw.SwitchTo {
		return r.rollbackHosts(ctx, des, ro, touched, steps, timeout)
	}
	inTarget := map[string]bool{}
	for _, st := range ro.Stages {
		if st.Group == sw.SwitchFrom {
			for _, h := range st.Hosts {
				inTarget[h] = true
			}
		}
	}
	var first, rest []vulnzero.LedgerEntry
	for _, e := range touched {
		if inTarget[e.Host] {
			first = append(first, e)
		} else {
			rest = append(rest, e)
		}
	}
	fails, err := r.rollbackHosts(ctx, des, ro, first, steps, timeout)
	if err != nil {
		return nil, err
	}
	f, err := r.switchTraffic(ctx, des, ro, r.envForHosts(des, stageHosts(ro.Stages)), sw.SwitchTo, sw.SwitchFrom)
	if err != nil {
		return nil, err
	}
	if f != nil {
		fails = append(fails, *f)
	}
	more, err := r.rollbackHosts(ctx, des, ro, rest, steps, timeout)
	if err != nil {
		return nil, err
	}
	return append(fails, more...), nil
}

// switchStage is the blue-green stage that moves traffic, if any.
func switchStage(ro *vulnzero.Rollout) *vulnzero.Stage {
	for i := range ro.Stages {
		if ro.Stages[i].SwitchTo != "" {
			return &ro.Stages[i]
		}
	}
	return nil
}

// runRollback drives a rollback rollout (a patch, or a revision of it, left
// main): rollback.sh from the ledger on every listed host still holding the
// revision. It ends succeeded when every host is rolled back; otherwise
// failed, which keeps it active so the next reconcile retries the hosts
// that are left (a host that was down comes back).
func (r *Reconciler) runRollback(ctx context.Context, des Desired, ro *vulnzero.Rollout) error {
	steps, ledger, err := r.recorded(ctx, ro)
	if err != nil {
		return err
	}
	var remaining []vulnzero.LedgerEntry
	for _, h := range stageHosts(ro.Stages) {
		if e := ledger[h]; e != nil && e.Revision == ro.Revision && e.State != vulnzero.LedgerRolledBack {
			remaining = append(remaining, *e)
		}
	}
	fails, err := r.rollbackHosts(ctx, des, ro, remaining, steps, DefaultRollbackTimeout)
	if err != nil {
		return err
	}
	prev := ro.State
	if len(fails) > 0 {
		ro.State, ro.Reason = vulnzero.RolloutFailed, "rollback "+joinFailures(fails)
		r.notify(ctx, EventRollbackFailed, *ro)
	} else {
		ro.State, ro.Reason = vulnzero.RolloutSucceeded, ""
		r.notify(ctx, EventRemoved, *ro)
		r.m.Rollbacks.WithLabelValues("removed").Inc()
	}
	return r.save(ctx, ro, prev)
}

// rollbackHosts rolls entries back, DefaultMaxParallel at once. Every host
// is attempted: a rollback does not halt on failures, since each host it
// skips stays patched with a revision nobody wants. Rollbacks ignore
// maintenance windows: they restore the state the window protected.
func (r *Reconciler) rollbackHosts(ctx context.Context, des Desired, ro *vulnzero.Rollout, entries []vulnzero.LedgerEntry,
	steps map[string]map[vulnzero.Phase]vulnzero.HostStep, timeout time.Duration) ([]hostFailure, error) {
	slices.SortFunc(entries, func(a, b vulnzero.LedgerEntry) int { return cmp.Compare(a.Host, b.Host) })
	var (
		mu    sync.Mutex
		fails []hostFailure
		errs  []error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, DefaultMaxParallel)
	)
	for _, e := range entries {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f, err := r.rollbackHost(ctx, des, ro, e, steps[e.Host][vulnzero.PhaseRollback], timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if f != nil {
				fails = append(fails, *f)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("roll back rollout %d: %w", ro.ID, err)
	}
	slices.SortFunc(fails, func(a, b hostFailure) int { return cmp.Compare(a.Host, b.Host) })
	return fails, nil
}

// rollbackHost runs the rollback.sh the ledger recorded for e on its host,
// then records the ledger rolled_back. A rollback step already recorded as
// succeeded (the restart came between the step and the ledger write) is not
// run again. On failure the entry stays as it was (applying becomes failed,
// since nothing is in flight any more), so a later reconcile retries it.
func (r *Reconciler) rollbackHost(ctx context.Context, des Desired, ro *vulnzero.Rollout, e vulnzero.LedgerEntry,
	prior vulnzero.HostStep, timeout time.Duration) (*hostFailure, error) {
	fail := func(msg string) (*hostFailure, error) {
		if e.State == vulnzero.LedgerApplying {
			e.State = vulnzero.LedgerFailed
			if err := r.putLedger(ctx, e); err != nil {
				return nil, err
			}
		}
		r.log.Warn("rollback failed", "rollout", ro.ID, "patch", ro.PatchID, "host", e.Host, "err", msg)
		return &hostFailure{Host: e.Host, Phase: vulnzero.PhaseRollback, Err: msg}, nil
	}
	if prior.State != vulnzero.StepSucceeded {
		host, ok := des.Inventory.Host(e.Host)
		if !ok {
			return fail("host is not in the inventory")
		}
		step, err := r.runStep(ctx, ro, host, vulnzero.PhaseRollback, e.Scripts.Rollback, timeout)
		if err != nil {
			return nil, err
		}
		if step.State != vulnzero.StepSucceeded {
			return fail(stepError(step))
		}
	}
	e.State, e.RolloutID = vulnzero.LedgerRolledBack, ro.ID
	return nil, r.putLedger(ctx, e)
}

func joinFailures(fails []hostFailure) string {
	parts := make([]string, len(fails))
	for i, f := range fails {
		parts[i] = f.Host + " (" + f.Err + ")"
	}
	return "failed on " + strings.Join(parts, ", ")
}
