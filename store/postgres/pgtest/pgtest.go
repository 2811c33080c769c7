// Package pgtest gives tests a real PostgreSQL: a throwaway server started
// from the locally installed binaries, or the server named by the
// VZ_TEST_POSTGRES_URL environment variable, with a fresh database per test.
//
// A package whose tests need Postgres starts one server for the whole run
// and takes a database per test:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.NewDatabase(t) // dropped when t ends
//		…
//	}
//
// Without Main, NewDatabase starts a server for that one test (slower). The
// throwaway server listens on 127.0.0.1 on a free port, with a unix socket
// in its temporary directory, runs with fsync off, and is stopped and
// removed at the end. PostgreSQL refuses to run as root, so under root the
// server runs as the "postgres" system user.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that points tests at an existing
// server instead of starting one. Its user must be allowed to create and
// drop databases.
const EnvURL = "VZ_TEST_POSTGRES_URL"

// installHint is appended to errors about missing binaries.
const installHint = "run scripts/test-deps.sh to install PostgreSQL, or set " + EnvURL + " to an existing server"

// startTimeout bounds how long a new server may take to accept connections.
const startTimeout = 60 * time.Second

// Server is a PostgreSQL server for tests.
type Server struct {
	adminURL string // superuser URL of the "postgres" database

	// Set only for a server this package started.
	dir  string        // temporary directory: data/, socket, log
	cmd  *exec.Cmd     // the postmaster
	done chan struct{} // closed when the postmaster has exited

	closeOnce sync.Once
	closeErr  error
}

// NewServer returns the server named by VZ_TEST_POSTGRES_URL, or starts a
// throwaway one. The caller must Close it.
func NewServer() (*Server, error) {
	if u := os.Getenv(EnvURL); u != "" {
		s := &Server{adminURL: u}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ping(ctx, u); err != nil {
			return nil, fmt.Errorf("pgtest: connect to %s: %w", EnvURL, err)
		}
		return s, nil
	}
	return start()
}

// URL is the superuser URL of the server's "postgres" database.
func (s *Server) URL() string { return s.adminURL }

// Close stops a server this package started and removes its files. For a
// server from VZ_TEST_POSTGRES_URL it does nothing. Calling it again is a
// no-op.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.cmd == nil {
			return
		}
		// SIGINT is PostgreSQL's "fast" shutdown: roll back and exit.
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(15 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		s.closeErr = os.RemoveAll(s.dir)
	})
	return s.closeErr
}

// NewDatabase creates an empty database on s and returns its URL. The
// database is dropped when tb ends.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := "vz_test_" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.admin(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		if s.stopped() {
			return // the database went with the server
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends sessions a test left open (PostgreSQL 13+).
		if err := s.admin(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(s.adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		tb.Fatalf("pgtest: server URL is not a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String()
}

// stopped reports whether s is a server this package started that has
// exited.
func (s *Server) stopped() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// admin runs one statement on the server's "postgres" database.
func (s *Server) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

var (
	sharedMu sync.Mutex
	shared   *Server
)

// Main runs a package's tests with one server shared by every NewDatabase
// call, then stops it and exits. Call it from TestMain. When no server can
// be started it prints why and exits non-zero: Postgres tests never skip.
func Main(m *testing.M) {
	s, err := NewServer()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		os.Exit(1)
	}
	sharedMu.Lock()
	shared = s
	sharedMu.Unlock()
	code := m.Run()
	if err := s.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stop server: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// NewDatabase creates an empty database for tb and returns its URL: on the
// server Main started, or else on a server started for tb alone.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	sharedMu.Lock()
	s := shared
	sharedMu.Unlock()
	if s == nil {
		s = Start(tb)
	}
	return s.NewDatabase(tb)
}

// Start starts (or connects to) a server that is closed when tb ends. It
// fails tb when no server can be had.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := NewServer()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("pgtest: stop server: %v", err)
		}
	})
	return s
}

// binaries are the server programs used.
type binaries struct{ initdb, postgres string }

// findBinaries looks in the Debian layout (/usr/lib/postgresql/<major>/bin,
// newest major first), then in PATH.
func findBinaries() (binaries, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	major := func(dir string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return n
	}
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, d := range dirs {
		b := binaries{initdb: filepath.Join(d, "initdb"), postgres: filepath.Join(d, "postgres")}
		if isExecutable(b.initdb) && isExecutable(b.postgres) {
			return b, nil
		}
	}
	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil {
		return binaries{initdb: initdb, postgres: postgres}, nil
	}
	return binaries{}, fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH; %s", installHint)
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// runAs is the credential to run the server with: the "postgres" user when
// we are root (PostgreSQL refuses root), else ourselves (nil).
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root and there is no postgres user to run the server as: %w; %s", err, installHint)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("postgres user has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// start initializes and starts a throwaway server.
func start() (*Server, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	// /tmp rather than $TMPDIR: the postgres user must be able to traverse
	// it, and the socket path must stay under the ~107-byte limit.
	base := os.TempDir()
	if fi, err := os.Stat("/tmp"); err == nil && fi.IsDir() {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "vz-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create server directory: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("chown %s to postgres: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")

	initdb := exec.Command(bins.initdb, "-D", data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb (%s): %w\n%s", bins.initdb, err, out)
	}

	// A free port can be taken between choosing and binding it; try again.
	var lastErr error
	for range 3 {
		s, err := launch(bins, cred, dir, data)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "could not bind") && !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// launch starts the postmaster on a free port and waits until it accepts
// connections.
func launch(bins binaries, cred *syscall.Credential, dir, data string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(bins.postgres, "-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200",
		"-c", "shared_buffers=32MB",
	)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Pdeathsig: a test binary that dies (panic, timeout) takes the server
	// with it instead of leaving it running. SIGQUIT is immediate shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres (%s): %w", bins.postgres, err)
	}
	s := &Server{
		adminURL: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
		dir:      dir,
		cmd:      cmd,
		done:     make(chan struct{}),
	}
	go func() {
		cmd.Wait()
		close(s.done)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := ping(ctx, s.adminURL)
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("postgres exited during startup: %s", tail(logPath))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-s.done
			return nil, fmt.Errorf("postgres not accepting connections after %v: %w\n%s", startTimeout, err, tail(logPath))
		}
	}
}

func ping(ctx context.Context, u string) error {
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.Ping(ctx)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the end of the server log, for errors.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b)
}
