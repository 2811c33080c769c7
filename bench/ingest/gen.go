package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The generated reports look like what the scanners write, entry for entry:
// the same fields, nesting, indentation and text lengths as the real samples
// in shared/realdata (trivy's k8s report of nodes; a credentialed .nessus
// scan of CentOS hosts with local-check plugins), so parse figures are for
// real-sized input, not for a minimal one.

// perHost is how many findings each generated host gets: 1,000,000 findings
// are 5,000 hosts, a mid-sized fleet.
const perHost = 200

// packages is the pool of package names the findings are spread over.
var packages = func() []string {
	base := []string{"openssl", "libssl3", "bash", "curl", "libcurl4", "glibc", "libc6", "zlib1g", "systemd",
		"openssh-client", "openssh-server", "sudo", "perl-base", "python3.11", "libxml2", "libexpat1",
		"tar", "gzip", "libgnutls30", "krb5-libs", "nss", "nspr", "libpng16-16", "libjpeg62-turbo",
		"git", "vim", "less", "util-linux", "e2fsprogs", "libtiff6"}
	var out []string
	for i := 0; len(out) < perHost; i++ {
		for _, b := range base {
			if i == 0 {
				out = append(out, b)
			} else {
				out = append(out, fmt.Sprintf("%s-extra%d", b, i))
			}
		}
	}
	return out[:perHost]
}()

