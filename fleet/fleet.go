// Package fleet runs scripts on hosts over SSH.
//
// A Client keeps one SSH connection per host (user@address:port) and opens a
// session per command, so the handshake — most of the cost of a command — is
// paid once per host. Each script is fed on stdin to `/bin/sh -s`: it needs
// no quoting and the remote user's login shell only parses a short fixed
// command line. Host keys are always checked (KnownHosts); there is no
// insecure default.
//
// A command that runs and exits non-zero is a Result with that ExitCode, not
// an error: errors are for what kept the command from running or finishing
// (unreachable host, rejected host key, failed authentication, timeout,
// dropped connection). Errors name the host and the step:
// "dial web-1 (10.0.0.5:22): unreachable: …".
//
// The command line sent to sshd is
//
//	echo "vulnzero-pid-<random>:$$" >&2; exec [sudo -n --] [env K='v' …] /bin/sh -s
//
// parsed by the remote user's login shell, which must be POSIX-like. The
// first part reports the pid of the session's process group (sshd starts
// each session in a new session), and is stripped from Stderr. When a
// command times out, a second session kills that whole group — closing the
// channel alone leaves the script running, and sshd refuses SSH "signal"
// requests for root logins.
package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultMaxParallel    = 50
	DefaultUser           = "root"
)

// killGrace is how long a timed-out session gets to close after its process
// is killed before the whole connection is dropped as unresponsive.
const killGrace = 2 * time.Second

// Config configures a Client.
type Config struct {
	// User logs in on hosts whose inventory entry names no user; "root" when
	// empty.
	User string
	// Signers are the private keys offered for public-key authentication.
	Signers []ssh.Signer
	// HostKeyCallback checks host keys; required. Use KnownHosts.
	HostKeyCallback ssh.HostKeyCallback
	// ConnectTimeout bounds TCP connect plus SSH handshake per host.
	ConnectTimeout time.Duration
	// MaxParallel bounds the hosts RunAll works on at once.
	MaxParallel int
	// Logger receives debug lines per connection and command; nil discards.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.MaxParallel == 0 {
		c.MaxParallel = DefaultMaxParallel
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports what is wrong with c. Zero values that have a default
// are fine.
func (c Config) Validate() error {
	var problems []string
	if c.HostKeyCallback == nil {
		problems = append(problems, "HostKeyCallback is required (use fleet.KnownHosts)")
	}
	if len(c.Signers) == 0 {
		problems = append(problems, "Signers is empty: no key to authenticate with")
	}
	if c.ConnectTimeout < 0 {
		problems = append(problems, fmt.Sprintf("ConnectTimeout %s is negative", c.ConnectTimeout))
	}
	if c.MaxParallel < 0 {
		problems = append(problems, fmt.Sprintf("MaxParallel %d is negative", c.MaxParallel))
	}
	if len(problems) > 0 {
		return fmt.Errorf("fleet config: %s: %w", strings.Join(problems, "; "), vulnzero.ErrInvalid)
	}
	return nil
}

// Result is the outcome of a command that ran on a host.
type Result struct {
	Host     string // host name (the address when the host has no name)
	ExitCode int    // -1 when the command did not report an exit status
	Stdout   string // in full
	Stderr   string // in full
	Started  time.Time
	Duration time.Duration // dial included when the connection was new
}

// Client runs commands on hosts over pooled SSH connections. It is safe for
// concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	conns  map[string]*entry // by user@address:port
	closed bool
}

// entry is one pooled connection slot.
type entry struct {
	dialing chan struct{} // one-slot lock held while dialing, so a host is dialed once
	cl      *ssh.Client   // guarded by Client.mu; nil when not connected
}

// New returns a Client for cfg, with defaults applied.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, log: cfg.Logger, conns: map[string]*entry{}}, nil
}

// target is a host resolved to what a connection needs.
type target struct {
	name string
	addr string // host:port
	user string
}

func (t target) String() string { return t.name + " (" + t.addr + ")" }
func (t target) key() string    { return t.user + "@" + t.addr }

