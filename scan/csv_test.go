package scan

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// csvWant is what one row must become.
type csvWant struct {
	host, cve, title, fixed string
	sev                     vulnzero.Severity
	status                  vulnzero.FindingStatus
	firstSeen, fixedAt      time.Time
}

// Each DefectDojo sample in realdata, read by hand. They are SYNTHETIC
// (typed by DefectDojo contributors) but the column layout is real.
var csvFiles = map[string]struct {
	opts Options
	rows []csvWant
	err  string // "line:col path: message" instead
}{
	// Active=False on every row: closed in DefectDojo, so fixed here.
	"defectdojo_generic_basic.csv": {rows: []csvWant{
		{"192.168.1.1", "Server leaks inodes via ETags, header found with file /, fields: 0xW/109b 0xpqG8TolgxCnpM/7cGOOI0GRS+rc", "", "", vulnzero.SeverityLow, vulnzero.FindingFixed, date("2018-01-30T00:00:00Z"), now},
		{"192.168.1.1", "The anti-clickjacking X-Frame-Options header is not present.", "", "", vulnzero.SeverityLow, vulnzero.FindingFixed, date("2018-01-30T00:00:00Z"), now},
		{"192.168.1.1", "Cookie connect.sid created without the secure flag", "", "", vulnzero.SeverityLow, vulnzero.FindingFixed, date("2018-01-30T00:00:00Z"), now},
		{"192.168.1.1", "Cookie connect.sid created without the httponly flag", "", "", vulnzero.SeverityLow, vulnzero.FindingFixed, date("2018-01-30T00:00:00Z"), now},
	}},
	// The header says " Url" with a leading space.
	"defectdojo_generic_epss_leading_space_header.csv": {rows: []csvWant{
		{"192.168.1.1", "Server leaks inodes via ETags, header found with file /, fields: 0xW/109b 0xpqG8TolgxCnpM/7cGOOI0GRS+rc", "", "", vulnzero.SeverityLow, vulnzero.FindingFixed, date("2018-01-30T00:00:00Z"), now},
	}},
	// Url is empty: without a configured host there is no one to blame.
	"defectdojo_generic_fix_version.csv": {err: "2:46 url: no host: Url is empty (configure a host for this source)"},
	"defectdojo_generic_iso_dates_mitigated.csv": {rows: []csvWant{
		{"vulnerable.endpoint.com", "Mitigated_ISO_Finding", "", "", vulnzero.SeverityLow, vulnzero.FindingFixed, date("2024-01-24T11:02:11Z"), date("2024-02-24T11:02:11Z")},
		{"vulnerable.endpoint.com", "Mitigated_Finding", "", "", vulnzero.SeverityLow, vulnzero.FindingFixed, date("2021-02-28T00:00:00Z"), date("2021-03-28T00:00:00Z")},
	}},
	// Url as a bare name, host:port and name/path; ids or, without, titles.
	"defectdojo_generic_minimal_vuln_id.csv": {rows: []csvWant{
		{"www.example.com", "CVE-2015-9235", "Title1", "", vulnzero.SeverityUnknown, vulnzero.FindingOpen, date("2021-02-28T00:00:00Z"), time.Time{}},
		{"localhost", "GHSA-5mrr-rgp6-x4gr", "Title2", "", vulnzero.SeverityUnknown, vulnzero.FindingOpen, date("2021-02-28T00:00:00Z"), time.Time{}},
		{"127.0.0.1", "Title3", "Title3", "", vulnzero.SeverityUnknown, vulnzero.FindingOpen, date("2021-02-28T00:00:00Z"), time.Time{}},
		{"foo.bar", "Title4", "Title4", "", vulnzero.SeverityUnknown, vulnzero.FindingOpen, date("2021-02-28T00:00:00Z"), time.Time{}},
	}},
}

func TestCSVRealdata(t *testing.T) {
	dir := requireRealdata(t, "generic-csv")
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatalf("no files in %s", dir)
	}
	for _, p := range files {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			exp, ok := csvFiles[name]
			if !ok {
				t.Fatalf("%s is not in csvFiles: say what it must produce", name)
			}
			format, fs, err := parseFile(t, p, exp.opts)
			if format != FormatCSV {
				t.Fatalf("detected %q", format)
			}
			if exp.err != "" {
				pe := positionError(t, err, p)
				if got := fmt.Sprintf("%d:%d %s: %v", pe.Line, pe.Column, pe.Path, pe.Err); got != exp.err {
					t.Errorf("error %q, want %q", got, exp.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			checkCSVRows(t, fs, exp.rows)
		})
	}
}

