// Package forgetest holds what every forge is tested with: Run, the
// conformance suite each forge.Forge implementation calls from its own tests
// (the real forges and Fake alike), and Fake, an in-memory forge for tests of
// the code that uses one.
package forgetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
)

// PushBranch creates branch, or moves it, to a new commit that holds patch
// patchID (with different content on every call, so every push is a new
// head) and returns that commit's hash. The base branch is "main".
type PushBranch func(t *testing.T, branch, patchID string) string

// Run checks that the forges newForge returns behave as forge.Forge says.
// Every subtest gets a fresh forge (and repository).
func Run(t *testing.T, newForge func(t *testing.T) (forge.Forge, PushBranch)) {
	ctx := context.Background()

	t.Run("OpenIsIdempotentByBranch", func(t *testing.T) {
		f, push := newForge(t)
		branch := forge.Branch("libfoo-1.0.1")
		sha1 := push(t, branch, "libfoo-1.0.1")
		pr, err := f.OpenPR(ctx, forge.NewPR{PatchID: "libfoo-1.0.1", Branch: branch, Base: "main", Title: "Upgrade libfoo", Body: "v1", HeadSHA: sha1})
		if err != nil {
			t.Fatal(err)
		}
		if pr.Number < 1 || pr.State != vulnzero.PROpen || pr.HeadSHA != sha1 || pr.Branch != branch || pr.Base != "main" ||
			pr.PatchID != "libfoo-1.0.1" || pr.Title != "Upgrade libfoo" || pr.Body != "v1" || pr.CreatedAt.IsZero() || pr.MergeSHA != "" {
			t.Fatalf("opened %+v", pr)
		}
		got, err := f.GetPR(ctx, pr.Number)
		if err != nil || got.Number != pr.Number || got.HeadSHA != sha1 || got.Title != pr.Title || got.State != vulnzero.PROpen {
			t.Fatalf("GetPR = %+v, %v", got, err)
		}

		sha2 := push(t, branch, "libfoo-1.0.1")
		if sha2 == sha1 {
			t.Fatal("PushBranch returned the same head twice")
		}
		again, err := f.OpenPR(ctx, forge.NewPR{PatchID: "libfoo-1.0.1", Branch: branch, Base: "main", Title: "Upgrade libfoo (2 hosts)", Body: "v2", HeadSHA: sha2})
		if err != nil {
			t.Fatal(err)
		}
		if again.Number != pr.Number || again.HeadSHA != sha2 || again.Title != "Upgrade libfoo (2 hosts)" || again.Body != "v2" || again.State != vulnzero.PROpen {
			t.Fatalf("second OpenPR = %+v, want PR #%d updated", again, pr.Number)
		}
		open, err := f.ListPRs(ctx, vulnzero.PROpen)
		if err != nil {
			t.Fatal(err)
		}
		if len(open) != 1 || open[0].Number != pr.Number || open[0].HeadSHA != sha2 {
			t.Fatalf("open PRs = %+v", open)
		}

		// Without PatchID and Base: both come from the branch and the forge.
		derived, err := f.OpenPR(ctx, forge.NewPR{Branch: branch, Title: "t", HeadSHA: sha2})
		if err != nil || derived.Number != pr.Number || derived.PatchID != "libfoo-1.0.1" || derived.Base != "main" {
			t.Fatalf("OpenPR with defaults = %+v, %v", derived, err)
		}
	})

	t.Run("OpenErrors", func(t *testing.T) {
		f, push := newForge(t)
		if _, err := f.OpenPR(ctx, forge.NewPR{PatchID: "ghost", Branch: forge.Branch("ghost"), Title: "t"}); !errors.Is(err, vulnzero.ErrNotFound) {
			t.Errorf("OpenPR for a branch never pushed: %v, want ErrNotFound", err)
		}
		sha := push(t, forge.Branch("p"), "p")
		for name, pr := range map[string]forge.NewPR{
			"no title":    {PatchID: "p", Branch: forge.Branch("p"), HeadSHA: sha},
			"no branch":   {PatchID: "p", Title: "t", HeadSHA: sha},
			"no patch id": {Branch: "feature/x", Title: "t", HeadSHA: sha},
		} {
			if _, err := f.OpenPR(ctx, pr); !errors.Is(err, vulnzero.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		if _, err := f.GetPR(ctx, 999); !errors.Is(err, vulnzero.ErrNotFound) {
			t.Errorf("GetPR(999): %v, want ErrNotFound", err)
		}
		if prs, err := f.ListPRs(ctx); err != nil || len(prs) != 0 {
			t.Errorf("ListPRs after failed opens = %+v, %v", prs, err)
		}
	})

	t.Run("StatusesReplacePerContext", func(t *testing.T) {
		f, push := newForge(t)
		sha := push(t, forge.Branch("p"), "p")
		other := push(t, forge.Branch("q"), "q")
		set := func(sha, ctxName string, state vulnzero.StatusState, desc string) {
			t.Helper()
			if err := f.SetStatus(ctx, vulnzero.CommitStatus{SHA: sha, Context: ctxName, State: state, Description: desc, TargetURL: "http://127.0.0.1/t/1"}); err != nil {
				t.Fatal(err)
			}
		}
		set(sha, "vulnzero/twin/apply", vulnzero.StatusPending, "running")
		set(sha, "vulnzero/twin/rollback", vulnzero.StatusPending, "waiting")
		set(sha, "vulnzero/twin/apply", vulnzero.StatusSuccess, "applied in 12s")
		set(other, "vulnzero/twin/apply", vulnzero.StatusFailure, "apt failed")

		got, err := f.Statuses(ctx, sha)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Context != "vulnzero/twin/apply" || got[0].State != vulnzero.StatusSuccess ||
			got[0].Description != "applied in 12s" || got[0].SHA != sha || got[0].TargetURL != "http://127.0.0.1/t/1" || got[0].UpdatedAt.IsZero() ||
			got[1].Context != "vulnzero/twin/rollback" || got[1].State != vulnzero.StatusPending {
			t.Fatalf("statuses = %+v", got)
		}
		if got, err := f.Statuses(ctx, other); err != nil || len(got) != 1 || got[0].State != vulnzero.StatusFailure {
			t.Errorf("statuses of the other commit = %+v, %v", got, err)
		}
		if got, err := f.Statuses(ctx, strings.Repeat("0", 40)); err != nil || len(got) != 0 {
			t.Errorf("statuses of an unknown commit = %+v, %v", got, err)
		}

		longest := strings.Repeat("c", forge.MaxContextLen)
		set(sha, longest, vulnzero.StatusError, "")
		for name, st := range map[string]vulnzero.CommitStatus{
			"context too long": {SHA: sha, Context: longest + "x", State: vulnzero.StatusSuccess},
			"no context":       {SHA: sha, State: vulnzero.StatusSuccess},
			"bad state":        {SHA: sha, Context: "c", State: "green"},
			"bad sha":          {SHA: "main", Context: "c", State: vulnzero.StatusSuccess},
		} {
			if err := f.SetStatus(ctx, st); !errors.Is(err, vulnzero.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
		if got, _ := f.Statuses(ctx, sha); len(got) != 3 {
			t.Errorf("after invalid statuses: %+v", got)
		}
	})

	t.Run("Merge", func(t *testing.T) {
		f, push := newForge(t)
		sha := push(t, forge.Branch("p"), "p")
		pr, err := f.OpenPR(ctx, forge.NewPR{PatchID: "p", Branch: forge.Branch("p"), Base: "main", Title: "Patch p", HeadSHA: sha})
		if err != nil {
			t.Fatal(err)
		}
		merged, err := f.Merge(ctx, pr.Number)
		if err != nil {
			t.Fatal(err)
		}
		if merged.Number != pr.Number || merged.State != vulnzero.PRMerged || len(merged.MergeSHA) != 40 || merged.MergeSHA == sha || merged.HeadSHA != sha {
			t.Fatalf("merged = %+v", merged)
		}
		if got, err := f.GetPR(ctx, pr.Number); err != nil || got.State != vulnzero.PRMerged || got.MergeSHA != merged.MergeSHA {
			t.Fatalf("GetPR after merge = %+v, %v", got, err)
		}
		if _, err := f.Merge(ctx, pr.Number); !errors.Is(err, vulnzero.ErrConflict) {
			t.Errorf("second merge: %v, want ErrConflict", err)
		}
		if err := f.Close(ctx, pr.Number); !errors.Is(err, vulnzero.ErrConflict) {
			t.Errorf("closing a merged PR: %v, want ErrConflict", err)
		}
		if _, err := f.Merge(ctx, 999); !errors.Is(err, vulnzero.ErrNotFound) {
			t.Errorf("merging PR 999: %v, want ErrNotFound", err)
		}

		// A second patch merges on top of the first.
		sha2 := push(t, forge.Branch("q"), "q")
		pr2, err := f.OpenPR(ctx, forge.NewPR{PatchID: "q", Branch: forge.Branch("q"), Title: "Patch q", HeadSHA: sha2})
		if err != nil {
			t.Fatal(err)
		}
		merged2, err := f.Merge(ctx, pr2.Number)
		if err != nil {
			t.Fatal(err)
		}
		if merged2.MergeSHA == merged.MergeSHA || merged2.Number == merged.Number {
			t.Errorf("second merge = %+v", merged2)
		}
	})

	t.Run("CloseAndReopen", func(t *testing.T) {
		f, push := newForge(t)
		sha := push(t, forge.Branch("p"), "p")
		pr, err := f.OpenPR(ctx, forge.NewPR{PatchID: "p", Branch: forge.Branch("p"), Title: "Patch p", HeadSHA: sha})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(ctx, pr.Number); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(ctx, pr.Number); err != nil {
			t.Errorf("closing a closed PR: %v, want no error", err)
		}
		if got, _ := f.GetPR(ctx, pr.Number); got.State != vulnzero.PRClosed {
			t.Errorf("state after close = %s", got.State)
		}
		if _, err := f.Merge(ctx, pr.Number); !errors.Is(err, vulnzero.ErrConflict) {
			t.Errorf("merging a closed PR: %v, want ErrConflict", err)
		}
		if err := f.Close(ctx, 999); !errors.Is(err, vulnzero.ErrNotFound) {
			t.Errorf("closing PR 999: %v, want ErrNotFound", err)
		}
		// The branch is proposed again: a new PR, not the closed one.
		sha2 := push(t, forge.Branch("p"), "p")
		again, err := f.OpenPR(ctx, forge.NewPR{PatchID: "p", Branch: forge.Branch("p"), Title: "Patch p again", HeadSHA: sha2})
		if err != nil {
			t.Fatal(err)
		}
		if again.Number == pr.Number || again.State != vulnzero.PROpen {
			t.Errorf("reopen = %+v, want a new open PR", again)
		}
	})

	t.Run("Comments", func(t *testing.T) {
		f, push := newForge(t)
		var prs []vulnzero.PullRequest
		for _, id := range []string{"p", "q"} {
			sha := push(t, forge.Branch(id), id)
			pr, err := f.OpenPR(ctx, forge.NewPR{PatchID: id, Branch: forge.Branch(id), Title: "Patch " + id, HeadSHA: sha})
			if err != nil {
				t.Fatal(err)
			}
			prs = append(prs, pr)
		}
		p, q := prs[0].Number, prs[1].Number
		for _, body := range []string{"Twin passed.", "Rolled back on web-1:\n```\nexit 1\n```"} {
			if err := f.Comment(ctx, p, body); err != nil {
				t.Fatal(err)
			}
		}
		got, err := f.Comments(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != "Twin passed." || got[1] != "Rolled back on web-1:\n```\nexit 1\n```" {
			t.Errorf("comments = %q", got)
		}
		if got, err := f.Comments(ctx, q); err != nil || len(got) != 0 {
			t.Errorf("comments of the other PR = %q, %v", got, err)
		}
		// Comments stay possible after merge (the rollback comment lands then).
		if _, err := f.Merge(ctx, q); err != nil {
			t.Fatal(err)
		}
		if err := f.Comment(ctx, q, "Reverted."); err != nil {
			t.Errorf("comment on a merged PR: %v", err)
		}
		if err := f.Comment(ctx, 999, "x"); !errors.Is(err, vulnzero.ErrNotFound) {
			t.Errorf("comment on PR 999: %v, want ErrNotFound", err)
		}
		if _, err := f.Comments(ctx, 999); !errors.Is(err, vulnzero.ErrNotFound) {
			t.Errorf("comments of PR 999: %v, want ErrNotFound", err)
		}
		if err := f.Comment(ctx, p, "  "); !errors.Is(err, vulnzero.ErrInvalid) {
			t.Errorf("empty comment: %v, want ErrInvalid", err)
		}
	})

	t.Run("ListFilters", func(t *testing.T) {
		f, push := newForge(t)
		num := map[string]int{}
		for _, id := range []string{"a", "b", "c", "d"} {
			sha := push(t, forge.Branch(id), id)
			pr, err := f.OpenPR(ctx, forge.NewPR{PatchID: id, Branch: forge.Branch(id), Title: "Patch " + id, HeadSHA: sha})
			if err != nil {
				t.Fatal(err)
			}
			num[id] = pr.Number
		}
		if _, err := f.Merge(ctx, num["b"]); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(ctx, num["c"]); err != nil {
			t.Fatal(err)
		}
		ids := func(states ...vulnzero.PRState) string {
			t.Helper()
			prs, err := f.ListPRs(ctx, states...)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for i, p := range prs {
				if i > 0 && prs[i-1].Number >= p.Number {
					t.Errorf("ListPRs not ordered by number: %+v", prs)
				}
				out = append(out, p.PatchID)
			}
			return strings.Join(out, ",")
		}
		for _, c := range []struct {
			states []vulnzero.PRState
			want   string
		}{
			{nil, "a,b,c,d"},
			{[]vulnzero.PRState{vulnzero.PROpen}, "a,d"},
			{[]vulnzero.PRState{vulnzero.PRMerged}, "b"},
			{[]vulnzero.PRState{vulnzero.PRClosed}, "c"},
			{[]vulnzero.PRState{vulnzero.PRMerged, vulnzero.PRClosed}, "b,c"},
		} {
			if got := ids(c.states...); got != c.want {
				t.Errorf("ListPRs(%v) = %s, want %s", c.states, got, c.want)
			}
		}
	})
}
