package scan

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"vulnzero.dev/vulnzero"
)

// nessusCSVHeader returns the columns of a Tenable CSV header (names
// lowercased and trimmed, the first of equal names winning), or nil when
// line is not one: Nessus Professional and Tenable.io write "Plugin ID",
// Tenable.sc "Plugin" with "Plugin Name".
func nessusCSVHeader(line []byte) map[string]int {
	cols := csvHeaderCols(line)
	if has(cols, "plugin id") || has(cols, "plugin") && has(cols, "plugin name") {
		return cols
	}
	return nil
}

// headerLine is the first line of b.
func headerLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// csvHeaderCols parses one line as a CSV header; nil when it is not CSV.
// Empty names (Tenable.io's export has two) are left out.
func csvHeaderCols(line []byte) map[string]int {
	rec, err := csv.NewReader(bytes.NewReader(trimBOM(line))).Read()
	if err != nil || len(rec) < 2 {
		return nil
	}
	return headerIndex(rec)
}

// csvCells reads rows of a vendor CSV by column name. Vendors repeat and
// omit names, so lookups take the first column of a name, and a missing
// column is an empty cell.
type csvCells struct {
	in   *input
	r    *csv.Reader
	cols map[string]int
	rec  []string
}

// get returns the first non-empty cell among the named columns, with the
// placeholders vendors write for "nothing" ("N/A", "null", "-", and
// Qualys's Excel-escaped "'-") read as empty.
func (c *csvCells) get(names ...string) string {
	for _, n := range names {
		i, ok := c.cols[n]
		if !ok || i >= len(c.rec) {
			continue
		}
		v := strings.TrimSpace(c.rec[i])
		v = strings.TrimPrefix(v, "'")
		switch strings.ToLower(v) {
		case "", "n/a", "null", "-", "none available":
			continue
		}
		return v
	}
	return ""
}

// colOf is the first of names the header has, for error positions.
func (c *csvCells) colOf(names ...string) string {
	for _, n := range names {
		if has(c.cols, n) {
			return n
		}
	}
	return ""
}

func (c *csvCells) errf(col, format string, args ...any) error {
	i, ok := c.cols[col]
	if !ok || i >= len(c.rec) {
		i = 0
	}
	line, column := c.r.FieldPos(i)
	return &vulnzero.PositionError{File: c.in.name, Line: line, Column: column, Path: col, Err: fmt.Errorf(format, args...)}
}

// checkText rejects a record with cells that are not UTF-8 text (an
// export saved in a legacy code page) or hold NUL bytes: the databases
// store UTF-8 text, and would fail the import later without a position.
func checkText(in *input, cr *csv.Reader, rec []string) error {
	for i, c := range rec {
		if !utf8.ValidString(c) || strings.IndexByte(c, 0) >= 0 {
			line, col := cr.FieldPos(i)
			return &vulnzero.PositionError{File: in.name, Line: line, Column: col, Err: errors.New("cell is not UTF-8 text (save the export as UTF-8)")}
		}
	}
	return nil
}

func newCSVReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // exports end with rows of bare commas, and Qualys starts with a preamble
	cr.ReuseRecord = true
	cr.LazyQuotes = false
	return cr
}

func discardBOM(r *bufio.Reader) {
	if b, _ := r.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		r.Discard(3)
	}
}

func parseNessusCSV(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	discardBOM(r)
	cr := newCSVReader(r)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return csvError(in, err)
	}
	cols := headerIndex(header)
	line, _ := cr.FieldPos(0)
	if !(has(cols, "plugin id") || has(cols, "plugin") && has(cols, "plugin name")) {
		return &vulnzero.PositionError{File: in.name, Line: line, Err: errors.New("header is not a Nessus or Tenable CSV export: want a \"Plugin ID\" column (Nessus, Tenable.io) or \"Plugin\" and \"Plugin Name\" (Tenable.sc)")}
	}
	if !has(cols, "host") && !has(cols, "ip address") && !has(cols, "fqdn") && !has(cols, "dns name") && in.opts.Host == "" {
		return &vulnzero.PositionError{File: in.name, Line: line, Err: errors.New("header has no host column (Host, IP Address, FQDN or DNS Name)")}
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
		hit, ok, err := nessusRow(c)
		if err != nil {
			return err
		}
		if hit.host != "" {
			in.cover(hit.host)
		}
		if !ok {
			continue
		}
		for _, f := range in.pluginFindings(hit) {
			if err := emit(f); err != nil {
				return err
			}
		}
	}
}

