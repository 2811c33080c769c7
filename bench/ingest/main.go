// Command ingest is VulnZero's ingestion benchmark (`make bench-ingest`):
// it generates 1,000,000 findings as a Trivy JSON report and as a .nessus
// file, then measures, each in a child process of its own so that peak
// memory is that run's alone:
//
//   - parse: scan.Open and a range over every finding (findings/s, MB/s);
//   - ingest: the whole `vulnzero ingest` path (parse, coverage markers,
//     store.ImportFindings) into SQLite and into PostgreSQL, twice: a first
//     import where every finding is new, and the same report again, where
//     every finding is an update (a nightly rescan);
//
// and prints a table with wall time, CPU time and peak RSS (the child's
// rusage maxrss). PostgreSQL is a throwaway server started with the test
// harness (store/postgres/pgtest: local binaries, fsync off), one per run
// so every first import starts from an empty database. A format whose
// parser is not registered is reported as skipped.
//
// Generated reports are kept in -dir and reused when they exist.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/scan"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/postgres"
	"vulnzero.dev/vulnzero/store/postgres/pgtest"
	"vulnzero.dev/vulnzero/store/sqlite"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		if err := child(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench child:", err)
			os.Exit(1)
		}
		return
	}
	n := flag.Int("n", 1_000_000, "findings per generated report")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "vulnzero-bench-ingest"), "where generated reports are kept")
	formats := flag.String("formats", "trivy,nessus", "report formats to measure")
	stores := flag.String("stores", "sqlite,postgres", "stores to ingest into (empty: parse only)")
	flag.Parse()
	if err := run(*n, *dir, strings.Split(*formats, ","), strings.FieldsFunc(*stores, func(r rune) bool { return r == ',' })); err != nil {
		fmt.Fprintln(os.Stderr, "bench-ingest:", err)
		os.Exit(1)
	}
}

// result is what a child measured, plus what the parent read of it.
type result struct {
	Findings int     `json:"findings"`
	Seconds  float64 `json:"seconds"`
	// Ingest runs only: the second import of the same report.
	Seconds2 float64 `json:"seconds2,omitempty"`
	New      int     `json:"new,omitempty"`
	Updated  int     `json:"updated,omitempty"`

	cpu    time.Duration // user + system time of the child
	maxRSS int64         // bytes
}

func run(n int, dir string, formats, stores []string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("VulnZero ingest benchmark: %d findings per report, %d CPUs, Go %s, load average %s\n",
		n, runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("reports in %s\n\n", dir)
	writers := map[string]func(io.Writer, int) error{"trivy": writeTrivy, "nessus": writeNessus}

	var rows [][]string
	for _, format := range formats {
		write, ok := writers[format]
		if !ok {
			return fmt.Errorf("no generator for %q (have trivy, nessus)", format)
		}
		if !slices.Contains(scan.Formats(), scan.Format(format)) {
			fmt.Printf("%s: the %s parser is not registered in this build; skipped\n", format, format)
			continue
		}
		path := reportPath(dir, format, n)
		start := time.Now()
		size, err := generate(path, n, write)
		if err != nil {
			return err
		}
		fmt.Printf("%s: %s, %.0f MB (ready in %s)\n", format, path, float64(size)/1e6, time.Since(start).Round(time.Second))
		// Parse measures parsing: the report is read once first, so that
		// it comes from the page cache rather than the disk.
		start = time.Now()
		if err := readThrough(path); err != nil {
			return err
		}
		fmt.Printf("%s: read into the page cache in %s\n", format, time.Since(start).Round(10*time.Millisecond))

		r, err := spawn("parse", "-format", format, "-file", path)
		if err != nil {
			return fmt.Errorf("parse %s: %w", format, err)
		}
		rows = append(rows, []string{format, "parse", secs(r.Seconds), secs(r.cpu.Seconds()),
			rate(r.Findings, r.Seconds) + " findings/s", fmt.Sprintf("%.0f MB/s", float64(size)/1e6/r.Seconds),
			fmt.Sprintf("%.0f MB", float64(r.maxRSS)/1e6), fmt.Sprint(r.Findings)})

		for _, st := range stores {
			r, err := ingest(format, path, st, dir)
			if err != nil {
				return fmt.Errorf("ingest %s into %s: %w", format, st, err)
			}
			rows = append(rows, []string{format, "ingest → " + st + " (all new)", secs(r.Seconds), secs(r.cpu.Seconds()),
				rate(r.Findings, r.Seconds) + " findings/s", "", fmt.Sprintf("%.0f MB", float64(r.maxRSS)/1e6),
				fmt.Sprintf("%d new", r.New)})
			rows = append(rows, []string{format, "ingest → " + st + " (rescan)", secs(r.Seconds2), "",
				rate(r.Findings, r.Seconds2) + " findings/s", "", "", fmt.Sprintf("%d updated", r.Updated)})
		}
	}
	fmt.Println()
	printTable([]string{"report", "run", "wall", "CPU", "throughput", "read", "peak RSS", "findings"}, rows)
	fmt.Println("\nCPU is user+system time of the run's process (the parse decodes entries on both cores);")
	fmt.Println("peak RSS is its maxrss. The PostgreSQL server (fsync off) is a separate process, not counted.")
	return nil
}

// readThrough reads the file at path to its end.
func readThrough(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

func ingest(format, path, st, dir string) (result, error) {
	switch st {
	case "sqlite":
		db := filepath.Join(dir, fmt.Sprintf("bench-%s.db", format))
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(db + suffix)
		}
		defer func() {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				os.Remove(db + suffix)
			}
		}()
		return spawn("ingest", "-format", format, "-file", path, "-store", "sqlite", "-db", db)
	case "postgres":
		srv, err := pgtest.NewServer()
		if err != nil {
			return result{}, fmt.Errorf("start postgres: %w", err)
		}
		defer func() { _ = srv.Close() }()
		return spawn("ingest", "-format", format, "-file", path, "-store", "postgres", "-db", srv.URL())
	}
	return result{}, fmt.Errorf("unknown store %q (have sqlite, postgres)", st)
}

