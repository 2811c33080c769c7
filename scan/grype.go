package scan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"vulnzero.dev/vulnzero"
)

// FormatGrype is Grype's JSON report (`grype -o json`): one finding per
// match, i.e. per (artifact, vulnerability).
//
//	finding     Grype
//	Host        Options.Host, else source.target.userInput (the image as
//	            given) for images, else source.target (a path: directory
//	            and file scans write it as a plain string)
//	OS          distro.name + " " + distro.version ("redhat 8.7"); empty
//	            for directory scans
//	OSFamily    NormalizeOSFamily(distro.name)
//	Package     artifact.name: the binary package, the one the package
//	            manager upgrades (matchDetails' searchedBy.package is the
//	            source package)
//	Ecosystem   artifact.type: deb, rpm, apk as is; java-archive → jar,
//	            python → pip, go-module → gomod, rust-crate → cargo,
//	            php-composer → composer, dotnet → nuget, others as written
//	Installed   artifact.version
//	Fixed       fix.versions when fix.state is "fixed" (or empty, as older
//	            Grype writes it), chosen by pickFixed; an epoch "0:" the
//	            installed version does not carry is dropped ("0:0.7-21.el8"
//	            for installed "0.7-20.el8" is "0.7-21.el8"); "" for
//	            not-fixed, wont-fix and unknown
//	CVE         vulnerability.id when it is a CVE, else the first CVE among
//	            relatedVulnerabilities (an advisory matched for a CVE), else
//	            vulnerability.id (GHSA-…, ELSA-…)
//	RuleID      vulnerability.id
//	Title       the first sentence of the description (at most 160
//	            characters)
//	CVSS        v3 before v4 before v2; within each, NVD's entry for the CVE
//	            (a related vulnerability in an nvd namespace, or a cvss entry
//	            from nvd@nist.gov), then the matched record's, in file order
//
// Severity mapping:
//
//	Grype       vulnzero
//	Critical    critical
//	High        high
//	Medium      medium
//	Low         low
//	Negligible  unknown (there is no level below low, and Debian's
//	            "unimportant" issues should not pass a "min severity low"
//	            policy)
//	Unknown     unknown
//
// ignoredMatches (matches the user's Grype configuration ignored) are not
// imported. Grype writes "matches" before "source" and "distro", so the
// host and OS of a match are known only at the end of the report: matches
// are held until then (in a temporary file beyond a few thousand), and
// streamed directly when source and distro come first or Options.Host is
// set and distro comes first (a key-sorted report). The same artifact
// matched twice in a row (found at two paths) is reported once.
const FormatGrype Format = "grype"

var grypeParser = parser{
	format: FormatGrype,
	detect: detectGrype,
	parse:  parseGrype,
}

// detectGrype recognises a Grype report: an object with "matches" and a
// key only Grype writes beside it.
func detectGrype(head []byte) bool {
	b := trimSpace(head)
	if len(b) == 0 || b[0] != '{' || !bytes.Contains(b, []byte(`"matches"`)) {
		return false
	}
	for _, k := range []string{`"matchDetails"`, `"relatedVulnerabilities"`, `"descriptor"`, `"distro"`, `"source"`} {
		if bytes.Contains(b, []byte(k)) {
			return true
		}
	}
	return false
}

type grypeMatch struct {
	Vulnerability          grypeVuln   `json:"vulnerability"`
	RelatedVulnerabilities []grypeVuln `json:"relatedVulnerabilities"`
	MatchDetails           []struct {
		SearchedBy struct {
			Distro *grypeDistro `json:"distro"`
		} `json:"searchedBy"`
	} `json:"matchDetails"`
	Artifact struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Type    string `json:"type"`
	} `json:"artifact"`
}

type grypeVuln struct {
	ID          string      `json:"id"`
	Namespace   string      `json:"namespace"`
	Severity    string      `json:"severity"`
	Description string      `json:"description"`
	CVSS        []grypeCVSS `json:"cvss"`
	Fix         struct {
		Versions []string `json:"versions"`
		State    string   `json:"state"`
	} `json:"fix"`
}

type grypeCVSS struct {
	Source  string `json:"source"`
	Version string `json:"version"`
	Vector  string `json:"vector"`
	Metrics struct {
		BaseScore float64 `json:"baseScore"`
	} `json:"metrics"`
}

type grypeDistro struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Grype ≥ 0.40 writes "type"; matchDetails' searchedBy.distro has only
	// type and version.
	Type string `json:"type"`
}

// grypeWalker walks a Grype report with the Trivy walker's token helpers.
type grypeWalker struct {
	*trivyWalker
	target     string // source target: the image as given, or a path
	sawSource  bool
	distro     grypeDistro
	sawDistro  bool
	pending    findingSpool
	prev       string // package and id of the last match, to drop repeats
	matchIndex int
}