// generate writes the report to path unless a file of that name exists
// (names carry n, so a rerun reuses it), and returns its size.
func generate(path string, n int, write func(w io.Writer, n int) error) (int64, error) {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size(), nil
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, fmt.Errorf("generate %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw, n); err != nil {
		f.Close()
		return 0, fmt.Errorf("generate %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return 0, fmt.Errorf("generate %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("generate %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("generate %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func reportPath(dir, format string, n int) string {
	ext := map[string]string{"trivy": "json", "nessus": "nessus"}[format]
	return filepath.Join(dir, fmt.Sprintf("%s-%d.%s", format, n, ext))
}

// cveOf gives finding i a CVE that, with its host (i / perHost) and package
// (i % perHost), makes every finding's key distinct.
func cveOf(i int) string { return fmt.Sprintf("CVE-20%02d-%05d", 10+i%15, 10000+(i*7919)%90000) }

// writeTrivy writes a `trivy k8s --format json` report: one Node resource
// per host with one os-pkgs result, Trivy's two-space indentation, and
// vulnerability entries with the fields Trivy writes (description,
// references, CVSS from two sources, vendor severities, dates).
func writeTrivy(w io.Writer, n int) error {
	bw := w.(*bufio.Writer)
	fmt.Fprint(bw, "{\n  \"ClusterName\": \"bench\",\n  \"Resources\": [\n")
	hosts := (n + perHost - 1) / perHost
	i := 0
	for h := 0; h < hosts; h++ {
		if h > 0 {
			bw.WriteString(",\n")
		}
		name := fmt.Sprintf("node-%05d", h)
		fmt.Fprintf(bw, `    {
      "Namespace": "",
      "Kind": "Node",
      "Name": %q,
      "Metadata": [
        {
          "OS": {
            "Family": "debian",
            "Name": "12.5"
          }
        }
      ],
      "Results": [
        {
          "Target": "%s (debian 12.5)",
          "Class": "os-pkgs",
          "Type": "debian",
          "Vulnerabilities": [
`, name, name)
		for k := 0; k < perHost && i < n; k, i = k+1, i+1 {
			if k > 0 {
				bw.WriteString(",\n")
			}
			pkg, cve := packages[k], cveOf(i)
			fmt.Fprintf(bw, `            {
              "VulnerabilityID": %q,
              "PkgID": "%s@1.%d.0-1",
              "PkgName": %q,
              "PkgIdentifier": {
                "PURL": "pkg:deb/debian/%s@1.%d.0-1?arch=amd64\u0026distro=debian-12.5",
                "UID": "%016x"
              },
              "InstalledVersion": "1.%d.0-1",
              "FixedVersion": "1.%d.0-1+deb12u1",
              "Status": "fixed",
              "Layer": {
                "DiffID": "sha256:78c1b9419976227e05be9d243b7fa583bea44a5258e52018b2af4cdfe23d148d"
              },
              "SeveritySource": "nvd",
              "PrimaryURL": "https://avd.aquasec.com/nvd/%s",
              "DataSource": {
                "ID": "debian",
                "Name": "Debian Security Tracker",
                "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"
              },
              "Title": "%s: heap-based buffer overflow in the parser of %s",
              "Description": "A heap-based buffer overflow was found in %s. A remote attacker could send crafted input that is parsed without a bounds check, which may cause a denial of service or possibly the execution of arbitrary code with the privileges of the process. The issue was fixed upstream by validating the length field before copying.",
              "Severity": "HIGH",
              "CweIDs": [
                "CWE-787"
              ],
              "VendorSeverity": {
                "debian": 2,
                "nvd": 3,
                "redhat": 2
              },
              "CVSS": {
                "nvd": {
                  "V2Vector": "AV:N/AC:L/Au:N/C:P/I:P/A:P",
                  "V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                  "V2Score": 7.5,
                  "V3Score": 9.8
                },
                "redhat": {
                  "V3Vector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H",
                  "V3Score": 8.1
                }
              },
              "References": [
                "https://access.redhat.com/security/cve/%s",
                "https://nvd.nist.gov/vuln/detail/%s",
                "https://security-tracker.debian.org/tracker/%s",
                "https://www.debian.org/security/2024/dsa-5%03d"
              ],
              "PublishedDate": "2024-03-%02dT15:15:00Z",
              "LastModifiedDate": "2024-06-%02dT10:11:00Z"
            }`, cve, pkg, h%9, pkg, pkg, h%9, uint64(i)*0x9E3779B97F4A7C15, h%9, h%9, cve, pkg, pkg, pkg,
				cve, cve, cve, i%1000, 1+i%28, 1+i%28)
		}
		bw.WriteString("\n          ]\n        }\n      ]\n    }")
	}
	_, err := bw.WriteString("\n  ]\n}\n")
	return err
}

// writeNessus writes a NessusClientData_v2 file: a Policy block, then one
// ReportHost per host with its HostProperties and one local-check
// ReportItem per finding, shaped like the CentOS items of
// nessus_centos_local_checks_pci.nessus (one CVE and one
// "Remote package installed / Should be" pair each).
func writeNessus(w io.Writer, n int) error {
	bw := w.(*bufio.Writer)
	bw.WriteString(`<?xml version="1.0" ?>
<NessusClientData_v2>
<Policy><policyName>bench</policyName>
<Preferences><ServerPreferences><preference><name>max_simult_tcp_sessions</name>
<value>unlimited</value>
</preference>
</ServerPreferences>
</Preferences>
</Policy>
<Report name="bench" xmlns:cm="http://www.nessus.org/cm">
`)
	hosts := (n + perHost - 1) / perHost
	i := 0
	for h := 0; h < hosts; h++ {
		ip := fmt.Sprintf("10.%d.%d.%d", h/65536%256, h/256%256, h%256)
		fmt.Fprintf(bw, `<ReportHost name="%s"><HostProperties>
<tag name="HOST_END">Tue Jan  7 08:19:25 2014</tag>
<tag name="operating-system">Linux Kernel 2.6.32-358.el6.x86_64 on CentOS release 6.4 (Final)</tag>
<tag name="host-ip">%s</tag>
<tag name="host-fqdn">host-%05d.bench.example</tag>
<tag name="hostname">host-%05d</tag>
<tag name="HOST_START">Tue Jan  7 08:13:02 2014</tag>
</HostProperties>
`, ip, ip, h, h)
		for k := 0; k < perHost && i < n; k, i = k+1, i+1 {
			pkg, cve := packages[k], cveOf(i)
			fmt.Fprintf(bw, `<ReportItem port="0" svc_name="general" protocol="tcp" severity="3" pluginID="%d" pluginName="CentOS 6 : %s (CESA-2013:%04d)" pluginFamily="CentOS Local Security Checks">
<cve>%s</cve>
<cvss3_base_score>8.1</cvss3_base_score>
<cvss3_vector>CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H</cvss3_vector>
<cvss_base_score>7.5</cvss_base_score>
<cvss_vector>CVSS2#AV:N/AC:L/Au:N/C:P/I:P/A:P</cvss_vector>
<description>Updated %s packages that fix one security issue are now available for Red Hat Enterprise Linux 6.

The Red Hat Security Response Team has rated this update as having important security impact. A Common Vulnerability Scoring System (CVSS) base score, which gives a detailed severity rating, is available from the CVE link in the References section.

A heap-based buffer overflow was found in the way %s parsed crafted input. (%s)</description>
<fname>centos_RHSA-2013-%04d.nasl</fname>
<plugin_name>CentOS 6 : %s (CESA-2013:%04d)</plugin_name>
<plugin_publication_date>2013/12/23</plugin_publication_date>
<plugin_type>local</plugin_type>
<risk_factor>High</risk_factor>
<see_also>http://www.nessus.org/u?2bb752eb</see_also>
<solution>Update the affected %s packages.</solution>
<synopsis>The remote CentOS host is missing one or more security updates.</synopsis>
<xref>RHSA:2013:%04d</xref>
<plugin_output>
Remote package installed : %s-1.%d.0-1.el6
Should be : %s-1.%d.0-2.el6_5

</plugin_output>
</ReportItem>
`, 60000+k, pkg, k, cve, pkg, pkg, cve, k, pkg, k, pkg, k, pkg, h%9, pkg, h%9)
		}
		bw.WriteString("</ReportHost>\n")
	}
	_, err := bw.WriteString("</Report>\n</NessusClientData_v2>\n")
	return err
}
