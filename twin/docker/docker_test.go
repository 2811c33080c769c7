package docker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fixtures/debs"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/remedy/rules"
	"vulnzero.dev/vulnzero/twin"
	"vulnzero.dev/vulnzero/twin/docker"
	"vulnzero.dev/vulnzero/twin/twintest"
)

// env is shared by every test: one image, one engine, one production
// target host (read only: tests read its state, never change it).
var env struct {
	image  string
	repos  twintest.Repos
	engine *docker.Engine
	target *twintest.Target
}

// TestMain builds the twin image when it is missing (the first run on a
// machine takes about a minute of debootstrap), the fixture apt
// repositories, and starts the target host. Real Docker, real dpkg and apt,
// real sshd in the containers.
func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "twin/docker tests:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	twintest.SetRyukDisabled()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var err error
	if env.image, err = twintest.EnsureImage(ctx); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "vz-twin-docker-test-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	if env.repos, err = twintest.BuildRepos(ctx, dir); err != nil {
		return 0, err
	}
	if env.engine, err = docker.NewEngine(ctx, nil); err != nil {
		return 0, err
	}
	defer env.engine.Close()
	if env.target, err = twintest.StartTarget(ctx, env.engine, env.image, env.repos.Stable, "web-1"); err != nil {
		return 0, err
	}
	defer env.target.Close()
	return m.Run(), nil
}