func parseGrype(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	var skipped int64
	if b, _ := r.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		r.Discard(3)
		skipped = 3
	}
	lt := newLineTracker(r, skipped)
	w := &grypeWalker{trivyWalker: newTrivyWalker(in, newFastDecoder(lt), lt, emit)}
	defer w.pending.close()
	return w.run()
}

func (w *grypeWalker) run() error {
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
		return w.errAt(start, "", "a Grype report is a JSON object; found %s", describe(t))
	}
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "matches":
			err = w.matches()
		case "source":
			err = w.source()
		case "distro":
			var d grypeDistro
			if _, err = w.decode(&d, key); err == nil {
				w.distro, w.sawDistro = d, true
			}
		default: // descriptor, ignoredMatches, …
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
	w.atTop = true
	_, after, err := w.token()
	switch {
	case err == nil:
		return w.errAt(after, "", "unexpected data after the end of the report")
	case !errors.Is(err, errNoReport):
		return err
	}
	host := w.host()
	if host == "" {
		if w.pending.len() > 0 {
			return w.errAt(end, "", "no host: the report has no source target (configure a host for this source)")
		}
		return nil
	}
	w.in.cover(host)
	return w.pending.drain(func(f *vulnzero.Finding) error {
		w.place(f)
		return w.emit(*f)
	})
}

func (w *grypeWalker) host() string {
	return firstNonEmpty(w.in.opts.Host, w.target)
}

// place sets what the end of the report says about every match: the host
// and the OS.
func (w *grypeWalker) place(f *vulnzero.Finding) {
	f.Host = w.host()
	if w.distro.Name != "" {
		f.OS = osName(w.distro.Name, w.distro.Version)
		f.OSFamily = NormalizeOSFamily(w.distro.Name)
	}
}

// source reads {"type": …, "target": …}; target is an object for images
// and a string for directories and files.
func (w *grypeWalker) source() error {
	var src struct {
		Type   string          `json:"type"`
		Target json.RawMessage `json:"target"`
	}
	start, err := w.decode(&src, "source")
	if err != nil {
		return err
	}
	w.sawSource = true
	raw := bytes.TrimSpace(src.Target)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return w.errAt(start, "source.target", "%v", err)
		}
		// Older Grype quotes the path inside the string: "\".\"".
		w.target = strings.Trim(s, `"`)
	case raw[0] == '{':
		var img struct {
			UserInput string `json:"userInput"`
			ImageID   string `json:"imageID"`
		}
		if err := json.Unmarshal(raw, &img); err != nil {
			return w.errAt(start, "source.target", "target is not an image description: %v", err)
		}
		w.target = firstNonEmpty(img.UserInput, img.ImageID)
	default:
		return w.errAt(start, "source.target", "target is neither a path nor an image description")
	}
	return nil
}

func (w *grypeWalker) matches() error {
	ok, _, err := w.openArray("matches")
	if err != nil || !ok {
		return err
	}
	// Known now: everything before the matches. Then matches stream.
	streaming := w.host() != "" && w.sawDistro
	if streaming {
		w.in.cover(w.host())
	}
	for ; w.dec.More(); w.matchIndex++ {
		w.push(fmt.Sprintf("matches[%d]", w.matchIndex))
		var m grypeMatch
		start, err := w.decode(&m, "")
		if err != nil {
			return err
		}
		f, keep, err := w.finding(&m, start)
		if err != nil {
			return err
		}
		w.pop()
		switch {
		case !keep:
		case streaming:
			w.place(&f)
			if err := w.emit(f); err != nil {
				return err
			}
		default:
			if err := w.pending.add(f); err != nil {
				return err
			}
		}
	}
	return w.close()
}

