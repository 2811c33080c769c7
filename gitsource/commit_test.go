package gitsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
)

func TestCommitFilesPushesBranch(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	r := openClone(t, bare)
	mainHead := gitCLI(t, bare, "rev-parse", "main")

	files := patchFilesFor("new-one")
	files["patches/a/apply.sh"] = nil // delete
	files["docs/notes.txt"] = []byte("hello\n")
	sha, err := r.CommitFiles(ctx, CommitRequest{Branch: "vulnzero/new-one", Files: files, Message: "Add new-one\n\nBody line."})
	if err != nil {
		t.Fatal(err)
	}
	if got := gitCLI(t, bare, "rev-parse", "vulnzero/new-one"); got != sha {
		t.Fatalf("remote branch at %s, CommitFiles returned %s", got, sha)
	}
	if got := gitCLI(t, bare, "rev-parse", sha+"^"); got != mainHead {
		t.Errorf("parent %s, want main %s", got, mainHead)
	}
	if got := gitCLI(t, bare, "log", "-1", "--format=%s|%an|%ae", sha); got != "Add new-one|VulnZero Test|vz@example.test" {
		t.Errorf("commit = %q", got)
	}
	tree := gitCLI(t, bare, "ls-tree", "-r", sha)
	if !strings.Contains(tree, "100755 blob") || strings.Contains(tree, "patches/a/apply.sh") || !strings.Contains(tree, "patches/a/verify.sh") {
		t.Errorf("tree:\n%s", tree)
	}
	for _, line := range strings.Split(tree, "\n") {
		if strings.HasSuffix(line, ".sh") && !strings.HasPrefix(line, "100755 ") {
			t.Errorf("script not executable: %s", line)
		}
		if strings.HasSuffix(line, ".txt") && !strings.HasPrefix(line, "100644 ") {
			t.Errorf("text file executable: %s", line)
		}
	}
	if gitCLI(t, bare, "rev-parse", "main") != mainHead {
		t.Error("main moved")
	}
	if h, err := r.Head(ctx, "vulnzero/new-one"); err != nil || h != sha {
		t.Errorf("Head after push = %s, %v", h, err)
	}
	fsck(t, bare)

	// The next commit on the branch builds on it, not on main.
	sha2, err := r.CommitFiles(ctx, CommitRequest{Branch: "vulnzero/new-one", Files: map[string][]byte{"docs/notes.txt": []byte("bye\n")}, Message: "Edit notes"})
	if err != nil {
		t.Fatal(err)
	}
	if got := gitCLI(t, bare, "rev-parse", sha2+"^"); got != sha {
		t.Errorf("second commit's parent %s, want %s", got, sha)
	}
}

func TestCommitFilesNothingToCommit(t *testing.T) {
	ctx := context.Background()
	files := seedFiles("a")
	bare := newRemote(t, files)
	r := openClone(t, bare)
	head := gitCLI(t, bare, "rev-parse", "main")

	sha, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: patchFilesFor("a"), Message: "Same again"})
	if err != nil {
		t.Fatal(err)
	}
	if sha != head || gitCLI(t, bare, "rev-parse", "main") != head || gitCLI(t, bare, "rev-list", "--count", "main") != "1" {
		t.Errorf("no-op commit returned %s, remote main %s (was %s)", sha, gitCLI(t, bare, "rev-parse", "main"), head)
	}
	// A new branch identical to its base is not created.
	sha, err = r.CommitFiles(ctx, CommitRequest{Branch: "vulnzero/a", Files: map[string][]byte{"nothing/here": nil}, Message: "Nothing"})
	if err != nil || sha != head {
		t.Errorf("no-op on a new branch = %s, %v", sha, err)
	}
	if _, err := gitErr(bare, "rev-parse", "--verify", "refs/heads/vulnzero/a"); err == nil {
		t.Error("a branch was pushed for an empty change")
	}
}

