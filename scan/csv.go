package scan

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

var csvParser = parser{
	format: FormatCSV,
	detect: detectCSV,
	parse:  parseCSV,
}

// csvLayout is one CSV column layout: which header it recognises and how a
// row becomes findings.
type csvLayout struct {
	name     string
	required []string // header names (lowercase) that must be present
	// match reports whether a header (names lowercased and trimmed) is this
	// layout, before required columns are checked.
	match func(cols map[string]int) bool
	row   func(r *csvRow) ([]vulnzero.Finding, error)
}

// csvLayouts in the order they are tried on a header.
var csvLayouts = []csvLayout{
	{
		name:     "vulnzero",
		required: []string{"host", "package", "installed", "cve"},
		// No other scanner's CSV has a plain "package" column.
		match: func(c map[string]int) bool { return has(c, "package") },
		row:   vulnzeroRow,
	},
	{
		name:     "defectdojo-generic",
		required: []string{"title", "severity", "date"},
		// Title, Severity and Date are what DefectDojo itself requires;
		// Qualys CSVs have Title and Severity but no Date.
		match: func(c map[string]int) bool { return has(c, "title") && has(c, "severity") && has(c, "date") },
		row:   defectDojoRow,
	},
}

func has(cols map[string]int, name string) bool { _, ok := cols[name]; return ok }

// detectCSV reads the first line as a CSV header and accepts it when it is
// one of the layouts.
func detectCSV(head []byte) bool {
	line := head
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		line = head[:i]
	}
	rec, err := csv.NewReader(bytes.NewReader(line)).Read()
	if err != nil || len(rec) < 2 {
		return false
	}
	cols := headerIndex(rec)
	for _, l := range csvLayouts {
		if l.match(cols) {
			return true
		}
	}
	return false
}

// headerIndex maps trimmed, lowercased header names to their column; the
// first of two equal names wins (parseCSV rejects such headers before).
func headerIndex(rec []string) map[string]int {
	cols := make(map[string]int, len(rec))
	for i, name := range rec {
		n := strings.ToLower(strings.TrimSpace(string(trimBOM([]byte(name)))))
		if _, dup := cols[n]; !dup && n != "" {
			cols[n] = i
		}
	}
	return cols
}

// csvRow is the current record with its header, and what a layout needs to
// report a position.
type csvRow struct {
	in   *input
	r    *csv.Reader
	cols map[string]int
	rec  []string
}

// get returns the trimmed cell of a column, "" when the column or the cell
// is missing.
func (r *csvRow) get(name string) string {
	i, ok := r.cols[name]
	if !ok || i >= len(r.rec) {
		return ""
	}
	return strings.TrimSpace(r.rec[i])
}

// errf is a position error at the cell of column name (at the start of the
// record when the column is absent).
func (r *csvRow) errf(name, format string, args ...any) error {
	i, ok := r.cols[name]
	if !ok || i >= len(r.rec) {
		i = 0
	}
	line, col := r.r.FieldPos(i)
	return &vulnzero.PositionError{File: r.in.name, Line: line, Column: col, Path: name, Err: fmt.Errorf(format, args...)}
}

func parseCSV(in *input, br *bufio.Reader, emit func(vulnzero.Finding) error) error {
	if b, _ := br.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // exports end with rows of bare commas; check cells, not counts
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return csvError(in, err)
	}
	cols := map[string]int{}
	for i, name := range header {
		n := strings.ToLower(strings.TrimSpace(name))
		if n == "" {
			continue
		}
		if j, dup := cols[n]; dup {
			line, col := cr.FieldPos(i)
			return &vulnzero.PositionError{File: in.name, Line: line, Column: col, Err: fmt.Errorf("header names column %q twice (columns %d and %d)", n, j+1, i+1)}
		}
		cols[n] = i
	}
	var layout *csvLayout
	for i := range csvLayouts {
		if csvLayouts[i].match(cols) {
			layout = &csvLayouts[i]
			break
		}
	}
	line, _ := cr.FieldPos(0)
	if layout == nil {
		return &vulnzero.PositionError{File: in.name, Line: line, Err: errors.New("header matches no known CSV layout: want VulnZero columns (host,os,package,installed,fixed,cve,severity,cvss) or DefectDojo generic columns (Date,Title,Url,Severity,…)")}
	}
	var missing []string
	for _, name := range layout.required {
		if !has(cols, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return &vulnzero.PositionError{File: in.name, Line: line, Err: fmt.Errorf("%s CSV header lacks required column(s) %s", layout.name, strings.Join(missing, ", "))}
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
		fs, err := layout.row(row)
		if err != nil {
			return err
		}
		for _, f := range fs {
			in.cover(f.Host)
			if err := emit(f); err != nil {
				return err
			}
		}
	}
}

