package scan

import (
	"math"
	"strings"

	"vulnzero.dev/vulnzero"
)

// OSV records carry CVSS as a vector, not a score: these compute the base
// score of a v3.x or v2 vector with the formulas of the FIRST
// specifications (v3.1 §7.1 and v2 §3.2.1). A v4 vector has no formula (its
// score comes from a lookup table of 270 macro vectors) and scores 0.

// cvssScore returns the base score of a CVSS v3.x or v2 vector, and false
// for anything else (a v4 vector, a malformed one).
func cvssScore(vector string) (float64, bool) {
	v := strings.TrimSpace(vector)
	switch {
	case strings.HasPrefix(v, "CVSS:3.0/"), strings.HasPrefix(v, "CVSS:3.1/"):
		return cvss3Score(v[len("CVSS:3.x/"):])
	case strings.HasPrefix(v, "CVSS:"):
		return 0, false
	}
	return cvss2Score(strings.TrimPrefix(v, "CVSS2#"))
}

// cvssMetrics splits "AV:N/AC:L/…" into a map; false when a part is not
// "name:value" or a name repeats.
func cvssMetrics(v string) (map[string]string, bool) {
	m := map[string]string{}
	for _, part := range strings.Split(strings.Trim(v, "()"), "/") {
		name, value, ok := strings.Cut(part, ":")
		if !ok || name == "" || value == "" {
			return nil, false
		}
		if _, dup := m[name]; dup {
			return nil, false
		}
		m[name] = value
	}
	return m, true
}

func cvss3Score(v string) (float64, bool) {
	m, ok := cvssMetrics(v)
	if !ok {
		return 0, false
	}
	weight := func(name string, w map[string]float64) (float64, bool) {
		x, ok := w[m[name]]
		return x, ok
	}
	av, ok1 := weight("AV", map[string]float64{"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2})
	ac, ok2 := weight("AC", map[string]float64{"L": 0.77, "H": 0.44})
	ui, ok3 := weight("UI", map[string]float64{"N": 0.85, "R": 0.62})
	cia := map[string]float64{"H": 0.56, "L": 0.22, "N": 0}
	c, ok4 := weight("C", cia)
	i, ok5 := weight("I", cia)
	a, ok6 := weight("A", cia)
	scope := m["S"]
	pr, ok7 := weight("PR", map[string]float64{"N": 0.85, "L": 0.62, "H": 0.27})
	if scope == "C" {
		pr, ok7 = weight("PR", map[string]float64{"N": 0.85, "L": 0.68, "H": 0.5})
	}
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 || (scope != "U" && scope != "C") {
		return 0, false
	}
	iss := 1 - (1-c)*(1-i)*(1-a)
	var impact float64
	if scope == "U" {
		impact = 6.42 * iss
	} else {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	if impact <= 0 {
		return 0, true
	}
	exploitability := 8.22 * av * ac * pr * ui
	if scope == "U" {
		return roundUp(math.Min(impact+exploitability, 10)), true
	}
	return roundUp(math.Min(1.08*(impact+exploitability), 10)), true
}

// roundUp is CVSS v3.1's Roundup: the smallest number with one decimal
// that is not below x, computed in integers to avoid float surprises.
func roundUp(x float64) float64 {
	n := int64(math.Round(x * 100000))
	if n%10000 == 0 {
		return float64(n) / 100000
	}
	return float64(n/10000+1) / 10
}

func cvss2Score(v string) (float64, bool) {
	m, ok := cvssMetrics(v)
	if !ok {
		return 0, false
	}
	weight := func(name string, w map[string]float64) (float64, bool) {
		x, ok := w[m[name]]
		return x, ok
	}
	av, ok1 := weight("AV", map[string]float64{"L": 0.395, "A": 0.646, "N": 1})
	ac, ok2 := weight("AC", map[string]float64{"H": 0.35, "M": 0.61, "L": 0.71})
	au, ok3 := weight("Au", map[string]float64{"M": 0.45, "S": 0.56, "N": 0.704})
	cia := map[string]float64{"N": 0, "P": 0.275, "C": 0.660}
	c, ok4 := weight("C", cia)
	i, ok5 := weight("I", cia)
	a, ok6 := weight("A", cia)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return 0, false
	}
	impact := 10.41 * (1 - (1-c)*(1-i)*(1-a))
	if impact == 0 {
		return 0, true
	}
	exploitability := 20 * av * ac * au
	return math.Round(((0.6*impact)+(0.4*exploitability)-1.5)*1.176*10) / 10, true
}

// severityOfScore is the CVSS v3 qualitative rating of a base score; 0 is
// unknown (the rating's "None").
func severityOfScore(score float64) vulnzero.Severity {
	switch {
	case score >= 9:
		return vulnzero.SeverityCritical
	case score >= 7:
		return vulnzero.SeverityHigh
	case score >= 4:
		return vulnzero.SeverityMedium
	case score > 0:
		return vulnzero.SeverityLow
	}
	return vulnzero.SeverityUnknown
}
