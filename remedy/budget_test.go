package remedy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge/forgetest"
	"vulnzero.dev/vulnzero/remedy"
)

// budgetFixture is 3 routine groups (high severity), 2 critical ones and
// one high-severity group whose CVE is in CISA KEV.
func budgetFixture(at time.Time) ([]remedy.Group, vulnzero.Inventory) {
	var fs []vulnzero.Finding
	for i := range 3 {
		fs = append(fs, finding("web-1", fmt.Sprintf("routine%d", i), "1.0", "1.1", fmt.Sprintf("CVE-2026-2000%d", i), vulnzero.SeverityHigh, 7.5))
	}
	for i := range 2 {
		fs = append(fs, finding("web-1", fmt.Sprintf("crit%d", i), "1.0", "1.1", fmt.Sprintf("CVE-2026-3000%d", i), vulnzero.SeverityCritical, 9.8))
	}
	fs = append(fs, finding("web-1", "kev", "1.0", "1.1", "CVE-2026-40000", vulnzero.SeverityHigh, 7.0))
	groups, _ := remedy.GroupFindings(fs, remedy.ScoreInput{Now: at, KEV: map[string]bool{"CVE-2026-40000": true}})
	return groups, vulnzero.Inventory{Hosts: []vulnzero.Host{{Name: "web-1", Address: "10.0.0.1"}}}
}

func opened(props []remedy.Proposal, seen map[string]bool) []string {
	var out []string
	for _, p := range props {
		if p.Skipped == "" && !seen[p.Group.Key.Package] {
			seen[p.Group.Key.Package] = true
			out = append(out, p.Group.Key.Package)
		}
	}
	return out
}

// TestProposeHourlyBudgets: by default two new PRs an hour, and a separate
// two for KEV or critical groups; updates spend nothing; the budgets refill
// an hour after the PRs were created (the forge's CreatedAt); the open-PR
// budget still caps the total.
func TestProposeHourlyBudgets(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	groups, inv := budgetFixture(clock)
	fake := forgetest.NewFake()
	fake.Now = func() time.Time { return clock }
	p, _ := proposer(fake, inv)
	p.Now = func() time.Time { return clock }
	// The guardrails' external checkers are tested with the guardrails;
	// here they would only make the test slow.
	p.Guardrails.ShellcheckPath, p.Guardrails.BashPath = "", ""
	seen := map[string]bool{}
	lanes := func(props []remedy.Proposal) (routine, crit int, skips map[string]string) {
		skips = map[string]string{}
		for _, pkg := range opened(props, seen) {
			if strings.HasPrefix(pkg, "routine") {
				routine++
			} else {
				crit++
			}
		}
		for _, pr := range props {
			if pr.Skipped != "" {
				skips[pr.Group.Key.Package] = pr.Skipped
			}
		}
		return routine, crit, skips
	}

	props, err := p.Propose(ctx, groups)
	if err != nil {
		t.Fatal(err)
	}
	r, c, skips := lanes(props)
	if r != 2 || c != 2 || len(skips) != 2 {
		t.Fatalf("first hour: %d routine, %d critical opened; skipped %v", r, c, skips)
	}
	for pkg, why := range skips {
		want := "new-PR budget for this hour reached"
		if !strings.HasPrefix(pkg, "routine") {
			want = "critical new-PR budget for this hour reached"
		}
		if why != want {
			t.Errorf("%s skipped for %q, want %q", pkg, why, want)
		}
	}
	// The KEV group is in the critical lane although it is only "high".
	prs, _ := fake.ListPRs(ctx)
	for _, pr := range prs {
		if strings.Contains(pr.Title, "kev") && !strings.Contains(pr.Body, "vulnzero:lane=critical") {
			t.Errorf("KEV PR body lacks the critical lane mark")
		}
	}

	clock = clock.Add(30 * time.Minute) // same hour: updates only
	props, err = p.Propose(ctx, groups)
	if err != nil {
		t.Fatal(err)
	}
	if r, c, _ := lanes(props); r != 0 || c != 0 {
		t.Errorf("30 minutes later: %d routine, %d critical new PRs, want none", r, c)
	}
	if got, _ := fake.ListPRs(ctx); len(got) != 4 {
		t.Errorf("%d PRs after the re-run, want 4", len(got))
	}

	clock = clock.Add(31 * time.Minute) // the first PRs are over an hour old
	props, err = p.Propose(ctx, groups)
	if err != nil {
		t.Fatal(err)
	}
	if r, c, _ := lanes(props); r != 1 || c != 1 {
		t.Errorf("next hour: %d routine, %d critical new PRs, want the last of each", r, c)
	}

	// Without hourly limits the open-PR budget still caps the total.
	p2, _ := proposer(forgetest.NewFake(), inv)
	p2.Now = func() time.Time { return clock }
	p2.Guardrails.ShellcheckPath, p2.Guardrails.BashPath = "", ""
	p2.Policies.Remediation.MaxOpenPRs = 3
	p2.NewPerHour, p2.CriticalNewPerHour = -1, -1 // no hourly limit
	props, err = p2.Propose(ctx, groups)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, pr := range props {
		if pr.Skipped == "" {
			n++
		} else if !strings.Contains(pr.Skipped, "open-PR budget of 3") {
			t.Errorf("%s skipped for %q", pr.Group.Key.Package, pr.Skipped)
		}
	}
	if n != 3 {
		t.Errorf("%d PRs opened without hourly limits, want the open-PR budget of 3", n)
	}
}
