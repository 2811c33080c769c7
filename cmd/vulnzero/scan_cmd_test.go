package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero/scan/source"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/postgres/pgtest"
)

// TestScanCommands configures a file-drop source and an indexer that is
// down, runs both on demand, and lists them with their last and next runs.
func TestScanCommands(t *testing.T) {
	dir := t.TempDir()
	drop := filepath.Join(dir, "drop")
	if err := os.MkdirAll(drop, 0o700); err != nil {
		t.Fatal(err)
	}
	report, err := os.ReadFile(filepath.Join(realdataRoot(t), "scanners", "trivy", "debian-buster.json"))
	if err != nil {
		t.Fatal(err)
	}
	dropped := filepath.Join(drop, "buster.json")
	if err := os.WriteFile(dropped, report, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dropped, old, old); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VZ_TEST_INDEXER_PASSWORD", "s3cr3t-pass")
	cfg := filepath.Join(dir, "vulnzero.yaml")
	writeFile(t, cfg, `dataDir: `+filepath.Join(dir, "data")+`
sources:
  - name: drops
    type: file
    path: `+drop+`
    schedule: "0 3 * * *"
    jitter: 1m
  - name: indexer
    type: wazuh-indexer
    url: http://127.0.0.1:1
    username: vulnzero
    password: {env: VZ_TEST_INDEXER_PASSWORD}
    retries: 1
    minBackoff: 1ms
    maxBackoff: 2ms
feeds:
  kev: `+filepath.Join(dir, "kev.json")+`
`)
	writeFile(t, filepath.Join(dir, "kev.json"), `{"vulnerabilities":[{"cveID":"CVE-2019-1543"},{"cveID":"CVE-2021-44228"}]}`)

	out, _, err := run(t, "-c", cfg, "scan", "run", "drops")
	if err != nil {
		t.Fatalf("scan run drops: %v\n%s", err, out)
	}
	if !strings.Contains(out, "run 1 of drops: succeeded:") || !strings.Contains(out, "1 hosts") {
		t.Errorf("scan run drops printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(drop, "done", "buster.json")); err != nil {
		t.Errorf("dropped report not moved to done/: %v", err)
	}

	out, _, err = run(t, "-c", cfg, "scan", "run", "indexer")
	if err == nil || !strings.Contains(out, "run 2 of indexer: failed:") || strings.Contains(out+err.Error(), "s3cr3t-pass") {
		t.Errorf("scan run indexer (down): %v\n%s", err, out)
	}
	if _, _, err := run(t, "-c", cfg, "scan", "run", "nope"); err == nil || !strings.Contains(err.Error(), `no source named "nope" (configured: drops, indexer)`) {
		t.Errorf("scan run nope: %v", err)
	}

	out, _, err = run(t, "-c", cfg, "scan", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("scan list:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "drops" || f[1] != "file" || !strings.Contains(lines[1], "(manual)") ||
		!strings.Contains(lines[1], "succeeded") || !strings.Contains(lines[1], "03:00 UTC (+ up to 1m0s)") {
		t.Errorf("drops line: %q", lines[1])
	}
	if !strings.Contains(lines[2], "indexer") || !strings.Contains(lines[2], "on demand") || !strings.Contains(lines[2], "failed") {
		t.Errorf("indexer line: %q", lines[2])
	}

	out, _, err = run(t, "-c", cfg, "scan", "feeds")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "KEV:  2 CVEs loaded") {
		t.Errorf("scan feeds printed %q", out)
	}
}

// TestScanConfigErrors: a bad source is refused when the config loads.
func TestScanConfigErrors(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "vulnzero.yaml")
	writeFile(t, cfg, `sources:
  - name: q
    type: qualys
    url: https://user:pw@qualysapi.qualys.com
    schedule: "every day"
`)
	_, err := loadConfig(cfg, func(string) string { return "" })
	if err == nil {
		t.Fatal("bad sources accepted")
	}
	for _, want := range []string{"sources[0]: source q", "carries credentials", "username: required", `schedule: "every day"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("config error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), ":pw@") {
		t.Errorf("config error shows the password: %v", err)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// realdataRoot finds shared/realdata above the package directory.
func realdataRoot(t *testing.T) string {
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
			t.Fatalf("shared/realdata not found above %s", wd)
		}
	}
}

// syncBuffer is a log sink several goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// scanTestApp opens an app whose one source is a drop directory scanned
// every second.
func scanTestApp(t *testing.T, dbURL, drop string, logs *syncBuffer) *app {
	t.Helper()
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Database.URL = dbURL
	cfg.Reconcile.LeaseTTL = 2 * time.Second
	cfg.Sources = []source.Config{{Name: "drops", Type: source.TypeFile, Path: drop, Schedule: "@every 1s", Jitter: time.Millisecond}}
	a, err := openApp(t.Context(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	return a
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve's scheduler (SQLite: no lease) runs a source on its schedule and
// records the run.
func TestServeSchedulesSources(t *testing.T) {
	drop := t.TempDir()
	report, err := os.ReadFile(filepath.Join(realdataRoot(t), "scanners", "trivy", "alpine-310.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(drop, "alpine.json"), string(report))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(drop, "alpine.json"), old, old); err != nil {
		t.Fatal(err)
	}
	a := scanTestApp(t, "", drop, &syncBuffer{})
	stop, err := a.startScanScheduler(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a scheduled run", 10*time.Second, func() bool {
		runs, err := a.store.ListScanRuns(t.Context(), store.ScanRunFilter{Source: "drops"})
		return err == nil && len(runs) > 0 && runs[len(runs)-1].State == store.ScanSucceeded
	})
	stop()
	runs, err := a.store.ListScanRuns(t.Context(), store.ScanRunFilter{Source: "drops"})
	if err != nil {
		t.Fatal(err)
	}
	first := runs[len(runs)-1]
	if first.Trigger != "schedule" || first.Read == 0 || first.Imports != 1 {
		t.Errorf("first scheduled run = %+v", first)
	}
	// The report's host is not in the inventory: the run records it.
	if first.Unmatched != 1 || !slices.Equal(first.UnmatchedHosts, []string{"testdata/fixtures/images/alpine-310.tar.gz"}) {
		t.Errorf("first scheduled run's hosts not in the inventory: %d %q, want the report's artifact", first.Unmatched, first.UnmatchedHosts)
	}
	if s := runSummary(first); !strings.Contains(s, "(1 not in the inventory: testdata/fixtures/images/alpine-310.tar.gz)") {
		t.Errorf("scan list says %q", s)
	}
	if _, err := os.Stat(filepath.Join(drop, "done", "alpine.json")); err != nil {
		t.Errorf("the dropped report was not imported: %v", err)
	}
}

// Two serve replicas on one PostgreSQL: only the holder of the scan lease
// schedules; the other takes over when it stops.
func TestScanSchedulerLease(t *testing.T) {
	db := pgtest.NewDatabase(t)
	drop := t.TempDir()
	var logsA, logsB syncBuffer
	a := scanTestApp(t, db, drop, &logsA)
	b := scanTestApp(t, db, drop, &logsB)
	const started = "scan scheduler started"

	stopA, err := a.startScanScheduler(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica A leading", 10*time.Second, func() bool { return strings.Contains(logsA.String(), started) })
	stopB, err := b.startScanScheduler(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	time.Sleep(1500 * time.Millisecond) // several of B's attempts and A's runs
	if strings.Contains(logsB.String(), started) {
		t.Fatal("both replicas schedule")
	}
	stopA()
	waitFor(t, "replica B taking over", 5*time.Second, func() bool { return strings.Contains(logsB.String(), started) })

	runs, err := a.store.ListScanRuns(t.Context(), store.ScanRunFilter{Source: "drops"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if r.State == store.ScanSkipped {
			t.Errorf("run %+v skipped: two schedulers fired", r)
		}
	}
	if len(runs) == 0 {
		t.Error("no scheduled run recorded")
	}
}
