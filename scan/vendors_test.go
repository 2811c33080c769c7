package scan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
)

// vendorOutcome is what importing one sample gives.
type vendorOutcome struct {
	format   Format
	findings int
	line     int    // of the error; 0 when the file imports
	reason   string // substring of the error
}

// vendorOutcomes are the outcomes of every realdata sample of Wazuh,
// Qualys and Tenable, by scanner folder and file name.
var vendorOutcomes = map[string]vendorOutcome{
	"wazuh/alert-data-v4.8plus_vulnerability-detector_payloads.ndjson": {FormatWazuh, 0, 1, "no host: a detector payload"},
	"wazuh/api-v4.7_many_findings.json":                                {FormatWazuh, 0, 4, "no host: the manager API response does not name the agent"},
	"wazuh/api-v4.7_one_finding_with_endpoint.json":                    {FormatWazuh, 1, 0, ""},
	"wazuh/indexer-v4.8_issue_12634.json":                              {FormatWazuh, 10, 0, ""},
	"wazuh/indexer-v4.8_many_findings.json":                            {FormatWazuh, 10, 0, ""},

	"qualys/asset_data_report_Qualys_Sample_Report.xml":     {FormatQualys, 144, 0, ""},
	"qualys/host_list_vm_detection_output_demisto.xml":      {FormatQualys, 0, 24, "QID 11827: host list detection output names only QIDs"},
	"qualys/host_list_vm_detection_output_graph-qualys.xml": {FormatQualys, 0, 20, "QID 38170: host list detection output names only QIDs"},
	"qualys/knowledge_base_vuln_list_output.xml":            {FormatQualys, 0, 4, "Qualys KnowledgeBase, which holds no findings"},
	"qualys/monthly_pci_issue6932.csv":                      {FormatQualys, 1, 0, ""},
	"qualys/scan_report_SCAN_multiple_hosts.xml":            {FormatQualys, 44, 0, ""},
	"qualys/scan_report_SCAN_no_vulns.xml":                  {FormatQualys, 0, 0, ""},
	"qualys/vm_detection_report_Qualys_Sample_Report.csv":   {FormatQualys, 28, 0, ""},
	"qualys/vm_detection_report_empty.csv":                  {FormatQualys, 0, 0, ""},
	"qualys/vmdr_many_vulns_cve.csv":                        {FormatQualys, 5, 0, ""},
	"qualys/vmdr_many_vulns_qid.csv":                        {FormatQualys, 5, 0, ""},
	"qualys/vmdr_no_vuln_no_metadata_cve.csv":               {FormatQualys, 0, 0, ""},

	"tenable/nessus_centos_local_checks_pci.nessus":        {FormatNessus, 491, 0, ""},
	"tenable/nessus_csv_template_cvss4_epss.csv":           {FormatNessus, 5, 0, ""},
	"tenable/nessus_info_only.xml":                         {FormatNessus, 0, 0, ""},
	"tenable/nessus_issue_6992.nessus":                     {FormatNessus, 1, 0, ""},
	"tenable/nessus_pro_csv_all_columns.csv":               {FormatNessus, 1, 0, ""},
	"tenable/nessus_pro_csv_default_columns.csv":           {FormatNessus, 1, 0, ""},
	"tenable/nessus_v2_2009_example.nessus":                {FormatNessus, 4, 0, ""},
	"tenable/nessus_v_unknown_7hosts.xml":                  {FormatNessus, 30, 0, ""},
	"tenable/nessus_with_cvssv3.nessus":                    {FormatNessus, 145, 0, ""},
	"tenable/tenable_io_csv_many_vuln.csv":                 {FormatNessus, 21, 0, ""},
	"tenable/tenable_io_vulns_export_chunk_1.json":         {FormatTenable, 262, 0, ""},
	"tenable/tenable_io_vulns_export_status_finished.json": {FormatTenable, 0, 1, "export status"},
	"tenable/tenable_sc_csv_issue_11102.csv":               {FormatNessus, 3, 0, ""},
}

// checkOutcome imports one file with no host and no KnowledgeBase, as
// `vulnzero ingest FILE` reads it, and compares with its outcome.
func checkOutcome(t *testing.T, path string, w vendorOutcome) {
	t.Helper()
	format, fs, err := parseFile(t, path, Options{})
	if format != w.format {
		t.Errorf("%s detected as %q, want %q", path, format, w.format)
	}
	checkStorable(t, path, fs)
	if len(fs) != w.findings {
		t.Errorf("%s: %d findings, want %d", path, len(fs), w.findings)
	}
	if w.line == 0 {
		if err != nil {
			t.Errorf("%s: %v", path, err)
		}
		return
	}
	pe := positionError(t, err, path)
	if pe.Line != w.line || !strings.Contains(pe.Err.Error(), w.reason) {
		t.Errorf("%s: error %v; want line %d and %q", path, err, w.line, w.reason)
	}
}

