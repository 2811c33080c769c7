package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// A report naming a host by its FQDN is stored under the inventory name; a
// host the inventory lacks is stored as the scanner named it and reported.
func TestIngestMatchesHostsToInventory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.DataDir = dir
	inv := "hosts:\n  - name: web-1\n    address: 10.0.0.1\n"
	if _, err := gitsource.InitBare(ctx, cfg.repoURL(), "main", map[string][]byte{"inventory/hosts.yaml": []byte(inv)}, "init", "t", "t@example.test"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VZ_DATA_DIR", dir)
	report := func(file, host string) string {
		p := filepath.Join(dir, file)
		body := `{"SchemaVersion": 2, "ArtifactName": "` + host + `", "ArtifactType": "vm",
  "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}},
  "Results": [{"Target": "` + host + ` (debian 12.5)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [
    {"VulnerabilityID": "CVE-2026-10001", "PkgName": "libfoo", "InstalledVersion": "1.0.0", "FixedVersion": "1.0.1", "Severity": "HIGH"}]}]}`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out, _, err := run(t, "ingest", report("web.json", "web-1.example.com"), report("stray.json", "stray.example.com"))
	if err != nil {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], "web.json (trivy): 1 findings read, 1 new") ||
		!strings.Contains(lines[1], "stray.json (trivy): 1 findings read, 1 new") ||
		lines[2] != "1 hosts not in the inventory: stray.example.com" {
		t.Fatalf("output:\n%s", out)
	}

	st, err := sqlite.Open(ctx, filepath.Join(dir, "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs, err := st.ListFindings(ctx, store.FindingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, f := range fs {
		hosts = append(hosts, f.Host)
	}
	slices.Sort(hosts)
	if !slices.Equal(hosts, []string{"stray.example.com", "web-1"}) {
		t.Fatalf("stored hosts %q, want web-1 and stray.example.com", hosts)
	}
}