// nessusRow reads one row; ok is false for informational and fixed rows
// (their host is still returned: the scan covered it).
func nessusRow(c *csvCells) (nessusHit, bool, error) {
	hostCols := []string{"fqdn", "dns name", "host", "netbios", "netbios name", "ip address"}
	hit := nessusHit{
		host:     firstNonEmpty(c.in.opts.Host, c.get(hostCols...)),
		os:       c.get("os", "operating system"),
		pluginID: c.get("plugin id", "plugin"),
		name:     c.get("name", "plugin name"),
		cves:     splitIDs(c.get("cve")),
		output:   strings.TrimPrefix(c.get("plugin output"), "Plugin Output:"),
	}
	switch {
	case hit.host == "":
		return hit, false, c.errf(c.colOf(hostCols...), "no host: the host columns are empty")
	case hit.pluginID == "":
		return hit, false, c.errf(c.colOf("plugin id", "plugin"), "plugin id is empty")
	}
	// Tenable says it is gone: imported fixed.
	hit.fixed = strings.EqualFold(c.get("vulnerability state"), "fixed")
	sevCol := c.colOf("risk", "severity", "risk factor")
	sevText := c.get("risk", "severity", "risk factor")
	if sevText == "" {
		return hit, false, c.errf(sevCol, "no severity: Risk, Severity and Risk Factor are empty")
	}
	sev, ok, valid := nessusSeverity(sevText)
	if !valid {
		return hit, false, c.errf(sevCol, "severity %q is not None/Low/Medium/High/Critical or 0–4", sevText)
	}
	if !ok {
		return hit, false, nil
	}
	hit.severity = sev
	for _, s := range []struct {
		scores, vectors []string
		version         int
	}{
		{[]string{"cvss v3.0 base score", "cvss3 base score", "cvss v3 base score"}, []string{"cvss3 vector", "cvss v3 vector"}, 3},
		{[]string{"cvss v4.0 base score", "cvss4 base score", "cvss v4 base score"}, []string{"cvss4 vector", "cvss v4 vector"}, 4},
		{[]string{"cvss", "cvss v2.0 base score", "cvss base score", "cvss v2 base score"}, []string{"cvss vector", "cvss v2 vector"}, 2},
	} {
		raw := c.get(s.scores...)
		if raw == "" {
			continue
		}
		v, err := tenableScore(raw)
		if err != nil {
			return hit, false, c.errf(c.colOf(s.scores...), "%v", err)
		}
		if v > 0 {
			hit.cvss, hit.vector = v, nessusVector(c.get(s.vectors...), s.version)
			break
		}
	}
	if v := c.get("first found", "first discovered"); v != "" {
		t, err := tenableDate(v)
		if err != nil {
			return hit, false, c.errf(c.colOf("first found", "first discovered"), "%v", err)
		}
		hit.firstSeen = t
	}
	return hit, true, nil
}

// tenableScore reads a CVSS score. Some Nessus CSV templates lose the
// decimal point ("50" for 5.0, "75" for 7.5): a whole number above 10 (and
// at most 100) is read as tenths.
func tenableScore(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err == nil && v > 10 && v <= 100 && !strings.Contains(s, ".") {
		v /= 10
	}
	if err != nil || v < 0 || v > 10 {
		return 0, fmt.Errorf("CVSS score %q is not a number from 0 to 10", s)
	}
	return v, nil
}

// tenableDate reads ISO-8601 (Tenable.io) and Tenable.sc's "Feb 9, 2024
// 10:48:42 UTC".
func tenableDate(s string) (time.Time, error) {
	if t, ok := parseTimestamp(s); ok {
		return t, nil
	}
	for _, layout := range []string{"Jan 2, 2006 15:04:05 MST", "Jan 2, 2006 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q is not ISO-8601 or \"Jan 2, 2006 15:04:05 UTC\"", s)
}
