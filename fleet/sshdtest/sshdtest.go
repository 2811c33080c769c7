// Package sshdtest starts real OpenSSH sshd processes on 127.0.0.1 for tests.
//
// Each host is its own `sshd -D -e` on a free loopback port with its own
// generated ed25519 host key. One generated client key is authorized on every
// host, and a known_hosts file lists every host key, so tests exercise the
// same host-key checking and public-key authentication as production. The
// processes are killed when the test ends.
//
// The harness runs sshd as the current user and logs in as that user; when
// that is root, the config allows root login by key only. It needs
// /usr/sbin/sshd (Debian's openssh-server): a missing binary fails the test
// with instructions instead of skipping it, so a missing dependency is never
// mistaken for a pass.
package sshdtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"vulnzero.dev/vulnzero"
)

// SSHD is the sshd binary the harness runs. sshd re-executes itself, so it
// must be an absolute path.
const SSHD = "/usr/sbin/sshd"

// Fleet is a set of running sshd hosts.
type Fleet struct {
	// Hosts are named host-1 … host-n, at 127.0.0.1 on their own ports, with
	// the current user as User.
	Hosts []vulnzero.Host
	// HostKeys[i] is the public host key of Hosts[i].
	HostKeys []ssh.PublicKey
	// KnownHostsPath lists every host key as [127.0.0.1]:port.
	KnownHostsPath string
	// Signer is the client key authorized on every host.
	Signer ssh.Signer
	// KeyPath is Signer's private key file, in OpenSSH format.
	KeyPath string
	// Dir holds keys, configs and known_hosts.
	Dir string

	servers []*server
}

type server struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{} // closed when the process has exited
	once sync.Once
}

// Start starts n sshd hosts and registers their shutdown with tb.Cleanup.
func Start(tb testing.TB, n int) *Fleet {
	tb.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		tb.Fatalf("sshdtest: %s not found (%v): install openssh-server by running scripts/test-deps.sh", SSHD, err)
	}
	if n < 1 {
		tb.Fatalf("sshdtest: Start needs at least one host, got %d", n)
	}
	// The privilege-separation directory sshd insists on; packaging normally
	// creates it at boot.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { //nolint:gosec // G301: sshd wants its privilege-separation dir 0755, owned by root
		tb.Fatalf("sshdtest: create privsep dir /run/sshd: %v", err)
	}
	u, err := user.Current()
	if err != nil {
		tb.Fatalf("sshdtest: current user: %v", err)
	}

	f := &Fleet{Dir: tb.TempDir()}
	f.KeyPath = filepath.Join(f.Dir, "id_ed25519")
	clientPub, signer, err := writeKey(f.KeyPath, "sshdtest-client")
	if err != nil {
		tb.Fatalf("sshdtest: %v", err)
	}
	f.Signer = signer
	authorized := filepath.Join(f.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		tb.Fatalf("sshdtest: write authorized_keys: %v", err)
	}

	var known bytes.Buffer
	for i := 1; i <= n; i++ {
		name := "host-" + strconv.Itoa(i)
		dir := filepath.Join(f.Dir, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			tb.Fatalf("sshdtest: %v", err)
		}
		hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
		hostPub, _, err := writeKey(hostKeyPath, name)
		if err != nil {
			tb.Fatalf("sshdtest: %v", err)
		}
		s, port := startServer(tb, name, dir, hostKeyPath, authorized)
		f.servers = append(f.servers, s)
		f.Hosts = append(f.Hosts, vulnzero.Host{
			Name:    name,
			Address: "127.0.0.1",
			Port:    port,
			User:    u.Username,
			Labels:  map[string]string{"index": strconv.Itoa(i)},
		})
		f.HostKeys = append(f.HostKeys, hostPub)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		known.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, hostPub))
		known.WriteByte('\n')
	}
	f.KnownHostsPath = filepath.Join(f.Dir, "known_hosts")
	if err := os.WriteFile(f.KnownHostsPath, known.Bytes(), 0o600); err != nil {
		tb.Fatalf("sshdtest: write known_hosts: %v", err)
	}
	return f
}

// Stop kills the sshd of Hosts[i] with its connection and session
// processes: established connections drop and new ones are refused, as when
// a host goes down.
func (f *Fleet) Stop(i int) { f.servers[i].stop() }

