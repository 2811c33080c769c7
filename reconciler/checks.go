package reconciler

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

// priorStep reads the step recorded for (rollout, stepHost, phase).
func (r *Reconciler) priorStep(ctx context.Context, ro *vulnzero.Rollout, stepHost string, ph vulnzero.Phase) (vulnzero.HostStep, bool, error) {
	list, err := r.cfg.Store.ListHostSteps(ctx, ro.ID)
	if err != nil {
		return vulnzero.HostStep{}, false, fmt.Errorf("read steps of rollout %d: %w", ro.ID, err)
	}
	for _, s := range list {
		if s.Host == stepHost && s.Phase == ph {
			return s, true, nil
		}
	}
	return vulnzero.HostStep{}, false, nil
}

// stageKey is the step key of a stage's rollout-level check. No inventory
// host can be named so (":" is not allowed in host names).
func stageKey(stage int) string { return "stage:" + strconv.Itoa(stage+1) }

// stageCheck runs the stage-level check once the stage's hosts passed: a
// command over SSH on the check's host, or an HTTP GET. It is recorded as
// a step (phase stage-check, host "stage:N") before and after it runs, so
// a restart neither repeats a passed check nor forgets a failed one. It is
// tried up to the stage's consecutive error limit, CheckInterval apart,
// and passes at its first success. The returned failure fails the stage.
func (r *Reconciler) stageCheck(ctx context.Context, des Desired, ro *vulnzero.Rollout, st vulnzero.Stage) (*hostFailure, error) {
	key, ph, c := stageKey(ro.Stage), vulnzero.PhaseStageCheck, st.Check
	prior, ok, err := r.priorStep(ctx, ro, key, ph)
	if err != nil {
		return nil, err
	}
	switch {
	case ok && prior.State == vulnzero.StepSucceeded:
		return nil, nil
	case ok && prior.State == vulnzero.StepFailed:
		return &hostFailure{Host: key, Phase: ph, Err: stepError(prior)}, nil
	}
	step := vulnzero.HostStep{RolloutID: ro.ID, Host: key, Phase: ph, State: vulnzero.StepStarted, StartedAt: r.cfg.Now()}
	if err := r.putStep(ctx, step); err != nil {
		return nil, err
	}
	limit, interval := max(st.ConsecutiveErrorLimit, 1), cmp.Or(st.CheckInterval, DefaultCheckInterval)
	timeout := cmp.Or(c.Timeout, DefaultCheckTimeout)
	var out strings.Builder
	step.State = vulnzero.StepSucceeded
	for attempt := 1; ; attempt++ {
		var why string
		if c.URL != "" {
			why = r.probe(ctx, c, timeout, &out)
		} else {
			why, err = r.checkCommand(ctx, des, ro, c, timeout, &out)
			if err != nil {
				return nil, err
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("stage check of rollout %d stage %d: %w", ro.ID, ro.Stage+1, ctx.Err())
		}
		if why == "" {
			break
		}
		if attempt >= limit {
			step.State, step.Error = vulnzero.StepFailed, "stage check: "+why
			if limit > 1 {
				step.Error += fmt.Sprintf(" (%d attempts in a row)", attempt)
			}
			step.ExitCode = 1
			break
		}
		if err := r.cfg.Wait(ctx, interval); err != nil {
			return nil, fmt.Errorf("stage check of rollout %d stage %d: %w", ro.ID, ro.Stage+1, err)
		}
	}
	step.Stdout, step.FinishedAt = out.String(), r.cfg.Now()
	if err := r.putStep(ctx, step); err != nil {
		return nil, err
	}
	if step.State == vulnzero.StepFailed {
		r.log.Warn("stage check failed", "rollout", ro.ID, "patch", ro.PatchID, "stage", ro.Stage+1, "err", step.Error)
		return &hostFailure{Host: key, Phase: ph, Err: step.Error}, nil
	}
	return nil, nil
}

// checkCommand runs a stage check's command on its host; it returns why
// the attempt failed ("" when it passed). The error is a shutdown.
func (r *Reconciler) checkCommand(ctx context.Context, des Desired, ro *vulnzero.Rollout, c *vulnzero.StageCheck, timeout time.Duration, out *strings.Builder) (string, error) {
	host, ok := des.Inventory.Host(c.Host)
	if !ok {
		fmt.Fprintf(out, "== %s: not in the inventory ==\n", c.Host)
		return fmt.Sprintf("check host %s is not in the inventory", c.Host), nil
	}
	ph := vulnzero.PhaseStageCheck
	cmd := r.command(ro, host, ph, []byte(c.Command), timeout)
	cmd.Env["VZ_STAGE"] = strconv.Itoa(ro.Stage + 1)
	res, result, err := r.exec(ctx, host, ph, cmd)
	if err != nil && result == "" {
		return "", err
	}
	fmt.Fprintf(out, "== %s: %s ==\n%s%s", c.Host, c.Command, res.Stdout, res.Stderr)
	switch {
	case err != nil:
		return err.Error(), nil
	case res.ExitCode != 0:
		return fmt.Sprintf("%s on %s: exit status %d", firstLine(c.Command), c.Host, res.ExitCode), nil
	}
	return "", nil
}

// probe GETs a stage check's URL; it returns why the attempt failed ("" when
// it passed): the status must be ExpectStatus, or any 2xx.
func (r *Reconciler) probe(ctx context.Context, c *vulnzero.StageCheck, timeout time.Duration, out *strings.Builder) string {
	ph := string(vulnzero.PhaseStageCheck)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fmt.Sprintf("GET %s: %v", c.URL, err)
	}
	req.Header.Set("User-Agent", "vulnzero-reconciler")
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		r.m.HostResults.WithLabelValues(ph, "error").Inc()
		fmt.Fprintf(out, "== GET %s ==\n%v\n", c.URL, err)
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	fmt.Fprintf(out, "== GET %s: %s ==\n%s\n", c.URL, resp.Status, body)
	pass := resp.StatusCode/100 == 2
	if c.ExpectStatus != 0 {
		pass = resp.StatusCode == c.ExpectStatus
	}
	if !pass {
		r.m.HostResults.WithLabelValues(ph, "failed").Inc()
		want := "2xx"
		if c.ExpectStatus != 0 {
			want = strconv.Itoa(c.ExpectStatus)
		}
		return fmt.Sprintf("GET %s: status %d, want %s", c.URL, resp.StatusCode, want)
	}
	r.m.HostResults.WithLabelValues(ph, "ok").Inc()
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// switchTraffic runs the policy's blue-green switch hook on its host to
// move traffic from one group to the other, and records the group now
// active on the rollout. The hook gets VZ_ACTIVE_GROUP and
// VZ_PREVIOUS_GROUP. It is a step keyed "switch:<group>" (phase switch):
// recorded before it runs and after, so a restart after a recorded success
// only records the group, and one during the run runs the hook again —
// hooks must be idempotent. The returned failure fails the stage (or, on
// the way back, is reported with the rollback's failures).
func (r *Reconciler) switchTraffic(ctx context.Context, des Desired, ro *vulnzero.Rollout, env rolloutEnv, from, to string) (*hostFailure, error) {
	key, ph := "switch:"+to, vulnzero.PhaseSwitch
	prior, ok, err := r.priorStep(ctx, ro, key, ph)
	if err != nil {
		return nil, err
	}
	setActive := func() error {
		ro.ActiveGroup = to
		r.log.Info("traffic switched", "rollout", ro.ID, "patch", ro.PatchID, "from", from, "to", to)
		return r.save(ctx, ro, ro.State)
	}
	if ok && prior.State == vulnzero.StepSucceeded {
		return nil, setActive()
	}
	hook := env.pol.BlueGreen.Switch
	if hook == nil {
		return &hostFailure{Host: key, Phase: ph, Err: "switch to " + to + ": the rollout policy has no blueGreen.switch hook"}, nil
	}
	host, found := des.Inventory.Host(hook.Host)
	if !found {
		return &hostFailure{Host: key, Phase: ph, Err: "switch to " + to + ": hook host " + hook.Host + " is not in the inventory"}, nil
	}
	cmd := r.command(ro, host, ph, []byte(hook.Command), cmp.Or(hook.Timeout, DefaultSwitchTimeout))
	cmd.Env["VZ_ACTIVE_GROUP"], cmd.Env["VZ_PREVIOUS_GROUP"] = to, from
	step, err := r.runCmd(ctx, ro, key, host, ph, cmd)
	if err != nil {
		return nil, err
	}
	if step.State != vulnzero.StepSucceeded {
		return &hostFailure{Host: key, Phase: ph, Err: fmt.Sprintf("switch to %s on %s: %s", to, hook.Host, stepError(step))}, nil
	}
	return nil, setActive()
}
