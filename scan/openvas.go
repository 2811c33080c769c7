package scan

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"

	"vulnzero.dev/vulnzero"
)

// FormatOpenVAS is a Greenbone / OpenVAS (GVM) report: the XML report
// (`get_reports` or the web UI's XML export) or the CSV results export.
// One finding per (result, CVE), or per (result, package, CVE) for local
// security checks that name packages.
//
//	finding     XML                          CSV
//	Host        result/host/hostname, else   Hostname, else IP
//	            the result/host text (the IP)
//	            (Options.Host overrides both)
//	Package     the "Vulnerable package:" lines of the result text (local
//	            security checks); else the pseudo-package "openvas:<NVT
//	            OID>": the store needs a package, and the colon keeps it
//	            from ever being taken for a real one
//	Installed   "Installed version:" of the result text (a "name-" prefix
//	            repeating the package is dropped)
//	Fixed       "Fixed version:" for a named package (">=" dropped); ""
//	            for a pseudo-package, whose fix is not a package upgrade
//	CVE         nvt/refs/ref[@type=cve] (or the older nvt/cve list);
//	            CVEs; without any, "OPENVAS-<NVT OID>"
//	OSFamily    for a named package, the family of the local security
//	            check: nvt/family "Debian Local Security Checks", or the NVT
//	            name "Ubuntu: Security Advisory (USN-…)" in CSV; Ecosystem
//	            (deb, rpm, apk) follows
//	RuleID      nvt/@oid / NVT OID
//	Title       nvt/name / NVT Name
//	CVSS        result/severity / CVSS (the effective score, overrides
//	            applied); the vector from nvt/severities or the
//	            cvss_base_vector tag
//
// The result text is result/description in XML and Specific Result in
// CSV. Severity is the CVSS v3 rating of the score (9–10 critical, 7–8.9
// high, 4–6.9 medium, 0.1–3.9 low); without a score, the threat:
//
//	GVM threat      vulnzero
//	Critical        critical
//	High            high
//	Medium          medium
//	Low             low
//	Log, Debug      not imported (informational, severity 0)
//	False Positive  not imported (an override marked it so)
//
// Every host the report has a result for is covered, informational
// results included, and in XML also the hosts of report/host (scanned,
// nothing found), so a complete import closes what they no longer have.
// GVM writes the hosts' details (best_os_txt) after the results, so the
// OS of a result is known only from its local security check family.
const FormatOpenVAS Format = "openvas"

var openvasParser = parser{
	format: FormatOpenVAS,
	detect: detectOpenVAS,
	parse:  parseOpenVAS,
}

func detectOpenVAS(head []byte) bool {
	b := trimSpace(head)
	if len(b) == 0 {
		return false
	}
	if b[0] == '<' {
		return detectOpenVASXML(b)
	}
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i]
	}
	rec, err := csv.NewReader(bytes.NewReader(line)).Read()
	if err != nil {
		return false
	}
	cols := headerIndex(rec)
	return has(cols, "nvt oid") && has(cols, "ip")
}

// detectOpenVASXML accepts a GVM report: its root is <report> with the
// attributes or children only GVM writes, or a <get_reports_response>.
func detectOpenVASXML(head []byte) bool {
	dec := xml.NewDecoder(bytes.NewReader(head))
	dec.Strict = false
	for {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		se, ok := t.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "get_reports_response":
			return true
		case "report":
			if attr(se, "format_id") != "" || attr(se, "content_type") != "" {
				return true
			}
			for _, k := range []string{"<gmp>", "<omp>", "<results", "<nvt "} {
				if bytes.Contains(head, []byte(k)) {
					return true
				}
			}
		}
		return false
	}
}

func parseOpenVAS(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	head, _ := r.Peek(HeadSize)
	b := trimSpace(trimBOM(head))
	switch {
	case len(b) == 0:
		return nil
	case b[0] == '<':
		return parseOpenVASXML(in, r, emit)
	}
	return parseOpenVASCSV(in, r, emit)
}

// openvasResult is one GVM result: what a scan found on one host and port.
type openvasResult struct {
	host, ip  string
	oid, name string
	family    string // NVT family, XML only
	threat    string
	score     string
	vector    string
	cves      []string
	text      string // description / Specific Result
}