func TestCommitFilesRejectsBadInput(t *testing.T) {
	ctx := context.Background()
	r := openClone(t, newRemote(t, seedFiles("a")))
	for _, p := range []string{"../escape", "/abs", "a//b", ".git/config", "x/./y", "dir/"} {
		_, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{p: []byte("x")}, Message: "bad"})
		if !errors.Is(err, vulnzero.ErrInvalid) {
			t.Errorf("path %q: error %v, want ErrInvalid", p, err)
		}
	}
	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"ok": []byte("x")}}); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("empty message: %v", err)
	}
	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "b", Base: "no-such-base", Files: map[string][]byte{"ok": []byte("x")}, Message: "m"}); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("missing base: %v", err)
	}
}

// TestCommitFilesRebuildsWhenRemoteMoved: a clone that has not seen the
// remote's latest commit is refused (non-fast-forward), fetches, and rebuilds
// its change on top, keeping both.
func TestCommitFilesRebuildsWhenRemoteMoved(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	first, stale := openClone(t, bare), openClone(t, bare)

	other, err := first.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"docs/one.txt": []byte("1\n")}, Message: "One"})
	if err != nil {
		t.Fatal(err)
	}
	sha, err := stale.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"docs/two.txt": []byte("2\n")}, Message: "Two"})
	if err != nil {
		t.Fatal(err)
	}
	if got := gitCLI(t, bare, "rev-parse", sha+"^"); got != other {
		t.Errorf("rebuilt commit's parent %s, want the concurrent commit %s", got, other)
	}
	if got := gitCLI(t, bare, "log", "--format=%s", "main"); got != "Two\nOne\nInitial remediation repository" {
		t.Errorf("log:\n%s", got)
	}
	if gitCLI(t, bare, "show", "main:docs/one.txt") != "1" || gitCLI(t, bare, "show", "main:docs/two.txt") != "2" {
		t.Error("a change was lost")
	}
	fsck(t, bare)
}

// TestCommitFilesGivesUpAfterOneRebuild: a remote that moves on every push
// (its hook commits and refuses) gets exactly one rebuild.
func TestCommitFilesGivesUpAfterOneRebuild(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	attempts := filepath.Join(t.TempDir(), "attempts")
	installHook(t, bare, "pre-receive", `#!/bin/sh
echo push >> '`+attempts+`'
# Move main the way a concurrent pusher would, outside the quarantine.
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
export GIT_AUTHOR_NAME=Other GIT_AUTHOR_EMAIL=o@example.test GIT_COMMITTER_NAME=Other GIT_COMMITTER_EMAIL=o@example.test
head=$(git rev-parse refs/heads/main)
c=$(echo "concurrent $(wc -l < '`+attempts+`')" | git commit-tree -p "$head" "$head^{tree}")
git update-ref refs/heads/main "$c" "$head"
echo "main moved, try again" >&2
exit 1
`)
	r := openClone(t, bare)
	_, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"x": []byte("x")}, Message: "Mine"})
	if err == nil {
		t.Fatal("push succeeded against a hook that refuses everything")
	}
	b, _ := os.ReadFile(attempts)
	if n := strings.Count(string(b), "push"); n != 2 {
		t.Errorf("remote saw %d pushes, want 2 (one rebuild)", n)
	}
	if !strings.Contains(err.Error(), "push main to "+bare) {
		t.Errorf("error does not name branch and remote: %v", err)
	}
}

// TestCommitFilesRejectedByHook: the remote refuses; the error says who, what
// and why, and the clone's references are exactly as before.
func TestCommitFilesRejectedByHook(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	installHook(t, bare, "pre-receive", "#!/bin/sh\necho 'policy: main is frozen for the release' >&2\nexit 1\n")
	r := openClone(t, bare)
	before := refs(t, r)
	head := gitCLI(t, bare, "rev-parse", "main")

	_, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: patchFilesFor("b"), Message: "Add b"})
	if err == nil {
		t.Fatal("push succeeded against a refusing pre-receive hook")
	}
	for _, want := range []string{"push main to " + bare, "pre-receive hook declined", "main is frozen"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if after := refs(t, r); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("clone references changed:\nbefore %v\nafter  %v", before, after)
	}
	if h, _ := r.Head(ctx, "main"); h != head {
		t.Errorf("Head(main) = %s after a refused push, want %s", h, head)
	}
	if gitCLI(t, bare, "rev-parse", "main") != head {
		t.Error("remote main moved")
	}
	st, err := r.State(ctx, head)
	if err != nil || len(st.Patches) != 1 {
		t.Errorf("state after refused push: %+v, %v", st.Patches, err)
	}
	fsck(t, bare)
}

