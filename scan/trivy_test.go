package scan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
)

// want is one finding a real file must produce, field by field.
type want struct {
	host, pkg, cve   string
	os, family, eco  string
	installed, fixed string
	sev              vulnzero.Severity
	cvss             float64
	vectorPrefix     string
}

func (w want) check(t *testing.T, fs []vulnzero.Finding) {
	t.Helper()
	f, ok := find(fs, w.host, w.pkg, w.cve)
	if !ok {
		t.Errorf("no finding for %s %s %s", w.host, w.pkg, w.cve)
		return
	}
	got := want{f.Host, f.Package, f.CVE, f.OS, f.OSFamily, f.Ecosystem, f.Installed, f.Fixed, f.Severity, f.CVSS, w.vectorPrefix}
	if got != w {
		t.Errorf("finding %s %s:\n got %+v\nwant %+v", w.pkg, w.cve, got, w)
	}
	if !strings.HasPrefix(f.CVSSVector, w.vectorPrefix) {
		t.Errorf("finding %s %s: vector %q, want prefix %q", w.pkg, w.cve, f.CVSSVector, w.vectorPrefix)
	}
	if f.Scanner != "trivy" || f.Status != vulnzero.FindingOpen || !f.FirstSeen.Equal(now) || !f.LastSeen.Equal(now) {
		t.Errorf("finding %s %s: scanner %q status %q seen %v/%v", w.pkg, w.cve, f.Scanner, f.Status, f.FirstSeen, f.LastSeen)
	}
}

const img = "testdata/fixtures/images/"

