package remedy_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy"
	"vulnzero.dev/vulnzero/scan"
)

var patchIDRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

func TestPatchID(t *testing.T) {
	tests := []struct {
		key     remedy.Key
		manager vulnzero.PackageManager
		want    string
	}{
		// These ids are a contract: branches and PRs in remediation repos
		// are named after them. Changing one orphans its open PR.
		{remedy.Key{"vz-demo-libfoo", "1.0.1", "debian"}, vulnzero.APT, "apt-vz-demo-libfoo-1.0.1-92b87429"},
		{remedy.Key{"vz-demo-libbar", "2.2.0", "debian"}, vulnzero.APT, "apt-vz-demo-libbar-2.2.0-42ec076b"},
		{remedy.Key{"openssl", "1:3.0.13-1~deb12u1", "debian"}, vulnzero.APT, "apt-openssl-1-3.0.13-1-deb12u1-bfc332ba"},
		{remedy.Key{"openssl-libs", "1:1.0.2k-19.el7", "rhel"}, vulnzero.DNF, "dnf-openssl-libs-1-1.0.2k-19.el7-9d9ced79"},
		{remedy.Key{"Python3.11..Foo", "2.0+b1", "suse"}, vulnzero.Zypper, "zypper-python3.11-foo-2.0-b1-044a45d6"},
		{remedy.Key{"libcrypto1.1", "1.1.1d-r0", "alpine"}, vulnzero.APK, "apk-libcrypto1.1-1.1.1d-r0-0a652803"},
	}
	for _, tt := range tests {
		got := remedy.PatchID(tt.key, tt.manager)
		if got != tt.want {
			t.Errorf("PatchID(%+v, %s) = %q, want %q", tt.key, tt.manager, got, tt.want)
		}
		if again := remedy.PatchID(tt.key, tt.manager); again != got {
			t.Errorf("PatchID is not deterministic: %q then %q", got, again)
		}
	}
}

// Ids stay DNS- and branch-safe whatever a scanner puts in a package name or
// version, and keys that sanitize alike still differ.
func TestPatchIDSafe(t *testing.T) {
	keys := []remedy.Key{
		{"pkg", "1:2.0", "debian"},
		{"pkg", "1-2.0", "debian"},
		{"pkg", "1.2.0", "debian"},
		{"PKG", "1.2.0", "debian"},
		{"pkg", "1.2.0", "rhel"},
		{".hidden", "..", "debian"},
		{"a/b c;rm -rf", "$(x)", "debian"},
		{"lib" + strings.Repeat("x", 200), "1." + strings.Repeat("9", 100), "debian"},
		{"", "", ""},
		{"тест", "ü", "debian"},
	}
	seen := map[string]remedy.Key{}
	for _, k := range keys {
		id := remedy.PatchID(k, vulnzero.APT)
		if !patchIDRE.MatchString(id) || len(id) > 63 || strings.Contains(id, "..") || strings.HasSuffix(id, ".lock") {
			t.Errorf("PatchID(%+v) = %q is not DNS/branch safe", k, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("keys %+v and %+v share id %q", k, other, id)
		}
		seen[id] = k
	}
}

func TestManagerFor(t *testing.T) {
	tests := map[string]vulnzero.PackageManager{"debian": vulnzero.APT, "rhel": vulnzero.DNF, "suse": vulnzero.Zypper, "alpine": vulnzero.APK, "Debian": vulnzero.APT}
	for fam, want := range tests {
		if got, ok := remedy.ManagerFor(fam); got != want || !ok {
			t.Errorf("ManagerFor(%q) = %q, %v; want %q", fam, got, ok, want)
		}
	}
	for _, fam := range []string{"", "windows", "wolfi", "ubuntu"} {
		if got, ok := remedy.ManagerFor(fam); ok {
			t.Errorf("ManagerFor(%q) = %q; want none (families are normalized by scan)", fam, got)
		}
	}
}

// readDemo imports the demo fixtures the way `vulnzero demo` does.
func readDemo(t *testing.T) []vulnzero.Finding {
	t.Helper()
	var all []vulnzero.Finding
	for i, name := range []string{"demo.csv", "demo-trivy.json"} {
		now := time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC)
		_, seq, c, err := scan.Open(filepath.Join("..", "fixtures", "scans", name), "", scan.Options{Source: "demo", Now: now})
		if err != nil {
			t.Fatal(err)
		}
		for f, err := range seq {
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			all = append(all, f)
		}
		c.Close()
	}
	return all
}