// finding makes the finding of one match; keep is false for a repeat of
// the previous match (the same artifact found at another path).
func (w *grypeWalker) finding(m *grypeMatch, start int64) (vulnzero.Finding, bool, error) {
	v, a := &m.Vulnerability, &m.Artifact
	switch {
	case v.ID == "":
		return vulnzero.Finding{}, false, w.errAt(start, "", "match has no vulnerability.id")
	case a.Name == "":
		return vulnzero.Finding{}, false, w.errAt(start, "", "match of %s has no artifact.name", v.ID)
	}
	cve := grypeCVE(m)
	key := a.Name + "\x00" + cve
	if key == w.prev {
		return vulnzero.Finding{}, false, nil
	}
	w.prev = key

	f := w.in.finding()
	f.Package = a.Name
	f.Installed = a.Version
	f.Ecosystem = grypeEcosystem(a.Type)
	f.CVE = cve
	f.RuleID = v.ID
	f.Severity = grypeSeverity(v.Severity)
	f.CVSS, f.CVSSVector = grypeScore(m, cve)
	f.Title = summary(firstNonEmpty(v.Description, relatedDescription(m, cve)))
	if st := strings.ToLower(v.Fix.State); st == "fixed" || st == "" {
		f.Fixed = dropZeroEpoch(pickFixed(strings.Join(v.Fix.Versions, ","), a.Version), a.Version)
	}
	// A match may say which distro it was found for when the report does
	// not (or not yet): place overwrites this with the report's distro.
	for _, md := range m.MatchDetails {
		if d := md.SearchedBy.Distro; d != nil && d.Type != "" {
			f.OS, f.OSFamily = osName(d.Type, d.Version), NormalizeOSFamily(d.Type)
			break
		}
	}
	return f, true, nil
}

// grypeCVE is the CVE a match is about: its id when that is a CVE, else a
// related CVE (Grype matches GHSA and distro advisories for CVEs).
func grypeCVE(m *grypeMatch) string {
	if isCVE(m.Vulnerability.ID) {
		return m.Vulnerability.ID
	}
	for _, r := range m.RelatedVulnerabilities {
		if isCVE(r.ID) {
			return r.ID
		}
	}
	return m.Vulnerability.ID
}

func isCVE(id string) bool { return strings.HasPrefix(strings.ToUpper(id), "CVE-") }

func relatedDescription(m *grypeMatch, cve string) string {
	for _, r := range m.RelatedVulnerabilities {
		if r.ID == cve && r.Description != "" {
			return r.Description
		}
	}
	return ""
}

// grypeScore picks one score: v3 before v4 before v2, NVD's entry for the
// CVE first, then the matched record's own, then related records' that are
// about the same CVE (itself, or an advisory without a CVE id).
func grypeScore(m *grypeMatch, cve string) (float64, string) {
	var nvd, own, other []grypeCVSS
	for _, r := range m.RelatedVulnerabilities {
		if isCVE(r.ID) && r.ID != cve {
			continue // a record about another CVE says nothing of this one
		}
		if strings.HasPrefix(r.Namespace, "nvd") {
			nvd = append(nvd, r.CVSS...)
		} else {
			other = append(other, r.CVSS...)
		}
	}
	for _, c := range m.Vulnerability.CVSS {
		if c.Source == "nvd@nist.gov" || strings.HasPrefix(m.Vulnerability.Namespace, "nvd") {
			nvd = append(nvd, c)
		} else {
			own = append(own, c)
		}
	}
	all := append(append(nvd, own...), other...)
	for _, major := range []string{"3", "4", "2"} {
		for _, c := range all {
			if strings.HasPrefix(c.Version, major) && c.Metrics.BaseScore > 0 {
				return c.Metrics.BaseScore, c.Vector
			}
		}
	}
	return 0, ""
}

func grypeSeverity(s string) vulnzero.Severity {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return vulnzero.SeverityCritical
	case "high":
		return vulnzero.SeverityHigh
	case "medium":
		return vulnzero.SeverityMedium
	case "low":
		return vulnzero.SeverityLow
	}
	return vulnzero.SeverityUnknown // negligible, unknown, none
}

// grypeEcosystem maps Grype's artifact types to the ecosystem names Trivy
// uses, so that the same package from either scanner reads the same.
func grypeEcosystem(typ string) string {
	switch t := strings.ToLower(typ); t {
	case "java-archive", "jenkins-plugin":
		return "jar"
	case "python":
		return "pip"
	case "go-module":
		return "gomod"
	case "rust-crate":
		return "cargo"
	case "php-composer":
		return "composer"
	case "dotnet":
		return "nuget"
	default:
		return t
	}
}

// dropZeroEpoch removes an explicit "0:" epoch from fixed when installed
// has none: rpm reads both the same, and the finding then shows two
// versions in one notation.
func dropZeroEpoch(fixed, installed string) string {
	if strings.HasPrefix(fixed, "0:") {
		if _, rest := splitEpoch(installed); rest == installed {
			return fixed[2:]
		}
	}
	return fixed
}

// summary is the first sentence of a description, at most 160 characters,
// for Finding.Title.
func summary(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if i := strings.Index(s, ". "); i >= 0 {
		s = s[:i+1]
	}
	if len(s) > 160 {
		cut := strings.LastIndexByte(s[:160], ' ')
		if cut < 80 {
			cut = 160
			for cut > 0 && !utf8.RuneStart(s[cut]) {
				cut--
			}
		}
		s = strings.TrimRight(s[:cut], " ,;:") + "…"
	}
	return s
}
