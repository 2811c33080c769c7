package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fixtures/debs"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/remedy/rules"
	"vulnzero.dev/vulnzero/twin"
	"vulnzero.dev/vulnzero/twin/docker"
	twinssh "vulnzero.dev/vulnzero/twin/ssh"
	"vulnzero.dev/vulnzero/twin/twintest"
)

// The production target and the staging host are both containers of the
// twin image running Debian's real OpenSSH sshd, reached over SSH with
// pinned host keys; the staging host starts in another state than the
// target (the fixed library, an extra package, stale patch state).
var env struct {
	target  *twintest.Target
	staging *docker.Host
	client  *fleet.Client // reaches the staging host
}

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "twin/ssh tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// staleStaging is the staging host's state before any rehearsal: what an
// earlier rehearsal with a broken rollback would leave behind.
const staleStaging = `set -eu
echo '` + twintest.Sources + `' >/etc/apt/sources.list.d/vz-fixtures.list
apt-get update -qq </dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vz-demo-libfoo=1.0.1 vz-demo-tool </dev/null >/dev/null
mkdir -p /var/lib/vulnzero/apt-vz-demo-libfoo-1.0.1
echo 0.9 >/var/lib/vulnzero/apt-vz-demo-libfoo-1.0.1/previous-version
`

func setup(m *testing.M) (int, error) {
	twintest.SetRyukDisabled()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	image, err := twintest.EnsureImage(ctx)
	if err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "vz-twin-ssh-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	repos, err := twintest.BuildRepos(ctx, dir)
	if err != nil {
		return 0, err
	}
	engine, err := docker.NewEngine(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer engine.Close()
	if env.target, err = twintest.StartTarget(ctx, engine, image, repos.Stable, "web-1"); err != nil {
		return 0, err
	}
	defer env.target.Close()
	if env.staging, err = engine.StartHost(ctx, docker.HostSpec{Image: image, Name: "staging-1", Binds: []string{twintest.Bind(repos.Stable)}}); err != nil {
		return 0, err
	}
	if env.client, err = fleet.New(env.staging.FleetConfig(nil)); err != nil {
		return 0, err
	}
	defer env.client.Close()
	res, err := env.client.Run(ctx, env.staging.Host, fleet.Command{Script: []byte(staleStaging), Timeout: 2 * time.Minute})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("staging setup: exit %d: %s", res.ExitCode, res.Stderr)
	}
	if err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func provisioner(t *testing.T) *twinssh.Provisioner {
	t.Helper()
	p, err := twinssh.New(twinssh.Config{
		Staging: env.staging.Host, Runner: env.client, Targets: env.target.Client,
		Services: []string{twintest.Service},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func goodPatch(t *testing.T) vulnzero.Patch {
	t.Helper()
	p, err := rules.Generate(rules.Request{
		PatchID: "apt-vz-demo-libfoo-1.0.1", Package: debs.LibfooFixed.Name, Manager: vulnzero.APT,
		FixedVersion: debs.LibfooFixed.Version, CVEs: []string{debs.CVE}, Hosts: []string{"web-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.HealthChecks = []vulnzero.HealthCheck{twintest.HealthCheck}
	return p
}

// The staging host is synced to the target and rehearses the rules patch
// through every phase; a rehearsal whose rollback does not restore fails at
// the right phase, and the next rehearsal still starts from the target's
// state. The tests share one staging host, so they run in order.
func TestStagingHostRehearsals(t *testing.T) {
	ctx := context.Background()
	prov := provisioner(t)
	good := goodPatch(t)

	rehearse := func(p vulnzero.Patch) twin.Report {
		t.Helper()
		rep, err := prov.Provision(ctx, env.target.Host.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer rep.Close()
		r := twin.Rehearse(ctx, rep, p, "web-1")
		r.Provisioning = rep.(interface{ Describe() string }).Describe()
		t.Log(r.Transcript())
		return r
	}

	r := rehearse(good)
	if !r.Passed() {
		t.Fatalf("good patch failed at %s:\n%s", r.Failed, r.Transcript())
	}
	for _, want := range []string{
		"staging host staging-1", "installed to match the target: vz-demo-libfoo=1.0.0 vz-demo-web=1.0.0",
		"packages the replica has beyond the target's: 1", "services started: vz-demo-web",
		// Real dpkg downgrading in rollback, to the target's version: the
		// stale state (previous version 0.9) was cleared, or apply would
		// have kept it and rollback tried to restore 0.9.
		"Unpacking vz-demo-libfoo (1.0.0) over (1.0.1)",
	} {
		if !strings.Contains(r.Transcript(), want) {
			t.Errorf("transcript lacks %q", want)
		}
	}

	broken := good
	broken.Scripts.Rollback = []byte("#!/bin/sh\necho 'rolled back (not really)'\n")
	if r := rehearse(broken); r.Failed != twin.PhaseUnverify {
		t.Fatalf("broken rollback failed at %q, want %q:\n%s", r.Failed, twin.PhaseUnverify, r.Transcript())
	}
	if v, _ := twintest.Installed(ctx, env.client, env.staging.Host, "vz-demo-libfoo"); v != "1.0.1" {
		t.Fatalf("staging host's libfoo after the broken rollback = %q, want 1.0.1 (left as the rollback left it)", v)
	}
	if r := rehearse(good); !r.Passed() {
		t.Fatalf("good patch after a broken rehearsal failed at %s:\n%s", r.Failed, r.Transcript())
	}
	if v, _ := twintest.Installed(ctx, env.target.Client, env.target.Host.Host, "vz-demo-libfoo"); v != "1.0.0" {
		t.Errorf("target's libfoo = %q, want it untouched at 1.0.0", v)
	}
}

// One rehearsal at a time: a second Provision waits for the first replica
// to be closed, and gives up when its context ends.
func TestStagingHostIsExclusive(t *testing.T) {
	ctx := context.Background()
	prov := provisioner(t)
	first, err := prov.Provision(ctx, env.target.Host.Host)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := prov.Provision(short, env.target.Host.Host); !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "waiting for the staging host") {
		t.Fatalf("second Provision while the first runs: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := prov.Provision(ctx, env.target.Host.Host)
	if err != nil {
		t.Fatalf("Provision after Close: %v", err)
	}
	_ = second.Close()
}

// A target of another OS is refused: the staging host would not resemble
// it. (The target is a canned runner: both containers run Debian 12.)
func TestStagingHostRefusesAnotherOS(t *testing.T) {
	prov, err := twinssh.New(twinssh.Config{Staging: env.staging.Host, Runner: env.client, Targets: cannedTarget{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = prov.Provision(context.Background(), vulnzero.Host{Name: "ubuntu-1"})
	if !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), `"ubuntu 22.04"`) {
		t.Fatalf("err = %v, want ErrInvalid naming both OSes", err)
	}
	// The failed Provision freed the staging host.
	rep, err := provisioner(t).Provision(context.Background(), env.target.Host.Host)
	if err != nil {
		t.Fatal(err)
	}
	_ = rep.Close()
}

func TestConfigValidate(t *testing.T) {
	_, err := twinssh.New(twinssh.Config{StateDirs: []string{"/", "var/x"}})
	if !errors.Is(err, vulnzero.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	for _, want := range []string{"no address", "Runner is required", `"/"`, `"var/x"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// cannedTarget answers ReadHostState as an Ubuntu host would.
type cannedTarget struct{}

func (cannedTarget) Run(context.Context, vulnzero.Host, fleet.Command) (fleet.Result, error) {
	return fleet.Result{Stdout: "@@os ubuntu 22.04\n@@manifest\nbase-files\t12ubuntu4\n@@apt\n@@end\n"}, nil
}
