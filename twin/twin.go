// Package twin rehearses a patch on a replica of a target host before it is
// merged: apply → verify passes → apply again (idempotent) → health checks →
// rollback → verify fails again → the package manifest equals the pre-patch
// one. Each phase becomes a commit status on the PR head, linked to the
// transcript of what ran.
//
// The phase sequence lives here, written once against the Replica interface;
// where the replica comes from is a Provisioner: twin/local (sandbox hosts, for
// the demo), and later a Docker container or a staging host over SSH.
package twin

import (
	"context"
	"fmt"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
)

// Phase names, in the order they run. They are the suffixes of the status
// contexts ("vulnzero/twin/apply", …), so they never change.
const (
	PhaseApply      = "apply"
	PhaseVerify     = "verify"
	PhaseIdempotent = "idempotent"
	PhaseHealth     = "health"
	PhaseRollback   = "rollback"
	PhaseUnverify   = "verify-after-rollback"
	PhaseManifest   = "manifest"
)

// Phases lists every phase in order.
var Phases = []string{PhaseApply, PhaseVerify, PhaseIdempotent, PhaseHealth, PhaseRollback, PhaseUnverify, PhaseManifest}

// manifestScript lists installed packages, one "name<TAB>version" per line,
// the way the scripts' own package manager sees them.
const manifestScript = "dpkg-query -W -f='${Package}\\t${Version}\\n'\n"

// Replica is a running copy of a target host that runs scripts as the host
// would (with /bin/sh, as root).
type Replica interface {
	Run(ctx context.Context, cmd fleet.Command) (fleet.Result, error)
	Close() error
}

// Provisioner builds a replica of a target host.
type Provisioner interface {
	Provision(ctx context.Context, target vulnzero.Host) (Replica, error)
}

// PhaseResult is the outcome of one phase.
type PhaseResult struct {
	Phase    string        `json:"phase"`
	Passed   bool          `json:"passed"`
	Skipped  bool          `json:"skipped"` // an earlier phase failed
	ExitCode int           `json:"exit_code"`
	Detail   string        `json:"detail"` // one line for the status description
	Output   string        `json:"output"`
	Duration time.Duration `json:"duration"`
}

// Report is the outcome of a rehearsal.
type Report struct {
	PatchID string        `json:"patch_id"`
	Target  string        `json:"target"`
	Phases  []PhaseResult `json:"phases"`
	// Failed names the first phase that failed; empty when all passed.
	Failed   string        `json:"failed"`
	Duration time.Duration `json:"duration"`
	// Provisioning says what the replica is and how faithfully it copies
	// the target (set by Checker from the replica, when it can say).
	Provisioning string `json:"provisioning,omitempty"`
}

// Passed reports whether every phase passed.
func (r Report) Passed() bool { return r.Failed == "" }

// Rehearse runs every phase of p on the replica and reports each. It stops
// at the first failing phase — except that once apply has run, rollback is
// still attempted so the replica is left as found — and marks the rest
// skipped. An error is returned only when the replica itself breaks.
func Rehearse(ctx context.Context, rep Replica, p vulnzero.Patch, target string) Report {
	start := time.Now()
	r := Report{PatchID: p.ID, Target: target}
	env := func(phase string) map[string]string {
		return map[string]string{"VZ_PATCH_ID": p.ID, "VZ_HOST": target, "VZ_PHASE": phase}
	}
	run := func(phase string, script []byte, timeout time.Duration) (fleet.Result, error) {
		return rep.Run(ctx, fleet.Command{Script: script, Env: env(phase), Timeout: timeout})
	}
	add := func(res PhaseResult) bool {
		r.Phases = append(r.Phases, res)
		if !res.Passed && r.Failed == "" {
			r.Failed = res.Phase
		}
		return res.Passed
	}
	// expect runs a script and passes the phase when the exit code matches.
	expect := func(phase string, script []byte, timeout time.Duration, wantZero bool, okDetail, badDetail string) bool {
		res, err := run(phase, script, timeout)
		pr := PhaseResult{Phase: phase, ExitCode: res.ExitCode, Output: output(res), Duration: res.Duration}
		switch {
		case err != nil:
			pr.Detail = fmt.Sprintf("%s did not run: %v", phase, err)
		case (res.ExitCode == 0) == wantZero:
			pr.Passed, pr.Detail = true, okDetail
		default:
			pr.Detail = fmt.Sprintf("%s (exit %d)", badDetail, res.ExitCode)
		}
		return add(pr)
	}

	before, berr := run("manifest", []byte(manifestScript), time.Minute)
	applied := false
	ok := berr == nil && before.ExitCode == 0
	if !ok {
		add(PhaseResult{Phase: PhaseApply, Detail: "could not read the package manifest before apply", Output: output(before)})
	}
	if ok {
		applied = true
		ok = expect(PhaseApply, p.Scripts.Apply, orDefault(p.Timeouts.Apply, 10*time.Minute), true, "apply.sh exited 0", "apply.sh failed")
	}
	if ok {
		ok = expect(PhaseVerify, p.Scripts.Verify, orDefault(p.Timeouts.Verify, 2*time.Minute), true, "verify.sh passes after apply", "verify.sh fails after apply: the patch does not fix")
	}
	if ok {
		ok = idempotent(run, p, add)
	}
	if ok {
		ok = health(run, p, add)
	}
	if applied {
		rolled := expect(PhaseRollback, p.Scripts.Rollback, orDefault(p.Timeouts.Rollback, 10*time.Minute), true, "rollback.sh exited 0", "rollback.sh failed")
		if ok && rolled {
			ok = expect(PhaseUnverify, p.Scripts.Verify, orDefault(p.Timeouts.Verify, 2*time.Minute), false, "verify.sh fails again after rollback", "verify.sh still passes after rollback: rollback does not restore")
		}
		if ok && rolled {
			after, err := run("manifest", []byte(manifestScript), time.Minute)
			pr := PhaseResult{Phase: PhaseManifest, Duration: after.Duration}
			switch diff := manifestDiff(before.Stdout, after.Stdout); {
			case err != nil || after.ExitCode != 0:
				pr.Detail, pr.Output = "could not read the package manifest after rollback", output(after)
			case diff != "":
				pr.Detail, pr.Output = "package manifest differs from the pre-patch one", diff
			default:
				pr.Passed, pr.Detail = true, "package manifest equals the pre-patch one"
			}
			add(pr)
		}
	}
	for _, ph := range Phases {
		if !r.has(ph) {
			r.Phases = append(r.Phases, PhaseResult{Phase: ph, Skipped: true, Detail: "skipped: " + r.Failed + " failed"})
		}
	}
	r.Duration = time.Since(start)
	return r
}

