package remedy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/remedy/guardrails"
	"vulnzero.dev/vulnzero/remedy/rules"
)

// PatchWriter commits a patch directory to a branch and pushes it;
// *gitsource.Repo satisfies it.
type PatchWriter interface {
	CommitPatch(ctx context.Context, branch, base string, p vulnzero.Patch, message string) (string, error)
}

// RevisionFunc computes the revision a patch would have once committed, so a
// quarantined revision is recognised before it reaches a branch.
type RevisionFunc func(p vulnzero.Patch) (vulnzero.Revision, error)

// Proposer turns finding groups into patch pull requests: policy filter →
// rules generator → guardrails → commit on vulnzero/<patch-id> → open or
// update the PR. The branch and PR derive from the patch id, which derives
// from the remediation key, so a re-run updates the same PR.
type Proposer struct {
	Writer      PatchWriter
	Forge       forge.Forge
	Revision    RevisionFunc
	Base        string // the branch PRs merge into
	Policies    policies.Set
	Inventory   vulnzero.Inventory
	Quarantined []vulnzero.Quarantine
	Guardrails  guardrails.Rules

	// Alternatives, when set, is asked for a different patch (the LLM
	// generator, given the failure) when the generated patch's revision is
	// quarantined; without it a quarantined group is skipped.
	Alternatives Alternatives
	// NewPerHour bounds the PRs opened in any hour (DefaultNewPerHour when
	// 0, none when negative); CriticalNewPerHour is the separate budget of
	// groups with a KEV-listed CVE or critical severity
	// (DefaultCriticalNewPerHour when 0), so an emergency never waits
	// behind routine upgrades. Both count the forge's PRs created in the
	// last hour (criticalMark in the body tells the lanes apart); updating an open PR spends neither.
	NewPerHour, CriticalNewPerHour int
	Now                            func() time.Time
	Logger                         *slog.Logger
}

// Default hourly budgets for new PRs.
const (
	DefaultNewPerHour         = 2
	DefaultCriticalNewPerHour = 2
)

// criticalMark in a PR body puts the PR in the critical budget lane.
const criticalMark = "<!-- vulnzero:lane=critical -->"

// critical reports whether g goes in the critical lane.
func critical(g Group) bool {
	if g.MaxSeverity >= vulnzero.SeverityCritical {
		return true
	}
	return slices.ContainsFunc(g.Score.Parts, func(p ScorePart) bool { return p.Name == PartKEV && p.Points > 0 })
}

// hourlyLeft is what is left of the routine and critical hourly budgets,
// given every PR the forge knows.
func (p *Proposer) hourlyLeft(prs []vulnzero.PullRequest, now time.Time) (routine, crit int) {
	routine, crit = cmp.Or(p.NewPerHour, DefaultNewPerHour), cmp.Or(p.CriticalNewPerHour, DefaultCriticalNewPerHour)
	for _, pr := range prs {
		if pr.CreatedAt.After(now.Add(-time.Hour)) { // later than now too: the forge's clock may run ahead
			if strings.Contains(pr.Body, criticalMark) {
				crit--
			} else {
				routine--
			}
		}
	}
	return routine, crit
}

// labeler is a forge that labels PRs (forge/github does).
type labeler interface {
	AddLabels(ctx context.Context, n int, labels ...string) error
}

// Proposal is what happened to one group.
type Proposal struct {
	Group   Group
	Patch   vulnzero.Patch
	PR      vulnzero.PullRequest
	Skipped string // why no PR was opened or updated; empty when one was
}