// spawn runs this program as a child doing one measurement and reads its
// result and its resource usage.
func spawn(args ...string) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(self, append([]string{"child"}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, err
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, fmt.Errorf("child said %q: %w", out, err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss * 1024 // kilobytes on Linux
		r.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return r, nil
}

// child runs one measurement and prints its result as JSON.
func child(args []string) error {
	if len(args) == 0 {
		return errors.New("child: no measurement")
	}
	fs := flag.NewFlagSet("child", flag.ContinueOnError)
	format := fs.String("format", "", "")
	file := fs.String("file", "", "")
	st := fs.String("store", "", "")
	db := fs.String("db", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if p := os.Getenv("VZ_BENCH_CPUPROFILE"); p != "" {
		// For looking into a run: VZ_BENCH_CPUPROFILE=/tmp/p go run ./bench/ingest …
		f, err := os.Create(p + "-" + args[0] + "-" + *format + "-" + *st) //nolint:gosec // G703: a profiling path the operator chose
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if p := os.Getenv("VZ_BENCH_MEMPROFILE"); p != "" {
		// Allocations, as alloc_space: VZ_BENCH_MEMPROFILE=/tmp/m go run ./bench/ingest …
		runtime.MemProfileRate = 64 << 10
		defer func() {
			f, err := os.Create(p + "-" + args[0] + "-" + *format + "-" + *st) //nolint:gosec // G703: a profiling path the operator chose
			if err == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	var r result
	var err error
	switch args[0] {
	case "parse":
		r, err = parseOnly(*file, scan.Format(*format))
	case "ingest":
		r, err = ingestTwice(*file, scan.Format(*format), *st, *db)
	default:
		err = fmt.Errorf("unknown measurement %q", args[0])
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

func parseOnly(path string, format scan.Format) (result, error) {
	start := time.Now()
	_, seq, c, err := scan.Open(path, format, scan.Options{})
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	n := 0
	for _, err := range seq {
		if err != nil {
			return result{}, err
		}
		n++
	}
	return result{Findings: n, Seconds: time.Since(start).Seconds()}, nil
}

// ingestTwice imports the report twice the way `vulnzero ingest` does,
// and times each import.
func ingestTwice(path string, format scan.Format, st, db string) (result, error) {
	ctx := context.Background()
	var s store.Store
	var err error
	switch st {
	case "sqlite":
		s, err = sqlite.Open(ctx, db, nil)
	case "postgres":
		s, err = postgres.Open(ctx, db, nil)
	default:
		err = fmt.Errorf("unknown store %q", st)
	}
	if err != nil {
		return result{}, err
	}
	defer func() { _ = s.Close() }()
	var r result
	for i, at := range []time.Time{time.Now(), time.Now().Add(time.Hour)} {
		start := time.Now()
		res, err := importFile(ctx, s, path, format, at)
		if err != nil {
			return result{}, err
		}
		d := time.Since(start).Seconds()
		if i == 0 {
			r.Findings, r.Seconds, r.New = res.Read, d, res.New
		} else {
			r.Seconds2, r.Updated = d, res.Updated
		}
	}
	return r, nil
}

// importFile is cmd/vulnzero's ingest of one file: the parser's coverage
// markers are interleaved with its findings, one complete import.
func importFile(ctx context.Context, s store.Store, path string, format scan.Format, at time.Time) (vulnzero.ImportResult, error) {
	var covered []string
	f, seq, c, err := scan.Open(path, format, scan.Options{Source: "bench", Now: at, OnHost: func(h string) { covered = append(covered, h) }})
	if err != nil {
		return vulnzero.ImportResult{}, err
	}
	defer c.Close()
	withMarkers := iter.Seq2[vulnzero.Finding, error](func(yield func(vulnzero.Finding, error) bool) {
		for fd, err := range seq {
			for _, h := range covered {
				if !yield(store.CoverageMarker(h), nil) {
					return
				}
			}
			covered = covered[:0]
			if !yield(fd, err) {
				return
			}
		}
	})
	return s.ImportFindings(ctx, vulnzero.Import{Source: "bench", Scanner: string(f), File: path, Complete: true, At: at}, withMarkers)
}

func secs(s float64) string {
	if s == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f s", s)
}

func rate(n int, s float64) string {
	if s == 0 {
		return ""
	}
	return fmt.Sprintf("%.0fk", float64(n)/s/1000)
}

func printTable(header []string, rows [][]string) {
	fmt.Println("| " + strings.Join(header, " | ") + " |")
	fmt.Println("|" + strings.Repeat("---|", len(header)))
	for _, r := range rows {
		fmt.Println("| " + strings.Join(r, " | ") + " |")
	}
}
