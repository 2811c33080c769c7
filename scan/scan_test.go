package scan

import (
	"errors"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

// realdata is shared/realdata beside the clone (CI puts it there).
const realdata = "../../shared/realdata/scanners"

// fixtures are the samples and demo reports kept in the repository.
const fixtures = "../fixtures/scans"

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// collect drains a sequence and checks the contract that an error is the
// last thing yielded.
func collect(t testing.TB, seq iter.Seq2[vulnzero.Finding, error]) ([]vulnzero.Finding, error) {
	t.Helper()
	var out []vulnzero.Finding
	var failed error
	for f, err := range seq {
		if failed != nil {
			t.Fatalf("sequence yielded %+v / %v after error %v", f, err, failed)
		}
		if err != nil {
			failed = err
			continue
		}
		out = append(out, f)
	}
	return out, failed
}

func parseString(t testing.TB, name, body string, format Format, opts Options) ([]vulnzero.Finding, error) {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = now
	}
	return collect(t, Parse(name, strings.NewReader(body), format, opts))
}

func parseFile(t testing.TB, path string, opts Options) (Format, []vulnzero.Finding, error) {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = now
	}
	format, seq, c, err := Open(path, "", opts)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer c.Close()
	fs, err := collect(t, seq)
	return format, fs, err
}

// requireRealdata returns the realdata folder of one scanner.
func requireRealdata(t *testing.T, scanner string) string {
	t.Helper()
	dir := filepath.Join(realdata, scanner)
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared realdata not found at %s (CI places shared/ beside the clone): %v", dir, err)
	}
	return dir
}

// positionError asserts err is a *vulnzero.PositionError about file.
func positionError(t *testing.T, err error, file string) *vulnzero.PositionError {
	t.Helper()
	var pe *vulnzero.PositionError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *vulnzero.PositionError", err, err)
	}
	if pe.File != file {
		t.Errorf("position error names file %q, want %q", pe.File, file)
	}
	if !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("position error %v does not match ErrInvalid", err)
	}
	return pe
}

func find(fs []vulnzero.Finding, host, pkg, cve string) (vulnzero.Finding, bool) {
	for _, f := range fs {
		if f.Host == host && f.Package == pkg && f.CVE == cve {
			return f, true
		}
	}
	return vulnzero.Finding{}, false
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		head string
		want Format
		err  error
	}{
		{"trivy schema 2", `{"SchemaVersion": 2, "ArtifactName": "x"}`, FormatTrivy, nil},
		{"trivy with BOM", "\xEF\xBB\xBF{\"SchemaVersion\": 2}", FormatTrivy, nil},
		{"trivy kubernetes", `{"ClusterName": "prod", "Resources": []}`, FormatTrivy, nil},
		{"trivy legacy array", `[{"Target": "x (alpine 3.7.1)", "Type": "alpine", "Vulnerabilities": []}]`, FormatTrivy, nil},
		{"vulnzero csv", "host,os,package,installed,fixed,cve,severity,cvss\n", FormatCSV, nil},
		{"vulnzero csv any case", "Host , Package,Installed,CVE\r\n", FormatCSV, nil},
		{"defectdojo csv", "Date,Title,CweId,Url,Severity,Description\n", FormatCSV, nil},
		{"defectdojo leading space", "Date,Title,CweId,epss_score,epss_percentile, Url,Severity\n", FormatCSV, nil},
		{"empty", "", "", ErrEmpty},
		{"whitespace", " \n\t\r\n", "", ErrEmpty},
		{"grype json", `{"matches": [], "source": {}}`, FormatGrype, nil},
		{"osv json", `{"results": []}`, FormatOSV, nil},
		{"osv json with sources", `{"results": [{"source": {"path": "go.mod"}, "packages": []}]}`, FormatOSV, nil},
		{"openvas xml", `<report id="x" format_id="a994b278" extension="xml" content_type="text/xml">`, FormatOpenVAS, nil},
		{"openvas gmp response", `<get_reports_response status="200"><report id="x">`, FormatOpenVAS, nil},
		{"openvas csv", "IP,Hostname,Port,Port Protocol,CVSS,Severity,Solution Type,NVT Name,Summary,Specific Result,NVT OID,CVEs\n", FormatOpenVAS, nil},
		{"nessus csv", "Plugin ID,CVE,CVSS,Risk,Host,Protocol,Port,Name\n", FormatNessus, nil},
		{"tenable.sc csv", `"Plugin","Plugin Name","Family","Severity","IP Address"` + "\n", FormatNessus, nil},
		{"nessus xml", `<?xml version="1.0"?><NessusClientData_v2>`, FormatNessus, nil},
		{"tenable export chunk", `[{"asset":{"uuid":"u"},"plugin":{"id":1},"severity":"info","severity_id":0}]`, FormatTenable, nil},
		{"tenable export status", `{"uuid":"u","status":"FINISHED","chunks_available":[1]}`, FormatTenable, nil},
		{"qualys csv", `"IP","Network","DNS","QID","Title","Severity"` + "\n", FormatQualys, nil},
		{"qualys vmdr csv preamble", "\"Asset Vuln Datalist Report\",\"x\"\n\"Co\",\"Street\"\n\"User\",\"u\"\n\"QID\",\"Title\",\"Severity\"\n", FormatQualys, nil},
		{"qualys pci csv", "IP,HOSTNAME,LAST SCAN,QID,VULN TITLE,TYPE,SEVERITY\n", FormatQualys, nil},
		{"qualys detections", "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM \"x.dtd\">\n<HOST_LIST_VM_DETECTION_OUTPUT>", FormatQualys, nil},
		{"qualys scan report", "<?xml version=\"1.0\"?>\n<!DOCTYPE SCAN SYSTEM \"https://qualysguard.qualys.com/scan-1.dtd\">\n<SCAN value=\"scan/1\">", FormatQualys, nil},
		{"qualys asset data report", "<ASSET_DATA_REPORT><HEADER>", FormatQualys, nil},
		{"wazuh api", `{"data":{"affected_items":[]}}`, FormatWazuh, nil},
		{"wazuh indexer", `{"took":5,"timed_out":false,"_shards":{"total":1},"hits":{"hits":[]}}`, FormatWazuh, nil},
		{"wazuh payload", `{"vulnerability":{"cve":"CVE-1"}}`, FormatWazuh, nil},
		{"wazuh alert", `{"timestamp":"t","agent":{"id":"1"},"data": {"vulnerability": {"cve":"CVE-1"}}}`, FormatWazuh, nil},
		{"wazuh alerts.json", `{"timestamp":"2024-01-10T10:00:00.000+0000","rule":{"level":3,"id":"5715"},"agent":{"id":"002"},"decoder":{"name":"sshd"},"data":{"srcuser":"root"}}`, FormatWazuh, nil},
		{"grype-like match is not a wazuh alert", `{"matches":[{"vulnerability":{"id":"CVE-1"},"artifact":{"name":"a"}}]}`, "", vulnzero.ErrInvalid},
		{"other xml", `<?xml version="1.0"?><report id="x">`, "", vulnzero.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect([]byte(tt.head))
			if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Errorf("Detect(%q) = %q, %v; want %q, %v", tt.head, got, err, tt.want, tt.err)
			}
		})
	}
}