// runFunc runs one script on the replica for a phase.
type runFunc = func(phase string, script []byte, timeout time.Duration) (fleet.Result, error)

// idempotent runs apply a second time: it must exit 0 and change nothing.
func idempotent(run runFunc, p vulnzero.Patch, add func(PhaseResult) bool) bool {
	before, err := run("manifest", []byte(manifestScript), time.Minute)
	if err != nil {
		return add(PhaseResult{Phase: PhaseIdempotent, Detail: "manifest: " + err.Error()})
	}
	res, err := run(PhaseIdempotent, p.Scripts.Apply, orDefault(p.Timeouts.Apply, 10*time.Minute))
	pr := PhaseResult{Phase: PhaseIdempotent, ExitCode: res.ExitCode, Output: output(res), Duration: res.Duration}
	if err != nil || res.ExitCode != 0 {
		pr.Detail = fmt.Sprintf("second apply failed (exit %d): apply.sh is not idempotent", res.ExitCode)
		return add(pr)
	}
	after, err := run("manifest", []byte(manifestScript), time.Minute)
	if err != nil {
		pr.Detail = "manifest: " + err.Error()
		return add(pr)
	}
	if d := manifestDiff(before.Stdout, after.Stdout); d != "" {
		pr.Detail, pr.Output = "second apply changed packages: apply.sh is not idempotent", pr.Output+"\n"+d
		return add(pr)
	}
	pr.Passed, pr.Detail = true, "second apply exited 0 and changed nothing"
	return add(pr)
}

// health runs the patch's health checks; none configured passes.
func health(run runFunc, p vulnzero.Patch, add func(PhaseResult) bool) bool {
	pr := PhaseResult{Phase: PhaseHealth, Passed: true, Detail: "no health checks configured"}
	var out strings.Builder
	for _, hc := range p.HealthChecks {
		res, err := run(PhaseHealth, []byte(hc.Command+"\n"), time.Minute)
		pr.Duration += res.Duration
		fmt.Fprintf(&out, "$ %s  # %s\n%s", hc.Command, hc.Name, output(res))
		if err != nil || res.ExitCode != 0 {
			pr.Passed, pr.ExitCode = false, res.ExitCode
			pr.Detail = fmt.Sprintf("health check %s failed (exit %d)", hc.Name, res.ExitCode)
			break
		}
		pr.Detail = fmt.Sprintf("%d health checks pass", len(p.HealthChecks))
	}
	pr.Output = out.String()
	return add(pr)
}

func (r Report) has(phase string) bool {
	for _, p := range r.Phases {
		if p.Phase == phase {
			return true
		}
	}
	return false
}

// manifestDiff returns the lines that differ between two manifests, "-" for
// removed and "+" for added, or "" when they are equal.
func manifestDiff(before, after string) string {
	b, a := lineSet(before), lineSet(after)
	var d strings.Builder
	for l := range b {
		if !a[l] {
			d.WriteString("- " + l + "\n")
		}
	}
	for l := range a {
		if !b[l] {
			d.WriteString("+ " + l + "\n")
		}
	}
	return d.String()
}

func lineSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			m[l] = true
		}
	}
	return m
}

func output(r fleet.Result) string {
	s := r.Stdout
	if r.Stderr != "" {
		s += "\n[stderr]\n" + r.Stderr
	}
	return s
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Transcript renders a report as the text a status links to.
func (r Report) Transcript() string {
	var b strings.Builder
	verdict := "PASSED"
	if !r.Passed() {
		verdict = "FAILED at " + r.Failed
	}
	fmt.Fprintf(&b, "twin rehearsal of %s on a replica of %s: %s (%s)\n", r.PatchID, r.Target, verdict, r.Duration.Round(time.Millisecond))
	if r.Provisioning != "" {
		b.WriteString("\n== provisioning\n" + strings.TrimRight(r.Provisioning, "\n") + "\n")
	}
	for _, p := range r.Phases {
		mark := "ok  "
		switch {
		case p.Skipped:
			mark = "skip"
		case !p.Passed:
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "\n== %s %s (exit %d, %s): %s\n", mark, p.Phase, p.ExitCode, p.Duration.Round(time.Millisecond), p.Detail)
		if p.Output != "" {
			b.WriteString(p.Output)
			if !strings.HasSuffix(p.Output, "\n") {
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}
