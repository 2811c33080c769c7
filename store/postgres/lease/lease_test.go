package lease

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vulnzero.dev/vulnzero/store/postgres/pgtest"
)

// Environment of a replica process started by TestTwoProcessesFailover.
const (
	envChildURL    = "VZ_LEASE_TEST_CHILD_URL"
	envChildName   = "VZ_LEASE_TEST_CHILD_NAME"
	envChildHolder = "VZ_LEASE_TEST_CHILD_HOLDER"
	envChildTTL    = "VZ_LEASE_TEST_CHILD_TTL"
)

// TestMain serves two roles: run as a replica (the test binary re-executed
// by TestTwoProcessesFailover), or run the tests on one shared PostgreSQL.
func TestMain(m *testing.M) {
	if os.Getenv(envChildURL) != "" {
		os.Exit(replica())
	}
	pgtest.Main(m)
}

// replica campaigns for the lease and prints "leading <holder>" when it
// leads and "stepped down <holder>" when it stops leading, until SIGTERM.
func replica() int {
	ttl, err := time.ParseDuration(os.Getenv(envChildTTL))
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica: ttl:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	holder := os.Getenv(envChildHolder)
	cfg := Config{URL: os.Getenv(envChildURL), Name: os.Getenv(envChildName), TTL: ttl, Holder: holder,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	err = Run(ctx, cfg, func(ctx context.Context) error {
		fmt.Println("leading", holder)
		<-ctx.Done()
		fmt.Println("stepped down", holder)
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		return 1
	}
	return 0
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "repo"}, "database URL is required"},
		{Config{URL: "postgres://x"}, "name of what is led is required"},
		{Config{URL: "postgres://x", Name: "repo", TTL: 10 * time.Millisecond}, "ttl 10ms is under a second"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want %q", c.cfg, err, c.want)
		}
	}
	if err := (Config{URL: "postgres://x", Name: "repo"}).Validate(); err != nil {
		t.Errorf("Validate of a good config: %v", err)
	}
}

func TestKeyIsStablePerName(t *testing.T) {
	// The key must never change between releases: replicas of two versions
	// running side by side during an upgrade must contend for one lease.
	if got := Key("https://github.com/acme/remediation.git"); got != Key("https://github.com/acme/remediation.git") {
		t.Fatal("Key is not deterministic")
	}
	if got, want := Key("a"), int32(-468965076); got != want { // FNV-1a 32 of "a" = 0xe40c292c
		t.Errorf("Key(a) = %d, want %d", got, want)
	}
	if Key("repo-a") == Key("repo-b") {
		t.Error("two repositories share a key")
	}
}

// TestExclusive: one session holds a name's lease; another name is free;
// releasing lets the next replica in at once.
func TestExclusive(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	cfg := Config{URL: url, Name: "https://example.test/acme/remediation.git", TTL: 3 * time.Second, Holder: "replica-a"}
	a, err := TryAcquire(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Release(context.Background()) })

	b := cfg
	b.Holder = "replica-b"
	_, err = TryAcquire(ctx, b)
	if !errors.Is(err, ErrHeld) || !strings.Contains(err.Error(), `"vulnzero-leader replica-a"`) {
		t.Fatalf("second TryAcquire = %v, want ErrHeld naming replica-a", err)
	}

	other := b
	other.Name = "https://example.test/acme/other.git"
	o, err := TryAcquire(ctx, other)
	if err != nil {
		t.Fatalf("a lease of another repository: %v", err)
	}
	_ = o.Release(ctx)

	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Lost():
	default:
		t.Error("Lost is not closed after Release")
	}
	if err := a.Release(ctx); err != nil {
		t.Errorf("second Release: %v", err)
	}
	bl, err := TryAcquire(ctx, b)
	if err != nil {
		t.Fatalf("TryAcquire after release: %v", err)
	}
	_ = bl.Release(ctx)
}

// TestLostWhenSessionEnds: the server ends the holder's session (as when it
// restarts, or an operator terminates it). The heartbeat notices within
// 2·TTL/3, lead's context is cancelled, and Run campaigns again and leads a
// second term on a new session.
func TestLostWhenSessionEnds(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	ttl := 3 * time.Second
	cfg := Config{URL: url, Name: "repo", TTL: ttl, Holder: "replica-a"}

	terms := make(chan time.Time, 4)
	ended := make(chan time.Time, 4)
	rctx, cancel := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() {
		runErr <- Run(rctx, cfg, func(ctx context.Context) error {
			terms <- time.Now()
			<-ctx.Done()
			ended <- time.Now()
			return nil
		})
	}()
	waitFor(t, terms, 10*time.Second, "first term")

	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var n int
	killedAt := time.Now()
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'vulnzero-leader replica-a'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminate the holder's session: %d sessions, %v", n, err)
	}
	end := waitFor(t, ended, 10*time.Second, "step-down after the session ended")
	if d := end.Sub(killedAt); d > 2*ttl/3+time.Second {
		t.Errorf("stepped down %s after the session ended, want within 2·TTL/3 (%s) plus slack", d, 2*ttl/3)
	}
	waitFor(t, terms, 10*time.Second, "second term on a new session")

	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run = %v, want nil after ctx ended", err)
	}
	waitFor(t, ended, 5*time.Second, "step-down at shutdown")
}

