package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/remedy/guardrails"
	"vulnzero.dev/vulnzero/scan"
	scansource "vulnzero.dev/vulnzero/scan/source"
	"vulnzero.dev/vulnzero/server"
	"vulnzero.dev/vulnzero/store"
)

// withApp loads the config, opens the app, runs fn and closes the app.
func (g *globals) withApp(cmd *cobra.Command, fn func(ctx context.Context, a *app) error) error {
	cfg, err := g.config()
	if err != nil {
		return err
	}
	log := newLogger(g.errw, cfg.Log)
	a, err := openApp(cmd.Context(), cfg, log)
	if err != nil {
		return err
	}
	defer a.close()
	return fn(cmd.Context(), a)
}

func newIngestCmd(g *globals) *cobra.Command {
	var format, source, host, qualysKB string
	var partial bool
	cmd := &cobra.Command{
		Use:   "ingest FILE...",
		Short: "Import scanner reports (format detected by content)",
		Long: `Import scanner reports into the store. Each file is one transaction: a file with bad input
fails with its position and stores nothing. By default an import is a complete scan of the
hosts it covers, so their findings it no longer reports are marked fixed; --partial keeps them.
A large file shows its progress on stderr when that is a terminal.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := scan.Options{Host: host}
			if qualysKB != "" {
				kb, err := scan.LoadQualysKBFile(qualysKB)
				if err != nil {
					return fmt.Errorf("ingest: qualys knowledge base: %w", err)
				}
				opts.QualysKB = kb
			}
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				hosts := a.hostMatcher(ctx, g.errw)
				for _, path := range args {
					var unmatched []string
					res, f, err := ingestFile(ctx, a.store, hosts, func(h string) { unmatched = append(unmatched, h) },
						path, scan.Format(format), source, opts, !partial, g.errw)
					if err != nil {
						return err
					}
					fmt.Fprintf(g.out, "%s (%s): %d findings read, %d new, %d updated, %d fixed, %d hosts\n",
						path, f, res.Read, res.New, res.Updated, res.Fixed, len(res.Hosts))
					if len(unmatched) > 0 {
						fmt.Fprintf(g.out, "%d hosts not in the inventory: %s\n", len(unmatched), strings.Join(unmatched, ", "))
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "input format (default: detect); one of "+formatList())
	cmd.Flags().StringVar(&source, "source", "", "source name recorded with the findings (default: the file name)")
	cmd.Flags().StringVar(&host, "host", "", "attribute every finding to this host (for reports that do not name the machine)")
	cmd.Flags().StringVar(&qualysKB, "qualys-kb", "", "Qualys KnowledgeBase XML to join detections with (CVEs, titles, CVSS)")
	cmd.Flags().BoolVar(&partial, "partial", false, "the report is not a complete scan: do not mark missing findings fixed")
	return cmd
}

func formatList() string {
	var fs []string
	for _, f := range scan.Formats() {
		fs = append(fs, string(f))
	}
	return strings.Join(fs, ", ")
}

// ingestFile imports one report in one transaction, drawing its progress
// on progress when that is a terminal and the report is large. Hosts are
// renamed to their inventory names by hosts (nil keeps the scanner's
// names); each host it does not match is kept and passed to unmatched once.
func ingestFile(ctx context.Context, st store.Store, hosts *scan.HostMatcher, unmatched func(string), path string, format scan.Format, source string, opts scan.Options, complete bool, progress io.Writer) (vulnzero.ImportResult, scan.Format, error) {
	if source == "" {
		source = filepath.Base(path)
	}
	now := time.Now().UTC()
	var covered []string
	opts.Source, opts.Now, opts.OnHost = source, now, func(h string) { covered = append(covered, h) }
	f, findings, report, err := openReport(path, format, opts)
	if err != nil {
		return vulnzero.ImportResult{}, "", fmt.Errorf("ingest %s: %w", path, err)
	}
	defer func() { _ = report.Close() }()
	stop := report.showProgress(progress)
	res, err := st.ImportFindings(ctx, vulnzero.Import{Source: source, Scanner: string(f), File: path, Complete: complete, At: now}, scan.MatchHosts(withCoverage(findings, &covered), hosts, unmatched))
	stop()
	if err != nil {
		return vulnzero.ImportResult{}, f, fmt.Errorf("ingest %s: %w", path, err)
	}
	return res, f, nil
}

// withCoverage interleaves store coverage markers for the hosts the parser
// reports through Options.OnHost (into *covered) with its findings, so a
// complete scan of a host that is now clean closes that host's findings.
// Scheduled sources import the same way.
var withCoverage = scansource.WithCoverage

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Lint a remediation repository (schema, scripts, guardrails, policies)",
		Long: `Lint a remediation repository working copy: every patch.yaml against the schema, the three
scripts present and executable, every script through the guardrails, the inventory and the
policies. Problems are printed as file:line: message; the exit status is 1 when there are any.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			problems, err := validateRepo(dir)
			if err != nil {
				return err
			}
			for _, p := range problems {
				fmt.Fprintln(g.out, p)
			}
			if len(problems) > 0 {
				fmt.Fprintf(g.errw, "%d problem(s) in %s\n", len(problems), dir)
				return exitError(1)
			}
			fmt.Fprintf(g.out, "%s: ok\n", dir)
			return nil
		},
	}
}

