package scan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"vulnzero.dev/vulnzero"
)

// FormatOSV is OSV-Scanner's JSON output (`osv-scanner --format json`):
// results[] per scanned source (a lockfile, an SBOM, a directory of OS
// packages, a git repository), each with its packages and their OSV
// records. One finding per (package, group): osv-scanner's groups[] put
// the records that are aliases of each other (GHSA-…, PYSEC-…, CVE-…) in
// one group, and a group is one vulnerability. Without groups (older
// versions) records that share an id or alias are grouped here.
//
//	finding     OSV-Scanner
//	Host        Options.Host, else the result's source.path (a lockfile
//	            names no machine)
//	OS          for OS ecosystems only: "Debian:10" → "debian 10",
//	            "Ubuntu:Pro:22.04:LTS" → "ubuntu 22.04", "Alpine:v3.18" →
//	            "alpine 3.18" (OSFamily and Ecosystem deb/rpm/apk follow)
//	Ecosystem   language ecosystems lowercased, with Trivy's names where they
//	            differ: Go → gomod, PyPI → pip, crates.io → cargo,
//	            Packagist → composer, RubyGems → gem; a git source is "git"
//	Package     package.name; for a git source (no name, only a commit) the
//	            repository URL of the affected ranges, else source.path
//	Installed   package.version (the commit for git sources)
//	Fixed       the "fixed" events of the records' affected ranges for this
//	            package and ecosystem, chosen by pickFixed; "" when a range
//	            has only introduced/last_affected (no fix)
//	CVE         the group's CVE (the lowest, when aliases name several), else
//	            its GHSA id, else its first id
//	RuleID      the group's first id
//	Title       the first record's summary, else the first sentence of its
//	            details
//	CVSS        the highest base score of the group's CVSS_V3 (else
//	            CVSS_V2) vectors, computed from the vector (OSV gives no
//	            number); groups[].max_severity when there is no vector
//
// Severity: the highest textual severity of the group's records
// (database_specific.severity, or a severity entry of type Ubuntu), mapped
// as below; else the CVSS v3 rating of the score (9–10 critical, 7–8.9
// high, 4–6.9 medium, 0.1–3.9 low); else unknown.
//
//	OSV text            vulnzero
//	CRITICAL            critical
//	HIGH                high
//	MODERATE, MEDIUM    medium
//	LOW, NEGLIGIBLE     low
//	anything else       (falls through to the score)
const FormatOSV Format = "osv-scanner"

var osvParser = parser{
	format: FormatOSV,
	detect: detectOSV,
	parse:  parseOSV,
}

// detectOSV recognises OSV-Scanner output: an object whose "results"
// (lowercase, unlike Trivy's) hold sources and packages, or an empty
// results list.
func detectOSV(head []byte) bool {
	b := trimSpace(head)
	if len(b) == 0 || b[0] != '{' || !bytes.Contains(b, []byte(`"results"`)) {
		return false
	}
	if bytes.Contains(b, []byte(`"packages"`)) || bytes.Contains(b, []byte(`"experimental_config"`)) {
		return true
	}
	// {"results": []} is what osv-scanner writes when it finds nothing.
	compact := bytes.Join(bytes.Fields(b), nil)
	return bytes.HasPrefix(compact, []byte(`{"results":[]`))
}

type osvPackage struct {
	Package struct {
		Name      string `json:"name"`
		Version   string `json:"version"`
		Ecosystem string `json:"ecosystem"`
		Commit    string `json:"commit"`
	} `json:"package"`
	Vulnerabilities []osvVuln  `json:"vulnerabilities"`
	Groups          []osvGroup `json:"groups"`
}

type osvGroup struct {
	IDs         []string        `json:"ids"`
	Aliases     []string        `json:"aliases"`
	MaxSeverity json.RawMessage `json:"max_severity"`
}

type osvVuln struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases"`
	Summary  string   `json:"summary"`
	Details  string   `json:"details"`
	Severity []struct {
		Type  string `json:"type"`
		Score string `json:"score"`
	} `json:"severity"`
	Affected []struct {
		Package struct {
			Ecosystem string `json:"ecosystem"`
			Name      string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Type   string              `json:"type"`
			Repo   string              `json:"repo"`
			Events []map[string]string `json:"events"`
		} `json:"ranges"`
	} `json:"affected"`
	DatabaseSpecific struct {
		Severity json.RawMessage `json:"severity"`
	} `json:"database_specific"`
}

