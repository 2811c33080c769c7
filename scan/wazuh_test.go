package scan

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

func TestWazuhAPI(t *testing.T) {
	dir := requireRealdata(t, "wazuh")
	var hosts []string
	var pages []Page
	opts := Options{Host: "agent-007", OnHost: func(h string) { hosts = append(hosts, h) }, OnPage: func(p Page) { pages = append(pages, p) }}
	format, fs, err := parseFile(t, filepath.Join(dir, "api-v4.7_many_findings.json"), opts)
	if err != nil || format != FormatWazuh {
		t.Fatalf("format %q, err %v", format, err)
	}
	if len(fs) != 13 {
		t.Fatalf("%d findings, want 13", len(fs))
	}
	if strings.Join(hosts, ",") != "agent-007" {
		t.Errorf("covered %v", hosts)
	}
	if len(pages) != 1 || pages[0].Total != 13 || pages[0].Count != 13 {
		t.Errorf("pages %+v, want one with total 13, count 13", pages)
	}
	tests := []struct {
		pkg, cve         string
		installed, fixed string
		sev              vulnzero.Severity
		cvss             float64
		firstSeen        string
	}{
		// "Package unfixed": no fix known; cvss3 before cvss2.
		{"123123", "CVE-YYYY-fjiewof", "2.11", "", vulnzero.SeverityCritical, 9.8, "2023-02-08T13:55:24Z"},
		// An epoch in the condition, kept: the installed version is not "0:".
		{"jfiowaefjeow", "CVE-YYYY-IJKL", "1892123.891.10", "1:1238", vulnzero.SeverityHigh, 7.5, "2023-02-08T16:34:30Z"},
		// Free text that is not a version is not a fix.
		{"bfasf", "CVE-YYYY-EFGH", "1892123.891.10", "", vulnzero.SeverityHigh, 7.5, "2023-02-08T16:34:40Z"},
		// Untriaged is unknown; both scores 0 mean unknown, not zero.
		{"teststestse", "CVE-YYYY-jfjieo", "2u1", "2u2", vulnzero.SeverityUnknown, 0, "2023-02-08T16:34:09Z"},
		// cvss3 0 falls back to cvss2.
		{"fewfef", "CVE-YYYY-ABCD", "2.33.1-0.1", "", vulnzero.SeverityMedium, 5.5, "2023-02-08T16:34:07Z"},
	}
	for _, tt := range tests {
		f, ok := find(fs, "agent-007", tt.pkg, tt.cve)
		if !ok {
			t.Errorf("no finding %s %s", tt.pkg, tt.cve)
			continue
		}
		if f.Installed != tt.installed || f.Fixed != tt.fixed || f.Severity != tt.sev || f.CVSS != tt.cvss || f.FirstSeen.Format(time.RFC3339) != tt.firstSeen || f.Scanner != "wazuh" {
			t.Errorf("%s %s: %+v; want installed %s fixed %q %v %v first seen %s", tt.pkg, tt.cve, f, tt.installed, tt.fixed, tt.sev, tt.cvss, tt.firstSeen)
		}
	}
	if f, _ := find(fs, "agent-007", "123123", "CVE-YYYY-fjiewof"); f.Title != "CVE-YYYY-fjiewof affects 123123" {
		t.Errorf("title %q", f.Title)
	}

	// The exporter's agent_name names the host when none is configured.
	_, fs, err = parseFile(t, filepath.Join(dir, "api-v4.7_one_finding_with_endpoint.json"), Options{})
	if err != nil || len(fs) != 1 {
		t.Fatalf("one finding: %d, %v", len(fs), err)
	}
	if f := fs[0]; f.Host != "agent-1" || f.Package != "asdf" || f.Fixed != "2" || f.CVSS != 6.5 || f.Severity != vulnzero.SeverityMedium {
		t.Errorf("finding %+v", f)
	}
}

