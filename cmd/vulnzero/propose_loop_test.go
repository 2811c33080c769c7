package main

import (
	"context"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/store"
)

// An open finding becomes a PR; once a complete rescan shows the host
// clean, the next pass closes that PR with a comment.
func TestProposeOnceOpensThenClosesFixedPRs(t *testing.T) {
	ctx := context.Background()
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	inv := "hosts:\n  - name: web-1\n    address: 10.0.0.1\n"
	if _, err := gitsource.InitBare(ctx, cfg.repoURL(), "main", map[string][]byte{"inventory/hosts.yaml": []byte(inv)}, "init", "t", "t@example.test"); err != nil {
		t.Fatal(err)
	}
	a, err := openApp(ctx, cfg, newLogger(&strings.Builder{}, cfg.Log))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	imp := func(fs ...vulnzero.Finding) {
		t.Helper()
		seq := func(yield func(vulnzero.Finding, error) bool) {
			for _, f := range fs {
				if !yield(f, nil) {
					return
				}
			}
		}
		if _, err := a.store.ImportFindings(ctx, vulnzero.Import{Source: "scanner", Scanner: "csv", Complete: true}, seq); err != nil {
			t.Fatal(err)
		}
	}
	imp(vulnzero.Finding{Host: "web-1", OS: "debian 12", OSFamily: "debian", Package: "libfoo", Installed: "1.0.0", Fixed: "1.0.1",
		CVE: "CVE-2026-10001", Severity: vulnzero.SeverityHigh, CVSS: 8.1})

	res, err := a.proposeOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Proposals) != 1 || res.Proposals[0].PR.Number != 1 || len(res.Closed) != 0 {
		t.Fatalf("first pass: %+v", res)
	}
	// Again: the same PR, nothing closed.
	if res, err = a.proposeOnce(ctx); err != nil || res.Proposals[0].PR.Number != 1 || len(res.Closed) != 0 {
		t.Fatalf("second pass: %+v, %v", res, err)
	}

	imp(store.CoverageMarker("web-1")) // web-1 rescanned: clean
	if res, err = a.proposeOnce(ctx); err != nil || len(res.Closed) != 1 || res.Closed[0] != 1 {
		t.Fatalf("after the clean rescan: %+v, %v", res, err)
	}
	pr, err := a.forge.GetPR(ctx, 1)
	if err != nil || pr.State != vulnzero.PRClosed {
		t.Fatalf("PR #1 %+v, %v", pr, err)
	}
	cs, err := a.forge.Comments(ctx, 1)
	if err != nil || len(cs) != 1 || !strings.Contains(cs[0], "gone from the latest scans") {
		t.Fatalf("comments %v, %v", cs, err)
	}
}
