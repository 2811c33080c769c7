package remedy_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy"
)

var day = 24 * time.Hour

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// group builds a one-package group on the given hosts.
func group(sev vulnzero.Severity, cvss float64, firstSeen time.Time, cves []string, hosts ...string) remedy.Group {
	g := remedy.Group{Key: remedy.Key{Package: "libfoo", Fixed: "1.0.1", OSFamily: "debian"}, Manager: vulnzero.APT, MaxSeverity: sev, CVEs: cves, Hosts: hosts}
	for _, h := range hosts {
		for _, c := range cves {
			g.Findings = append(g.Findings, vulnzero.Finding{Host: h, Package: "libfoo", Fixed: "1.0.1", CVE: c, Severity: sev, CVSS: cvss, FirstSeen: firstSeen})
		}
	}
	return g
}

func TestScoreGroup(t *testing.T) {
	one := []string{"CVE-2026-1"}
	two := []string{"CVE-2026-1", "CVE-2026-2"}
	tests := []struct {
		name  string
		group remedy.Group
		in    remedy.ScoreInput
		// points per part, in order: CVSS EPSS KEV criticality age fix
		want [6]int
		why  map[string]string // part → expected explanation (only those listed)
	}{
		{"nothing known but a fix",
			group(vulnzero.SeverityUnknown, 0, time.Time{}, one, "h1"), remedy.ScoreInput{},
			[6]int{0, 0, 0, 0, 0, 5},
			map[string]string{"CVSS": "no CVSS score and no severity", "EPSS": "no EPSS data", "KEV": "no KEV data",
				"host criticality": "no host has a criticality label", "age": "age unknown", "fix available": "libfoo 1.0.1 fixes it"}},
		{"CVSS 9.8 → 39",
			group(vulnzero.SeverityCritical, 9.8, time.Time{}, one, "h1"), remedy.ScoreInput{},
			[6]int{39, 0, 0, 0, 0, 5}, map[string]string{"CVSS": "CVSS 9.8 (CVE-2026-1)"}},
		{"CVSS 10 → 40",
			group(vulnzero.SeverityCritical, 10, time.Time{}, one, "h1"), remedy.ScoreInput{},
			[6]int{40, 0, 0, 0, 0, 5}, nil},
		{"severity without CVSS: high counts as 7.0",
			group(vulnzero.SeverityHigh, 0, time.Time{}, one, "h1"), remedy.ScoreInput{},
			[6]int{28, 0, 0, 0, 0, 5}, map[string]string{"CVSS": "no CVSS score; severity high counts as 7.0"}},
		{"EPSS takes the highest CVE",
			group(vulnzero.SeverityMedium, 5.0, time.Time{}, two, "h1"),
			remedy.ScoreInput{EPSS: map[string]float64{"CVE-2026-1": 0.10, "CVE-2026-2": 0.975}},
			[6]int{20, 20, 0, 0, 0, 5}, map[string]string{"EPSS": "EPSS 0.97 (CVE-2026-2)"}},
		{"EPSS feed without these CVEs",
			group(vulnzero.SeverityMedium, 5.0, time.Time{}, one, "h1"),
			remedy.ScoreInput{EPSS: map[string]float64{"CVE-1999-1": 0.5}},
			[6]int{20, 0, 0, 0, 0, 5}, map[string]string{"EPSS": "no EPSS score for CVE-2026-1"}},
		{"KEV listed",
			group(vulnzero.SeverityHigh, 7.5, time.Time{}, two, "h1"),
			remedy.ScoreInput{KEV: map[string]bool{"CVE-2026-2": true}},
			[6]int{30, 0, 20, 0, 0, 5}, map[string]string{"KEV": "CVE-2026-2 in CISA KEV"}},
		{"KEV feed, not listed",
			group(vulnzero.SeverityHigh, 7.5, time.Time{}, one, "h1"),
			remedy.ScoreInput{KEV: map[string]bool{"CVE-2021-44228": true}},
			[6]int{30, 0, 0, 0, 0, 5}, map[string]string{"KEV": "not in CISA KEV"}},
		{"the most critical host counts",
			group(vulnzero.SeverityLow, 2.0, time.Time{}, one, "db-1", "web-1", "web-2"),
			remedy.ScoreInput{Criticality: map[string]string{"web-1": "low", "db-1": "High", "web-2": "medium"}},
			[6]int{8, 0, 0, 10, 0, 5}, map[string]string{"host criticality": "db-1 is high"}},
		{"medium host, unknown level ignored",
			group(vulnzero.SeverityLow, 2.0, time.Time{}, one, "a", "b"),
			remedy.ScoreInput{Criticality: map[string]string{"a": "medium", "b": "vital"}},
			[6]int{8, 0, 0, 5, 0, 5}, map[string]string{"host criticality": `a is medium; ignored unknown levels b="vital"`}},
		{"age: 1 point per week",
			group(vulnzero.SeverityLow, 2.0, t0.Add(-20*day), one, "h1"), remedy.ScoreInput{Now: t0},
			[6]int{8, 0, 0, 0, 2, 5}, map[string]string{"age": "open 20 day(s), since 2026-02-09"}},
		{"age caps at 5",
			group(vulnzero.SeverityLow, 2.0, t0.Add(-400*day), one, "h1"), remedy.ScoreInput{Now: t0},
			[6]int{8, 0, 0, 0, 5, 5}, nil},
		{"everything: 100",
			group(vulnzero.SeverityCritical, 10, t0.Add(-60*day), one, "h1"),
			remedy.ScoreInput{EPSS: map[string]float64{"CVE-2026-1": 1}, KEV: map[string]bool{"CVE-2026-1": true}, Criticality: map[string]string{"h1": "critical"}, Now: t0},
			[6]int{40, 20, 20, 10, 5, 5}, nil},
	}
	names := []string{remedy.PartCVSS, remedy.PartEPSS, remedy.PartKEV, remedy.PartCriticality, remedy.PartAge, remedy.PartFix}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := remedy.ScoreGroup(tt.group, tt.in)
			if len(s.Parts) != len(names) {
				t.Fatalf("%d parts, want %d", len(s.Parts), len(names))
			}
			total := 0
			for i, p := range s.Parts {
				if p.Name != names[i] || p.Points != tt.want[i] {
					t.Errorf("part %d = %s %d (%s), want %s %d", i, p.Name, p.Points, p.Why, names[i], tt.want[i])
				}
				if w, ok := tt.why[p.Name]; ok && p.Why != w {
					t.Errorf("%s why %q, want %q", p.Name, p.Why, w)
				}
				total += tt.want[i]
			}
			if s.Total != total || s.Total < 0 || s.Total > 100 {
				t.Errorf("total %d, want %d", s.Total, total)
			}
		})
	}
}

