package scan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
)

const metasploitable = "b6b9f466d63"

var openvasSamples = map[string]sampleCase{
	// Four results, one with two CVEs; the CSV's "High" with CVSS 9.0 is
	// critical by the score.
	"many_vuln.csv": {n: 5, hosts: []string{"LOGSRV"}, checks: []fwant{
		{"LOGSRV", "openvas:1.3.6.1.4.1.25623.1.0.80091", "OPENVAS-1.3.6.1.4.1.25623.1.0.80091", "", "", "", "", "", vulnzero.SeverityLow, 2.6, "", "1.3.6.1.4.1.25623.1.0.80091"},
		{"LOGSRV", "openvas:1.3.6.1.4.1.25623.1.0.117274", "CVE-2015-0204", "", "", "", "", "", vulnzero.SeverityMedium, 4.3, "", "1.3.6.1.4.1.25623.1.0.117274"},
		{"LOGSRV", "openvas:1.3.6.1.4.1.25623.1.0.103240", "OPENVAS-1.3.6.1.4.1.25623.1.0.103240", "", "", "", "", "", vulnzero.SeverityCritical, 9.0, "", "1.3.6.1.4.1.25623.1.0.103240"},
	}},
	// 44 results on one host, named by its hostname; the anonymized IP
	// 192.168.1.1001 is covered too, from the report's host list. Product
	// checks give the installed version, not a fix.
	"many_vuln.xml": {n: 76, hosts: []string{metasploitable, "192.168.1.1001"}, checks: []fwant{
		{metasploitable, "openvas:1.3.6.1.4.1.25623.1.0.100111", "CVE-1999-0618", "", "", "", "", "", vulnzero.SeverityCritical, 10, "", "1.3.6.1.4.1.25623.1.0.100111"},
		{metasploitable, "openvas:1.3.6.1.4.1.25623.1.0.141636", "CVE-2012-6708", "", "", "", "1.3.2", "", vulnzero.SeverityMedium, 6.1, "", "1.3.6.1.4.1.25623.1.0.141636"},
		{metasploitable, "openvas:1.3.6.1.4.1.25623.1.0.108010", "OPENVAS-1.3.6.1.4.1.25623.1.0.108010", "", "", "", "", "", vulnzero.SeverityCritical, 10, "", "1.3.6.1.4.1.25623.1.0.108010"},
	}},
	"no_vuln.csv": {n: 0},
	"no_vuln.xml": {n: 0},
	// The newer layout with QoD and EPSS columns; 93 CVEs on one result.
	"report_detail_v2_epss.csv": {n: 93, hosts: []string{"server99"}, checks: []fwant{
		{"server99", "openvas:1.3.6.1.4.1.25623.1.0.836484", "CVE-2025-49757", "", "", "", "", "", vulnzero.SeverityCritical, 9.8, "", "1.3.6.1.4.1.25623.1.0.836484"},
	}},
}

func TestOpenVASSamples(t *testing.T) {
	runSamples(t, "openvas", FormatOpenVAS, openvasSamples)
}