func TestWazuhIndexer(t *testing.T) {
	dir := requireRealdata(t, "wazuh")
	var hosts []string
	var pages []Page
	opts := Options{OnHost: func(h string) { hosts = append(hosts, h) }, OnPage: func(p Page) { pages = append(pages, p) }}
	_, fs, err := parseFile(t, filepath.Join(dir, "indexer-v4.8_many_findings.json"), opts)
	if err != nil || len(fs) != 10 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	// The host is the agent's name: ids are reused across names in the
	// capture, names are what the inventory holds.
	if strings.Join(hosts, ",") != "myhost0,myhost1" {
		t.Errorf("covered %v", hosts)
	}
	// One page of 125: the puller must ask for the rest. The search was not
	// sorted, so there is nothing to search_after.
	if len(pages) != 1 || pages[0].Total != 125 || pages[0].TotalRelation != "eq" || pages[0].Count != 10 || pages[0].SearchAfter != nil {
		t.Errorf("pages %+v", pages)
	}
	f, ok := find(fs, "myhost1", "libheimbase1t64-heimdal", "CVE-2022-44640")
	if !ok {
		t.Fatal("no heimdal finding on myhost1")
	}
	want := vulnzero.Finding{
		Source: f.Source, Scanner: "wazuh", Host: "myhost1", OS: "ubuntu 24.04.1", OSFamily: "debian",
		Package: "libheimbase1t64-heimdal", Ecosystem: "deb", Installed: "7.8.git20221117.28daf24+dfsg-5ubuntu3",
		Fixed: "", CVE: "CVE-2022-44640", Title: "CVE-2022-44640 affects libheimbase1t64-heimdal",
		Severity: vulnzero.SeverityCritical, CVSS: 9.8,
		FirstSeen: time.Date(2025, 6, 30, 17, 7, 16, 11e6, time.UTC), LastSeen: now, Status: vulnzero.FindingOpen,
	}
	if f != want {
		t.Errorf("finding\n %+v\nwant\n %+v", f, want)
	}
	// The same CVE on two kernel packages is two findings.
	if _, ok := find(fs, "myhost0", "linux-image-6.8.0-62-generic", "CVE-2025-27558"); !ok {
		t.Error("CVE-2025-27558 on the -62 kernel is missing")
	}

	// An earlier capture gives every hit agent id 001 with two names.
	hosts = nil
	if _, fs, err = parseFile(t, filepath.Join(dir, "indexer-v4.8_issue_12634.json"), opts); err != nil || len(fs) != 10 {
		t.Fatalf("issue 12634: %d findings, %v", len(fs), err)
	}
	if strings.Join(hosts, ",") != "myhost0,myhost1" {
		t.Errorf("issue 12634 covered %v", hosts)
	}
}

// A sorted page exposes the last hit's sort values for search_after, and
// a scroll its id; "Package less than X" gives the fix.
func TestWazuhIndexerPaging(t *testing.T) {
	body := `{"_scroll_id":"FGluY2x1ZGU","took":3,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},
"hits":{"total":{"value":3,"relation":"gte"},"max_score":null,"hits":[
 {"_index":"wazuh-states-vulnerabilities-x","_id":"a","_score":null,"_source":{"agent":{"id":"003","name":"web-1"},"host":{"os":{"platform":"rocky","version":"9.3"}},
  "package":{"name":"openssl","version":"1:3.0.7-24.el9","type":"rpm"},
  "vulnerability":{"id":"CVE-2024-0727","severity":"Medium","score":{"base":5.5,"version":"3.1"},"detected_at":"2025-01-02T03:04:05Z","scanner":{"condition":"Package less than 1:3.0.7-25.el9_3"}}},
  "sort":[1735787045000,"a"]},
 {"_index":"wazuh-states-vulnerabilities-x","_id":"b","_score":null,"_source":{"agent":{"id":"003","name":"web-1"},"host":{"os":{"platform":"rocky","version":"9.3"}},
  "package":{"name":"curl","version":"7.76.1-26.el9","type":"rpm"},
  "vulnerability":{"id":"CVE-2023-38545","severity":"High","score":{"base":9.8,"version":"3.1"},"scanner":{"condition":"Package less than or equal to 7.76.1-26.el9"}}},
  "sort":[1735787046000,"b"]}]}}`
	var pages []Page
	fs, err := parseString(t, "page.json", body, "", Options{OnPage: func(p Page) { pages = append(pages, p) }})
	if err != nil || len(fs) != 2 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	if len(pages) != 1 || pages[0].Total != 3 || pages[0].TotalRelation != "gte" || pages[0].ScrollID != "FGluY2x1ZGU" || string(pages[0].SearchAfter) != `[1735787046000,"b"]` {
		t.Errorf("page %+v (search_after %s)", pages, pages[0].SearchAfter)
	}
	if f := fs[0]; f.Fixed != "1:3.0.7-25.el9_3" || f.OS != "rocky 9.3" || f.OSFamily != "rhel" || f.Ecosystem != "rpm" {
		t.Errorf("openssl %+v", f)
	}
	if f := fs[1]; f.Fixed != "" || f.Severity != vulnzero.SeverityHigh {
		t.Errorf("curl (less than or equal: no fix named) %+v", f)
	}
}

