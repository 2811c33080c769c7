package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/twin"
)

// Config configures a Provisioner.
type Config struct {
	// Images maps a target's OS, "<ID> <VERSION_ID>" from its
	// /etc/os-release (e.g. "debian 12"), to the twin image:
	// TwinPolicy.images.
	Images map[string]string
	// Services are started in every twin, in order: TwinPolicy.services.
	Services []string
	// Targets reaches the real target hosts, to read their state.
	Targets twin.HostRunner
	// Binds are mounted into every twin, "host-path:container-path[:ro]",
	// e.g. a local apt repository that the target's sources name as file:.
	Binds []string
	// AptSources, when set, replaces the target's apt sources in the twin.
	AptSources string
	// BindAddress is where each twin's sshd port is published; 127.0.0.1
	// when empty.
	BindAddress string
	// ProvisionTimeout bounds reading the target, starting the container
	// and replicating the target's state; 5 minutes when zero.
	ProvisionTimeout time.Duration
	// MemoryBytes and PidsLimit bound each twin; see HostSpec.
	MemoryBytes int64
	PidsLimit   int64
	// Engine starts the containers; New makes one when nil (and Close
	// closes it).
	Engine *Engine
	Logger *slog.Logger
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var problems []string
	if len(c.Images) == 0 {
		problems = append(problems, "Images is empty: no OS has a twin image (TwinPolicy images)")
	}
	for os, img := range c.Images {
		if img == "" {
			problems = append(problems, fmt.Sprintf("Images[%q] is empty", os))
		}
	}
	if c.Targets == nil {
		problems = append(problems, "Targets is required: the twin reads the target host's state over SSH")
	}
	if c.ProvisionTimeout < 0 {
		problems = append(problems, fmt.Sprintf("ProvisionTimeout %s is negative", c.ProvisionTimeout))
	}
	if len(problems) > 0 {
		return fmt.Errorf("docker twin config: %s: %w", strings.Join(problems, "; "), vulnzero.ErrInvalid)
	}
	return nil
}

// Provisioner builds twins as containers. It is safe for concurrent use;
// bound concurrency with twin.Runner.
type Provisioner struct {
	cfg       Config
	engine    *Engine
	ownEngine bool
	log       *slog.Logger
}

var _ twin.Provisioner = (*Provisioner)(nil)

// New returns a Provisioner for cfg. Without cfg.Engine it connects to
// Docker and sweeps leftover twin containers (see NewEngine).
func New(ctx context.Context, cfg Config) (*Provisioner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ProvisionTimeout == 0 {
		cfg.ProvisionTimeout = 5 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Provisioner{cfg: cfg, engine: cfg.Engine, log: log}
	if p.engine == nil {
		e, err := NewEngine(ctx, log)
		if err != nil {
			return nil, err
		}
		p.engine, p.ownEngine = e, true
	}
	return p, nil
}

// Close removes the twins still running and, when New made the engine,
// closes it.
func (p *Provisioner) Close() error {
	if p.ownEngine {
		return p.engine.Close()
	}
	return nil
}

// Provision reads the target's state (OS, packages, apt configuration),
// starts a container from the image for its OS and replicates that state
// in it: the target's apt sources, the target's package versions, the
// configured services. The container is removed when provisioning fails
// and when the replica is closed.
func (p *Provisioner) Provision(ctx context.Context, target vulnzero.Host) (twin.Replica, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ProvisionTimeout)
	defer cancel()
	st, err := twin.ReadHostState(ctx, p.cfg.Targets, target)
	if err != nil {
		return nil, err
	}
	image, ok := p.cfg.Images[st.OS]
	if !ok {
		return nil, fmt.Errorf("twin of %s: no twin image for its OS %q (TwinPolicy images has %s): %w",
			target.Name, st.OS, strings.Join(slices.Sorted(maps.Keys(p.cfg.Images)), ", "), vulnzero.ErrInvalid)
	}
	h, err := p.engine.StartHost(ctx, HostSpec{
		Image: image, Name: "twin-" + target.Name, Role: "twin", Binds: p.cfg.Binds,
		BindAddress: p.cfg.BindAddress, MemoryBytes: p.cfg.MemoryBytes, PidsLimit: p.cfg.PidsLimit,
	})
	if err != nil {
		return nil, fmt.Errorf("twin of %s: %w", target.Name, err)
	}
	r := &replica{engine: p.engine, host: h, image: image}
	r.client, err = fleet.New(h.FleetConfig(p.log))
	if err == nil {
		r.rep, err = twin.Sync(ctx, r.client, h.Host, target.Name, st, twin.SyncOptions{
			AptSources: p.cfg.AptSources, Services: p.cfg.Services,
		})
	}
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("twin of %s: %w", target.Name, err)
	}
	r.rep.Duration = time.Since(start)
	p.log.Info("twin provisioned", "target", target.Name, "container", shortID(h.ContainerID), "image", image,
		"installed", len(r.rep.Installed), "missing", len(r.rep.Missing), "duration", r.rep.Duration)
	return r, nil
}

// replica is a twin container driven over SSH, like a fleet host.
type replica struct {
	engine *Engine
	host   *Host
	image  string
	client *fleet.Client
	rep    twin.Replication

	once     sync.Once
	closeErr error
}

func (r *replica) Run(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
	return r.client.Run(ctx, r.host.Host, cmd)
}

// Describe says what the twin is and how faithfully it copies its target;
// twin.Checker puts it at the top of the transcript.
func (r *replica) Describe() string {
	return fmt.Sprintf("docker container %s from image %s\n%s", shortID(r.host.ContainerID), r.image, r.rep)
}

// Close disconnects and removes the container; later calls return the
// first call's result.
func (r *replica) Close() error {
	r.once.Do(func() {
		var errs []error
		if r.client != nil {
			errs = append(errs, r.client.Close())
		}
		errs = append(errs, r.engine.Remove(r.host))
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}