// validateRepo returns every problem in the repository at dir, one line
// each, sorted. The guardrails run on every patch directory's scripts even
// when its patch.yaml does not parse, so one run shows everything.
func validateRepo(dir string) ([]string, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("validate: %s is not a directory", dir)
	}
	var problems []string
	st, err := gitsource.DirState(dir)
	if err != nil {
		problems = append(problems, splitJoined(err)...)
	}
	rules := guardrailRules(st) // the defaults when the state did not load
	entries, err := os.ReadDir(filepath.Join(dir, gitsource.PatchesDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("validate: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		pdir := filepath.Join(dir, gitsource.PatchesDir, e.Name())
		scripts := map[string][]byte{}
		for _, name := range []string{vulnzero.ApplyFile, vulnzero.VerifyFile, vulnzero.RollbackFile} {
			if b, err := os.ReadFile(filepath.Join(pdir, name)); err == nil {
				scripts[name] = b
			}
		}
		for _, v := range guardrails.Check(rules, scripts) {
			problems = append(problems, gitsource.PatchDir(e.Name())+"/"+v.String())
		}
	}
	sort.Strings(problems)
	return dedupe(problems), nil
}

// splitJoined flattens an errors.Join tree into one line per error. A
// wrapper around a joined error (such as "read state of DIR: …") is dropped,
// since each joined error already names its file.
func splitJoined(err error) []string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			var out []string
			for _, inner := range j.Unwrap() {
				out = append(out, splitJoined(inner)...)
			}
			return out
		}
	}
	return strings.Split(err.Error(), "\n")
}

func dedupe(ss []string) []string {
	out := ss[:0]
	for i, s := range ss {
		if i == 0 || s != ss[i-1] {
			out = append(out, s)
		}
	}
	return out
}

func newPRCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "pr", Short: "Pull requests of the local forge"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List pull requests with their twin status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				prs, err := a.forge.ListPRs(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "#\tSTATE\tCHECKS\tBRANCH\tTITLE")
				for _, pr := range prs {
					sts, err := a.forge.Statuses(ctx, pr.HeadSHA)
					if err != nil {
						return err
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", pr.Number, pr.State, checksSummary(sts), pr.Branch, pr.Title)
				}
				return tw.Flush()
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "merge NUMBER",
		Short: "Merge a pull request onto main (the patch directory as one commit)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return fmt.Errorf("pr merge: %q is not a PR number", args[0])
			}
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				pr, err := a.forge.Merge(ctx, n)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.out, "merged #%d %s as %s\n", pr.Number, pr.Title, short(pr.MergeSHA))
				return nil
			})
		},
	})
	return cmd
}

// checksSummary condenses statuses into "5/7 ok, 1 failed, 1 pending".
func checksSummary(sts []vulnzero.CommitStatus) string {
	if len(sts) == 0 {
		return "-"
	}
	n := map[vulnzero.StatusState]int{}
	for _, s := range sts {
		n[s.State]++
	}
	out := fmt.Sprintf("%d/%d ok", n[vulnzero.StatusSuccess], len(sts))
	if f := n[vulnzero.StatusFailure] + n[vulnzero.StatusError]; f > 0 {
		out += fmt.Sprintf(", %d failed", f)
	}
	if p := n[vulnzero.StatusPending]; p > 0 {
		out += fmt.Sprintf(", %d pending", p)
	}
	return out
}

func newRolloutCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "rollout", Short: "Rollouts of merged patches"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List rollouts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				rs, err := a.store.ListRollouts(ctx, store.RolloutFilter{})
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tPATCH\tREVISION\tKIND\tSTATE\tSTAGE\tREASON")
				for _, r := range rs {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.PatchID, r.Revision.Short(), r.Kind, r.State, stageOf(r), r.Reason)
				}
				return tw.Flush()
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "show ID",
		Short: "Show a rollout: stages, hosts done/failed/pending, host steps",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("rollout show: %q is not a rollout id", args[0])
			}
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				r, err := a.store.GetRollout(ctx, id)
				if err != nil {
					return err
				}
				steps, err := a.store.ListHostSteps(ctx, id)
				if err != nil {
					return err
				}
				status, err := rolloutStatus(ctx, a.store, r, steps)
				if err != nil {
					return err
				}
				printRollout(g, r, steps, status)
				return nil
			})
		},
	})
	cmd.AddCommand(newRolloutOpCmds(g)...)
	return cmd
}

func stageOf(r vulnzero.Rollout) string {
	if len(r.Stages) == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", min(r.Stage+1, len(r.Stages)), len(r.Stages))
}