// openvasFindings turns a result into findings; none for informational
// results.
// position names the result in errors; field is which of its values is
// bad: "host", "oid" or "severity".
func (in *input) openvasFindings(r openvasResult, position func(field, format string, args ...any) error) ([]vulnzero.Finding, error) {
	host := firstNonEmpty(in.opts.Host, r.host, r.ip)
	if host == "" {
		return nil, position("host", "result has no host")
	}
	in.cover(host)
	if r.oid == "" {
		return nil, position("oid", "result has no NVT OID")
	}
	var score float64
	if s := strings.TrimSpace(r.score); s != "" {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v > 10 {
			return nil, position("severity", "severity %q is not a CVSS score", s)
		}
		score = v
	}
	sev, ok := openvasSeverity(r.threat, score)
	if !ok {
		return nil, nil
	}
	f := in.finding()
	f.Host = host
	f.Title = strings.Join(strings.Fields(r.name), " ") // XML titles wrap
	f.RuleID = r.oid
	f.Severity = sev
	f.CVSS = max(score, 0)
	f.CVSSVector = r.vector

	ids := dedupeStrings(r.cves)
	if len(ids) == 0 {
		ids = []string{"OPENVAS-" + r.oid}
	}
	pkgs, product := openvasPackages(r.text)
	if len(pkgs) == 0 {
		f.Package = "openvas:" + r.oid
		f.Installed = product.installed
		return perID(f, ids), nil
	}
	family := openvasLSCFamily(r.family, r.name)
	f.OSFamily = NormalizeOSFamily(family)
	f.Ecosystem = osEcosystem(family)
	var out []vulnzero.Finding
	for _, p := range pkgs {
		pf := f
		pf.Package, pf.Installed = p.name, p.installed
		pf.Fixed = pickFixed(p.fixed, p.installed)
		out = append(out, perID(pf, ids)...)
	}
	return out, nil
}

// openvasSeverity maps a result's score and threat; ok is false for
// results that are not vulnerabilities (Log, Debug, False Positive, or a
// score of 0 or below).
func openvasSeverity(threat string, score float64) (vulnzero.Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(threat)) {
	case "log", "debug", "false positive", "none":
		return 0, false
	}
	if score > 0 {
		return severityOfScore(score), true
	}
	switch strings.ToLower(strings.TrimSpace(threat)) {
	case "critical":
		return vulnzero.SeverityCritical, true
	case "high":
		return vulnzero.SeverityHigh, true
	case "medium":
		return vulnzero.SeverityMedium, true
	case "low":
		return vulnzero.SeverityLow, true
	}
	return 0, false
}

type openvasPackage struct{ name, installed, fixed string }

// openvasPackages reads the version lines GVM writes in a result's text.
// Local security checks write one block per package:
//
//	Vulnerable package: openssl
//	Installed version:  openssl-1.1.1n-0+deb11u3
//	Fixed version:      >=openssl-1.1.1n-0+deb11u4
//
// and product checks the same without the first line; product holds those
// versions.
func openvasPackages(text string) (pkgs []openvasPackage, product openvasPackage) {
	cur := &product
	for _, line := range strings.Split(text, "\n") {
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "vulnerable package":
			if value == "" {
				continue
			}
			pkgs = append(pkgs, openvasPackage{name: value})
			cur = &pkgs[len(pkgs)-1]
		case "installed version":
			if cur.installed == "" {
				cur.installed = versionOf(cur.name, value)
			}
		case "fixed version":
			if cur.fixed == "" {
				cur.fixed = versionOf(cur.name, strings.TrimPrefix(value, ">="))
			}
		}
	}
	return pkgs, product
}

// versionOf drops the "name-" prefix notus writes before versions, and
// reads "None" and "N/A" as no version.
func versionOf(name, v string) string {
	v = strings.TrimSpace(v)
	switch strings.ToLower(v) {
	case "none", "n/a", "-":
		return ""
	}
	if name != "" && strings.HasPrefix(v, name+"-") {
		return v[len(name)+1:]
	}
	return v
}

// openvasLSCFamily is the OS family of a local security check: the first
// word of "Debian Local Security Checks", or of the NVT name "Ubuntu:
// Security Advisory (USN-…)", when it names an OS VulnZero patches.
func openvasLSCFamily(nvtFamily, nvtName string) string {
	for _, s := range []string{nvtFamily, nvtName} {
		word := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ':' })
		if len(word) > 0 && osEcosystem(word[0]) != "" {
			return strings.ToLower(word[0])
		}
	}
	return ""
}

// splitCVEs reads a CVE list cell or element: comma or space separated,
// "NOCVE" meaning none.
func splitCVEs(s string) []string {
	var out []string
	for _, id := range splitIDs(s) {
		if !strings.EqualFold(id, "NOCVE") {
			out = append(out, id)
		}
	}
	return out
}

// --- XML ---------------------------------------------------------------------

type openvasXMLResult struct {
	Name string `xml:"name"`
	Host struct {
		IP       string `xml:",chardata"`
		Hostname string `xml:"hostname"`
	} `xml:"host"`
	NVT struct {
		OID    string `xml:"oid,attr"`
		Name   string `xml:"name"`
		Family string `xml:"family"`
		Tags   string `xml:"tags"`
		CVE    string `xml:"cve"`
		Refs   []struct {
			ID   string `xml:"id,attr"`
			Type string `xml:"type,attr"`
		} `xml:"refs>ref"`
		Severities []struct {
			Type  string `xml:"type,attr"`
			Value string `xml:"value"`
		} `xml:"severities>severity"`
	} `xml:"nvt"`
	Threat      string `xml:"threat"`
	Severity    string `xml:"severity"`
	Description string `xml:"description"`
}

type openvasXMLHost struct {
	IP      string `xml:"ip"`
	Details []struct {
		Name  string `xml:"name"`
		Value string `xml:"value"`
	} `xml:"detail"`
}

