package main

import (
	"context"
	"sync"

	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/store/postgres/lease"
)

// reconcilerMetrics builds the reconciler's collectors once: serve builds a
// new Reconciler for every term of leadership, and a registry takes each
// collector only once.
func (a *app) reconcilerMetrics() *reconciler.Metrics {
	a.recMetricsOnce.Do(func() { a.recMetrics = reconciler.NewMetrics(a.reg) })
	return a.recMetrics
}

// runningReconciler is the reconciler serve runs. With SQLite it is the one
// process that uses the database, so it reconciles from the start. With
// PostgreSQL, replicas of serve share the database: each campaigns for the
// lease of the remediation repository (store/postgres/lease) and only the
// holder reconciles, with a Reconciler built for that term and stopped
// when the lease is lost.
type runningReconciler struct {
	mu  sync.Mutex
	cur *reconciler.Reconciler // nil while standing by

	cancel context.CancelFunc
	done   chan struct{}
}

// Trigger asks the reconciler for a reconcile now (a webhook said main
// moved). On a standby it does nothing: the leader's own poll picks the
// change up.
func (r *runningReconciler) Trigger() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil {
		r.cur.Trigger()
	}
}

// Leading reports whether this process reconciles now.
func (r *runningReconciler) Leading() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur != nil
}

// Stop ends reconciling (and campaigning) and waits for it; a lease held is
// released, so a standby takes over at once.
func (r *runningReconciler) Stop() {
	r.cancel()
	<-r.done
}

// startReconciler starts reconciling in the background, behind the leader
// lease when the store is PostgreSQL.
func (a *app) startReconciler(ctx context.Context, runner reconciler.Runner) (*runningReconciler, error) {
	ctx, cancel := context.WithCancel(ctx)
	rr := &runningReconciler{cancel: cancel, done: make(chan struct{})}
	if a.cfg.Database.URL == "" {
		rec, err := a.newReconciler(runner)
		if err != nil {
			cancel()
			return nil, err
		}
		a.log.Info("reconciler: single process (SQLite store), no leader election")
		if err := rec.Start(ctx); err != nil {
			cancel()
			return nil, err
		}
		rr.cur = rec
		go func() {
			defer close(rr.done)
			<-ctx.Done()
			rec.Stop()
		}()
		return rr, nil
	}

	name := gitsource.RedactURL(a.cfg.repoURL())
	cfg := lease.Config{URL: a.cfg.Database.URL, Name: name, TTL: a.cfg.Reconcile.LeaseTTL, Logger: a.log}
	if err := cfg.Validate(); err != nil {
		cancel()
		return nil, err
	}
	a.log.Info("reconciler: campaigning for the leader lease (PostgreSQL store)", "repo", name)
	go func() {
		defer close(rr.done)
		err := lease.Run(ctx, cfg, func(ctx context.Context) error {
			rec, err := a.newReconciler(runner)
			if err != nil {
				return err
			}
			if err := rec.Start(ctx); err != nil {
				return err
			}
			a.log.Info("reconciler: leading", "repo", name)
			rr.mu.Lock()
			rr.cur = rec
			rr.mu.Unlock()
			<-ctx.Done()
			rr.mu.Lock()
			rr.cur = nil
			rr.mu.Unlock()
			rec.Stop() // returns once in-flight host commands are cancelled
			a.log.Info("reconciler: stepped down", "repo", name)
			return nil
		})
		if err != nil {
			a.log.Error("reconciler: leader election ended", "err", err)
		}
	}()
	return rr, nil
}
