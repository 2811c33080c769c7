package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestServer starts a real server (or uses VZ_TEST_POSTGRES_URL), checks
// that databases are separate, and that Close stops the server and removes
// its files.
func TestServer(t *testing.T) {
	s, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// The databases belong to a subtest, so they are dropped before Close.
	t.Run("SeparateDatabases", func(t *testing.T) { testDatabases(t, s) })
	t.Run("ExternalURL", func(t *testing.T) { testExternal(t, s) })

	if s.cmd == nil {
		return // an external server: nothing of ours to stop
	}
	dir := s.dir
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-s.done:
	default:
		t.Error("postgres still running after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("server directory %s left behind (%v)", dir, err)
	}
	if err := ping(ctx, s.URL()); err == nil {
		t.Error("server still accepts connections after Close")
	}
}

func testDatabases(t *testing.T, s *Server) {
	ctx := context.Background()
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share the URL %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	if _, err := ca.Exec(ctx, `CREATE TABLE only_in_a (x int)`); err != nil {
		t.Fatal(err)
	}
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var n int
	if err := cb.QueryRow(ctx, `SELECT COUNT(*) FROM pg_tables WHERE tablename = 'only_in_a'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("a table created in one test database is visible in another")
	}
	var fsync string
	if err := ca.QueryRow(ctx, `SHOW fsync`).Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if s.cmd != nil && fsync != "off" {
		t.Errorf("throwaway server runs with fsync=%s, want off", fsync)
	}
}

// testExternal points EnvURL at s: NewServer must use it rather than start
// another, and closing it must leave s running.
func testExternal(t *testing.T, s *Server) {
	t.Setenv(EnvURL, s.URL())
	ext, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	if ext.cmd != nil {
		t.Fatalf("NewServer started a server although %s is set", EnvURL)
	}
	t.Run("Database", func(t *testing.T) {
		if err := ping(context.Background(), ext.NewDatabase(t)); err != nil {
			t.Errorf("database on the external server: %v", err)
		}
	})
	if err := ext.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ping(context.Background(), s.URL()); err != nil {
		t.Errorf("closing an external server stopped it: %v", err)
	}
}
