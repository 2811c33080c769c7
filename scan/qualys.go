package scan

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

// FormatQualys is Qualys VMDR output: the host list detection API
// (joined with the KnowledgeBase), the ASSET_DATA_REPORT and SCAN report
// XML, and the detection, VMDR and PCI CSV exports.
const FormatQualys Format = "qualys"

var qualysParser = parser{
	format: FormatQualys,
	detect: detectQualys,
	parse:  parseQualys,
}

// qualysRoots are the root elements of the Qualys XML documents VulnZero
// knows (a KnowledgeBase and an API error are recognised so that feeding
// one gives a clear error).
var qualysRoots = []string{
	"HOST_LIST_VM_DETECTION_OUTPUT",
	"ASSET_DATA_REPORT",
	"KNOWLEDGE_BASE_VULN_LIST_OUTPUT",
	"SIMPLE_RETURN",
}

func detectQualys(head []byte) bool {
	b := trimSpace(head)
	if len(b) == 0 {
		return false
	}
	if b[0] == '<' {
		for _, r := range qualysRoots {
			if bytes.Contains(b, []byte("<"+r)) {
				return true
			}
		}
		// The scan report's root is a bare <SCAN value="scan/…">.
		return bytes.Contains(b, []byte("scan-1.dtd")) || bytes.Contains(b, []byte(`<SCAN value="scan/`))
	}
	_, ok := qualysCSVHeaderLine(b)
	return ok
}

func parseQualys(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	head, _ := r.Peek(HeadSize)
	b := trimSpace(trimBOM(head))
	if len(b) == 0 {
		return nil
	}
	if b[0] == '<' {
		return parseQualysXML(in, r, emit)
	}
	return parseQualysCSV(in, r, emit)
}

// --- KnowledgeBase -------------------------------------------------------------

// QualysKB is what VulnZero needs from the Qualys KnowledgeBase: for each
// QID its title, CVEs and CVSS score. Host list detection output names only
// QIDs, so it cannot be imported without one (Options.QualysKB); a QID the
// KB does not hold is an error, never a finding that is only a number.
//
// Load one with LoadQualysKB from the XML of
// /api/2.0/fo/knowledge_base/vuln/?action=list (details=All or Basic; add
// show_cvss or the CVSS blocks are left out). It is a map, not a stream:
// the KB is bounded (a full one is a few hundred thousand QIDs), and
// detections reference it in any order.
type QualysKB struct {
	vulns map[int]QualysVuln
}

// QualysVuln is one KnowledgeBase entry.
type QualysVuln struct {
	QID        int
	Title      string
	Type       string // VULN_TYPE: Vulnerability, Potential Vulnerability, Information Gathered, …
	Severity   int    // SEVERITY_LEVEL, 1–5
	CVEs       []string
	CVSS       float64 // CVSS v3 base score when the KB has one, else v2
	CVSSVector string
}

// NewQualysKB returns an empty KnowledgeBase to Load pages into.
func NewQualysKB() *QualysKB { return &QualysKB{vulns: map[int]QualysVuln{}} }

// LoadQualysKB reads one KnowledgeBase XML response.
func LoadQualysKB(name string, r io.Reader) (*QualysKB, error) {
	kb := NewQualysKB()
	if _, err := kb.Load(name, r); err != nil {
		return nil, err
	}
	return kb, nil
}

// LoadQualysKBFile reads a KnowledgeBase XML file.
func LoadQualysKBFile(path string) (*QualysKB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open qualys knowledgebase: %w", err)
	}
	defer f.Close()
	return LoadQualysKB(path, f)
}

// Add records one entry, replacing an earlier one for the same QID.
func (kb *QualysKB) Add(v QualysVuln) { kb.vulns[v.QID] = v }

// Lookup returns the entry of a QID.
func (kb *QualysKB) Lookup(qid int) (QualysVuln, bool) {
	if kb == nil {
		return QualysVuln{}, false
	}
	v, ok := kb.vulns[qid]
	return v, ok
}

// Len is the number of QIDs known.
func (kb *QualysKB) Len() int {
	if kb == nil {
		return 0
	}
	return len(kb.vulns)
}

