package reconciler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/sandbox"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// sandboxPatch is a patch whose scripts really change the sandbox hosts: a
// "version" file stands in for the package. apply.sh refuses to run on a
// host with a "broken" file, as dpkg would on a host with a held package.
func sandboxPatch(rev vulnzero.Revision) vulnzero.DesiredPatch {
	dp := testPatch(rev)
	dp.Patch.HealthChecks = []vulnzero.HealthCheck{{Name: "version file", Command: "test -s version"}}
	dp.Patch.Scripts = vulnzero.Scripts{
		Apply: []byte(`set -e
if [ -f broken ]; then echo "dpkg: dependency problems on $VZ_HOST" >&2; exit 1; fi
cp version version.before 2>/dev/null || true
echo 3.0.13 > version
echo "$VZ_PATCH_ID $VZ_HOST $VZ_PHASE" > vz.env
echo "upgraded openssl on $VZ_HOST"
`),
		Verify:   []byte(`test "$(cat version)" = 3.0.13`),
		Rollback: []byte("set -e\nif [ -f version.before ]; then mv version.before version; fi\necho rolled back\n"),
	}
	return dp
}

// TestSandboxFleet drives real SSH: sandbox hosts on loopback (host keys
// checked against known_hosts, key authentication) through fleet.Client,
// with a real SQLite store. A broken host in stage 2 makes the rollout roll
// every touched host back for real; a fixed revision then rolls out.
func TestSandboxFleet(t *testing.T) {
	ctx := t.Context()
	var specs []sandbox.HostSpec
	for i := 1; i <= 4; i++ {
		files := map[string]string{"version": "3.0.2\n"}
		if i == 3 {
			files["broken"] = "held\n"
		}
		specs = append(specs, sandbox.HostSpec{Name: fmt.Sprintf("h%02d", i), Labels: map[string]string{"role": "web"}, Files: files})
	}
	sb, err := sandbox.Start(ctx, sandbox.Config{Dir: t.TempDir(), Hosts: specs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	signer, err := fleet.LoadSigner(sb.ClientKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	hostKeys, err := fleet.KnownHosts(sb.KnownHostsPath())
	if err != nil {
		t.Fatal(err)
	}
	client, err := fleet.New(fleet.Config{Signers: []ssh.Signer{signer}, HostKeyCallback: hostKeys, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })

	src := &fakeSource{d: Desired{Commit: "main-1", Patches: []vulnzero.DesiredPatch{sandboxPatch("r1")},
		Inventory: vulnzero.Inventory{Hosts: sb.Hosts()}, Policies: policies.Defaults()}}
	rev := &fakeReverter{}
	var soaks []time.Duration
	r, err := New(Config{Source: src, Runner: client, Store: st, Reverter: rev, Metrics: NewMetrics(prometheus.NewRegistry()),
		Wait: func(_ context.Context, d time.Duration) error { soaks = append(soaks, d); return nil }})
	if err != nil {
		t.Fatal(err)
	}
	version := func(h string) string {
		b, err := os.ReadFile(filepath.Join(sb.Root(h), "version"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}

	// r1: the canary (h01) passes, stage 2 (h02–h04) fails on h03.
	rep, err := r.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce: %v\n%s", err, rep)
	}
	o := onlyOutcome(t, rep)
	if o.State != vulnzero.RolloutRolledBack || !strings.Contains(o.Detail, "apply failed on h03") {
		t.Fatalf("outcome = %s, want r1 rolled back after h03's apply failed", o)
	}
	for _, h := range []string{"h01", "h02", "h03", "h04"} {
		if v := version(h); v != "3.0.2" {
			t.Errorf("%s version = %s after rollback, want 3.0.2", h, v)
		}
	}
	if len(rev.calls) != 1 {
		t.Errorf("revert calls = %d, want 1", len(rev.calls))
	}
	steps, err := st.ListHostSteps(ctx, o.RolloutID)
	if err != nil {
		t.Fatal(err)
	}
	var sawStderr bool
	for _, s := range steps {
		if s.Host == "h03" && s.Phase == vulnzero.PhaseApply {
			sawStderr = s.State == vulnzero.StepFailed && s.ExitCode == 1 && strings.Contains(s.Stderr, "dpkg: dependency problems on h03")
		}
	}
	if !sawStderr {
		t.Errorf("h03's apply step does not hold its stderr and exit code: %+v", steps)
	}

	// The host is fixed and main gets a new revision: it rolls out everywhere.
	if err := os.Remove(filepath.Join(sb.Root("h03"), "broken")); err != nil {
		t.Fatal(err)
	}
	src.set(func(d *Desired) { d.Commit, d.Patches = "main-3", []vulnzero.DesiredPatch{sandboxPatch("r2")} })
	rep, err = r.RunOnce(ctx)
	if err != nil {
		t.Fatalf("RunOnce: %v\n%s", err, rep)
	}
	if o := onlyOutcome(t, rep); o.State != vulnzero.RolloutSucceeded {
		t.Fatalf("outcome = %s, want r2 to succeed", o)
	}
	for _, h := range []string{"h01", "h02", "h03", "h04"} {
		if v := version(h); v != "3.0.13" {
			t.Errorf("%s version = %s, want 3.0.13", h, v)
		}
		env, err := os.ReadFile(filepath.Join(sb.Root(h), "vz.env"))
		if err != nil || strings.TrimSpace(string(env)) != patchID+" "+h+" apply" {
			t.Errorf("%s saw VZ_* = %q (%v)", h, env, err)
		}
	}
}
