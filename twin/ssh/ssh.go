// Package ssh provisions twins on a designated staging host reached over
// SSH, for fleets where containers cannot stand in for a host (another
// kernel, hardware, an OS without an image) or where a long-lived staging
// machine is what the team trusts.
//
// The staging host is reused, one rehearsal at a time: before each one it
// is brought to the target's state exactly as a container twin is
// (twin.ReadHostState, twin.Sync: the target's apt configuration, the
// target's package versions, TwinPolicy's services), and the patch state
// earlier rehearsals left (VZ_STATE_DIR, /var/lib/vulnzero) is cleared so
// a rollback never restores another rehearsal's saved packages. Unlike a
// container, the staging host is not thrown away: packages it has beyond
// the target's stay (they are counted in the transcript), and a rehearsal
// whose rollback failed leaves it changed until the next sync.
//
// The staging host must run the target's OS: a target of another OS is
// refused rather than rehearsed somewhere it does not resemble.
package ssh

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/twin"
)

// DefaultStateDirs are the patch state directories cleared before each
// rehearsal: where the rules-generated scripts keep what rollback needs.
var DefaultStateDirs = []string{"/var/lib/vulnzero"}

// Config configures a Provisioner.
type Config struct {
	// Staging is the designated staging host.
	Staging vulnzero.Host
	// Runner reaches the staging host; *fleet.Client satisfies it.
	Runner twin.HostRunner
	// Targets reaches the target hosts, to read their state; Runner when
	// nil.
	Targets twin.HostRunner
	// Sudo runs everything on the staging host through `sudo -n`, for a
	// staging login that is not root.
	Sudo bool
	// Services are (re)started before each rehearsal: TwinPolicy.services.
	Services []string
	// AptSources, when set, replaces the target's apt sources on the
	// staging host.
	AptSources string
	// StateDirs are emptied before each rehearsal; DefaultStateDirs when
	// nil.
	StateDirs []string
	// ProvisionTimeout bounds reading the target and syncing the staging
	// host; 10 minutes when zero.
	ProvisionTimeout time.Duration
	Logger           *slog.Logger
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var problems []string
	if c.Staging.Address == "" {
		problems = append(problems, "Staging has no address")
	}
	if c.Runner == nil {
		problems = append(problems, "Runner is required (a fleet.Client that reaches the staging host)")
	}
	for _, d := range c.StateDirs {
		if !strings.HasPrefix(d, "/") || d == "/" || strings.Contains(d, "..") {
			problems = append(problems, fmt.Sprintf("StateDirs entry %q is not an absolute directory below /", d))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("ssh twin config: %s: %w", strings.Join(problems, "; "), vulnzero.ErrInvalid)
	}
	return nil
}

// Provisioner hands out the staging host as a replica, one rehearsal at a
// time.
type Provisioner struct {
	cfg  Config
	log  *slog.Logger
	run  twin.HostRunner // the staging host, through sudo when configured
	slot chan struct{}   // held from Provision until the replica is closed
}

var _ twin.Provisioner = (*Provisioner)(nil)

// New returns a Provisioner for cfg.
func New(cfg Config) (*Provisioner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Targets == nil {
		cfg.Targets = cfg.Runner
	}
	if cfg.StateDirs == nil {
		cfg.StateDirs = DefaultStateDirs
	}
	if cfg.ProvisionTimeout == 0 {
		cfg.ProvisionTimeout = 10 * time.Minute
	}
	if cfg.Staging.Name == "" {
		cfg.Staging.Name = cfg.Staging.Address
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	run := cfg.Runner
	if cfg.Sudo {
		run = sudoRunner{cfg.Runner}
	}
	return &Provisioner{cfg: cfg, log: log, run: run, slot: make(chan struct{}, 1)}, nil
}

// Provision waits for the staging host to be free, then brings it to the
// target's state. The staging host stays taken until the replica is closed.
func (p *Provisioner) Provision(ctx context.Context, target vulnzero.Host) (twin.Replica, error) {
	start := time.Now()
	select {
	case p.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("twin of %s on staging host %s: waiting for the staging host: %w", target.Name, p.cfg.Staging.Name, ctx.Err())
	}
	r, err := p.provision(ctx, target, start)
	if err != nil {
		<-p.slot
		return nil, fmt.Errorf("twin of %s on staging host %s: %w", target.Name, p.cfg.Staging.Name, err)
	}
	return r, nil
}

func (p *Provisioner) provision(ctx context.Context, target vulnzero.Host, start time.Time) (*replica, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ProvisionTimeout)
	defer cancel()
	st, err := twin.ReadHostState(ctx, p.cfg.Targets, target)
	if err != nil {
		return nil, err
	}
	mine, err := twin.ReadHostState(ctx, p.run, p.cfg.Staging)
	if err != nil {
		return nil, err
	}
	if mine.OS != st.OS {
		return nil, fmt.Errorf("the staging host runs %q and the target %q: %w", mine.OS, st.OS, vulnzero.ErrInvalid)
	}
	if len(p.cfg.StateDirs) > 0 {
		script := "set -eu\nfor d in " + shellWords(p.cfg.StateDirs) + "; do rm -rf \"$d\"; done\n"
		res, err := p.run.Run(ctx, p.cfg.Staging, fleet.Command{Script: []byte(script), Timeout: time.Minute})
		if err != nil {
			return nil, fmt.Errorf("clear patch state: %w", err)
		}
		if res.ExitCode != 0 {
			return nil, fmt.Errorf("clear patch state: exit %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))
		}
	}
	rep, err := twin.Sync(ctx, p.run, p.cfg.Staging, target.Name, st, twin.SyncOptions{
		AptSources: p.cfg.AptSources, Services: p.cfg.Services,
	})
	if err != nil {
		return nil, err
	}
	rep.Duration = time.Since(start)
	p.log.Info("staging host synced to target", "staging", p.cfg.Staging.Name, "target", target.Name,
		"installed", len(rep.Installed), "missing", len(rep.Missing), "duration", rep.Duration)
	return &replica{p: p, rep: rep}, nil
}

// replica is the staging host, taken for one rehearsal.
type replica struct {
	p    *Provisioner
	rep  twin.Replication
	once sync.Once
}

func (r *replica) Run(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
	return r.p.run.Run(ctx, r.p.cfg.Staging, cmd)
}

// Describe says where the rehearsal ran and how faithfully; twin.Checker
// puts it at the top of the transcript.
func (r *replica) Describe() string {
	return fmt.Sprintf("staging host %s (%s), reused between rehearsals\n%s", r.p.cfg.Staging.Name, r.p.cfg.Staging.Address, r.rep)
}

// Close frees the staging host for the next rehearsal. The host itself is
// left as the rehearsal's rollback left it; the next Provision syncs it.
func (r *replica) Close() error {
	r.once.Do(func() { <-r.p.slot })
	return nil
}

// sudoRunner runs every command through sudo -n.
type sudoRunner struct{ r twin.HostRunner }

func (s sudoRunner) Run(ctx context.Context, h vulnzero.Host, cmd fleet.Command) (fleet.Result, error) {
	cmd.Sudo = true
	return s.r.Run(ctx, h, cmd)
}

func shellWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
