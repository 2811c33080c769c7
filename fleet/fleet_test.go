package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/fleet/sshdtest"
	"vulnzero.dev/vulnzero/sandbox"
)

// newClient returns a Client for the sshdtest fleet f that trusts only
// f's known_hosts.
func newClient(t *testing.T, f *sshdtest.Fleet, mod ...func(*fleet.Config)) *fleet.Client {
	t.Helper()
	cb, err := fleet.KnownHosts(f.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fleet.Config{Signers: []ssh.Signer{f.Signer}, HostKeyCallback: cb, ConnectTimeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := fleet.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func run(t *testing.T, c *fleet.Client, h vulnzero.Host, script string) fleet.Result {
	t.Helper()
	res, err := c.Run(context.Background(), h, fleet.Command{Script: []byte(script), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("run %q on %s: %v", script, h.Name, err)
	}
	return res
}

func TestRunScript(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	// Quotes, expansions and a here-document: the script reaches /bin/sh
	// untouched because it travels on stdin, not in the command line.
	script := `set -e
name='it'"'"'s'
echo "shell=$0 name=$name"
cat <<'EOF'
literal $HOME ` + "`date`" + `
EOF
echo "to stderr" >&2
`
	res := run(t, c, f.Hosts[0], script)
	wantOut := "shell=/bin/sh name=it's\nliteral $HOME `date`\n"
	if res.Stdout != wantOut || res.Stderr != "to stderr\n" || res.ExitCode != 0 {
		t.Errorf("got exit %d stdout %q stderr %q; want exit 0 stdout %q stderr %q",
			res.ExitCode, res.Stdout, res.Stderr, wantOut, "to stderr\n")
	}
	if res.Host != "host-1" || res.Started.IsZero() || res.Duration <= 0 {
		t.Errorf("result metadata: host %q started %v duration %v", res.Host, res.Started, res.Duration)
	}
}

func TestExitCodes(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"true", 0},
		{"false", 1},
		{"exit 3", 3},
		{"exit 255", 255},
		{"echo partial; exit 42", 42},
		{"kill -TERM $$", 128 + 15}, // killed by a signal: 128+signal, as shells report it
	} {
		res, err := c.Run(context.Background(), f.Hosts[0], fleet.Command{Script: []byte(tc.script)})
		if err != nil {
			t.Errorf("%q: a non-zero exit is not an error, got %v", tc.script, err)
			continue
		}
		if res.ExitCode != tc.want {
			t.Errorf("%q: exit %d, want %d", tc.script, res.ExitCode, tc.want)
		}
	}
}

func TestEnv(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	env := map[string]string{
		"VZ_PATCH_ID": "debian-openssl-3.0.15",
		"VZ_HOST":     "host-1",
		"QUOTES":      `it's "quoted" $HOME $(id) ` + "`id`" + ` \n; rm -rf /`,
		"MULTILINE":   "line one\nline two",
		"EMPTY":       "",
		"_under_1":    "x",
	}
	script := `for k in VZ_PATCH_ID VZ_HOST QUOTES MULTILINE EMPTY _under_1; do eval "printf '%s=[%s]\n' $k \"\$$k\""; done`
	res, err := c.Run(context.Background(), f.Hosts[0], fleet.Command{Script: []byte(script), Env: env})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, k := range []string{"VZ_PATCH_ID", "VZ_HOST", "QUOTES", "MULTILINE", "EMPTY", "_under_1"} {
		fmt.Fprintf(&want, "%s=[%s]\n", k, env[k])
	}
	if res.Stdout != want.String() {
		t.Errorf("env seen by the script:\n%s\nwant:\n%s\nstderr: %s", res.Stdout, want.String(), res.Stderr)
	}

	for _, bad := range []string{"1ABC", "A-B", "A B", "", "A=B", "A;rm"} {
		_, err := c.Run(context.Background(), f.Hosts[0], fleet.Command{Script: []byte("true"), Env: map[string]string{bad: "v"}})
		if !errors.Is(err, vulnzero.ErrInvalid) {
			t.Errorf("env name %q: got %v, want ErrInvalid", bad, err)
		}
	}
}

func TestOutputKeptInFull(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	const size = 1 << 20
	// The script itself is over 1 MB too: stdin carries it all.
	padding := strings.Repeat("# padding line to make the script large\n", size/40+1)
	script := padding + fmt.Sprintf(`head -c %d /dev/zero | tr '\0' o
head -c %d /dev/zero | tr '\0' e >&2
exit 7
`, size, size)
	res, err := c.Run(context.Background(), f.Hosts[0], fleet.Command{Script: []byte(script), Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 7 {
		t.Errorf("exit %d, want 7", res.ExitCode)
	}
	if len(res.Stdout) != size || strings.Trim(res.Stdout, "o") != "" {
		t.Errorf("stdout: %d bytes, want %d bytes of 'o'", len(res.Stdout), size)
	}
	if len(res.Stderr) != size || strings.Trim(res.Stderr, "e") != "" {
		t.Errorf("stderr: %d bytes, want %d bytes of 'e'", len(res.Stderr), size)
	}
}

func TestScriptExitingBeforeReadingAllOfItself(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	// sh reads the script as it goes: the unread rest must not turn a clean
	// exit into a transport error.
	script := "echo early\nexit 0\n" + strings.Repeat("echo never\n", 200000)
	res := run(t, c, f.Hosts[0], script)
	if res.ExitCode != 0 || res.Stdout != "early\n" {
		t.Errorf("exit %d stdout %q, want 0 %q", res.ExitCode, res.Stdout, "early\n")
	}
}

func TestUnknownHostKeyRefused(t *testing.T) {
	f := sshdtest.Start(t, 1)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cb, err := fleet.KnownHosts(empty)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f, func(cfg *fleet.Config) { cfg.HostKeyCallback = cb })
	h := f.Hosts[0]
	_, err = c.Run(context.Background(), h, fleet.Command{Script: []byte("true")})
	if !errors.Is(err, vulnzero.ErrHostKey) {
		t.Fatalf("got %v, want ErrHostKey", err)
	}
	var hke *fleet.HostKeyError
	if !errors.As(err, &hke) || hke.Changed() {
		t.Fatalf("want an unknown-key HostKeyError, got %#v", err)
	}
	for _, want := range []string{
		fmt.Sprintf("handshake host-1 (127.0.0.1:%d)", h.Port),
		fmt.Sprintf("unknown host key for [127.0.0.1]:%d", h.Port),
		ssh.FingerprintSHA256(f.HostKeys[0]),
		empty,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	f := sshdtest.Start(t, 1)
	h := f.Hosts[0]
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(h.Address, strconv.Itoa(h.Port)))}, other)
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cb, err := fleet.KnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, f, func(cfg *fleet.Config) { cfg.HostKeyCallback = cb })
	_, err = c.Run(context.Background(), h, fleet.Command{Script: []byte("true")})
	var hke *fleet.HostKeyError
	if !errors.Is(err, vulnzero.ErrHostKey) || !errors.As(err, &hke) || !hke.Changed() {
		t.Fatalf("got %v, want a changed-key HostKeyError", err)
	}
	for _, want := range []string{
		fmt.Sprintf("host key of [127.0.0.1]:%d changed", h.Port),
		ssh.FingerprintSHA256(f.HostKeys[0]), // presented
		ssh.FingerprintSHA256(other),         // expected
		path + ":1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestKnownHostsMissingFile(t *testing.T) {
	_, err := fleet.KnownHosts(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}

func TestUnreachable(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now: connection refused
	h := vulnzero.Host{Name: "web-1", Address: "127.0.0.1", Port: port}
	start := time.Now()
	res, err := c.Run(context.Background(), h, fleet.Command{Script: []byte("true")})
	if !errors.Is(err, vulnzero.ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s to report a refused connection", d)
	}
	if want := fmt.Sprintf("dial web-1 (127.0.0.1:%d): ", port); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}
	if res.Host != "web-1" || res.ExitCode != -1 {
		t.Errorf("result %+v, want host web-1 and exit -1", res)
	}
}

func TestStoppedHostBecomesUnreachable(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	run(t, c, f.Hosts[0], "true") // a pooled connection exists
	f.Stop(0)
	_, err := c.Run(context.Background(), f.Hosts[0], fleet.Command{Script: []byte("true"), Timeout: 5 * time.Second})
	if !errors.Is(err, vulnzero.ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable after the host went down", err)
	}
}

func TestTimeout(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	start := time.Now()
	res, err := c.Run(context.Background(), f.Hosts[0], fleet.Command{
		Script:  []byte("echo started\nsleep 37.25\necho never\n"),
		Timeout: 700 * time.Millisecond,
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("returned after %s", d)
	}
	if want := "run on host-1: timed out after 700ms"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if res.Stdout != "started\n" || res.ExitCode != -1 {
		t.Errorf("partial output %q exit %d, want %q and -1", res.Stdout, res.ExitCode, "started\n")
	}
	// The script's children are killed with it (sshd is local, so /proc
	// shows the remote processes).
	waitGone(t, "sleep\x0037.25")
	// The host is still usable.
	if res := run(t, c, f.Hosts[0], "echo again"); res.Stdout != "again\n" {
		t.Errorf("after a timeout: stdout %q", res.Stdout)
	}
}

func TestContextCanceled(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := c.Run(ctx, f.Hosts[0], fleet.Command{Script: []byte("sleep 37.5")})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	waitGone(t, "sleep\x0037.5")
}

// waitGone fails the test unless, within a second, no process on this
// machine has a command line containing cmdline (NUL-separated arguments).
func waitGone(t *testing.T, cmdline string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		pids := processesWith(cmdline)
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes %v (%q) outlived the timed-out command", pids, cmdline)
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

func TestConnectionReuse(t *testing.T) {
	f := sshdtest.Start(t, 1)
	c := newClient(t, f)
	// SSH_CONNECTION names the client's source port: the same port means the
	// same TCP connection.
	first := run(t, c, f.Hosts[0], `echo "$SSH_CONNECTION"`).Stdout
	second := run(t, c, f.Hosts[0], `echo "$SSH_CONNECTION"`).Stdout
	if first == "" || first != second {
		t.Errorf("two commands used connections %q and %q, want one", first, second)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(context.Background(), f.Hosts[0], fleet.Command{Script: []byte("true")}); err == nil {
		t.Error("Run after Close succeeded")
	}
}

func TestRunAllBoundedConcurrency(t *testing.T) {
	const hosts, maxParallel = 6, 2
	f := sshdtest.Start(t, hosts)
	c := newClient(t, f, func(cfg *fleet.Config) { cfg.MaxParallel = maxParallel })
	// Each script prints when it started and ended on the shared clock of
	// this machine; the peak overlap of those intervals is the concurrency
	// the hosts saw.
	script := "date +%s%N; sleep 0.4; date +%s%N\n"
	type span struct{ from, to int64 }
	var spans []span
	seen := map[string]bool{}
	c.RunAll(context.Background(), f.Hosts,
		func(h vulnzero.Host) fleet.Command {
			return fleet.Command{Script: []byte(script), Env: map[string]string{"VZ_HOST": h.Name}, Timeout: 10 * time.Second}
		},
		func(r fleet.Result, err error) {
			if err != nil {
				t.Errorf("%s: %v", r.Host, err)
				return
			}
			seen[r.Host] = true
			f := strings.Fields(r.Stdout)
			if len(f) != 2 {
				t.Errorf("%s: stdout %q", r.Host, r.Stdout)
				return
			}
			from, _ := strconv.ParseInt(f[0], 10, 64)
			to, _ := strconv.ParseInt(f[1], 10, 64)
			spans = append(spans, span{from, to})
		})
	if len(seen) != hosts {
		t.Fatalf("reported %d hosts, want %d", len(seen), hosts)
	}
	peak := 0
	for _, s := range spans {
		n := 0
		for _, o := range spans {
			if o.from <= s.from && s.from < o.to {
				n++
			}
		}
		peak = max(peak, n)
	}
	if peak > maxParallel {
		t.Errorf("peak concurrency %d, want at most %d", peak, maxParallel)
	}
	if peak < 2 {
		t.Errorf("peak concurrency %d: RunAll did not run hosts in parallel", peak)
	}
}

func TestRunAllCanceled(t *testing.T) {
	f := sshdtest.Start(t, 3)
	c := newClient(t, f, func(cfg *fleet.Config) { cfg.MaxParallel = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var errs []error
	c.RunAll(ctx, f.Hosts,
		func(vulnzero.Host) fleet.Command { return fleet.Command{Script: []byte("true")} },
		func(r fleet.Result, err error) {
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
			cancel() // after the first host, stop
		})
	if len(errs) != 3 {
		t.Fatalf("reported %d hosts, want 3", len(errs))
	}
	if errs[0] != nil {
		t.Errorf("first host: %v", errs[0])
	}
	for _, err := range errs[1:] {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("host after cancel: %v, want context.Canceled", err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	_, err := fleet.New(fleet.Config{})
	if !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), "HostKeyCallback is required") {
		t.Errorf("empty config: got %v", err)
	}
}

func TestLoadSigner(t *testing.T) {
	f := sshdtest.Start(t, 1)
	s, err := fleet.LoadSigner(f.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytesEqual(s.PublicKey().Marshal(), f.Signer.PublicKey().Marshal()) {
		t.Error("loaded a different key")
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fleet.LoadSigner(bad); !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), bad) {
		t.Errorf("garbage key file: got %v", err)
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// fakeSudo stands in for sudo on a sandbox host (the test machine has no
// sudo, and real sudo would need root's configuration): it logs its
// arguments, insists on -n as the real one would be asked to, and runs the
// rest as the same user.
const fakeSudo = `#!/bin/sh
echo "sudo $*" >> "$VZ_SANDBOX_ROOT/sudo.log"
[ "$1" = "-n" ] || { echo "sudo: a password is required" >&2; exit 1; }
shift
[ "$1" = "--" ] && shift
SUDO_USER=sandbox exec "$@"
`

func TestSudoWrapsCommand(t *testing.T) {
	sb, err := sandbox.Start(context.Background(), sandbox.Config{
		Dir:   t.TempDir(),
		Hosts: []sandbox.HostSpec{{Name: "web-1", Files: map[string]string{"bin/sudo": fakeSudo}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	cb, err := fleet.KnownHosts(sb.KnownHostsPath())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fleet.LoadSigner(sb.ClientKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	c, err := fleet.New(fleet.Config{Signers: []ssh.Signer{signer}, HostKeyCallback: cb})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := sb.Hosts()[0]

	res, err := c.Run(context.Background(), h, fleet.Command{
		Script: []byte(`echo "$SUDO_USER $VZ_PHASE"`),
		Env:    map[string]string{"VZ_PHASE": "apply"},
		Sudo:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "sandbox apply\n" {
		t.Errorf("stdout %q stderr %q: want the script run through sudo with its env", res.Stdout, res.Stderr)
	}

	// A timed-out sudo command is killed through sudo too.
	_, err = c.Run(context.Background(), h, fleet.Command{Script: []byte("sleep 36.5"), Sudo: true, Timeout: 500 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	waitGone(t, "sleep\x0036.5")

	log, err := os.ReadFile(filepath.Join(sb.Root("web-1"), "sudo.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 3 ||
		lines[0] != "sudo -n -- env VZ_PHASE=apply /bin/sh -s" ||
		lines[1] != "sudo -n -- /bin/sh -s" ||
		!strings.HasPrefix(lines[2], "sudo -n -- /bin/sh -c kill -s KILL -- -") {
		t.Errorf("sudo invocations:\n%s", log)
	}
}