func (c *Client) target(h vulnzero.Host) target {
	port := h.Port
	if port == 0 {
		port = 22
	}
	t := target{name: h.Name, addr: net.JoinHostPort(h.Address, strconv.Itoa(port)), user: h.User}
	if t.user == "" {
		t.user = c.cfg.User
	}
	if t.name == "" {
		t.name = t.addr
	}
	return t
}

// Run runs cmd on host and waits for it. A non-zero exit is reported in
// Result.ExitCode with a nil error. When cmd.Timeout or ctx expires, the
// command's remote process group is killed, the session closed, and the
// error wraps context.DeadlineExceeded (context.Canceled for a cancel); the
// Result keeps the output read so far.
//
// A pooled connection that turns out to be broken when the session is
// opened is dropped and redialed once; a command is never retried after it
// has started.
func (c *Client) Run(ctx context.Context, host vulnzero.Host, cmd Command) (Result, error) {
	t := c.target(host)
	res := Result{Host: t.name, ExitCode: -1, Started: time.Now()}
	line, err := remoteCommand(cmd)
	if err != nil {
		return res, fmt.Errorf("run on %s: %w", t.name, err)
	}
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout)
		defer cancel()
	}
	err = c.run(ctx, t, line, cmd.Sudo, cmd.Script, &res)
	res.Duration = time.Since(res.Started)
	if err != nil {
		c.log.Debug("ssh run failed", "host", t.name, "addr", t.addr, "duration", res.Duration, "err", err)
		return res, err
	}
	c.log.Debug("ssh run", "host", t.name, "exit", res.ExitCode, "duration", res.Duration)
	return res, nil
}

func (c *Client) run(ctx context.Context, t target, cmd string, sudo bool, script []byte, res *Result) error {
	sess, cl, err := c.session(ctx, t, res.Started)
	if err != nil {
		return err
	}
	defer sess.Close()

	// The login shell reports its pid, which is the session's process group
	// (sshd starts every session in a new session), before exec'ing the
	// command: on timeout the whole group is killed from a second session.
	// Closing the channel alone leaves the process running, and the SSH
	// "signal" request is refused for root logins.
	tag, err := newPIDTag()
	if err != nil {
		return fmt.Errorf("run on %s: %w", t.name, err)
	}
	line := fmt.Sprintf(`echo "%s$$" >&2; exec %s`, tag, cmd)
	var stdout, stderr bytes.Buffer
	pids := &pidFilter{tag: []byte(tag), out: &stderr}
	sess.Stdout = &stdout
	sess.Stderr = pids
	// The script is written by hand rather than through Session.Stdin: a
	// script that exits before reading all of itself is not a transport
	// error, but Session.Wait would report the failed write as one.
	stdin, err := sess.StdinPipe()
	if err != nil {
		return fmt.Errorf("run on %s: stdin: %w", t.name, err)
	}
	done := make(chan error, 1)
	go func() {
		if err := sess.Start(line); err != nil {
			done <- fmt.Errorf("start: %w", err)
			return
		}
		go func() {
			_, _ = stdin.Write(script)
			_ = stdin.Close()
		}()
		done <- sess.Wait()
	}()

	var waitErr error
	select {
	case waitErr = <-done:
	case <-ctx.Done():
		go func() {
			if pid := pids.PID(); pid > 0 {
				if err := killGroup(cl, pid, sudo); err != nil {
					c.log.Warn("kill timed-out command", "host", t.name, "pid", pid, "err", err)
				}
			}
			_ = sess.Close()
		}()
		// The session's own result no longer matters: the timeout is the error.
		select {
		case <-done: //nolint:errcheck // superseded by the timeout error
		case <-time.After(killGrace):
			// The connection does not answer: drop it, which ends Wait.
			c.forget(t.key(), cl)
			<-done //nolint:errcheck // superseded by the timeout error
		}
		pids.flush()
		res.Stdout, res.Stderr = stdout.String(), stderr.String()
		return fmt.Errorf("run on %s: %w", t.name, expired(ctx, res.Started))
	}
	pids.flush()
	res.Stdout, res.Stderr = stdout.String(), stderr.String()

	var exitErr *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case waitErr == nil:
		res.ExitCode = 0
		return nil
	case errors.As(waitErr, &exitErr):
		// A process killed by a signal reports 128+signal, as shells do.
		res.ExitCode = exitErr.ExitStatus()
		return nil
	case errors.As(waitErr, &missing):
		return fmt.Errorf("run on %s: the session ended without an exit status (connection lost or process killed)", t.name)
	default:
		return fmt.Errorf("run on %s: %w", t.name, waitErr)
	}
}

