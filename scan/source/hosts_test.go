package source

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

func trivyReport(host string) []byte {
	return []byte(`{"SchemaVersion": 2, "ArtifactName": "` + host + `", "ArtifactType": "vm",
  "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}},
  "Results": [{"Target": "` + host + ` (debian 12.5)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [
    {"VulnerabilityID": "CVE-2026-10001", "PkgName": "libfoo", "InstalledVersion": "1.0.0", "FixedVersion": "1.0.1", "Severity": "HIGH"}]}]}`)
}

func storedHosts(t *testing.T, st store.Store) []string {
	t.Helper()
	fs, err := st.ListFindings(t.Context(), store.FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, f := range fs {
		hosts = append(hosts, f.Host)
	}
	slices.Sort(hosts)
	return hosts
}

// Dropped reports name hosts by FQDN and IP; they are stored under their
// inventory names, and a host the inventory lacks is kept and reported.
func TestFileDropMatchesInventory(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	dropFile(t, dir, "a.json", trivyReport("web-1.example.com"), old)
	dropFile(t, dir, "b.json", trivyReport("10.0.0.2"), old.Add(time.Second))
	dropFile(t, dir, "c.json", trivyReport("stray"), old.Add(2*time.Second))
	st := newSQLite(t)
	deps := testDeps(st, &sleeper{})
	reads := 0
	deps.Inventory = func(context.Context) (vulnzero.Inventory, error) {
		reads++
		return vulnzero.Inventory{Hosts: []vulnzero.Host{{Name: "web-1", Address: "10.0.0.1"}, {Name: "db-1", Address: "10.0.0.2"}}}, nil
	}
	res, err := mustNew(t, Config{Name: "drops", Type: TypeFile, Path: dir}, deps).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Hosts, []string{"db-1", "stray", "web-1"}) || !slices.Equal(res.Unmatched, []string{"stray"}) || reads != 1 {
		t.Errorf("result = %+v (inventory read %d times), want hosts db-1, stray, web-1 and stray unmatched", res, reads)
	}
	if got := storedHosts(t, st); !slices.Equal(got, []string{"db-1", "stray", "web-1"}) {
		t.Errorf("stored hosts %q", got)
	}
}

// An API pull's hosts, coverage included, are matched too; an inventory
// that cannot be read keeps the scanner's names and does not fail the run.
func TestPullMatchesInventory(t *testing.T) {
	st := newSQLite(t)
	m, srv := newWazuhManager(t)
	m.agents = []wazuhAgent{{ID: "001", Name: "web-1", Status: "active"}, {ID: "002", Name: "db-1", Status: "active"}}
	m.vulns["001"] = realdata(t, "scanners/wazuh/api-v4.7_one_finding_with_endpoint.json")
	m.vulns["002"] = []byte(`{"data":{"affected_items":[],"total_affected_items":0,"total_failed_items":0,"failed_items":[]},"error":0}`)
	deps := testDeps(st, &sleeper{})
	deps.Inventory = func(context.Context) (vulnzero.Inventory, error) {
		return vulnzero.Inventory{Hosts: []vulnzero.Host{{Name: "web-1.example.com"}}}, nil
	}
	res, err := mustNew(t, wazuhAPIConfig(srv.URL), deps).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Hosts, []string{"db-1", "web-1.example.com"}) || !slices.Equal(res.Unmatched, []string{"db-1"}) {
		t.Errorf("result = %+v, want web-1 as web-1.example.com and db-1 unmatched", res)
	}
	if got := storedHosts(t, st); !slices.Equal(got, []string{"web-1.example.com"}) {
		t.Errorf("stored hosts %q", got)
	}

	deps.Inventory = func(context.Context) (vulnzero.Inventory, error) {
		return vulnzero.Inventory{}, errors.New("repo unreadable")
	}
	res, err = mustNew(t, wazuhAPIConfig(srv.URL), deps).Run(t.Context())
	if err != nil {
		t.Fatalf("an unreadable inventory failed the run: %v", err)
	}
	if !slices.Equal(res.Hosts, []string{"db-1", "web-1"}) || res.Unmatched != nil {
		t.Errorf("result = %+v, want the scanner's names and nothing reported", res)
	}
}
