package remedy_test

import (
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy"
)

func TestMergeFixedVersions(t *testing.T) {
	rhel := func(host, installed, fixed, cve string) vulnzero.Finding {
		f := finding(host, "openssl", installed, fixed, cve, vulnzero.SeverityHigh, 7.5)
		f.OS, f.OSFamily, f.Ecosystem = "rhel 9", "rhel", "rpm"
		return f
	}
	fs := []vulnzero.Finding{
		// dpkg order: 3.0.13-1~deb12u1 is above 3.0.11-1~deb12u2 and 3.0.9-1
		finding("web-1", "openssl", "3.0.9-1", "3.0.11-1~deb12u2", "CVE-2023-5678", vulnzero.SeverityMedium, 5.3),
		finding("web-2", "openssl", "3.0.9-1", "3.0.13-1~deb12u1", "CVE-2024-0727", vulnzero.SeverityHigh, 7.5),
		finding("web-2", "openssl", "3.0.9-1", "3.0.10-1", "CVE-2023-3817", vulnzero.SeverityLow, 3.1),
		// rpm order: the epoch makes 1:3.0.7-24.el9 the highest
		rhel("db-1", "1:3.0.7-20.el9", "1:3.0.7-24.el9", "CVE-2023-5678"),
		rhel("db-2", "1:3.0.7-20.el9", "3.0.8-1.el9", "CVE-2024-0727"),
		finding("web-1", "curl", "7.88.1-10", "7.88.1-10+deb12u5", "CVE-2024-2398", vulnzero.SeverityMedium, 5.0),
	}
	groups, _ := remedy.GroupFindings(fs, remedy.ScoreInput{Now: now})
	if len(groups) != 6 {
		t.Fatalf("%d groups before merging", len(groups))
	}
	merged := remedy.MergeFixedVersions(groups, remedy.ScoreInput{Now: now})
	if len(merged) != 3 {
		t.Fatalf("%d groups after merging: %+v", len(merged), merged)
	}
	byPkg := map[string]remedy.Group{}
	for _, g := range merged {
		byPkg[g.Key.Package+"/"+g.Key.OSFamily] = g
	}
	deb := byPkg["openssl/debian"]
	if deb.Key.Fixed != "3.0.13-1~deb12u1" || strings.Join(deb.Hosts, ",") != "web-1,web-2" ||
		strings.Join(deb.CVEs, ",") != "CVE-2023-3817,CVE-2023-5678,CVE-2024-0727" || deb.MaxSeverity != vulnzero.SeverityHigh {
		t.Errorf("debian openssl = %+v", deb)
	}
	if deb.ID != remedy.PatchID(deb.Key, vulnzero.APT) || deb.Score.Total == 0 {
		t.Errorf("id %s, score %d", deb.ID, deb.Score.Total)
	}
	if rh := byPkg["openssl/rhel"]; rh.Key.Fixed != "1:3.0.7-24.el9" || rh.Manager != vulnzero.DNF || len(rh.Findings) != 2 {
		t.Errorf("rhel openssl = %+v", rh)
	}
	if c := byPkg["curl/debian"]; c.Key.Fixed != "7.88.1-10+deb12u5" || len(c.Findings) != 1 {
		t.Errorf("curl = %+v", c)
	}
	// Idempotent, and a group alone is untouched.
	if again := remedy.MergeFixedVersions(merged, remedy.ScoreInput{Now: now}); len(again) != 3 || again[0].ID != merged[0].ID {
		t.Errorf("merging twice changed the groups")
	}
}