func checkCSVRows(t *testing.T, fs []vulnzero.Finding, rows []csvWant) {
	t.Helper()
	if len(fs) != len(rows) {
		t.Fatalf("%d findings, want %d: %+v", len(fs), len(rows), fs)
	}
	for i, w := range rows {
		f := fs[i]
		if w.title == "" {
			w.title = w.cve
		}
		got := csvWant{f.Host, f.CVE, f.Title, f.Fixed, f.Severity, f.Status, f.FirstSeen, f.FixedAt}
		if got != w {
			t.Errorf("row %d:\n got %+v\nwant %+v", i+1, got, w)
		}
		if f.Package != "defectdojo:"+f.Title || f.Scanner != "csv" || !f.LastSeen.Equal(now) {
			t.Errorf("row %d: package %q scanner %q last seen %v", i+1, f.Package, f.Scanner, f.LastSeen)
		}
	}
}

// A configured host stands in for the missing Url; fix_available FALSE
// means no fix even with a fix_version cell.
func TestCSVDefectDojoConfiguredHost(t *testing.T) {
	p := filepath.Join(fixtures, "generic-csv", "defectdojo_generic_fix_version.csv")
	_, fs, err := parseFile(t, p, Options{Host: "app-1"})
	if err != nil {
		t.Fatal(err)
	}
	checkCSVRows(t, fs, []csvWant{
		{"app-1", "Test finding with fix_version", "", "2.1.3", vulnzero.SeverityHigh, vulnzero.FindingOpen, date("2025-01-15T00:00:00Z"), time.Time{}},
		{"app-1", "Test finding without fix_version", "", "", vulnzero.SeverityMedium, vulnzero.FindingOpen, date("2025-01-15T00:00:00Z"), time.Time{}},
	})
}

func TestCSVDefectDojoColumns(t *testing.T) {
	body := "Date,Title,Url,Severity,Vulnerability Id,CVE,CVSSV3,CVSSV3_score,FalsePositive,Description\n" +
		"2024-05-01,openssl,https://web-1.example:8443/x,Critical,CVE-2024-1,CVE-2024-2,CVSS:3.1/AV:N,9.1,FALSE,\"multi\nline\"\n" +
		"2024-05-01,noise,web-2,Info,,,,,TRUE,\n" +
		"2024-05-01,info,web-3,Info,CVE-2024-3,CVE-2024-3,,,False,\n"
	fs, err := parseString(t, "dd.csv", body, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 3 {
		t.Fatalf("%d findings, want 3 (two ids, a false positive skipped, a repeated id once): %+v", len(fs), fs)
	}
	if fs[0].Host != "web-1.example" || fs[0].CVE != "CVE-2024-1" || fs[1].CVE != "CVE-2024-2" || fs[0].CVSS != 9.1 || fs[0].CVSSVector != "CVSS:3.1/AV:N" || fs[0].Severity != vulnzero.SeverityCritical {
		t.Errorf("row 2: %+v / %+v", fs[0], fs[1])
	}
	if fs[2].Host != "web-3" || fs[2].CVE != "CVE-2024-3" || fs[2].Severity != vulnzero.SeverityUnknown {
		t.Errorf("row 4: %+v", fs[2])
	}
}

func TestCSVVulnZeroLayout(t *testing.T) {
	// Reordered, extra and oddly spelled columns, CRLF, a BOM, a multi-id
	// cell, a list of fixed versions, trailing comma rows.
	body := "\xEF\xBB\xBF CVE ,Package,HOST,Installed,Fixed,OS,Owner,Severity,CVSS\r\n" +
		"CVE-2026-1 CVE-2026-2,libfoo,web-1,1.0.0,1.0.1,Debian 12,team-a,HIGH,8.1\r\n" +
		"CVE-2026-3,kernel,db-1,5.14.0-1.el9,\"5.14.0-9.el9, 4.18.0-9.el8\",Rocky 9.3,,,\r\n" +
		",,,,,,,,\r\n" +
		"CVE-2026-4,apk-tools,edge,2.14.0-r0,,alpine 3.19,,low,\r\n"
	fs, err := parseString(t, "fleet.csv", body, "", Options{Source: "spreadsheet"})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		host, pkg, cve, os, family, eco, installed, fixed string
		sev                                               vulnzero.Severity
		cvss                                              float64
	}
	want := []row{
		{"web-1", "libfoo", "CVE-2026-1", "debian 12", "debian", "deb", "1.0.0", "1.0.1", vulnzero.SeverityHigh, 8.1},
		{"web-1", "libfoo", "CVE-2026-2", "debian 12", "debian", "deb", "1.0.0", "1.0.1", vulnzero.SeverityHigh, 8.1},
		{"db-1", "kernel", "CVE-2026-3", "rocky 9.3", "rhel", "rpm", "5.14.0-1.el9", "5.14.0-9.el9", vulnzero.SeverityUnknown, 0},
		{"edge", "apk-tools", "CVE-2026-4", "alpine 3.19", "alpine", "apk", "2.14.0-r0", "", vulnzero.SeverityLow, 0},
	}
	if len(fs) != len(want) {
		t.Fatalf("%d findings, want %d: %+v", len(fs), len(want), fs)
	}
	for i, w := range want {
		f := fs[i]
		got := row{f.Host, f.Package, f.CVE, f.OS, f.OSFamily, f.Ecosystem, f.Installed, f.Fixed, f.Severity, f.CVSS}
		if got != w {
			t.Errorf("finding %d:\n got %+v\nwant %+v", i, got, w)
		}
		if f.Source != "spreadsheet" || f.Scanner != "csv" || f.Status != vulnzero.FindingOpen {
			t.Errorf("finding %d: %+v", i, f)
		}
	}
	// A header alone is an empty report.
	if fs, err := parseString(t, "h.csv", "host,package,installed,cve\n", "", Options{}); len(fs) != 0 || err != nil {
		t.Errorf("header only: %d findings, %v", len(fs), err)
	}
}

