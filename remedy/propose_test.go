package remedy_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge/forgetest"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/remedy"
	"vulnzero.dev/vulnzero/remedy/guardrails"
)

// writer records commits instead of pushing them.
type writer struct {
	mu      sync.Mutex
	fake    *forgetest.Fake
	commits []string
}

func (w *writer) CommitPatch(_ context.Context, branch, _ string, p vulnzero.Patch, _ string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.commits = append(w.commits, branch)
	return w.fake.Push(branch), nil
}

func finding(host, pkg, installed, fixed, cve string, sev vulnzero.Severity, cvss float64) vulnzero.Finding {
	return vulnzero.Finding{Host: host, OS: "debian 12", OSFamily: "debian", Package: pkg, Ecosystem: "deb",
		Installed: installed, Fixed: fixed, CVE: cve, Severity: sev, CVSS: cvss, Status: vulnzero.FindingOpen,
		FirstSeen: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
}

var now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func fixture() ([]remedy.Group, vulnzero.Inventory) {
	var fs []vulnzero.Finding
	inv := vulnzero.Inventory{}
	for _, h := range []string{"web-1", "web-2", "web-3", "db-1"} {
		inv.Hosts = append(inv.Hosts, vulnzero.Host{Name: h, Address: "10.0.0.1"})
		fs = append(fs, finding(h, "libfoo", "1.0.0", "1.0.1", "CVE-2026-10001", vulnzero.SeverityHigh, 8.1))
	}
	fs = append(fs,
		finding("web-1", "libbar", "2.1.0", "2.2.0", "CVE-2026-10002", vulnzero.SeverityCritical, 9.8),
		finding("web-1", "libbaz", "0.1", "0.2", "CVE-2026-10003", vulnzero.SeverityLow, 2.0))
	groups, _ := remedy.GroupFindings(fs, remedy.ScoreInput{Now: now})
	return groups, inv
}

func proposer(fake *forgetest.Fake, inv vulnzero.Inventory) (*remedy.Proposer, *writer) {
	w := &writer{fake: fake}
	return &remedy.Proposer{
		Writer: w, Forge: fake, Base: "main", Policies: policies.Defaults(), Inventory: inv,
		Guardrails: guardrails.Defaults(), Now: func() time.Time { return now },
	}, w
}

func skipped(props []remedy.Proposal) map[string]string {
	m := map[string]string{}
	for _, p := range props {
		if p.Skipped != "" {
			m[p.Group.Key.Package] = p.Skipped
		}
	}
	return m
}

func TestProposeOpensOnePRPerKeyAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	groups, inv := fixture()
	fake := forgetest.NewFake()
	p, w := proposer(fake, inv)
	props, err := p.Propose(ctx, groups)
	if err != nil {
		t.Fatal(err)
	}
	if s := skipped(props); len(s) != 1 || !strings.Contains(s["libbaz"], "below the policy minimum medium") {
		t.Fatalf("skipped: %v", s)
	}
	prs, err := fake.ListPRs(ctx)
	if err != nil || len(prs) != 2 {
		t.Fatalf("PRs %+v, %v", prs, err)
	}
	byPkg := map[string]vulnzero.PullRequest{}
	for _, pr := range prs {
		byPkg[strings.Split(pr.Title, " ")[1]] = pr
	}
	foo := byPkg["libfoo"]
	for _, want := range []string{
		"| web-2 | libfoo | 1.0.0 → 1.0.1 | CVE-2026-10001 | high | 8.1 |",
		"### Score: ",
		"| CVSS | 32 | CVSS 8.1 (CVE-2026-10001) |",
		"Policy `default`, strategy `canary`",
		"| 1 1 | 1 | 0 | 10m0s | db-1 |",
		"`rules` (vulnzero-rules)",
		"<summary>rollback.sh</summary>",
		"dpkg --compare-versions",
	} {
		if !strings.Contains(foo.Body, want) {
			t.Errorf("libfoo PR body lacks %q:\n%s", want, foo.Body)
		}
	}
	if foo.Branch != "vulnzero/"+remedy.PatchID(remedy.Key{Package: "libfoo", Fixed: "1.0.1", OSFamily: "debian"}, vulnzero.APT) {
		t.Errorf("branch %s", foo.Branch)
	}

	// A second run finds the same PRs instead of opening more.
	if _, err := p.Propose(ctx, groups); err != nil {
		t.Fatal(err)
	}
	again, err := fake.ListPRs(ctx)
	if err != nil || len(again) != 2 || again[0].Number != prs[0].Number || again[1].Number != prs[1].Number {
		t.Fatalf("after a re-run: %+v, %v", again, err)
	}
	if len(w.commits) != 4 {
		t.Errorf("%d commits, want 4 (two per run)", len(w.commits))
	}
}

func TestProposeRespectsBudgetExceptionsQuarantineAndGuardrails(t *testing.T) {
	ctx := context.Background()
	groups, inv := fixture()

	t.Run("open-PR budget", func(t *testing.T) {
		p, _ := proposer(forgetest.NewFake(), inv)
		p.Policies.Remediation.MaxOpenPRs = 1
		props, err := p.Propose(ctx, groups)
		if err != nil {
			t.Fatal(err)
		}
		if s := skipped(props); !strings.Contains(s["libfoo"], "open-PR budget of 1") {
			t.Errorf("skipped: %v", s)
		}
	})
	t.Run("exceptions until they expire", func(t *testing.T) {
		p, _ := proposer(forgetest.NewFake(), inv)
		p.Policies.Remediation.Exceptions = []policies.Exception{
			{CVE: "CVE-2026-10002", Reason: "vendor fix pending", Expires: now.Add(24 * time.Hour)},
			{CVE: "CVE-2026-10001", Reason: "expired", Expires: now.Add(-time.Hour)},
		}
		props, err := p.Propose(ctx, groups)
		if err != nil {
			t.Fatal(err)
		}
		s := skipped(props)
		if !strings.Contains(s["libbar"], "vendor fix pending") || s["libfoo"] != "" {
			t.Errorf("skipped: %v", s)
		}
	})
	t.Run("quarantined revision", func(t *testing.T) {
		p, _ := proposer(forgetest.NewFake(), inv)
		p.Revision = func(vulnzero.Patch) (vulnzero.Revision, error) { return "deadbeef", nil }
		id := remedy.PatchID(remedy.Key{Package: "libbar", Fixed: "2.2.0", OSFamily: "debian"}, vulnzero.APT)
		p.Quarantined = []vulnzero.Quarantine{{PatchID: id, Revision: "deadbeef", Reason: "canary failed"}}
		props, err := p.Propose(ctx, groups)
		if err != nil {
			t.Fatal(err)
		}
		if s := skipped(props); !strings.Contains(s["libbar"], "quarantined: canary failed") || s["libfoo"] != "" {
			t.Errorf("skipped: %v", s)
		}
	})
	t.Run("guardrails stop a script before any branch", func(t *testing.T) {
		fake := forgetest.NewFake()
		p, w := proposer(fake, inv)
		p.Guardrails.DeniedCommands = append(p.Guardrails.DeniedCommands, "apt-get")
		props, err := p.Propose(ctx, groups)
		if err != nil {
			t.Fatal(err)
		}
		if s := skipped(props); !strings.Contains(s["libfoo"], "guardrails: ") || !strings.Contains(s["libfoo"], "denied-command") {
			t.Errorf("skipped: %v", s)
		}
		if len(w.commits) != 0 {
			t.Errorf("branches pushed despite the guardrails: %v", w.commits)
		}
	})
}
