package postgres

import (
	"context"
	"strings"
	"sync"
	"testing"

	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/internal/migrate"
	"vulnzero.dev/vulnzero/store/postgres/pgtest"
	"vulnzero.dev/vulnzero/store/storetest"
)

// One real PostgreSQL server for the package; a fresh database per test.
func TestMain(m *testing.M) { pgtest.Main(m) }

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), pgtest.NewDatabase(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestConcurrentOpen has several replicas migrate one empty database at
// once: the advisory lock makes exactly one of them apply each migration.
func TestConcurrentOpen(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const n = 4
	var wg sync.WaitGroup
	stores := make([]*Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = Open(t.Context(), url, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var rows int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if ms, err := migrate.Load(migrationFS, "migrations"); err != nil || rows != len(ms) {
		t.Errorf("schema_migrations has %d rows, want one per migration (%d, %v)", rows, len(ms), err)
	}
	var version string
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT version()`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(version, "PostgreSQL") {
		t.Errorf("server version() = %q, want a PostgreSQL server", version)
	}
	t.Logf("server: %s", version)
}

func TestOpenNewerSchema(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	s, err := Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations VALUES (999, '0999_future.sql', now())`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, url, nil); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a database from a newer build: %v, want an error saying it is newer", err)
	}
}

func TestOpenBadURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5e9)
	defer cancel()
	if _, err := Open(ctx, "postgres://nobody:secret@127.0.0.1:1/x?connect_timeout=2", nil); err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	} else if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the password: %v", err)
	}
}