type qualysKBVuln struct {
	QID      string   `xml:"QID"`
	VulnType string   `xml:"VULN_TYPE"`
	Severity string   `xml:"SEVERITY_LEVEL"`
	Title    string   `xml:"TITLE"`
	CVEs     []string `xml:"CVE_LIST>CVE>ID"`
	CVSS     struct {
		Base   string `xml:"BASE"`
		Vector string `xml:"VECTOR_STRING"`
	} `xml:"CVSS"`
	CVSS3 struct {
		Base   string `xml:"BASE"`
		Vector string `xml:"VECTOR_STRING"`
	} `xml:"CVSS_V3"`
}

// Load adds the entries of one KnowledgeBase XML response (one page: the
// API pages long lists, and the returned Page's Next is the URL of the
// next one). Bad input is a *vulnzero.PositionError naming name.
func (kb *QualysKB) Load(name string, r io.Reader) (Page, error) {
	in := newInput(name, FormatQualys, Options{})
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	w := newXMLWalker(in, br)
	page := Page{Total: -1}
	root, err := w.root()
	if errors.Is(err, errNoReport) {
		return page, w.errf("no root element: the KnowledgeBase is empty or truncated")
	}
	if err != nil {
		return page, err
	}
	switch root.Name.Local {
	case "KNOWLEDGE_BASE_VULN_LIST_OUTPUT":
	case "SIMPLE_RETURN":
		return page, qualysSimpleReturn(w)
	default:
		return page, w.errf("root element <%s> is not KNOWLEDGE_BASE_VULN_LIST_OUTPUT: not a Qualys KnowledgeBase", root.Name.Local)
	}
	w.path = append(w.path, xmlStep{name: root.Name.Local})
	err = w.each(func(se xml.StartElement) error {
		if se.Name.Local != "RESPONSE" {
			return w.skip()
		}
		return w.each(func(se xml.StartElement) error {
			switch se.Name.Local {
			case "VULN_LIST":
				return w.each(func(se xml.StartElement) error {
					if se.Name.Local != "VULN" {
						return w.skip()
					}
					line, col := w.dec.InputPos()
					var v qualysKBVuln
					if err := w.decode(&v, &se); err != nil {
						return err
					}
					page.Count++
					e, err := v.entry()
					if err != nil {
						return w.errAt(line, col, "%v", err)
					}
					kb.Add(e)
					return nil
				})
			case "WARNING":
				next, err := qualysWarning(w, &se)
				page.Next = next
				return err
			}
			return w.skip()
		})
	})
	if err != nil {
		return page, err
	}
	w.path = w.path[:0]
	return page, w.end()
}

func (v qualysKBVuln) entry() (QualysVuln, error) {
	qid, err := strconv.Atoi(strings.TrimSpace(v.QID))
	if err != nil || qid <= 0 {
		return QualysVuln{}, fmt.Errorf("VULN QID %q is not a positive number", v.QID)
	}
	e := QualysVuln{QID: qid, Title: strings.TrimSpace(v.Title), Type: strings.TrimSpace(v.VulnType)}
	if s := strings.TrimSpace(v.Severity); s != "" {
		if e.Severity, err = strconv.Atoi(s); err != nil || e.Severity < 1 || e.Severity > 5 {
			return e, fmt.Errorf("QID %d: SEVERITY_LEVEL %q is not 1–5", qid, v.Severity)
		}
	}
	for _, c := range v.CVEs {
		if c = strings.TrimSpace(c); c != "" {
			e.CVEs = append(e.CVEs, c)
		}
	}
	for _, c := range []struct{ base, vec string }{{v.CVSS3.Base, v.CVSS3.Vector}, {v.CVSS.Base, v.CVSS.Vector}} {
		score, vec, err := qualysScore(c.base)
		if err != nil {
			return e, fmt.Errorf("QID %d: %w", qid, err)
		}
		if score > 0 {
			e.CVSS, e.CVSSVector = score, firstNonEmpty(strings.TrimSpace(c.vec), vec)
			break
		}
	}
	return e, nil
}

