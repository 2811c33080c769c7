package llm

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy"
)

// Alternator asks a Generator for an alternative to a quarantined patch
// revision, with the failed scripts and the failure transcript in the
// prompt. It satisfies remedy.Alternatives: set it as
// remedy.Proposer.Alternatives.
type Alternator struct {
	Generator *Generator
	// Transcript loads the output of the failed run of q (the host steps
	// or transcripts in the store). Nil, or an error, leaves the prompt with
	// the quarantine reason only.
	Transcript func(ctx context.Context, q vulnzero.Quarantine) (string, error)
}

var _ remedy.Alternatives = (*Alternator)(nil)

// Alternative returns a patch with the quarantined one's id and targets and
// new scripts.
func (a *Alternator) Alternative(ctx context.Context, g remedy.Group, quarantined vulnzero.Patch, q vulnzero.Quarantine) (vulnzero.Patch, error) {
	var transcript string
	if a.Transcript != nil {
		t, err := a.Transcript(ctx, q)
		if err != nil {
			transcript = fmt.Sprintf("(the transcript could not be loaded: %v)", err)
		} else {
			transcript = t
		}
	}
	req := Request{
		PatchID:      quarantined.ID,
		Title:        quarantined.Title,
		Package:      g.Key.Package,
		Manager:      g.Manager,
		FixedVersion: g.Key.Fixed,
		OS:           groupOS(g),
		Findings:     g.Findings,
		Hosts:        g.Hosts,
		PackageState: installedState(g),
		Failure:      &Failure{Revision: q.Revision, Reason: q.Reason, Scripts: quarantined.Scripts, Transcript: transcript},
	}
	res, err := a.Generator.Generate(ctx, req)
	if err != nil {
		return vulnzero.Patch{}, err
	}
	p := res.Patch
	p.Targets = quarantined.Targets
	p.CVEs = slices.Clone(quarantined.CVEs)
	p.HealthChecks = quarantined.HealthChecks
	p.Timeouts = quarantined.Timeouts
	p.Rollout = quarantined.Rollout
	return p, nil
}

// groupOS is the OS the group's hosts report, or the distinct ones joined.
func groupOS(g remedy.Group) string {
	var oss []string
	for _, f := range g.Findings {
		if f.OS != "" && !slices.Contains(oss, f.OS) {
			oss = append(oss, f.OS)
		}
	}
	slices.Sort(oss)
	if len(oss) == 0 {
		return g.Key.OSFamily
	}
	return strings.Join(oss, ", ")
}

// installedState lists, per host, the installed version the scanners saw.
func installedState(g remedy.Group) string {
	seen := map[string]bool{}
	var lines []string
	for _, f := range g.Findings {
		line := fmt.Sprintf("%s: %s %s installed", f.Host, f.Package, f.Installed)
		if !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