// Propose handles every group in order. A group that fails policy, the
// generator, the guardrails or the quarantine is skipped with its reason; an
// error is returned only when git or the forge fails, naming the patch.
func (p *Proposer) Propose(ctx context.Context, groups []Group) ([]Proposal, error) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	open, err := p.Forge.ListPRs(ctx, vulnzero.PROpen)
	if err != nil {
		return nil, fmt.Errorf("propose: list open PRs: %w", err)
	}
	openBranches := map[string]bool{}
	for _, pr := range open {
		openBranches[pr.Branch] = true
	}
	budget := p.Policies.Remediation.MaxOpenPRs - len(open)
	all, err := p.Forge.ListPRs(ctx)
	if err != nil {
		return nil, fmt.Errorf("propose: list PRs: %w", err)
	}
	routineLeft, criticalLeft := p.hourlyLeft(all, now())

	var out []Proposal
	for _, g := range groups {
		prop := Proposal{Group: g}
		if why := p.filter(g, now()); why != "" {
			prop.Skipped = why
			out = append(out, prop)
			continue
		}
		id := PatchID(g.Key, g.Manager)
		patch, err := rules.Generate(rules.Request{
			PatchID: id, Title: fmt.Sprintf("Upgrade %s to %s", g.Key.Package, g.Key.Fixed),
			Package: g.Key.Package, Manager: g.Manager, FixedVersion: g.Key.Fixed, CVEs: g.CVEs, Hosts: g.Hosts,
		})
		if err != nil {
			prop.Skipped = "no generator: " + err.Error()
			out = append(out, prop)
			continue
		}
		prop.Patch = patch
		if vs := guardrails.Check(p.Guardrails, scriptMap(patch.Scripts)); len(vs) > 0 {
			prop.Skipped = "guardrails: " + vs[0].String()
			log.Warn("generated patch rejected by guardrails", "patch", id, "violations", len(vs))
			out = append(out, prop)
			continue
		}
		if p.Revision != nil {
			rev, err := p.Revision(patch)
			if err != nil {
				return out, fmt.Errorf("propose %s: revision: %w", id, err)
			}
			if q, ok := p.quarantined(id, rev); ok {
				alt, why := p.alternative(ctx, g, patch, q, log)
				if alt == nil {
					prop.Skipped = fmt.Sprintf("revision %s is quarantined: %s%s", rev.Short(), q.Reason, why)
					out = append(out, prop)
					continue
				}
				patch, prop.Patch = *alt, *alt
			}
		}
		branch := forge.Branch(id)
		if !openBranches[branch] {
			if budget <= 0 {
				prop.Skipped = fmt.Sprintf("open-PR budget of %d reached", p.Policies.Remediation.MaxOpenPRs)
				out = append(out, prop)
				continue
			}
			left, limit, lane := &routineLeft, p.NewPerHour, "new-PR"
			if critical(g) {
				left, limit, lane = &criticalLeft, p.CriticalNewPerHour, "critical new-PR"
			}
			if limit >= 0 && *left <= 0 {
				prop.Skipped = lane + " budget for this hour reached"
				out = append(out, prop)
				continue
			}
			budget--
			*left--
		}
		sha, err := p.Writer.CommitPatch(ctx, branch, p.Base, patch, fmt.Sprintf("%s\n\n%s", patch.Title, strings.Join(patch.CVEs, ", ")))
		if err != nil {
			return out, fmt.Errorf("propose %s: %w", id, err)
		}
		pr, err := p.Forge.OpenPR(ctx, forge.NewPR{
			PatchID: id, Branch: branch, Base: p.Base, Title: patch.Title, HeadSHA: sha,
			Body: p.body(g, patch),
		})
		if err != nil {
			return out, fmt.Errorf("propose %s: open PR: %w", id, err)
		}
		openBranches[branch] = true
		if l, ok := p.Forge.(labeler); ok {
			if err := l.AddLabels(ctx, pr.Number, "severity:"+g.MaxSeverity.String()); err != nil {
				return out, fmt.Errorf("propose %s: label PR #%d: %w", id, pr.Number, err)
			}
		}
		prop.PR = pr
		log.Info("patch proposed", "patch", id, "pr", pr.Number, "hosts", len(g.Hosts), "score", g.Score.Total)
		out = append(out, prop)
	}
	return out, nil
}

// filter applies the RemediationPolicy: minimum severity and unexpired
// exceptions.
func (p *Proposer) filter(g Group, now time.Time) string {
	rp := p.Policies.Remediation
	if g.MaxSeverity < rp.MinSeverity {
		return fmt.Sprintf("severity %s is below the policy minimum %s", g.MaxSeverity, rp.MinSeverity)
	}
	for _, e := range rp.Exceptions {
		if now.After(e.Expires) || !slices.Contains(g.CVEs, e.CVE) {
			continue
		}
		if e.Host == "" || (len(g.Hosts) == 1 && g.Hosts[0] == e.Host) {
			return fmt.Sprintf("exception for %s until %s: %s", e.CVE, e.Expires.Format(time.DateOnly), e.Reason)
		}
	}
	return ""
}

func (p *Proposer) quarantined(id string, rev vulnzero.Revision) (vulnzero.Quarantine, bool) {
	for _, q := range p.Quarantined {
		if q.PatchID == id && q.Revision == rev {
			return q, true
		}
	}
	return vulnzero.Quarantine{}, false
}

