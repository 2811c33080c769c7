package scan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
)

// fwant is one finding a sample must produce, field by field, for the
// formats added after Trivy.
type fwant struct {
	host, pkg, cve   string
	os, family, eco  string
	installed, fixed string
	sev              vulnzero.Severity
	cvss             float64
	vectorPrefix     string
	rule             string
}

func (w fwant) check(t *testing.T, format Format, fs []vulnzero.Finding) {
	t.Helper()
	f, ok := find(fs, w.host, w.pkg, w.cve)
	if !ok {
		t.Errorf("no finding for %s %s %s", w.host, w.pkg, w.cve)
		return
	}
	got := fwant{f.Host, f.Package, f.CVE, f.OS, f.OSFamily, f.Ecosystem, f.Installed, f.Fixed, f.Severity, f.CVSS, w.vectorPrefix, f.RuleID}
	if got != w {
		t.Errorf("finding %s %s:\n got %+v\nwant %+v", w.pkg, w.cve, got, w)
	}
	if !strings.HasPrefix(f.CVSSVector, w.vectorPrefix) || (w.vectorPrefix == "" && f.CVSSVector != "") {
		t.Errorf("finding %s %s: vector %q, want prefix %q", w.pkg, w.cve, f.CVSSVector, w.vectorPrefix)
	}
	if f.Scanner != string(format) || f.Status != vulnzero.FindingOpen || !f.LastSeen.Equal(now) {
		t.Errorf("finding %s %s: scanner %q status %q last seen %v", w.pkg, w.cve, f.Scanner, f.Status, f.LastSeen)
	}
}

// sampleCase is what one sample file must give.
type sampleCase struct {
	n      int
	hosts  []string // covered hosts, in order
	checks []fwant
	err    string // a position error instead: "line:col path: message"
}