func TestGroupFindingsDemo(t *testing.T) {
	fs := readDemo(t)
	if len(fs) != 11 {
		t.Fatalf("demo has %d findings, want 10 from CSV + 1 from Trivy", len(fs))
	}
	groups, skipped := remedy.GroupFindings(fs, remedy.ScoreInput{})
	if len(skipped) != 0 {
		t.Errorf("skipped %+v", skipped)
	}
	if len(groups) != 2 {
		t.Fatalf("%d groups, want 2", len(groups))
	}
	bar, foo := groups[0], groups[1]
	if bar.ID != "apt-vz-demo-libbar-2.2.0-42ec076b" || bar.Manager != vulnzero.APT || bar.Key != (remedy.Key{"vz-demo-libbar", "2.2.0", "debian"}) {
		t.Errorf("first group %s %s %+v; want libbar (the higher score) first", bar.ID, bar.Manager, bar.Key)
	}
	if got := strings.Join(bar.Hosts, ","); got != "web-1,web-2,web-3,web-4" {
		t.Errorf("libbar hosts %s", got)
	}
	if bar.MaxSeverity != vulnzero.SeverityCritical || strings.Join(bar.CVEs, ",") != "CVE-2026-10002" || bar.Score.Total != 39+5 {
		t.Errorf("libbar: severity %s CVEs %v score %d", bar.MaxSeverity, bar.CVEs, bar.Score.Total)
	}
	if foo.ID != "apt-vz-demo-libfoo-1.0.1-92b87429" || foo.MaxSeverity != vulnzero.SeverityHigh || foo.Score.Total != 32+5 {
		t.Errorf("libfoo: %s severity %s score %d", foo.ID, foo.MaxSeverity, foo.Score.Total)
	}
	if got := strings.Join(foo.Hosts, ","); got != "db-1,db-2,web-1,web-2,web-3,web-4" {
		t.Errorf("libfoo hosts %s", got)
	}
	// web-1's libfoo finding came from both files: one finding, the newer
	// (the Trivy report, imported a day later).
	if len(foo.Findings) != 6 {
		t.Fatalf("libfoo has %d findings, want 6 (the Trivy copy deduped)", len(foo.Findings))
	}
	for _, f := range foo.Findings {
		if f.Host == "web-1" && f.Scanner != "trivy" {
			t.Errorf("web-1 kept the %s copy, want the newer trivy one", f.Scanner)
		}
	}
}

func TestGroupFindingsSkipsAndIgnores(t *testing.T) {
	base := vulnzero.Finding{Host: "h1", OSFamily: "debian", Ecosystem: "deb", Package: "p", Installed: "1", Fixed: "2", CVE: "CVE-1", Status: vulnzero.FindingOpen}
	with := func(change func(*vulnzero.Finding)) vulnzero.Finding {
		f := base
		change(&f)
		return f
	}
	fs := []vulnzero.Finding{
		base,
		with(func(f *vulnzero.Finding) { f.Status = vulnzero.FindingFixed; f.Host = "h2" }),
		with(func(f *vulnzero.Finding) { f.Fixed = ""; f.CVE = "CVE-nofix" }),
		with(func(f *vulnzero.Finding) { f.Package = ""; f.CVE = "CVE-nopkg" }),
		with(func(f *vulnzero.Finding) { f.OSFamily = ""; f.CVE = "CVE-noos" }),
		with(func(f *vulnzero.Finding) { f.OSFamily = "windows"; f.CVE = "CVE-win" }),
		with(func(f *vulnzero.Finding) { f.Ecosystem = "npm"; f.Package = "lodash"; f.CVE = "CVE-npm" }),
		with(func(f *vulnzero.Finding) { f.Ecosystem = ""; f.Host = "h3" }), // CSV rows carry no ecosystem
		with(func(f *vulnzero.Finding) { f.Status = ""; f.Host = "h4" }),    // no status means open
	}
	groups, skipped := remedy.GroupFindings(fs, remedy.ScoreInput{})
	if len(groups) != 1 || strings.Join(groups[0].Hosts, ",") != "h1,h3,h4" {
		t.Fatalf("groups %+v", groups)
	}
	want := []struct{ cve, reason string }{
		{"CVE-nofix", "no fixed version is known"},
		{"CVE-nopkg", "no package: the scanner names no package to upgrade"},
		{"CVE-noos", "unknown OS family: no package manager to patch with"},
		{"CVE-win", `OS family "windows" has no supported package manager`},
		{"CVE-npm", "npm package, not managed by apt"},
	}
	if len(skipped) != len(want) {
		t.Fatalf("skipped %+v", skipped)
	}
	for i, w := range want {
		if skipped[i].Finding.CVE != w.cve || skipped[i].Reason != w.reason {
			t.Errorf("skipped[%d] = %s %q; want %s %q", i, skipped[i].Finding.CVE, skipped[i].Reason, w.cve, w.reason)
		}
	}
}

// Groups with equal scores are ordered by id; different fixed versions or
// OS families of one package are different patches.
func TestGroupFindingsOrder(t *testing.T) {
	f := func(host, pkg, fixed, fam string, cvss float64) vulnzero.Finding {
		return vulnzero.Finding{Host: host, OSFamily: fam, Package: pkg, Installed: "1", Fixed: fixed, CVE: "CVE-" + pkg, CVSS: cvss, Status: vulnzero.FindingOpen}
	}
	fs := []vulnzero.Finding{
		f("a", "zlib", "2", "debian", 5),
		f("b", "curl", "2", "debian", 5),
		f("c", "curl", "3", "debian", 5),
		f("d", "curl", "2", "rhel", 9),
	}
	groups, _ := remedy.GroupFindings(fs, remedy.ScoreInput{})
	var ids []string
	for _, g := range groups {
		ids = append(ids, g.ID)
	}
	want := []string{
		remedy.PatchID(remedy.Key{"curl", "2", "rhel"}, vulnzero.DNF), // CVSS 9: first
		remedy.PatchID(remedy.Key{"curl", "2", "debian"}, vulnzero.APT),
		remedy.PatchID(remedy.Key{"curl", "3", "debian"}, vulnzero.APT),
		remedy.PatchID(remedy.Key{"zlib", "2", "debian"}, vulnzero.APT),
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("order\n got %v\nwant %v", ids, want)
	}
	for range 20 { // map iteration must not leak into the order
		again, _ := remedy.GroupFindings(fs, remedy.ScoreInput{})
		for i := range again {
			if again[i].ID != ids[i] {
				t.Fatalf("order changed between runs: %s at %d, want %s", again[i].ID, i, ids[i])
			}
		}
	}
}