type osvWalker struct {
	*trivyWalker
	pending findingSpool
}

func parseOSV(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	var skipped int64
	if b, _ := r.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		r.Discard(3)
		skipped = 3
	}
	lt := newLineTracker(r, skipped)
	w := &osvWalker{trivyWalker: newTrivyWalker(in, newFastDecoder(lt), lt, emit)}
	defer w.pending.close()
	return w.run()
}

func (w *osvWalker) run() error {
	w.atTop = true
	t, start, err := w.token()
	w.atTop = false
	if errors.Is(err, errNoReport) {
		return nil
	}
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return w.errAt(start, "", "an OSV-Scanner report is a JSON object; found %s", describe(t))
	}
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		if key == "results" {
			err = w.results()
		} else {
			err = w.skip() // experimental_config, …
		}
		if err != nil {
			return err
		}
	}
	if err := w.close(); err != nil {
		return err
	}
	w.atTop = true
	_, after, err := w.token()
	switch {
	case err == nil:
		return w.errAt(after, "", "unexpected data after the end of the report")
	case !errors.Is(err, errNoReport):
		return err
	}
	return nil
}

func (w *osvWalker) results() error {
	ok, _, err := w.openArray("results")
	if err != nil || !ok {
		return err
	}
	for i := 0; w.dec.More(); i++ {
		w.push(fmt.Sprintf("results[%d]", i))
		if err := w.openObject(); err != nil {
			return err
		}
		if err := w.result(); err != nil {
			return err
		}
		w.pop()
	}
	return w.close()
}

// result walks one source's object. osv-scanner writes source before
// packages; a key-sorted file has packages first, and they wait for the
// host in the spool.
func (w *osvWalker) result() error {
	var path string
	sawSource := false
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "source":
			var src struct {
				Path string `json:"path"`
			}
			if _, err := w.decode(&src, key); err != nil {
				return err
			}
			path, sawSource = src.Path, true
		case "packages":
			err = w.packages(firstNonEmpty(w.in.opts.Host, path), sawSource || w.in.opts.Host != "", path)
		default:
			err = w.skip()
		}
		if err != nil {
			return err
		}
	}
	end := w.lt.skipSeparators(w.dec.InputOffset())
	if err := w.close(); err != nil {
		return err
	}
	host := firstNonEmpty(w.in.opts.Host, path)
	if w.pending.len() == 0 {
		if host != "" {
			w.in.cover(host)
		}
		return nil
	}
	if host == "" {
		return w.errAt(end, "", "no host: the result has no source.path (configure a host for this source)")
	}
	w.in.cover(host)
	return w.pending.drain(func(f *vulnzero.Finding) error {
		f.Host = host
		if f.Package == "" {
			f.Package = path // a git source without a repository URL
		}
		return w.emit(*f)
	})
}

// packages walks a result's packages; host is known when known is set,
// else findings wait in the spool for the result's end.
func (w *osvWalker) packages(host string, known bool, path string) error {
	ok, _, err := w.openArray("packages")
	if err != nil || !ok {
		return err
	}
	if known && host != "" {
		w.in.cover(host)
	}
	for i := 0; w.dec.More(); i++ {
		w.push(fmt.Sprintf("packages[%d]", i))
		var p osvPackage
		start, err := w.decode(&p, "")
		if err != nil {
			return err
		}
		fs, err := w.findings(&p, start)
		if err != nil {
			return err
		}
		for _, f := range fs {
			if !known || host == "" {
				if err := w.pending.add(f); err != nil {
					return err
				}
				continue
			}
			f.Host = host
			if f.Package == "" {
				f.Package = path
			}
			if err := w.emit(f); err != nil {
				return err
			}
		}
		w.pop()
	}
	return w.close()
}