// runSamples parses every file of fixtures/scans/<dir>, which holds
// byte-for-byte copies of shared/realdata/scanners/<dir> (checked when
// realdata is there), and compares it with cases: every real sample of
// the format either imports as read by hand or fails with its position.
func runSamples(t *testing.T, dir string, format Format, cases map[string]sampleCase) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(fixtures, dir, "*"))
	if len(files) == 0 {
		t.Fatalf("no samples in %s", filepath.Join(fixtures, dir))
	}
	if real, err := filepath.Glob(filepath.Join(realdata, dir, "*")); err == nil && len(real) > 0 {
		for _, p := range real {
			want, _ := os.ReadFile(p)
			got, err := os.ReadFile(filepath.Join(fixtures, dir, filepath.Base(p)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is not copied byte for byte into %s", p, filepath.Join(fixtures, dir))
			}
		}
	}
	for _, p := range files {
		name := filepath.Base(p)
		t.Run(name, func(t *testing.T) {
			c, ok := cases[name]
			if !ok {
				t.Fatalf("%s has no case: say what it must produce", name)
			}
			var hosts []string
			got, fs, err := parseFile(t, p, Options{OnHost: func(h string) { hosts = append(hosts, h) }})
			if got != format {
				t.Fatalf("detected %q, want %q", got, format)
			}
			if c.err != "" {
				pe := positionError(t, err, p)
				if s := fmt.Sprintf("%d:%d %s: %v", pe.Line, pe.Column, pe.Path, pe.Err); s != c.err {
					t.Errorf("error %q, want %q", s, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if len(fs) != c.n {
				t.Errorf("%d findings, want %d", len(fs), c.n)
			}
			if strings.Join(hosts, ",") != strings.Join(c.hosts, ",") {
				t.Errorf("covered %q, want %q", hosts, c.hosts)
			}
			for _, w := range c.checks {
				w.check(t, format, fs)
			}
			for _, f := range fs {
				if f.Host == "" || f.Package == "" || f.CVE == "" || f.Source != p {
					t.Errorf("incomplete finding %+v", f)
				}
			}
		})
	}
}

const keycloak = "docker.io/keycloak/keycloak:21.0.2@sha256:347a0d748d05a050dc64b92de2246d2240db6eb38afbc17c3c08d0acb0db1b50"
const xjoin = "quay.io/cloudservices/xjoin-kafka-connect-strimzi:latest"

var grypeSamples = map[string]sampleCase{
	// fix.state "" everywhere; one fixed; busybox is both the image's
	// distro and a binary match.
	"dd_busybox_epss.json": {n: 15, hosts: []string{"busybox:1.32.1"}, checks: []fwant{
		{"busybox:1.32.1", "busybox", "CVE-2021-42376", "busybox 1.32.1", "busybox", "binary", "1.32.1", "1.34.0", vulnzero.SeverityMedium, 5.5, "CVSS:3.1/AV:L", "CVE-2021-42376"},
		{"busybox:1.32.1", "busybox", "CVE-2022-48174", "busybox 1.32.1", "busybox", "binary", "1.32.1", "", vulnzero.SeverityCritical, 9.8, "CVSS:3.1/AV:N/AC:L/PR:N", "CVE-2022-48174"},
	}},
	"dd_busybox_no_vuln.json": {n: 0, hosts: []string{"busybox:latest"}},
	// Negligible is unknown; a GHSA match is filed under its NVD CVE, and
	// the same Django match twice in a row is one finding; wont-fix with
	// versions listed is no fix.
	"dd_debian10_check_all_fields.json": {n: 5, hosts: []string{"vulnerable-image:latest"}, checks: []fwant{
		{"vulnerable-image:latest", "libgssapi-krb5-2", "CVE-2004-0971", "debian 10", "debian", "deb", "1.17-3+deb10u3", "", vulnzero.SeverityUnknown, 2.1, "AV:L/AC:L/Au:N", "CVE-2004-0971"},
		{"vulnerable-image:latest", "Django", "CVE-2021-44420", "debian 10", "debian", "pip", "3.2.9", "3.2.10", vulnzero.SeverityHigh, 7.3, "CVSS:3.1/", "GHSA-v6rh-hp5x-86rv"},
		{"vulnerable-image:latest", "redis", "CVE-2021-32626", "debian 10", "debian", "pip", "4.0.2", "", vulnzero.SeverityHigh, 8.8, "CVSS:3.1/", "CVE-2021-32626"},
		{"vulnerable-image:latest", "libc6", "CVE-2021-33574", "debian 10", "debian", "deb", "2.28-10", "", vulnzero.SeverityCritical, 9.8, "CVSS:3.1/", "CVE-2021-33574"},
	}},
	// A directory scan: target is the string "\".\"" and distro is empty.
	"dd_directory_npm_python.json": {n: 9, hosts: []string{"."}, checks: []fwant{
		{".", "through", "CVE-2021-29940", "", "", "npm", "2.3.8", "", vulnzero.SeverityCritical, 9.8, "CVSS:3.1/", "CVE-2021-29940"},
		{".", "static-eval", "CVE-2021-23334", "", "", "npm", "2.1.0", "", vulnzero.SeverityCritical, 0, "", "GHSA-8v27-2fg9-7h62"},
	}},
	// Keys sorted (source last); the fix carries an epoch "0:" the
	// installed version lacks; NVD's 5.5 beats Red Hat's 6.2; avro matched
	// at two versions in a row is one finding.
	"dd_rhel87_rpm_java.json": {n: 34, hosts: []string{xjoin}, checks: []fwant{
		{xjoin, "avahi-libs", "CVE-2023-38473", "redhat 8.7", "rhel", "rpm", "0.7-20.el8", "0.7-21.el8_9.1", vulnzero.SeverityMedium, 5.5, "CVSS:3.1/AV:L/AC:L/PR:L", "CVE-2023-38473"},
		{xjoin, "bind-libs", "CVE-2023-3341", "redhat 8.7", "rhel", "rpm", "32:9.11.36-5.el8_7.2", "32:9.11.36-8.el8_8.2", vulnzero.SeverityHigh, 7.5, "CVSS:3.1/", "CVE-2023-3341"},
		{xjoin, "bind-utils", "CVE-2023-37920", "redhat 8.7", "rhel", "rpm", "32:9.11.36-5.el8_7.2", "", vulnzero.SeverityLow, 9.1, "CVSS:3.1/", "CVE-2023-37920"},
		{xjoin, "avro", "CVE-2023-39410", "redhat 8.7", "rhel", "jar", "1.11.1", "1.11.3", vulnzero.SeverityHigh, 7.5, "CVSS:3.1/", "CVE-2023-39410"},
		{xjoin, "commons-compress", "CVE-2024-26308", "redhat 8.7", "rhel", "jar", "1.21", "1.26.0", vulnzero.SeverityUnknown, 7.5, "CVSS:3.1/", "CVE-2024-26308"},
	}},
	"dd_ubuntu2004_fix_available.json": {n: 1, hosts: []string{"REDACTED"}, checks: []fwant{
		{"REDACTED", "java", "CVE-2009-3882", "ubuntu 20.04", "debian", "binary", "17.0.10+7\x00-J-ms8m", "1.2.3", vulnzero.SeverityHigh, 7.5, "AV:N/AC:L/Au:N", "CVE-2009-3882"},
	}},
	"keycloak-test.json": {n: 6, hosts: []string{keycloak}, checks: []fwant{
		{keycloak, "nss-util", "CVE-2020-12413", "redhat 9.1", "rhel", "rpm", "3.79.0-17.el9_1", "", vulnzero.SeverityLow, 5.9, "CVSS:3.1/AV:N/AC:H", "CVE-2020-12413"},
	}},
}

func TestGrypeSamples(t *testing.T) {
	runSamples(t, "grype", FormatGrype, grypeSamples)
}

// grypeReport builds a report with the given matches, keys in Grype's order
// (matches, source, distro) unless sorted.
func grypeReport(matches []string, sorted bool) string {
	m := `"matches": [` + strings.Join(matches, ",\n") + `]`
	src := `"source": {"type": "image", "target": {"userInput": "web:1", "imageID": "sha256:1"}}`
	distro := `"distro": {"name": "debian", "version": "12"}`
	if sorted {
		return "{\n" + `"descriptor": {"name": "grype"},` + "\n" + distro + ",\n" + m + ",\n" + src + "\n}"
	}
	return "{\n" + m + ",\n" + src + ",\n" + distro + ",\n" + `"descriptor": {"name": "grype"}` + "\n}"
}

func grypeMatchJSON(pkg, version, id string) string {
	return fmt.Sprintf(`{"vulnerability": {"id": %q, "severity": "High", "fix": {"versions": ["%s.1"], "state": "fixed"}, "cvss": [{"version": "3.1", "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "metrics": {"baseScore": 9.8}}]},
 "relatedVulnerabilities": [], "matchDetails": [{"matcher": "dpkg-matcher"}], "artifact": {"name": %q, "version": %q, "type": "deb"}}`, id, version, pkg, version)
}

// Matches come before source and distro in Grype's own order; more of them
// than the in-memory spool holds go through a temporary file, and come out
// the same, in order, whatever the key order.
func TestGrypeHostAfterMatches(t *testing.T) {
	var matches []string
	n := spoolInMemory + 100
	for i := range n {
		matches = append(matches, grypeMatchJSON(fmt.Sprintf("pkg%d", i), "1.0", fmt.Sprintf("CVE-2024-%d", i)))
	}
	for _, sorted := range []bool{false, true} {
		var hosts []string
		fs, err := parseString(t, "big.json", grypeReport(matches, sorted), "", Options{OnHost: func(h string) { hosts = append(hosts, h) }})
		if err != nil || len(fs) != n {
			t.Fatalf("sorted %v: %d findings, %v", sorted, len(fs), err)
		}
		for i, f := range fs {
			if f.Host != "web:1" || f.OS != "debian 12" || f.OSFamily != "debian" || f.Package != fmt.Sprintf("pkg%d", i) || f.Fixed != "1.0.1" || f.CVSS != 9.8 {
				t.Fatalf("sorted %v: finding %d: %+v", sorted, i, f)
			}
		}
		if strings.Join(hosts, ",") != "web:1" {
			t.Errorf("covered %v", hosts)
		}
	}
	// With a configured host and the distro first, matches stream; the
	// configured host wins over the image name.
	fs, err := parseString(t, "r.json", grypeReport(matches[:2], true), "", Options{Host: "db-1"})
	if err != nil || len(fs) != 2 || fs[0].Host != "db-1" || fs[0].OS != "debian 12" {
		t.Fatalf("configured host: %+v, %v", fs, err)
	}
}

// A consumer that stops early leaves no spool behind and is not called
// again.
func TestGrypeStopEarly(t *testing.T) {
	var matches []string
	for i := range spoolInMemory + 10 {
		matches = append(matches, grypeMatchJSON(fmt.Sprintf("pkg%d", i), "1.0", "CVE-1"))
	}
	n := 0
	for _, err := range Parse("r.json", strings.NewReader(grypeReport(matches, false)), "", Options{Now: now}) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if n != 3 {
		t.Errorf("read %d", n)
	}
}

func TestGrypeBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		want       string // "line:col path: message"
	}{
		{"no vulnerability id", "{\"matches\": [\n  {\"vulnerability\": {\"severity\": \"High\"}, \"artifact\": {\"name\": \"a\"}}]}",
			"2:3 matches[0]: match has no vulnerability.id"},
		{"no artifact name", "{\"matches\": [\n  {\"vulnerability\": {\"id\": \"CVE-1\"}, \"artifact\": {}}]}",
			"2:3 matches[0]: match of CVE-1 has no artifact.name"},
		{"wrong type", "{\"matches\": [\n  {\"vulnerability\": {\"id\": 7}}]}",
			"2:28 matches[0].vulnerability.id: cannot use JSON number as string"},
		{"syntax", "{\"matches\": [\n  {\"vulnerability\" {}}]}",
			"2:20 matches[0]: invalid character '{' after object key"},
		{"no host", "{\"matches\": [" + grypeMatchJSON("a", "1", "CVE-1") + "],\n \"source\": {\"type\": \"image\"}\n}",
			"4:1 : no host: the report has no source target (configure a host for this source)"},
		{"target of another type", "{\"source\": {\"target\": 5}}", "1:12 source.target: target is neither a path nor an image description"},
		{"not an object", "[1]", "1:1 : a Grype report is a JSON object; found '['"},
		{"truncated", "{\"matches\": [" + grypeMatchJSON("a", "1", "CVE-1")[:40], "1:54 matches[0]: unexpected end of input: the report is truncated"},
		{"trailing data", "{\"matches\": []}\n{}", "2:1 : unexpected data after the end of the report"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := parseString(t, "bad.json", tt.body, FormatGrype, Options{})
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

// Every cut of a real report is an error at the end of the input.
func TestGrypeTruncated(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(fixtures, "grype", "keycloak-test.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, 2, 100, len(b) / 3, len(b) / 2, len(b) - 30, len(b) - 2} {
		body := string(b[:cut])
		_, err := parseString(t, "cut.json", body, FormatGrype, Options{})
		if err == nil {
			t.Errorf("cut at %d: no error", cut)
			continue
		}
		pe := positionError(t, err, "cut.json")
		if want := strings.Count(body, "\n") + 1; pe.Line != want {
			t.Errorf("cut at %d: line %d, want %d (%v)", cut, pe.Line, want, err)
		}
	}
}

func TestGrypeHelpers(t *testing.T) {
	for _, c := range []struct{ fixed, installed, want string }{
		{"0:0.7-21.el8", "0.7-20.el8", "0.7-21.el8"},
		{"0:0.7-21.el8", "0:0.7-20.el8", "0:0.7-21.el8"},
		{"1:2.0", "2.0", "1:2.0"},
		{"", "1", ""},
	} {
		if got := dropZeroEpoch(c.fixed, c.installed); got != c.want {
			t.Errorf("dropZeroEpoch(%q, %q) = %q, want %q", c.fixed, c.installed, got, c.want)
		}
	}
	long := strings.Repeat("é", 200)
	if s := summary(long); !strings.HasSuffix(s, "…") || len(s) > 170 || !json.Valid([]byte(fmt.Sprintf("%q", s))) {
		t.Errorf("summary of a long word: %q", s)
	}
	if s := summary("First sentence. Second one."); s != "First sentence." {
		t.Errorf("summary = %q", s)
	}
	for typ, want := range map[string]string{"java-archive": "jar", "python": "pip", "go-module": "gomod", "deb": "deb", "npm": "npm"} {
		if got := grypeEcosystem(typ); got != want {
			t.Errorf("grypeEcosystem(%q) = %q, want %q", typ, got, want)
		}
	}
}

func FuzzGrype(f *testing.F) {
	for _, dir := range []string{filepath.Join(realdata, "grype"), filepath.Join(fixtures, "grype")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(grypeReport([]string{grypeMatchJSON("a", "1", "GHSA-1")}, true)))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzParse(t, b, FormatGrype)
	})
}