// qualysScore reads a Qualys CVSS cell: "7.5", "9.0 (AV:N/AC:H/…)", or
// empty / "-" for none.
func qualysScore(s string) (float64, string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "-" || strings.EqualFold(s, "n/a") || strings.EqualFold(s, "'-") {
		return 0, "", nil
	}
	num, rest, _ := strings.Cut(s, " ")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || v > 10 {
		return 0, "", fmt.Errorf("CVSS %q is not a score from 0 to 10", s)
	}
	vec := strings.TrimSpace(rest)
	vec = strings.TrimSuffix(strings.TrimPrefix(vec, "("), ")")
	return v, vec, nil
}

// --- findings ---------------------------------------------------------------------

// qualysHit is one detection of a QID on a host, from any Qualys format.
type qualysHit struct {
	host, os  string
	qid       int
	title     string
	severity  int // 1–5, 0 unknown
	cves      []string
	cvss      float64
	vector    string
	results   string // the detection's RESULTS text, which may list packages
	firstSeen time.Time
	fixed     bool      // Qualys says it is gone
	fixedAt   time.Time // when, if it said
}

// join fills what the report left out from a KB entry.
func (h *qualysHit) join(v QualysVuln) {
	h.title = firstNonEmpty(h.title, v.Title)
	if h.severity == 0 {
		h.severity = v.Severity
	}
	if len(h.cves) == 0 {
		h.cves = v.CVEs
	}
	if h.cvss == 0 {
		h.cvss, h.vector = v.CVSS, v.CVSSVector
	}
}

// qualysFindings makes one finding per (package, CVE). Packages come from
// the RESULTS table of authenticated patch checks (Package / Installed
// Version / Required Version); other QIDs are kept under the pseudo-package
// "qualys:<QID>" with no fixed version (the store needs a package; the
// colon keeps it from being taken for a real one). A QID without CVEs is
// identified as QID-<n>, with its title: joined, never a bare number.
func (in *input) qualysFindings(h qualysHit) []vulnzero.Finding {
	fam, ver := osFromText(h.os)
	base := in.finding()
	base.Host = h.host
	base.OS = osName(fam, ver)
	base.OSFamily = NormalizeOSFamily(fam)
	base.Title = h.title
	base.Severity = qualysSeverity(h.severity)
	base.CVSS, base.CVSSVector = h.cvss, h.vector
	base.RuleID = strconv.Itoa(h.qid)
	if !h.firstSeen.IsZero() {
		base.FirstSeen = h.firstSeen
	}
	if h.fixed {
		base.Status, base.FixedAt = vulnzero.FindingFixed, h.fixedAt
	}
	ids := cleanIDs(h.cves)
	if len(ids) == 0 {
		ids = []string{"QID-" + strconv.Itoa(h.qid)}
	}
	pkgs := qualysPackages(h.results)
	if len(pkgs) == 0 {
		base.Package = "qualys:" + strconv.Itoa(h.qid)
		return perID(base, ids)
	}
	out := make([]vulnzero.Finding, 0, len(pkgs)*len(ids))
	for _, p := range pkgs {
		f := base
		f.Package, f.Installed, f.Fixed = p.name, p.installed, p.fixed
		f.Ecosystem = osEcosystem(fam)
		out = append(out, perID(f, ids)...)
	}
	return out
}

// qualysSeverity maps Qualys's 1–5 levels (Minimal, Medium, Serious,
// Critical, Urgent). VulnZero has no informational level, and a confirmed
// level-1 vulnerability is still one, so 1 and 2 are both low.
func qualysSeverity(n int) vulnzero.Severity {
	switch n {
	case 5:
		return vulnzero.SeverityCritical
	case 4:
		return vulnzero.SeverityHigh
	case 3:
		return vulnzero.SeverityMedium
	case 1, 2:
		return vulnzero.SeverityLow
	}
	return vulnzero.SeverityUnknown
}

