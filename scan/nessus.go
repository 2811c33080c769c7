package scan

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"vulnzero.dev/vulnzero"
)

// FormatNessus is Nessus output: the .nessus XML (NessusClientData_v2) and
// the CSV exports of Nessus Professional, Tenable Vulnerability Management
// (Tenable.io) and Tenable Security Center.
const FormatNessus Format = "nessus"

var nessusParser = parser{
	format: FormatNessus,
	detect: detectNessus,
	parse:  parseNessus,
}

func detectNessus(head []byte) bool {
	b := trimSpace(head)
	if len(b) > 0 && b[0] == '<' {
		return bytes.Contains(b, []byte("<NessusClientData_v2"))
	}
	return nessusCSVHeader(headerLine(b)) != nil
}

func parseNessus(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	head, _ := r.Peek(HeadSize)
	b := trimSpace(trimBOM(head))
	if len(b) == 0 {
		return nil
	}
	if b[0] == '<' {
		return parseNessusXML(in, r, emit)
	}
	return parseNessusCSV(in, r, emit)
}

// nessusHit is one plugin result on one host, from whichever Tenable
// format; pluginFindings turns it into findings.
type nessusHit struct {
	host      string
	os        string // free text ("Linux Kernel … on CentOS release 6.3")
	pluginID  string
	name      string
	severity  vulnzero.Severity
	cves      []string
	cvss      float64
	vector    string
	output    string // plugin output: package lines of local checks
	firstSeen time.Time
	fixed     bool      // Tenable says it is gone (state FIXED)
	fixedAt   time.Time // when, if it said
	// osFamily and osVersion are os read by osFromText, when the caller
	// has done it once for many results of a host.
	osFamily, osVersion string
	osRead              bool
}

// pluginFindings makes one finding per (package, CVE) of a plugin result.
// Local checks name packages in their output; the others are about the
// product in the plugin name, and are kept under the pseudo-package
// "nessus:<plugin id>" (the store needs a package, and the colon keeps it
// from ever being taken for a real one) with no fixed version, since
// VulnZero can only apply a fix that is a package upgrade. A plugin without
// CVEs is identified as NESSUS-<plugin id>.
func (in *input) pluginFindings(h nessusHit) []vulnzero.Finding {
	return in.appendPluginFindings(nil, h)
}

// appendPluginFindings is pluginFindings appending to out.
func (in *input) appendPluginFindings(out []vulnzero.Finding, h nessusHit) []vulnzero.Finding {
	fam, ver := h.osFamily, h.osVersion
	if !h.osRead {
		fam, ver = osFromText(h.os)
	}
	base := in.finding()
	base.Host = h.host
	base.OS = osName(fam, ver)
	base.OSFamily = NormalizeOSFamily(fam)
	base.Title = h.name
	base.Severity = h.severity
	base.CVSS, base.CVSSVector = h.cvss, h.vector
	base.RuleID = h.pluginID
	if !h.firstSeen.IsZero() {
		base.FirstSeen = h.firstSeen
	}
	if h.fixed {
		base.Status, base.FixedAt = vulnzero.FindingFixed, h.fixedAt
	}
	ids := cleanIDs(h.cves)
	if len(ids) == 0 {
		ids = []string{"NESSUS-" + h.pluginID}
	}
	pairs := nessusPackages(h.output)
	if len(pairs) == 0 {
		base.Package = "nessus:" + h.pluginID
		base.Installed, _ = nessusVersions(h.output)
		return appendPerID(out, base, ids)
	}
	for _, p := range pairs {
		f := base
		f.Package, f.Installed, f.Fixed = p.name, p.installed, p.fixed
		f.Ecosystem = firstNonEmpty(osEcosystem(fam), p.ecosystem)
		out = appendPerID(out, f, ids)
	}
	return out
}

// cleanIDs trims vulnerability ids and drops empty and repeated ones.
func cleanIDs(ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if id = strings.TrimSpace(id); id != "" {
			out = append(out, id)
		}
	}
	return dedupeStrings(out)
}