func csvError(in *input, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &vulnzero.PositionError{File: in.name, Line: pe.Line, Column: pe.Column, Err: pe.Err}
	}
	return fmt.Errorf("read %s: %w", in.name, err)
}

func blank(rec []string) bool {
	for _, c := range rec {
		if strings.TrimSpace(c) != "" {
			return false
		}
	}
	return true
}

// vulnzeroRow reads the VulnZero layout:
//
//	host,os,package,installed,fixed,cve,severity,cvss
func vulnzeroRow(r *csvRow) ([]vulnzero.Finding, error) {
	f := r.in.finding()
	f.Host = firstNonEmpty(r.in.opts.Host, r.get("host"))
	f.Package = r.get("package")
	f.Installed = r.get("installed")
	for _, c := range []struct{ name, val string }{{"host", f.Host}, {"package", f.Package}, {"installed", f.Installed}} {
		if c.val == "" {
			return nil, r.errf(c.name, "%s is empty", c.name)
		}
	}
	f.OS = strings.Join(strings.Fields(strings.ToLower(r.get("os"))), " ")
	f.OSFamily = NormalizeOSFamily(f.OS)
	f.Ecosystem = osEcosystem(f.OS)
	f.Fixed = pickFixed(r.get("fixed"), f.Installed)
	var err error
	if f.Severity, err = csvSeverity(r.get("severity"), false); err != nil {
		return nil, r.errf("severity", "%v", err)
	}
	if f.CVSS, err = csvScore(r.get("cvss")); err != nil {
		return nil, r.errf("cvss", "%v", err)
	}
	ids := splitIDs(r.get("cve"))
	if len(ids) == 0 {
		return nil, r.errf("cve", "cve is empty")
	}
	return perID(f, ids), nil
}

// defectDojoRow reads DefectDojo's "Generic Findings Import" layout. It has
// no package columns, so these findings are tracked but cannot be grouped
// into a patch.
func defectDojoRow(r *csvRow) ([]vulnzero.Finding, error) {
	fp, err := csvBool(r.get("falsepositive"))
	if err != nil {
		return nil, r.errf("falsepositive", "%v", err)
	}
	if fp {
		return nil, nil // a false positive is not a vulnerability on the host
	}
	f := r.in.finding()
	f.Title = r.get("title")
	if f.Title == "" {
		return nil, r.errf("title", "title is empty")
	}
	host, err := urlHost(r.get("url"))
	if err != nil {
		return nil, r.errf("url", "%v", err)
	}
	f.Host = firstNonEmpty(r.in.opts.Host, host)
	if f.Host == "" {
		return nil, r.errf("url", "no host: Url is empty (configure a host for this source)")
	}
	if f.Severity, err = csvSeverity(r.get("severity"), true); err != nil {
		return nil, r.errf("severity", "%v", err)
	}
	f.CVSSVector = firstNonEmpty(r.get("cvssv3"), r.get("cvssv4"))
	for _, col := range []string{"cvssv3_score", "cvssv4_score"} {
		if f.CVSS != 0 {
			break
		}
		if f.CVSS, err = csvScore(r.get(col)); err != nil {
			return nil, r.errf(col, "%v", err)
		}
	}
	fixAvailable := true
	if v := r.get("fix_available"); v != "" {
		if fixAvailable, err = csvBool(v); err != nil {
			return nil, r.errf("fix_available", "%v", err)
		}
	}
	if fixAvailable {
		f.Fixed = pickFixed(r.get("fix_version"), "")
	}
	if v := r.get("date"); v != "" {
		t, err := parseDate(v)
		if err != nil {
			return nil, r.errf("date", "%v", err)
		}
		f.FirstSeen = t
	}
	// Closed in DefectDojo (inactive or mitigated) means fixed here.
	active, mitigated := true, false
	if v := r.get("active"); v != "" {
		if active, err = csvBool(v); err != nil {
			return nil, r.errf("active", "%v", err)
		}
	}
	if mitigated, err = csvBool(r.get("ismitigated")); err != nil {
		return nil, r.errf("ismitigated", "%v", err)
	}
	if !active || mitigated {
		f.Status = vulnzero.FindingFixed
		f.FixedAt = r.in.now
		if v := r.get("mitigateddate"); v != "" {
			if f.FixedAt, err = parseDate(v); err != nil {
				return nil, r.errf("mitigateddate", "%v", err)
			}
		}
	}
	// The layout names no package: the component when given, else a
	// pseudo-package per title (like qualys:<QID>), which no patch targets.
	f.Package = r.get("component_name")
	f.Installed = r.get("component_version")
	if f.Package == "" {
		f.Package = "defectdojo:" + f.Title
	}
	ids := append(splitIDs(r.get("vulnerability id")), splitIDs(r.get("cve"))...)
	if len(ids) == 0 {
		// Without a CVE the title is the only identity the layout has.
		ids = []string{f.Title}
	}
	return perID(f, dedupeStrings(ids)), nil
}

