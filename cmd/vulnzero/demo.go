package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	debversion "github.com/knqyf263/go-deb-version"
	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fixtures"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/sandbox"
	"vulnzero.dev/vulnzero/sandbox/pkgtool"
	"vulnzero.dev/vulnzero/scan"
	"vulnzero.dev/vulnzero/server"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/twin"
	twinlocal "vulnzero.dev/vulnzero/twin/local"
)

// The demo's package repository. vz-demo-libbar 2.2.0 fixes its CVE but its
// post-install step fails on hosts that still carry the legacy API config
// (the web hosts) — something a package-level twin does not see, and the
// reason rollouts start with a canary.
var (
	demoAvailable = map[string][]string{
		"vz-demo-libfoo": {"1.0.0", "1.0.1"},
		"vz-demo-libbar": {"2.1.0", "2.2.0"},
		"base-files":     {"12.4+deb12u5"},
	}
	demoLegacyConf = "etc/demo-web/legacy-api.conf"
	demoBreakHook  = `if [ -f "$VZ_SANDBOX_ROOT/` + demoLegacyConf + `" ]; then
  echo "demo-web: vz-demo-libbar 2.2.0 removed the legacy API that ` + demoLegacyConf + ` enables" >&2
  exit 1
fi
`
)

// demoHost is one sandbox host of the demo fleet.
type demoHost struct {
	name      string
	role      string
	installed map[string]string
}

func demoFleet() []demoHost {
	var hs []demoHost
	for i := 1; i <= 4; i++ {
		hs = append(hs, demoHost{fmt.Sprintf("web-%d", i), "web", map[string]string{
			"base-files": "12.4+deb12u5", "vz-demo-libfoo": "1.0.0", "vz-demo-libbar": "2.1.0"}})
	}
	for i := 1; i <= 2; i++ {
		hs = append(hs, demoHost{fmt.Sprintf("db-%d", i), "db", map[string]string{
			"base-files": "12.4+deb12u5", "vz-demo-libfoo": "1.0.0"}})
	}
	return hs
}

// demoRolloutPolicy is the demo repository's RolloutPolicy: the default
// canary shape with a short soak so the demo finishes in seconds.
const demoRolloutPolicy = `# The demo's rollout policy: one canary host, then half, then everyone.
# Soak times are seconds here; production keeps the default 10 minutes.
apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: demo
spec:
  strategy: canary
  maxParallel: 4
  revert: push
  stages:
    - hosts: "1"
      maxFailures: "0"
      soak: 1s
    - hosts: "50%"
      maxFailures: "0"
      soak: 1s
    - hosts: "100%"
      maxFailures: "0"
`

