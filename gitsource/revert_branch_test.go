package gitsource

import (
	"context"
	"errors"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
)

// TestRevertPatchOnBranch: the revert lands on its own branch cut from
// main, main is untouched, a repeat writes nothing, and a revision main no
// longer holds is a conflict.
func TestRevertPatchOnBranch(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	r := openClone(t, bare)
	// Patch b arrives in its own commit, then main moves on.
	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: patchFilesFor("b"), Message: "Merge patch b (#2)"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"docs/x": []byte("x")}, Message: "Docs"}); err != nil {
		t.Fatal(err)
	}
	mainBefore := gitCLI(t, bare, "rev-parse", "main")
	rev := vulnzero.Revision(gitCLI(t, bare, "rev-parse", "main:patches/b"))
	branch := "vulnzero/revert/b/" + rev.Short()

	sha, err := r.RevertPatchOnBranch(ctx, "b", rev, "canary web-1 failed verify", branch)
	if err != nil {
		t.Fatal(err)
	}
	if got := gitCLI(t, bare, "rev-parse", branch); got != sha {
		t.Fatalf("branch at %s, returned %s", got, sha)
	}
	if got := gitCLI(t, bare, "rev-parse", "main"); got != mainBefore {
		t.Errorf("main moved to %s", got)
	}
	if parent := gitCLI(t, bare, "rev-parse", sha+"^"); parent != mainBefore {
		t.Errorf("revert's parent %s, want main's head %s", parent, mainBefore)
	}
	if ls := gitCLI(t, bare, "ls-tree", "--name-only", branch+":patches"); ls != "a" {
		t.Errorf("patches on the revert branch: %s", ls)
	}
	msg := gitCLI(t, bare, "log", "-1", "--format=%B", branch)
	if !strings.HasPrefix(msg, `Revert "Merge patch b (#2)"`) || !strings.Contains(msg, "Reason: canary web-1 failed verify") {
		t.Errorf("message:\n%s", msg)
	}

	again, err := r.RevertPatchOnBranch(ctx, "b", rev, "canary web-1 failed verify", branch)
	if err != nil || again != sha {
		t.Errorf("repeat = %s, %v; want %s", again, err, sha)
	}
	if _, err := r.RevertPatchOnBranch(ctx, "a", vulnzero.Revision(strings.Repeat("1", 40)), "", "vulnzero/revert/a/x"); !errors.Is(err, vulnzero.ErrConflict) {
		t.Errorf("revision main does not hold: %v, want ErrConflict", err)
	}
	if _, err := r.RevertPatchOnBranch(ctx, "b", rev, "", "main"); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("onto main: %v, want ErrInvalid", err)
	}
	fsck(t, bare)
}
