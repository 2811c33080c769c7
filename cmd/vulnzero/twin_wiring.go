package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/twin"
	"vulnzero.dev/vulnzero/twin/docker"
)

// Twin provisioners `serve` can use.
const (
	twinNone   = "none"   // PRs are not rehearsed (statuses stay absent)
	twinDocker = "docker" // a container replica per rehearsal (twin/docker)
)

// TwinConfig selects how `serve` rehearses patch PRs before merge. The
// images, services and health checks come from the repository's TwinPolicy.
type TwinConfig struct {
	// Provisioner is none (the default: no Docker assumed) or docker.
	Provisioner string `yaml:"provisioner"`
	// MaxConcurrent bounds rehearsals running at once.
	MaxConcurrent int `yaml:"maxConcurrent"`
	// PollInterval is how often open PRs are checked for heads not yet
	// rehearsed: the fallback when webhooks are lost.
	PollInterval time.Duration `yaml:"pollInterval"`
	// Binds are mounted into every twin (e.g. a local apt mirror).
	Binds []string `yaml:"binds"`
	// AptSources, when set, replaces the target's apt sources in the twin.
	AptSources string `yaml:"aptSources"`
	// Timeout bounds one rehearsal, provisioning included.
	Timeout time.Duration `yaml:"timeout"`
}

func defaultTwinConfig() TwinConfig {
	return TwinConfig{Provisioner: twinNone, MaxConcurrent: 1, PollInterval: time.Minute, Timeout: 15 * time.Minute}
}

func (c TwinConfig) validate() error {
	var errs []error
	switch c.Provisioner {
	case twinNone, twinDocker:
	default:
		errs = append(errs, fmt.Errorf("config: twin.provisioner: %q is not %s or %s", c.Provisioner, twinNone, twinDocker))
	}
	if c.MaxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("config: twin.maxConcurrent: must be at least 1, got %d", c.MaxConcurrent))
	}
	if c.PollInterval < time.Second {
		errs = append(errs, fmt.Errorf("config: twin.pollInterval: must be at least 1s, got %s", c.PollInterval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("config: twin.timeout: must be positive"))
	}
	return errors.Join(errs...)
}

// runningTwins is the twin runner `serve` started, with what stops it.
type runningTwins struct {
	runner *twin.Runner
	stop   func()
}

// twinRun is the webhook's hook: rehearse PR n at head (a new head, or a
// re-run someone asked for).
func (t *runningTwins) twinRun(a *app) func(ctx context.Context, n int, head string) error {
	if t == nil {
		return nil
	}
	return func(ctx context.Context, n int, head string) error {
		pr, err := a.forge.GetPR(ctx, n)
		if err != nil {
			return err
		}
		if head != "" && head != pr.HeadSHA {
			pr.HeadSHA = head
		}
		return t.runner.Request(pr)
	}
}

// startTwins starts the twin runner when a provisioner is configured: a
// bounded queue of rehearsals fed by webhooks (see twinRun) and by a poll of
// open PRs. It returns nil when twins are off.
func (a *app) startTwins(ctx context.Context, targets *fleet.Client, baseURL string) (*runningTwins, error) {
	c := a.cfg.Twin
	if c.Provisioner == twinNone {
		a.log.Info("twin rehearsals off: set twin.provisioner: docker to rehearse PRs before merge")
		return nil, nil
	}
	st, err := a.repoState(ctx)
	if err != nil {
		return nil, err
	}
	// testcontainers' reaper image cannot be pulled without a registry;
	// twin/docker removes its containers by label itself.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
	prov, err := docker.New(ctx, docker.Config{
		Images: st.Policies.Twin.Images, Services: st.Policies.Twin.Services, Targets: targets,
		Binds: c.Binds, AptSources: c.AptSources, Logger: a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("twin: %w", err)
	}
	runner := &twin.Runner{
		Rehearser: &twin.Checker{
			Provisioner: prov, Statuses: a.forge, Transcripts: a.store, BaseURL: baseURL,
			HealthChecks: st.Policies.Twin.HealthChecks, Timeout: c.Timeout, Logger: a.log,
		},
		Resolver:      twin.ResolverFunc(a.resolveTwin),
		MaxConcurrent: c.MaxConcurrent,
		Logger:        a.log,
	}
	if err := runner.Start(ctx); err != nil {
		_ = prov.Close()
		return nil, err
	}
	pollCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(c.PollInterval)
		defer t.Stop()
		for {
			prs, err := a.forge.ListPRs(pollCtx, vulnzero.PROpen)
			if err == nil {
				_, err = runner.Poll(prs)
			}
			if err != nil && pollCtx.Err() == nil {
				a.log.Warn("twin poll", "err", err)
			}
			select {
			case <-pollCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return &runningTwins{runner: runner, stop: func() {
		cancel()
		<-done
		runner.Stop()
		_ = prov.Close()
	}}, nil
}

// resolveTwin finds what a PR asks to rehearse: its patch at the PR head,
// and the first inventory host it targets as the host to replicate.
func (a *app) resolveTwin(ctx context.Context, pr vulnzero.PullRequest) (vulnzero.Patch, vulnzero.Host, error) {
	if err := a.repo.Fetch(ctx); err != nil {
		return vulnzero.Patch{}, vulnzero.Host{}, err
	}
	st, err := a.repo.State(ctx, pr.HeadSHA)
	if err != nil {
		return vulnzero.Patch{}, vulnzero.Host{}, fmt.Errorf("PR #%d at %s: %w", pr.Number, short(pr.HeadSHA), err)
	}
	dp, ok := st.Patch(pr.PatchID)
	if !ok {
		return vulnzero.Patch{}, vulnzero.Host{}, fmt.Errorf("PR #%d: patch %s is not on its head %s: %w", pr.Number, pr.PatchID, short(pr.HeadSHA), vulnzero.ErrNotFound)
	}
	target, ok := firstTarget(st.Inventory, dp.Patch)
	if !ok {
		return vulnzero.Patch{}, vulnzero.Host{}, fmt.Errorf("PR #%d: no inventory host matches the targets of %s: %w", pr.Number, pr.PatchID, vulnzero.ErrNotFound)
	}
	return dp.Patch, target, nil
}