// Each Trivy sample in realdata: how many findings, and some of them in
// full, as read from the file by hand.
var trivyFiles = map[string]struct {
	n     int
	check []want
	err   string // a position error instead: "line:col path: message"
}{
	"alpine-310.json": {n: 4, check: []want{
		{img + "alpine-310.tar.gz", "libcrypto1.1", "CVE-2019-1549", "alpine 3.10.2", "alpine", "apk", "1.1.1c-r0", "1.1.1d-r0", vulnzero.SeverityMedium, 5.3, "CVSS:3.1/AV:N/AC:L"},
		{img + "alpine-310.tar.gz", "libssl1.1", "CVE-2019-1551", "alpine 3.10.2", "alpine", "apk", "1.1.1c-r0", "1.1.1d-r2", vulnzero.SeverityMedium, 5.3, "CVSS:3.1/"},
	}},
	// A lockfile only: language packages, no OS. ">= 2.1.0" is a legacy
	// range; ">= 3.1.0, >= 2.1.3, < 3.0.0" lists two branches and a bound.
	"busybox-with-lockfile.json": {n: 2, check: []want{
		{img + "busybox-with-lockfile.tar.gz", "ammonia", "CVE-2019-15542", "", "", "cargo", "1.9.0", "2.1.0", vulnzero.SeverityHigh, 7.5, "CVSS:3.0/"},
		{img + "busybox-with-lockfile.tar.gz", "ammonia", "CVE-2021-38193", "", "", "cargo", "1.9.0", "2.1.3", vulnzero.SeverityMedium, 6.1, "CVSS:3.1/"},
	}},
	// rpm with epochs; nvd's V3 score wins over the vendor's (SeveritySource redhat).
	"centos-7.json": {n: 3, check: []want{
		{img + "centos-7.tar.gz", "openssl-libs", "CVE-2018-0734", "centos 7.6.1810", "rhel", "rpm", "1:1.0.2k-16.el7", "1:1.0.2k-19.el7", vulnzero.SeverityLow, 5.9, "CVSS:3.0/AV:N/AC:H"},
		{img + "centos-7.tar.gz", "bash", "CVE-2019-18276", "centos 7.6.1810", "rhel", "rpm", "4.2.46-31.el7", "", vulnzero.SeverityLow, 7.8, "CVSS:3.1/AV:L"},
	}},
	// Empty ArtifactName: the host comes from the Target. 8 entries, the
	// not_affected one is skipped; trimmed sample, so no FixedVersion at all.
	"dd_debian_all_statuses.json": {n: 7, check: []want{
		{"noppaknopsta/example-app:main-159", "binutils", "CVE-2018-12699", "debian 10.13", "debian", "deb", "2.31.1-16", "", vulnzero.SeverityLow, 9.8, "CVSS:3.0/AV:N/AC:L"},
		{"noppaknopsta/example-app:main-159", "bash", "TEMP-0841856-B18BAF", "debian 10.13", "debian", "deb", "5.0-4", "", vulnzero.SeverityLow, 0, ""},
	}},
	// Misconfigurations and secrets are skipped.
	"dd_fs_misconfig_secrets.json": {n: 2, check: []want{
		{".", "urllib3", "CVE-2021-33503", "", "", "pip", "1.26.3", "1.26.5", vulnzero.SeverityHigh, 7.5, "CVSS:3.1/"},
	}},
	// Three fixed versions, one per branch: the 9.0 one applies. V3 from
	// redhat beats the severity source's (ghsa) V4.
	"dd_jar_cvssv4.json": {n: 3, check: []want{
		{"lib/catalina.jar", "org.apache.tomcat:tomcat-catalina", "CVE-2025-66614", "", "", "jar", "9.0.109", "9.0.112", vulnzero.SeverityMedium, 5.3, "CVSS:3.1/"},
		{"lib/catalina.jar", "org.apache.tomcat:tomcat-catalina", "CVE-2025-61795", "", "", "jar", "9.0.109", "9.0.110", vulnzero.SeverityLow, 5.3, "CVSS:3.1/"},
	}},
	// The first entry of the legacy array has only a PkgName.
	"dd_legacy_list_format.json": {err: "6:7 [0].Vulnerabilities[0]: vulnerability has no VulnerabilityID"},
	// OS and jar results side by side; no nvd entry → redhat's score; no CVSS at all → 0.
	"dd_scheme_2_many_vulns_alpine_jar.json": {n: 5, check: []want{
		{"teamdojo:latest", "krb5-libs", "CVE-2020-28196", "alpine 3.9.4", "alpine", "apk", "1.15.5-r0", "1.15.5-r1", vulnzero.SeverityHigh, 7.5, "CVSS:3.1/"},
		{"teamdojo:latest", "libbz2", "CVE-2019-12900", "alpine 3.9.4", "alpine", "apk", "1.0.6-r6", "1.0.6-r7", vulnzero.SeverityCritical, 0, ""},
		{"teamdojo:latest", "org.apache.commons:commons-compress", "CVE-2018-1324", "alpine 3.9.4", "alpine", "jar", "1.14", "1.16", vulnzero.SeverityMedium, 5.5, "CVSS:3.0/AV:L"},
	}},
	"dd_scheme_2_no_vuln.json": {n: 0},
	"debian-buster.json": {n: 2, check: []want{
		{img + "debian-buster.tar.gz", "libidn2-0", "CVE-2019-18224", "debian 10.1", "debian", "deb", "2.0.5-1", "2.0.5-1+deb10u1", vulnzero.SeverityCritical, 9.8, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N"},
	}},
	"ubuntu-1804.json": {n: 5, check: []want{
		{img + "ubuntu-1804.tar.gz", "e2fsprogs", "CVE-2019-5094", "ubuntu 18.04", "debian", "deb", "1.44.1-1ubuntu1.1", "1.44.1-1ubuntu1.2", vulnzero.SeverityMedium, 6.7, "CVSS:3.1/"},
		{img + "ubuntu-1804.tar.gz", "libss2", "CVE-2019-5094", "ubuntu 18.04", "debian", "deb", "1.44.1-1ubuntu1.1", "1.44.1-1ubuntu1.2", vulnzero.SeverityMedium, 6.7, "CVSS:3.1/"},
	}},
}

// Every file in the trivy realdata folder parses (with the values above) or
// fails with a position error; a new sample must be added to the table.
func TestTrivyRealdata(t *testing.T) {
	dir := requireRealdata(t, "trivy")
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatalf("no files in %s", dir)
	}
	for _, p := range files {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			exp, ok := trivyFiles[name]
			if !ok {
				t.Fatalf("%s is not in trivyFiles: say what it must produce", name)
			}
			format, fs, err := parseFile(t, p, Options{})
			if format != FormatTrivy {
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
			if len(fs) != exp.n {
				t.Errorf("%d findings, want %d", len(fs), exp.n)
			}
			for _, w := range exp.check {
				w.check(t, fs)
			}
			for _, f := range fs {
				if f.Host == "" || f.Package == "" || f.CVE == "" || f.Source != p {
					t.Errorf("incomplete finding %+v", f)
				}
			}
		})
	}
}

