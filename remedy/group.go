package remedy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"vulnzero.dev/vulnzero"
)

// Key is the remediation key: findings with the same key are fixed by the
// same patch.
type Key struct {
	Package  string // the package to upgrade
	Fixed    string // the version that fixes it
	OSFamily string // debian, rhel, suse, alpine
}

// maxPatchID keeps ids usable as a DNS label (Kubernetes names, hostnames
// in preview URLs) as well as a branch and a directory name.
const maxPatchID = 63

// PatchID is the deterministic, readable id of the patch for a key, e.g.
// "apt-vz-demo-libfoo-1.0.1-3f2a9c1b": the manager, package and fixed
// version sanitized to [a-z0-9.-], then 8 hex digits of the SHA-256 of the
// unsanitized key, so keys that sanitize alike ("1:2.0" and "1-2.0") still
// get different ids. It is at most 63 characters, starts and ends with a
// letter or digit, has no "..", and is a valid git branch component and
// DNS-1123 name. The same key gives the same id on every run.
func PatchID(k Key, manager vulnzero.PackageManager) string {
	sum := sha256.Sum256([]byte(strings.Join([]string{string(manager), k.Package, k.Fixed, k.OSFamily}, "\x00")))
	suffix := "-" + hex.EncodeToString(sum[:4])
	readable := sanitize(string(manager) + "-" + k.Package + "-" + k.Fixed)
	if limit := maxPatchID - len(suffix); len(readable) > limit {
		readable = strings.TrimRight(readable[:limit], "-.")
	}
	if readable == "" {
		return suffix[1:]
	}
	return readable + suffix
}

// sanitize lowercases s and keeps letters and digits; every run of other
// characters becomes one "-", except a single "." between two alphanumerics,
// which stays so versions remain readable ("1.0.1").
func sanitize(s string) string {
	var b strings.Builder
	s = strings.ToLower(s)
	alnum := func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }
	for i := 0; i < len(s); {
		if alnum(s[i]) {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && !alnum(s[j]) {
			j++
		}
		if b.Len() > 0 && j < len(s) { // interior run only: trim both ends
			if s[i:j] == "." {
				b.WriteByte('.')
			} else {
				b.WriteByte('-')
			}
		}
		i = j
	}
	return b.String()
}

// ManagerFor returns the package manager that patches an OS family, as
// normalized by scan.NormalizeOSFamily. RHEL-like hosts get dnf (on EL7,
// where only yum exists, the generated script is expected to fall back).
func ManagerFor(osFamily string) (vulnzero.PackageManager, bool) {
	switch strings.ToLower(strings.TrimSpace(osFamily)) {
	case "debian":
		return vulnzero.APT, true
	case "rhel":
		return vulnzero.DNF, true
	case "suse":
		return vulnzero.Zypper, true
	case "alpine":
		return vulnzero.APK, true
	}
	return "", false
}

// managedEcosystem is the package format a manager installs; a finding in
// another ecosystem (npm, pip, jar on the same host) is not its business.
func managedEcosystem(m vulnzero.PackageManager) string {
	switch m {
	case vulnzero.APT:
		return "deb"
	case vulnzero.DNF, vulnzero.YUM, vulnzero.Zypper:
		return "rpm"
	case vulnzero.APK:
		return "apk"
	}
	return ""
}

// Group is the open findings that one patch fixes.
type Group struct {
	ID          string // PatchID(Key, Manager)
	Key         Key
	Manager     vulnzero.PackageManager
	Findings    []vulnzero.Finding // one per (host, package, CVE), by host then CVE
	Hosts       []string           // sorted, unique
	CVEs        []string           // sorted, unique
	MaxSeverity vulnzero.Severity
	Score       Score
}

// Skipped is an open finding that no patch can fix, and why.
type Skipped struct {
	Finding vulnzero.Finding
	Reason  string
}

// GroupFindings groups the open findings that have a known fix by
// remediation key and scores each group with in. Findings that are not open
// are ignored. Open findings that cannot become a package patch (no fixed
// version, no package, an OS family without a package manager, a language
// package on an OS host) are returned as skipped with the reason, in input
// order. The same finding (host, package, CVE) seen twice, say from a CSV
// and a Trivy report, counts once; the most recently seen copy wins.
//
// Groups are ordered by score, highest first, then by ID, so the same input
// always gives the same order.
func GroupFindings(fs []vulnzero.Finding, in ScoreInput) ([]Group, []Skipped) {
	byKey := map[Key]*Group{}
	seen := map[string]map[string]int{} // group id → finding key → index in Findings
	var skipped []Skipped
	for _, f := range fs {
		if f.Status != vulnzero.FindingOpen && f.Status != "" {
			continue
		}
		m, why := classify(f)
		if why != "" {
			skipped = append(skipped, Skipped{Finding: f, Reason: why})
			continue
		}
		k := Key{Package: f.Package, Fixed: f.Fixed, OSFamily: f.OSFamily}
		g, ok := byKey[k]
		if !ok {
			g = &Group{ID: PatchID(k, m), Key: k, Manager: m}
			byKey[k] = g
			seen[g.ID] = map[string]int{}
		}
		if i, dup := seen[g.ID][f.Key()]; dup {
			if f.LastSeen.After(g.Findings[i].LastSeen) {
				g.Findings[i] = f
			}
			continue
		}
		seen[g.ID][f.Key()] = len(g.Findings)
		g.Findings = append(g.Findings, f)
	}

	groups := make([]Group, 0, len(byKey))
	for _, g := range byKey {
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
		g.Score = ScoreGroup(*g, in)
		groups = append(groups, *g)
	}
	slices.SortFunc(groups, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.Score.Total, a.Score.Total), strings.Compare(a.ID, b.ID))
	})
	return groups, skipped
}

// classify returns the manager that fixes an open finding, or why none can.
func classify(f vulnzero.Finding) (vulnzero.PackageManager, string) {
	switch {
	case f.Package == "":
		return "", "no package: the scanner names no package to upgrade"
	case f.Fixed == "":
		return "", "no fixed version is known"
	}
	m, ok := ManagerFor(f.OSFamily)
	if !ok {
		if f.OSFamily == "" {
			return "", "unknown OS family: no package manager to patch with"
		}
		return "", fmt.Sprintf("OS family %q has no supported package manager", f.OSFamily)
	}
	if f.Ecosystem != "" && f.Ecosystem != managedEcosystem(m) {
		return "", fmt.Sprintf("%s package, not managed by %s", f.Ecosystem, m)
	}
	return m, ""
}
