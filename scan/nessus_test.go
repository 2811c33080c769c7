package scan

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

// The credentialed CentOS scan: every "CentOS Local Security Checks" item
// names its packages, and each package becomes a finding that can be
// patched.
func TestNessusCredentialedCentOS(t *testing.T) {
	dir := requireRealdata(t, "tenable")
	var hosts []string
	format, fs, err := parseFile(t, filepath.Join(dir, "nessus_centos_local_checks_pci.nessus"), Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || format != FormatNessus {
		t.Fatalf("format %q, %v", format, err)
	}
	if strings.Join(hosts, ",") != "python-dev" {
		t.Errorf("hosts %v", hosts)
	}
	pkgPlugins := map[string]bool{}
	for _, f := range fs {
		if !strings.HasPrefix(f.Package, "nessus:") {
			pkgPlugins[f.RuleID] = true
			if f.Ecosystem != "rpm" || f.OSFamily != "rhel" || f.OS != "centos 6.3" || f.Installed == "" || f.Fixed == "" {
				t.Errorf("package finding %+v", f)
			}
		}
	}
	// 53 local-check items; all but "CentOS Update Set" (OS 6.3, latest
	// 6.5) name packages.
	if len(pkgPlugins) != 52 || pkgPlugins["44340"] {
		t.Errorf("%d plugins gave package findings, want the 52 CentOS package checks", len(pkgPlugins))
	}
	if f, ok := find(fs, "python-dev", "nessus:44340", "NESSUS-44340"); !ok || f.Installed != "6.3" || f.Fixed != "" || f.Severity != vulnzero.SeverityCritical {
		t.Errorf("CentOS Update Set %+v", f)
	}
	pixman, ok := find(fs, "python-dev", "pixman", "CVE-2013-6425")
	want := vulnzero.Finding{
		Source: pixman.Source, Scanner: "nessus", Host: "python-dev", OS: "centos 6.3", OSFamily: "rhel",
		Package: "pixman", Ecosystem: "rpm", Installed: "0.26.2-5.el6_4", Fixed: "0.26.2-5.1.el6_5",
		CVE: "CVE-2013-6425", Title: "CentOS 5 / 6 : pixman (CESA-2013:1869)", Severity: vulnzero.SeverityMedium,
		CVSS: 4.3, CVSSVector: "AV:N/AC:M/Au:N/C:N/I:N/A:P", RuleID: "71584", FirstSeen: now, LastSeen: now, Status: vulnzero.FindingOpen,
	}
	if !ok || pixman != want {
		t.Errorf("pixman\n %+v\nwant\n %+v", pixman, want)
	}
	// An advisory without CVEs: one finding per package, under the plugin.
	var nss []string
	for _, f := range fs {
		if f.CVE == "NESSUS-64381" {
			nss = append(nss, f.Package+"="+f.Fixed)
		}
	}
	if strings.Join(nss, ",") != "nspr=4.9.2-0.el6_3.1,nss=3.13.6-2.el6_3,nss-sysinit=3.13.6-2.el6_3,nss-tools=3.13.6-2.el6_3,nss-util=3.13.6-1.el6_3" {
		t.Errorf("CESA-2013:0213 packages %s", nss)
	}
	// A remote check is kept under the plugin, with the installed version
	// the plugin reports and no fix VulnZero could apply.
	mongo, ok := find(fs, "python-dev", "nessus:67243", "CVE-2013-4650")
	if !ok || mongo.Installed != "2.4.3" || mongo.Fixed != "" || mongo.Ecosystem != "" {
		t.Errorf("MongoDB %+v", mongo)
	}
	if f, ok := find(fs, "python-dev", "nessus:10544", "CVE-2000-0666"); !ok || f.Severity != vulnzero.SeverityCritical || f.CVSS != 10 {
		t.Errorf("statd %+v", f)
	}
}

func TestNessusXMLSamples(t *testing.T) {
	dir := requireRealdata(t, "tenable")
	// CVSS v3 with its vector, before v2.
	_, fs, err := parseFile(t, filepath.Join(dir, "nessus_with_cvssv3.nessus"), Options{})
	if err != nil || len(fs) != 145 {
		t.Fatalf("cvssv3: %d findings, %v", len(fs), err)
	}
	if f, ok := find(fs, "testphp.vulnweb.com", "nessus:40984", "NESSUS-40984"); !ok || f.CVSS != 5.3 || f.CVSSVector != "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N" || f.OS != "linux 2.6" {
		t.Errorf("browsable dirs %+v", f)
	}
	crit := 0
	for _, f := range fs {
		if f.Severity == vulnzero.SeverityCritical {
			crit++
		}
	}
	if crit == 0 {
		t.Error("no critical finding from the two severity-4 items")
	}

	// Informational results only: no findings, the host still covered.
	var hosts []string
	_, fs, err = parseFile(t, filepath.Join(dir, "nessus_info_only.xml"), Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 0 || strings.Join(hosts, ",") != "preprod.boardvantage.net" {
		t.Errorf("info only: %d findings, %v, hosts %v", len(fs), err, hosts)
	}

	// 2009: no pluginFamily, no cvss3, severity 1 without a risk factor on
	// service reports (informational).
	_, fs, err = parseFile(t, filepath.Join(dir, "nessus_v2_2009_example.nessus"), Options{})
	if err != nil || len(fs) != 4 {
		t.Fatalf("2009: %d findings, %v", len(fs), err)
	}
	if f, ok := find(fs, "scanme.insecure.org", "nessus:10539", "CVE-1999-0024"); !ok || f.Severity != vulnzero.SeverityMedium || f.CVSS != 5 || f.OS != "netbsd 3.0" {
		t.Errorf("2009 DNS recursion %+v", f)
	}

	// A .xml name, seven hosts named by their netbios/FQDN tags.
	hosts = nil
	_, fs, err = parseFile(t, filepath.Join(dir, "nessus_v_unknown_7hosts.xml"), Options{OnHost: func(h string) { hosts = append(hosts, h) }})
	if err != nil || len(fs) != 30 || len(hosts) != 7 {
		t.Fatalf("7 hosts: %d findings, %v, hosts %v", len(fs), err, hosts)
	}
	if f, ok := find(fs, "qa3app09", "nessus:18405", "CVE-2005-1794"); !ok || f.OS != "windows 2008" || f.OSFamily != "windows" {
		t.Errorf("RDP MiTM %+v", f)
	}

	// An item without <cve>: the plugin id, and "Installed version" text.
	_, fs, err = parseFile(t, filepath.Join(dir, "nessus_issue_6992.nessus"), Options{})
	if err != nil || len(fs) != 1 {
		t.Fatalf("issue 6992: %d findings, %v", len(fs), err)
	}
	if f := fs[0]; f.CVE != "NESSUS-142591" || f.Package != "nessus:142591" || f.Installed != "5.1.6" || f.Fixed != "" || f.CVSSVector != "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H" {
		t.Errorf("issue 6992 %+v", f)
	}
}

func TestNessusCSVLayouts(t *testing.T) {
	dir := requireRealdata(t, "tenable")
	// Default columns and all columns: the same scan, one medium result.
	for _, name := range []string{"nessus_pro_csv_default_columns.csv", "nessus_pro_csv_all_columns.csv"} {
		_, fs, err := parseFile(t, filepath.Join(dir, name), Options{})
		if err != nil || len(fs) != 1 {
			t.Fatalf("%s: %d findings, %v", name, len(fs), err)
		}
		if f := fs[0]; f.Host != "52.208.101.182" || f.CVE != "NESSUS-104743" || f.Severity != vulnzero.SeverityMedium || f.Title != "TLS Version 1.0 Protocol Detection" {
			t.Errorf("%s: %+v", name, f)
		}
	}
	// Only the all-columns export has the CVSS v3 score (6.5); the default
	// one has the v2 score (6.1).
	_, fs, _ := parseFile(t, filepath.Join(dir, "nessus_pro_csv_all_columns.csv"), Options{})
	if fs[0].CVSS != 6.5 {
		t.Errorf("all columns CVSS %v, want the v3 score 6.5", fs[0].CVSS)
	}

	// The template that lost decimal points: "75" is 7.5.
	_, fs, err := parseFile(t, filepath.Join(dir, "nessus_csv_template_cvss4_epss.csv"), Options{})
	if err != nil || len(fs) != 5 {
		t.Fatalf("template: %d findings, %v", len(fs), err)
	}
	if f, ok := find(fs, "192.168.0.100", "nessus:42873", "CVE-2016-2183"); !ok || f.CVSS != 7.5 || f.Severity != vulnzero.SeverityHigh {
		t.Errorf("SWEET32 %+v", f)
	}
	if f, ok := find(fs, "192.168.0.101", "nessus:200162", "CVE-2024-4577"); !ok || f.Severity != vulnzero.SeverityCritical || f.Installed != "8.2.18" || f.CVSS != 9.8 {
		t.Errorf("PHP %+v", f)
	}

	// Tenable.io: empty header names, package lines, ISO dates, a bare v3
	// vector, rows of bare commas.
	_, fs, err = parseFile(t, filepath.Join(dir, "tenable_io_csv_many_vuln.csv"), Options{})
	if err != nil || len(fs) != 21 {
		t.Fatalf("tenable.io: %d findings, %v", len(fs), err)
	}
	host := "ip-127-0-0-1.us-west-2.compute.internal"
	kt, ok := find(fs, host, "kernel-tools", "CVE-2023-32233")
	want := vulnzero.Finding{
		Source: kt.Source, Scanner: "nessus", Host: host, OS: "amazon 2", OSFamily: "rhel", Package: "kernel-tools", Ecosystem: "rpm",
		Installed: "4.14.314-237.533.amzn2", Fixed: "4.14.314-238.539.amzn2", CVE: "CVE-2023-32233", Title: "Amazon Linux 2 : kernel (ALAS-2023-2050)",
		Severity: vulnzero.SeverityHigh, CVSS: 7.8, CVSSVector: "CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", RuleID: "176700",
		FirstSeen: time.Date(2023, 6, 8, 1, 58, 56, 166e6, time.UTC), LastSeen: now, Status: vulnzero.FindingOpen,
	}
	if !ok || kt != want {
		t.Errorf("kernel-tools\n %+v\nwant\n %+v", kt, want)
	}

	// Tenable.sc: "Plugin", its own date format, "Plugin Output: " prefix.
	_, fs, err = parseFile(t, filepath.Join(dir, "tenable_sc_csv_issue_11102.csv"), Options{})
	if err != nil || len(fs) != 3 {
		t.Fatalf("tenable.sc: %d findings, %v", len(fs), err)
	}
	if f := fs[0]; f.Host != "1.2.3.4" || f.CVE != "CVE-2016-2183" || f.CVSS != 7.5 || !f.FirstSeen.Equal(time.Date(2024, 2, 9, 10, 48, 42, 0, time.UTC)) {
		t.Errorf("tenable.sc %+v", f)
	}
}

func TestNessusBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		line       int
		reason     string
	}{
		{"truncated", "<?xml version=\"1.0\" ?>\n<NessusClientData_v2>\n<Report name=\"r\">\n<ReportHost name=\"h\"><ReportItem pluginID=\"1\" severity=\"2\">", 4, "truncated"},
		{"wrong root", "<?xml version=\"1.0\" ?>\n<NessusClientData_v2x/>", 2, "not NessusClientData_v2"},
		{"bad severity", "<NessusClientData_v2><Report>\n<ReportHost name=\"h\"><ReportItem pluginID=\"1\" severity=\"7\"></ReportItem></ReportHost></Report></NessusClientData_v2>", 2, `severity "7"`},
		{"bad score", "<NessusClientData_v2><Report>\n<ReportHost name=\"h\"><ReportItem pluginID=\"1\" severity=\"2\"><risk_factor>Medium</risk_factor><cvss3_base_score>99</cvss3_base_score></ReportItem></ReportHost></Report></NessusClientData_v2>", 2, "cvss3_base_score \"99\""},
		{"no plugin id", "<NessusClientData_v2><Report>\n<ReportHost name=\"h\"><ReportItem severity=\"2\"/></ReportHost></Report></NessusClientData_v2>", 2, "no pluginID"},
		{"nameless host", "<NessusClientData_v2><Report>\n<ReportHost><HostProperties></HostProperties></ReportHost></Report></NessusClientData_v2>", 2, "ReportHost has no name"},
		{"bad entity", "<NessusClientData_v2><Report>\n<ReportHost name=\"h&bogus;\"></ReportHost></Report></NessusClientData_v2>", 2, "bogus"},
		{"csv bad score", "Plugin ID,CVE,CVSS v3.0 Base Score,Risk,Host,Name\n1,CVE-1,750,High,h,n\n", 2, `CVSS score "750"`},
		{"csv bad risk", "Plugin ID,CVE,CVSS,Risk,Host,Name\n1,CVE-1,5.0,Severe,h,n\n", 2, `severity "Severe"`},
		{"csv no host column", "Plugin ID,CVE,CVSS,Risk,Name\n1,CVE-1,5.0,High,n\n", 1, "no host column"},
		{"csv empty host", "Plugin ID,CVE,CVSS,Risk,Host,Name\n1,CVE-1,5.0,High,,n\n", 2, "no host"},
		{"csv bad date", "Plugin,Plugin Name,Severity,IP Address,First Discovered\n1,n,High,1.2.3.4,yesterday\n", 2, `date "yesterday"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseString(t, "n", tt.body, FormatNessus, Options{})
			pe := positionError(t, err, "n")
			if pe.Line != tt.line || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %v; want line %d and %q", err, tt.line, tt.reason)
			}
		})
	}
	// An ISO-8859-1 report is read; a Latin-1 é in a plugin name survives.
	body := "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<NessusClientData_v2><Report><ReportHost name=\"h\"><ReportItem pluginID=\"1\" pluginName=\"caf\xe9\" severity=\"2\"><risk_factor>Medium</risk_factor></ReportItem></ReportHost></Report></NessusClientData_v2>"
	fs, err := parseString(t, "latin1.nessus", body, "", Options{})
	if err != nil || len(fs) != 1 || fs[0].Title != "café" {
		t.Errorf("latin-1: %+v, %v", fs, err)
	}
}

func TestNessusPackageLines(t *testing.T) {
	out := `
Remote package installed : openssl-1.0.1e-30.el6_6.5.x86_64
Should be                : openssl-1.0.1e-42.el6

  - Installed package : libssl1.0.0_1.0.1f-1ubuntu2.27
  - Fixed package     : libssl1.0.0_1.0.1f-1ubuntu2.28

Remote package installed : libopenssl1_1-1.1.1d-11.20.1
Should be                : libopenssl1_1-1.1.1d-11.23.1

Remote package installed : linux-image-6.8.0-60-generic_6.8.0-60.63
Should be                : linux-image-6.8.0-60-generic_6.8.0-60.64

Remote package installed : openssl-1:1.0.2k-19.el7
Should be                : openssl-1:1.0.2k-21.el7_9

Remote package installed : garbage
Should be                : garbage-2
`
	got := nessusPackages(out)
	want := []pkgFix{
		{"openssl", "1.0.1e-30.el6_6.5", "1.0.1e-42.el6", "rpm"},
		{"libssl1.0.0", "1.0.1f-1ubuntu2.27", "1.0.1f-1ubuntu2.28", "deb"},
		{"libopenssl1_1", "1.1.1d-11.20.1", "1.1.1d-11.23.1", "rpm"},
		{"linux-image-6.8.0-60-generic", "6.8.0-60.63", "6.8.0-60.64", "deb"},
		{"openssl", "1:1.0.2k-19.el7", "1:1.0.2k-21.el7_9", "rpm"},
	}
	if len(got) != len(want) {
		t.Fatalf("nessusPackages = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("pair %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	inst, fixed := nessusVersions("\n  Path              : /usr/sbin/httpd\n  Installed version : 2.4.49\n  Fixed version     : 2.4.51 / 2.2.35\n")
	if inst != "2.4.49" || fixed != "2.4.51" {
		t.Errorf("nessusVersions = %q, %q", inst, fixed)
	}
}

func TestOSFromText(t *testing.T) {
	tests := []struct{ text, family, version string }{
		{"Linux Kernel 2.6.32-279.el6.x86_64 on CentOS release 6.3 (Final)", "centos", "6.3"},
		{"Linux Kernel 4.14.313-235.533.amzn2.x86_64 on Amazon Linux 2", "amazon", "2"},
		{"Ubuntu 22.04.1 LTS", "ubuntu", "22.04.1"},
		{"Red Hat Enterprise Linux 9.2", "redhat", "9.2"},
		{"Windows Server 2016 Datacenter 64 bit Edition Version 1607", "windows", "2016"},
		{"macOS 12.0", "macos", "12.0"},
		{"Ubuntu / Tiny Core Linux / Linux 2.6.x", "ubuntu", ""},
		{"Debian 11\nLinux Kernel 5.10", "debian", "11"},
		{"NetBSD 3.0", "netbsd", "3.0"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if f, v := osFromText(tt.text); f != tt.family || v != tt.version {
			t.Errorf("osFromText(%q) = %q, %q; want %q, %q", tt.text, f, v, tt.family, tt.version)
		}
	}
}

func FuzzNessus(f *testing.F) {
	// The CSV exports, cut (the .nessus samples are hundreds of kilobytes
	// of Policy, mostly), and a .nessus of the
	// real layout with one credentialed local check, cut from
	// nessus_centos_local_checks_pci.nessus.
	for _, p := range []string{"nessus_pro_csv_default_columns.csv", "nessus_csv_template_cvss4_epss.csv", "tenable_sc_csv_issue_11102.csv", "tenable_io_csv_many_vuln.csv"} {
		if b, err := readRealdata("tenable", p); err == nil {
			f.Add(cutSeed(b))
		}
	}
	f.Add([]byte(`<?xml version="1.0" ?>
<NessusClientData_v2>
<Policy><policyName>pci</policyName></Policy>
<Report name="pci" xmlns:cm="http://www.nessus.org/cm">
<ReportHost name="127.0.0.1"><HostProperties>
<tag name="HOST_END">Tue Jan  7 08:19:25 2014</tag>
<tag name="operating-system">Linux Kernel 2.6.32-279.el6.x86_64 on CentOS release 6.3 (Final)</tag>
<tag name="host-fqdn">python-dev</tag>
<tag name="host-ip">127.0.0.1</tag>
</HostProperties>
<ReportItem port="0" svc_name="general" protocol="tcp" severity="2" pluginID="71584" pluginName="CentOS 5 / 6 : pixman (CESA-2013:1869)" pluginFamily="CentOS Local Security Checks">
<cve>CVE-2013-6425</cve>
<cvss_base_score>4.3</cvss_base_score>
<cvss_vector>CVSS2#AV:N/AC:M/Au:N/C:N/I:N/A:P</cvss_vector>
<risk_factor>Medium</risk_factor>
<plugin_output>
Remote package installed : pixman-0.26.2-5.el6_4
Should be : pixman-0.26.2-5.1.el6_5

</plugin_output>
</ReportItem>
</ReportHost>
</Report>
</NessusClientData_v2>
`))
	f.Add([]byte("<NessusClientData_v2><Report><ReportHost name=\"h\"><HostProperties><tag name=\"operating-system\">CentOS 7</tag></HostProperties><ReportItem pluginID=\"1\" severity=\"3\"><risk_factor>High</risk_factor><cve>CVE-1</cve><plugin_output>Remote package installed : a-1-1\nShould be : a-1-2</plugin_output></ReportItem></ReportHost></Report></NessusClientData_v2>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzVendor(t, b, FormatNessus, Options{})
	})
}
