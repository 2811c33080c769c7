package gitsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
)

func TestStateReadsRepository(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("zlib-1.3", "apt-libfoo-1.0.1"))
	r := openClone(t, bare)
	head, err := r.Head(ctx, "main")
	if err != nil {
		t.Fatal(err)
	}
	if want := gitCLI(t, bare, "rev-parse", "main"); head != want {
		t.Fatalf("Head = %s, git says %s", head, want)
	}
	st, err := r.State(ctx, head)
	if err != nil {
		t.Fatal(err)
	}
	if st.Commit != head {
		t.Errorf("Commit = %s, want %s", st.Commit, head)
	}
	if want := gitCLI(t, bare, "log", "-1", "--format=%ct", "main"); strconv.FormatInt(st.CommitTime.Unix(), 10) != want {
		t.Errorf("CommitTime = %v (%d), git says %s", st.CommitTime, st.CommitTime.Unix(), want)
	}
	if len(st.Patches) != 2 || st.Patches[0].Patch.ID != "apt-libfoo-1.0.1" || st.Patches[1].Patch.ID != "zlib-1.3" {
		t.Fatalf("patches not sorted by id: %+v", st.Patches)
	}
	for _, dp := range st.Patches {
		want := gitCLI(t, bare, "rev-parse", "main:patches/"+dp.Patch.ID)
		if string(dp.Revision) != want {
			t.Errorf("%s revision = %s, git tree hash is %s", dp.Patch.ID, dp.Revision, want)
		}
		if dp.Commit != head {
			t.Errorf("%s commit = %s", dp.Patch.ID, dp.Commit)
		}
		if !strings.Contains(string(dp.Patch.Scripts.Apply), "# "+dp.Patch.ID) || len(dp.Patch.Scripts.Verify) == 0 || len(dp.Patch.Scripts.Rollback) == 0 {
			t.Errorf("%s scripts not read: %+v", dp.Patch.ID, dp.Patch.Scripts)
		}
	}
	if h, ok := st.Inventory.Host("web-1"); !ok || h.Port != 2222 {
		t.Errorf("inventory = %+v", st.Inventory)
	}
	if string(st.PolicyFiles["policies/db.yaml"]) != rolloutYAML {
		t.Errorf("policy files = %v", st.PolicyFiles)
	}
	if st.Policies.Rollouts[0].Name != "databases" {
		t.Errorf("user rollout policy not first: %+v", st.Policies.Rollouts)
	}
	if dp, ok := st.Patch("zlib-1.3"); !ok || dp.Patch.Title == "" {
		t.Errorf("State.Patch(zlib-1.3) = %+v, %v", dp, ok)
	}
	if _, ok := st.Patch("nope"); ok {
		t.Error("State.Patch(nope) found something")
	}

	// By revision name too.
	if st2, err := r.State(ctx, "origin/main"); err != nil || st2.Commit != head {
		t.Errorf("State(origin/main) = %v, %v", st2.Commit, err)
	}
	if _, err := r.State(ctx, strings.Repeat("ab", 20)); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("State(unknown commit) error = %v, want ErrNotFound", err)
	}
}

func TestStateWithoutInventoryOrPolicies(t *testing.T) {
	ctx := context.Background()
	files := patchFilesFor("only")
	r := openClone(t, newRemote(t, files))
	st, err := r.State(ctx, "origin/main")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Inventory.Hosts) != 0 || len(st.Patches) != 1 || len(st.Policies.Rollouts) == 0 {
		t.Errorf("state = %+v", st)
	}
}

// TestStateErrors commits broken patches the way a person would, with the git
// CLI, and expects every problem reported with its repository path.
func TestStateErrors(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("good"))
	wt := worktree(t, bare)

	broken := patchFilesFor("bad-yaml")
	// Line 3: the id does not match the directory; line 8: unknown manager.
	broken["patches/bad-yaml/patch.yaml"] = []byte(strings.Replace(strings.Replace(patchYAML("bad-yaml", "x"),
		"id: bad-yaml", "id: other-name", 1), "manager: apt", "manager: brew", 1))
	for p, b := range patchFilesFor("no-rollback") {
		if !strings.HasSuffix(p, "rollback.sh") {
			broken[p] = b
		}
	}
	for p, b := range patchFilesFor("not-exec") {
		broken[p] = b
	}
	broken["patches/stray.txt"] = []byte("not a patch\n")
	broken["inventory/hosts.yaml"] = []byte("hosts:\n  - name: web-1\n    adress: 127.0.0.1\n") //nolint:misspell // the typo is the test: an unknown field
	writeFiles(t, wt, broken)
	gitCLI(t, wt, "add", "-A")
	gitCLI(t, wt, "update-index", "--chmod=-x", "patches/not-exec/verify.sh")
	gitCLI(t, wt, "commit", "-q", "-m", "Broken patches")
	gitCLI(t, wt, "push", "-q", "origin", "main")

	r := openClone(t, bare)
	_, err := r.State(ctx, "origin/main")
	if err == nil {
		t.Fatal("State of a broken repository succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		`patches/bad-yaml/patch.yaml:3: id: "other-name" does not match its directory patches/bad-yaml`,
		`patches/bad-yaml/patch.yaml:8: package.manager: "brew"`,
		`patches/no-rollback/rollback.sh: missing`,
		`patches/not-exec/verify.sh: not executable (git mode 100644, want 100755`,
		`patches/stray.txt: not a directory`,
		`inventory/hosts.yaml:3`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not contain %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "patches/good") {
		t.Errorf("the good patch was reported:\n%s", msg)
	}
	if !errors.Is(err, vulnzero.ErrInvalid) {
		t.Error("error does not match ErrInvalid")
	}
	var pe *vulnzero.PositionError
	if !errors.As(err, &pe) {
		t.Error("error holds no *vulnzero.PositionError")
	}
}