// perID makes one finding per vulnerability id of a row.
func perID(f vulnzero.Finding, ids []string) []vulnzero.Finding {
	return appendPerID(make([]vulnzero.Finding, 0, len(ids)), f, ids)
}

// appendPerID is perID appending to out.
func appendPerID(out []vulnzero.Finding, f vulnzero.Finding, ids []string) []vulnzero.Finding {
	for _, id := range ids {
		f.CVE = id
		out = append(out, f)
	}
	return out
}

// splitIDs splits a cell listing vulnerability ids by commas, semicolons or
// spaces.
func splitIDs(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
}

func dedupeStrings(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// csvSeverity reads low/medium/high/critical/unknown in any case; empty is
// unknown. DefectDojo's "Info" is unknown too: VulnZero has no level below
// low, and informational findings should not pass a "min severity low"
// policy.
func csvSeverity(s string, allowInfo bool) (vulnzero.Severity, error) {
	if s == "" {
		return vulnzero.SeverityUnknown, nil
	}
	if allowInfo && (strings.EqualFold(s, "info") || strings.EqualFold(s, "informational")) {
		return vulnzero.SeverityUnknown, nil
	}
	sev, err := vulnzero.ParseSeverity(s)
	if err != nil {
		return 0, fmt.Errorf("severity %q is not one of unknown, low, medium, high, critical", s)
	}
	return sev, nil
}

func csvScore(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 10 {
		return 0, fmt.Errorf("CVSS score %q is not a number from 0 to 10", s)
	}
	return v, nil
}

func csvBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "", "false", "f", "no", "n", "0":
		return false, nil
	case "true", "t", "yes", "y", "1":
		return true, nil
	}
	return false, fmt.Errorf("%q is not a boolean (TRUE or FALSE)", s)
}

// urlHost takes the host out of DefectDojo's Url column, which holds full
// URLs ("https://192.168.1.1/"), bare names ("localhost", "foo.bar/path")
// or host:port ("127.0.0.1:80").
func urlHost(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if !strings.Contains(s, "://") {
		s = "//" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", s, err)
	}
	return u.Hostname(), nil
}

// parseDate is lenient because DefectDojo files mix ISO-8601, MM/DD/YYYY
// and DD/MM/YYYY. A slashed date is read month first (DefectDojo's own
// default) unless the first number cannot be a month.
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if p := strings.Split(s, "/"); len(p) == 3 {
		a, errA := strconv.Atoi(p[0])
		b, errB := strconv.Atoi(p[1])
		y, errY := strconv.Atoi(p[2])
		month, day := a, b
		if a > 12 {
			month, day = b, a
		}
		t := time.Date(y, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		if errA == nil && errB == nil && errY == nil && len(p[2]) == 4 && month >= 1 && month <= 12 && t.Day() == day {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q is not ISO-8601, MM/DD/YYYY or DD/MM/YYYY", s)
}
