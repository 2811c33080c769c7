package scan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

func TestQualysKB(t *testing.T) {
	dir := requireRealdata(t, "qualys")
	kb, err := LoadQualysKBFile(filepath.Join(dir, "knowledge_base_vuln_list_output.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if kb.Len() != 42 {
		t.Errorf("KB has %d QIDs, want 42", kb.Len())
	}
	v, ok := kb.Lookup(150272)
	if !ok || v.Title != "PHP 7 Multiple Vulnerabilities" || v.Severity != 3 || v.Type != "Potential Vulnerability" ||
		strings.Join(v.CVEs, ",") != "CVE-2019-11041,CVE-2019-11042" || v.CVSS != 0 {
		t.Errorf("QID 150272: %+v", v)
	}
	if v, ok := kb.Lookup(6); !ok || v.Title != "DNS Host Name" || len(v.CVEs) != 0 {
		t.Errorf("QID 6: %+v", v)
	}
	if _, ok := kb.Lookup(38170); ok {
		t.Error("QID 38170 is not in the sample KB")
	}

	// CVSS blocks (the sample has none) and a truncation warning.
	page, err := kb.Load("kb-2.xml", strings.NewReader(`<?xml version="1.0" encoding="UTF-8" ?>
<KNOWLEDGE_BASE_VULN_LIST_OUTPUT><RESPONSE><DATETIME>2024-01-01T00:00:00Z</DATETIME><VULN_LIST>
<VULN><QID>370000</QID><VULN_TYPE>Vulnerability</VULN_TYPE><SEVERITY_LEVEL>4</SEVERITY_LEVEL><TITLE><![CDATA[Test]]></TITLE>
<CVE_LIST><CVE><ID><![CDATA[CVE-2024-1]]></ID></CVE></CVE_LIST>
<CVSS><BASE source="service">7.5</BASE><VECTOR_STRING>CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P</VECTOR_STRING></CVSS>
<CVSS_V3><BASE>9.8</BASE><VECTOR_STRING>CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H</VECTOR_STRING></CVSS_V3></VULN>
</VULN_LIST><WARNING><CODE>1980</CODE><TEXT>1000 record limit exceeded.</TEXT><URL><![CDATA[https://qualysapi.example/api/2.0/fo/knowledge_base/vuln/?action=list&id_min=370001]]></URL></WARNING></RESPONSE></KNOWLEDGE_BASE_VULN_LIST_OUTPUT>`))
	if err != nil {
		t.Fatal(err)
	}
	if page.Count != 1 || page.Next != "https://qualysapi.example/api/2.0/fo/knowledge_base/vuln/?action=list&id_min=370001" {
		t.Errorf("page %+v", page)
	}
	if v, _ := kb.Lookup(370000); v.CVSS != 9.8 || v.CVSSVector != "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" || kb.Len() != 43 {
		t.Errorf("QID 370000: %+v (KB %d)", v, kb.Len())
	}

	for _, bad := range []struct{ name, body, reason string }{
		{"not a kb", `<SCAN value="scan/1"></SCAN>`, "not KNOWLEDGE_BASE_VULN_LIST_OUTPUT"},
		{"bad qid", "<KNOWLEDGE_BASE_VULN_LIST_OUTPUT><RESPONSE><VULN_LIST>\n<VULN><QID>x</QID></VULN></VULN_LIST></RESPONSE></KNOWLEDGE_BASE_VULN_LIST_OUTPUT>", `QID "x"`},
		{"truncated", "<KNOWLEDGE_BASE_VULN_LIST_OUTPUT><RESPONSE><VULN_LIST>\n<VULN><QID>1</QID>", "truncated"},
	} {
		_, err := LoadQualysKB("kb.xml", strings.NewReader(bad.body))
		pe := positionError(t, err, "kb.xml")
		if pe.Line < 1 || !strings.Contains(err.Error(), bad.reason) {
			t.Errorf("%s: %v", bad.name, err)
		}
	}
}

// testKB describes the QIDs of the detection samples (the sample KB holds
// none of them). Written for this test; the CVE of 38601 is the one Qualys
// lists for RC4 (CVE-2013-2566).
const testKB = `<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE KNOWLEDGE_BASE_VULN_LIST_OUTPUT SYSTEM "https://qualysapi.qualys.com/api/2.0/fo/knowledge_base/vuln/knowledge_base_vuln_list_output.dtd">
<KNOWLEDGE_BASE_VULN_LIST_OUTPUT><RESPONSE><VULN_LIST>
<VULN><QID>38170</QID><VULN_TYPE>Vulnerability</VULN_TYPE><SEVERITY_LEVEL>2</SEVERITY_LEVEL><TITLE><![CDATA[SSL Certificate - Subject Common Name Does Not Match Server FQDN]]></TITLE></VULN>
<VULN><QID>38173</QID><VULN_TYPE>Vulnerability</VULN_TYPE><SEVERITY_LEVEL>2</SEVERITY_LEVEL><TITLE><![CDATA[SSL Certificate - Signature Verification Failed Vulnerability]]></TITLE></VULN>
<VULN><QID>38601</QID><VULN_TYPE>Vulnerability</VULN_TYPE><SEVERITY_LEVEL>3</SEVERITY_LEVEL><TITLE><![CDATA[SSL/TLS use of weak RC4 cipher]]></TITLE>
<CVE_LIST><CVE><ID><![CDATA[CVE-2013-2566]]></ID></CVE><CVE><ID><![CDATA[CVE-2015-2808]]></ID></CVE></CVE_LIST>
<CVSS_V3><BASE>5.9</BASE><VECTOR_STRING>CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N</VECTOR_STRING></CVSS_V3></VULN>
</VULN_LIST></RESPONSE></KNOWLEDGE_BASE_VULN_LIST_OUTPUT>`

func TestQualysDetectionJoinedWithKB(t *testing.T) {
	dir := requireRealdata(t, "qualys")
	kb, err := LoadQualysKB("test-kb.xml", strings.NewReader(testKB))
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	var pages []Page
	opts := Options{QualysKB: kb, OnHost: func(h string) { hosts = append(hosts, h) }, OnPage: func(p Page) { pages = append(pages, p) }}
	_, fs, err := parseFile(t, filepath.Join(dir, "host_list_vm_detection_output_graph-qualys.xml"), opts)
	if err != nil || len(fs) != 4 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	if strings.Join(hosts, ",") != "2k8r2-u-10-11" || len(pages) != 1 || pages[0].Count != 1 || pages[0].Next != "" {
		t.Errorf("covered %v, pages %+v", hosts, pages)
	}
	// Without CVEs, the QID with its KB title.
	cert, ok := find(fs, "2k8r2-u-10-11", "qualys:38170", "QID-38170")
	if !ok || cert.Title != "SSL Certificate - Subject Common Name Does Not Match Server FQDN" || cert.RuleID != "38170" ||
		cert.Severity != vulnzero.SeverityLow || cert.OS != "windows 2008" || cert.Scanner != "qualys" ||
		!cert.FirstSeen.Equal(time.Date(2018, 1, 26, 4, 45, 50, 0, time.UTC)) {
		t.Errorf("QID 38170: %+v", cert)
	}
	// One finding per CVE of the QID, with the KB's CVSS.
	for _, cve := range []string{"CVE-2013-2566", "CVE-2015-2808"} {
		rc4, ok := find(fs, "2k8r2-u-10-11", "qualys:38601", cve)
		if !ok || rc4.CVSS != 5.9 || rc4.CVSSVector != "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N" || rc4.Title != "SSL/TLS use of weak RC4 cipher" {
			t.Errorf("QID 38601 %s: %+v", cve, rc4)
		}
	}

	// A KB that lacks a detected QID is an error naming the QID and the
	// detection: never a bare QID.
	real, err := LoadQualysKBFile(filepath.Join(dir, "knowledge_base_vuln_list_output.xml"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "host_list_vm_detection_output_graph-qualys.xml")
	_, _, err = parseFile(t, p, Options{QualysKB: real})
	pe := positionError(t, err, p)
	if pe.Line != 20 || pe.Path != "HOST_LIST_VM_DETECTION_OUTPUT/RESPONSE/HOST_LIST/HOST/DETECTION_LIST/DETECTION" || !strings.Contains(err.Error(), "QID 38170 is not in the Qualys KnowledgeBase (42 QIDs loaded)") {
		t.Errorf("error %v (path %q)", err, pe.Path)
	}
}

// The demisto sample: a DNS-tracked host named by its FQDN, an IP-tracked
// one, Potential and New detections, and first-found after last-found.
func TestQualysDetectionHosts(t *testing.T) {
	dir := requireRealdata(t, "qualys")
	var b strings.Builder
	b.WriteString("<KNOWLEDGE_BASE_VULN_LIST_OUTPUT><RESPONSE><VULN_LIST>")
	for _, q := range []string{"11827", "15033", "15034", "15068", "38628", "38726", "38739", "38794"} {
		b.WriteString("<VULN><QID>" + q + "</QID><TITLE>QID " + q + " title</TITLE></VULN>")
	}
	b.WriteString("</VULN_LIST></RESPONSE></KNOWLEDGE_BASE_VULN_LIST_OUTPUT>")
	kb, err := LoadQualysKB("kb.xml", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	_, fs, err := parseFile(t, filepath.Join(dir, "host_list_vm_detection_output_demisto.xml"), Options{QualysKB: kb, OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 8 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	if strings.Join(hosts, ",") != "one.one.one.one,ec2-11-111-111-111.compute-1.amazonaws.com" {
		t.Errorf("hosts %v", hosts)
	}
	if f, ok := find(fs, "one.one.one.one", "qualys:15033", "QID-15033"); !ok || f.Severity != vulnzero.SeverityHigh || f.OS != "linux 3.13" || f.Title != "QID 15033 title" {
		t.Errorf("QID 15033: %+v", f)
	}
	if f, ok := find(fs, "ec2-11-111-111-111.compute-1.amazonaws.com", "qualys:38726", "QID-38726"); !ok || f.Severity != vulnzero.SeverityMedium {
		t.Errorf("potential QID 38726: %+v", f)
	}
}

// Authenticated checks list packages in RESULTS; fixed, ignored and
// information-gathered detections are not imported; a truncation warning
// gives the next page.
func TestQualysDetectionPackagesAndPaging(t *testing.T) {
	body := `<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM "https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/host_list_vm_detection_output.dtd">
<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><DATETIME>2024-05-01T00:00:00Z</DATETIME><HOST_LIST>
<HOST><ID>7</ID><IP>10.0.0.7</IP><TRACKING_METHOD>AGENT</TRACKING_METHOD><OS><![CDATA[CentOS Linux 7.9.2009]]></OS>
<DNS_DATA><HOSTNAME><![CDATA[db-7]]></HOSTNAME><DOMAIN><![CDATA[corp.example]]></DOMAIN><FQDN><![CDATA[db-7.corp.example]]></FQDN></DNS_DATA>
<DETECTION_LIST>
<DETECTION><QID>370000</QID><TYPE>Confirmed</TYPE><SEVERITY>4</SEVERITY><RESULTS><![CDATA[Package	Installed Version	Required Version
openssl	1:1.0.2k-19.el7	1:1.0.2k-21.el7_9
openssl-libs	1:1.0.2k-19.el7	1:1.0.2k-21.el7_9]]></RESULTS><STATUS>Active</STATUS><FIRST_FOUND_DATETIME>2024-04-01T00:00:00Z</FIRST_FOUND_DATETIME></DETECTION>
<DETECTION><QID>370000</QID><TYPE>Confirmed</TYPE><SEVERITY>4</SEVERITY><STATUS>Fixed</STATUS></DETECTION>
<DETECTION><QID>45017</QID><TYPE>Info</TYPE><SEVERITY>2</SEVERITY></DETECTION>
<DETECTION><QID>370001</QID><TYPE>Confirmed</TYPE><SEVERITY>3</SEVERITY><IS_IGNORED>1</IS_IGNORED></DETECTION>
</DETECTION_LIST></HOST>
<HOST><ID>8</ID><IP>10.0.0.8</IP></HOST>
</HOST_LIST>
<WARNING><CODE>1980</CODE><TEXT>1000 record limit exceeded. Use URL to get next batch of results.</TEXT><URL><![CDATA[https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/?action=list&id_min=9]]></URL></WARNING>
</RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>`
	kb := NewQualysKB()
	kb.Add(QualysVuln{QID: 370000, Title: "CentOS Security Update for openssl", Severity: 4, CVEs: []string{"CVE-2020-1971"}, CVSS: 5.9})
	var hosts []string
	var pages []Page
	fs, err := parseString(t, "detections.xml", body, "", Options{QualysKB: kb, OnHost: func(h string) { hosts = append(hosts, h) }, OnPage: func(p Page) { pages = append(pages, p) }})
	if err != nil || len(fs) != 3 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	// STATUS Fixed: imported as the scanner says, fixed (as of the import,
	// as it gives no LAST_FIXED_DATETIME).
	if f := fs[2]; f.Status != vulnzero.FindingFixed || !f.FixedAt.IsZero() || f.RuleID != "370000" || f.Package != "qualys:370000" {
		t.Errorf("the fixed detection: %+v", f)
	}
	want := vulnzero.Finding{
		Source: "detections.xml", Scanner: "qualys", Host: "db-7.corp.example", OS: "centos 7.9.2009", OSFamily: "rhel",
		Package: "openssl-libs", Ecosystem: "rpm", Installed: "1:1.0.2k-19.el7", Fixed: "1:1.0.2k-21.el7_9",
		CVE: "CVE-2020-1971", Title: "CentOS Security Update for openssl", Severity: vulnzero.SeverityHigh, CVSS: 5.9,
		RuleID: "370000", FirstSeen: time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC), LastSeen: now, Status: vulnzero.FindingOpen,
	}
	if fs[1] != want || fs[0].Package != "openssl" {
		t.Errorf("findings\n %+v\n %+v\nwant openssl and\n %+v", fs[0], fs[1], want)
	}
	if strings.Join(hosts, ",") != "db-7.corp.example,10.0.0.8" {
		t.Errorf("covered %v", hosts)
	}
	if len(pages) != 1 || pages[0].Count != 2 || pages[0].Next != "https://qualysapi.qualys.com/api/2.0/fo/asset/host/vm/detection/?action=list&id_min=9" {
		t.Errorf("pages %+v", pages)
	}

	// An empty page: RESPONSE with only DATETIME.
	fs, err = parseString(t, "empty.xml", `<?xml version="1.0" encoding="UTF-8" ?><HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><DATETIME>2024-05-01T00:00:00Z</DATETIME></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>`, "", Options{})
	if err != nil || len(fs) != 0 {
		t.Errorf("empty page: %d findings, %v", len(fs), err)
	}
}

func TestQualysAssetDataReport(t *testing.T) {
	dir := requireRealdata(t, "qualys")
	p := filepath.Join(dir, "asset_data_report_Qualys_Sample_Report.xml")
	var hosts []string
	_, fs, err := parseFile(t, p, Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 144 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	if len(hosts) != 7 || hosts[0] != "demo13.s02.sjc01.qualys.com" {
		t.Errorf("hosts %v", hosts)
	}
	// Joined with the glossary: title, severity and the CVSS3 score and
	// vector written as "9.0 (AV:…)".
	var withVector, practice int
	for _, f := range fs {
		if f.Title == "" || f.RuleID == "" {
			t.Errorf("finding without title or QID: %+v", f)
		}
		if f.CVSSVector != "" {
			withVector++
		}
		if f.RuleID == "38739" {
			practice++
		}
	}
	if withVector == 0 {
		t.Error("no finding carries a CVSS vector from the glossary")
	}
	tcp, ok := find(fs, "demo13.s02.sjc01.qualys.com", "qualys:82054", "CVE-2004-0230")
	if !ok || tcp.Title != "TCP Sequence Number Approximation Based Denial of Service" || tcp.OS != "ubuntu" || tcp.OSFamily != "debian" {
		t.Errorf("QID 82054: %+v", tcp)
	}

	// The same report with detections spilled to a temporary file.
	old := spoolMemory
	spoolMemory = 3
	defer func() { spoolMemory = old }()
	_, spilled, err := parseFile(t, p, Options{})
	if err != nil || len(spilled) != len(fs) {
		t.Fatalf("spilled: %d findings, %v", len(spilled), err)
	}
	for i := range fs {
		if spilled[i] != fs[i] {
			t.Fatalf("spilled finding %d differs:\n %+v\n %+v", i, spilled[i], fs[i])
		}
	}
	tmp, _ := filepath.Glob(filepath.Join(os.TempDir(), "vulnzero-qualys-*.jsonl"))
	for _, f := range tmp {
		if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) < time.Minute {
			t.Errorf("spool file %s left behind", f)
		}
	}

	// A QID the glossary does not describe fails at its VULN_INFO.
	bad := `<ASSET_DATA_REPORT><HOST_LIST><HOST><IP>10.0.0.1</IP><VULN_INFO_LIST>
<VULN_INFO><QID id="qid_99">99</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST></HOST_LIST>
<GLOSSARY><VULN_DETAILS_LIST><VULN_DETAILS id="qid_6"><QID id="qid_6">6</QID><TITLE>x</TITLE></VULN_DETAILS></VULN_DETAILS_LIST></GLOSSARY></ASSET_DATA_REPORT>`
	_, err = parseString(t, "adr.xml", bad, "", Options{})
	if pe := positionError(t, err, "adr.xml"); pe.Line != 2 || !strings.Contains(err.Error(), "QID 99 has no VULN_DETAILS") {
		t.Errorf("error %v", err)
	}
}

func TestQualysScanReport(t *testing.T) {
	dir := requireRealdata(t, "qualys")
	_, fs, err := parseFile(t, filepath.Join(dir, "scan_report_SCAN_multiple_hosts.xml"), Options{})
	if err != nil || len(fs) != 44 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	java := 0
	for _, f := range fs {
		if f.RuleID == "123168" && f.Host == "host1.example.com" {
			java++
			// CVSS3_BASE (3.4) before CVSS_BASE (10).
			if f.Severity != vulnzero.SeverityCritical || f.CVSS != 3.4 || f.Title != "Oracle Java SE Critical Patch Update - January 2015" {
				t.Errorf("QID 123168: %+v", f)
			}
		}
	}
	if java != 19 {
		t.Errorf("QID 123168 gave %d findings on host1, want one per CVE (19)", java)
	}
	if f, ok := find(fs, "host1.example.com", "qualys:11", "QID-11"); !ok || f.Title != "Hidden RPC Services" || f.CVSS != 5 || f.Severity != vulnzero.SeverityLow {
		t.Errorf("QID 11: %+v", f)
	}
	// PRACTICES are potential vulnerabilities: imported.
	if f, ok := find(fs, "host2.example.com", "qualys:124848", "CVE-2016-0636"); !ok || f.CVSS != 8.1 || f.Severity != vulnzero.SeverityCritical {
		t.Errorf("the PRACTICE QID 124848 on host2: %+v", f)
	}

	var hosts []string
	_, fs, err = parseFile(t, filepath.Join(dir, "scan_report_SCAN_no_vulns.xml"), Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 0 || strings.Join(hosts, ",") != "host1.example.com" {
		t.Errorf("no vulns: %d findings, %v, covered %v", len(fs), err, hosts)
	}
}

func TestQualysCSV(t *testing.T) {
	dir := requireRealdata(t, "qualys")
	_, fs, err := parseFile(t, filepath.Join(dir, "vm_detection_report_Qualys_Sample_Report.csv"), Options{})
	if err != nil || len(fs) != 28 {
		t.Fatalf("detection CSV: %d findings, %v", len(fs), err)
	}
	host := "ip-10-98-57-180.eu-west-1.compute.internal"
	f, ok := find(fs, host, "qualys:91762", "CVE-2021-31192")
	if !ok || f.CVSS != 9.9 || f.CVSSVector != "AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H" || f.OS != "windows 2016" || f.Severity != vulnzero.SeverityCritical {
		t.Errorf("QID 91762: %+v", f)
	}
	eol, ok := find(fs, host, "qualys:105971", "QID-105971")
	if !ok || eol.Title != "EOL/Obsolete Software: Microsoft ASP.NET 1.0 Detected" || !eol.FirstSeen.Equal(time.Date(2021, 5, 13, 7, 8, 28, 0, time.UTC)) {
		t.Errorf("QID 105971: %+v", eol)
	}

	// VMDR, with the metadata preamble; the FIXED row is imported fixed;
	// "'-" is empty.
	var hosts []string
	_, fs, err = parseFile(t, filepath.Join(dir, "vmdr_many_vulns_cve.csv"), Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 5 {
		t.Fatalf("VMDR CVE: %d findings, %v", len(fs), err)
	}
	fixed := 0
	for _, f := range fs {
		if f.Status == vulnzero.FindingFixed {
			fixed++
		}
	}
	if fixed != 1 {
		t.Errorf("VMDR CVE: %d findings fixed, want the one FIXED row", fixed)
	}
	if strings.Join(hosts, ",") != "SERVER01,SERVER02,DBSERVER01,WORKSTATION01,APPSERVER01" {
		t.Errorf("VMDR hosts %v", hosts)
	}
	if f, ok := find(fs, "SERVER02", "qualys:800002", "CVE-2023-0002"); !ok || f.CVSS != 5.3 || f.OS != "ubuntu 22.04" || !f.FirstSeen.Equal(time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("VMDR CVE-2023-0002: %+v", f)
	}
	_, fs, err = parseFile(t, filepath.Join(dir, "vmdr_many_vulns_qid.csv"), Options{})
	if err != nil || len(fs) != 5 {
		t.Fatalf("VMDR QID: %d findings, %v", len(fs), err)
	}
	if f, ok := find(fs, "WINSERVER01", "qualys:100004", "QID-100004"); !ok || f.Title != "Missing Security Patches" || f.Severity != vulnzero.SeverityHigh {
		t.Errorf("VMDR QID 100004: %+v", f)
	}

	// Monthly PCI: Q_SEVERITY over the word, CVSS_BASE.
	_, fs, err = parseFile(t, filepath.Join(dir, "monthly_pci_issue6932.csv"), Options{})
	if err != nil || len(fs) != 1 {
		t.Fatalf("PCI: %d findings, %v", len(fs), err)
	}
	if f := fs[0]; f.Host != "abv.xyw.com.fj" || f.CVE != "QID-86476" || f.Severity != vulnzero.SeverityMedium || f.CVSS != 6.4 || f.Title != "Web Server Stopped Responding" {
		t.Errorf("PCI %+v", f)
	}

	// A KB supplies CVEs a QID-centric row lacks.
	kb := NewQualysKB()
	kb.Add(QualysVuln{QID: 100004, Title: "KB title", CVEs: []string{"CVE-2025-0004"}})
	_, fs, err = parseFile(t, filepath.Join(dir, "vmdr_many_vulns_qid.csv"), Options{QualysKB: kb})
	if f, ok := find(fs, "WINSERVER01", "qualys:100004", "CVE-2025-0004"); err != nil || !ok || f.Title != "Missing Security Patches" {
		t.Errorf("joined row: %+v, %v", f, err)
	}
}

func TestQualysBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		line       int
		reason     string
	}{
		{"truncated xml", "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE>\n<HOST_LIST><HOST><ID>1</ID>", 2, "truncated"},
		{"api error", "<?xml version=\"1.0\"?>\n<SIMPLE_RETURN><RESPONSE><DATETIME>x</DATETIME><CODE>1965</CODE><TEXT>This API cannot be run again for another 23 minutes.</TEXT></RESPONSE></SIMPLE_RETURN>", 2, "cannot be run again for another 23 minutes. (code 1965)"},
		{"bad qid", "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST><HOST><ID>1</ID><DETECTION_LIST>\n<DETECTION><QID>abc</QID></DETECTION></DETECTION_LIST></HOST></HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>", 2, `QID "abc"`},
		{"host without identity", "<HOST_LIST_VM_DETECTION_OUTPUT><RESPONSE><HOST_LIST>\n<HOST><DETECTION_LIST></DETECTION_LIST></HOST></HOST_LIST></RESPONSE></HOST_LIST_VM_DETECTION_OUTPUT>", 2, "HOST has no ID"},
		{"scan bad severity", "<SCAN value=\"scan/1\"><IP value=\"10.0.0.1\"><VULNS><CAT value=\"x\">\n<VULN number=\"11\" severity=\"9\"><TITLE>t</TITLE></VULN></CAT></VULNS></IP></SCAN>", 2, `severity "9" is not 1–5`},
		{"scan bad cvss", "<SCAN value=\"scan/1\"><IP value=\"10.0.0.1\"><VULNS><CAT value=\"x\">\n<VULN number=\"11\" severity=\"2\"><TITLE>t</TITLE><CVSS_BASE>eleven</CVSS_BASE></VULN></CAT></VULNS></IP></SCAN>", 2, `CVSS "eleven"`},
		{"second root", "<SCAN value=\"scan/1\"></SCAN>\n<SCAN value=\"scan/2\"></SCAN>", 2, "a second root element"},
		{"mismatched tags", "<SCAN value=\"scan/1\">\n<IP value=\"1.2.3.4\"></VULNS></SCAN>", 2, "element <IP> closed by </VULNS>"},
		{"undeclared charset", "<?xml version=\"1.0\" encoding=\"EBCDIC\"?>\n<SCAN value=\"scan/1\"></SCAN>", 1, "EBCDIC"},
		{"csv without header", "\"Report\",\"x\"\n\"a\",\"b\"\n\"c\",\"d\"\n\"e\",\"f\"\n\"g\",\"h\"\n\"i\",\"j\"\n\"QID\",\"Title\"\n", 6, "no Qualys header"},
		{"csv bad qid", "\"IP\",\"QID\",\"Title\",\"Severity\"\n\"10.0.0.1\",\"x1\",\"t\",\"3\"\n", 2, `QID "x1"`},
		{"csv bad severity", "\"IP\",\"QID\",\"Title\",\"Severity\"\n\"10.0.0.1\",\"1\",\"t\",\"severe\"\n", 2, `severity "severe"`},
		{"csv bare qid", "\"IP\",\"QID\",\"Title\",\"Severity\"\n\"10.0.0.1\",\"1\",\"\",\"3\"\n", 2, "bare QID"},
		{"csv quote", "\"IP\",\"QID\",\"Title\"\n\"10.0.0.1\",\"1\",\"t\"x\n", 2, "extraneous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, "q", tt.body, FormatQualys, Options{})
			pe := positionError(t, err, "q")
			if pe.Line != tt.line || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %v; want line %d and %q", err, tt.line, tt.reason)
			}
		})
	}
}

func TestQualysPackagesText(t *testing.T) {
	got := qualysPackages("Some text first\n\nPackage\tInstalled Version\tRequired Version\nkernel\tkernel-3.10.0-1160.el7.x86_64\tkernel-3.10.0-1160.6.1.el7\nbash\t4.2.46-34.el7\t4.2.46-35.el7_9\n\ntrailer\tnot\ta row")
	if len(got) != 2 || got[0] != (pkgFix{name: "kernel", installed: "3.10.0-1160.el7", fixed: "3.10.0-1160.6.1.el7"}) || got[1] != (pkgFix{name: "bash", installed: "4.2.46-34.el7", fixed: "4.2.46-35.el7_9"}) {
		t.Errorf("qualysPackages = %+v", got)
	}
	if got := qualysPackages("CIPHER\tKEY-EXCHANGE\nRC4-SHA\tRSA"); len(got) != 0 {
		t.Errorf("a table of something else gave %+v", got)
	}
}

func FuzzQualys(f *testing.F) {
	addSeeds(f, "qualys")
	f.Add([]byte(testKB))
	f.Add([]byte("<ASSET_DATA_REPORT><HOST_LIST><HOST><IP>1.2.3.4</IP><VULN_INFO_LIST><VULN_INFO><QID>6</QID><TYPE>Vuln</TYPE></VULN_INFO></VULN_INFO_LIST></HOST></HOST_LIST><GLOSSARY><VULN_DETAILS_LIST><VULN_DETAILS><QID>6</QID><TITLE>t</TITLE><CVSS3_SCORE><CVSS3_BASE>9.0 (AV:N)</CVSS3_BASE></CVSS3_SCORE></VULN_DETAILS></VULN_DETAILS_LIST></GLOSSARY></ASSET_DATA_REPORT>"))
	kb, err := LoadQualysKB("kb", strings.NewReader(testKB))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzVendor(t, b, FormatQualys, Options{})
		fuzzVendor(t, b, FormatQualys, Options{QualysKB: kb})
		// The KB loader reads the same kind of input.
		if _, err := LoadQualysKB("fuzz", strings.NewReader(string(b))); err != nil {
			var pe *vulnzero.PositionError
			if !errors.As(err, &pe) || pe.File != "fuzz" || pe.Line < 1 {
				t.Fatalf("KB error without a place: %v", err)
			}
		}
	})
}