// Every realdata file of Wazuh, Qualys and Tenable either imports, with a
// known number of findings, or fails with a position error that names the
// file, a line and the reason.
func TestVendorRealdataImportsOrFailsClearly(t *testing.T) {
	requireRealdata(t, "wazuh")
	n := 0
	for _, dir := range []string{"wazuh", "qualys", "tenable"} {
		files, _ := filepath.Glob(filepath.Join(realdata, dir, "*"))
		for _, p := range files {
			n++
			w, ok := vendorOutcomes[dir+"/"+filepath.Base(p)]
			if !ok {
				t.Errorf("%s: a realdata file without an expected outcome", p)
				continue
			}
			checkOutcome(t, p, w)
		}
	}
	if n != len(vendorOutcomes) {
		t.Errorf("realdata has %d files, the table %d", n, len(vendorOutcomes))
	}
}

// The copies in fixtures/scans (the samples whose licences allow it) import
// the same way, with or without shared/realdata.
func TestVendorFixtures(t *testing.T) {
	n := 0
	for dir, scanner := range map[string]string{"wazuh": "wazuh", "qualys": "qualys", "nessus": "tenable"} {
		files, _ := filepath.Glob(filepath.Join(fixtures, dir, "*"))
		for _, p := range files {
			n++
			w, ok := vendorOutcomes[scanner+"/"+filepath.Base(p)]
			if !ok {
				t.Errorf("%s is not a copy of a realdata sample", p)
				continue
			}
			checkOutcome(t, p, w)
		}
	}
	if n == 0 {
		t.Error("no vendor fixtures")
	}
}

// checkStorable asserts what the store and the remedy engine need of every
// finding: the key fields, a known severity, a score in range, and a
// package that is either a real name or a "scanner:rule" pseudo-package
// without a fixed version (so no patch is ever proposed for it).
func checkStorable(t testing.TB, name string, fs []vulnzero.Finding) {
	t.Helper()
	for _, f := range fs {
		switch {
		case f.Host == "" || f.Package == "" || f.CVE == "":
			t.Fatalf("%s: finding without host, package or id: %+v", name, f)
		case f.Severity < vulnzero.SeverityUnknown || f.Severity > vulnzero.SeverityCritical:
			t.Fatalf("%s: severity %d out of range: %+v", name, f.Severity, f)
		case f.CVSS < 0 || f.CVSS > 10:
			t.Fatalf("%s: CVSS %v out of range: %+v", name, f.CVSS, f)
		case (strings.HasPrefix(f.Package, "nessus:") || strings.HasPrefix(f.Package, "qualys:")) && f.Fixed != "":
			t.Fatalf("%s: pseudo-package %q with a fixed version %q", name, f.Package, f.Fixed)
		case f.Status != vulnzero.FindingOpen && f.Status != vulnzero.FindingFixed,
			f.Status == vulnzero.FindingOpen && !f.FixedAt.IsZero():
			t.Fatalf("%s: finding neither open nor fixed as a scanner reports it: %+v", name, f)
		}
	}
}

// fuzzVendor is fuzzParse plus checkStorable, for the vendor parsers.
func fuzzVendor(t *testing.T, b []byte, format Format, opts Options) {
	opts.Now = now
	fs, err := collect(t, Parse("fuzz", strings.NewReader(string(b)), format, opts))
	if err != nil {
		var pe *vulnzero.PositionError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v (%T) is not a *vulnzero.PositionError", err, err)
		}
		if pe.File != "fuzz" || pe.Line < 1 {
			t.Fatalf("position error without a place: %+v", pe)
		}
	}
	checkStorable(t, "fuzz", fs)
}

// addSeeds seeds a fuzz target with a scanner's realdata files, cut by
// cutSeed.
func addSeeds(f *testing.F, dir string) {
	files, _ := filepath.Glob(filepath.Join(realdata, dir, "*"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(cutSeed(b))
		}
	}
}

// cutSeed cuts a large sample to its first lines (a cut file is a
// truncated report, which is worth fuzzing too). The fuzzer minimizes
// every input that finds new coverage, one byte at a time, for up to a
// minute: a seed of tens of kilobytes would eat the few seconds CI gives
// each target.
func cutSeed(b []byte) []byte {
	for n, lines := 0, 0; n < len(b) && len(b) > 4<<10; n++ {
		if b[n] == '\n' {
			if lines++; lines == 40 || n > 4<<10 {
				return b[:n+1]
			}
		}
	}
	return b
}

func readRealdata(dir, name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(realdata, dir, name))
}
