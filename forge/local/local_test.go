package local_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/forge/forgetest"
	"vulnzero.dev/vulnzero/forge/local"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/sqlite"
)

const inventory = "hosts:\n  - name: web-1\n    address: 127.0.0.1\n"

// env is a local forge on a real bare repository and a real SQLite store.
type env struct {
	forge *local.Forge
	repo  *gitsource.Repo
	store store.Store
	bare  string
	n     int // pushes, so every push has new content
	mu    sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	bare := filepath.Join(dir, "remediation.git")
	if _, err := gitsource.InitBare(ctx, bare, "main", map[string][]byte{"inventory/hosts.yaml": []byte(inventory)}, "Initial", "Seed", "seed@example.test"); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	repo, err := gitsource.Open(ctx, gitsource.Config{URL: bare, Dir: filepath.Join(dir, "clone"), Author: "VulnZero", Email: "vz@example.test", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vulnzero.db"), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{forge: local.New(repo, st, logger), repo: repo, store: st, bare: bare}
}

func testPatch(id string, n int) vulnzero.Patch {
	p, err := policies.ParsePatch("patch.yaml", id, []byte(fmt.Sprintf(`apiVersion: vulnzero.dev/v1
kind: Patch
id: %s
title: Upgrade libfoo
package: {name: libfoo, manager: apt, fixedVersion: 1.0.1}
targets: {hosts: [web-1]}
generator: {kind: rules}
`, id)))
	if err != nil {
		panic(err)
	}
	p.Scripts = vulnzero.Scripts{
		Apply:    []byte(fmt.Sprintf("#!/bin/sh\napt-get install -y libfoo # push %d\n", n)),
		Verify:   []byte("#!/bin/sh\ndpkg -s libfoo\n"),
		Rollback: []byte("#!/bin/sh\napt-get install -y --allow-downgrades libfoo=1.0.0\n"),
	}
	return p
}

// push commits patch patchID (new content each time) on branch from main.
func (e *env) push(t *testing.T, branch, patchID string) string {
	t.Helper()
	e.mu.Lock()
	e.n++
	n := e.n
	e.mu.Unlock()
	sha, err := e.repo.CommitPatch(context.Background(), branch, "main", testPatch(patchID, n), "Propose "+patchID)
	if err != nil {
		t.Fatal(err)
	}
	return sha
}

func TestConformance(t *testing.T) {
	forgetest.Run(t, func(t *testing.T) (forge.Forge, forgetest.PushBranch) {
		e := newEnv(t)
		return e.forge, e.push
	})
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestMergeIsOneCommitOfThePatchDirectory: merging commits the branch's
// patch directory onto main as one commit, and keeps what main gained since
// the branch was cut.
func TestMergeIsOneCommitOfThePatchDirectory(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	e.forge.WithClock(func() time.Time { return at })

	branch := forge.Branch("libfoo-1.0.1")
	e.push(t, branch, "libfoo-1.0.1")
	head := e.push(t, branch, "libfoo-1.0.1") // two commits on the branch
	// main moves on after the branch was cut.
	if _, err := e.repo.CommitFiles(ctx, gitsource.CommitRequest{Branch: "main", Files: map[string][]byte{
		"inventory/hosts.yaml": []byte(inventory + "  - name: web-2\n    address: 127.0.0.2\n"),
	}, Message: "Add web-2"}); err != nil {
		t.Fatal(err)
	}

	pr, err := e.forge.OpenPR(ctx, forge.NewPR{Branch: branch, Title: "Upgrade libfoo to 1.0.1", Body: "Fixes CVE-2026-10001"})
	if err != nil {
		t.Fatal(err)
	}
	if pr.HeadSHA != head || !pr.CreatedAt.Equal(at) {
		t.Errorf("opened %+v, want head %s", pr, head)
	}
	// The PR is a store record.
	if stored, err := e.store.GetPR(ctx, pr.Number); err != nil || stored.Branch != branch || stored.HeadSHA != head {
		t.Errorf("store has %+v, %v", stored, err)
	}

	merged, err := e.forge.Merge(ctx, pr.Number)
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, e.bare, "rev-parse", "main"); got != merged.MergeSHA {
		t.Fatalf("main at %s, MergeSHA %s", got, merged.MergeSHA)
	}
	if got := git(t, e.bare, "log", "--format=%s", "main"); got != "Merge patch libfoo-1.0.1 (#1)\nAdd web-2\nInitial" {
		t.Errorf("main log:\n%s", got)
	}
	if got := git(t, e.bare, "log", "-1", "--format=%B", "main"); got != "Merge patch libfoo-1.0.1 (#1)\n\nUpgrade libfoo to 1.0.1" {
		t.Errorf("merge message:\n%s", got)
	}
	if git(t, e.bare, "rev-parse", "main:patches/libfoo-1.0.1") != git(t, e.bare, "rev-parse", branch+":patches/libfoo-1.0.1") {
		t.Error("main's patch directory differs from the branch's")
	}
	if !strings.Contains(git(t, e.bare, "show", "main:inventory/hosts.yaml"), "web-2") {
		t.Error("merge undid a change main made after the branch was cut")
	}
	st, err := e.repo.State(ctx, merged.MergeSHA)
	if err != nil {
		t.Fatal(err)
	}
	if dp, ok := st.Patch("libfoo-1.0.1"); !ok || !strings.Contains(string(dp.Patch.Scripts.Apply), "push 2") {
		t.Errorf("desired state after merge: %+v", st.Patches)
	}
	if out, err := exec.Command("git", "-C", e.bare, "fsck", "--full").CombinedOutput(); err != nil {
		t.Errorf("git fsck: %v\n%s", err, out)
	}
}

// TestOpenPRSeesPushesFromAnotherClone: the forge fetches, so a branch pushed
// by another process (the proposer, a person) is found at its real head.
func TestOpenPRSeesPushesFromAnotherClone(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	other, err := gitsource.Open(ctx, gitsource.Config{URL: e.bare, Dir: filepath.Join(t.TempDir(), "other")})
	if err != nil {
		t.Fatal(err)
	}
	sha, err := other.CommitPatch(ctx, forge.Branch("p"), "main", testPatch("p", 1), "Propose p")
	if err != nil {
		t.Fatal(err)
	}
	pr, err := e.forge.OpenPR(ctx, forge.NewPR{Branch: forge.Branch("p"), Title: "Patch p"})
	if err != nil {
		t.Fatal(err)
	}
	if pr.HeadSHA != sha {
		t.Errorf("head %s, pushed %s", pr.HeadSHA, sha)
	}
}

// TestCommentsAreTranscripts documents where comments live.
func TestCommentsAreTranscripts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	sha := e.push(t, forge.Branch("p"), "p")
	pr, err := e.forge.OpenPR(ctx, forge.NewPR{Branch: forge.Branch("p"), Title: "Patch p", HeadSHA: sha})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.forge.Comment(ctx, pr.Number, "Twin passed."); err != nil {
		t.Fatal(err)
	}
	tr, err := e.store.GetTranscript(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Kind != local.CommentKind || tr.Ref != "pr/1" || tr.Body != "Twin passed." {
		t.Errorf("transcript = %+v", tr)
	}
}