func scriptMap(s vulnzero.Scripts) map[string][]byte {
	return map[string][]byte{vulnzero.ApplyFile: s.Apply, vulnzero.VerifyFile: s.Verify, vulnzero.RollbackFile: s.Rollback}
}

// body renders the PR description a reviewer decides from: what is fixed
// where, why it scores as it does, what will run, who wrote it, and how it
// will roll out — like a Terraform plan.
func (p *Proposer) body(g Group, patch vulnzero.Patch) string {
	var b strings.Builder
	if critical(g) {
		b.WriteString(criticalMark + "\n")
	}
	fmt.Fprintf(&b, "## %s\n\n", patch.Title)
	fmt.Fprintf(&b, "Fixes %s on %d host(s). Remediation key: `%s` %s → `%s` (%s).\n\n",
		strings.Join(g.CVEs, ", "), len(g.Hosts), g.Key.Package, g.Manager, g.Key.Fixed, g.Key.OSFamily)

	b.WriteString("### Findings\n\n| host | package | installed → fixed | CVE | severity | CVSS |\n|---|---|---|---|---|---|\n")
	fs := slices.Clone(g.Findings)
	slices.SortFunc(fs, func(a, b vulnzero.Finding) int { return strings.Compare(a.Host+a.CVE, b.Host+b.CVE) })
	for _, f := range fs {
		fmt.Fprintf(&b, "| %s | %s | %s → %s | %s | %s | %.1f |\n", f.Host, f.Package, f.Installed, f.Fixed, f.CVE, f.Severity, f.CVSS)
	}

	fmt.Fprintf(&b, "\n### Score: %d/100\n\n| part | points | why |\n|---|---|---|\n", g.Score.Total)
	for _, part := range g.Score.Parts {
		fmt.Fprintf(&b, "| %s | %d | %s |\n", part.Name, part.Points, part.Why)
	}

	b.WriteString("\n### Rollout plan\n\n")
	var targets []vulnzero.Host
	var names []string
	for _, h := range p.Inventory.Hosts {
		if patch.Targets.Matches(h) {
			targets = append(targets, h)
			names = append(names, h.Name)
		}
	}
	if missing := len(patch.Targets.Hosts) - len(names); missing > 0 {
		fmt.Fprintf(&b, "**%d target host(s) are not in the inventory** and will not be patched until they are.\n\n", missing)
	}
	spec, pol := p.Policies.RolloutFor(patch, targets)
	stages, err := reconciler.ResolveStagesIn(spec, names, p.Inventory, "")
	switch {
	case err != nil:
		fmt.Fprintf(&b, "The rollout cannot be planned: %v\n", err)
	case len(stages) == 0:
		b.WriteString("No inventory host matches the targets: nothing would roll out.\n")
	default:
		fmt.Fprintf(&b, "Policy `%s`, strategy `%s`, revert by `%s`.\n\n| stage | hosts | max failures | soak | hosts |\n|---|---|---|---|---|\n",
			pol.Name, spec.Strategy, orDefault(pol.Revert, policies.RevertPush))
		for i, st := range stages {
			fmt.Fprintf(&b, "| %d %s | %d | %d | %s | %s |\n", i+1, st.Name, len(st.Hosts), st.MaxFailures, st.Soak, strings.Join(st.Hosts, ", "))
		}
	}

	fmt.Fprintf(&b, "\n### Generator\n\n`%s`", patch.Generator.Kind)
	if patch.Generator.Provider != "" {
		fmt.Fprintf(&b, " (%s", patch.Generator.Provider)
		if patch.Generator.Model != "" {
			fmt.Fprintf(&b, ", model %s, prompt sha256 %s", patch.Generator.Model, patch.Generator.PromptSHA256)
		}
		b.WriteString(")")
	}
	b.WriteString(". Every script passed the guardrails before this branch was pushed.\n")

	for _, s := range []struct {
		name string
		body []byte
	}{{vulnzero.ApplyFile, patch.Scripts.Apply}, {vulnzero.VerifyFile, patch.Scripts.Verify}, {vulnzero.RollbackFile, patch.Scripts.Rollback}} {
		fmt.Fprintf(&b, "\n<details><summary>%s</summary>\n\n```sh\n%s```\n</details>\n", s.name, s.body)
	}
	return b.String()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