func refs(t *testing.T, r *Repo) []string {
	t.Helper()
	it, err := r.repo.References()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	_ = it.ForEach(func(ref *plumbing.Reference) error {
		out = append(out, ref.String())
		return nil
	})
	sort.Strings(out)
	return out
}

func testPatch(id, apply string) vulnzero.Patch {
	p, err := policies.ParsePatch("patch.yaml", id, []byte(patchYAML(id, "Upgrade libfoo")))
	if err != nil {
		panic(err)
	}
	p.Scripts = vulnzero.Scripts{
		Apply:    []byte("#!/bin/sh\n" + apply + "\n"),
		Verify:   []byte("#!/bin/sh\ndpkg -s libfoo\n"),
		Rollback: []byte("#!/bin/sh\napt-get install -y --allow-downgrades libfoo=1.0.0\n"),
	}
	return p
}

func TestCommitPatchReplacesDirectory(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	r := openClone(t, bare)
	p := testPatch("libfoo-1.0.1", "apt-get install -y libfoo=1.0.1")

	sha, err := r.CommitPatch(ctx, "vulnzero/libfoo-1.0.1", "main", p, "Add patch libfoo-1.0.1")
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.State(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := st.Patch(p.ID)
	if !ok || got.Patch.Title != p.Title || string(got.Patch.Scripts.Apply) != string(p.Scripts.Apply) || got.Patch.Package != p.Package {
		t.Fatalf("patch read back = %+v", got.Patch)
	}
	// PatchRevision predicts the revision before anything is committed, and
	// git agrees.
	if rev, err := PatchRevision(p); err != nil || rev != got.Revision {
		t.Errorf("PatchRevision = %s, %v; committed revision %s", rev, err, got.Revision)
	}
	if want := gitCLI(t, bare, "rev-parse", sha+":patches/libfoo-1.0.1"); string(got.Revision) != want {
		t.Errorf("revision %s, git says %s", got.Revision, want)
	}

	// A stray file in the directory disappears on the next CommitPatch.
	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "vulnzero/libfoo-1.0.1", Files: map[string][]byte{
		"patches/libfoo-1.0.1/old-notes.txt": []byte("stale"),
	}, Message: "stray"}); err != nil {
		t.Fatal(err)
	}
	p.Scripts.Apply = []byte("#!/bin/sh\napt-get install -y libfoo=1.0.2\n")
	sha, err = r.CommitPatch(ctx, "vulnzero/libfoo-1.0.1", "main", p, "Update patch libfoo-1.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if ls := gitCLI(t, bare, "ls-tree", "--name-only", sha+":patches/libfoo-1.0.1"); ls != "apply.sh\npatch.yaml\nrollback.sh\nverify.sh" {
		t.Errorf("patch directory:\n%s", ls)
	}
	if _, err := r.CommitPatch(ctx, "vulnzero/x", "main", vulnzero.Patch{ID: "x"}, "bad"); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("invalid patch: %v", err)
	}
}