func TestCSVBadInput(t *testing.T) {
	const header = "host,os,package,installed,fixed,cve,severity,cvss\n"
	tests := []struct {
		name, body string
		want       string // "line:col path: message"
	}{
		{"missing required columns", "host,os,package,fixed\nweb-1,debian 12,a,1\n",
			"1:0 : vulnzero CSV header lacks required column(s) installed, cve"},
		{"unknown layout", "name,version\nx,1\n",
			"1:0 : header matches no known CSV layout: want VulnZero columns (host,os,package,installed,fixed,cve,severity,cvss) or DefectDojo generic columns (Date,Title,Url,Severity,…)"},
		{"duplicate column", "host,package,installed,cve,Host\n",
			`1:28 : header names column "host" twice (columns 1 and 5)`},
		{"bad severity", header + "web-1,debian 12,a,1,2,CVE-1,high,8\nweb-2,debian 12,a,1,2,CVE-1,severe,8\n",
			`3:29 severity: severity "severe" is not one of unknown, low, medium, high, critical`},
		{"bad cvss", header + "web-1,debian 12,a,1,2,CVE-1,high,eleven\n",
			`2:34 cvss: CVSS score "eleven" is not a number from 0 to 10`},
		{"cvss out of range", header + "web-1,debian 12,a,1,2,CVE-1,high,10.5\n",
			`2:34 cvss: CVSS score "10.5" is not a number from 0 to 10`},
		{"empty host", header + ",debian 12,a,1,2,CVE-1,high,8\n",
			"2:1 host: host is empty"},
		{"empty cve", header + "web-1,debian 12,a,1,2,,high,8\n",
			"2:23 cve: cve is empty"},
		{"short row", header + "web-1,debian 12,a\n",
			"2:1 installed: installed is empty"},
		{"bad quote", header + "web-1,\"debian 12,a,1,2,CVE-1,high,8\n",
			`2:37 : extraneous or missing " in quoted-field`},
		{"dd bad date", "Date,Title,Url,Severity\n2024-13-45,t,h,Low\n",
			`2:1 date: date "2024-13-45" is not ISO-8601, MM/DD/YYYY or DD/MM/YYYY`},
		{"dd bad boolean", "Date,Title,Url,Severity,Active\n01/02/2024,t,h,Low,maybe\n",
			`2:20 active: "maybe" is not a boolean (TRUE or FALSE)`},
		{"dd bad url", "Date,Title,Url,Severity\n01/02/2024,t,http://[::1,Low\n",
			`2:14 url: url "http://[::1": parse "http://[::1": missing ']' in host`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := parseString(t, "bad.csv", tt.body, FormatCSV, Options{})
			if err == nil {
				t.Fatalf("no error; %d findings", len(fs))
			}
			pe := positionError(t, err, "bad.csv")
			if got := fmt.Sprintf("%d:%d %s: %v", pe.Line, pe.Column, pe.Path, pe.Err); got != tt.want {
				t.Errorf("error\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2024-01-24T11:02:11Z", "2024-01-24T11:02:11Z"},
		{"2024-01-24", "2024-01-24T00:00:00Z"},
		{"01/30/2018", "2018-01-30T00:00:00Z"}, // MM/DD
		{"28/02/2021", "2021-02-28T00:00:00Z"}, // DD/MM: 28 cannot be a month
		{"03/04/2021", "2021-03-04T00:00:00Z"}, // ambiguous: month first
		{"2/9/2024", "2024-02-09T00:00:00Z"},
		{"31/02/2021", ""}, // no such day
		{"13/13/2021", ""},
		{"01/02/21", ""},
		{"yesterday", ""},
	}
	for _, tt := range tests {
		got, err := parseDate(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("parseDate(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(date(tt.want)) {
			t.Errorf("parseDate(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func FuzzCSV(f *testing.F) {
	for _, dir := range []string{filepath.Join(realdata, "generic-csv"), filepath.Join(fixtures, "generic-csv")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(fixtures, "demo.csv")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("host,package,installed,cve,fixed\nh,p,1,CVE-1 CVE-2,\"1.1, 2.0\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzParse(t, b, FormatCSV)
	})
}