func printRollout(g *globals, r vulnzero.Rollout, steps []vulnzero.HostStep, status string) {
	fmt.Fprintf(g.out, "Rollout %d: %s revision %s (%s, %s)\n", r.ID, r.PatchID, r.Revision.Short(), r.Kind, r.Strategy)
	fmt.Fprintf(g.out, "State:    %s (stage %s)\n", r.State, stageOf(r))
	fmt.Fprintf(g.out, "Commit:   %s\n", short(r.Commit))
	if r.Reason != "" {
		fmt.Fprintf(g.out, "Reason:   %s\n", r.Reason)
	}
	if r.RevertSHA != "" {
		fmt.Fprintf(g.out, "Revert:   %s\n", short(r.RevertSHA))
	}
	fmt.Fprint(g.out, status)
	last := map[string]vulnzero.HostStep{}
	for _, s := range steps {
		if p, ok := last[s.Host]; !ok || !s.StartedAt.Before(p.StartedAt) {
			last[s.Host] = s
		}
	}
	for i, st := range r.Stages {
		var done, failed, pending int
		for _, h := range st.Hosts {
			s, ok := last[h]
			switch {
			case !ok || s.State == vulnzero.StepStarted:
				pending++
			case s.State == vulnzero.StepFailed:
				failed++
			default:
				done++
			}
		}
		fmt.Fprintf(g.out, "Stage %d %-8s %d hosts: %d done, %d failed, %d pending (maxFailures %d, soak %s)\n",
			i+1, st.Name, len(st.Hosts), done, failed, pending, st.MaxFailures, st.Soak)
	}
	tw := tabwriter.NewWriter(g.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tPHASE\tSTATE\tEXIT\tDURATION\tERROR")
	for _, s := range steps {
		d := "-"
		if !s.FinishedAt.IsZero() {
			d = s.FinishedAt.Sub(s.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Host, s.Phase, s.State, s.ExitCode, d, s.Error)
	}
	_ = tw.Flush()
}

func short(sha string) string {
	if len(sha) > 10 {
		return sha[:10]
	}
	return sha
}

func newServeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP server and the reconciler",
		Long: `Serve /healthz, /metrics, the JSON API and the status page, and reconcile the fleet with the
remediation repository on the configured interval. With no configuration it runs on the
embedded defaults: SQLite and a local bare repository under ~/.vulnzero.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withApp(cmd, func(ctx context.Context, a *app) error {
				// Without an SSH key or known_hosts file nothing can reach a
				// host: serve the API and say why the reconciler is off,
				// rather than failing every rollout (and reverting it).
				fl, err := newFleet(a.cfg.SSH, a.log)
				var rr *runningReconciler // nil when the reconciler is off
				switch {
				case errors.Is(err, fs.ErrNotExist):
					a.log.Warn("reconciler not started: set ssh.keyFile and ssh.knownHostsFile (or VZ_SSH_KEY_FILE, VZ_SSH_KNOWN_HOSTS)", "err", err)
				case err != nil:
					return err
				default:
					defer func() { _ = fl.Close() }()
					if rr, err = a.startReconciler(ctx, fl); err != nil {
						return err
					}
					defer rr.Stop()
				}
				// Patch PRs are rehearsed in twins of their target hosts.
				var twins *runningTwins
				if fl != nil && err == nil {
					if twins, err = a.startTwins(ctx, fl, "http://"+a.cfg.Server.Listen); err != nil {
						return err
					}
					if twins != nil {
						defer twins.stop()
					}
				}
				// Open findings become patch PRs on the reconcile interval.
				defer a.startProposer(ctx)()
				// Scan sources run on their schedules beside the server.
				stopScans, err := a.startScanScheduler(ctx)
				if err != nil {
					return err
				}
				defer stopScans()
				srv, err := server.New(server.Config{Store: a.store, Gatherer: a.reg, Logger: a.log, Version: version})
				if err != nil {
					return err
				}
				// Webhooks trigger a reconcile at once; the poll loop stays
				// the fallback for deliveries that are lost.
				if err := a.mountGitHubWebhook(srv, func() {
					if rr != nil {
						rr.Trigger()
					}
				}, twins.twinRun(a)); err != nil {
					return err
				}
				return srv.ListenAndServe(ctx, a.cfg.Server.Listen, func(addr net.Addr) {
					a.log.Info("serving", "addr", addr.String(), "repo", gitsource.RedactURL(a.cfg.repoURL()))
				})
			})
		},
	}
}

// guardrailRules builds the guardrail rules in force for a repository state:
// the built-in rules plus the repository's GuardrailPolicy.
func guardrailRules(st gitsource.State) guardrails.Rules {
	r := guardrails.Defaults()
	p := st.Policies.Guardrail
	r.DeniedCommands = append(r.DeniedCommands, p.DeniedCommands...)
	if len(p.RequiredScripts) > 0 {
		r.RequiredScripts = p.RequiredScripts
	}
	if p.MaxScriptBytes > 0 {
		r.MaxScriptBytes = p.MaxScriptBytes
	}
	return r
}