// Every realdata file of a scanner VulnZero reads is detected as that
// scanner's format, and the files of other scanners are left for their own
// parsers: not claimed by a format that owns another folder.
func TestDetectLeavesOtherScannersAlone(t *testing.T) {
	requireRealdata(t, "trivy")
	owners := map[string]func(file string) Format{
		"trivy":       func(string) Format { return FormatTrivy },
		"generic-csv": func(string) Format { return FormatCSV },
		"wazuh":       func(string) Format { return FormatWazuh },
		"qualys":      func(string) Format { return FormatQualys },
		"grype":       func(string) Format { return FormatGrype },
		"osv-scanner": func(string) Format { return FormatOSV },
		"openvas":     func(string) Format { return FormatOpenVAS },
		"tenable": func(file string) Format {
			if strings.HasPrefix(file, "tenable_io_vulns_export") {
				return FormatTenable
			}
			return FormatNessus
		},
	}
	claimed := map[Format]bool{}
	for _, owner := range owners {
		claimed[owner("")] = true
		claimed[owner("tenable_io_vulns_export")] = true
	}
	files, _ := filepath.Glob(filepath.Join(realdata, "*", "*"))
	for _, p := range files {
		dir := filepath.Base(filepath.Dir(p))
		if owner, ok := owners[dir]; ok {
			head, _ := os.ReadFile(p)
			got, err := Detect(head[:min(len(head), HeadSize)])
			if want := owner(filepath.Base(p)); got != want || err != nil {
				t.Errorf("%s detected as %q (%v), want %q", p, got, err, want)
			}
			continue
		}
		head := make([]byte, HeadSize)
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := fh.Read(head)
		fh.Close()
		if f, err := Detect(head[:n]); err == nil && claimed[f] {
			t.Errorf("%s detected as %q; it belongs to another scanner", p, f)
		}
	}
}

func TestOpenEmptyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.json")
	if err := os.WriteFile(p, []byte("\n  \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	format, seq, c, err := Open(p, "", Options{Now: now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	fs, err := collect(t, seq)
	if format != "" || len(fs) != 0 || err != nil {
		t.Errorf("empty file: format %q, %d findings, err %v; want \"\", 0, nil", format, len(fs), err)
	}
	// With the format given, empty input is an empty report of that format.
	for _, f := range Formats() {
		fs, err := parseString(t, "empty", "", f, Options{})
		if len(fs) != 0 || err != nil {
			t.Errorf("%s: empty input gave %d findings, %v", f, len(fs), err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, _, _, err := Open(filepath.Join(t.TempDir(), "missing.json"), "", Options{}); err == nil {
		t.Error("Open of a missing file: no error")
	}
	p := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(p, []byte(`{"matches": []}`), 0o644)
	if _, _, _, err := Open(p, "", Options{}); !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), p) {
		t.Errorf("Open of an unknown format: %v; want ErrInvalid naming the file", err)
	}
	if _, _, _, err := Open(p, "nessus-v1", Options{}); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("Open with an unknown format name: %v; want ErrInvalid", err)
	}
	_, err := parseString(t, "x", "a,b\n", "nessus-v1", Options{})
	if !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), `"nessus-v1"`) {
		t.Errorf("Parse with an unknown format: %v", err)
	}
}

// The consumer may stop early; the parser must not call yield again.
func TestParseStopsWhenConsumerStops(t *testing.T) {
	n := 0
	for range Parse("demo.csv", strings.NewReader(demoCSV(t)), "", Options{Now: now}) {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("read %d findings, want to stop at 2", n)
	}
}

func demoCSV(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(fixtures, "demo.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The demo fixtures are what the README's first command imports: six hosts
// with libfoo, four with libbar, and a Trivy report repeating one of them.
func TestDemoFixtures(t *testing.T) {
	format, csvFs, err := parseFile(t, filepath.Join(fixtures, "demo.csv"), Options{Source: "demo"})
	if err != nil || format != FormatCSV {
		t.Fatalf("demo.csv: format %q, err %v", format, err)
	}
	if len(csvFs) != 10 {
		t.Fatalf("demo.csv: %d findings, want 10", len(csvFs))
	}
	hostsWith := map[string][]string{}
	for _, f := range csvFs {
		hostsWith[f.Package] = append(hostsWith[f.Package], f.Host)
		if f.OS != "debian 12" || f.OSFamily != "debian" || f.Ecosystem != "deb" || f.Source != "demo" || f.Scanner != "csv" || f.Status != vulnzero.FindingOpen || !f.LastSeen.Equal(now) {
			t.Errorf("demo.csv finding %+v", f)
		}
	}
	if got := strings.Join(hostsWith["vz-demo-libfoo"], ","); got != "web-1,web-2,web-3,web-4,db-1,db-2" {
		t.Errorf("libfoo hosts %s", got)
	}
	if got := strings.Join(hostsWith["vz-demo-libbar"], ","); got != "web-1,web-2,web-3,web-4" {
		t.Errorf("libbar hosts %s", got)
	}
	bar, _ := find(csvFs, "web-3", "vz-demo-libbar", "CVE-2026-10002")
	if bar.Installed != "2.1.0" || bar.Fixed != "2.2.0" || bar.Severity != vulnzero.SeverityCritical || bar.CVSS != 9.8 {
		t.Errorf("libbar on web-3: %+v", bar)
	}

	format, trivyFs, err := parseFile(t, filepath.Join(fixtures, "demo-trivy.json"), Options{Source: "demo"})
	if err != nil || format != FormatTrivy || len(trivyFs) != 1 {
		t.Fatalf("demo-trivy.json: format %q, %d findings, err %v", format, len(trivyFs), err)
	}
	tf := trivyFs[0]
	cf, _ := find(csvFs, "web-1", "vz-demo-libfoo", "CVE-2026-10001")
	if tf.Key() != cf.Key() {
		t.Errorf("trivy key %q does not dedupe with the CSV key %q", tf.Key(), cf.Key())
	}
	if tf.Fixed != cf.Fixed || tf.OSFamily != cf.OSFamily || tf.OS != cf.OS || tf.Severity != cf.Severity || tf.CVSS != cf.CVSS || tf.Ecosystem != cf.Ecosystem {
		t.Errorf("trivy finding %+v disagrees with CSV finding %+v", tf, cf)
	}
	if tf.CVSSVector != "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H" {
		t.Errorf("trivy vector %q", tf.CVSSVector)
	}
}

// A host that a report covers is announced even when it is clean, so an
// importer can close its old findings.
func TestOnHost(t *testing.T) {
	var hosts []string
	opts := Options{OnHost: func(h string) { hosts = append(hosts, h) }}
	fs, err := parseString(t, "clean.json", `{"SchemaVersion":2,"ArtifactName":"web-9","Metadata":{"OS":{"Family":"debian","Name":"12"}},"Results":[]}`, "", opts)
	if err != nil || len(fs) != 0 {
		t.Fatalf("clean report: %d findings, %v", len(fs), err)
	}
	if strings.Join(hosts, ",") != "web-9" {
		t.Errorf("clean report covered %v, want [web-9]", hosts)
	}
	hosts = nil
	if _, err := parseString(t, "demo.csv", demoCSV(t), "", opts); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(hosts, ","); got != "web-1,web-2,web-3,web-4,db-1,db-2,web-1,web-2,web-3,web-4" {
		t.Errorf("demo.csv covered %s", got)
	}
}
