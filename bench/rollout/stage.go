package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// stageCmd rolls one patch out to every host in one stage and exits 0 only
// if every host applied and verified it.
func stageCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("stage", flag.ExitOnError)
	var sf sshFlags
	sf.register(fs)
	conc := fs.Int("concurrency", 50, "hosts in flight (the stage's maxParallel)")
	dir := fs.String("dir", "", "directory for the SQLite store (a new temporary one when empty)")
	verbose := fs.Bool("v", false, "log the reconciler's lines to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	if fs.NArg() != 1 || *conc < 1 {
		return errors.New("stage: want exactly one workload after the flags and --concurrency ≥ 1")
	}
	workload := fs.Arg(0)

	start := time.Now()
	inv, err := sf.inventory()
	if err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "vz-bench-stage-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	st, err := sqlite.Open(ctx, filepath.Join(*dir, "vulnzero.db"), log)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	client, err := sf.client(*conc)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()

	names := make([]string, len(inv.Hosts))
	for i, h := range inv.Hosts {
		names[i] = h.Name
	}
	p := benchPatch("bench-stage", "Bench stage", []byte(workload+"\n"), names)
	// One stage over every host, no failure tolerated.
	p.Rollout = &vulnzero.RolloutSpec{Strategy: policies.StrategyAllAtOnce, MaxParallel: *conc,
		Stages: []vulnzero.StageSpec{{Hosts: "100%", MaxFailures: "0"}}}
	rev, err := gitsource.PatchRevision(p)
	if err != nil {
		return err
	}
	src := staticSource{reconciler.Desired{Commit: "bench", Inventory: inv, Policies: policies.Defaults(),
		Patches: []vulnzero.DesiredPatch{{Patch: p, Revision: rev, Commit: "bench"}}}}
	rec, err := reconciler.New(reconciler.Config{Source: src, Runner: client, Store: st, Reverter: noRevert{}, Logger: log})
	if err != nil {
		return err
	}
	began := time.Now()
	rep, err := rec.RunOnce(ctx)
	if err != nil {
		return fmt.Errorf("reconcile: %w\n%s", err, rep)
	}
	took := time.Since(began)
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].State != vulnzero.RolloutSucceeded {
		return fmt.Errorf("rollout did not succeed:\n%s", rep)
	}
	ledger, err := st.ListLedger(ctx)
	if err != nil {
		return err
	}
	applied := 0
	for _, e := range ledger {
		if e.State == vulnzero.LedgerApplied && e.Revision == rev {
			applied++
		}
	}
	if applied != len(inv.Hosts) {
		return fmt.Errorf("%d of %d hosts applied", applied, len(inv.Hosts))
	}
	fmt.Fprintf(os.Stderr, "vulnzero: rollout to %d hosts at maxParallel %d: stage %.2fs, process %.2fs\n",
		len(inv.Hosts), *conc, took.Seconds(), time.Since(start).Seconds())
	return nil
}

// staticSource is a desired state built in memory: the stage benchmark
// measures the rollout, not reading git.
type staticSource struct{ d reconciler.Desired }

func (s staticSource) Desired(context.Context) (reconciler.Desired, error) { return s.d, nil }

// noRevert refuses: a benchmark rollout that fails is reported, not
// reverted.
type noRevert struct{}

func (noRevert) RevertPatch(context.Context, string, vulnzero.Revision, string) (string, error) {
	return "", errors.New("the benchmark writes no reverts")
}
