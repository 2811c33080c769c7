package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/forge/local"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/postgres"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// app holds the components built from one Config. Commands take what they
// need; close releases everything.
type app struct {
	cfg   Config
	log   *slog.Logger
	store store.Store
	repo  *gitsource.Repo
	forge forge.Forge
	reg   *prometheus.Registry

	recMetricsOnce sync.Once // the reconciler's collectors, registered once (leader.go)
	recMetrics     *reconciler.Metrics
}

// openApp opens the store and the remediation repository (creating the
// local one on first use) and the local forge over them.
func openApp(ctx context.Context, cfg Config, log *slog.Logger) (*app, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	cfg = cfg.withGitHubRepo()
	a := &app{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var err error
	if cfg.Database.URL != "" {
		a.store, err = postgres.Open(ctx, cfg.Database.URL, log)
	} else {
		a.store, err = sqlite.Open(ctx, cfg.sqlitePath(), log)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if cfg.Repo.URL == "" {
		if err := ensureLocalRepo(ctx, cfg); err != nil {
			a.close()
			return nil, err
		}
	}
	gh, gitAuth, err := a.newGitHubForge()
	if err != nil {
		a.close()
		return nil, err
	}
	a.repo, err = gitsource.Open(ctx, gitsource.Config{
		URL: cfg.repoURL(), Dir: filepath.Join(cfg.DataDir, "clone.git"), Branch: cfg.Repo.Branch,
		Author: cfg.Repo.Author, Email: cfg.Repo.Email, Logger: log, Auth: gitAuth,
	})
	if err != nil {
		a.close()
		return nil, fmt.Errorf("open remediation repository: %w", err)
	}
	a.forge = local.New(a.repo, a.store, log)
	if gh != nil {
		a.forge = gh
	}
	return a, nil
}

func (a *app) close() {
	if a.store != nil {
		if err := a.store.Close(); err != nil {
			a.log.Warn("close store", "err", err)
		}
	}
}

// ensureLocalRepo creates the local forge's bare repository with an empty
// inventory and a README the first time VulnZero runs without a repo URL.
func ensureLocalRepo(ctx context.Context, cfg Config) error {
	path := cfg.repoURL()
	if _, err := os.Stat(filepath.Join(path, "HEAD")); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remediation repository %s: %w", path, err)
	}
	files := map[string][]byte{
		"README.md":            []byte(repoReadme),
		"inventory/hosts.yaml": []byte("# The fleet: hosts (name, address, port, user, labels) and groups.\nhosts: []\n"),
	}
	if _, err := gitsource.InitBare(ctx, path, cfg.Repo.Branch, files, "Initialize remediation repository", cfg.Repo.Author, cfg.Repo.Email); err != nil {
		return err
	}
	return nil
}

const repoReadme = `# Remediation repository

Managed by VulnZero. Every change to the fleet is a reviewed commit here:

- inventory/hosts.yaml: the fleet
- policies/*.yaml: RemediationPolicy, RolloutPolicy, GuardrailPolicy, TwinPolicy
- patches/<id>/: patch.yaml, apply.sh, verify.sh, rollback.sh

Merging a patch rolls it out in stages; reverting it rolls it back everywhere.
`

// gitDesired adapts the repository to the reconciler's Source: fetch, then
// read the state at the head of the desired branch.
type gitDesired struct{ repo *gitsource.Repo }

func (g gitDesired) Desired(ctx context.Context) (reconciler.Desired, error) {
	if err := g.repo.Fetch(ctx); err != nil {
		return reconciler.Desired{}, err
	}
	head, err := g.repo.Head(ctx, g.repo.Branch())
	if err != nil {
		return reconciler.Desired{}, err
	}
	st, err := g.repo.State(ctx, head)
	if err != nil {
		return reconciler.Desired{}, fmt.Errorf("desired state at %s: %w", head, err)
	}
	return reconciler.Desired{Commit: st.Commit, CommitTime: st.CommitTime, Patches: st.Patches, Inventory: st.Inventory, Policies: st.Policies}, nil
}

// prNotifier comments on the PR a failed rollout's patch came from, once
// it is rolled back (other events go to the webhook, if any).
type prNotifier struct{ forge forge.Forge }

func (n prNotifier) Notify(ctx context.Context, e reconciler.Event) error {
	if e.Kind != reconciler.EventRolledBack {
		return nil
	}
	r := e.Rollout
	prs, err := n.forge.ListPRs(ctx)
	if err != nil {
		return err
	}
	for i := len(prs) - 1; i >= 0; i-- {
		if prs[i].PatchID == r.PatchID {
			body := fmt.Sprintf("Rollout %d of revision %s failed and was rolled back on every touched host.\n\nReason: %s\n\nRevert commit: %s\nThis revision is quarantined: it will not be proposed or applied again.",
				r.ID, r.Revision.Short(), r.Reason, r.RevertSHA)
			return n.forge.Comment(ctx, prs[i].Number, body)
		}
	}
	return nil
}

// newFleet builds the SSH client from the SSH config. Host keys are always
// checked against the known_hosts file.
func newFleet(c SSHConfig, log *slog.Logger) (*fleet.Client, error) {
	home, _ := os.UserHomeDir()
	keyFile, known := c.KeyFile, c.KnownHostsFile
	if keyFile == "" {
		keyFile = filepath.Join(home, ".ssh", "id_ed25519")
	}
	if known == "" {
		known = filepath.Join(home, ".ssh", "known_hosts")
	}
	signer, err := fleet.LoadSigner(keyFile)
	if err != nil {
		return nil, fmt.Errorf("ssh key: %w", err)
	}
	hk, err := fleet.KnownHosts(known)
	if err != nil {
		return nil, fmt.Errorf("ssh known_hosts: %w", err)
	}
	return fleet.New(fleet.Config{
		User: c.User, Signers: []ssh.Signer{signer}, HostKeyCallback: hk,
		ConnectTimeout: c.ConnectTimeout, MaxParallel: c.MaxParallel, Logger: log,
	})
}

// newReconciler wires the reconciler to the repository, store, fleet and forge.
func (a *app) newReconciler(runner reconciler.Runner) (*reconciler.Reconciler, error) {
	return reconciler.New(reconciler.Config{
		Source:       gitDesired{a.repo},
		Runner:       runner,
		Store:        a.store,
		Reverter:     a.repo,
		PRReverter:   a.prReverter(),
		Notifier:     a.rolloutNotifier(),
		KEV:          a.kevCatalog(),
		Logger:       a.log,
		Metrics:      a.reconcilerMetrics(),
		PollInterval: a.cfg.Reconcile.Interval,
	})
}

// repoState reads the desired state at the head of the configured branch.
func (a *app) repoState(ctx context.Context) (gitsource.State, error) {
	head, err := a.repo.Head(ctx, a.repo.Branch())
	if err != nil {
		return gitsource.State{}, err
	}
	return a.repo.State(ctx, head)
}
