// Package scan reads scanner reports into normalized findings.
//
// A report is read as a stream: Parse yields one vulnzero.Finding at a time
// and keeps memory flat whatever the size of the file (JSON is walked token
// by token and only single vulnerabilities are decoded; CSV is read record
// by record; XML element by element, with only one item decoded at a
// time). The first bad byte ends the sequence with a
// *vulnzero.PositionError naming the file, the line (and column, and the
// element path for JSON) and the reason, so an import can fail whole with
// nothing stored. A report without vulnerabilities yields nothing and no
// error. The format is recognised from content by Detect, never from the
// file name.
//
// The two formats that come in gigabytes, Trivy JSON and .nessus, are
// parsed on every core: the parser reads each entry raw (checking the
// syntax it must) and hands runs of them to workers that decode them with
// the same code, and the results come back in input order (see ordered).
// What a parse yields, findings, coverage and the first error with its
// place, is exactly what it yields on one core.
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
// # Wazuh (FormatWazuh)
//
// Three shapes, told apart by content: the manager API ≤ 4.7
// (GET /vulnerability/{agent}: data.affected_items), an indexer search
// response of wazuh-states-vulnerabilities-* (4.8+: hits.hits[]._source;
// wazuh-alerts-* documents are read too), and vulnerability-detector alerts
// (alerts.json lines, or the bare {"vulnerability":…} payloads; NDJSON,
// concatenated or one array).
//
//	finding     Wazuh
//	Host        Options.Host, else agent.name (indexer, alerts), agent_name /
//	            agent_ip (API exporters); the API body does not name the
//	            agent, so an API response needs Options.Host (the agent of
//	            the request) and is an error without one
//	OS          host.os.platform + version (indexer only)
//	Package     name / package.name; Installed the version
//	Ecosystem   package.type (deb, rpm, …), else from the OS
//	Fixed       from the condition: "Package less than X" gives X (an epoch
//	            "0:" is dropped when the installed version has none);
//	            "… less than or equal to X", "equal to", "unfixed" and
//	            "default status" give no fix
//	CVE         cve / vulnerability.id
//	CVSS        cvss3_score else cvss2_score (0 is unknown); score.base;
//	            alerts rebuild the vector only when every base metric is
//	            there (the 4.8 detector omits attack complexity)
//	FirstSeen   detection_time / detected_at / the alert's timestamp
//
// Alerts are events: they cover no host, and a "Solved" alert is not
// imported. An indexer response is one page: Options.OnPage gets hits.total
// and the last hit's sort values (search_after), or the scroll id; a
// timed-out search or a failed shard is an error (a partial page), as is an
// API response with failed_items.
//
//	Wazuh                         vulnzero
//	Critical                      critical
//	High                          high
//	Medium                        medium
//	Low                           low
//	Untriaged, "-", anything else unknown
//
// # Qualys (FormatQualys)
//
// Host list detection output (VMDR API), ASSET_DATA_REPORT and SCAN
// (scan-1.dtd) report XML, and the CSV exports (detection report, the VMDR
// UI's QID- and CVE-centric exports with or without their preamble, the
// monthly PCI export). Detection output names only QIDs: it needs the
// KnowledgeBase (LoadQualysKB → Options.QualysKB) for titles, CVEs and
// CVSS, and a detection whose QID the KB lacks is an error naming it — a
// finding is never a bare number. The ASSET_DATA_REPORT carries its own
// glossary (after the hosts: detections wait in a spool meanwhile); SCAN
// reports and CSVs carry titles and CVEs inline and use the KB, when given,
// only to fill what a row lacks.
//
//	finding     Qualys
//	Host        Options.Host, else the FQDN (DNS_DATA), DNS, NETBIOS, IP, ID
//	OS          free text read as family and version ("CentOS Linux 7.9" →
//	            centos 7.9)
//	Package     from the RESULTS table of authenticated checks (Package /
//	            Installed Version / Required Version: Installed and Fixed);
//	            otherwise the pseudo-package "qualys:<QID>", without a fix
//	CVE         one finding per CVE of the QID; a QID without CVEs is
//	            "QID-<n>" with its title
//	CVSS        CVSS v3 base before v2 ("9.0 (AV:…)" gives score and vector)
//	RuleID      the QID
//	FirstSeen   FIRST_FOUND_DATETIME / FIRST_FOUND / First Detected
//
// Fixed detections (STATUS Fixed) are imported fixed, as of
// LAST_FIXED_DATETIME when given (the store closes them; see
// store.PrepareFinding). Left out: information gathered (TYPE Info, Ig)
// and ignored or disabled detections (the host stays covered, so a
// complete import closes them). Potential vulnerabilities (TYPE Potential,
// PRACTICES, Practice) are imported. A truncation warning (CODE 1980) gives
// Options.OnPage the URL of the next page.
//
//	Qualys level                     vulnzero
//	5 Urgent                         critical
//	4 Critical                       high
//	3 Serious                        medium
//	2 Medium, 1 Minimal              low
//	(CSV words) Critical/High/Medium/Low as in the table for 5/4/3/2
//
// # Nessus (FormatNessus)
//
// The .nessus XML (NessusClientData_v2, under any file name) and the CSV
// exports of Nessus Professional (default or all columns, and the newer
// template whose scores lost their decimal point: a whole number above 10
// is read as tenths), Tenable Vulnerability Management and Tenable Security
// Center.
//
//	finding     Nessus
//	Host        Options.Host, else host-fqdn, hostname, netbios-name,
//	            ReportHost@name, host-ip (CSV: FQDN, DNS Name, Host, NetBios,
//	            IP Address)
//	OS          operating-system read as family and version ("Linux Kernel …
//	            on CentOS release 6.3 (Final)" → centos 6.3)
//	Package     the "Remote package installed : pixman-0.26.2-5.el6_4 /
//	            Should be : pixman-0.26.2-5.1.el6_5" pairs of local checks
//	            (RPM NEVRA, or Debian's name_version), one finding per
//	            package; other plugins: the pseudo-package
//	            "nessus:<plugin id>" without a fix, with Installed from
//	            "Installed version :" when the output has it
//	CVE         one finding per <cve>; a plugin without CVEs is
//	            "NESSUS-<plugin id>"
//	CVSS        cvss3 before cvss4 before cvss (v2, whose "CVSS2#" prefix is
//	            dropped); bare v3 vectors get "CVSS:3.0/"
//	RuleID      pluginID; Title the plugin name
//
// Informational results are left out: severity 0, risk factor None, and
// (Nessus 4) severity 1 with no risk factor, CVE or score. Rows a
// Tenable.io CSV marks Fixed are imported fixed.
//
//	Nessus risk factor / severity    vulnzero
//	Critical / 4                     critical
//	High / 3                         high
//	Medium / 2                       medium
//	Low / 1                          low
//	None, Info / 0                   not imported
//
// # Tenable (FormatTenable)
//
// A chunk of a Tenable Vulnerability Management export (GET
// /vulns/export/{uuid}/chunks/{n}: a JSON array). Fields map as for Nessus:
// the asset's fqdn, hostname, netbios_name, a valid ipv4 (recorders write
// "[REDACTED]") or uuid name the host; operating_system[0] the OS;
// plugin.id, plugin.cve, plugin.cvss3_base_score with cvss3_vector.raw, and
// the package lines of output; first_found is FirstSeen. severity
// (info/low/medium/high/critical, else severity_id) maps as the Nessus
// table; state FIXED is imported fixed, as of last_fixed. The export's status
// document is recognised and rejected: it holds no findings.
//
// # Grype, OSV-Scanner and OpenVAS (FormatGrype, FormatOSV, FormatOpenVAS)
//
// The field mappings and severity tables are on the format constants.
// Grype writes the host (source) and OS (distro) after its matches, and a
// key-sorted OSV report has a result's packages before its source: such
// findings wait in a spool (in memory up to a few thousand, then an
// unlinked temporary file) until the host is known, so memory stays flat.
// OpenVAS follows the conventions below: "openvas:<NVT OID>" for checks
// that name no package, "OPENVAS-<NVT OID>" when there is no CVE.
//
// # Reading JSON fast
//
// The JSON walkers (Trivy, Grype, OSV) read through fastDecoder, a drop-in
// for the part of *json.Decoder they use that gives the same tokens,
// values, syntax error messages and offsets (differential fuzz tests hold
// it to encoding/json), scans each byte once, and decodes a Trivy
// vulnerability entry without reflection: the parse is about three times
// faster than with encoding/json.
//
// # Conventions of the vendor formats
//
// The store keys findings by (host, package, CVE) and needs all three.
// Network and application checks name no package a package manager could
// upgrade, so they carry a pseudo-package "scanner:rule" whose colon no
// package name has, and never a fixed version: VulnZero tracks and scores
// them but proposes no patch for them. Scanner-reported fixed findings are
// not emitted (the store would reopen them); a complete rescan closes them
// instead.
//
// Findings carry Options.Source (or the file name) and the format as
// Scanner, and Options.Now as FirstSeen (unless the report dates it) and
// LastSeen.
package scan