func parseOpenVASXML(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	w := newXMLWalker(in, r)
	root, err := w.root()
	if errors.Is(err, errNoReport) {
		return w.errf("no root element: the report is empty or truncated")
	}
	if err != nil {
		return err
	}
	if n := root.Name.Local; n != "report" && n != "get_reports_response" {
		return w.errf("root element <%s> is not a GVM <report>", n)
	}
	w.path = append(w.path, xmlStep{name: root.Name.Local})
	if err := openvasReport(w, emit); err != nil {
		return err
	}
	w.path = w.path[:0]
	return w.end()
}

// openvasReport walks a <report> (or <get_reports_response>) whose start
// tag was read: reports nest (the export's <report> holds the report
// proper), results are in <results>, scanned hosts in <host>.
func openvasReport(w *xmlWalker, emit func(vulnzero.Finding) error) error {
	return w.each(func(se xml.StartElement) error {
		switch se.Name.Local {
		case "report":
			return openvasReport(w, emit)
		case "results":
			return w.each(func(se xml.StartElement) error {
				if se.Name.Local != "result" {
					return w.skip()
				}
				return openvasXMLResultElem(w, &se, emit)
			})
		case "host":
			var h openvasXMLHost
			if err := w.decode(&h, &se); err != nil {
				return err
			}
			name := ""
			for _, d := range h.Details {
				if d.Name == "hostname" {
					name = strings.TrimSpace(d.Value)
				}
			}
			if host := firstNonEmpty(w.in.opts.Host, name, h.IP); host != "" {
				w.in.cover(host)
			}
			return nil
		}
		return w.skip()
	})
}

func openvasXMLResultElem(w *xmlWalker, se *xml.StartElement, emit func(vulnzero.Finding) error) error {
	line, col := w.dec.InputPos()
	var x openvasXMLResult
	if err := w.decode(&x, se); err != nil {
		return err
	}
	r := openvasResult{
		host:   strings.TrimSpace(x.Host.Hostname),
		ip:     strings.TrimSpace(x.Host.IP),
		oid:    strings.TrimSpace(x.NVT.OID),
		name:   firstNonEmpty(x.NVT.Name, x.Name),
		family: strings.TrimSpace(x.NVT.Family),
		threat: x.Threat,
		score:  x.Severity,
		text:   x.Description,
	}
	for _, ref := range x.NVT.Refs {
		if strings.EqualFold(ref.Type, "cve") && strings.TrimSpace(ref.ID) != "" {
			r.cves = append(r.cves, strings.TrimSpace(ref.ID))
		}
	}
	if len(r.cves) == 0 {
		r.cves = splitCVEs(x.NVT.CVE)
	}
	for _, s := range x.NVT.Severities {
		if strings.HasPrefix(s.Type, "cvss_base_v") && strings.TrimSpace(s.Value) != "" {
			r.vector = strings.TrimSpace(s.Value)
			break
		}
	}
	if r.vector == "" {
		r.vector = openvasTag(x.NVT.Tags, "cvss_base_vector")
	}
	fs, err := w.in.openvasFindings(r, func(_, format string, args ...any) error {
		return w.errAt(line, col, format, args...)
	})
	if err != nil {
		return err
	}
	for _, f := range fs {
		if err := emit(f); err != nil {
			return err
		}
	}
	return nil
}

// openvasTag reads one key of an NVT's tags ("a=1|cvss_base_vector=…|b=2").
func openvasTag(tags, key string) string {
	for _, kv := range strings.Split(tags, "|") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// --- CSV ---------------------------------------------------------------------

func parseOpenVASCSV(in *input, br *bufio.Reader, emit func(vulnzero.Finding) error) error {
	if b, _ := br.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return csvError(in, err)
	}
	cols := headerIndex(header)
	line, _ := cr.FieldPos(0)
	var missing []string
	for _, c := range []string{"ip", "nvt oid"} {
		if !has(cols, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return &vulnzero.PositionError{File: in.name, Line: line, Err: errors.New("OpenVAS CSV header lacks required column(s) " + strings.Join(missing, ", "))}
	}
	row := &csvRow{in: in, r: cr, cols: cols}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return csvError(in, err)
		}
		if blank(rec) {
			continue
		}
		row.rec = rec
		r := openvasResult{
			host:   row.get("hostname"),
			ip:     row.get("ip"),
			oid:    row.get("nvt oid"),
			name:   row.get("nvt name"),
			threat: row.get("severity"),
			score:  row.get("cvss"),
			cves:   splitCVEs(row.get("cves")),
			text:   row.get("specific result"),
		}
		fs, err := in.openvasFindings(r, func(field, format string, args ...any) error {
			col := map[string]string{"host": "ip", "oid": "nvt oid", "severity": "cvss"}[field]
			return row.errf(col, format, args...)
		})
		if err != nil {
			return err
		}
		for _, f := range fs {
			if err := emit(f); err != nil {
				return err
			}
		}
	}
}
