package source

import (
	"context"
	"iter"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// realdataDir finds shared/realdata by walking up from the package
// directory (the tests' working directory): the checkout sits beside
// shared/ here and in CI.
func realdataDir(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "shared", "realdata")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		if filepath.Dir(d) == d {
			t.Fatalf("shared/realdata not found above %s: the recorded scanner payloads are required", wd)
		}
	}
}

// realdata reads one recorded payload, e.g. "scanners/wazuh/x.json".
func realdata(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(realdataDir(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sleeper records the waits asked of it and returns at once, moving its
// clock on by the wait, so backoff, rate limits and polling are checked
// without sleeping.
type sleeper struct {
	mu    sync.Mutex
	waits []time.Duration
	clock time.Time
}

func (s *sleeper) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.clock = s.start().Add(d)
	s.mu.Unlock()
	return ctx.Err()
}

// now is the sleeper's clock: it starts at a fixed time and moves only when
// something sleeps.
func (s *sleeper) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start()
}

func (s *sleeper) start() time.Time {
	if s.clock.IsZero() {
		s.clock = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	}
	return s.clock
}

func (s *sleeper) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// fakeImporter keeps what it is given; for tests that look at pulls, not
// at the store.
type fakeImporter struct {
	mu       sync.Mutex
	imports  []vulnzero.Import
	findings []vulnzero.Finding
}

func (f *fakeImporter) ImportFindings(_ context.Context, imp vulnzero.Import, seq iter.Seq2[vulnzero.Finding, error]) (vulnzero.ImportResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := vulnzero.ImportResult{}
	for fd, err := range seq {
		if err != nil {
			return vulnzero.ImportResult{}, err
		}
		f.findings = append(f.findings, fd)
		if !store.IsCoverageMarker(fd) {
			res.Read++
		}
	}
	f.imports = append(f.imports, imp)
	return res, nil
}

// newSQLite opens a real SQLite store in the test's temporary directory.
func newSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vz.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testDeps are deps for a source under test: no real waiting, fixed jitter.
func testDeps(st Importer, sl *sleeper) Deps {
	return Deps{
		Store: st,
		Getenv: func(k string) string {
			return map[string]string{"VZ_TEST_USER": "vz-user", "VZ_TEST_PASS": "s3cr3t-pass"}[k]
		},
		Sleep:   sl.sleep,
		Rand:    func(n int64) int64 { return n / 2 },
		TempDir: "",
	}
}

// mustNew builds a source or fails the test.
func mustNew(t *testing.T, cfg Config, deps Deps) *Source {
	t.Helper()
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
