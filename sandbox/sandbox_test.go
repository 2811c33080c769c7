package sandbox_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/sandbox"
)

var specs = []sandbox.HostSpec{
	{
		Name:   "web-1",
		Labels: map[string]string{"role": "web", "os": "debian"},
		Files: map[string]string{
			"etc/os-release":   "ID=debian\nVERSION_ID=12\n",
			"bin/fake-version": "#!/bin/sh\necho fake 1.0\n",
		},
	},
	{Name: "db-1", Labels: map[string]string{"role": "db"}},
}

func start(t *testing.T, dir string) *sandbox.Fleet {
	t.Helper()
	f, err := sandbox.Start(context.Background(), sandbox.Config{Dir: dir, Hosts: specs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// client is a fleet.Client that trusts only the sandbox's known_hosts and
// authenticates with the sandbox's key file: the production path.
func client(t *testing.T, f *sandbox.Fleet) *fleet.Client {
	t.Helper()
	cb, err := fleet.KnownHosts(f.KnownHostsPath())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fleet.LoadSigner(f.ClientKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	c, err := fleet.New(fleet.Config{Signers: []ssh.Signer{signer}, HostKeyCallback: cb, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func host(t *testing.T, f *sandbox.Fleet, name string) vulnzero.Host {
	t.Helper()
	for _, h := range f.Hosts() {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no host %s", name)
	return vulnzero.Host{}
}

func run(t *testing.T, c *fleet.Client, h vulnzero.Host, cmd fleet.Command) fleet.Result {
	t.Helper()
	if cmd.Timeout == 0 {
		cmd.Timeout = 10 * time.Second
	}
	res, err := c.Run(context.Background(), h, cmd)
	if err != nil {
		t.Fatalf("run on %s: %v", h.Name, err)
	}
	return res
}

func TestHosts(t *testing.T) {
	f := start(t, t.TempDir())
	hosts := f.Hosts()
	if len(hosts) != 2 || hosts[0].Name != "web-1" || hosts[1].Name != "db-1" {
		t.Fatalf("hosts %+v", hosts)
	}
	for _, h := range hosts {
		if h.Address != "127.0.0.1" || h.Port == 0 || h.User != "sandbox" {
			t.Errorf("host %+v", h)
		}
	}
	if hosts[0].Labels["role"] != "web" || hosts[1].Labels["role"] != "db" {
		t.Errorf("labels %v %v", hosts[0].Labels, hosts[1].Labels)
	}
	known, err := os.ReadFile(f.KnownHostsPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if want := "[127.0.0.1]:" + strconv.Itoa(h.Port) + " ssh-ed25519 "; !strings.Contains(string(known), want) {
			t.Errorf("known_hosts lacks %q:\n%s", want, known)
		}
	}
}

func TestCommandRunsInHostRoot(t *testing.T) {
	f := start(t, t.TempDir())
	c := client(t, f)
	root := f.Root("web-1")
	res := run(t, c, host(t, f, "web-1"), fleet.Command{Script: []byte(`pwd
echo "$HOME"
echo "$VZ_SANDBOX_ROOT"
echo "$VZ_STATE_DIR"
echo "$PATH"
. ./etc/os-release && echo "$ID $VERSION_ID"
fake-version
test -d "$VZ_STATE_DIR" && echo state-dir-exists
`)})
	want := strings.Join([]string{
		root, root, root,
		filepath.Join(root, "var/lib/vulnzero"),
		filepath.Join(root, "bin") + ":/usr/local/bin:/usr/bin:/bin",
		"debian 12", "fake 1.0", "state-dir-exists",
	}, "\n") + "\n"
	if res.Stdout != want || res.ExitCode != 0 {
		t.Errorf("exit %d stdout:\n%s\nwant:\n%s\nstderr: %s", res.ExitCode, res.Stdout, want, res.Stderr)
	}
	// The other host has its own root.
	res = run(t, c, host(t, f, "db-1"), fleet.Command{Script: []byte("pwd; test -e etc/os-release || echo no-os-release")})
	if want := f.Root("db-1") + "\nno-os-release\n"; res.Stdout != want {
		t.Errorf("db-1: %q, want %q", res.Stdout, want)
	}
}

func TestEnv(t *testing.T) {
	f := start(t, t.TempDir())
	c := client(t, f)
	h := host(t, f, "web-1")
	// fleet passes Env in the command line.
	res := run(t, c, h, fleet.Command{
		Script: []byte(`echo "$VZ_PATCH_ID|$VZ_PHASE"; env | grep -c '^SSH_' || true`),
		Env:    map[string]string{"VZ_PATCH_ID": "p-1", "VZ_PHASE": "apply"},
	})
	if res.Stdout != "p-1|apply\n0\n" {
		t.Errorf("stdout %q: want the env set and nothing leaked from the server's environment", res.Stdout)
	}

	// env requests: VZ_* accepted, others and the root-locating names refused.
	sess := rawSession(t, f, h)
	if err := sess.Setenv("VZ_HOST", "web-1"); err != nil {
		t.Errorf("VZ_HOST refused: %v", err)
	}
	if err := sess.Setenv("LD_PRELOAD", "/evil.so"); err == nil {
		t.Error("LD_PRELOAD accepted")
	}
	if err := sess.Setenv("VZ_STATE_DIR", "/"); err == nil {
		t.Error("VZ_STATE_DIR override accepted")
	}
	out, err := sess.Output(`echo "$VZ_HOST|${LD_PRELOAD-unset}|$VZ_STATE_DIR"`)
	if err != nil {
		t.Fatal(err)
	}
	if want := "web-1|unset|" + filepath.Join(f.Root("web-1"), "var/lib/vulnzero") + "\n"; string(out) != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestExitCodesAndStreams(t *testing.T) {
	f := start(t, t.TempDir())
	c := client(t, f)
	h := host(t, f, "db-1")
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"true", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 143},
		{"kill -KILL $$", 137},
	} {
		res := run(t, c, h, fleet.Command{Script: []byte(tc.script)})
		if res.ExitCode != tc.want {
			t.Errorf("%q: exit %d, want %d", tc.script, res.ExitCode, tc.want)
		}
	}
	big := 300_000
	res := run(t, c, h, fleet.Command{Script: []byte("head -c " + strconv.Itoa(big) + " /dev/zero | tr '\\0' x; echo oops >&2; exit 9")})
	if len(res.Stdout) != big || res.Stderr != "oops\n" || res.ExitCode != 9 {
		t.Errorf("stdout %d bytes, stderr %q, exit %d", len(res.Stdout), res.Stderr, res.ExitCode)
	}
}

func TestUnknownClientKeyRejected(t *testing.T) {
	f := start(t, t.TempDir())
	cb, err := fleet.KnownHosts(f.KnownHostsPath())
	if err != nil {
		t.Fatal(err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fleet.New(fleet.Config{Signers: []ssh.Signer{stranger}, HostKeyCallback: cb})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Run(context.Background(), host(t, f, "web-1"), fleet.Command{Script: []byte("true")})
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("a stranger's key: got %v, want an authentication failure", err)
	}

	// The right key with another user name is refused too.
	good := client(t, f)
	h := host(t, f, "web-1")
	h.User = "root"
	if _, err := good.Run(context.Background(), h, fleet.Command{Script: []byte("true")}); err == nil {
		t.Error("user root accepted")
	}
}

func TestStopMakesHostUnreachable(t *testing.T) {
	f := start(t, t.TempDir())
	c := client(t, f)
	web, db := host(t, f, "web-1"), host(t, f, "db-1")
	run(t, c, web, fleet.Command{Script: []byte("true")}) // pooled connection
	f.Stop("web-1")
	_, err := c.Run(context.Background(), web, fleet.Command{Script: []byte("true"), Timeout: 5 * time.Second})
	if !errors.Is(err, vulnzero.ErrUnreachable) {
		t.Errorf("stopped host: got %v, want ErrUnreachable", err)
	}
	if res := run(t, c, db, fleet.Command{Script: []byte("echo up")}); res.Stdout != "up\n" {
		t.Errorf("db-1 after stopping web-1: %q", res.Stdout)
	}
	f.Stop("web-1") // idempotent
	f.Stop("nope")  // unknown: no-op
}

func TestTimeoutKillsCommandTree(t *testing.T) {
	f := start(t, t.TempDir())
	c := client(t, f)
	_, err := c.Run(context.Background(), host(t, f, "web-1"), fleet.Command{
		Script:  []byte("sleep 38.5 & sleep 38.25; echo never"),
		Timeout: 500 * time.Millisecond,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	waitGone(t, "sleep\x0038.5")
	waitGone(t, "sleep\x0038.25")
}

func TestChannelCloseKillsCommand(t *testing.T) {
	f := start(t, t.TempDir())
	sess := rawSession(t, f, host(t, f, "db-1"))
	if err := sess.Start("sleep 39.5"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(processesWith("sleep\x0039.5")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("command never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = sess.Close()
	waitGone(t, "sleep\x0039.5")
}

func TestInteractiveRequestsRefused(t *testing.T) {
	f := start(t, t.TempDir())
	h := host(t, f, "web-1")
	sess := rawSession(t, f, h)
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err == nil {
		t.Error("pty accepted")
	}
	var stderr strings.Builder
	sess.Stderr = &stderr
	if err := sess.Shell(); err == nil {
		t.Error("shell accepted")
	}
	sess = rawSession(t, f, h)
	if err := sess.RequestSubsystem("sftp"); err == nil {
		t.Error("sftp subsystem accepted")
	}
	// The connection still serves commands.
	sess = rawSession(t, f, h)
	if out, err := sess.Output("echo ok"); err != nil || string(out) != "ok\n" {
		t.Errorf("exec after refusals: %q %v", out, err)
	}
}

func TestRestartKeepsHostState(t *testing.T) {
	dir := t.TempDir()
	f := start(t, dir)
	c := client(t, f)
	run(t, c, host(t, f, "web-1"), fleet.Command{Script: []byte(
		`echo "VERSION_ID=13" > etc/os-release; echo applied > "$VZ_STATE_DIR/marker"`)})
	oldKnown, _ := os.ReadFile(f.KnownHostsPath())
	key1, _ := os.ReadFile(f.ClientKeyPath())
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	g := start(t, dir)
	c2 := client(t, g)
	res := run(t, c2, host(t, g, "web-1"), fleet.Command{Script: []byte(`cat etc/os-release "$VZ_STATE_DIR/marker"`)})
	if res.Stdout != "VERSION_ID=13\napplied\n" {
		t.Errorf("after restart: %q: the seed file overwrote the host's state", res.Stdout)
	}
	newKnown, _ := os.ReadFile(g.KnownHostsPath())
	if string(newKnown) == string(oldKnown) {
		t.Error("known_hosts not rewritten for the new host keys and ports")
	}
	key2, _ := os.ReadFile(g.ClientKeyPath())
	if string(key1) != string(key2) {
		t.Error("client key regenerated: a client holding the old key file would be locked out")
	}
}

func TestContextEndsFleet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f, err := sandbox.Start(ctx, sandbox.Config{Dir: t.TempDir(), Hosts: specs[:1]})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(f.Hosts()[0].Port))
	deadline := time.Now().Add(2 * time.Second)
	for {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatal("still listening after ctx was canceled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]sandbox.Config{
		"no dir":         {Hosts: specs},
		"no hosts":       {Dir: "x"},
		"bad name":       {Dir: "x", Hosts: []sandbox.HostSpec{{Name: "../etc"}}},
		"duplicate":      {Dir: "x", Hosts: []sandbox.HostSpec{{Name: "a"}, {Name: "a"}}},
		"escaping file":  {Dir: "x", Hosts: []sandbox.HostSpec{{Name: "a", Files: map[string]string{"../../x": ""}}}},
		"absolute file":  {Dir: "x", Hosts: []sandbox.HostSpec{{Name: "a", Files: map[string]string{"/etc/passwd": ""}}}},
		"empty hostname": {Dir: "x", Hosts: []sandbox.HostSpec{{Name: ""}}},
	} {
		if err := cfg.Validate(); !errors.Is(err, vulnzero.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}

// rawSession opens an x/crypto session to h directly, for requests
// fleet.Client never sends (env, pty, shell, subsystem).
func rawSession(t *testing.T, f *sandbox.Fleet, h vulnzero.Host) *ssh.Session {
	t.Helper()
	cb, err := fleet.KnownHosts(f.KnownHostsPath())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fleet.LoadSigner(f.ClientKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	cl, err := ssh.Dial("tcp", net.JoinHostPort(h.Address, strconv.Itoa(h.Port)), &ssh.ClientConfig{
		User: h.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: cb, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	s, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitGone fails the test unless, within two seconds, no process on this
// machine has a command line containing cmdline (NUL-separated arguments).
func waitGone(t *testing.T, cmdline string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		pids := processesWith(cmdline)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v (%q) still running", pids, cmdline)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func processesWith(cmdline string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), cmdline) {
			out = append(out, e.Name())
		}
	}
	return out
}