func TestWazuhAlerts(t *testing.T) {
	dir := requireRealdata(t, "wazuh")
	var hosts []string
	opts := Options{Host: "agent-1", OnHost: func(h string) { hosts = append(hosts, h) }}
	format, fs, err := parseFile(t, filepath.Join(dir, "alert-data-v4.8plus_vulnerability-detector_payloads.ndjson"), opts)
	if err != nil || format != FormatWazuh || len(fs) != 10 {
		t.Fatalf("format %q, %d findings, %v", format, len(fs), err)
	}
	// Alerts are events: they never cover a host.
	if len(hosts) != 0 {
		t.Errorf("alerts covered %v", hosts)
	}
	tests := []struct {
		pkg, cve, installed, fixed string
		sev                        vulnzero.Severity
		cvss                       float64
	}{
		{"libldb2", "CVE-2023-34966", "2:2.6.2+samba4.17.9+dfsg-0+deb12u1", "2:2.6.2+samba4.17.10+dfsg-0+deb12u1", vulnzero.SeverityHigh, 7.5},
		// "0:" in the condition, none installed: dropped.
		{"nss", "CVE-2020-25648", "3.53.1-3.el7_9", "3.53.1-7.el7_9", vulnzero.SeverityHigh, 7.5},
		{"networkd-dispatcher", "CVE-2022-29800", "2.1-1~ubuntu20.04.3", "2.1-2~ubuntu20.04.2", vulnzero.SeverityMedium, 4.7},
		// Only cvss2.
		{"LibreOffice 4.2.0.1", "CVE-2014-3524", "4.2.0.1", "4.2.6", vulnzero.SeverityHigh, 9.3},
		{"macOS", "CVE-2024-23224", "14.0", "14.3", vulnzero.SeverityMedium, 5.5},
	}
	for _, tt := range tests {
		f, ok := find(fs, "agent-1", tt.pkg, tt.cve)
		if !ok {
			t.Errorf("no finding %s %s", tt.pkg, tt.cve)
			continue
		}
		// The detector leaves attack complexity out of its vectors, so no
		// vector is made up.
		if f.Installed != tt.installed || f.Fixed != tt.fixed || f.Severity != tt.sev || f.CVSS != tt.cvss || f.CVSSVector != "" || !f.FirstSeen.Equal(now) {
			t.Errorf("%s: %+v", tt.pkg, f)
		}
	}
}