// TestRunReturnsLeadError: lead returning on its own (not because the lease
// was lost) ends Run with its error, and the lease is released.
func TestRunReturnsLeadError(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	cfg := Config{URL: url, Name: "repo", TTL: 3 * time.Second, Holder: "replica-a"}
	boom := errors.New("reconciler would not start")
	if err := Run(ctx, cfg, func(context.Context) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want the lead error", err)
	}
	l, err := TryAcquire(ctx, cfg)
	if err != nil {
		t.Fatalf("lease not released after Run returned: %v", err)
	}
	_ = l.Release(ctx)
}

// TestTwoProcessesFailover runs two replica processes against one real
// PostgreSQL: A leads, B stands by without leading; A is killed with
// SIGKILL and B leads within the lease time. A restarted stands by; B
// stopped with SIGTERM releases at once and A leads again.
func TestTwoProcessesFailover(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ttl := 3 * time.Second
	name := "https://example.test/acme/remediation.git"

	a := startReplica(t, url, name, "A", ttl)
	a.expect(t, "leading A", 15*time.Second)

	b := startReplica(t, url, name, "B", ttl)
	waitSession(t, url, "vulnzero-leader B", 15*time.Second)
	// Give B several attempts (one every TTL/5) to prove it does not lead.
	time.Sleep(3 * ttl / 5)
	if line, ok := b.next(0); ok {
		t.Fatalf("standby B printed %q while A leads", line)
	}

	killedAt := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	at := b.expect(t, "leading B", 2*ttl)
	took := at.Sub(killedAt)
	t.Logf("B took over %s after A was killed (lease time %s)", took.Round(time.Millisecond), ttl)
	if took > ttl {
		t.Errorf("takeover took %s, want within the lease time %s", took, ttl)
	}

	a2 := startReplica(t, url, name, "A2", ttl)
	waitSession(t, url, "vulnzero-leader A2", 15*time.Second)
	time.Sleep(3 * ttl / 5)
	if line, ok := a2.next(0); ok {
		t.Fatalf("restarted A2 printed %q while B leads", line)
	}
	stoppedAt := time.Now()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	b.expect(t, "stepped down B", 5*time.Second)
	at = a2.expect(t, "leading A2", 2*ttl)
	t.Logf("A2 took over %s after B stopped", at.Sub(stoppedAt).Round(time.Millisecond))
	if err := b.wait(5 * time.Second); err != nil {
		t.Errorf("B after SIGTERM: %v", err)
	}
}

// proc is a replica process and the lines it prints, with arrival times.
type proc struct {
	cmd    *exec.Cmd
	lines  chan line
	stderr *lockedBuf
	exited chan struct{} // closed when the process has been reaped
	err    error         // its exit status, once exited is closed
}

type line struct {
	text string
	at   time.Time
}

func startReplica(t *testing.T, url, name, holder string, ttl time.Duration) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildURL+"="+url, envChildName+"="+name, envChildHolder+"="+holder, envChildTTL+"="+ttl.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan line, 16), stderr: &lockedBuf{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	// A test binary that dies takes its replicas with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var readDone sync.WaitGroup
	readDone.Add(1)
	go func() {
		defer readDone.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- line{sc.Text(), time.Now()}
		}
	}()
	go func() {
		readDone.Wait() // Wait closes the pipe: read it to the end first
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
		if t.Failed() {
			t.Logf("replica %s stderr:\n%s", holder, p.stderr.String())
		}
	})
	return p
}

// next returns the next line printed within d.
func (p *proc) next(d time.Duration) (string, bool) {
	select {
	case l := <-p.lines:
		return l.text, true
	case <-time.After(d):
		return "", false
	}
}

// expect waits up to d for the next line and fails unless it is want.
func (p *proc) expect(t *testing.T, want string, d time.Duration) time.Time {
	t.Helper()
	select {
	case l := <-p.lines:
		if l.text != want {
			t.Fatalf("replica printed %q, want %q", l.text, want)
		}
		return l.at
	case <-time.After(d):
		t.Fatalf("replica did not print %q within %s", want, d)
		return time.Time{}
	}
}

func (p *proc) wait(d time.Duration) error {
	select {
	case <-p.exited:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("still running after %s", d)
	}
}

// waitSession waits until a session with application_name app is connected:
// the replica is standing by on its own connection.
func waitSession(t *testing.T, url, app string, d time.Duration) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	deadline := time.Now().Add(d)
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session %q after %s", app, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFor(t *testing.T, ch <-chan time.Time, d time.Duration, what string) time.Time {
	t.Helper()
	select {
	case at := <-ch:
		return at
	case <-time.After(d):
		t.Fatalf("no %s within %s", what, d)
		return time.Time{}
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var _ io.Writer = (*lockedBuf)(nil)