// Cutting a real report anywhere gives a position error at the end of the
// input, never a panic, a silent partial import, or a plain error.
func TestTrivyTruncated(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures, "trivy", "debian-buster.json"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(b), "\n")
	for _, cut := range []int{1, 2, 40, len(b) / 3, len(b) / 2, len(b) - 40, len(b) - 2} {
		body := string(b[:cut])
		_, err := parseString(t, "cut.json", body, FormatTrivy, Options{})
		if err == nil {
			t.Errorf("cut at %d: no error", cut)
			continue
		}
		pe := positionError(t, err, "cut.json")
		wantLine := strings.Count(body, "\n") + 1
		if pe.Line != wantLine || pe.Line > lines+1 {
			t.Errorf("cut at %d: line %d, want %d (%v)", cut, pe.Line, wantLine, err)
		}
		if !strings.Contains(err.Error(), "truncated") && !strings.Contains(err.Error(), "invalid") {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
}

// Bad input names its line, column and element path.
func TestTrivyBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // "line:col path: message"
	}{
		{"syntax error in a vulnerability",
			"{\"SchemaVersion\": 2,\n\"ArtifactName\": \"h\",\n\"Results\": [{\"Target\": \"h (debian 12)\", \"Class\": \"os-pkgs\", \"Type\": \"debian\",\n\"Vulnerabilities\": [\n{\"VulnerabilityID\": \"CVE-1\", \"PkgName\": \"a\"},\n{\"VulnerabilityID\": \"CVE-2\" \"PkgName\": \"b\"}]}]}",
			`6:29 Results[0].Vulnerabilities[1]: invalid character '"' after object key:value pair`},
		{"wrong type in a vulnerability",
			"{\"ArtifactName\": \"h\", \"Results\": [{\"Target\": \"t\", \"Class\": \"lang-pkgs\", \"Type\": \"npm\", \"Vulnerabilities\": [\n  {\"VulnerabilityID\": \"CVE-1\", \"PkgName\": 7}]}]}",
			"2:43 Results[0].Vulnerabilities[0].PkgName: cannot use JSON number as string"},
		{"missing id",
			"{\"ArtifactName\": \"h\", \"Results\": [{\"Target\": \"t\", \"Class\": \"lang-pkgs\", \"Type\": \"npm\", \"Vulnerabilities\": [\n  {\"PkgName\": \"a\"}]}]}",
			"2:3 Results[0].Vulnerabilities[0]: vulnerability has no VulnerabilityID"},
		{"schema 1",
			"{\n  \"SchemaVersion\": 1}",
			"2:20 SchemaVersion: SchemaVersion 1 is not supported (want 2)"},
		{"results not a list",
			"{\"SchemaVersion\": 2,\n \"Results\": {}}",
			"2:13 Results: expected a list, found an object"},
		{"result not an object",
			"{\"Results\": [\n 3]}",
			"2:2 Results[0]: expected an object, found 3"},
		{"vulnerabilities before the header",
			"{\"ArtifactName\": \"h\", \"Results\": [{\n\"Vulnerabilities\": [], \"Target\": \"t\"}]}",
			"2:20 Results[0].Vulnerabilities: Vulnerabilities come before the result's Target, Class and Type; a streamed report needs them first"},
		{"no host",
			"{\"Results\": [{\"Class\": \"os-pkgs\", \"Type\": \"debian\", \"Vulnerabilities\": [{\"VulnerabilityID\": \"CVE-1\", \"PkgName\": \"a\"}]}]}",
			"1:72 Results[0].Vulnerabilities: no host: ArtifactName and Target are empty (configure a host for this source)"},
		{"not a report", "\n\n\"hello\"", `3:1 : a Trivy report is a JSON object (or, before v0.20, an array); found string "hello"`},
		{"two reports", "{\"SchemaVersion\": 2}\n{\"SchemaVersion\": 2}", "2:1 : unexpected data after the end of the report"},
		{"garbage key", "{\"SchemaVersion\": 2,\n  x}", "2:3 : invalid character 'x' looking for beginning of object key string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := parseString(t, "bad.json", tt.body, FormatTrivy, Options{})
			if err == nil {
				t.Fatalf("no error; %d findings", len(fs))
			}
			pe := positionError(t, err, "bad.json")
			if got := fmt.Sprintf("%d:%d %s: %v", pe.Line, pe.Column, pe.Path, pe.Err); got != tt.want {
				t.Errorf("error\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestTrivyLegacyAndKubernetes(t *testing.T) {
	legacy := `[
  {"Target": "ci-image (alpine 3.7.1)", "Type": "alpine", "Vulnerabilities": [
    {"VulnerabilityID": "CVE-2018-16840", "PkgName": "curl", "InstalledVersion": "7.61.0-r0", "FixedVersion": "7.61.1-r1", "Severity": "HIGH"}]},
  {"Target": "node-app/package-lock.json", "Type": "npm", "Vulnerabilities": [
    {"VulnerabilityID": "CVE-2018-16487", "PkgName": "lodash", "InstalledVersion": "4.17.4", "FixedVersion": ">=4.17.11", "Severity": "HIGH"}]}
]`
	fs, err := parseString(t, "legacy.json", legacy, "", Options{})
	if err != nil || len(fs) != 2 {
		t.Fatalf("legacy: %d findings, %v", len(fs), err)
	}
	curl, lodash := fs[0], fs[1]
	if curl.Host != "ci-image" || curl.OS != "alpine 3.7.1" || curl.OSFamily != "alpine" || curl.Ecosystem != "apk" || curl.Fixed != "7.61.1-r1" {
		t.Errorf("legacy OS finding %+v", curl)
	}
	if lodash.Host != "node-app/package-lock.json" || lodash.Ecosystem != "npm" || lodash.Fixed != "4.17.11" || lodash.OSFamily != "" {
		t.Errorf("legacy npm finding %+v", lodash)
	}

	k8s := `{"ClusterName": "prod", "Resources": [
  {"Namespace": "default", "Kind": "Deployment", "Name": "web", "Metadata": [{"OS": {"Family": "debian", "Name": "12.1"}}],
   "Results": [{"Target": "nginx:1.25 (debian 12.1)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [
     {"VulnerabilityID": "CVE-2023-1", "PkgName": "libssl3", "InstalledVersion": "3.0.9-1", "FixedVersion": "3.0.11-1~deb12u1", "Severity": "CRITICAL",
      "CVSS": {"redhat": {"V3Score": 7.1, "V3Vector": "CVSS:3.1/r"}, "nvd": {"V2Score": 5.0}}}]}]},
  {"Kind": "Node", "Name": "node-a", "Results": [{"Target": "node-a (ubuntu 22.04)", "Class": "os-pkgs", "Type": "ubuntu", "Vulnerabilities": [
     {"VulnerabilityID": "CVE-2023-2", "PkgName": "sudo", "InstalledVersion": "1.9.9-1ubuntu2", "FixedVersion": "1.9.9-1ubuntu2.4", "Severity": "low"}]}]}
]}`
	var covered []string
	fs, err = parseString(t, "k8s.json", k8s, "", Options{OnHost: func(h string) { covered = append(covered, h) }})
	if err != nil || len(fs) != 2 {
		t.Fatalf("k8s: %d findings, %v", len(fs), err)
	}
	web, node := fs[0], fs[1]
	if web.Host != "default/Deployment/web" || web.OS != "debian 12.1" || web.OSFamily != "debian" || web.Severity != vulnzero.SeverityCritical || web.CVSS != 7.1 || web.CVSSVector != "CVSS:3.1/r" {
		t.Errorf("k8s workload finding %+v", web)
	}
	if node.Host != "node-a" || node.OS != "ubuntu 22.04" || node.OSFamily != "debian" || node.Severity != vulnzero.SeverityLow || node.Fixed != "1.9.9-1ubuntu2.4" {
		t.Errorf("k8s node finding %+v", node)
	}
	if strings.Join(covered, ",") != "default/Deployment/web,node-a" {
		t.Errorf("k8s covered %v", covered)
	}
}

// Options.Host names the machine for reports that name a path instead, and
// a package found twice in a row (two paths) is one finding.
func TestTrivyHostOverrideAndDuplicates(t *testing.T) {
	body := `{"SchemaVersion": 2, "ArtifactName": "/", "ArtifactType": "filesystem", "Metadata": {"OS": {"Family": "ubuntu", "Name": "22.04"}},
"Results": [{"Target": "/ (ubuntu 22.04)", "Class": "os-pkgs", "Type": "ubuntu", "Vulnerabilities": [
  {"VulnerabilityID": "CVE-1", "PkgName": "a", "InstalledVersion": "1", "FixedVersion": "2"},
  {"VulnerabilityID": "CVE-1", "PkgName": "a", "InstalledVersion": "1", "FixedVersion": "2"},
  {"VulnerabilityID": "CVE-2", "PkgName": "a", "InstalledVersion": "1", "Status": "not_affected"},
  {"VulnerabilityID": "CVE-3", "PkgName": "a", "InstalledVersion": "1", "Status": "will_not_fix", "Severity": "SOMETHING"}]}]}`
	fs, err := parseString(t, "rootfs.json", body, "", Options{Host: "db-7", Source: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].CVE != "CVE-1" || fs[1].CVE != "CVE-3" {
		t.Fatalf("findings %+v", fs)
	}
	for _, f := range fs {
		if f.Host != "db-7" || f.Source != "nightly" || f.OS != "ubuntu 22.04" || f.OSFamily != "debian" {
			t.Errorf("finding %+v", f)
		}
	}
	if fs[1].Fixed != "" || fs[1].Severity != vulnzero.SeverityUnknown {
		t.Errorf("will_not_fix finding %+v", fs[1])
	}
}

// Line numbers stay right deep into a report far larger than the tracker's
// window, for errors inside an element and about a whole element.
func TestTrivyLargeReportPositions(t *testing.T) {
	const n = 20000
	head := "{\n\"SchemaVersion\": 2,\n\"ArtifactName\": \"big\",\n\"Results\": [{\"Target\": \"big (debian 12)\", \"Class\": \"os-pkgs\", \"Type\": \"debian\",\n\"Vulnerabilities\": [\n"
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		fmt.Fprintf(&b, "{\"VulnerabilityID\": \"CVE-2026-%d\", \"PkgName\": \"pkg%d\",\n \"InstalledVersion\": \"1.0\", \"FixedVersion\": \"1.1\"},\n", i, i)
	}
	body := b.String()
	if len(body) < 1<<20 {
		t.Fatalf("report is only %d bytes; make it larger than the tracker window", len(body))
	}
	lastLine := 5 + 2*n + 1 // the line the last element starts on
	tests := []struct {
		name, last string
		want       string // "line:col path"
	}{
		{"type error inside the last element", "{\"VulnerabilityID\": \"CVE-X\", \"PkgName\": \"last\",\n \"InstalledVersion\": 1.0}]}]}\n",
			fmt.Sprintf("%d:24 Results[0].Vulnerabilities[%d].InstalledVersion", lastLine+1, n)},
		{"the last element lacks its id", "  {\"PkgName\": \"last\",\n \"InstalledVersion\": \"1.0\"}]}]}\n",
			fmt.Sprintf("%d:3 Results[0].Vulnerabilities[%d]", lastLine, n)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := parseString(t, "big.json", body+tt.last, FormatTrivy, Options{})
			if len(fs) != n {
				t.Errorf("%d findings before the error, want %d", len(fs), n)
			}
			pe := positionError(t, err, "big.json")
			if got := fmt.Sprintf("%d:%d %s", pe.Line, pe.Column, pe.Path); got != tt.want {
				t.Errorf("error at %s, want %s: %v", got, tt.want, err)
			}
		})
	}
}

func TestLineTrackerWindow(t *testing.T) {
	var b strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	lt := newLineTracker(strings.NewReader(b.String()), 0)
	buf := make([]byte, 4096)
	maxWindow := 0
	for {
		n, err := lt.Read(buf)
		if n > 0 {
			lt.release(lt.end() - 100)
		}
		maxWindow = max(maxWindow, len(lt.buf))
		if err != nil {
			break
		}
	}
	if maxWindow > 128<<10 {
		t.Errorf("tracker window grew to %d bytes", maxWindow)
	}
	off := int64(len(b.String()) - len("line 99999\n") + 2) // the "n" of the last "line"
	if line, col := lt.pos(off); line != 100000 || col != 3 {
		t.Errorf("pos = %d:%d, want 100000:3", line, col)
	}
}

func FuzzTrivy(f *testing.F) {
	for _, dir := range []string{filepath.Join(realdata, "trivy"), filepath.Join(fixtures, "trivy")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(fixtures, "demo-trivy.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`[{"Target":"x (alpine 3.7.1)","Type":"alpine","Vulnerabilities":[{"VulnerabilityID":"CVE-1","PkgName":"a"}]}]`))
	f.Add([]byte(`{"ClusterName":"c","Resources":[{"Kind":"Node","Name":"n","Results":[]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzParse(t, b, FormatTrivy)
	})
}

// fuzzParse checks what must hold for any input: no panic, every error a
// position error about the file, nothing after an error, and every finding
// identifiable.
func fuzzParse(t *testing.T, b []byte, format Format) {
	fs, err := collect(t, Parse("fuzz", strings.NewReader(string(b)), format, Options{Now: now}))
	if err != nil {
		var pe *vulnzero.PositionError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v (%T) is not a *vulnzero.PositionError", err, err)
		}
		if pe.File != "fuzz" || pe.Line < 1 {
			t.Fatalf("position error without a place: %+v", pe)
		}
	}
	for _, f := range fs {
		if f.Host == "" || f.CVE == "" {
			t.Fatalf("finding without host or id: %+v", f)
		}
	}
}
