package scan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
)

const rengine = "/tmprengine/web/requirements.txt"

var osvSamples = map[string]sampleCase{
	// Six sources; groups fold GHSA and PYSEC records into one finding
	// each; the git source has only a commit (its package is the
	// repository, and last_affected means no fix).
	"dd_many_findings_composer_pypi_git.json": {n: 37, hosts: []string{
		"/tmpcardmarket-api/composer.lock", "/tmpgapps/requirements.txt", "/tmphumble/requirements.txt",
		"/tmprengine/", rengine, "/tmptrivy-dojo-report-operator/poetry.lock"}, checks: []fwant{
		// Two branches fixed (6.5.8, 7.4.5): the one above 6.3.3 is 6.5.8.
		{"/tmpcardmarket-api/composer.lock", "guzzlehttp/guzzle", "CVE-2022-31090", "", "", "composer", "6.3.3", "6.5.8", vulnzero.SeverityHigh, 7.7, "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C", "GHSA-25mq-v84q-4j7r"},
		// Two GHSA records in one group: one finding, the lowest CVE of the
		// group's aliases, the lowest fix of both records.
		{"/tmpcardmarket-api/composer.lock", "guzzlehttp/psr7", "CVE-2022-24775", "", "", "composer", "1.6.1", "1.8.4", vulnzero.SeverityMedium, 5.3, "CVSS:3.1/", "GHSA-q7rv-6hp3-vh96"},
		{"/tmprengine/", "github.com/yogeshojha/rengine", "CVE-2023-50094", "", "", "git", "f5f3c22f3ed5a6804a2a8d9ee9fa43044cfa24a6", "", vulnzero.SeverityHigh, 8.8, "CVSS:3.1/", "CVE-2023-50094"},
		// MODERATE from GHSA; PYSEC's vector scores higher and wins the score.
		{"/tmpgapps/requirements.txt", "werkzeug", "CVE-2023-46136", "", "", "pip", "2.2.3", "2.3.8", vulnzero.SeverityMedium, 7.5, "CVSS:3.1/AV:N", "GHSA-hrfv-mqp8-q5rw"},
		// No vector at all: severity from the text, no score.
		{rengine, "django", "CVE-2024-24680", "", "", "pip", "3.2.4", "3.2.24", vulnzero.SeverityMedium, 0, "", "GHSA-xxj9-f6rv-m3x4"},
	}},
	// A malicious package: no fix, no severity.
	"dd_some_findings_npm.json": {n: 1, hosts: []string{"/tmp/components/yarn.lock"}, checks: []fwant{
		{"/tmp/components/yarn.lock", "flot-axis", "GHSA-8348-2q94-ffjx", "", "", "npm", "0.0.0", "", vulnzero.SeverityUnknown, 0, "", "MAL-2023-1035"},
	}},
	// Debian:10 OS packages beside Go and crates.io lockfiles.
	"debian10_go_crates.json": {n: 11, hosts: []string{"testdata/filter/some/configs/a/", "testdata/filter/some/configs/b/", "testdata/filter/some/configs/c/"}, checks: []fwant{
		{"testdata/filter/some/configs/a/", "unixodbc", "CVE-2024-1013", "debian 10", "debian", "deb", "2.3.11-2", "", vulnzero.SeverityUnknown, 0, "", "CVE-2024-1013"},
		// A fix for golang.org/x/net, not for stdlib (same record).
		{"testdata/filter/some/configs/b/", "golang.org/x/net", "CVE-2022-41717", "", "", "gomod", "0.1.0", "0.4.0", vulnzero.SeverityUnknown, 0, "", "GO-2022-1144"},
		{"testdata/filter/some/configs/c/", "remove_dir_all", "GHSA-mc8h-8q98-g5hr", "", "", "cargo", "0.5.3", "0.8.0", vulnzero.SeverityLow, 0, "", "GHSA-mc8h-8q98-g5hr"},
	}},
	// A group without aliases: the CVE comes from the record's aliases.
	"go_cargo_groups.json": {n: 2, hosts: []string{"/path/to/go.mod", "/path/to/sub-rust-project/Cargo.lock"}, checks: []fwant{
		{"/path/to/go.mod", "github.com/gogo/protobuf", "CVE-2021-3121", "", "", "gomod", "1.3.1", "1.3.2", vulnzero.SeverityUnknown, 0, "", "GO-2021-0053"},
		{"/path/to/sub-rust-project/Cargo.lock", "regex", "CVE-2022-24713", "", "", "cargo", "1.5.1", "1.5.5", vulnzero.SeverityHigh, 7.5, "CVSS:3.1/AV:N", "GHSA-m5pq-gvj9-9vr8"},
	}},
	"results-empty.json": {n: 0},
}