// qualysPackages reads the package table authenticated checks put in
// RESULTS, tab separated:
//
//	Package	Installed Version	Required Version
//	openssl	1:1.0.2k-19.el7	1:1.0.2k-21.el7_9
func qualysPackages(results string) []pkgFix {
	var out []pkgFix
	pi, ii, ri := -1, -1, -1
	for line := range strings.SplitSeq(results, "\n") {
		line = strings.TrimRight(line, "\r")
		cells := strings.Split(line, "\t")
		if pi < 0 {
			for k, c := range cells {
				switch l := strings.ToLower(strings.TrimSpace(c)); {
				case l == "package" || l == "package name" || l == "vulnerable package":
					pi = k
				case l == "installed version":
					ii = k
				case l == "required version" || l == "fixed version":
					ri = k
				}
			}
			if pi < 0 || ii < 0 || ri < 0 {
				pi, ii, ri = -1, -1, -1
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			pi, ii, ri = -1, -1, -1 // the table ended; another may follow
			continue
		}
		if len(cells) <= max(pi, ii, ri) {
			continue
		}
		name := strings.TrimSpace(cells[pi])
		inst := qualysVersion(name, cells[ii])
		fixed := qualysVersion(name, cells[ri])
		if !isPackageName(name) || inst == "" {
			continue
		}
		out = append(out, pkgFix{name: name, installed: inst, fixed: pickFixed(fixed, inst)})
	}
	return out
}

// qualysVersion takes the version out of a RESULTS cell, which holds either
// the version or the whole package string (name-version.arch).
func qualysVersion(name, cell string) string {
	v := strings.TrimSpace(cell)
	if rest, ok := strings.CutPrefix(v, name+"-"); ok && rest != "" && isDigit(rest[0]) {
		v = rest
		if i := strings.LastIndexByte(v, '.'); i > 0 && rpmArches[v[i+1:]] {
			v = v[:i]
		}
	}
	return v
}

// --- XML documents ---------------------------------------------------------------------

func parseQualysXML(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	w := newXMLWalker(in, r)
	root, err := w.root()
	if errors.Is(err, errNoReport) {
		return w.errf("no root element: the report is empty or truncated")
	}
	if err != nil {
		return err
	}
	q := &qualysWalker{xmlWalker: w, emit: emit}
	switch root.Name.Local {
	case "HOST_LIST_VM_DETECTION_OUTPUT":
		err = q.detectionOutput(root)
	case "ASSET_DATA_REPORT":
		err = q.assetDataReport(root)
	case "SCAN":
		err = q.scanReport(root)
	case "SIMPLE_RETURN":
		err = qualysSimpleReturn(w)
	case "KNOWLEDGE_BASE_VULN_LIST_OUTPUT":
		err = w.errf("this is a Qualys KnowledgeBase, which holds no findings: load it as the KnowledgeBase for host list detection files (scan.LoadQualysKB, Options.QualysKB)")
	default:
		err = w.errf("root element <%s> is not a Qualys report VulnZero reads (HOST_LIST_VM_DETECTION_OUTPUT, ASSET_DATA_REPORT or SCAN)", root.Name.Local)
	}
	if err != nil {
		return err
	}
	w.path = w.path[:0]
	return w.end()
}

type qualysWalker struct {
	*xmlWalker
	emit func(vulnzero.Finding) error
}

func (q *qualysWalker) emitHit(h qualysHit) error {
	for _, f := range q.in.qualysFindings(h) {
		if err := q.emit(f); err != nil {
			return err
		}
	}
	return nil
}

// qualysSimpleReturn reads an API error response (SIMPLE_RETURN, whose
// start tag was read) into an error.
func qualysSimpleReturn(w *xmlWalker) error {
	line, col := w.dec.InputPos()
	var r struct {
		Code string `xml:"RESPONSE>CODE"`
		Text string `xml:"RESPONSE>TEXT"`
	}
	se := xml.StartElement{Name: xml.Name{Local: "SIMPLE_RETURN"}}
	if err := w.decode(&r, &se); err != nil {
		return err
	}
	return w.errAt(line, col, "the Qualys API returned an error instead of a report: %s (code %s)", strings.TrimSpace(r.Text), strings.TrimSpace(r.Code))
}

// qualysWarning reads RESPONSE/WARNING; code 1980 with a URL means the
// list was truncated and the URL fetches the rest.
func qualysWarning(w *xmlWalker, se *xml.StartElement) (next string, err error) {
	var warn struct {
		Code string `xml:"CODE"`
		Text string `xml:"TEXT"`
		URL  string `xml:"URL"`
	}
	if err := w.decode(&warn, se); err != nil {
		return "", err
	}
	return strings.TrimSpace(warn.URL), nil
}

// qualysHostFields are a host's identity in the detection output and the
// asset data report.
type qualysHostFields struct {
	id, ip, dns, fqdn, netbios, os string
}

func (h qualysHostFields) name(opts Options) string {
	return firstNonEmpty(opts.Host, h.fqdn, h.dns, h.netbios, h.ip, h.id)
}

// hostField reads one identity child of HOST; ok is false for other
// children.
func (q *qualysWalker) hostField(se xml.StartElement, h *qualysHostFields) (bool, error) {
	var dst *string
	switch se.Name.Local {
	case "ID":
		dst = &h.id
	case "IP":
		dst = &h.ip
	case "DNS":
		dst = &h.dns
	case "NETBIOS":
		dst = &h.netbios
	case "OS", "OPERATING_SYSTEM":
		dst = &h.os
	case "DNS_DATA":
		var d struct {
			FQDN string `xml:"FQDN"`
		}
		if err := q.decode(&d, &se); err != nil {
			return true, err
		}
		h.fqdn = strings.TrimSpace(d.FQDN)
		return true, nil
	default:
		return false, nil
	}
	s, err := q.text()
	*dst = s
	return true, err
}

// --- host list detection output (VMDR API) -------------------------------------------------

type qualysDetection struct {
	QID        string `xml:"QID"`
	Type       string `xml:"TYPE"`
	Severity   string `xml:"SEVERITY"`
	Results    string `xml:"RESULTS"`
	Status     string `xml:"STATUS"`
	FirstFound string `xml:"FIRST_FOUND_DATETIME"`
	LastFixed  string `xml:"LAST_FIXED_DATETIME"`
	IsIgnored  string `xml:"IS_IGNORED"`
	IsDisabled string `xml:"IS_DISABLED"`
}

func (q *qualysWalker) detectionOutput(root xml.StartElement) error {
	q.path = append(q.path, xmlStep{name: root.Name.Local})
	page := Page{Total: -1}
	err := q.each(func(se xml.StartElement) error {
		if se.Name.Local != "RESPONSE" {
			return q.skip()
		}
		return q.each(func(se xml.StartElement) error {
			switch se.Name.Local {
			case "HOST_LIST":
				return q.each(func(se xml.StartElement) error {
					if se.Name.Local != "HOST" {
						return q.skip()
					}
					page.Count++
					return q.detectionHost()
				})
			case "WARNING":
				next, err := qualysWarning(q.xmlWalker, &se)
				page.Next = next
				return err
			}
			return q.skip()
		})
	})
	if err != nil {
		return err
	}
	if q.in.opts.OnPage != nil {
		q.in.opts.OnPage(page)
	}
	return nil
}

func (q *qualysWalker) detectionHost() error {
	return q.host("DETECTION_LIST", "DETECTION", "HOST has no ID, IP, DNS or NETBIOS before its DETECTION_LIST",
		func(host, osText string, se xml.StartElement) error {
			dline, dcol := q.dec.InputPos()
			var d qualysDetection
			if err := q.decode(&d, &se); err != nil {
				return err
			}
			return q.detection(dline, dcol, host, osText, d)
		})
}

// host walks one HOST element of either layout: its identity fields, then
// the items of its list, each handed to item with the host's name and OS.
// The host is covered once identified — also when it has no items (clean).
func (q *qualysWalker) host(list, itemName, noName string, item func(host, osText string, se xml.StartElement) error) error {
	var h qualysHostFields
	line, col := q.dec.InputPos()
	host := ""
	identify := func() error {
		if host != "" {
			return nil
		}
		if host = h.name(q.in.opts); host == "" {
			return q.errAt(line, col, "%s", noName)
		}
		q.in.cover(host)
		return nil
	}
	err := q.each(func(se xml.StartElement) error {
		if ok, err := q.hostField(se, &h); ok || err != nil {
			return err
		}
		if se.Name.Local != list {
			return q.skip()
		}
		if err := identify(); err != nil {
			return err
		}
		return q.each(func(se xml.StartElement) error {
			if se.Name.Local != itemName {
				return q.skip()
			}
			return item(host, h.os, se)
		})
	})
	if err != nil {
		return err
	}
	return identify() // a host without items is clean
}

func (q *qualysWalker) detection(line, col int, host, osText string, d qualysDetection) error {
	qid, err := strconv.Atoi(strings.TrimSpace(d.QID))
	if err != nil || qid <= 0 {
		return q.errAt(line, col, "DETECTION QID %q is not a positive number", d.QID)
	}
	if skip := qualysSkip(d.Type, d.Status, d.IsIgnored, d.IsDisabled); skip {
		return nil
	}
	kb := q.in.opts.QualysKB
	if kb == nil {
		return q.errAt(line, col, "QID %d: host list detection output names only QIDs; import it with the Qualys KnowledgeBase (scan.LoadQualysKB, Options.QualysKB) for CVEs, titles and CVSS", qid)
	}
	v, ok := kb.Lookup(qid)
	if !ok {
		return q.errAt(line, col, "QID %d is not in the Qualys KnowledgeBase (%d QIDs loaded): fetch the KB entries of every detected QID", qid, kb.Len())
	}
	h := qualysHit{host: host, os: osText, qid: qid, results: d.Results, fixed: qualysFixed(d.Status)}
	if h.fixed {
		h.fixedAt, _ = parseTimestamp(d.LastFixed)
	}
	if s := strings.TrimSpace(d.Severity); s != "" {
		if h.severity, err = strconv.Atoi(s); err != nil || h.severity < 1 || h.severity > 5 {
			return q.errAt(line, col, "QID %d: SEVERITY %q is not 1–5", qid, d.Severity)
		}
	}
	if t, ok := parseTimestamp(d.FirstFound); ok {
		h.firstSeen = t
	}
	h.join(v)
	return q.emitHit(h)
}

// qualysSkip reports whether a detection is left out: information
// gathered (not a vulnerability), or ignored or disabled in Qualys. The
// host stays covered, so a complete import closes what Qualys no longer
// reports open.
func qualysSkip(typ, status, ignored, disabled string) bool {
	switch strings.ToLower(strings.TrimSpace(typ)) {
	case "info", "ig", "information gathered", "information":
		return true
	}
	yes := func(s string) bool {
		s = strings.ToLower(strings.TrimSpace(s))
		return s == "1" || s == "yes" || s == "true"
	}
	return yes(ignored) || yes(disabled)
}

// qualysFixed reports whether a detection's status says Qualys found it
// gone: it is imported as fixed (New, Active and Re-Opened are open).
func qualysFixed(status string) bool {
	return strings.EqualFold(strings.TrimSpace(status), "fixed")
}

// --- ASSET_DATA_REPORT -------------------------------------------------------------------

type qualysVulnInfo struct {
	QID        string `xml:"QID"`
	Type       string `xml:"TYPE"`
	Result     string `xml:"RESULT"`
	FirstFound string `xml:"FIRST_FOUND"`
	VulnStatus string `xml:"VULN_STATUS"`
}

type qualysVulnDetails struct {
	QID      string   `xml:"QID"`
	Title    string   `xml:"TITLE"`
	Severity string   `xml:"SEVERITY"`
	CVEs     []string `xml:"CVE_ID_LIST>CVE_ID>ID"`
	CVSS     string   `xml:"CVSS_SCORE>CVSS_BASE"`
	CVSS3    string   `xml:"CVSS3_SCORE>CVSS3_BASE"`
}

// assetDataReport reads an ASSET_DATA_REPORT. Its hosts list QIDs and its
// GLOSSARY, written after them, says what each QID is; detections read
// before the glossary wait in a spool (memory up to a bound, then a
// temporary file), so memory stays flat however many hosts there are.
func (q *qualysWalker) assetDataReport(root xml.StartElement) error {
	q.path = append(q.path, xmlStep{name: root.Name.Local})
	glossary := map[int]QualysVuln{}
	glossaryRead := false
	sp := &qualysSpool{}
	defer sp.close()
	err := q.each(func(se xml.StartElement) error {
		switch se.Name.Local {
		case "HOST_LIST":
			return q.each(func(se xml.StartElement) error {
				if se.Name.Local != "HOST" {
					return q.skip()
				}
				return q.assetHost(func(p qualysPending) error {
					if glossaryRead {
						return q.resolve(p, glossary)
					}
					return sp.add(p)
				})
			})
		case "GLOSSARY":
			err := q.each(func(se xml.StartElement) error {
				if se.Name.Local != "VULN_DETAILS_LIST" {
					return q.skip()
				}
				return q.each(func(se xml.StartElement) error {
					if se.Name.Local != "VULN_DETAILS" {
						return q.skip()
					}
					line, col := q.dec.InputPos()
					var d qualysVulnDetails
					if err := q.decode(&d, &se); err != nil {
						return err
					}
					v, err := d.entry()
					if err != nil {
						return q.errAt(line, col, "%v", err)
					}
					glossary[v.QID] = v
					return nil
				})
			})
			glossaryRead = true
			return err
		}
		return q.skip()
	})
	if err != nil {
		return err
	}
	return sp.replay(func(p qualysPending) error { return q.resolve(p, glossary) })
}

func (d qualysVulnDetails) entry() (QualysVuln, error) {
	qid, err := strconv.Atoi(strings.TrimSpace(d.QID))
	if err != nil || qid <= 0 {
		return QualysVuln{}, fmt.Errorf("VULN_DETAILS QID %q is not a positive number", d.QID)
	}
	v := QualysVuln{QID: qid, Title: strings.TrimSpace(d.Title)}
	if s := strings.TrimSpace(d.Severity); s != "" {
		if v.Severity, err = strconv.Atoi(s); err != nil || v.Severity < 1 || v.Severity > 5 {
			return v, fmt.Errorf("QID %d: SEVERITY %q is not 1–5", qid, d.Severity)
		}
	}
	for _, c := range d.CVEs {
		if c = strings.TrimSpace(c); c != "" {
			v.CVEs = append(v.CVEs, c)
		}
	}
	for _, c := range []string{d.CVSS3, d.CVSS} {
		score, vec, err := qualysScore(c)
		if err != nil {
			return v, fmt.Errorf("QID %d: %w", qid, err)
		}
		if score > 0 {
			v.CVSS, v.CVSSVector = score, vec
			break
		}
	}
	return v, nil
}

// qualysPending is a detection waiting for the glossary, with where it was
// for the error if its QID is not there.
type qualysPending struct {
	Host, OS   string
	QID        int
	Results    string
	FirstFound time.Time
	Fixed      bool
	Line, Col  int
	Path       string
}

func (q *qualysWalker) assetHost(pending func(qualysPending) error) error {
	return q.host("VULN_INFO_LIST", "VULN_INFO", "HOST has no IP, DNS or NETBIOS before its VULN_INFO_LIST",
		func(host, osText string, se xml.StartElement) error {
			vline, vcol := q.dec.InputPos()
			var v qualysVulnInfo
			if err := q.decode(&v, &se); err != nil {
				return err
			}
			qid, err := strconv.Atoi(strings.TrimSpace(v.QID))
			if err != nil || qid <= 0 {
				return q.errAt(vline, vcol, "VULN_INFO QID %q is not a positive number", v.QID)
			}
			// Vuln and Practice (potential vulnerabilities) are findings;
			// Ig is information gathered.
			if qualysSkip(v.Type, v.VulnStatus, "", "") {
				return nil
			}
			p := qualysPending{Host: host, OS: osText, QID: qid, Results: v.Result, Fixed: qualysFixed(v.VulnStatus), Line: vline, Col: vcol, Path: q.pathString()}
			if t, ok := parseTimestamp(v.FirstFound); ok {
				p.FirstFound = t
			}
			return pending(p)
		})
}

func (q *qualysWalker) resolve(p qualysPending, glossary map[int]QualysVuln) error {
	v, ok := glossary[p.QID]
	if !ok {
		if v, ok = q.in.opts.QualysKB.Lookup(p.QID); !ok {
			return &vulnzero.PositionError{File: q.in.name, Line: p.Line, Column: p.Col, Path: p.Path,
				Err: fmt.Errorf("QID %d has no VULN_DETAILS in the report's GLOSSARY (and no KnowledgeBase entry)", p.QID)}
		}
	}
	h := qualysHit{host: p.Host, os: p.OS, qid: p.QID, results: p.Results, firstSeen: p.FirstFound, fixed: p.Fixed}
	h.join(v)
	return q.emitHit(h)
}

// --- SCAN (scan-1.dtd) -------------------------------------------------------------------

type qualysScanVuln struct {
	Number   string   `xml:"number,attr"`
	Severity string   `xml:"severity,attr"`
	CVEIDs   string   `xml:"cveid,attr"`
	Title    string   `xml:"TITLE"`
	CVSS     string   `xml:"CVSS_BASE"`
	CVSS3    string   `xml:"CVSS3_BASE"`
	CVEs     []string `xml:"CVE_ID_LIST>CVE_ID>ID"`
	Result   string   `xml:"RESULT"`
}

// scanReport reads a scan report: IP elements with VULNS (confirmed) and
// PRACTICES (potential vulnerabilities), each grouped in CATs. INFOS and
// SERVICES are information gathered.
func (q *qualysWalker) scanReport(root xml.StartElement) error {
	q.path = append(q.path, xmlStep{name: root.Name.Local})
	return q.each(func(se xml.StartElement) error {
		if se.Name.Local != "IP" {
			return q.skip()
		}
		ip, name := strings.TrimSpace(attr(se, "value")), strings.TrimSpace(attr(se, "name"))
		if strings.ContainsAny(name, " \t") {
			name = "" // "No registered hostname"
		}
		host := firstNonEmpty(q.in.opts.Host, name, ip)
		if host == "" {
			return q.errf("IP element has no value or name attribute")
		}
		q.in.cover(host)
		var osText string
		return q.each(func(se xml.StartElement) error {
			switch se.Name.Local {
			case "OS":
				s, err := q.text()
				osText = s
				return err
			case "VULNS", "PRACTICES":
				item := "VULN"
				if se.Name.Local == "PRACTICES" {
					item = "PRACTICE"
				}
				return q.each(func(se xml.StartElement) error {
					if se.Name.Local != "CAT" {
						return q.skip()
					}
					return q.each(func(se xml.StartElement) error {
						if se.Name.Local != item {
							return q.skip()
						}
						line, col := q.dec.InputPos()
						var v qualysScanVuln
						if err := q.decode(&v, &se); err != nil {
							return err
						}
						return q.scanVuln(line, col, host, osText, v)
					})
				})
			}
			return q.skip()
		})
	})
}

func (q *qualysWalker) scanVuln(line, col int, host, osText string, v qualysScanVuln) error {
	qid, err := strconv.Atoi(strings.TrimSpace(v.Number))
	if err != nil || qid <= 0 {
		return q.errAt(line, col, "number %q is not a QID", v.Number)
	}
	h := qualysHit{host: host, os: osText, qid: qid, title: strings.TrimSpace(v.Title), results: v.Result}
	if s := strings.TrimSpace(v.Severity); s != "" {
		if h.severity, err = strconv.Atoi(s); err != nil || h.severity < 1 || h.severity > 5 {
			return q.errAt(line, col, "QID %d: severity %q is not 1–5", qid, v.Severity)
		}
	}
	for _, c := range v.CVEs {
		if c = strings.TrimSpace(c); c != "" {
			h.cves = append(h.cves, c)
		}
	}
	if len(h.cves) == 0 {
		h.cves = splitIDs(v.CVEIDs)
	}
	for _, c := range []string{v.CVSS3, v.CVSS} {
		score, vec, err := qualysScore(c)
		if err != nil {
			return q.errAt(line, col, "QID %d: %v", qid, err)
		}
		if score > 0 {
			h.cvss, h.vector = score, vec
			break
		}
	}
	if kv, ok := q.in.opts.QualysKB.Lookup(qid); ok {
		h.join(kv)
	}
	if h.title == "" && len(h.cves) == 0 {
		return q.errAt(line, col, "QID %d has no TITLE and no CVE, and no KnowledgeBase entry", qid)
	}
	return q.emitHit(h)
}
