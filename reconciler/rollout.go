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
			Kind: vulnzero.RolloutApply, Strategy: a.Strategy, Stages: a.Stages, Reason: a.Reason})
		if err == nil {
			err = r.runApply(ctx, des, &ro)
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

// runApply drives an apply rollout from wherever the store says it is:
//
//	progressing, stage i → run stage i (hosts already applied are skipped);
//	    failures within the budget → soak, record stage i+1 (or succeeded);
//	    over budget → record failed, then finishFailed;
//	failed → finishFailed (roll back, revert, quarantine, notify);
//	revision no longer on main → supersede (roll back touched hosts).
//
// An error leaves the rollout where it was recorded; the next reconcile
// resumes it.
func (r *Reconciler) runApply(ctx context.Context, des Desired, ro *vulnzero.Rollout) error {
	if ro.State == vulnzero.RolloutFailed {
		return r.finishFailed(ctx, des, ro)
	}
	dp, ok := desiredPatch(des, ro.PatchID, ro.Revision)
	if !ok {
		return r.supersede(ctx, des, ro)
	}
	par := r.maxParallel(des, dp)
	for ro.Stage < len(ro.Stages) {
		st := ro.Stages[ro.Stage]
		fails, err := r.applyStage(ctx, des, dp, ro, st, par)
		if err != nil {
			return err
		}
		if len(fails) > st.MaxFailures {
			prev := ro.State
			ro.State = vulnzero.RolloutFailed
			ro.Reason = stageFailure(ro.Stage, st, fails)
			r.log.Warn("rollout stage failed", "rollout", ro.ID, "patch", ro.PatchID, "stage", ro.Stage+1, "reason", ro.Reason)
			if err := r.save(ctx, ro, prev); err != nil {
				return err
			}
			return r.finishFailed(ctx, des, ro)
		}
		if len(fails) > 0 {
			r.log.Warn("stage failures within budget", "rollout", ro.ID, "patch", ro.PatchID, "stage", ro.Stage+1,
				"failures", len(fails), "max_failures", st.MaxFailures)
		}
		if st.Soak > 0 {
			if err := r.cfg.Wait(ctx, st.Soak); err != nil {
				return fmt.Errorf("soak rollout %d stage %d: %w", ro.ID, ro.Stage+1, err)
			}
		}
		prev := ro.State
		if ro.Stage == len(ro.Stages)-1 {
			ro.State = vulnzero.RolloutSucceeded
		} else {
			ro.Stage++
		}
		if err := r.save(ctx, ro, prev); err != nil {
			return err
		}
		if ro.State == vulnzero.RolloutSucceeded {
			r.log.Info("rollout succeeded", "rollout", ro.ID, "patch", ro.PatchID, "revision", ro.Revision.Short())
			return nil
		}
	}
	// No stage left to run (a rollout recorded without stages): nothing can
	// fail any more, so it is done rather than resumed forever.
	prev := ro.State
	ro.State = vulnzero.RolloutSucceeded
	return r.save(ctx, ro, prev)
}

// stageFailure names the stage, and the first failed host and phase.
func stageFailure(i int, st vulnzero.Stage, fails []hostFailure) string {
	s := fmt.Sprintf("stage %d (%s): %s", i+1, st.Name, fails[0])
	if len(fails) > 1 {
		s += fmt.Sprintf(" (and %d more host(s); %d allowed)", len(fails)-1, st.MaxFailures)
	}
	return s
}

func (r *Reconciler) maxParallel(des Desired, dp vulnzero.DesiredPatch) int {
	pols := des.Policies
	if len(pols.Rollouts) == 0 {
		pols = policies.Defaults()
	}
	spec, _ := pols.RolloutFor(dp.Patch, targetHosts(des.Inventory, dp.Patch))
	if spec.MaxParallel > 0 {
		return spec.MaxParallel
	}
	return DefaultMaxParallel
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

// applyStage applies the revision on a stage's hosts, at most par at once.
// Once failures exceed the stage's budget no new host is dispatched; hosts
// in flight finish. It returns the failed hosts, sorted.
func (r *Reconciler) applyStage(ctx context.Context, des Desired, dp vulnzero.DesiredPatch, ro *vulnzero.Rollout, st vulnzero.Stage, par int) ([]hostFailure, error) {
	steps, ledger, err := r.recorded(ctx, ro)
	if err != nil {
		return nil, err
	}
	var (
		mu    sync.Mutex
		fails []hostFailure
		errs  []error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, par)
	)
	for _, h := range st.Hosts {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		mu.Lock()
		halt := len(fails) > st.MaxFailures || len(errs) > 0 || ctx.Err() != nil
		mu.Unlock()
		if halt {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f, err := r.applyHost(ctx, des, dp, ro, h, steps[h], ledger[h])
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
		return nil, fmt.Errorf("rollout %d stage %d: %w", ro.ID, ro.Stage+1, err)
	}
	slices.SortFunc(fails, func(a, b hostFailure) int { return cmp.Compare(a.Host, b.Host) })
	return fails, nil
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

var applyPhases = []vulnzero.Phase{vulnzero.PhaseApply, vulnzero.PhaseVerify, vulnzero.PhaseHealth}

// applyHost runs apply.sh → verify.sh → health checks on one host, resuming
// from what the store recorded:
//
//   - the ledger already says this revision is applied: nothing runs;
//   - a phase recorded as failed: the host stays failed (the decision was
//     made before a restart; retrying could hide a flaky host);
//   - a phase recorded as succeeded is not run again;
//   - a phase recorded as started, with no result, runs again. apply.sh is
//     idempotent by contract (the twin proves it by applying twice), so
//     re-running a step that may or may not have finished is safe, while
//     skipping it could leave a host unpatched but marked applied.
//
// Before anything runs the ledger says applying (with the scripts, so the
// host can be rolled back even if main loses the patch); after, applied or
// failed. A nil failure means the host succeeded; an error means the run
// stopped (store failure, shutdown) and the host is to be resumed.
func (r *Reconciler) applyHost(ctx context.Context, des Desired, dp vulnzero.DesiredPatch, ro *vulnzero.Rollout, name string,
	prior map[vulnzero.Phase]vulnzero.HostStep, le *vulnzero.LedgerEntry) (*hostFailure, error) {
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
	for _, ph := range applyPhases {
		if prior[ph].State == vulnzero.StepSucceeded {
			continue
		}
		var step vulnzero.HostStep
		var err error
		switch ph {
		case vulnzero.PhaseApply:
			step, err = r.runStep(ctx, ro, host, ph, p.Scripts.Apply, cmp.Or(p.Timeouts.Apply, DefaultApplyTimeout))
		case vulnzero.PhaseVerify:
			step, err = r.runStep(ctx, ro, host, ph, p.Scripts.Verify, cmp.Or(p.Timeouts.Verify, DefaultVerifyTimeout))
		case vulnzero.PhaseHealth:
			if len(p.HealthChecks) == 0 {
				continue
			}
			step, err = r.runHealth(ctx, ro, host, p.HealthChecks, cmp.Or(p.Timeouts.Verify, DefaultVerifyTimeout))
		}
		if err != nil {
			return nil, err
		}
		if step.State != vulnzero.StepSucceeded {
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

// exec runs one command with its own timeout and classifies the outcome for
// the metrics: ok, failed (non-zero exit) or error (could not run). A
// shutdown (ctx ended) is returned as an error, not as a host result.
func (r *Reconciler) exec(ctx context.Context, host vulnzero.Host, ph vulnzero.Phase, cmd fleet.Command) (fleet.Result, string, error) {
	cctx, cancel := context.WithTimeout(ctx, cmd.Timeout)
	defer cancel()
	res, err := r.cfg.Runner.Run(cctx, host, cmd)
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
	step := vulnzero.HostStep{RolloutID: ro.ID, Host: host.Name, Phase: ph, State: vulnzero.StepStarted, StartedAt: r.cfg.Now()}
	if err := r.putStep(ctx, step); err != nil {
		return step, err
	}
	res, result, err := r.exec(ctx, host, ph, r.command(ro, host, ph, script, timeout))
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

// runHealth runs a patch's health checks one after another as one step
// (phase health); the first failing check fails it and is named. Output of
// every check run is kept, each under a "== name ==" header.
func (r *Reconciler) runHealth(ctx context.Context, ro *vulnzero.Rollout, host vulnzero.Host, checks []vulnzero.HealthCheck, timeout time.Duration) (vulnzero.HostStep, error) {
	ph := vulnzero.PhaseHealth
	step := vulnzero.HostStep{RolloutID: ro.ID, Host: host.Name, Phase: ph, State: vulnzero.StepStarted, StartedAt: r.cfg.Now()}
	if err := r.putStep(ctx, step); err != nil {
		return step, err
	}
	var stdout, stderr strings.Builder
	step.State = vulnzero.StepSucceeded
	for _, hc := range checks {
		res, result, err := r.exec(ctx, host, ph, r.command(ro, host, ph, []byte(hc.Command), timeout))
		if err != nil && result == "" {
			return step, err
		}
		fmt.Fprintf(&stdout, "== %s ==\n%s", hc.Name, res.Stdout)
		fmt.Fprintf(&stderr, "== %s ==\n%s", hc.Name, res.Stderr)
		step.ExitCode = res.ExitCode
		if err != nil {
			step.State, step.Error = vulnzero.StepFailed, fmt.Sprintf("health check %q: %v", hc.Name, err)
			break
		}
		if res.ExitCode != 0 {
			step.State, step.Error = vulnzero.StepFailed, fmt.Sprintf("health check %q: exit status %d", hc.Name, res.ExitCode)
			break
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

// finishFailed completes a failed apply rollout: it rolls back every host
// this rollout touched, writes the revert, quarantines the revision, tells
// people, and records rolled_back. Each part is safe to repeat, so a
// restart in the middle resumes here: rolled-back hosts are skipped, and
// the revert is not written again once its SHA is recorded. If main no
// longer holds the revision by then, no revert is written (it would undo
// what main holds now) and the Reason says so.
//
// A Reverter error is kept in the Reason and the revision is quarantined
// anyway: the hosts are safe either way, and a person can revert by hand.
// Hosts whose rollback.sh fails keep a non-rolled-back ledger entry, so
// once the revert removes the patch from main the next reconcile retries
// them as a removed patch.
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
	_, onMain := desiredPatch(des, ro.PatchID, ro.Revision)
	if ro.RevertSHA == "" && !onMain && !strings.Contains(ro.Reason, "; revert skipped") {
		// Main moved on while this rollout was failing (a restart came in
		// between): reverting now would undo whatever main holds instead.
		ro.Reason += "; revert skipped: main no longer holds revision " + ro.Revision.Short()
	}
	if ro.RevertSHA == "" && onMain {
		sha, err := r.cfg.Reverter.RevertPatch(ctx, ro.PatchID, ro.Revision, ro.Reason)
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
	q := vulnzero.Quarantine{PatchID: ro.PatchID, Revision: ro.Revision, Reason: ro.Reason, At: r.cfg.Now()}
	if err := r.cfg.Store.Quarantine(ctx, q); err != nil {
		return fmt.Errorf("quarantine %s@%s: %w", ro.PatchID, ro.Revision.Short(), err)
	}
	prev := ro.State
	ro.State = vulnzero.RolloutRolledBack
	if r.cfg.Notifier != nil {
		if err := r.cfg.Notifier.RolloutFailed(ctx, *ro); err != nil {
			r.log.Error("notify rollout failed", "rollout", ro.ID, "patch", ro.PatchID, "err", err)
		}
	}
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
	}
	prev := ro.State
	ro.State = vulnzero.RolloutRolledBack
	if err := r.save(ctx, ro, prev); err != nil {
		return err
	}
	r.m.Rollbacks.WithLabelValues("superseded").Inc()
	return nil
}

// rollbackTouched runs the ledger's rollback.sh on every host this rollout
// touched (ledger applying, applied or failed for its revision and ID).
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
	return r.rollbackHosts(ctx, des, ro, touched, steps, timeout)
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
	var todo []vulnzero.LedgerEntry
	for _, h := range stageHosts(ro.Stages) {
		if e := ledger[h]; e != nil && e.Revision == ro.Revision && e.State != vulnzero.LedgerRolledBack {
			todo = append(todo, *e)
		}
	}
	fails, err := r.rollbackHosts(ctx, des, ro, todo, steps, DefaultRollbackTimeout)
	if err != nil {
		return err
	}
	prev := ro.State
	if len(fails) > 0 {
		ro.State, ro.Reason = vulnzero.RolloutFailed, "rollback "+joinFailures(fails)
	} else {
		ro.State, ro.Reason = vulnzero.RolloutSucceeded, ""
		r.m.Rollbacks.WithLabelValues("removed").Inc()
	}
	return r.save(ctx, ro, prev)
}

// rollbackHosts rolls entries back, DefaultMaxParallel at once. Every host
// is attempted: a rollback does not halt on failures, since each host it
// skips stays patched with a revision nobody wants.
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
