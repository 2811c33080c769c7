package scan

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

func TestTenableExportChunk(t *testing.T) {
	dir := requireRealdata(t, "tenable")
	var hosts []string
	format, fs, err := parseFile(t, filepath.Join(dir, "tenable_io_vulns_export_chunk_1.json"), Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || format != FormatTenable {
		t.Fatalf("format %q, %v", format, err)
	}
	// 103 results, 84 informational; the other 19 list 262 CVEs in all.
	if len(fs) != 262 {
		t.Errorf("%d findings, want 262", len(fs))
	}
	// The FQDN names the asset; the recorder's "[REDACTED]" IP is ignored.
	if len(hosts) == 0 || hosts[0] != "mbp16inch2021.localdomain" {
		t.Errorf("hosts %v", hosts[:min(len(hosts), 3)])
	}
	f, ok := find(fs, "mbp16inch2021.localdomain", "nessus:159106", "CVE-2022-22648")
	want := vulnzero.Finding{
		Source: f.Source, Scanner: "tenable", Host: "mbp16inch2021.localdomain", OS: "macos 12.0", OSFamily: "macos",
		Package: "nessus:159106", CVE: "CVE-2022-22648", Title: "macOS 12.x < 12.3 (HT213183)", Severity: vulnzero.SeverityHigh,
		CVSS: 9.8, CVSSVector: "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", RuleID: "159106",
		FirstSeen: time.Date(2022, 5, 28, 15, 11, 31, 175e6, time.UTC), LastSeen: now, Status: vulnzero.FindingOpen,
	}
	if !ok || f != want {
		t.Errorf("macOS 12.3\n %+v\nwant\n %+v", f, want)
	}
	// No CVE: the plugin id.
	if f, ok := find(fs, "mbp16inch2021.localdomain", "nessus:156032", "NESSUS-156032"); !ok || f.CVSS != 10 || f.Severity != vulnzero.SeverityCritical {
		t.Errorf("Log4j unsupported %+v", f)
	}
}

// Package lines in the output, a fixed finding (imported fixed, as of
// last_fixed), an asset known only by its address, a string vector and the
// older indexed_at field.
func TestTenableExportSynthetic(t *testing.T) {
	body := `[
{"asset":{"uuid":"u-1","hostname":"web-1","fqdn":"web-1.corp.example","ipv4":"10.0.0.1","operating_system":["Ubuntu 22.04"]},
 "output":"\n  - Installed package : openssl_3.0.2-0ubuntu1.10\n  - Fixed package     : openssl_3.0.2-0ubuntu1.12\n",
 "plugin":{"id":183885,"name":"Ubuntu 22.04 LTS : OpenSSL vulnerabilities (USN-6450-1)","cve":["CVE-2023-3817","CVE-2023-5363"],"cvss3_base_score":7.5,"cvss3_vector":"AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"},
 "severity":"high","severity_id":3,"state":"OPEN","first_found":"2023-11-01T00:00:00Z","indexed_at":1698796800},
{"asset":{"uuid":"u-2","ipv4":["10.0.0.2"]},"plugin":{"id":1,"name":"x","cve":["CVE-2020-1"]},"severity":"medium","state":"FIXED","last_fixed":"2024-02-03T04:05:06Z"},
{"asset":{"uuid":"u-3","ipv4":"10.0.0.3"},"plugin":{"id":2,"name":"y"},"severity_id":2,"state":"REOPENED"}
]`
	var hosts []string
	fs, err := parseString(t, "chunk.json", body, "", Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 4 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	if f := fs[2]; f.Host != "10.0.0.2" || f.Status != vulnzero.FindingFixed || !f.FixedAt.Equal(time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)) {
		t.Errorf("fixed %+v", f)
	}
	fs = append(fs[:2], fs[3:]...)
	if strings.Join(hosts, ",") != "web-1.corp.example,10.0.0.2,10.0.0.3" {
		t.Errorf("hosts %v", hosts)
	}
	if f := fs[1]; f.Package != "openssl" || f.Ecosystem != "deb" || f.Installed != "3.0.2-0ubuntu1.10" || f.Fixed != "3.0.2-0ubuntu1.12" ||
		f.CVE != "CVE-2023-5363" || f.OS != "ubuntu 22.04" || f.OSFamily != "debian" || f.CVSSVector != "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N" {
		t.Errorf("openssl %+v", f)
	}
	if f := fs[2]; f.Host != "10.0.0.3" || f.CVE != "NESSUS-2" || f.Severity != vulnzero.SeverityMedium {
		t.Errorf("reopened %+v", f)
	}
	// An empty chunk.
	if fs, err := parseString(t, "empty.json", "[]", FormatTenable, Options{}); err != nil || len(fs) != 0 {
		t.Errorf("empty chunk: %d, %v", len(fs), err)
	}
}

func TestTenableBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		line       int
		reason     string
	}{
		{"truncated", "[\n{\"asset\":{\"uuid\":\"u\"},", 2, "truncated"},
		{"not an array", `"x"`, 1, "JSON array of findings"},
		{"bad severity", "[\n{\"asset\":{\"uuid\":\"u\"},\"plugin\":{\"id\":1},\"severity\":\"extreme\"}]", 2, `severity "extreme"`},
		{"no asset", "[\n{\"plugin\":{\"id\":1},\"severity\":\"high\"}]", 2, "names no asset"},
		{"bad score", "[\n{\"asset\":{\"uuid\":\"u\"},\"plugin\":{\"id\":1,\"cvss3_base_score\":\"n/a!\"},\"severity\":\"high\"}]", 2, "cvss3_base_score"},
		{"score out of range", "[\n{\"asset\":{\"uuid\":\"u\"},\"plugin\":{\"id\":1,\"cvss_base_score\":42},\"severity\":\"high\"}]", 2, "not from 0 to 10"},
		{"trailing", "[]\n[]", 2, "unexpected data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, "c.json", tt.body, FormatTenable, Options{})
			pe := positionError(t, err, "c.json")
			if pe.Line != tt.line || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %v; want line %d and %q", err, tt.line, tt.reason)
			}
		})
	}
}

func FuzzTenable(f *testing.F) {
	if b, err := readRealdata("tenable", "tenable_io_vulns_export_status_finished.json"); err == nil {
		f.Add(b)
	}
	// The real chunk is 247 kB, too big to mutate in a few seconds: seed
	// with its first finding and its first vulnerability, verbatim.
	if b, err := readRealdata("tenable", "tenable_io_vulns_export_chunk_1.json"); err == nil {
		var all []json.RawMessage
		if err := json.Unmarshal(b, &all); err != nil {
			f.Fatal(err)
		}
		seed := []json.RawMessage{all[0]}
		for _, v := range all {
			if !bytes.Contains(v, []byte(`"severity":"info"`)) {
				seed = append(seed, v)
				break
			}
		}
		s, _ := json.Marshal(seed)
		f.Add(s)
	}
	f.Add([]byte(`[{"asset":{"ipv4":["10.0.0.1"]},"plugin":{"id":"1","cvss3_vector":{"raw":"AV:N"}},"severity_id":4,"output":"Remote package installed : a-1-1\nShould be : a-1-2"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzVendor(t, b, FormatTenable, Options{})
	})
}