func TestRevertAddedPatch(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	r := openClone(t, bare)
	p := testPatch("libfoo-1.0.1", "apt-get install -y libfoo=1.0.1")
	added, err := r.CommitPatch(ctx, "main", "", p, "Add patch libfoo-1.0.1 (#3)\n\nMerged by a person.")
	if err != nil {
		t.Fatal(err)
	}
	rev := vulnzero.Revision(gitCLI(t, bare, "rev-parse", "main:patches/libfoo-1.0.1"))
	// Unrelated work lands after it.
	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"patches/a/apply.sh": []byte("#!/bin/sh\necho changed\n")}, Message: "Change a"}); err != nil {
		t.Fatal(err)
	}

	sha, err := r.RevertPatch(ctx, p.ID, rev, "canary web-1 failed verify")
	if err != nil {
		t.Fatal(err)
	}
	if got := gitCLI(t, bare, "log", "--format=%s", "main"); got != "Revert \"Add patch libfoo-1.0.1 (#3)\"\nChange a\nAdd patch libfoo-1.0.1 (#3)\nInitial remediation repository" {
		t.Errorf("git log:\n%s", got)
	}
	wantMsg := "Revert \"Add patch libfoo-1.0.1 (#3)\"\n\nThis reverts commit " + added + ".\n\nReason: canary web-1 failed verify\n\n" +
		"VulnZero-Reverts: libfoo-1.0.1@" + string(rev)
	if got := gitCLI(t, bare, "log", "-1", "--format=%B", "main"); got != wantMsg {
		t.Errorf("message:\n%s\nwant:\n%s", got, wantMsg)
	}
	if gitCLI(t, bare, "rev-parse", "main") != sha {
		t.Error("RevertPatch did not return the new head")
	}
	// git reads the last paragraph as a trailer.
	if got := gitCLI(t, bare, "log", "-1", "--format=%(trailers:key=VulnZero-Reverts,valueonly)", "main"); got != "libfoo-1.0.1@"+string(rev) {
		t.Errorf("trailer = %q", got)
	}
	// FindRevert finds it from another clone, after more work landed; and
	// finds nothing for a revision never reverted.
	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"docs/notes.md": []byte("later work\n")}, Message: "Add notes"}); err != nil {
		t.Fatal(err)
	}
	other := openClone(t, bare)
	if got, err := other.FindRevert(ctx, p.ID, rev); err != nil || got != sha {
		t.Errorf("FindRevert = %q, %v; want %s", got, err, sha)
	}
	if got, err := other.FindRevert(ctx, p.ID, vulnzero.Revision(strings.Repeat("0", 40))); err != nil || got != "" {
		t.Errorf("FindRevert of a revision never reverted = %q, %v", got, err)
	}
	sha = gitCLI(t, bare, "rev-parse", "main")
	st, err := r.State(ctx, sha)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Patch(p.ID); ok {
		t.Error("reverted patch still on main")
	}
	if a, _ := st.Patch("a"); !strings.Contains(string(a.Patch.Scripts.Apply), "changed") {
		t.Error("revert touched another patch")
	}
	// The whole-commit inverse, as git would compute it, touches nothing else.
	if diff := gitCLI(t, bare, "diff", "--stat", added+"^", sha); !strings.Contains(diff, "patches/a/apply.sh") || strings.Contains(diff, "libfoo") {
		t.Errorf("diff from before the patch to the revert:\n%s", diff)
	}
	fsck(t, bare)

	_, err = r.RevertPatch(ctx, p.ID, rev, "again")
	if !errors.Is(err, vulnzero.ErrConflict) {
		t.Fatalf("second revert: %v, want ErrConflict", err)
	}
	if gitCLI(t, bare, "rev-parse", "main") != sha {
		t.Error("second revert wrote something")
	}
}

func TestRevertModifiedPatch(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	r := openClone(t, bare)
	oldRev := vulnzero.Revision(gitCLI(t, bare, "rev-parse", "main:patches/a"))
	oldApply := gitCLI(t, bare, "show", "main:patches/a/apply.sh")

	// A person edits the patch: new script, an extra file.
	wt := worktree(t, bare)
	writeFiles(t, wt, map[string][]byte{
		"patches/a/apply.sh":   []byte("#!/bin/sh\napt-get install -y libfoo=1.0.2\n"),
		"patches/a/extra.conf": []byte("x=1\n"),
	})
	gitCLI(t, wt, "add", "-A")
	gitCLI(t, wt, "commit", "-q", "-m", "Bump a to 1.0.2")
	gitCLI(t, wt, "push", "-q", "origin", "main")
	bump := gitCLI(t, wt, "rev-parse", "HEAD")
	if err := r.Fetch(ctx); err != nil {
		t.Fatal(err)
	}
	newRev := vulnzero.Revision(gitCLI(t, bare, "rev-parse", "main:patches/a"))

	// Reverting the old revision is a conflict: main no longer has it.
	if _, err := r.RevertPatch(ctx, "a", oldRev, "x"); !errors.Is(err, vulnzero.ErrConflict) {
		t.Errorf("revert of a superseded revision: %v, want ErrConflict", err)
	}

	sha, err := r.RevertPatch(ctx, "a", newRev, "verify failed on db-1")
	if err != nil {
		t.Fatal(err)
	}
	if got := gitCLI(t, bare, "rev-parse", "main:patches/a"); got != string(oldRev) {
		t.Errorf("patch a after revert is tree %s, want the original %s", got, oldRev)
	}
	if got := gitCLI(t, bare, "show", "main:patches/a/apply.sh"); got != oldApply {
		t.Errorf("apply.sh after revert:\n%s", got)
	}
	if !strings.Contains(gitCLI(t, bare, "log", "-1", "--format=%B", sha), "This reverts commit "+bump+".") {
		t.Error("revert message does not name the person's commit")
	}
	// git agrees this is the inverse of the person's commit.
	if out := gitCLI(t, bare, "diff", bump+"^", sha); out != "" {
		t.Errorf("revert is not the inverse of %s:\n%s", bump, out)
	}
	fsck(t, bare)
}

