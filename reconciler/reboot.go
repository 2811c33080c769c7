package reconciler

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/policies"
)

// RebootRequiredMarker is the line apply.sh prints when the host needs a
// reboot to finish the change (the rules generator's templates print it
// when /var/run/reboot-required exists).
const RebootRequiredMarker = "VZ_REBOOT_REQUIRED=1"

// bootIDCommand reads the kernel's boot id, which changes on every boot.
const bootIDCommand = "cat /proc/sys/kernel/random/boot_id"

// bootIDPrefix starts the line of a reboot step's output that records the
// boot id seen before the reboot, so a restarted reconciler knows what to
// wait for.
const bootIDPrefix = "boot_id before: "

type rebootDecision int

const (
	rebootNo      rebootDecision = iota
	rebootNow                    // reboot, wait for a new boot id
	rebootPending                // the host wants one, the patch says never
)

// rebootNeeded decides from the patch's reboot mode and apply.sh's output.
func rebootNeeded(mode vulnzero.Reboot, applyStdout string) rebootDecision {
	wants := false
	sc := bufio.NewScanner(strings.NewReader(applyStdout))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == RebootRequiredMarker {
			wants = true
			break
		}
	}
	switch {
	case mode == vulnzero.RebootAlways:
		return rebootNow
	case mode == vulnzero.RebootIfRequired && wants:
		return rebootNow
	case wants:
		return rebootPending
	}
	return rebootNo
}

// pendingReboot records that the host wants a reboot the patch will not do
// (reboot: never): a skipped reboot step, so `rollout show` and the API can
// list hosts pending a reboot.
func (r *Reconciler) pendingReboot(ctx context.Context, ro *vulnzero.Rollout, host vulnzero.Host) (vulnzero.HostStep, error) {
	now := r.cfg.Now()
	step := vulnzero.HostStep{RolloutID: ro.ID, Host: host.Name, Phase: vulnzero.PhaseReboot, State: vulnzero.StepSkipped,
		Stdout:    "pending reboot: apply.sh printed " + RebootRequiredMarker + " and the patch says reboot: never\n",
		StartedAt: now, FinishedAt: now}
	r.log.Info("host pending reboot", "rollout", ro.ID, "patch", ro.PatchID, "host", host.Name)
	return step, r.putStep(ctx, step)
}

// PendingReboot reports whether a recorded step marks its host as pending
// a reboot.
func PendingReboot(s vulnzero.HostStep) bool {
	return s.Phase == vulnzero.PhaseReboot && s.State == vulnzero.StepSkipped
}

// reboot reboots a host and waits for it to come back with a new boot id:
//
//  1. read the boot id (or take the one a step started before a restart
//     recorded), and record the step as started with it;
//  2. on a resume, a host already up with another boot id has rebooted:
//     done, without rebooting twice;
//  3. run the policy's reboot command (an error is expected: the
//     connection may drop as the host goes down; a non-zero exit is not);
//  4. read the boot id every PollInterval until it differs (done) or the
//     policy's timeout passes (failed: the host did not come back).
//
// Verify and health checks run after it, on the rebooted host.
func (r *Reconciler) reboot(ctx context.Context, ro *vulnzero.Rollout, host vulnzero.Host, env rolloutEnv, prior vulnzero.HostStep) (vulnzero.HostStep, error) {
	ph := vulnzero.PhaseReboot
	pol := env.pol.Reboot
	timeout, poll := cmp.Or(pol.Timeout, DefaultRebootTimeout), cmp.Or(pol.PollInterval, DefaultRebootPoll)
	step := vulnzero.HostStep{RolloutID: ro.ID, Host: host.Name, Phase: ph, State: vulnzero.StepStarted, StartedAt: r.cfg.Now()}
	finish := func(state vulnzero.StepState, msg string) (vulnzero.HostStep, error) {
		step.State, step.Error, step.FinishedAt = state, msg, r.cfg.Now()
		result := "ok"
		if state == vulnzero.StepFailed {
			result = "failed"
			step.ExitCode = 1
		}
		r.m.HostResults.WithLabelValues(string(ph), result).Inc()
		return step, r.putStep(ctx, step)
	}

	old := recordedBootID(prior.Stdout)
	resumed := old != ""
	if !resumed {
		id, err := r.bootID(ctx, host)
		if ctx.Err() != nil {
			return step, fmt.Errorf("reboot %s: %w", host.Name, ctx.Err())
		}
		if err != nil {
			return finish(vulnzero.StepFailed, "read boot_id before the reboot: "+err.Error())
		}
		old = id
	}
	step.Stdout = bootIDPrefix + old + "\n"
	if err := r.putStep(ctx, step); err != nil {
		return step, err
	}
	r.firstCommand(ro.ID)
	if resumed {
		if id, err := r.bootID(ctx, host); err == nil && id != old {
			step.Stdout += "boot_id after: " + id + " (rebooted before the reconciler restarted)\n"
			return finish(vulnzero.StepSucceeded, "")
		}
	}
	cmd := r.command(ro, host, ph, []byte(cmp.Or(pol.Command, policies.DefaultRebootCommand)), time.Minute)
	res, err := r.run(ctx, host, cmd)
	if ctx.Err() != nil {
		return step, fmt.Errorf("reboot %s: %w", host.Name, ctx.Err())
	}
	step.Stdout += res.Stdout
	step.Stderr = res.Stderr
	if err == nil && res.ExitCode != 0 {
		step.ExitCode = res.ExitCode
		return finish(vulnzero.StepFailed, fmt.Sprintf("reboot command: exit status %d", res.ExitCode))
	}
	if err != nil {
		step.Stdout += "reboot command: " + err.Error() + " (expected while the host goes down)\n"
	}
	deadline := r.cfg.Now().Add(timeout)
	for {
		if err := r.cfg.Wait(ctx, poll); err != nil {
			return step, fmt.Errorf("reboot %s: wait for a new boot_id: %w", host.Name, err)
		}
		id, err := r.bootID(ctx, host)
		if ctx.Err() != nil {
			return step, fmt.Errorf("reboot %s: %w", host.Name, ctx.Err())
		}
		if err == nil && id != old {
			step.Stdout += "boot_id after: " + id + "\n"
			return finish(vulnzero.StepSucceeded, "")
		}
		if !r.cfg.Now().Before(deadline) {
			why := "boot_id unchanged"
			if err != nil {
				why = err.Error()
			}
			return finish(vulnzero.StepFailed, fmt.Sprintf("no new boot_id within %s (%s): %v", timeout, why, vulnzero.ErrUnreachable))
		}
	}
}

// bootID reads the host's boot id.
func (r *Reconciler) bootID(ctx context.Context, host vulnzero.Host) (string, error) {
	res, err := r.run(ctx, host, fleet.Command{Script: []byte(bootIDCommand), Timeout: 15 * time.Second})
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(res.Stdout)
	if res.ExitCode != 0 || id == "" || strings.ContainsAny(id, " \n") {
		return "", fmt.Errorf("read boot_id: exit status %d, output %q", res.ExitCode, firstLine(res.Stdout))
	}
	return id, nil
}

func recordedBootID(stdout string) string {
	for _, line := range strings.Split(stdout, "\n") {
		if id, ok := strings.CutPrefix(line, bootIDPrefix); ok {
			return strings.TrimSpace(id)
		}
	}
	return ""
}
