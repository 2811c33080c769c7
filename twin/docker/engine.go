package docker

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
)

// Labels on every container this package starts. Removal is by these
// labels: testcontainers' reaper is not used (its image cannot be pulled
// without a registry), so Engine removes its own containers and sweeps
// those a crashed process left behind.
const (
	LabelManaged = "dev.vulnzero.twin"       // "1": started by this package
	LabelOwner   = "dev.vulnzero.twin.owner" // the process that started it, see ownerID
	LabelRole    = "dev.vulnzero.twin.role"  // "twin" or "host"
	LabelName    = "dev.vulnzero.twin.name"  // the host it replicates, or its name
)

// DefaultMaxAge is how old a container must be before Sweep removes it even
// when its owner cannot be proven dead (another machine's process).
const DefaultMaxAge = 6 * time.Hour

// Engine starts and removes containers that run sshd, reached over SSH like
// any host. It is safe for concurrent use.
type Engine struct {
	provider *testcontainers.DockerProvider
	docker   client.APIClient
	owner    string
	log      *slog.Logger

	mu   sync.Mutex
	live map[string]*Host // by container id
}

// NewEngine connects to the Docker daemon (DOCKER_HOST or the default
// socket, as the docker CLI does) and sweeps containers left behind by
// processes that died without removing them.
//
// testcontainers' reaper is configured process-wide by testcontainers
// itself (TESTCONTAINERS_RYUK_DISABLED=true or ryuk.disabled=true in
// ~/.testcontainers.properties); where its image cannot be pulled it must be
// disabled there. Engine does not depend on it.
func NewEngine(ctx context.Context, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := testcontainers.NewDockerProvider(testcontainers.WithLogger(printfLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("docker: connect: %w", err)
	}
	e := &Engine{provider: p, docker: p.Client(), owner: ownerID(), log: log, live: map[string]*Host{}}
	if _, err := e.Sweep(ctx, DefaultMaxAge); err != nil {
		return nil, err
	}
	return e, nil
}

// HostSpec describes a container host to start.
type HostSpec struct {
	Image string
	// Name labels the container (LabelName) and names the vulnzero.Host.
	Name string
	// Role is LabelRole: "twin" for replicas, "host" otherwise.
	Role string
	// Binds are mounts "host-path:container-path[:ro]".
	Binds []string
	// BindAddress is where sshd's port is published; 127.0.0.1 when empty.
	BindAddress string
	// MemoryBytes and PidsLimit bound what scripts in the container can
	// take from the machine; 1 GiB and 1024 when zero.
	MemoryBytes int64
	PidsLimit   int64
	// StartTimeout bounds container start and sshd coming up; 60s when zero.
	StartTimeout time.Duration
}

// Host is a running container, reachable as root over SSH with its own
// generated host key and client key.
type Host struct {
	vulnzero.Host
	ContainerID string
	// Signer is the client key authorized for root.
	Signer ssh.Signer
	// HostKey is the container's sshd host key, generated for it.
	HostKey ssh.PublicKey

	c testcontainers.Container
}

// FleetConfig is a fleet.Config that authenticates to h and checks its
// host key.
func (h *Host) FleetConfig(log *slog.Logger) fleet.Config {
	return fleet.Config{
		User: "root", Signers: []ssh.Signer{h.Signer}, HostKeyCallback: ssh.FixedHostKey(h.HostKey),
		MaxParallel: 4, Logger: log,
	}
}

// sshdConfig is dropped into /etc/ssh/sshd_config.d, which Debian's
// sshd_config includes first (first value wins). PAM is off: pam_loginuid
// cannot write /proc/self/loginuid in a container and would refuse logins.
const sshdConfig = `# written by vulnzero twin/docker
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
MaxSessions 64
MaxStartups 64:30:128
`

// StartHost starts a container from spec.Image with a fresh host key and
// client key, waits until its sshd answers, and returns it. The container
// is labelled for removal by Remove, Close or a later Sweep.
func (e *Engine) StartHost(ctx context.Context, spec HostSpec) (*Host, error) {
	if spec.Image == "" {
		return nil, fmt.Errorf("start host %s: no image: %w", spec.Name, vulnzero.ErrInvalid)
	}
	role := spec.Role
	if role == "" {
		role = "host"
	}
	bind := spec.BindAddress
	if bind == "" {
		bind = "127.0.0.1"
	}
	bindIP, err := netip.ParseAddr(bind)
	if err != nil {
		return nil, fmt.Errorf("start host %s: bind address %q: %w", spec.Name, bind, vulnzero.ErrInvalid)
	}
	mem, pids := spec.MemoryBytes, spec.PidsLimit
	if mem == 0 {
		mem = 1 << 30
	}
	if pids == 0 {
		pids = 1024
	}
	startTimeout := spec.StartTimeout
	if startTimeout == 0 {
		startTimeout = 60 * time.Second
	}

	hostSigner, hostPEM, err := newKey("vulnzero-twin-host")
	if err != nil {
		return nil, fmt.Errorf("start host %s: %w", spec.Name, err)
	}
	clientSigner, _, err := newKey("vulnzero-twin-client")
	if err != nil {
		return nil, fmt.Errorf("start host %s: %w", spec.Name, err)
	}
	files := []testcontainers.ContainerFile{
		{Reader: strings.NewReader(string(hostPEM)), ContainerFilePath: "/etc/ssh/ssh_host_ed25519_key", FileMode: 0o600},
		{Reader: strings.NewReader(sshdConfig), ContainerFilePath: "/etc/ssh/sshd_config.d/vulnzero-twin.conf", FileMode: 0o644},
		{Reader: strings.NewReader(string(ssh.MarshalAuthorizedKey(clientSigner.PublicKey()))), ContainerFilePath: "/root/.ssh/authorized_keys", FileMode: 0o600},
	}
	port22 := network.MustParsePort("22/tcp")
	req := testcontainers.ContainerRequest{
		Image:        spec.Image,
		ExposedPorts: []string{"22/tcp"},
		Files:        files,
		Labels: map[string]string{
			LabelManaged: "1", LabelOwner: e.owner, LabelRole: role, LabelName: spec.Name,
		},
		HostConfigModifier: func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{port22: {{HostIP: bindIP}}}
			hc.Binds = append(hc.Binds, spec.Binds...)
			hc.Memory = mem
			hc.PidsLimit = &pids
		},
		// vz-twin-init runs sshd -D -e, which logs this line once it
		// accepts connections.
		WaitingFor: wait.ForLog("Server listening on").WithStartupTimeout(startTimeout),
	}
	c, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: req, Started: true, Logger: printfLogger{e.log},
	})
	if c != nil {
		// Tracked before anything else can fail, so it is always removed.
		e.track(&Host{ContainerID: c.GetContainerID(), c: c})
	}
	if err != nil {
		if c != nil {
			err = fmt.Errorf("%w\n%s", err, containerLogs(ctx, c))
			_ = e.remove(c.GetContainerID())
		}
		return nil, fmt.Errorf("start host %s from %s: %w", spec.Name, spec.Image, reaperHint(err))
	}
	port, err := c.MappedPort(ctx, "22/tcp")
	if err != nil {
		_ = e.remove(c.GetContainerID())
		return nil, fmt.Errorf("start host %s: ssh port: %w", spec.Name, err)
	}
	address := bind
	if bindIP.IsUnspecified() {
		if address, err = c.Host(ctx); err != nil {
			_ = e.remove(c.GetContainerID())
			return nil, fmt.Errorf("start host %s: address: %w", spec.Name, err)
		}
	}
	h := &Host{
		Host: vulnzero.Host{
			Name: spec.Name, Address: address, Port: int(port.Num()), User: "root",
			Labels: map[string]string{"container": shortID(c.GetContainerID())},
		},
		ContainerID: c.GetContainerID(), Signer: clientSigner, HostKey: hostSigner.PublicKey(), c: c,
	}
	e.track(h)
	e.log.Debug("twin container started", "name", spec.Name, "container", shortID(h.ContainerID), "image", spec.Image, "port", h.Port)
	return h, nil
}