// killGroup kills process group pgid on the host from a new session on cl,
// through sudo when the command ran through sudo. kill -s KILL -- -N is the
// POSIX spelling that both dash and bash accept.
func killGroup(cl *ssh.Client, pgid int, sudo bool) error {
	s, err := cl.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	cmd := fmt.Sprintf("kill -s KILL -- -%d", pgid)
	if sudo {
		cmd = "sudo -n -- /bin/sh -c " + shellQuote(cmd)
	}
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		return fmt.Errorf("%s: %w: %s", cmd, err, bytes.TrimSpace(out))
	}
	return nil
}

// expired is the error for a context that is done: a deadline says after
// how long it passed and wraps context.DeadlineExceeded.
func expired(ctx context.Context, started time.Time) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err()
	}
	d := time.Since(started)
	if dl, ok := ctx.Deadline(); ok {
		d = dl.Sub(started)
	}
	return fmt.Errorf("timed out after %s: %w", d.Round(time.Millisecond), context.DeadlineExceeded)
}

// session opens a session on t's pooled connection, dialing when there is
// none and redialing once when the pooled one is broken.
func (c *Client) session(ctx context.Context, t target, started time.Time) (*ssh.Session, *ssh.Client, error) {
	for attempt := 1; ; attempt++ {
		cl, err := c.conn(ctx, t, started)
		if err != nil {
			return nil, nil, err
		}
		s, err := openSession(ctx, cl)
		if err == nil {
			return s, cl, nil
		}
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("open session on %s: %w", t, expired(ctx, started))
		}
		c.forget(t.key(), cl)
		if attempt == 2 {
			return nil, nil, fmt.Errorf("open session on %s: %w", t, err)
		}
		c.log.Warn("ssh connection broken, redialing", "host", t.name, "addr", t.addr, "err", err)
	}
}

// openSession is cl.NewSession bounded by ctx: on a connection that died
// silently, opening a channel would wait forever for the reply.
func openSession(ctx context.Context, cl *ssh.Client) (*ssh.Session, error) {
	type opened struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := cl.NewSession()
		ch <- opened{s, err}
	}()
	select {
	case o := <-ch:
		return o.s, o.err
	case <-ctx.Done():
	}
	// Give a slow but live connection a moment before declaring it dead;
	// closing it ends NewSession, and the pool drops it.
	select {
	case o := <-ch:
		if o.s != nil {
			_ = o.s.Close()
		}
		return nil, ctx.Err()
	case <-time.After(killGrace):
		_ = cl.Close()
	}
	go func() {
		if o := <-ch; o.s != nil {
			_ = o.s.Close()
		}
	}()
	return nil, ctx.Err()
}

// conn returns t's pooled connection, dialing it if needed.
func (c *Client) conn(ctx context.Context, t target, started time.Time) (*ssh.Client, error) {
	key := t.key()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("dial %s: fleet client is closed", t)
	}
	e := c.conns[key]
	if e == nil {
		e = &entry{dialing: make(chan struct{}, 1)}
		c.conns[key] = e
	}
	cl := e.cl
	c.mu.Unlock()
	if cl != nil {
		return cl, nil
	}

	select {
	case e.dialing <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("dial %s: %w", t, expired(ctx, started))
	}
	defer func() { <-e.dialing }()
	// Another caller may have connected while we waited for the lock.
	c.mu.Lock()
	cl = e.cl
	c.mu.Unlock()
	if cl != nil {
		return cl, nil
	}

	cl, err := c.dial(ctx, t, started)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = cl.Close()
		return nil, fmt.Errorf("dial %s: fleet client is closed", t)
	}
	e.cl = cl
	c.mu.Unlock()
	// Drop the connection from the pool as soon as it dies, so the next
	// command dials afresh instead of failing on it.
	go func() {
		_ = cl.Wait()
		c.forget(key, cl)
	}()
	return cl, nil
}

