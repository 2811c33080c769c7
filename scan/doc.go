// Package scan reads scanner reports into normalized findings.
//
// A report is read as a stream: Parse yields one vulnzero.Finding at a time
// and keeps memory flat whatever the size of the file (JSON is walked token
// by token and only single vulnerabilities are decoded; CSV is read record
// by record). The first bad byte ends the sequence with a
// *vulnzero.PositionError naming the file, the line (and column, and the
// element path for JSON) and the reason, so an import can fail whole with
// nothing stored. A report without vulnerabilities yields nothing and no
// error. The format is recognised from content by Detect, never from the
// file name.
//
// Each format is one file defining a parser (how to detect it, how to read
// it) listed in formats; Wazuh, Qualys, Nessus, Grype, OSV and OpenVAS slot
// in the same way.
//
// # Trivy (FormatTrivy)
//
// JSON with SchemaVersion 2 (`trivy image|fs|rootfs|vm --format json`), the
// legacy pre-v0.20 top-level array of results, and Kubernetes reports
// (ClusterName with Resources[].Results, or the older Vulnerabilities list
// of resources). One finding per vulnerability entry, i.e. per (PkgName,
// VulnerabilityID); the same pair repeated in a row (one package found at
// two paths) is reported once.
//
//	finding     Trivy
//	Host        Options.Host, else the Kubernetes resource (a Node's name, or
//	            namespace/kind/name), else ArtifactName, else the result's
//	            Target without its "(family version)" suffix
//	OS          Metadata.OS Family + " " + Name ("debian 10.1"); for OS results
//	            the result Type and the Target suffix when Metadata is absent
//	OSFamily    normalized (NormalizeOSFamily): debian/ubuntu → debian;
//	            redhat/centos/rocky/alma/amazon/oracle/fedora → rhel;
//	            suse/sles/opensuse → suse; alpine → alpine
//	Ecosystem   deb/rpm/apk for Class os-pkgs (from the OS family); the
//	            result Type (npm, pip, jar, cargo, …) for lang-pkgs
//	Package     PkgName: the binary package, the one the package manager
//	            upgrades (not SrcName)
//	Installed   InstalledVersion
//	Fixed       FixedVersion, chosen by pickFixed (see below); "" when absent
//	CVE         VulnerabilityID (also GHSA-…, TEMP-…, DLA-…)
//	CVSS        V3 before V4 before V2; within each, the nvd entry, then the
//	            SeveritySource's, then other sources by name
//	Status      open; entries with Status not_affected are skipped
//
// Results of other classes (config, secret, license) are skipped. Trivy
// writes ArtifactName, Metadata, and each result's Target, Class and Type
// before the vulnerabilities; a streamed reader depends on that order (a
// result whose Vulnerabilities come first is an error).
//
// Severity mapping (Trivy writes only these; anything else is unknown):
//
//	Trivy      vulnzero
//	CRITICAL   critical
//	HIGH       high
//	MEDIUM     medium
//	LOW        low
//	UNKNOWN    unknown
//
// Fixed versions: FixedVersion may be empty, one version, one per release
// branch ("1.2.3, 1.3.1"), or a legacy range (">=4.17.11"). VulnZero takes
// the lowest listed version above the installed one, the smallest upgrade
// that fixes the host; if none is above it, the highest listed. ">=" and
// "=" prefixes are dropped; other ranges ("<2.0") are not one version and
// are ignored, leaving the fix unknown when nothing else is listed.
//
// # CSV (FormatCSV)
//
// Header names are trimmed and matched case-insensitively; extra columns are
// ignored; a header naming a column twice is an error. The header picks one
// of two layouts.
//
// The VulnZero layout, for anyone who can produce a spreadsheet:
//
//	host,os,package,installed,fixed,cve,severity,cvss
//	web-1,debian 12,openssl,3.0.11-1~deb12u1,3.0.11-1~deb12u2,CVE-2023-5678,medium,5.3
//
// host, package, installed and cve are required columns with non-empty
// cells; os, fixed, severity and cvss may be absent or empty. os is "family
// version" ("debian 12", "ubuntu 22.04", "rocky 9"); fixed follows the
// fixed-version rule above; cve may list several ids (comma, semicolon or
// space separated), one finding each; severity is unknown, low, medium,
// high or critical; cvss is a number from 0 to 10.
//
// DefectDojo's "Generic Findings Import" layout (a header with Title and no
// host/package column). Columns read:
//
//	Title             required; also the finding's id when there is no CVE
//	Url               the host: URL, bare name or host:port (Options.Host
//	                  overrides; a row with neither is an error)
//	Vulnerability Id  CVE / advisory ids (with CVE, both accepted)
//	Severity          Critical/High/Medium/Low; Info or empty → unknown
//	Date              FirstSeen: ISO-8601, or MM/DD/YYYY (DD/MM/YYYY when the
//	                  first number exceeds 12)
//	CVSSV3, CVSSV4    the vector; CVSSV3_score / CVSSV4_score the score
//	fix_available, fix_version   Fixed (when fix_available is not false)
//	Active, IsMitigated, MitigatedDate   inactive or mitigated → status fixed
//	FalsePositive     TRUE → the row is skipped
//
// The layout has no package columns, so these findings are tracked and
// scored but cannot be grouped into a package patch. epss_score is not
// read: EPSS enters at scoring time (remedy.ScoreInput).
//
// Findings carry Options.Source (or the file name) and the format as
// Scanner, and Options.Now as FirstSeen (unless the report dates it) and
// LastSeen.
package scan