// Remove removes h's container (killing it if it runs).
func (e *Engine) Remove(h *Host) error {
	if h == nil {
		return nil
	}
	return e.remove(h.ContainerID)
}

func (e *Engine) track(h *Host) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.live[h.ContainerID] = h
}

// remove force-removes a container with a context of its own: removal must
// happen even when the caller's context is what ran out.
func (e *Engine) remove(id string) error {
	e.mu.Lock()
	delete(e.live, id)
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := e.docker.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !strings.Contains(err.Error(), "No such container") {
		return fmt.Errorf("remove container %s: %w", shortID(id), err)
	}
	e.log.Debug("twin container removed", "container", shortID(id))
	return nil
}

// Live lists the ids of the containers this engine started and has not
// removed.
func (e *Engine) Live() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, 0, len(e.live))
	for id := range e.live {
		ids = append(ids, id)
	}
	return ids
}

// Close removes every container this engine started and still has.
func (e *Engine) Close() error {
	var errs []error
	for _, id := range e.Live() {
		errs = append(errs, e.remove(id))
	}
	return errors.Join(errs...)
}

// Sweep removes containers labelled by this package whose owner process is
// gone: started on this machine by a process that no longer runs, or older
// than maxAge whoever started them. Containers of live processes —
// another test binary, another VulnZero — are left alone. It returns how
// many it removed.
func (e *Engine) Sweep(ctx context.Context, maxAge time.Duration) (int, error) {
	list, err := e.docker.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", LabelManaged+"=1"),
	})
	if err != nil {
		return 0, fmt.Errorf("sweep twin containers: list: %w", err)
	}
	removed := 0
	var errs []error
	for _, c := range list.Items {
		owner := c.Labels[LabelOwner]
		age := time.Since(time.Unix(c.Created, 0))
		if owner == e.owner || (ownerAlive(owner) && age < maxAge) {
			continue
		}
		e.log.Info("removing leftover twin container", "container", shortID(c.ID), "owner", owner, "age", age.Round(time.Second))
		if err := e.remove(c.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}

// ownerID names this process: host name, pid and the process's start time
// in clock ticks since boot (so a recycled pid is not taken for us).
func ownerID() string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + procStart(os.Getpid())
}