// nessusSeverity reads a risk factor word or a 0–4 severity number. ok is
// false for informational results (None, Info, 0), which are not
// vulnerabilities and are not imported.
func nessusSeverity(s string) (sev vulnzero.Severity, ok bool, valid bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical", "4":
		return vulnzero.SeverityCritical, true, true
	case "high", "3":
		return vulnzero.SeverityHigh, true, true
	case "medium", "2":
		return vulnzero.SeverityMedium, true, true
	case "low", "1":
		return vulnzero.SeverityLow, true, true
	case "none", "info", "informational", "0":
		return vulnzero.SeverityUnknown, false, true
	}
	return vulnzero.SeverityUnknown, false, false
}

// nessusVector normalizes Tenable's vectors: "CVSS2#AV:N/…" loses its
// prefix (CVSS v2 vectors are written bare), and a bare v3 vector
// ("AV:N/AC:L/PR:N/…", as the CSV and JSON exports write it) gets
// "CVSS:3.0/", the version Tenable scores.
func nessusVector(v string, version int) string {
	v = strings.TrimSpace(v)
	v = strings.TrimPrefix(v, "CVSS2#")
	if v == "" || strings.HasPrefix(v, "CVSS:") {
		return v
	}
	switch version {
	case 3:
		return "CVSS:3.0/" + v
	case 4:
		return "CVSS:4.0/" + v
	}
	return v
}

// --- .nessus XML --------------------------------------------------------------

func parseNessusXML(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	w := newFastXMLWalker(in, r)
	root, err := w.root()
	if errors.Is(err, errNoReport) {
		return w.errf("no root element: the report is empty or truncated")
	}
	if err != nil {
		return err
	}
	if root.Name.Local != "NessusClientData_v2" {
		return w.errf("root element <%s> is not NessusClientData_v2 (export the scan as .nessus)", root.Name.Local)
	}
	w.path = append(w.path, xmlStep{name: root.Name.Local})
	par := newOrdered()
	err = w.each(func(se xml.StartElement) error {
		if se.Name.Local != "Report" {
			return w.skip() // Policy: most of the file, and no findings
		}
		return w.each(func(se xml.StartElement) error {
			if se.Name.Local != "ReportHost" {
				return w.skip()
			}
			return nessusHost(w, par, se, emit)
		})
	})
	if err == nil {
		w.path = w.path[:0]
		err = w.end()
	}
	return par.finish(err)
}

type nessusHostInfo struct {
	name, host          string
	os                  string
	osFamily, osVersion string
	covered             bool
}