// Titles are single-spaced, and a two-line NVT name reads as one line.
func TestOpenVASTitle(t *testing.T) {
	_, fs, err := parseFile(t, filepath.Join(fixtures, "openvas", "many_vuln.xml"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := find(fs, metasploitable, "openvas:1.3.6.1.4.1.25623.1.0.108010", "OPENVAS-1.3.6.1.4.1.25623.1.0.108010")
	if f.Title != "Distributed Ruby (dRuby/DRb) Multiple Remote Code Execution Vulnerabilities" {
		t.Errorf("title %q", f.Title)
	}
}

// A GVM report as the API returns it, with a local security check naming
// packages (in notus's "name-version" form and the older bare form), the
// severities element of GVM 22, log results, and a host that has no
// result.
const gvmLSC = `<get_reports_response status="200" status_text="OK">
<report id="r1" format_id="a994b278-1f62-11e1-96ac-406186ea4fc5" content_type="text/xml">
<report id="r1">
<results start="1" max="100">
<result id="1">
  <name>Debian: Security Advisory (DSA-5417-1)</name>
  <host>10.0.0.5<asset asset_id="a"/><hostname>web-1.example.com</hostname></host>
  <port>general/tcp</port>
  <nvt oid="1.3.6.1.4.1.25623.1.1.2.2023.5417">
    <type>nvt</type>
    <name>Debian: Security Advisory (DSA-5417-1)</name>
    <family>Debian Local Security Checks</family>
    <severities score="7.5"><severity type="cvss_base_v3"><value>CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H</value></severity></severities>
    <refs><ref type="cve" id="CVE-2023-0464"/><ref type="cve" id="CVE-2023-0465"/><ref type="url" id="https://x"/></refs>
  </nvt>
  <threat>High</threat>
  <severity>7.5</severity>
  <description>
Vulnerable package: openssl
Installed version:  openssl-3.0.8-1
Fixed version:      >=openssl-3.0.9-1~deb12u1

Vulnerable package: libssl3
Installed version:  3.0.8-1
Fixed version:      3.0.9-1~deb12u1
</description>
  <detection><result id="d"><details><detail><name>product</name><value>cpe:/a:openssl</value></detail></details></result></detection>
</result>
<result id="2">
  <host>10.0.0.6</host>
  <nvt oid="1.3.6.1.4.1.25623.1.0.10330"><name>Services</name><family>Service detection</family><cve>NOCVE</cve></nvt>
  <threat>Log</threat>
  <severity>0.0</severity>
</result>
<result id="3">
  <host>10.0.0.6</host>
  <nvt oid="1.3.6.1.4.1.25623.1.0.1"><name>Old style</name><cve>CVE-2019-1, CVE-2019-2</cve><tags>summary=x|cvss_base_vector=AV:N/AC:L/Au:N/C:N/I:N/A:P|solution_type=VendorFix</tags></nvt>
  <threat>Medium</threat>
  <severity>5.0</severity>
  <description>Installed version: 2.4.1
Fixed version: 2.4.50
Installation path / port: /usr/sbin</description>
</result>
</results>
<host><ip>10.0.0.7</ip><detail><name>hostname</name><value>db-1</value></detail></host>
</report>
</report>
</get_reports_response>`

func TestOpenVASLocalChecks(t *testing.T) {
	var hosts []string
	fs, err := parseString(t, "gvm.xml", gvmLSC, "", Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 6 {
		t.Fatalf("%d findings, %v: %+v", len(fs), err, fs)
	}
	for i, w := range []fwant{
		{"web-1.example.com", "openssl", "CVE-2023-0464", "", "debian", "deb", "3.0.8-1", "3.0.9-1~deb12u1", vulnzero.SeverityHigh, 7.5, "CVSS:3.1/AV:N", "1.3.6.1.4.1.25623.1.1.2.2023.5417"},
		{"web-1.example.com", "openssl", "CVE-2023-0465", "", "debian", "deb", "3.0.8-1", "3.0.9-1~deb12u1", vulnzero.SeverityHigh, 7.5, "CVSS:3.1/AV:N", "1.3.6.1.4.1.25623.1.1.2.2023.5417"},
		{"web-1.example.com", "libssl3", "CVE-2023-0464", "", "debian", "deb", "3.0.8-1", "3.0.9-1~deb12u1", vulnzero.SeverityHigh, 7.5, "CVSS:3.1/AV:N", "1.3.6.1.4.1.25623.1.1.2.2023.5417"},
		{"10.0.0.6", "openvas:1.3.6.1.4.1.25623.1.0.1", "CVE-2019-1", "", "", "", "2.4.1", "", vulnzero.SeverityMedium, 5.0, "AV:N/AC:L/Au:N", "1.3.6.1.4.1.25623.1.0.1"},
	} {
		w.check(t, FormatOpenVAS, fs)
		_ = i
	}
	if got := strings.Join(hosts, ","); got != "web-1.example.com,10.0.0.6,db-1" {
		t.Errorf("covered %s", got)
	}
}

// The CSV export names local security checks by NVT name only; its
// Specific Result holds the package lines.
func TestOpenVASCSVLocalCheck(t *testing.T) {
	body := "IP,Hostname,Port,Port Protocol,CVSS,Severity,Solution Type,NVT Name,Summary,Specific Result,NVT OID,CVEs\n" +
		"10.0.0.9,,,,9.8,High,VendorFix,Ubuntu: Security Advisory (USN-6000-1),s,\"Vulnerable package: sudo\nInstalled version: sudo-1.9.9-1ubuntu2\nFixed version: >=sudo-1.9.9-1ubuntu2.4\",1.3.6.1.4.1.25623.1.1.12.2023.6000.1,CVE-2023-22809\n" +
		"10.0.0.9,,,,0.0,Log,,OS Detection,s,x,1.3.6.1.4.1.25623.1.0.1,\n"
	fs, err := parseString(t, "r.csv", body, "", Options{})
	if err != nil || len(fs) != 1 {
		t.Fatalf("%d findings, %v", len(fs), err)
	}
	fwant{"10.0.0.9", "sudo", "CVE-2023-22809", "", "debian", "deb", "1.9.9-1ubuntu2", "1.9.9-1ubuntu2.4", vulnzero.SeverityCritical, 9.8, "", "1.3.6.1.4.1.25623.1.1.12.2023.6000.1"}.check(t, FormatOpenVAS, fs)
}

func TestOpenVASBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		want       string
	}{
		{"csv score", "IP,Hostname,CVSS,Severity,NVT Name,NVT OID,CVEs\n10.0.0.1,,high,High,n,1.2.3,\n", "2:11 cvss: severity \"high\" is not a CVSS score"},
		{"csv no oid", "IP,Hostname,CVSS,Severity,NVT Name,NVT OID,CVEs\n10.0.0.1,,5.0,Medium,n,,\n", "2:24 nvt oid: result has no NVT OID"},
		{"csv no host", "IP,Hostname,CVSS,Severity,NVT Name,NVT OID,CVEs\n,,5.0,Medium,n,1.2.3,\n", "2:1 ip: result has no host"},
		{"csv header", "Hostname,NVT OID\nx,1\n", "1:0 : OpenVAS CSV header lacks required column(s) ip"},
		{"csv quote", "IP,NVT OID\n\"10.0.0.1,1\n", "2:13 : extraneous or missing \" in quoted-field"},
		{"xml result without oid", "<report format_id=\"x\"><report><results>\n<result><host>h</host><nvt/><severity>5</severity></result></results></report></report>", "2:9 report/report/results/result: result has no NVT OID"},
		{"xml score", "<report format_id=\"x\"><report><results>\n<result><host>h</host><nvt oid=\"1\"/><severity>x</severity></result></results></report></report>", "2:9 report/report/results/result: severity \"x\" is not a CVSS score"},
		{"xml other root", "<other/>", "1:9 : root element <other> is not a GVM <report>"},
		{"xml truncated", "<report format_id=\"x\"><report><results>\n<result><host>h", "2:16 report/report/results/result: unexpected end of input: the report is truncated"},
		{"xml garbage", "<report format_id=\"x\"><report><results>\n<result></resul></results></report></report>", "2:17 report/report/results/result: element <result> closed by </resul>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, err := parseString(t, "bad", tt.body, FormatOpenVAS, Options{})
			if err == nil {
				t.Fatalf("no error; %d findings", len(fs))
			}
			pe := positionError(t, err, "bad")
			if got := fmt.Sprintf("%d:%d %s: %v", pe.Line, pe.Column, pe.Path, pe.Err); got != tt.want {
				t.Errorf("error\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestOpenVASPackages(t *testing.T) {
	pkgs, product := openvasPackages("Installed version: 116.0.3\nFixed version:     117\nInstallation path / port: C:\\x")
	if len(pkgs) != 0 || product.installed != "116.0.3" || product.fixed != "117" {
		t.Errorf("product check: %+v %+v", pkgs, product)
	}
	pkgs, _ = openvasPackages("Vulnerable package: linux-image-5.10.0-21-amd64\nInstalled version: linux-image-5.10.0-21-amd64-5.10.162-1\nFixed version: >=linux-image-5.10.0-21-amd64-5.10.178-3\nVulnerable package: curl\nInstalled version: 7.88.1-10\nFixed version: None")
	if len(pkgs) != 2 || pkgs[0] != (openvasPackage{"linux-image-5.10.0-21-amd64", "5.10.162-1", "5.10.178-3"}) || pkgs[1] != (openvasPackage{"curl", "7.88.1-10", ""}) {
		t.Errorf("lsc: %+v", pkgs)
	}
}

func FuzzOpenVAS(f *testing.F) {
	for _, dir := range []string{filepath.Join(realdata, "openvas"), filepath.Join(fixtures, "openvas")} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(gvmLSC))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzParse(t, b, FormatOpenVAS)
	})
}