func newDemoCmd(g *globals) *cobra.Command {
	var dir, listen string
	var serve bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole remediation loop offline on sandbox hosts",
		Long: `Run VulnZero's whole loop on this machine with the embedded defaults: six sandbox hosts
reached over real SSH, a fixture scan, patch PRs on the local forge, twin rehearsals posted as
statuses, merge, a canary-first rollout to every host, then a patch that breaks at the canary:
rolled back there and reverted on main. State is kept in --dir (wiped at start).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := &demo{out: g.out, dir: dir}
			if err := d.run(cmd.Context()); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			defer d.close()
			if serve {
				return d.serve(cmd.Context(), listen)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".demo", "directory for the demo's state (removed and recreated)")
	cmd.Flags().BoolVar(&serve, "serve", false, "keep running afterwards with /healthz, /metrics and the status page")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address for --serve")
	return cmd
}

// demo is one run of the demo; its fields are built up step by step.
type demo struct {
	out    io.Writer
	dir    string
	log    *slog.Logger
	logf   *os.File
	app    *app
	hosts  *sandbox.Fleet
	client *fleet.Client
	rec    *reconciler.Reconciler
	tool   string
	phases []phaseTime
	start  time.Time
}

type phaseTime struct {
	name string
	d    time.Duration
}

func (d *demo) step(name string, fn func() error) error {
	fmt.Fprintf(d.out, "\n▶ %s\n", name)
	t := time.Now()
	err := fn()
	d.phases = append(d.phases, phaseTime{name, time.Since(t)})
	return err
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, "  "+format+"\n", args...) }

func (d *demo) close() {
	if d.client != nil {
		_ = d.client.Close()
	}
	if d.hosts != nil {
		_ = d.hosts.Close()
	}
	if d.app != nil {
		d.app.close()
	}
	if d.logf != nil {
		_ = d.logf.Close()
	}
}

func (d *demo) run(ctx context.Context) (err error) {
	d.start = time.Now()
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	abs, err := filepath.Abs(d.dir)
	if err != nil {
		return err
	}
	d.dir = abs
	if err := os.RemoveAll(d.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	if d.logf, err = os.Create(filepath.Join(d.dir, "vulnzero.log")); err != nil {
		return err
	}
	d.log = slog.New(slog.NewTextHandler(d.logf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if d.tool, err = os.Executable(); err != nil {
		return fmt.Errorf("find own executable for the sandbox package tool: %w", err)
	}
	fmt.Fprintf(d.out, "VulnZero demo — state in %s, log in %s\n", d.dir, d.logf.Name())

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"Start 6 sandbox hosts (SSH servers on 127.0.0.1) and the remediation repository", d.setup},
		{"Scan: import the fixture reports", d.scan},
		{"Propose: group findings, generate patches, open PRs", d.propose},
		{"Twin: rehearse each PR on a replica of a target host", d.twin},
		{"Merge the libfoo PR and reconcile: canary → 50% → 100%", func(ctx context.Context) error { return d.mergeAndReconcile(ctx, "vz-demo-libfoo") }},
		{"Merge the libbar PR and reconcile: the canary fails", func(ctx context.Context) error { return d.mergeAndReconcile(ctx, "vz-demo-libbar") }},
		{"Rescan the fleet over SSH: confirm what is fixed", d.rescan},
	}
	for _, s := range steps {
		if err := d.step(s.name, func() error { return s.fn(ctx) }); err != nil {
			return err
		}
	}
	return d.summary(ctx)
}

// setup starts the sandbox hosts, seeds the remediation repository with
// their inventory and the demo policy, and opens the app on it.
func (d *demo) setup(ctx context.Context) error {
	var specs []sandbox.HostSpec
	for _, h := range demoFleet() {
		spec := sandbox.HostSpec{Name: h.name, Labels: map[string]string{"role": h.role, "env": "demo"}}
		if h.role == "web" {
			spec.Files = map[string]string{demoLegacyConf: "# demo-web: serve the v1 API through libbar's legacy interface\nlegacy_api = on\n"}
		}
		specs = append(specs, spec)
	}
	var err error
	d.hosts, err = sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(d.dir, "hosts"), Hosts: specs, Logger: d.log})
	if err != nil {
		return err
	}
	for _, h := range demoFleet() {
		root := d.hosts.Root(h.name)
		if err := pkgtool.Provision(root, d.tool, h.installed, demoAvailable); err != nil {
			return err
		}
		if err := pkgtool.SetHook(root, "vz-demo-libbar", "2.2.0", demoBreakHook); err != nil {
			return err
		}
	}
	signer, err := fleet.LoadSigner(d.hosts.ClientKeyPath())
	if err != nil {
		return err
	}
	hk, err := fleet.KnownHosts(d.hosts.KnownHostsPath())
	if err != nil {
		return err
	}
	d.client, err = fleet.New(fleet.Config{Signers: []ssh.Signer{signer}, HostKeyCallback: hk, MaxParallel: 8, Logger: d.log})
	if err != nil {
		return err
	}

	inv := vulnzero.Inventory{Groups: map[string][]string{}}
	for _, h := range d.hosts.Hosts() {
		inv.Hosts = append(inv.Hosts, h)
		role := h.Labels["role"]
		inv.Groups[role] = append(inv.Groups[role], h.Name)
	}
	invYAML, err := policies.MarshalInventory(inv)
	if err != nil {
		return err
	}
	cfg := defaultConfig()
	cfg.DataDir = d.dir
	repoFiles := map[string][]byte{
		"README.md":             []byte(repoReadme),
		"inventory/hosts.yaml":  append([]byte("# The demo fleet: sandbox SSH servers on 127.0.0.1.\n"), invYAML...),
		"policies/rollout.yaml": []byte(demoRolloutPolicy),
	}
	if _, err := gitsource.InitBare(ctx, cfg.repoURL(), cfg.Repo.Branch, repoFiles, "Initialize remediation repository", cfg.Repo.Author, cfg.Repo.Email); err != nil {
		return err
	}
	if d.app, err = openApp(ctx, cfg, d.log); err != nil {
		return err
	}
	if d.rec, err = d.app.newReconciler(d.client); err != nil {
		return err
	}
	for _, h := range d.hosts.Hosts() {
		d.say("%-6s ssh://%s@%s:%d  labels %v", h.Name, h.User, h.Address, h.Port, h.Labels)
	}
	d.say("known_hosts enforced: %s", d.hosts.KnownHostsPath())
	d.say("remediation repository: %s", cfg.repoURL())
	return nil
}

// scan imports the embedded fixture reports, one transaction each.
func (d *demo) scan(ctx context.Context) error {
	return fs.WalkDir(fixtures.Demo, "scans", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := fixtures.Demo.ReadFile(p)
		if err != nil {
			return err
		}
		format, err := scan.Detect(data)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		now := time.Now().UTC()
		findings := scan.Parse(p, bytes.NewReader(data), format, scan.Options{Source: "demo-scanner", Now: now})
		res, err := d.app.store.ImportFindings(ctx, vulnzero.Import{Source: "demo-scanner", Scanner: string(format), File: p, Complete: false, At: now}, findings)
		if err != nil {
			return err
		}
		d.say("%-22s %-5s %2d findings read, %2d new, %2d updated, hosts %s", filepath.Base(p), format, res.Read, res.New, res.Updated, strings.Join(res.Hosts, " "))
		return nil
	})
}

// propose groups the open findings and opens one PR per remediation key.
func (d *demo) propose(ctx context.Context) error {
	res, err := d.app.proposeOnce(ctx)
	if err != nil {
		return err
	}
	props := res.Proposals
	for _, pr := range props {
		if pr.Skipped != "" {
			d.say("skipped %s: %s", pr.Group.Key.Package, pr.Skipped)
			continue
		}
		d.say("PR #%d %-36s score %3d  %d hosts  branch %s", pr.PR.Number, pr.PR.Title, pr.Group.Score.Total, len(pr.Group.Hosts), pr.PR.Branch)
	}
	return nil
}

// twin rehearses every open PR's patch on a replica of its first target
// host and posts one status per phase.
func (d *demo) twin(ctx context.Context) error {
	prs, err := d.app.forge.ListPRs(ctx, vulnzero.PROpen)
	if err != nil {
		return err
	}
	checker := &twin.Checker{
		Provisioner: &twinlocal.Provisioner{Targets: d.client, Available: demoAvailable, ToolPath: d.tool, Dir: d.dir, Logger: d.log},
		Statuses:    d.app.forge, Transcripts: d.app.store, BaseURL: "http://127.0.0.1:8080", Logger: d.log,
	}
	st, err := d.app.repoState(ctx)
	if err != nil {
		return err
	}
	for _, pr := range prs {
		files, err := d.app.repo.State(ctx, pr.HeadSHA)
		if err != nil {
			return fmt.Errorf("PR #%d: %w", pr.Number, err)
		}
		dp, ok := files.Patch(pr.PatchID)
		if !ok {
			return fmt.Errorf("PR #%d: patch %s not on its branch", pr.Number, pr.PatchID)
		}
		target, ok := firstTarget(st.Inventory, dp.Patch)
		if !ok {
			d.say("PR #%d: no inventory host matches the targets; twin skipped", pr.Number)
			continue
		}
		rep, err := checker.Check(ctx, pr.HeadSHA, dp.Patch, target)
		if err != nil {
			return err
		}
		var marks []string
		for _, ph := range rep.Phases {
			m := "✓"
			if !ph.Passed {
				m = "✗"
			}
			marks = append(marks, m+" "+ph.Phase)
		}
		verdict := "passed"
		if !rep.Passed() {
			verdict = "FAILED at " + rep.Failed
		}
		d.say("PR #%d on a replica of %s: %s in %s", pr.Number, target.Name, verdict, rep.Duration.Round(time.Millisecond))
		d.say("    %s", strings.Join(marks, "  "))
	}
	return nil
}

func firstTarget(inv vulnzero.Inventory, p vulnzero.Patch) (vulnzero.Host, bool) {
	for _, h := range inv.Hosts {
		if p.Targets.Matches(h) {
			return h, true
		}
	}
	return vulnzero.Host{}, false
}

// mergeAndReconcile merges the open PR for pkg, as a reviewer would, and
// runs the reconciler until it has nothing left to do.
func (d *demo) mergeAndReconcile(ctx context.Context, pkg string) error {
	prs, err := d.app.forge.ListPRs(ctx, vulnzero.PROpen)
	if err != nil {
		return err
	}
	var number int
	for _, pr := range prs {
		if strings.Contains(pr.PatchID, pkg) {
			number = pr.Number
		}
	}
	if number == 0 {
		return fmt.Errorf("no open PR for %s", pkg)
	}
	pr, err := d.app.forge.Merge(ctx, number)
	if err != nil {
		return err
	}
	d.say("merged PR #%d as %s on main", pr.Number, short(pr.MergeSHA))
	before, err := d.app.store.ListRollouts(ctx, store.RolloutFilter{})
	if err != nil {
		return err
	}
	for i := 0; i < 3; i++ { // a failed rollout writes a revert; the next pass sees main without the patch
		rep, err := d.rec.RunOnce(ctx)
		if err != nil {
			return err
		}
		if len(rep.Outcomes) == 0 {
			break
		}
	}
	after, err := d.app.store.ListRollouts(ctx, store.RolloutFilter{})
	if err != nil {
		return err
	}
	for _, r := range after[len(before):] {
		steps, err := d.app.store.ListHostSteps(ctx, r.ID)
		if err != nil {
			return err
		}
		d.say("rollout %d (%s %s, revision %s): %s", r.ID, r.Kind, r.PatchID, r.Revision.Short(), r.State)
		for i, st := range r.Stages {
			d.say("    stage %d %-7s %s", i+1, st.Name, stageResult(st, steps))
		}
		if r.Reason != "" {
			d.say("    reason: %s", r.Reason)
		}
		for _, s := range steps {
			if s.State == vulnzero.StepFailed {
				msg := lastLine(s.Stderr)
				if msg == "" {
					msg = s.Error
				}
				d.say("    %s %s: %s", s.Host, s.Phase, msg)
			}
		}
		if r.RevertSHA != "" {
			d.say("    revert commit %s pushed to main; revision quarantined", short(r.RevertSHA))
			if pr, err := d.app.forge.GetPR(ctx, number); err == nil {
				if cs, err := d.app.forge.Comments(ctx, pr.Number); err == nil && len(cs) > 0 {
					d.say("    comment on PR #%d: %s", pr.Number, lastLine(strings.SplitN(cs[len(cs)-1], "\n", 2)[0]))
				}
			}
		}
	}
	return nil
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// stageResult describes each host of a stage by its last step.
func stageResult(st vulnzero.Stage, steps []vulnzero.HostStep) string {
	var parts []string
	for _, h := range st.Hosts {
		state := "not started"
		var last vulnzero.HostStep
		for _, s := range steps {
			if s.Host == h && !s.StartedAt.Before(last.StartedAt) {
				last = s
			}
		}
		if last.Host != "" {
			state = string(last.Phase) + " " + string(last.State)
		}
		parts = append(parts, h+": "+state)
	}
	return strings.Join(parts, ", ")
}

// rescan reads every host's packages over SSH, like a credentialed scan,
// and imports what is still vulnerable as a complete scan: findings it no
// longer reports are marked fixed.
func (d *demo) rescan(ctx context.Context) error {
	fixedIn := map[string]vulnzero.Finding{}
	open, err := d.app.store.ListFindings(ctx, store.FindingFilter{})
	if err != nil {
		return err
	}
	for _, f := range open {
		fixedIn[f.Package] = f
	}
	var findings []vulnzero.Finding
	var covered []string
	now := time.Now().UTC()
	for _, h := range d.hosts.Hosts() {
		res, err := d.client.Run(ctx, h, fleet.Command{Script: []byte("dpkg-query -W -f='${Package}\\t${Version}\\n'\n"), Timeout: time.Minute})
		if err != nil {
			return err
		}
		covered = append(covered, h.Name)
		for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
			name, ver, _ := strings.Cut(line, "\t")
			f, known := fixedIn[name]
			if !known || !debLess(ver, f.Fixed) {
				continue
			}
			f.Host, f.Installed, f.Source, f.Scanner, f.FirstSeen, f.LastSeen = h.Name, ver, "demo-scanner", "ssh-rescan", now, now
			findings = append(findings, f)
		}
	}
	seq := func(yield func(vulnzero.Finding, error) bool) {
		for _, h := range covered { // every host was scanned, even those with nothing left
			if !yield(store.CoverageMarker(h), nil) {
				return
			}
		}
		for _, f := range findings {
			if !yield(f, nil) {
				return
			}
		}
	}
	res, err := d.app.store.ImportFindings(ctx, vulnzero.Import{Source: "demo-scanner", Scanner: "ssh-rescan", Complete: true, At: now}, seq)
	if err != nil {
		return err
	}
	d.say("%d hosts scanned: %d findings still open, %d marked fixed", len(covered), len(findings), res.Fixed)
	return nil
}

// debLess reports a < b in Debian version order; unparsable versions are
// treated as not vulnerable rather than guessed at.
func debLess(a, b string) bool {
	va, err := debversion.NewVersion(a)
	if err != nil {
		return false
	}
	vb, err := debversion.NewVersion(b)
	if err != nil {
		return false
	}
	return va.LessThan(vb)
}

// summary prints the tables a person reads after the demo.
func (d *demo) summary(ctx context.Context) error {
	s := d.app.store
	fmt.Fprintf(d.out, "\n══ Summary ══\n")
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)

	ledger, err := s.ListLedger(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "\nHOST\tADDRESS\tPACKAGES (now)\tLEDGER")
	for _, h := range d.hosts.Hosts() {
		inst, err := pkgtool.Installed(d.hosts.Root(h.Name))
		if err != nil {
			return err
		}
		var pk, led []string
		for _, n := range sortedKeys(inst) {
			if strings.HasPrefix(n, "vz-demo-") {
				pk = append(pk, n+" "+inst[n])
			}
		}
		for _, e := range ledger {
			if e.Host == h.Name {
				led = append(led, e.PatchID+"="+string(e.State))
			}
		}
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\n", h.Name, h.Address, h.Port, strings.Join(pk, ", "), strings.Join(led, " "))
	}

	fs, err := s.ListFindings(ctx, store.FindingFilter{})
	if err != nil {
		return err
	}
	count := map[string]map[vulnzero.FindingStatus]int{}
	for _, f := range fs {
		if count[f.Package] == nil {
			count[f.Package] = map[vulnzero.FindingStatus]int{}
		}
		count[f.Package][f.Status]++
	}
	fmt.Fprintln(tw, "\nFINDINGS\tOPEN\tFIXED\t")
	for _, p := range sortedKeys(count) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", p, count[p][vulnzero.FindingOpen], count[p][vulnzero.FindingFixed])
	}

	prs, err := d.app.forge.ListPRs(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "\nPR\tSTATE\tTWIN CHECKS\tTITLE")
	for _, pr := range prs {
		sts, err := d.app.forge.Statuses(ctx, pr.HeadSHA)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "#%d\t%s\t%s\t%s\n", pr.Number, pr.State, checksSummary(sts), pr.Title)
	}

	rs, err := s.ListRollouts(ctx, store.RolloutFilter{})
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "\nROLLOUT\tPATCH\tSTATE\tSTAGES\tREVERT")
	for _, r := range rs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.ID, r.PatchID, r.State, stageOf(r), short(r.RevertSHA))
	}
	q, err := s.ListQuarantined(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(tw, "\nQUARANTINED\tREVISION\tREASON\t")
	for _, x := range q {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", x.PatchID, x.Revision.Short(), x.Reason)
	}
	fmt.Fprintln(tw, "\nPHASE\tTIME\t\t")
	for _, p := range d.phases {
		fmt.Fprintf(tw, "%s\t%s\t\t\n", p.name, p.d.Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(d.out, "\nRemediation repository history (git -C %s log --oneline main):\n", d.app.cfg.repoURL())
	log, err := gitLog(d.app.cfg.repoURL(), d.app.cfg.Repo.Branch)
	if err != nil {
		return err
	}
	for _, l := range log {
		fmt.Fprintf(d.out, "  %s\n", l)
	}
	fmt.Fprintf(d.out, "\nDemo finished in %s.\n", time.Since(d.start).Round(time.Millisecond))
	return nil
}

// gitLog returns "sha subject" lines of branch, newest first.
func gitLog(path, branch string) ([]string, error) {
	repo, err := git.PlainOpen(path)
	if err != nil {
		return nil, err
	}
	ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return nil, err
	}
	it, err := repo.Log(&git.LogOptions{From: ref.Hash()})
	if err != nil {
		return nil, err
	}
	var out []string
	err = it.ForEach(func(c *object.Commit) error {
		subject, _, _ := strings.Cut(c.Message, "\n")
		out = append(out, c.Hash.String()[:7]+" "+subject)
		return nil
	})
	return out, err
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// serve keeps the demo's state browsable until interrupted.
func (d *demo) serve(ctx context.Context, listen string) error {
	srv, err := server.New(server.Config{Store: d.app.store, Gatherer: d.app.reg, Logger: d.log, Version: version})
	if err != nil {
		return err
	}
	err = srv.ListenAndServe(ctx, listen, func(a net.Addr) {
		fmt.Fprintf(d.out, "\nServing http://%s/ (status page), /healthz, /metrics — Ctrl-C to stop.\n", a)
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