// Log returns what the sshd of Hosts[i] has written to stderr so far.
func (f *Fleet) Log(i int) string { return f.servers[i].log.String() }

// startServer runs sshd on a free port, retrying with another port when the
// one picked was taken between choosing and binding it.
func startServer(tb testing.TB, name, dir, hostKey, authorized string) (*server, int) {
	tb.Helper()
	var lastLog string
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("sshdtest: pick a port for %s: %v", name, err)
		}
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfgPath, []byte(config(port, hostKey, authorized)), 0o600); err != nil {
			tb.Fatalf("sshdtest: write %s: %v", cfgPath, err)
		}
		s := &server{name: name, log: &syncBuffer{}, done: make(chan struct{})}
		s.cmd = exec.Command(SSHD, "-D", "-e", "-f", cfgPath)
		s.cmd.Stdout = s.log
		s.cmd.Stderr = s.log
		// Its own process group, so cleanup can kill sshd with every
		// connection process it forked.
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := s.cmd.Start(); err != nil {
			tb.Fatalf("sshdtest: start sshd for %s: %v", name, err)
		}
		go func() { _ = s.cmd.Wait(); close(s.done) }()
		tb.Cleanup(func() {
			s.stop()
			if tb.Failed() {
				tb.Logf("sshdtest: sshd log of %s:\n%s", name, s.log.String())
			}
		})

		err = waitListening(port, s.done, 10*time.Second)
		if err == nil {
			return s, port
		}
		s.stop()
		lastLog = s.log.String()
		if !strings.Contains(lastLog, "Address already in use") {
			tb.Fatalf("sshdtest: sshd for %s on port %d: %v\n%s", name, port, err, lastLog)
		}
	}
	tb.Fatalf("sshdtest: sshd for %s: no free port after 5 attempts\n%s", name, lastLog)
	return nil, 0
}

// stop kills sshd and every process it forked. Connection processes call
// setsid, so killing the process group alone would leave them serving
// established connections; they are found by parentage instead.
func (s *server) stop() {
	s.once.Do(func() {
		select {
		case <-s.done:
			return // already reaped: its pid may belong to someone else now
		default:
		}
		pid := s.cmd.Process.Pid
		_ = syscall.Kill(pid, syscall.SIGSTOP) // no new connections while we look
		// Repeat until no new process shows up: one may fork while we kill.
		killed := map[int]bool{}
		for range 5 {
			fresh := false
			for _, p := range descendants(pid) {
				if !killed[p] {
					killed[p], fresh = true, true
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
			}
			if !fresh {
				break
			}
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-s.done
	})
}

// descendants lists the processes below pid, read from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may contain spaces; the
		// parent pid is the second field after it.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func config(port int, hostKey, authorized string) string {
	return fmt.Sprintf(`# generated by sshdtest
ListenAddress 127.0.0.1:%d
AddressFamily inet
HostKey %s
PidFile none
AuthorizedKeysFile %s
# keys live under a test temp dir, which StrictModes would reject
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 200:30:400
MaxSessions 100
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
LogLevel INFO
# bash reads ~/.bashrc for ssh commands only when SHLVL<2; root's .bashrc on
# the dev machines runs slow tools no fleet host has.
SetEnv SHLVL=1
`, port, hostKey, authorized)
}

// writeKey generates an ed25519 key, writes its private half to path in
// OpenSSH format (and the public half to path.pub), and returns both halves.
func writeKey(path, comment string) (ssh.PublicKey, ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key %s: %w", path, err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key %s: %w", path, err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, nil, fmt.Errorf("write key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("signer for %s: %w", path, err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o644); err != nil {
		return nil, nil, fmt.Errorf("write key: %w", err)
	}
	return signer.PublicKey(), signer, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening polls until something accepts on port, the process exits, or
// the timeout passes.
func waitListening(port int, exited <-chan struct{}, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return errors.New("sshd exited")
		default:
		}
		err := readBanner(addr)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after %s: %w", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readBanner connects to addr and checks that an SSH server answers, so a
// foreign listener that grabbed the port is not mistaken for our sshd.
func readBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("read banner: %w", err)
	}
	if string(buf) != "SSH-" {
		return fmt.Errorf("%s is not an SSH server (banner %q)", addr, buf)
	}
	return nil
}

// syncBuffer is a bytes.Buffer safe for the process's writes and the test's
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