// forget removes cl from the pool (if it is still the pooled connection for
// key) and closes it.
func (c *Client) forget(key string, cl *ssh.Client) {
	c.mu.Lock()
	if e := c.conns[key]; e != nil && e.cl == cl {
		e.cl = nil
	}
	c.mu.Unlock()
	_ = cl.Close()
}

// dial connects, checks the host key and authenticates, within
// ConnectTimeout and ctx.
func (c *Client) dial(ctx context.Context, t target, started time.Time) (*ssh.Client, error) {
	d := net.Dialer{Timeout: c.cfg.ConnectTimeout}
	nc, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		if ctx.Err() != nil {
			err = expired(ctx, started)
		}
		return nil, fmt.Errorf("dial %s: %w: %w", t, vulnzero.ErrUnreachable, err)
	}
	deadline := time.Now().Add(c.cfg.ConnectTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = nc.SetDeadline(deadline)
	// Cancellation wakes the handshake by moving the deadline to the past.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })

	conf := &ssh.ClientConfig{
		User:              t.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(c.cfg.Signers...)},
		HostKeyCallback:   c.cfg.HostKeyCallback,
		HostKeyAlgorithms: hostKeyAlgorithms(c.cfg.HostKeyCallback, t.addr, nc.RemoteAddr()),
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.addr, conf)
	notFired := stop()
	if err != nil {
		_ = nc.Close()
		return nil, handshakeError(ctx, t, started, err)
	}
	if !notFired {
		_ = sc.Close()
		return nil, fmt.Errorf("handshake %s: %w", t, expired(ctx, started))
	}
	_ = nc.SetDeadline(time.Time{})
	c.log.Debug("ssh connected", "host", t.name, "addr", t.addr, "user", t.user)
	return ssh.NewClient(sc, chans, reqs), nil
}

// handshakeError says why the SSH handshake failed: a rejected host key, a
// host that stopped answering (unreachable), or anything else as is
// (authentication failures, no common algorithms).
func handshakeError(ctx context.Context, t target, started time.Time, err error) error {
	var hke *HostKeyError
	if errors.As(err, &hke) {
		return fmt.Errorf("handshake %s: %w", t, hke)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("handshake %s: %w: %w", t, vulnzero.ErrUnreachable, expired(ctx, started))
	}
	var ne net.Error
	if (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("handshake %s: %w: %w", t, vulnzero.ErrUnreachable, err)
	}
	return fmt.Errorf("handshake %s: %w", t, err)
}

// RunAll runs cmd(host) on every host, at most MaxParallel at a time, and
// calls each with every result as it arrives. each is called from one
// goroutine at a time, so it needs no locking. Hosts not yet started when
// ctx is done are reported with ctx's error. RunAll returns when every host
// has been reported.
func (c *Client) RunAll(ctx context.Context, hosts []vulnzero.Host, cmd func(vulnzero.Host) Command, each func(Result, error)) {
	if len(hosts) == 0 {
		return
	}
	var mu sync.Mutex
	report := func(r Result, err error) {
		if each == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		each(r, err)
	}
	jobs := make(chan vulnzero.Host)
	var wg sync.WaitGroup
	for range min(c.cfg.MaxParallel, len(hosts)) {
		wg.Go(func() {
			for h := range jobs {
				if ctx.Err() != nil {
					t := c.target(h)
					report(Result{Host: t.name, ExitCode: -1, Started: time.Now()},
						fmt.Errorf("run on %s: not started: %w", t.name, context.Cause(ctx)))
					continue
				}
				r, err := c.Run(ctx, h, cmd(h))
				report(r, err)
			}
		})
	}
	for _, h := range hosts {
		jobs <- h
	}
	close(jobs)
	wg.Wait()
}

// Close closes every pooled connection. Commands still running fail.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	var cls []*ssh.Client
	for _, e := range c.conns {
		if e.cl != nil {
			cls = append(cls, e.cl)
			e.cl = nil
		}
	}
	c.mu.Unlock()
	var errs []error
	for _, cl := range cls {
		if err := cl.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