// What a reviewer reads in the PR for the demo's libbar group.
func TestScoreExplanation(t *testing.T) {
	g := group(vulnzero.SeverityCritical, 9.8, t0.Add(-9*day), []string{"CVE-2026-10002"}, "web-1", "web-2")
	s := remedy.ScoreGroup(g, remedy.ScoreInput{
		EPSS:        map[string]float64{"CVE-2026-10002": 0.42},
		Criticality: remedy.CriticalityFromInventory(vulnzero.Inventory{Hosts: []vulnzero.Host{{Name: "web-1", Labels: map[string]string{"criticality": "medium"}}, {Name: "web-2"}}}),
		Now:         t0,
	})
	var b strings.Builder
	for _, p := range s.Parts {
		fmt.Fprintf(&b, "%s|%d|%s\n", p.Name, p.Points, p.Why)
	}
	want := `CVSS|39|CVSS 9.8 (CVE-2026-10002)
EPSS|8|EPSS 0.42 (CVE-2026-10002)
KEV|0|no KEV data
host criticality|5|web-1 is medium
age|1|open 9 day(s), since 2026-02-20
fix available|5|libfoo 1.0.1 fixes it
`
	if b.String() != want || s.Total != 58 {
		t.Errorf("explanation (total %d):\n%s\nwant (total 58):\n%s", s.Total, b.String(), want)
	}
}