// ownerAlive reports whether the owner of a container may still run: it is
// certainly dead only when it ran on this machine and its pid is gone or
// now belongs to a process started at another time.
func ownerAlive(owner string) bool {
	parts := strings.Split(owner, "/")
	if len(parts) != 3 {
		return false // not ours to keep
	}
	if host, _ := os.Hostname(); parts[0] != host {
		return true
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return procStart(pid) == parts[2]
}

// procStart reads field 22 (starttime) of /proc/<pid>/stat; "" when it
// cannot be read.
func procStart(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	// The command name is in parentheses and may hold spaces.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func newKey(comment string) (ssh.Signer, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("signer: %w", err)
	}
	return signer, pem.EncodeToMemory(block), nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// containerLogs returns the tail of a container's output, for errors.
func containerLogs(ctx context.Context, c testcontainers.Container) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	rc, err := c.Logs(ctx)
	if err != nil {
		return "(no container logs: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
	if len(b) > 8192 {
		b = b[len(b)-8192:]
	}
	return "container output:\n" + string(b)
}

// reaperHint explains the error testcontainers gives when its reaper is
// enabled and its image cannot be pulled.
func reaperHint(err error) error {
	if err != nil && strings.Contains(err.Error(), "reaper") {
		return fmt.Errorf("%w (testcontainers' reaper is enabled: where its image cannot be pulled, set TESTCONTAINERS_RYUK_DISABLED=true; twin/docker removes its containers itself)", err)
	}
	return err
}

// printfLogger routes testcontainers' log lines to slog at debug level.
type printfLogger struct{ l *slog.Logger }

func (p printfLogger) Printf(format string, v ...any) {
	p.l.Debug("testcontainers: " + strings.TrimSpace(fmt.Sprintf(format, v...)))
}
