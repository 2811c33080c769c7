package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/internal/migrate"
	"vulnzero.dev/vulnzero/store/storetest"
)

func TestStoreFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "vulnzero.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestStoreMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), ":memory:", nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenPragmasAndReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "vulnzero.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000"} {
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	if err := s.Quarantine(ctx, vulnzero.Quarantine{PatchID: "p", Revision: "r", Reason: "kept"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening applies nothing again and keeps the data.
	s, err = Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if ms, err := migrate.Load(migrationFS, "migrations"); err != nil || n != len(ms) {
		t.Errorf("schema_migrations has %d rows after reopening, want one per migration (%d, %v)", n, len(ms), err)
	}
	if q, err := s.ListQuarantined(ctx); err != nil || len(q) != 1 || q[0].Reason != "kept" {
		t.Errorf("after reopen ListQuarantined = %+v, %v", q, err)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "vulnzero.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (999, '0999_future.sql', 'x')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path, nil)
	if err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a database from a newer build: %v, want an error saying it is newer", err)
	}
}

func TestOpenBadPath(t *testing.T) {
	for _, path := range []string{"", "a?b"} {
		if _, err := Open(context.Background(), path, nil); !errors.Is(err, vulnzero.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", path, err)
		}
	}
	if _, err := Open(context.Background(), filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"), nil); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}