// TestRevisionIsTreeHash: a revision changes when any file of the patch
// changes, including only its mode, and not when anything else does.
func TestRevisionIsTreeHash(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a", "b"))
	r := openClone(t, bare)
	revs := func() map[string]vulnzero.Revision {
		t.Helper()
		st, err := r.State(ctx, "origin/main")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]vulnzero.Revision{}
		for _, dp := range st.Patches {
			m[dp.Patch.ID] = dp.Revision
		}
		return m
	}
	v1 := revs()

	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{
		"inventory/hosts.yaml": []byte(inventoryYAML + "  - name: web-2\n    address: 127.0.0.3\n"),
		"README.md":            []byte("# remediation\n"),
	}, Message: "Add web-2"}); err != nil {
		t.Fatal(err)
	}
	if v2 := revs(); v2["a"] != v1["a"] || v2["b"] != v1["b"] {
		t.Fatalf("revisions moved without a patch change: %v → %v", v1, v2)
	}

	if _, err := r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{
		"patches/a/apply.sh": []byte("#!/bin/sh\napt-get install -y libfoo=1.0.1\n"),
	}, Message: "Pin libfoo in a"}); err != nil {
		t.Fatal(err)
	}
	v3 := revs()
	if v3["a"] == v1["a"] || v3["b"] != v1["b"] {
		t.Fatalf("script change: a %s → %s, b %s → %s", v1["a"], v3["a"], v1["b"], v3["b"])
	}
	if want := gitCLI(t, bare, "rev-parse", "main:patches/a"); string(v3["a"]) != want {
		t.Errorf("revision %s, git says %s", v3["a"], want)
	}
}

// TestDirStateAgreesWithGit: the same files in a working directory give the
// same revisions as the committed tree, as computed by go-git and by git.
func TestDirStateAgreesWithGit(t *testing.T) {
	ctx := context.Background()
	files := seedFiles("a", "b")
	files["patches/a/files/pin.pref"] = []byte("Package: libfoo\nPin: version 1.0.1\n")
	files["patches/b/helper.sh"] = []byte("#!/bin/sh\ntrue\n")
	bare := newRemote(t, files)
	r := openClone(t, bare)
	fromGit, err := r.State(ctx, "origin/main")
	if err != nil {
		t.Fatal(err)
	}

	// A working copy checked out by the git CLI, plus noise git does not see
	// in the tree (an empty directory) and files outside the three roots.
	wt := worktree(t, bare)
	if err := os.MkdirAll(filepath.Join(wt, "patches", "a", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wt, "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fromDir, err := DirState(wt)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromDir.Patches) != len(fromGit.Patches) {
		t.Fatalf("DirState has %d patches, State %d", len(fromDir.Patches), len(fromGit.Patches))
	}
	for i := range fromGit.Patches {
		g, d := fromGit.Patches[i], fromDir.Patches[i]
		if g.Revision != d.Revision {
			t.Errorf("%s: State revision %s, DirState %s", g.Patch.ID, g.Revision, d.Revision)
		}
		if string(g.Patch.Scripts.Apply) != string(d.Patch.Scripts.Apply) {
			t.Errorf("%s: scripts differ", g.Patch.ID)
		}
	}
	if fromDir.Commit != "" || len(fromDir.Inventory.Hosts) != 2 || len(fromDir.PolicyFiles) != 1 {
		t.Errorf("DirState = %+v", fromDir)
	}

	// Edit in the working copy; git's own tree hash of the result must match.
	if err := os.WriteFile(filepath.Join(wt, "patches", "a", "verify.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	edited, err := DirState(wt)
	if err != nil {
		t.Fatal(err)
	}
	gitCLI(t, wt, "add", "-A")
	want := gitCLI(t, wt, "rev-parse", gitCLI(t, wt, "write-tree")+":patches/a")
	if got := edited.Patches[0].Revision; string(got) != want || got == fromGit.Patches[0].Revision {
		t.Errorf("edited revision %s, git write-tree says %s (was %s)", got, want, fromGit.Patches[0].Revision)
	}

	// Dropping the executable bit on disk is reported like in git.
	if err := os.Chmod(filepath.Join(wt, "patches", "b", "apply.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = DirState(wt)
	if err == nil || !strings.Contains(err.Error(), "patches/b/apply.sh: not executable") {
		t.Errorf("DirState with a non-executable script: %v", err)
	}
}

func TestPatchFiles(t *testing.T) {
	ctx := context.Background()
	files := seedFiles("a")
	files["patches/a/files/pin.pref"] = []byte("pin\n")
	r := openClone(t, newRemote(t, files))
	got, err := r.PatchFiles(ctx, "origin/main", "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || string(got["files/pin.pref"]) != "pin\n" || string(got["apply.sh"]) != string(files["patches/a/apply.sh"]) {
		t.Errorf("PatchFiles = %v", got)
	}
	if _, err := r.PatchFiles(ctx, "origin/main", "zzz"); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("PatchFiles of a missing patch: %v", err)
	}
}