func TestRevertPatchInInitialCommit(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a", "b"))
	r := openClone(t, bare)
	rev := vulnzero.Revision(gitCLI(t, bare, "rev-parse", "main:patches/b"))
	if _, err := r.RevertPatch(ctx, "b", rev, ""); err != nil {
		t.Fatal(err)
	}
	if ls := gitCLI(t, bare, "ls-tree", "--name-only", "main:patches"); ls != "a" {
		t.Errorf("patches after revert: %s", ls)
	}
	if msg := gitCLI(t, bare, "log", "-1", "--format=%B", "main"); strings.Contains(msg, "Reason:") || !strings.HasPrefix(msg, `Revert "Initial remediation repository"`) {
		t.Errorf("message:\n%s", msg)
	}
	if _, err := r.RevertPatch(ctx, "../x", rev, ""); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("bad id: %v", err)
	}
}

func TestOpenExistingClone(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	dir := filepath.Join(t.TempDir(), "clone")
	cfg := Config{URL: bare, Dir: dir, Logger: testLogger(t)}
	r1, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"x": []byte("1")}, Message: "x"}); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r2.Head(ctx, "main")
	if err != nil || h != gitCLI(t, bare, "rev-parse", "main") {
		t.Errorf("reopened Head = %s, %v", h, err)
	}
	if _, err := r2.Head(ctx, "nope"); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("Head(nope): %v", err)
	}
	if r2.Branch() != "main" || r2.URL() != bare {
		t.Errorf("Branch %q URL %q", r2.Branch(), r2.URL())
	}

	junk := t.TempDir()
	if err := os.WriteFile(filepath.Join(junk, "file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Config{URL: bare, Dir: junk}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Open into a non-empty directory: %v", err)
	}
	if _, err := Open(ctx, Config{Dir: dir}); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("Open without URL: %v", err)
	}
	if _, err := Open(ctx, Config{URL: filepath.Join(t.TempDir(), "missing.git"), Dir: filepath.Join(t.TempDir(), "c")}); err == nil || !strings.Contains(err.Error(), "fetch ") {
		t.Errorf("Open of a missing remote: %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://x-access-token:ghs_secret@github.com/acme/remediation.git": "https://github.com/acme/remediation.git",
		"https://token@example.com/r.git":                                   "https://example.com/r.git",
		"ssh://git@example.com/acme/r.git":                                  "ssh://git@example.com/acme/r.git",
		"git@github.com:acme/r.git":                                         "git@github.com:acme/r.git",
		"/srv/git/remediation.git":                                          "/srv/git/remediation.git",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrubRemovesCredentials(t *testing.T) {
	r := &Repo{cfg: Config{URL: "https://x-access-token:ghs_s3cret@example.com/acme/r.git"}}
	r.url = RedactURL(r.cfg.URL)
	base := errors.New(`Get "https://x-access-token:ghs_s3cret@example.com/acme/r.git/info/refs": dial tcp: refused (token ghs_s3cret)`)
	err := r.scrub(base)
	if strings.Contains(err.Error(), "ghs_s3cret") || !strings.Contains(err.Error(), "https://example.com/acme/r.git/info/refs") {
		t.Errorf("scrubbed error = %v", err)
	}
	if !errors.Is(err, base) {
		t.Error("scrubbed error does not wrap the original")
	}
}
