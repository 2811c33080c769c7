// Package sandbox runs the demo's local "hosts": one small SSH server per
// host on 127.0.0.1, each executing commands with /bin/sh inside its own
// directory.
//
// It exists so the embedded default (no real fleet configured) still drives
// hosts through the production path: fleet.Client dials a real SSH server,
// checks its host key against a known_hosts file and authenticates with a
// private key file, exactly as it would against OpenSSH. Only the far side
// differs: commands run as the current user, in Dir/hosts/<name>/, with a
// clean environment whose PATH starts with the host's own bin/ directory,
// so a demo can place stand-ins for package managers there.
//
// Layout under Config.Dir:
//
//	id_ed25519, id_ed25519.pub   the fleet's client key (the only key accepted)
//	known_hosts                  every host key, as [127.0.0.1]:port
//	hosts/<name>/                a host's root: cwd and HOME of its commands
//	hosts/<name>/var/lib/vulnzero  VZ_STATE_DIR
//
// Host roots persist across restarts on the same Dir (their state is the
// hosts' state); keys and ports are new on every Start, and known_hosts is
// rewritten to match.
package sandbox

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"vulnzero.dev/vulnzero"
)

// User is the login name every sandbox host accepts.
const User = "sandbox"

// handshakeTimeout bounds an SSH handshake, so a stuck client cannot hold a
// connection slot.
const handshakeTimeout = 10 * time.Second

// HostSpec declares one sandbox host.
type HostSpec struct {
	Name   string
	Labels map[string]string
	// Files seeds the host root: relative path → content. A file already
	// present (from an earlier run on the same Dir) is left alone, so what
	// a patch changed survives a restart. Files under bin/ and files that
	// start with "#!" are made executable.
	Files map[string]string
}

// Config configures a sandbox fleet.
type Config struct {
	Dir    string // created if missing
	Hosts  []HostSpec
	Logger *slog.Logger // nil discards
}

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var problems []string
	if c.Dir == "" {
		problems = append(problems, "Dir is required")
	}
	if len(c.Hosts) == 0 {
		problems = append(problems, "no hosts")
	}
	seen := map[string]bool{}
	for i, h := range c.Hosts {
		if !hostNameRE.MatchString(h.Name) {
			problems = append(problems, fmt.Sprintf("Hosts[%d]: name %q must match %s", i, h.Name, hostNameRE))
			continue
		}
		if seen[h.Name] {
			problems = append(problems, fmt.Sprintf("Hosts[%d]: duplicate name %q", i, h.Name))
		}
		seen[h.Name] = true
		for _, p := range slices.Sorted(maps.Keys(h.Files)) {
			if !filepath.IsLocal(p) {
				problems = append(problems, fmt.Sprintf("Hosts[%d] (%s): file %q must be a relative path inside the host root", i, h.Name, p))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("sandbox config: %s: %w", strings.Join(problems, "; "), vulnzero.ErrInvalid)
	}
	return nil
}

// Fleet is a running set of sandbox hosts.
type Fleet struct {
	dir       string
	log       *slog.Logger
	clientKey ssh.PublicKey
	hosts     []*host
	byName    map[string]*host
	wg        sync.WaitGroup // accept loops, connections, sessions
	stopCtx   func() bool
	closeOnce sync.Once
}

type host struct {
	spec    HostSpec
	root    string
	port    int
	hostKey ssh.PublicKey
	ln      net.Listener
	server  *ssh.ServerConfig

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
}

// Start creates the host roots, keys and known_hosts under cfg.Dir and
// starts one SSH server per host. The fleet runs until Close, or until ctx
// is done.
func Start(ctx context.Context, cfg Config) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("sandbox dir %s: %w", cfg.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create sandbox dir: %w", err)
	}
	f := &Fleet{dir: dir, log: cfg.Logger, byName: map[string]*host{}}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.clientKey, err = loadOrCreateClientKey(f.ClientKeyPath())
	if err != nil {
		return nil, err
	}
	for _, spec := range cfg.Hosts {
		h, err := f.startHost(spec)
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		f.hosts = append(f.hosts, h)
		f.byName[spec.Name] = h
	}
	if err := f.writeKnownHosts(); err != nil {
		_ = f.Close()
		return nil, err
	}
	f.stopCtx = context.AfterFunc(ctx, func() { _ = f.Close() })
	return f, nil
}

// Hosts returns the inventory entries of the sandbox hosts, in Config order.
// A stopped host is still listed: the inventory does not change when a host
// goes down.
func (f *Fleet) Hosts() []vulnzero.Host {
	out := make([]vulnzero.Host, len(f.hosts))
	for i, h := range f.hosts {
		out[i] = vulnzero.Host{Name: h.spec.Name, Address: "127.0.0.1", Port: h.port, User: User, Labels: maps.Clone(h.spec.Labels)}
	}
	return out
}

// KnownHostsPath is the known_hosts file listing every host key.
func (f *Fleet) KnownHostsPath() string { return filepath.Join(f.dir, "known_hosts") }

// ClientKeyPath is the private key file the hosts accept (OpenSSH format).
func (f *Fleet) ClientKeyPath() string { return filepath.Join(f.dir, "id_ed25519") }

