package local_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/remedy/rules"
	"vulnzero.dev/vulnzero/sandbox"
	"vulnzero.dev/vulnzero/sandbox/pkgtool"
	"vulnzero.dev/vulnzero/twin"
	"vulnzero.dev/vulnzero/twin/local"
)

// The test binary doubles as the sandbox hosts' package tool.
func TestMain(m *testing.M) {
	if os.Getenv("VZ_PKGTOOL") == "1" {
		os.Exit(pkgtool.Main(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
	}
	os.Exit(m.Run())
}

var available = map[string][]string{"vz-demo-libfoo": {"1.0.0", "1.0.1"}}

// env is a target host (a sandbox host with libfoo 1.0.0) and a
// provisioner of its replicas.
type env struct {
	target vulnzero.Host
	prov   *local.Provisioner
}

func setup(t *testing.T) env {
	t.Helper()
	tool, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hosts, err := sandbox.Start(context.Background(), sandbox.Config{Dir: dir, Hosts: []sandbox.HostSpec{{Name: "web-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hosts.Close() })
	if err := pkgtool.Provision(hosts.Root("web-1"), tool, map[string]string{"vz-demo-libfoo": "1.0.0", "base-files": "12.4"}, available); err != nil {
		t.Fatal(err)
	}
	signer, err := fleet.LoadSigner(hosts.ClientKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	hk, err := fleet.KnownHosts(hosts.KnownHostsPath())
	if err != nil {
		t.Fatal(err)
	}
	client, err := fleet.New(fleet.Config{Signers: []ssh.Signer{signer}, HostKeyCallback: hk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return env{
		target: hosts.Hosts()[0],
		prov:   &local.Provisioner{Targets: client, Available: available, ToolPath: tool, Dir: t.TempDir()},
	}
}

func aptPatch(t *testing.T) vulnzero.Patch {
	t.Helper()
	p, err := rules.Generate(rules.Request{
		PatchID: "apt-vz-demo-libfoo-1.0.1", Package: "vz-demo-libfoo", Manager: vulnzero.APT,
		FixedVersion: "1.0.1", CVEs: []string{"CVE-2026-10001"}, Hosts: []string{"web-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A good rules-generated patch passes every phase on a real SSH replica,
// and the target itself is untouched.
func TestRehearseGoodPatch(t *testing.T) {
	e := setup(t)
	rep, err := e.prov.Provision(context.Background(), e.target)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close()
	r := twin.Rehearse(context.Background(), rep, aptPatch(t), e.target.Name)
	if !r.Passed() {
		t.Fatalf("good patch failed at %s:\n%s", r.Failed, r.Transcript())
	}
	if len(r.Phases) != len(twin.Phases) {
		t.Fatalf("%d phases reported, want %d", len(r.Phases), len(twin.Phases))
	}
	for i, ph := range r.Phases {
		if ph.Phase != twin.Phases[i] || !ph.Passed || ph.Skipped {
			t.Errorf("phase %d = %+v", i, ph)
		}
	}
	if !strings.Contains(r.Transcript(), "PASSED") {
		t.Errorf("transcript does not say PASSED:\n%s", r.Transcript())
	}
}

// Each broken patch fails, and the report names the phase that caught it.
func TestRehearseNamesTheFailingPhase(t *testing.T) {
	e := setup(t)
	good := aptPatch(t)
	cases := []struct {
		name  string
		patch func(p vulnzero.Patch) vulnzero.Patch
		want  string
	}{
		{"does not fix", func(p vulnzero.Patch) vulnzero.Patch {
			p.Scripts.Apply = []byte("#!/bin/sh\necho 'nothing to do'\n")
			return p
		}, twin.PhaseVerify},
		{"apply fails", func(p vulnzero.Patch) vulnzero.Patch {
			p.Scripts.Apply = []byte("#!/bin/sh\napt-get install -y vz-demo-libfoo=9.9.9\n")
			return p
		}, twin.PhaseApply},
		{"not idempotent", func(p vulnzero.Patch) vulnzero.Patch {
			p.Scripts.Apply = []byte("#!/bin/sh\nset -e\n[ ! -f applied-once ] || { echo 'already applied' >&2; exit 1; }\napt-get install -y vz-demo-libfoo=1.0.1\ntouch applied-once\n")
			return p
		}, twin.PhaseIdempotent},
		{"breaks the service", func(p vulnzero.Patch) vulnzero.Patch {
			p.Scripts.Apply = append(append([]byte(nil), p.Scripts.Apply...), []byte("\ntouch \"$VZ_SANDBOX_ROOT/demo-web.down\"\n")...)
			p.HealthChecks = []vulnzero.HealthCheck{{Name: "demo-web", Command: `test ! -f "$VZ_SANDBOX_ROOT/demo-web.down"`}}
			return p
		}, twin.PhaseHealth},
		{"rollback does not restore", func(p vulnzero.Patch) vulnzero.Patch {
			p.Scripts.Rollback = []byte("#!/bin/sh\necho 'rolled back (not really)'\n")
			return p
		}, twin.PhaseUnverify},
		{"rollback leaves a different manifest", func(p vulnzero.Patch) vulnzero.Patch {
			p.Scripts.Rollback = append(append([]byte(nil), p.Scripts.Rollback...), []byte("\napt-get install -y vz-demo-libbaz\n")...)
			return p
		}, twin.PhaseManifest},
	}
	available["vz-demo-libbaz"] = []string{"0.1"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := e.prov.Provision(context.Background(), e.target)
			if err != nil {
				t.Fatal(err)
			}
			defer rep.Close()
			r := twin.Rehearse(context.Background(), rep, c.patch(good), e.target.Name)
			if r.Failed != c.want {
				t.Fatalf("failed at %q, want %q:\n%s", r.Failed, c.want, r.Transcript())
			}
			var sawSkip bool
			for _, ph := range r.Phases {
				sawSkip = sawSkip || ph.Skipped
			}
			if c.want != twin.PhaseManifest && !sawSkip {
				t.Errorf("no phase after %s was skipped:\n%s", c.want, r.Transcript())
			}
		})
	}
}

// Check posts every phase pending first, then its result with a link to
// the stored transcript, and removes the replica.
func TestCheckerPostsStatuses(t *testing.T) {
	e := setup(t)
	posts := &statusLog{}
	ts := &transcripts{}
	c := &twin.Checker{Provisioner: e.prov, Statuses: posts, Transcripts: ts, BaseURL: "http://vz.example", Timeout: time.Minute}
	r, err := c.Check(context.Background(), "0123456789abcdef0123456789abcdef01234567", aptPatch(t), e.target)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Passed() {
		t.Fatalf("failed at %s", r.Failed)
	}
	if got, want := len(posts.all), 2*len(twin.Phases); got != want {
		t.Fatalf("%d statuses posted, want %d", got, want)
	}
	for i, st := range posts.all {
		wantState := vulnzero.StatusPending
		if i >= len(twin.Phases) {
			wantState = vulnzero.StatusSuccess
			if st.TargetURL != "http://vz.example/transcripts/1" {
				t.Errorf("status %s links to %q", st.Context, st.TargetURL)
			}
		}
		if st.State != wantState || !strings.HasPrefix(st.Context, twin.ContextPrefix) {
			t.Errorf("status %d = %+v", i, st)
		}
	}
	if len(ts.all) != 1 || !strings.Contains(ts.all[0].Body, "== ok   manifest") {
		t.Fatalf("transcripts: %+v", ts.all)
	}
	left, err := os.ReadDir(e.prov.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("replica directories left behind: %v", left)
	}
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

type transcripts struct{ all []vulnzero.Transcript }

func (s *transcripts) AddTranscript(_ context.Context, t vulnzero.Transcript) (vulnzero.Transcript, error) {
	t.ID = int64(len(s.all) + 1)
	s.all = append(s.all, t)
	return t, nil
}