// nessusHost walks one ReportHost. Its ReportItems, most of a .nessus
// file, are read raw here and parsed in batches on the other cores (par),
// which hand the findings back in order.
func nessusHost(w *xmlWalker, par *ordered, se xml.StartElement, emit func(vulnzero.Finding) error) error {
	h := nessusHostInfo{name: strings.TrimSpace(attr(se, "name"))}
	line, col := w.dec.InputPos()
	cover := func() error {
		if h.covered {
			return nil
		}
		if h.host == "" {
			h.host = firstNonEmpty(w.in.opts.Host, h.name)
		}
		if h.host == "" {
			return w.errAt(line, col, "ReportHost has no name and no host-fqdn, hostname, netbios-name or host-ip tag")
		}
		h.covered = true
		host := h.host
		return par.then(func() error {
			w.in.cover(host)
			return nil
		})
	}
	var b *nessusBatch
	submit := func() error {
		if b == nil {
			return nil
		}
		err := par.submit(b.run(w.in, emit))
		b = nil
		return err
	}
	err := w.each(func(se xml.StartElement) error {
		switch se.Name.Local {
		case "HostProperties":
			if err := nessusHostProperties(w, &h); err != nil {
				return err
			}
			return cover()
		case "ReportItem":
			if err := cover(); err != nil {
				return err
			}
			if w.fast != nil && !par.inline {
				if body, base, line, lastNL, ok := w.fast.rawBody(); ok {
					if b == nil {
						b = &nessusBatch{host: h, path: slices.Clone(w.path[:len(w.path)-1]), buf: getBuffer(0), items: make([]nessusRaw, 0, batchSize)}
					}
					b.add(se, w.path[len(w.path)-1].i, body, base, line, lastNL)
					if len(b.items) == batchSize {
						return submit()
					}
					return nil
				}
			}
			// Read here, after everything before it.
			if err := submit(); err != nil {
				return err
			}
			if err := par.flush(); err != nil {
				return err
			}
			hit, ok, err := nessusItem(w, itemAttrs(se))
			if err != nil || !ok {
				return err
			}
			for _, f := range w.in.pluginFindings(h.hit(hit)) {
				if err := emit(f); err != nil {
					return err
				}
			}
			return nil
		}
		return w.skip()
	})
	// The items read before an error come before it.
	if serr := submit(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	// A host without results (or only informational ones) is clean.
	return cover()
}

// hit completes a result with what its host says.
func (h nessusHostInfo) hit(hit nessusHit) nessusHit {
	hit.host, hit.os = h.host, h.os
	hit.osFamily, hit.osVersion, hit.osRead = h.osFamily, h.osVersion, true
	return hit
}

// nessusBatch is a run of one host's ReportItems, read raw, to be parsed
// on a worker with the same code (nessusItem) on copies of their bytes,
// each at its own position, so errors name the same line, column and path.
type nessusBatch struct {
	host  nessusHostInfo
	path  []xmlStep // the path of the ReportHost
	buf   []byte    // the items' bodies, one after another
	items []nessusRaw
}

type nessusRaw struct {
	attrs        nessusAttrs
	name         string // the element's name as written, prefix and all
	index        int    // among the host's ReportItems, for the path
	from, to     int    // the body in buf
	base, lastNL int64
	line         int
}

func (b *nessusBatch) add(se xml.StartElement, index int, body []byte, base int64, line int, lastNL int64) {
	from := len(b.buf)
	b.buf = append(b.buf, body...)
	name := se.Name.Local
	if se.Name.Space != "" {
		name = se.Name.Space + ":" + name
	}
	b.items = append(b.items, nessusRaw{attrs: itemAttrs(se), name: name, index: index, from: from, to: len(b.buf), base: base, lastNL: lastNL, line: line})
}

// findingSlices hold a batch's findings from its worker to its consumer.
var findingSlices = sync.Pool{New: func() any { return new([]vulnzero.Finding) }}

// segmentXML parse batches on worker goroutines.
var segmentXML = sync.Pool{New: func() any { return newFastXML(nil) }}

// run parses the batch (on a worker) and returns what emits its findings,
// in order, and then its error if an item had one (on the parser's
// goroutine).
func (b *nessusBatch) run(in *input, emit func(vulnzero.Finding) error) func() func() error {
	return func() func() error {
		x := segmentXML.Get().(*fastXML)
		defer segmentXML.Put(x)
		ww := &xmlWalker{in: in, dec: x, fast: x, src: &readErrs{}, path: make([]xmlStep, len(b.path), len(b.path)+8)}
		copy(ww.path, b.path)
		outp := findingSlices.Get().(*[]vulnzero.Finding)
		out := (*outp)[:0]
		var err error
		for _, it := range b.items {
			ww.path = append(ww.path[:len(b.path)], xmlStep{name: "ReportItem", i: it.index})
			x.resetSegment(b.buf[it.from:it.to], it.base, it.line, it.lastNL, it.name)
			hit, ok, ierr := nessusItem(ww, it.attrs)
			if ierr != nil {
				err = ierr
				break
			}
			if ok {
				out = in.appendPluginFindings(out, b.host.hit(hit))
			}
		}
		x.buf = nil // the batch's, not the pool's
		return func() error {
			defer func() {
				putBuffer(b.buf)
				clear(out) // no strings kept alive from the pool
				*outp = out[:0]
				findingSlices.Put(outp)
			}()
			for _, f := range out {
				if err := emit(f); err != nil {
					return err
				}
			}
			return err
		}
	}
}

func nessusHostProperties(w *xmlWalker, h *nessusHostInfo) error {
	var fqdn, hostname, netbios, ip, os1, os2 string
	err := w.each(func(se xml.StartElement) error {
		if se.Name.Local != "tag" {
			return w.skip()
		}
		v, err := w.text()
		if err != nil {
			return err
		}
		switch attr(se, "name") {
		case "host-fqdn":
			fqdn = v
		case "hostname":
			hostname = v
		case "netbios-name":
			netbios = v
		case "host-ip":
			ip = v
		case "operating-system":
			os1 = v
		case "os":
			os2 = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Names first: the inventory matches names, FQDNs and IPs, and names
	// survive DHCP. ReportHost@name is whatever the scan target was.
	h.host = firstNonEmpty(w.in.opts.Host, fqdn, hostname, netbios, h.name, ip)
	h.os = firstNonEmpty(os1, os2)
	h.osFamily, h.osVersion = osFromText(h.os)
	return nil
}

// nessusAttrs are the attributes of a ReportItem VulnZero reads.
type nessusAttrs struct {
	pluginID, pluginName, severity string
}

func itemAttrs(se xml.StartElement) nessusAttrs {
	return nessusAttrs{
		pluginID:   strings.TrimSpace(attr(se, "pluginID")),
		pluginName: strings.TrimSpace(attr(se, "pluginName")),
		severity:   strings.TrimSpace(attr(se, "severity")),
	}
}

// nessusItem reads one ReportItem element by hand (no reflection: .nessus
// files hold hundreds of thousands of them). ok is false for informational
// results.
func nessusItem(w *xmlWalker, a nessusAttrs) (nessusHit, bool, error) {
	line, col := w.dec.InputPos()
	hit := nessusHit{pluginID: a.pluginID, name: a.pluginName}
	sevAttr := a.severity
	var risk, v3, v3vec, v4, v4vec, v2, v2vec string
	err := w.each(func(se xml.StartElement) error {
		var dst *string
		switch se.Name.Local {
		case "cve":
			s, err := w.text()
			if s != "" {
				hit.cves = append(hit.cves, s)
			}
			return err
		case "risk_factor":
			dst = &risk
		case "cvss3_base_score":
			dst = &v3
		case "cvss3_vector":
			dst = &v3vec
		case "cvss4_base_score":
			dst = &v4
		case "cvss4_vector":
			dst = &v4vec
		case "cvss_base_score":
			dst = &v2
		case "cvss_vector":
			dst = &v2vec
		case "plugin_output":
			dst = &hit.output
		case "plugin_name":
			if hit.name != "" {
				return w.skip()
			}
			dst = &hit.name
		default:
			return w.skip()
		}
		s, err := w.text()
		*dst = s
		return err
	})
	if err != nil {
		return hit, false, err
	}
	if hit.pluginID == "" {
		return hit, false, w.errAt(line, col, "ReportItem has no pluginID")
	}
	// The risk factor decides; without one, the severity attribute does,
	// except that Nessus 4 wrote severity 1 without a risk factor on
	// service and port reports ("Service Detection"): a result with no
	// risk factor, no CVE and no CVSS score is informational.
	sev, ok, valid := nessusSeverity(risk)
	if !valid {
		if sev, ok, valid = nessusSeverity(sevAttr); !valid {
			return hit, false, w.errAt(line, col, "ReportItem %s: severity %q is not 0–4 and risk_factor %q is not None/Low/Medium/High/Critical", hit.pluginID, sevAttr, risk)
		}
		if len(hit.cves) == 0 && v3 == "" && v4 == "" && v2 == "" {
			ok = false
		}
	}
	if !ok || sevAttr == "0" {
		return hit, false, nil
	}
	hit.severity = sev
	for _, s := range []struct {
		score, vec string
		version    int
		field      string
	}{{v3, v3vec, 3, "cvss3_base_score"}, {v4, v4vec, 4, "cvss4_base_score"}, {v2, v2vec, 2, "cvss_base_score"}} {
		if s.score == "" {
			continue
		}
		f, err := strconv.ParseFloat(s.score, 64)
		if err != nil || f < 0 || f > 10 {
			return hit, false, w.errAt(line, col, "ReportItem %s: %s %q is not a number from 0 to 10", hit.pluginID, s.field, s.score)
		}
		if f > 0 && hit.cvss == 0 {
			hit.cvss, hit.vector = f, nessusVector(s.vec, s.version)
		}
	}
	return hit, true, nil
}