// Root is the directory of host name: the cwd and HOME of its commands.
func (f *Fleet) Root(name string) string { return filepath.Join(f.dir, "hosts", name) }

// Stop takes host name down, as if it had died: its listener closes (new
// connections are refused), its connections drop and their commands are
// killed. Stopping an unknown or stopped host does nothing.
func (f *Fleet) Stop(name string) {
	if h := f.byName[name]; h != nil {
		h.stop()
		f.log.Info("sandbox host stopped", "host", name)
	}
}

// Close stops every host and waits for their commands to end.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		if f.stopCtx != nil {
			f.stopCtx()
		}
		for _, h := range f.hosts {
			h.stop()
		}
		f.wg.Wait()
	})
	return nil
}

func (h *host) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	h.stopped = true
	_ = h.ln.Close()
	for c := range h.conns {
		_ = c.Close()
	}
}

// startHost prepares the host root, generates its host key and starts
// listening.
func (f *Fleet) startHost(spec HostSpec) (*host, error) {
	h := &host{spec: spec, root: f.Root(spec.Name), conns: map[net.Conn]struct{}{}}
	for _, d := range []string{"bin", filepath.Join("var", "lib", "vulnzero")} {
		if err := os.MkdirAll(filepath.Join(h.root, d), 0o750); err != nil {
			return nil, fmt.Errorf("host %s: create %s: %w", spec.Name, d, err)
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(spec.Files)) {
		if err := seedFile(h.root, rel, spec.Files[rel]); err != nil {
			return nil, fmt.Errorf("host %s: seed %s: %w", spec.Name, rel, err)
		}
	}

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("host %s: generate host key: %w", spec.Name, err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("host %s: host key: %w", spec.Name, err)
	}
	h.hostKey = signer.PublicKey()
	h.server = &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() != User {
				return nil, fmt.Errorf("user %q is not %q", meta.User(), User)
			}
			if !bytes.Equal(key.Marshal(), f.clientKey.Marshal()) {
				return nil, fmt.Errorf("key %s is not the fleet key", ssh.FingerprintSHA256(key))
			}
			return nil, nil
		},
		ServerVersion: "SSH-2.0-vulnzero-sandbox",
	}
	h.server.AddHostKey(signer)

	h.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("host %s: listen: %w", spec.Name, err)
	}
	h.port = h.ln.Addr().(*net.TCPAddr).Port
	f.wg.Go(func() { f.accept(h) })
	f.log.Info("sandbox host listening", "host", spec.Name, "addr", h.ln.Addr().String(), "root", h.root)
	return h, nil
}

// seedFile writes content to root/rel unless the file exists.
func seedFile(root, rel, content string) error {
	path := filepath.Join(root, rel)
	if _, err := os.Lstat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if strings.HasPrefix(filepath.ToSlash(rel), "bin/") || strings.HasPrefix(content, "#!") {
		mode = 0o755
	}
	return os.WriteFile(path, []byte(content), mode)
}

// loadOrCreateClientKey returns the public half of the fleet's client key,
// generating the key pair when path does not hold one.
func loadOrCreateClientKey(path string) (ssh.PublicKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("sandbox client key %s: %w", path, err)
		}
		return s.PublicKey(), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sandbox client key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate sandbox client key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "vulnzero-sandbox")
	if err != nil {
		return nil, fmt.Errorf("marshal sandbox client key: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sandbox client key: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("write sandbox client key: %w", err)
	}
	if err := os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
		return nil, fmt.Errorf("write sandbox client key: %w", err)
	}
	return s.PublicKey(), nil
}

// writeKnownHosts replaces known_hosts in one rename, so a reader never sees
// half of it.
func (f *Fleet) writeKnownHosts() error {
	var b bytes.Buffer
	for _, h := range f.hosts {
		addr := knownhosts.Normalize(net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port)))
		b.WriteString(knownhosts.Line([]string{addr}, h.hostKey))
		b.WriteByte('\n')
	}
	tmp := f.KnownHostsPath() + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	if err := os.Rename(tmp, f.KnownHostsPath()); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	return nil
}

// accept serves connections until the listener closes.
func (f *Fleet) accept(h *host) {
	for {
		nc, err := h.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.log.Warn("sandbox accept", "host", h.spec.Name, "err", err)
			}
			return
		}
		h.mu.Lock()
		if h.stopped {
			h.mu.Unlock()
			_ = nc.Close()
			return
		}
		h.conns[nc] = struct{}{}
		h.mu.Unlock()
		f.wg.Go(func() {
			defer func() {
				h.mu.Lock()
				delete(h.conns, nc)
				h.mu.Unlock()
				_ = nc.Close()
			}()
			f.serveConn(h, nc)
		})
	}
}

func (f *Fleet) serveConn(h *host, nc net.Conn) {
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(nc, h.server)
	if err != nil {
		f.log.Debug("sandbox handshake", "host", h.spec.Name, "remote", nc.RemoteAddr().String(), "err", err)
		return
	}
	defer sc.Close()
	_ = nc.SetDeadline(time.Time{})
	go ssh.DiscardRequests(reqs)
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only session channels are supported")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		f.wg.Go(func() { f.session(h, ch, chReqs) })
	}
}
