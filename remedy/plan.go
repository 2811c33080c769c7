package remedy

import (
	"cmp"
	"slices"
	"strings"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/version"
)

// MergeFixedVersions folds groups that upgrade the same package on the same
// OS family to different fixed versions — scanners that disagree, or CVEs
// fixed in successive releases — into one group at the highest fixed
// version, ordered the way the hosts' package manager orders versions
// (remedy/version: dpkg for apt, rpmvercmp for dnf/yum/zypper, apk-tools
// for apk): upgrading to it fixes every finding of every folded group, with
// one patch instead of several on the same package. The merged group's id
// derives from its new key, as GroupFindings' would, and its score is
// recomputed with in. Groups whose versions do not parse are left as they
// are. The result is ordered like GroupFindings'.
func MergeFixedVersions(groups []Group, in ScoreInput) []Group {
	type pkgKey struct {
		pkg, family string
		m           vulnzero.PackageManager
	}
	byPkg := map[pkgKey][]int{}
	var order []pkgKey
	for i, g := range groups {
		k := pkgKey{g.Key.Package, g.Key.OSFamily, g.Manager}
		if _, ok := byPkg[k]; !ok {
			order = append(order, k)
		}
		byPkg[k] = append(byPkg[k], i)
	}
	var out []Group
	for _, k := range order {
		idx := byPkg[k]
		if len(idx) == 1 {
			out = append(out, groups[idx[0]])
			continue
		}
		merged, ok := merge(groups, idx, in)
		if !ok {
			for _, i := range idx {
				out = append(out, groups[i])
			}
			continue
		}
		out = append(out, merged)
	}
	slices.SortFunc(out, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.Score.Total, a.Score.Total), strings.Compare(a.ID, b.ID))
	})
	return out
}

func merge(groups []Group, idx []int, in ScoreInput) (Group, bool) {
	scheme, err := version.For(groups[idx[0]].Manager)
	if err != nil {
		return Group{}, false
	}
	fixed := make([]string, len(idx))
	for j, i := range idx {
		fixed[j] = groups[i].Key.Fixed
	}
	highest, err := scheme.Highest(fixed...)
	if err != nil {
		return Group{}, false
	}
	first := groups[idx[0]]
	g := Group{Key: Key{Package: first.Key.Package, Fixed: highest, OSFamily: first.Key.OSFamily}, Manager: first.Manager}
	g.ID = PatchID(g.Key, g.Manager)
	seen := map[string]int{}
	for _, i := range idx {
		for _, f := range groups[i].Findings {
			if j, dup := seen[f.Key()]; dup {
				if f.LastSeen.After(g.Findings[j].LastSeen) {
					g.Findings[j] = f
				}
				continue
			}
			seen[f.Key()] = len(g.Findings)
			g.Findings = append(g.Findings, f)
		}
	}
	slices.SortFunc(g.Findings, func(a, b vulnzero.Finding) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), strings.Compare(a.CVE, b.CVE))
	})
	for _, f := range g.Findings {
		g.Hosts = append(g.Hosts, f.Host)
		g.CVEs = append(g.CVEs, f.CVE)
		g.MaxSeverity = max(g.MaxSeverity, f.Severity)
	}
	slices.Sort(g.Hosts)
	g.Hosts = slices.Compact(g.Hosts)
	slices.Sort(g.CVEs)
	g.CVEs = slices.Compact(g.CVEs)
	g.Score = ScoreGroup(g, in)
	return g, true
}