// Whole alerts (alerts.json): the agent names the host, other rules'
// alerts are skipped, a Solved alert is not imported, a complete vector is
// rebuilt, and the older layout's string scores are read.
func TestWazuhAlertFile(t *testing.T) {
	body := `{"timestamp":"2024-01-10T10:00:00.000+0000","rule":{"id":"5715","level":3},"agent":{"id":"002","name":"db-1","ip":"10.0.0.2"},"location":"/var/log/auth.log","data":{"srcuser":"root"}}
{"timestamp":"2024-01-10T10:05:00.000+0000","rule":{"id":"23505","level":10,"groups":["vulnerability-detector"]},"agent":{"id":"002","name":"db-1","ip":"10.0.0.2"},"location":"vulnerability-detector","data":{"vulnerability":{"cve":"CVE-2023-4911","title":"CVE-2023-4911 affects libc6","severity":"High","status":"Active","package":{"name":"libc6","version":"2.36-9+deb12u1","condition":"Package less than 2.36-9+deb12u3","architecture":"amd64"},"score":{"base":7.8,"version":"3.1"},"cvss":{"cvss3":{"base_score":7.8,"vector":{"attack_vector":"LOCAL","attack_complexity":"LOW","privileges_required":"LOW","user_interaction":"NONE","scope":"UNCHANGED","confidentiality_impact":"HIGH","integrity_impact":"HIGH","availability":"HIGH"}}}}}}
{"timestamp":"2024-01-11T10:05:00.000+0000","agent":{"id":"002","name":"db-1"},"data":{"vulnerability":{"cve":"CVE-2023-0001","severity":"Low","status":"Solved","package":{"name":"zlib1g","version":"1:1.2.13.dfsg-1","condition":"Package less than 1:1.2.13.dfsg-2"}}}}
{"agent":{"id":"003","name":"web-2"},"data":{"vulnerability":{"cve":"CVE-2019-1010022","title":"old layout","severity":"Critical","package":{"name":"libc-bin","version":"2.28-10","condition":"Package unfixed"},"cvss":{"cvss2":{"base_score":"9.300000","vector":{"access_vector":"network","access_complexity":"medium","authentication":"none","confidentiality_impact":"complete","integrity_impact":"complete","availability":"complete"}}}}}}
`
	fs, err := parseString(t, "alerts.json", body, "", Options{})
	if err != nil || len(fs) != 2 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	glibc := fs[0]
	if glibc.Host != "db-1" || glibc.Fixed != "2.36-9+deb12u3" || glibc.CVSS != 7.8 || glibc.CVSSVector != "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H" ||
		!glibc.FirstSeen.Equal(time.Date(2024, 1, 10, 10, 5, 0, 0, time.UTC)) {
		t.Errorf("libc6 %+v", glibc)
	}
	old := fs[1]
	if old.Host != "web-2" || old.CVSS != 9.3 || old.CVSSVector != "AV:N/AC:M/Au:N/C:C/I:C/A:C" || old.Fixed != "" || old.Severity != vulnzero.SeverityCritical {
		t.Errorf("old layout %+v", old)
	}

	// The same alerts as one JSON array.
	arr := "[" + strings.Join(strings.Split(strings.TrimSpace(body), "\n"), ",") + "]"
	fs, err = parseString(t, "alerts-array.json", arr, FormatWazuh, Options{})
	if err != nil || len(fs) != 2 || fs[0].Key() != glibc.Key() {
		t.Fatalf("array: %d findings, %v", len(fs), err)
	}
}

func TestWazuhFixed(t *testing.T) {
	tests := []struct{ cond, installed, want string }{
		{"Package less than 4.3.2", "4.3.1", "4.3.2"},
		{"Package less than 0:3.53.1-7.el7_9", "3.53.1-3.el7_9", "3.53.1-7.el7_9"},
		{"Package less than 0:1.2-3", "0:1.2-2", "0:1.2-3"},
		{"Package less than 2:2.6.2+dfsg", "2:2.6.1", "2:2.6.2+dfsg"},
		{"Package greater than or equal to 1.0 and less than 1.4.2", "1.1", "1.4.2"},
		{"Package less than or equal to 24.18.0", "24.18.0", ""},
		{"Package less or equal than 3.1", "3.1", ""},
		{"Package equal to 1.0", "1.0", ""},
		{"Package unfixed", "1.0", ""},
		{"Package default status", "1.0", ""},
		{"Package less than lorem impsumversion", "1.0", ""},
		{"", "1.0", ""},
	}
	for _, tt := range tests {
		if got := wazuhFixed(tt.cond, tt.installed); got != tt.want {
			t.Errorf("wazuhFixed(%q, %q) = %q, want %q", tt.cond, tt.installed, got, tt.want)
		}
	}
}

