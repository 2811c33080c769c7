package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/store/postgres/pgtest"
)

// noHosts is a Runner for a repository without hosts: nothing may run.
type noHosts struct{}

func (noHosts) Run(context.Context, vulnzero.Host, fleet.Command) (fleet.Result, error) {
	return fleet.Result{}, errors.New("the test repository has no hosts")
}

func leaderTestApp(t *testing.T, repo, dbURL string) *app {
	t.Helper()
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Repo.URL = repo
	cfg.Database.URL = dbURL
	cfg.Reconcile.LeaseTTL = 2 * time.Second
	a, err := openApp(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	return a
}

func waitLeading(t *testing.T, rr *runningReconciler, want bool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for rr.Leading() != want {
		if time.Now().After(deadline) {
			t.Fatalf("leading = %v after %s, want %v", !want, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two serve replicas on one PostgreSQL and one repository: one reconciles,
// the other stands by and takes over when the first stops. Both build their
// reconciler's metrics on their own registry, B twice (two terms).
func TestServeReplicasElectOneReconciler(t *testing.T) {
	ctx := t.Context()
	repo := filepath.Join(t.TempDir(), "remediation.git")
	if _, err := gitsource.InitBare(ctx, repo, "main", map[string][]byte{"inventory/hosts.yaml": []byte("hosts: []\n")},
		"init", "test", "test@localhost"); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewDatabase(t)

	a, err := leaderTestApp(t, repo, db).startReconciler(ctx, noHosts{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	waitLeading(t, a, true, 10*time.Second)

	appB := leaderTestApp(t, repo, db)
	b, err := appB.startReconciler(ctx, noHosts{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	time.Sleep(time.Second) // several of B's attempts (one every TTL/5)
	if b.Leading() {
		t.Fatal("both replicas lead")
	}
	b.Trigger() // a standby ignores triggers

	a.Stop()
	waitLeading(t, b, true, 2*time.Second) // within the lease time
	if a.Leading() {
		t.Error("a stopped replica still leads")
	}
	// B's second term must not register the collectors again (a registry
	// panics on that): stop leading, lead again.
	b.Stop()
	b2, err := appB.startReconciler(ctx, noHosts{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Stop()
	waitLeading(t, b2, true, 10*time.Second)
}

// With SQLite there is one process: it reconciles at once, no lease.
func TestServeSQLiteNeedsNoLease(t *testing.T) {
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	a, err := openApp(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	rr, err := a.startReconciler(t.Context(), noHosts{})
	if err != nil {
		t.Fatal(err)
	}
	if !rr.Leading() {
		t.Error("the SQLite reconciler does not run at once")
	}
	rr.Stop()
}
