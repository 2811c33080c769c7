package remedy

import (
	"fmt"
	"math"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

// Score is a group's priority from 0 to 100 with the parts that make it up,
// so a reviewer can see why one patch outranks another.
//
//	part              points  from
//	CVSS              0–40    highest CVSS in the group × 4; without any CVSS,
//	                          the severity's lower bound (critical 9.0, high 7.0,
//	                          medium 4.0, low 0.1)
//	EPSS              0–20    highest EPSS probability of its CVEs × 20
//	KEV               0/20    20 when any CVE is in CISA's Known Exploited list
//	host criticality  0–10    the most critical host's "criticality" label:
//	                          high (or critical) 10, medium 5, low 0; no label 0
//	age               0–5     1 point per full week since the oldest finding
//	                          was first seen, up to 5
//	fix available     5       the group has a fixed version (every group does)
//
// The parts sum to at most 100. Points are whole numbers, rounded half up.
type Score struct {
	Total int
	Parts []ScorePart
}

// ScorePart is one line of the score's explanation.
type ScorePart struct {
	Name   string
	Points int
	Why    string
}

// ScoreInput is what scoring knows beyond the findings. Every field is
// optional: a missing feed scores zero for its part and says so.
type ScoreInput struct {
	EPSS        map[string]float64 // CVE → exploitation probability, 0–1 (FIRST EPSS)
	KEV         map[string]bool    // CVE → listed in CISA KEV
	Criticality map[string]string  // host → low | medium | high
	Now         time.Time          // for age; zero scores age 0
}

// Score part names, as shown in PRs.
const (
	PartCVSS        = "CVSS"
	PartEPSS        = "EPSS"
	PartKEV         = "KEV"
	PartCriticality = "host criticality"
	PartAge         = "age"
	PartFix         = "fix available"
)

// CriticalityLabel is the host label ScoreInput.Criticality is read from.
const CriticalityLabel = "criticality"

// CriticalityFromInventory reads the "criticality" label of every host.
func CriticalityFromInventory(inv vulnzero.Inventory) map[string]string {
	m := map[string]string{}
	for _, h := range inv.Hosts {
		if v := h.Labels[CriticalityLabel]; v != "" {
			m[h.Name] = v
		}
	}
	return m
}

// ScoreGroup scores one group. It is pure: the same group and input always
// give the same score and the same explanation.
func ScoreGroup(g Group, in ScoreInput) Score {
	parts := []ScorePart{
		cvssPart(g),
		epssPart(g, in.EPSS),
		kevPart(g, in.KEV),
		criticalityPart(g, in.Criticality),
		agePart(g, in.Now),
		fixPart(g),
	}
	total := 0
	for _, p := range parts {
		total += p.Points
	}
	return Score{Total: min(max(total, 0), 100), Parts: parts}
}

// severityFloor is the lowest CVSS v3 score of each severity band, used when
// a scanner gives a severity but no score.
var severityFloor = map[vulnzero.Severity]float64{
	vulnzero.SeverityCritical: 9.0,
	vulnzero.SeverityHigh:     7.0,
	vulnzero.SeverityMedium:   4.0,
	vulnzero.SeverityLow:      0.1,
}

func cvssPart(g Group) ScorePart {
	var best vulnzero.Finding
	for _, f := range g.Findings {
		if f.CVSS > best.CVSS {
			best = f
		}
	}
	if best.CVSS > 0 {
		v := min(best.CVSS, 10)
		return ScorePart{PartCVSS, round(v * 4), fmt.Sprintf("CVSS %.1f (%s)", v, best.CVE)}
	}
	if floor, ok := severityFloor[g.MaxSeverity]; ok {
		return ScorePart{PartCVSS, round(floor * 4), fmt.Sprintf("no CVSS score; severity %s counts as %.1f", g.MaxSeverity, floor)}
	}
	return ScorePart{PartCVSS, 0, "no CVSS score and no severity"}
}

func epssPart(g Group, epss map[string]float64) ScorePart {
	if len(epss) == 0 {
		return ScorePart{PartEPSS, 0, "no EPSS data"}
	}
	bestCVE, best, found := "", 0.0, false
	for _, cve := range g.CVEs {
		p, ok := epss[cve]
		if !ok {
			continue
		}
		p = min(max(p, 0), 1)
		if !found || p > best {
			bestCVE, best, found = cve, p, true
		}
	}
	if !found {
		return ScorePart{PartEPSS, 0, "no EPSS score for " + strings.Join(g.CVEs, ", ")}
	}
	return ScorePart{PartEPSS, round(best * 20), fmt.Sprintf("EPSS %.2f (%s)", best, bestCVE)}
}

func kevPart(g Group, kev map[string]bool) ScorePart {
	var listed []string
	for _, cve := range g.CVEs {
		if kev[cve] {
			listed = append(listed, cve)
		}
	}
	switch {
	case len(listed) > 0:
		return ScorePart{PartKEV, 20, strings.Join(listed, ", ") + " in CISA KEV"}
	case len(kev) == 0:
		return ScorePart{PartKEV, 0, "no KEV data"}
	}
	return ScorePart{PartKEV, 0, "not in CISA KEV"}
}

func criticalityPart(g Group, crit map[string]string) ScorePart {
	bestHost, bestLevel, best := "", "", -1
	var unknown []string
	for _, h := range g.Hosts {
		level := strings.ToLower(strings.TrimSpace(crit[h]))
		var pts int
		switch level {
		case "high", "critical":
			pts = 10
		case "medium":
			pts = 5
		case "low":
			pts = 0
		case "":
			continue
		default:
			unknown = append(unknown, fmt.Sprintf("%s=%q", h, crit[h]))
			continue
		}
		if pts > best {
			bestHost, bestLevel, best = h, level, pts
		}
	}
	why := ""
	switch {
	case best >= 0:
		why = fmt.Sprintf("%s is %s", bestHost, bestLevel)
	default:
		why = "no host has a criticality label"
	}
	if len(unknown) > 0 {
		why += "; ignored unknown levels " + strings.Join(unknown, ", ")
	}
	return ScorePart{PartCriticality, max(best, 0), why}
}

func agePart(g Group, now time.Time) ScorePart {
	var oldest time.Time
	for _, f := range g.Findings {
		if !f.FirstSeen.IsZero() && (oldest.IsZero() || f.FirstSeen.Before(oldest)) {
			oldest = f.FirstSeen
		}
	}
	if now.IsZero() || oldest.IsZero() {
		return ScorePart{PartAge, 0, "age unknown"}
	}
	days := int(now.Sub(oldest) / (24 * time.Hour))
	days = max(days, 0)
	return ScorePart{PartAge, min(days/7, 5), fmt.Sprintf("open %d day(s), since %s", days, oldest.UTC().Format(time.DateOnly))}
}

func fixPart(g Group) ScorePart {
	if g.Key.Fixed == "" {
		return ScorePart{PartFix, 0, "no fixed version known"}
	}
	return ScorePart{PartFix, 5, fmt.Sprintf("%s %s fixes it", g.Key.Package, g.Key.Fixed)}
}

func round(v float64) int { return int(math.Floor(v + 0.5)) }