// Clean agents and empty pages are zero findings, not errors; a clean
// agent is still covered.
func TestWazuhEmpty(t *testing.T) {
	var hosts []string
	fs, err := parseString(t, "empty.json", `{"data":{"affected_items":[],"total_affected_items":0,"total_failed_items":0,"failed_items":[]},"message":"No vulnerabilities","error":0}`, "", Options{Host: "agent-9", OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 0 || strings.Join(hosts, ",") != "agent-9" {
		t.Errorf("clean agent: %d findings, %v, covered %v", len(fs), err, hosts)
	}
	fs, err = parseString(t, "empty-page.json", `{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"total":{"value":0,"relation":"eq"},"max_score":null,"hits":[]}}`, "", Options{})
	if err != nil || len(fs) != 0 {
		t.Errorf("empty page: %d findings, %v", len(fs), err)
	}
}

func TestWazuhBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		line       int
		reason     string
	}{
		{"truncated", "{\"data\":{\"affected_items\":[\n{\"name\":\"a\",", 2, "truncated"},
		{"failed items", `{"data":{"affected_items":[],"failed_items":[{"error":{"code":1701,"message":"Agent does not exist"},"id":["009"]}],"total_failed_items":1},"error":1}`, 1, "1 failed item(s): Agent does not exist (code 1701)"},
		{"trailing data", `{"data":{"affected_items":[]}}` + "\n" + `{"x":1}`, 2, "unexpected data after the end"},
		{"no data", `{"title":"Unauthorized","detail":"Invalid token","error":6000,"affected_items":[]}`, 1, "no data: Invalid token"},
		{"no cve", `{"data":{"affected_items":[{"name":"a","version":"1","agent_name":"h"}]}}`, 1, "item has no cve"},
		{"bad score", "{\"data\":{\"affected_items\":[\n{\"name\":\"a\",\"cve\":\"CVE-1\",\"cvss3_score\":\"high\"}]}}", 2, "cvss3_score"},
		{"timed out", `{"took":1,"timed_out":true,"_shards":{"failed":0},"hits":{"hits":[]}}`, 1, "timed out"},
		{"shard failed", `{"took":1,"timed_out":false,"_shards":{"total":2,"failed":1},"hits":{"hits":[]}}`, 1, "1 shard(s) failed"},
		{"no source", `{"took":1,"timed_out":false,"hits":{"hits":[{"_id":"x"}]}}`, 1, "no _source"},
		{"hit without package", `{"took":1,"timed_out":false,"hits":{"hits":[{"_source":{"agent":{"name":"h"},"vulnerability":{"id":"CVE-1"}}}]}}`, 1, "no package name"},
		{"garbage alert line", "{\"vulnerability\":{\"cve\":\"CVE-1\",\"package\":{\"name\":\"a\"}},\"agent\":{\"name\":\"h\"}}\n{\"rule\":{\"id\":\"5715\"}}\nnot json\n", 3, "invalid character"},
		{"unknown shape", `{"something":"else","vulnerability_list":[]}`, 1, "not Wazuh vulnerability data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, "w.json", tt.body, FormatWazuh, Options{})
			pe := positionError(t, err, "w.json")
			if pe.Line != tt.line || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %v; want line %d and %q", err, tt.line, tt.reason)
			}
		})
	}
}

func FuzzWazuh(f *testing.F) {
	addSeeds(f, "wazuh")
	f.Add([]byte(`{"vulnerability":{"cve":"CVE-1","package":{"name":"a","condition":"Package less than 2"}}}`))
	f.Add([]byte(`[{"agent":{"name":"h"},"data":{"vulnerability":{"cve":"CVE-1","package":{"name":"a"},"cvss":{"cvss3":{"vector":{"scope":"changed"}}}}}}]`))
	f.Add([]byte(`{"took":1,"hits":{"total":5,"hits":[{"_source":{"agent":{"name":"h"},"package":{"name":"p"},"vulnerability":{"id":"CVE-1","score":{"base":"7"}}},"sort":[1]}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzVendor(t, b, FormatWazuh, Options{})
		fuzzVendor(t, b, FormatWazuh, Options{Host: "h"})
	})
}
