package scan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

// qualysPreambleRecords is how many records before the header a Qualys CSV
// may have: the VMDR UI export writes a three-line preamble (report title,
// company, user).
const qualysPreambleRecords = 6

// isQualysCSVHeader reports whether header columns are a Qualys export's:
// a QID column and a title.
func isQualysCSVHeader(cols map[string]int) bool {
	return has(cols, "qid") && (has(cols, "title") || has(cols, "vuln title"))
}

// qualysCSVHeaderLine finds the header among the first lines of head.
func qualysCSVHeaderLine(head []byte) (int, bool) {
	b := head
	for i := 0; i < qualysPreambleRecords && len(b) > 0; i++ {
		line := headerLine(b)
		b = b[len(line):]
		if len(b) > 0 {
			b = b[1:]
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if cols := csvHeaderCols(line); cols != nil && isQualysCSVHeader(cols) {
			return i, true
		}
	}
	return 0, false
}

func parseQualysCSV(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	discardBOM(r)
	cr := newCSVReader(r)
	var cols map[string]int
	for i := 0; cols == nil; i++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			if i == 0 {
				return nil
			}
			return &vulnzero.PositionError{File: in.name, Line: 1, Err: errors.New("no Qualys header (a row with QID and Title columns) in the file")}
		}
		if err != nil {
			return csvError(in, err)
		}
		if c := headerIndex(rec); isQualysCSVHeader(c) {
			cols = c
			break
		}
		if i+1 >= qualysPreambleRecords {
			line, _ := cr.FieldPos(0)
			return &vulnzero.PositionError{File: in.name, Line: line, Err: fmt.Errorf("no Qualys header (a row with QID and Title columns) in the first %d rows", qualysPreambleRecords)}
		}
	}
	c := &csvCells{in: in, r: cr, cols: cols}
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
		if err := checkText(in, cr, rec); err != nil {
			return err
		}
		c.rec = rec
		h, ok, err := qualysRow(c)
		if err != nil {
			return err
		}
		in.cover(h.host)
		if !ok {
			continue
		}
		for _, f := range in.qualysFindings(h) {
			if err := emit(f); err != nil {
				return err
			}
		}
	}
}

// qualysRow reads one row of the detection, VMDR (QID or CVE centric) or
// monthly PCI CSV; ok is false for rows that are not open vulnerabilities
// (their host is still returned: the scan covered it).
func qualysRow(c *csvCells) (qualysHit, bool, error) {
	hostCols := []string{"fqdn", "dns", "hostname", "asset name", "netbios", "ip", "asset ipv4"}
	host := c.get(hostCols...)
	if i := strings.IndexByte(host, ','); i > 0 {
		host = strings.TrimSpace(host[:i]) // "10.0.0.20,10.0.0.21"
	}
	h := qualysHit{
		host:    firstNonEmpty(c.in.opts.Host, host),
		os:      c.get("os", "operating system"),
		title:   c.get("title", "vuln title"),
		cves:    splitIDs(c.get("cve id", "cve", "cveid")),
		results: c.get("results", "result"),
	}
	if h.host == "" {
		return h, false, c.errf(c.colOf(hostCols...), "no host: the host columns are empty")
	}
	qidText := c.get("qid")
	qid, err := strconv.Atoi(qidText)
	if err != nil || qid <= 0 {
		return h, false, c.errf("qid", "QID %q is not a positive number", qidText)
	}
	h.qid = qid
	fp := strings.ToLower(c.get("false positive status"))
	if qualysSkip(c.get("type", "type detected"), c.get("vuln status", "status"), c.get("ignored"), c.get("disabled")) ||
		fp == "approved" || fp == "accepted" {
		return h, false, nil
	}
	if h.fixed = qualysFixed(c.get("vuln status", "status")); h.fixed {
		h.fixedAt, _ = parseTimestamp(c.get("last fixed", "date last fixed"))
	}
	sevCol := c.colOf("q_severity", "severity")
	if s := c.get("q_severity", "severity"); s != "" {
		if h.severity, err = qualysSeverityText(s); err != nil {
			return h, false, c.errf(sevCol, "%v", err)
		}
	}
	cvssCols := []string{"cvss3 base", "cvssv3.1 base (nvd)", "cvss3.1 base", "cvss v3 base", "cvss base", "cvss_base", "cvssv2 base (nvd)"}
	for _, col := range cvssCols {
		score, vec, err := qualysScore(c.get(col))
		if err != nil {
			return h, false, c.errf(col, "%v", err)
		}
		if score > 0 {
			h.cvss, h.vector = score, vec
			break
		}
	}
	if v := c.get("first detected"); v != "" {
		t, err := qualysDate(v)
		if err != nil {
			return h, false, c.errf("first detected", "%v", err)
		}
		h.firstSeen = t
	}
	if v, ok := c.in.opts.QualysKB.Lookup(qid); ok {
		h.join(v)
	}
	if h.title == "" && len(h.cves) == 0 {
		return h, false, c.errf("qid", "QID %d has no title and no CVE here, and no KnowledgeBase entry: it would be a bare QID", qid)
	}
	return h, true, nil
}

// qualysSeverityText reads a 1–5 level or a word (the PCI export's
// Low/Medium/High).
func qualysSeverityText(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 5 {
			return 0, fmt.Errorf("severity %d is not 1–5", n)
		}
		return n, nil
	}
	switch strings.ToLower(s) {
	case "urgent", "critical":
		return 5, nil
	case "serious", "high":
		return 4, nil
	case "medium":
		return 3, nil
	case "minimal", "low":
		return 2, nil
	}
	return 0, fmt.Errorf("severity %q is not 1–5 or Low/Medium/High/Critical", s)
}

// qualysDate reads the date layouts of Qualys exports: "05/13/2021
// 07:08:28" (month first), "Feb 03, 2026 07:00 AM", ISO-8601, and
// DD/MM/YYYY when the first number cannot be a month.
func qualysDate(s string) (time.Time, error) {
	for _, layout := range []string{"01/02/2006 15:04:05", "01/02/2006 15:04", "Jan 02, 2006 03:04 PM", "Jan 2, 2006 03:04 PM", "Jan 02, 2006 15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if t, ok := parseTimestamp(s); ok {
		return t, nil
	}
	date, _, _ := strings.Cut(s, " ")
	if t, err := parseDate(date); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("date %q is not MM/DD/YYYY hh:mm:ss, \"Jan 02, 2006 03:04 PM\" or ISO-8601", s)
}