func TestOSVSamples(t *testing.T) {
	runSamples(t, "osv-scanner", FormatOSV, osvSamples)
}

func osvPackageJSON(name, version, eco string, vulns, groups string) string {
	return fmt.Sprintf(`{"package": {"name": %q, "version": %q, "ecosystem": %q}, "vulnerabilities": [%s], "groups": [%s]}`, name, version, eco, vulns, groups)
}

// Ecosystems of OS packages give the OS; records without groups are
// grouped by alias; a key-sorted result (packages before source) waits
// for its path; Options.Host names the machine instead of the path.
func TestOSVShapes(t *testing.T) {
	vulns := `{"id": "DSA-1", "aliases": ["CVE-2024-1"], "affected": [{"package": {"ecosystem": "Debian", "name": "openssl"}, "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u2"}]}]}], "database_specific": {"severity": "high"}},
	          {"id": "CVE-2024-1", "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:P/I:P/A:P"}]},
	          {"id": "GHSA-x", "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}`
	body := `{"results": [{"packages": [` +
		osvPackageJSON("openssl", "3.0.9-1", "Debian:12", vulns, "") + `,` +
		osvPackageJSON("musl", "1.2.3-r4", "Alpine:v3.18", `{"id": "CVE-2025-2"}`, `{"ids": ["CVE-2025-2"]}`) + `,` +
		osvPackageJSON("zlib", "1.2.11", "Ubuntu:Pro:18.04:LTS", `{"id": "UBUNTU-CVE-3", "severity": [{"type": "Ubuntu", "score": "negligible"}]}`, "") +
		`], "source": {"path": "/var/lib/dpkg/status", "type": "os"}}]}`
	var hosts []string
	fs, err := parseString(t, "os.json", body, "", Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 4 {
		t.Fatalf("%d findings, %v: %+v", len(fs), err, fs)
	}
	ssl := fs[0]
	if ssl.Host != "/var/lib/dpkg/status" || ssl.OS != "debian 12" || ssl.OSFamily != "debian" || ssl.Ecosystem != "deb" ||
		ssl.CVE != "CVE-2024-1" || ssl.RuleID != "DSA-1" || ssl.Fixed != "3.0.11-1~deb12u2" || ssl.Severity != vulnzero.SeverityHigh ||
		ssl.CVSS != 7.5 || ssl.CVSSVector != "AV:N/AC:L/Au:N/C:P/I:P/A:P" {
		t.Errorf("openssl: %+v", ssl)
	}
	if v4 := fs[1]; v4.CVE != "GHSA-x" || v4.CVSS != 0 || !strings.HasPrefix(v4.CVSSVector, "CVSS:4.0/") || v4.Severity != vulnzero.SeverityUnknown {
		t.Errorf("v4 only: %+v", v4)
	}
	if musl := fs[2]; musl.OS != "alpine 3.18" || musl.Ecosystem != "apk" || musl.OSFamily != "alpine" {
		t.Errorf("musl: %+v", musl)
	}
	if zlib := fs[3]; zlib.OS != "ubuntu 18.04" || zlib.OSFamily != "debian" || zlib.Severity != vulnzero.SeverityLow {
		t.Errorf("zlib: %+v", zlib)
	}
	if strings.Join(hosts, ",") != "/var/lib/dpkg/status" {
		t.Errorf("covered %v", hosts)
	}

	fs, err = parseString(t, "os.json", body, "", Options{Host: "db-1"})
	if err != nil || len(fs) != 4 || fs[0].Host != "db-1" {
		t.Fatalf("configured host: %+v, %v", fs, err)
	}
}

func TestOSVBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		want       string
	}{
		{"package without name or commit", "{\"results\": [{\"source\": {\"path\": \"p\"}, \"packages\": [\n{\"package\": {}}]}]}",
			"2:1 results[0].packages[0].package: package has neither a name nor a commit"},
		{"vulnerability without id", "{\"results\": [{\"source\": {\"path\": \"p\"}, \"packages\": [\n{\"package\": {\"name\": \"a\"}, \"vulnerabilities\": [{}]}]}]}",
			"2:1 results[0].packages[0].vulnerabilities[0]: vulnerability has no id"},
		{"group without ids", "{\"results\": [{\"source\": {\"path\": \"p\"}, \"packages\": [\n{\"package\": {\"name\": \"a\"}, \"groups\": [{}]}]}]}",
			"2:1 results[0].packages[0].groups[0]: group has no ids"},
		{"no host", "{\"results\": [{\"packages\": [" + osvPackageJSON("a", "1", "npm", `{"id": "X-1"}`, "") + "]\n}]}",
			"2:1 results[0]: no host: the result has no source.path (configure a host for this source)"},
		{"wrong type", "{\"results\": [{\"source\": {\"path\": 1}}]}",
			"1:34 results[0].source.path: cannot use JSON number as string"},
		{"results not a list", "{\"results\": {}}", "1:13 results: expected a list, found an object"},
		{"not an object", "\"x\"", "1:1 : an OSV-Scanner report is a JSON object; found string \"x\""},
		{"truncated", "{\"results\": [{\"source\": {\"pa", "1:29 results[0]: unexpected end of input: the report is truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := parseString(t, "bad.json", tt.body, FormatOSV, Options{})
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

// Scores computed from vectors match NVD's published base scores.
func TestCVSSScore(t *testing.T) {
	for vector, want := range map[string]float64{
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": 9.8,
		"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:N/A:N": 7.7,
		"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:H/A:N": 8.0,
		"CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H": 7.8,
		"CVSS:3.1/AV:A/AC:H/PR:H/UI:N/S:U/C:H/I:N/A:N": 4.2,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N": 0,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N": 6.1,
		"AV:N/AC:L/Au:N/C:P/I:P/A:P":                   7.5,
		"AV:L/AC:L/Au:N/C:C/I:C/A:C":                   7.2,
		"(AV:N/AC:M/Au:N/C:N/I:P/A:N)":                 4.3,
	} {
		got, ok := cvssScore(vector)
		if !ok || got != want {
			t.Errorf("cvssScore(%q) = %v, %v; want %v", vector, got, ok, want)
		}
	}
	for _, bad := range []string{"", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", "CVSS:3.1/AV:X/AC:L", "AV:N/AV:N", "garbage"} {
		if _, ok := cvssScore(bad); ok {
			t.Errorf("cvssScore(%q) accepted", bad)
		}
	}
}

func FuzzOSV(f *testing.F) {
	for _, dir := range []string{filepath.Join(realdata, "osv-scanner"), filepath.Join(fixtures, "osv-scanner")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`{"results": [{"packages": [` + osvPackageJSON("a", "1", "Debian:12", `{"id": "CVE-1", "aliases": ["GHSA-1"]}`, "") + `], "source": {"path": "p"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzParse(t, b, FormatOSV)
	})
}
