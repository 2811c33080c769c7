package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy"
	"vulnzero.dev/vulnzero/scan/source"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/postgres/lease"
)

func newScanCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "scan",
		Short: "Configured scan sources: list them, run one now, check the feeds",
		Long: `Scan sources are configured under "sources:" (Wazuh API or indexer, Qualys, Tenable, or a
directory reports are dropped into) with a cron schedule; "vulnzero serve" runs them. Each run
is a complete scan of the hosts it covers and is recorded in the run history.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List sources with their schedule, last run and next run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				return printSources(ctx, g, a, time.Now())
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "run SOURCE",
		Short: "Pull a source now and import what it reports",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				sched, err := a.newScanScheduler()
				if err != nil {
					return err
				}
				run, err := sched.RunNow(ctx, args[0])
				if errors.Is(err, vulnzero.ErrNotFound) {
					return fmt.Errorf("scan run: no source named %q (configured: %s)", args[0], sourceNames(a.cfg.Sources))
				}
				if run.ID != 0 {
					fmt.Fprintf(g.out, "run %d of %s: %s\n", run.ID, run.Source, runSummary(run))
				}
				return err
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "feeds",
		Short: "Load the EPSS and KEV feeds and show what they flag among open findings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				in, err := a.scoreInput(ctx)
				if err != nil {
					return err
				}
				open, err := a.store.ListFindings(ctx, store.FindingFilter{Status: vulnzero.FindingOpen})
				if err != nil {
					return err
				}
				kev, epss := map[string]bool{}, map[string]float64{}
				for _, f := range open {
					if in.KEV[f.CVE] {
						kev[f.CVE] = true
					}
					if p, ok := in.EPSS[f.CVE]; ok {
						epss[f.CVE] = p
					}
				}
				fmt.Fprintf(g.out, "EPSS: %d CVEs loaded, %d of the open findings' CVEs scored\n", len(in.EPSS), len(epss))
				fmt.Fprintf(g.out, "KEV:  %d CVEs loaded, %d of the open findings' CVEs listed\n", len(in.KEV), len(kev))
				cves := make([]string, 0, len(epss))
				for c := range epss {
					cves = append(cves, c)
				}
				sort.Slice(cves, func(i, j int) bool {
					return epss[cves[i]] > epss[cves[j]] || epss[cves[i]] == epss[cves[j]] && cves[i] < cves[j]
				})
				for _, c := range cves[:min(10, len(cves))] {
					mark := ""
					if kev[c] {
						mark = "  (KEV)"
					}
					fmt.Fprintf(g.out, "  %-18s EPSS %.3f%s\n", c, epss[c], mark)
				}
				return nil
			})
		},
	})
	return cmd
}

// printSources prints each configured source with its last recorded run
// and when its schedule fires next (before jitter).
func printSources(ctx context.Context, g *globals, a *app, now time.Time) error {
	tw := tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSCHEDULE\tLAST RUN\tRESULT\tNEXT RUN")
	for _, c := range a.cfg.Sources {
		c = c.WithDefaults()
		runs, err := a.store.ListScanRuns(ctx, store.ScanRunFilter{Source: c.Name, Limit: 1})
		if err != nil {
			return err
		}
		last, result := "never", "-"
		if len(runs) > 0 {
			last = fmt.Sprintf("%s (%s)", runs[0].StartedAt.UTC().Format("2006-01-02 15:04 UTC"), runs[0].Trigger)
			result = runSummary(runs[0])
			if r := []rune(result); len(r) > 100 {
				result = string(r[:99]) + "…"
			}
		}
		schedule, next := "on demand", "-"
		if c.Schedule != "" {
			schedule = c.Schedule
			n, err := source.NextRun(c.Schedule, now)
			if err != nil {
				return err
			}
			next = n.UTC().Format("2006-01-02 15:04 UTC")
			if c.Jitter > 0 {
				next += fmt.Sprintf(" (+ up to %s)", c.Jitter)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Type, schedule, last, result, next)
	}
	return tw.Flush()
}

// runSummary is one line saying how a run ended.
func runSummary(r store.ScanRun) string {
	switch r.State {
	case store.ScanSucceeded:
		s := fmt.Sprintf("succeeded: %d read, %d new, %d updated, %d fixed, %d hosts", r.Read, r.New, r.Updated, r.Fixed, r.Hosts)
		if r.Unmatched > 0 {
			s += fmt.Sprintf(" (%d not in the inventory: %s)", r.Unmatched, unmatchedList(r))
		}
		return s
	case store.ScanFailed:
		s := "failed: " + r.Error
		if r.Imports > 0 {
			s += fmt.Sprintf(" (%d imports committed: %d read, %d new, %d fixed)", r.Imports, r.Read, r.New, r.Fixed)
		}
		return s
	case store.ScanSkipped:
		return r.Error
	case store.ScanRunning:
		return "running since " + r.StartedAt.UTC().Format(time.RFC3339)
	}
	return string(r.State)
}

func sourceNames(cs []source.Config) string {
	if len(cs) == 0 {
		return "none"
	}
	var s string
	for i, c := range cs {
		if i > 0 {
			s += ", "
		}
		s += c.Name
	}
	return s
}

// newSources builds the configured sources over the app's store. Pages are
// spooled under the data directory, not /tmp, since a pull can be large.
func (a *app) newSources() ([]*source.Source, error) {
	spool := filepath.Join(a.cfg.DataDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	var out []*source.Source
	for _, c := range a.cfg.Sources {
		s, err := source.New(c, source.Deps{Store: a.store, Getenv: os.Getenv, TempDir: spool, Logger: a.log, Inventory: a.inventory})
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// newScanScheduler builds the scheduler of the configured sources.
func (a *app) newScanScheduler() (*source.Scheduler, error) {
	srcs, err := a.newSources()
	if err != nil {
		return nil, err
	}
	jobs := make([]source.Job, len(srcs))
	for i, s := range srcs {
		jobs[i] = s
	}
	return source.NewScheduler(source.SchedulerConfig{Jobs: jobs, Runs: a.store, Logger: a.log})
}

// startScanScheduler starts the sources' schedules for serve; the returned
// function stops them and waits for runs in flight to record their end.
// With SQLite this process is the only one, so it schedules from the start.
// With PostgreSQL every replica of serve campaigns for a lease of its own
// (store/postgres/lease) and only the holder schedules, so a source is not
// pulled once per replica.
func (a *app) startScanScheduler(ctx context.Context) (func(), error) {
	if len(a.cfg.Sources) == 0 {
		return func() {}, nil
	}
	lead := func(ctx context.Context) (*source.Scheduler, error) {
		sched, err := a.newScanScheduler()
		if err != nil {
			return nil, err
		}
		if err := sched.Start(ctx); err != nil {
			return nil, err
		}
		a.log.Info("scan scheduler started", "sources", len(a.cfg.Sources))
		return sched, nil
	}
	if a.cfg.Database.URL == "" {
		sched, err := lead(ctx)
		if err != nil {
			return nil, err
		}
		return sched.Stop, nil
	}
	cfg := lease.Config{URL: a.cfg.Database.URL, Name: scanLeaseName, TTL: a.cfg.Reconcile.LeaseTTL, Logger: a.log}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Build the sources once now, so a bad source fails serve at start
	// rather than on whichever replica wins the lease.
	if _, err := a.newSources(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := lease.Run(ctx, cfg, func(ctx context.Context) error {
			sched, err := lead(ctx)
			if err != nil {
				return err
			}
			<-ctx.Done()
			sched.Stop()
			a.log.Info("scan scheduler: stepped down")
			return nil
		})
		if err != nil {
			a.log.Error("scan scheduler: leader election ended", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// scanLeaseName is what the scan scheduler's lease leads: one scheduler
// among the replicas sharing a database.
const scanLeaseName = "vulnzero scan scheduler"

// scoreInput loads the configured EPSS and KEV feeds into the scoring
// input, with the clock set; callers add host criticality from the
// inventory (remedy.CriticalityFromInventory).
func (a *app) scoreInput(ctx context.Context) (remedy.ScoreInput, error) {
	f, err := source.LoadFeeds(ctx, a.cfg.Feeds, source.FeedDeps{Logger: a.log})
	if err != nil {
		return remedy.ScoreInput{}, err
	}
	return remedy.ScoreInput{EPSS: f.EPSS, KEV: f.KEV, Now: time.Now()}, nil
}

// unmatchedList names a run's hosts the inventory does not know, saying
// how many more there were than it kept.
func unmatchedList(r store.ScanRun) string {
	s := strings.Join(r.UnmatchedHosts, ", ")
	if more := r.Unmatched - len(r.UnmatchedHosts); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}