// findings makes one finding per group of a package's records.
func (w *osvWalker) findings(p *osvPackage, start int64) ([]vulnzero.Finding, error) {
	pkg := p.Package
	if pkg.Name == "" && pkg.Commit == "" {
		return nil, w.errAt(start, "package", "package has neither a name nor a commit")
	}
	byID := map[string]*osvVuln{}
	for i := range p.Vulnerabilities {
		v := &p.Vulnerabilities[i]
		if v.ID == "" {
			return nil, w.errAt(start, fmt.Sprintf("vulnerabilities[%d]", i), "vulnerability has no id")
		}
		byID[v.ID] = v
	}
	groups := p.Groups
	if len(groups) == 0 {
		groups = osvGroups(p.Vulnerabilities)
	}

	base := w.in.finding()
	base.Installed = pkg.Version
	base.Package = pkg.Name
	if pkg.Commit != "" && pkg.Name == "" {
		base.Installed = pkg.Commit
		base.Ecosystem = "git"
		base.Package = osvRepo(p.Vulnerabilities) // "" → the source path, set by the caller
	} else {
		family, version, ok := osvOS(pkg.Ecosystem)
		if ok {
			base.OS = osName(family, version)
			base.OSFamily = NormalizeOSFamily(family)
			base.Ecosystem = osEcosystem(family)
		} else {
			base.Ecosystem = osvLangEcosystem(pkg.Ecosystem)
		}
	}

	var out []vulnzero.Finding
	seen := map[string]bool{}
	for gi, g := range groups {
		var vulns []*osvVuln
		ids := append(append([]string(nil), g.IDs...), g.Aliases...)
		for _, id := range g.IDs {
			if v := byID[id]; v != nil {
				vulns = append(vulns, v)
				ids = append(ids, v.Aliases...)
			}
		}
		if len(g.IDs) == 0 {
			return nil, w.errAt(start, fmt.Sprintf("groups[%d]", gi), "group has no ids")
		}
		f := base
		f.CVE = osvPrimaryID(ids, g.IDs[0])
		if seen[f.CVE] {
			continue
		}
		seen[f.CVE] = true
		f.RuleID = g.IDs[0]
		var fixed []string
		for _, v := range vulns {
			fixed = append(fixed, osvFixed(v, pkg.Name, pkg.Ecosystem, base.Ecosystem == "git")...)
			if f.Title == "" {
				f.Title = summary(firstNonEmpty(v.Summary, v.Details))
			}
		}
		if base.Ecosystem == "git" {
			if len(fixed) > 0 {
				f.Fixed = fixed[0] // commits do not order; any fixing commit will do
			}
		} else {
			f.Fixed = pickFixed(strings.Join(fixed, ","), pkg.Version)
		}
		f.Severity, f.CVSS, f.CVSSVector = osvSeverity(vulns, g.MaxSeverity)
		out = append(out, f)
	}
	return out, nil
}

// osvGroups groups records that share an id or alias, for reports written
// before osv-scanner had groups.
func osvGroups(vulns []osvVuln) []osvGroup {
	var groups []osvGroup
	member := map[string]int{} // id or alias → group index
	for _, v := range vulns {
		gi := -1
		for _, id := range append([]string{v.ID}, v.Aliases...) {
			if g, ok := member[id]; ok {
				gi = g
				break
			}
		}
		if gi < 0 {
			gi = len(groups)
			groups = append(groups, osvGroup{})
		}
		groups[gi].IDs = append(groups[gi].IDs, v.ID)
		for _, id := range append([]string{v.ID}, v.Aliases...) {
			member[id] = gi
		}
		groups[gi].Aliases = append(groups[gi].Aliases, v.Aliases...)
	}
	return groups
}

// osvPrimaryID chooses the id a group is known by: a CVE (the lowest, so
// the choice is stable), else a GHSA id, else fallback.
func osvPrimaryID(ids []string, fallback string) string {
	var cves, ghsas []string
	for _, id := range ids {
		switch {
		case isCVE(id):
			cves = append(cves, id)
		case strings.HasPrefix(id, "GHSA-"):
			ghsas = append(ghsas, id)
		}
	}
	for _, set := range [][]string{cves, ghsas} {
		if len(set) > 0 {
			sort.Strings(set)
			return set[0]
		}
	}
	return fallback
}

// osvFixed lists the fixed versions a record gives for the package: the
// "fixed" events of ranges whose package and ecosystem match (GIT ranges
// only for git sources, whose versions are commits).
func osvFixed(v *osvVuln, name, ecosystem string, git bool) []string {
	var out []string
	match := func(aeco, aname string) bool {
		if git {
			return true
		}
		if aname != name {
			return false
		}
		// "Debian:10" matches "Debian:10" exactly, "Debian" any release.
		return aeco == ecosystem || aeco == "" || !strings.Contains(aeco, ":") && strings.HasPrefix(ecosystem, aeco+":")
	}
	for _, a := range v.Affected {
		if !match(a.Package.Ecosystem, a.Package.Name) {
			continue
		}
		for _, r := range a.Ranges {
			if (strings.EqualFold(r.Type, "GIT")) != git {
				continue
			}
			for _, e := range r.Events {
				if fx := strings.TrimSpace(e["fixed"]); fx != "" {
					out = append(out, fx)
				}
			}
		}
	}
	return out
}