// provisioner makes twins of the target with repo as their mirror.
func provisioner(t testing.TB, repo string) *docker.Provisioner {
	t.Helper()
	p, err := docker.New(context.Background(), docker.Config{
		Images:   map[string]string{"debian 12": env.image},
		Services: []string{twintest.Service},
		Targets:  env.target.Client,
		Binds:    []string{twintest.Bind(repo)},
		Engine:   env.engine,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// goodPatch is what the rules generator writes for the fixture CVE: the
// real apt scripts, unmodified.
func goodPatch(t testing.TB) vulnzero.Patch {
	t.Helper()
	p, err := rules.Generate(rules.Request{
		PatchID: "apt-vz-demo-libfoo-1.0.1", Package: debs.LibfooFixed.Name, Manager: vulnzero.APT,
		FixedVersion: debs.LibfooFixed.Version, CVEs: []string{debs.CVE}, Hosts: []string{"web-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// twinContainers lists the twin containers (not hosts) this test process
// has, running or not, by label, as a crash sweep would see them.
func twinContainers(t *testing.T) []string {
	t.Helper()
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%s", host, os.Getpid(), procStartOf(t, os.Getpid()))
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+docker.LabelManaged+"=1",
		"--filter", "label="+docker.LabelRole+"=twin", "--filter", "label="+docker.LabelOwner+"="+owner).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// The rules-generated apt patch passes every phase in a container
// provisioned from the target's state; statuses are posted per phase with
// the transcript's link; the container is removed; the target is untouched.
func TestCheckerPassesGoodPatch(t *testing.T) {
	ctx := context.Background()
	posts, ts := &statusLog{}, &transcripts{}
	c := &twin.Checker{
		Provisioner: provisioner(t, env.repos.Stable), Statuses: posts, Transcripts: ts,
		BaseURL: "http://vz.example", Timeout: 5 * time.Minute,
		HealthChecks: []vulnzero.HealthCheck{twintest.HealthCheck}, // TwinPolicy.healthChecks
	}
	sha := "0123456789abcdef0123456789abcdef01234567"
	r, err := c.Check(ctx, sha, goodPatch(t), env.target.Host.Host)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed() {
		t.Fatalf("good patch failed at %s:\n%s", r.Failed, r.Transcript())
	}
	for i, ph := range r.Phases {
		if ph.Phase != twin.Phases[i] || !ph.Passed || ph.Skipped {
			t.Errorf("phase %d = %+v", i, ph)
		}
	}
	if got, want := len(posts.all), 2*len(twin.Phases); got != want {
		t.Fatalf("%d statuses posted, want %d", got, want)
	}
	for i, st := range posts.all {
		want := vulnzero.StatusPending
		if i >= len(twin.Phases) {
			want = vulnzero.StatusSuccess
			if st.TargetURL != "http://vz.example/transcripts/1" {
				t.Errorf("status %s links to %q", st.Context, st.TargetURL)
			}
		}
		if st.State != want || st.SHA != sha || !strings.HasPrefix(st.Context, twin.ContextPrefix) {
			t.Errorf("status %d = %+v", i, st)
		}
	}
	body := ts.all[0].Body
	t.Log(body)
	for _, want := range []string{
		"== provisioning", "docker container", "replica of web-1 (debian 12)",
		"installed to match the target: vz-demo-libfoo=1.0.0 vz-demo-web=1.0.0",
		"services started: vz-demo-web",
		"Unpacking vz-demo-libfoo (1.0.1) over (1.0.0)", // real dpkg, in apply
		"vz-demo-web ok (libfoo 1.0.1)",                 // the health endpoint
		"Unpacking vz-demo-libfoo (1.0.0) over (1.0.1)", // real dpkg, in rollback
		"== ok   manifest",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("transcript lacks %q:\n%s", want, body)
		}
	}
	if left := twinContainers(t); len(left) != 0 {
		t.Errorf("twin containers left behind: %v", left)
	}
	if v, err := twintest.Installed(ctx, env.target.Client, env.target.Host.Host, debs.LibfooVulnerable.Name); err != nil || v != "1.0.0" {
		t.Errorf("target's libfoo is %q (%v), want it untouched at 1.0.0", v, err)
	}
}

// Each broken patch fails in the twin, and the report names the phase that
// caught it. The cases run in parallel, one container each.
func TestRehearseNamesTheFailingPhase(t *testing.T) {
	good := goodPatch(t)
	good.HealthChecks = []vulnzero.HealthCheck{twintest.HealthCheck}
	withApply := func(script string) func(vulnzero.Patch) vulnzero.Patch {
		return func(p vulnzero.Patch) vulnzero.Patch { p.Scripts.Apply = []byte(script); return p }
	}
	cases := []struct {
		name  string
		repo  string
		patch func(vulnzero.Patch) vulnzero.Patch
		want  string
		// detail is in the failing phase's description or output.
		detail string
	}{
		{"does not fix", env.repos.Stable,
			withApply("#!/bin/sh\nset -e\napt-get update -qq\necho 'looks fine to me'\n"),
			twin.PhaseVerify, "verify.sh fails after apply"},
		{"breaks the service", env.repos.Next, // the mirror now has 1.0.2: the same rules patch picks it
			func(p vulnzero.Patch) vulnzero.Patch { return p },
			twin.PhaseHealth, "503"},
		{"rollback does not restore", env.repos.Stable,
			func(p vulnzero.Patch) vulnzero.Patch {
				p.Scripts.Rollback = []byte("#!/bin/sh\necho 'rolled back (not really)'\n")
				return p
			},
			twin.PhaseUnverify, "verify.sh still passes after rollback"},
		{"apply fails the second time", env.repos.Stable,
			withApply("#!/bin/sh\nset -e\n[ ! -f /root/applied-once ] || { echo 'already applied' >&2; exit 1; }\n" +
				"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq vz-demo-libfoo=1.0.1 </dev/null\ntouch /root/applied-once\n"),
			twin.PhaseIdempotent, "already applied"},
		{"apply changes packages the second time", env.repos.Stable,
			withApply("#!/bin/sh\nset -e\nexport DEBIAN_FRONTEND=noninteractive\n" +
				"if dpkg --compare-versions \"$(dpkg-query -W -f='${Version}' vz-demo-libfoo)\" ge 1.0.1; then apt-get install -y -qq vz-demo-tool </dev/null; fi\n" +
				"apt-get install -y -qq vz-demo-libfoo=1.0.1 </dev/null\n"),
			twin.PhaseIdempotent, "+ vz-demo-tool\t1.0.0"},
		{"rollback leaves a different manifest", env.repos.Stable,
			func(p vulnzero.Patch) vulnzero.Patch {
				p.Scripts.Rollback = append(append([]byte(nil), p.Scripts.Rollback...),
					[]byte("\nDEBIAN_FRONTEND=noninteractive apt-get install -y -qq vz-demo-tool </dev/null\n")...)
				return p
			},
			twin.PhaseManifest, "+ vz-demo-tool\t1.0.0"},
		{"apply hangs past its timeout", env.repos.Stable,
			func(p vulnzero.Patch) vulnzero.Patch {
				p.Scripts.Apply = []byte("#!/bin/sh\necho started\nsleep 600\n")
				p.Timeouts.Apply = 3 * time.Second
				return p
			},
			twin.PhaseApply, "timed out after 3s"},
	}
	stable, next := provisioner(t, env.repos.Stable), provisioner(t, env.repos.Next)
	t.Cleanup(func() { // after every parallel case
		if left := twinContainers(t); len(left) != 0 {
			t.Errorf("twin containers left behind: %v", left)
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			prov := stable
			if c.repo == env.repos.Next {
				prov = next
			}
			rep, err := prov.Provision(context.Background(), env.target.Host.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := rep.Close(); err != nil {
					t.Error(err)
				}
			}()
			r := twin.Rehearse(context.Background(), rep, c.patch(good), "web-1")
			t.Log(r.Transcript())
			if r.Failed != c.want {
				t.Fatalf("failed at %q, want %q:\n%s", r.Failed, c.want, r.Transcript())
			}
			for _, ph := range r.Phases {
				if ph.Phase == c.want && !strings.Contains(ph.Detail+ph.Output, c.detail) {
					t.Errorf("phase %s says %q, output:\n%s\nwant it to mention %q", ph.Phase, ph.Detail, ph.Output, c.detail)
				}
			}
		})
	}
}

// A twin copies the target: the vulnerable version, the target's apt
// sources, the service running; a target of an OS without an image is
// refused before any container starts.
func TestProvisionReplicatesTarget(t *testing.T) {
	ctx := context.Background()
	rep, err := provisioner(t, env.repos.Stable).Provision(ctx, env.target.Host.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	res, err := rep.Run(ctx, fleet.Command{Script: []byte(`set -e
dpkg-query -W -f='${Version}\n' vz-demo-libfoo
cat /etc/apt/sources.list.d/vz-fixtures.list
/etc/init.d/vz-demo-web status
` + twintest.HealthCheck.Command + "\n"), Timeout: time.Minute})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, %v\n%s\n%s", res.ExitCode, err, res.Stdout, res.Stderr)
	}
	for _, want := range []string{"1.0.0\n", twintest.Sources, "vz-demo-web is running", "vz-demo-web ok (libfoo 1.0.0)"} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("replica output lacks %q:\n%s", want, res.Stdout)
		}
	}
	if err := rep.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rep.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Provisioning that fails half-way removes its container.
	p, err := docker.New(ctx, docker.Config{
		Images: map[string]string{"debian 12": env.image}, Targets: env.target.Client, Engine: env.engine,
		Services: []string{"no-such-service"}, Binds: []string{twintest.Bind(env.repos.Stable)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = p.Provision(ctx, env.target.Host.Host); err == nil || !strings.Contains(err.Error(), "no-such-service: no init script and no systemd unit") {
		t.Fatalf("err = %v, want the missing service named", err)
	}
	if left := twinContainers(t); len(left) != 0 {
		t.Errorf("twin containers left behind by a failed Provision: %v", left)
	}

	p, err = docker.New(ctx, docker.Config{
		Images: map[string]string{"debian 11": env.image}, Targets: env.target.Client, Engine: env.engine,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Provision(ctx, env.target.Host.Host)
	if !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), `"debian 12"`) {
		t.Fatalf("err = %v, want ErrInvalid naming the target's OS", err)
	}
}

// NewEngine sweeps containers a crashed process left behind, and leaves
// alone those of processes that still run.
func TestSweepRemovesLeftovers(t *testing.T) {
	host, _ := os.Hostname()
	create := func(owner string) string {
		out, err := exec.Command("docker", "create", "--label", docker.LabelManaged+"=1", "--label", docker.LabelOwner+"="+owner,
			"--label", docker.LabelRole+"=twin", env.image).Output()
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSpace(string(out))
		t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", id).Run() })
		return id
	}
	// A pid that cannot exist (above pid_max), and pid 1 with the wrong
	// start time: both owners are dead.
	dead := []string{create(host + "/4194305/1"), create(host + "/1/999999999")}
	// This machine's init with its real start time is alive.
	alive := create(host + "/1/" + procStartOf(t, 1))

	e, err := docker.NewEngine(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, id := range dead {
		if exists(t, id) {
			t.Errorf("container %s of a dead owner survived the sweep", id[:12])
		}
	}
	if !exists(t, alive) {
		t.Errorf("container %s of a live owner was swept", alive[:12])
	}
}

func exists(t *testing.T, id string) bool {
	t.Helper()
	return exec.Command("docker", "inspect", id).Run() == nil
}

func procStartOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])[19]
}

type statusLog struct {
	mu  sync.Mutex
	all []vulnzero.CommitStatus
}

func (s *statusLog) SetStatus(_ context.Context, st vulnzero.CommitStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, st)
	return nil
}

type transcripts struct {
	mu  sync.Mutex
	all []vulnzero.Transcript
}

func (s *transcripts) AddTranscript(_ context.Context, t vulnzero.Transcript) (vulnzero.Transcript, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t.ID = int64(len(s.all) + 1)
	s.all = append(s.all, t)
	return t, nil
}

// BenchmarkTwinRun times one whole twin run with a warm image: read the
// target, start the container, replicate the target, rehearse the good
// patch through every phase, remove the container. Run it with
// `make bench-twin`.
func BenchmarkTwinRun(b *testing.B) {
	ctx := context.Background()
	prov := provisioner(b, env.repos.Stable)
	p := goodPatch(b)
	p.HealthChecks = []vulnzero.HealthCheck{twintest.HealthCheck}
	for b.Loop() {
		rep, err := prov.Provision(ctx, env.target.Host.Host)
		if err != nil {
			b.Fatal(err)
		}
		r := twin.Rehearse(ctx, rep, p, "web-1")
		if err := rep.Close(); err != nil {
			b.Fatal(err)
		}
		if !r.Passed() {
			b.Fatalf("failed at %s:\n%s", r.Failed, r.Transcript())
		}
	}
}