// osvRepo is the repository a git source's records are about.
func osvRepo(vulns []osvVuln) string {
	for _, v := range vulns {
		for _, a := range v.Affected {
			for _, r := range a.Ranges {
				if r.Repo != "" {
					repo := strings.TrimSuffix(r.Repo, ".git")
					if i := strings.Index(repo, "://"); i >= 0 {
						repo = repo[i+3:]
					}
					return repo
				}
			}
		}
	}
	return ""
}

// osvSeverity takes the worst of a group's records.
func osvSeverity(vulns []*osvVuln, maxSeverity json.RawMessage) (vulnzero.Severity, float64, string) {
	text := vulnzero.SeverityUnknown
	var score, score2, score4 float64
	var vector, vector2, vector4 string
	for _, v := range vulns {
		if s, ok := osvTextSeverity(v.DatabaseSpecific.Severity); ok && s > text {
			text = s
		}
		for _, sv := range v.Severity {
			switch strings.ToUpper(sv.Type) {
			case "CVSS_V3":
				if sc, ok := cvssScore(sv.Score); ok && (sc > score || vector == "") {
					score, vector = sc, sv.Score
				}
			case "CVSS_V2":
				if sc, ok := cvssScore(sv.Score); ok && (sc > score2 || vector2 == "") {
					score2, vector2 = sc, sv.Score
				}
			case "CVSS_V4":
				if vector4 == "" {
					vector4 = sv.Score
				}
			case "UBUNTU":
				if s, ok := osvTextSeverity(json.RawMessage(strconv.Quote(sv.Score))); ok && s > text {
					text = s
				}
			}
		}
	}
	switch {
	case vector != "":
	case vector2 != "":
		score, vector = score2, vector2
	case vector4 != "":
		score, vector = score4, vector4
	}
	if score == 0 {
		// osv-scanner ≥ 1.9 gives the group's highest score as a string.
		var s string
		if json.Unmarshal(maxSeverity, &s) == nil {
			if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f <= 10 {
				score = f
			}
		}
	}
	if text != vulnzero.SeverityUnknown {
		return text, score, vector
	}
	return severityOfScore(score), score, vector
}

// osvTextSeverity reads a textual severity (GHSA's LOW/MODERATE/HIGH/
// CRITICAL, Ubuntu's negligible/low/medium/high/critical); false for
// anything else, which leaves the severity to the score.
func osvTextSeverity(raw json.RawMessage) (vulnzero.Severity, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "CRITICAL":
		return vulnzero.SeverityCritical, true
	case "HIGH":
		return vulnzero.SeverityHigh, true
	case "MODERATE", "MEDIUM":
		return vulnzero.SeverityMedium, true
	case "LOW", "NEGLIGIBLE":
		return vulnzero.SeverityLow, true
	}
	return 0, false
}

// osvOS reads an OS ecosystem ("Debian:10", "Ubuntu:Pro:18.04:LTS",
// "Alpine:v3.18", "Rocky Linux:9", "openSUSE:Leap 15.5"): the family word
// and the release. ok is false for language ecosystems.
func osvOS(ecosystem string) (family, version string, ok bool) {
	name, rest, _ := strings.Cut(ecosystem, ":")
	fields := strings.Fields(name)
	if len(fields) == 0 || osEcosystem(fields[0]) == "" {
		return "", "", false
	}
	family = strings.ToLower(fields[0])
	for _, part := range strings.FieldsFunc(rest, func(r rune) bool { return r == ':' || r == ' ' }) {
		part = strings.TrimPrefix(part, "v")
		if part != "" && part[0] >= '0' && part[0] <= '9' {
			version = part
			break
		}
	}
	return family, version, true
}

func osvLangEcosystem(eco string) string {
	switch eco {
	case "Go":
		return "gomod"
	case "PyPI":
		return "pip"
	case "crates.io":
		return "cargo"
	case "Packagist":
		return "composer"
	case "RubyGems":
		return "gem"
	}
	return strings.ToLower(eco)
}
