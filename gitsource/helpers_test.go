package gitsource

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// patchYAML is a valid patch.yaml for id.
func patchYAML(id, title string) string {
	return fmt.Sprintf(`apiVersion: vulnzero.dev/v1
kind: Patch
id: %s
title: %s
cves: [CVE-2026-10001]
package:
  name: libfoo
  manager: apt
  fixedVersion: 1.0.1
targets:
  hosts: [web-1]
generator:
  kind: rules
`, id, title)
}

const inventoryYAML = `hosts:
  - name: web-1
    address: 127.0.0.1
    port: 2222
    labels: {role: web}
  - name: db-1
    address: 127.0.0.2
    labels: {role: db}
`

const rolloutYAML = `apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: databases
spec:
  selector: {role: db}
  strategy: all-at-once
`

// patchFilesFor is a valid patch directory for id.
func patchFilesFor(id string) map[string][]byte {
	dir := "patches/" + id + "/"
	return map[string][]byte{
		dir + "patch.yaml":  []byte(patchYAML(id, "Upgrade libfoo for "+id)),
		dir + "apply.sh":    []byte("#!/bin/sh\napt-get install -y libfoo # " + id + "\n"),
		dir + "verify.sh":   []byte("#!/bin/sh\ndpkg --compare-versions \"$(dpkg-query -W -f='${Version}' libfoo)\" ge 1.0.1\n"),
		dir + "rollback.sh": []byte("#!/bin/sh\napt-get install -y --allow-downgrades libfoo=1.0.0\n"),
	}
}

// seedFiles is a repository with an inventory, a policy and patches ids.
func seedFiles(ids ...string) map[string][]byte {
	files := map[string][]byte{
		"inventory/hosts.yaml": []byte(inventoryYAML),
		"policies/db.yaml":     []byte(rolloutYAML),
	}
	for _, id := range ids {
		for p, b := range patchFilesFor(id) {
			files[p] = b
		}
	}
	return files
}

// newRemote creates a bare remote seeded with files and returns its path.
func newRemote(t *testing.T, files map[string][]byte) string {
	t.Helper()
	bare := filepath.Join(t.TempDir(), "remote.git")
	if _, err := InitBare(context.Background(), bare, "main", files, "Initial remediation repository", "Seed", "seed@example.test"); err != nil {
		t.Fatal(err)
	}
	return bare
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// openClone opens a fresh clone of bare.
func openClone(t *testing.T, bare string) *Repo {
	t.Helper()
	r, err := Open(context.Background(), Config{
		URL:    bare,
		Dir:    filepath.Join(t.TempDir(), "clone"),
		Author: "VulnZero Test",
		Email:  "vz@example.test",
		Logger: testLogger(t),
		Now:    func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// git runs the real git CLI in dir and returns its trimmed output.
func gitCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitErr(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func gitErr(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Person", "-c", "user.email=person@example.test", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// worktree clones bare with the git CLI, for changes a person would make.
func worktree(t *testing.T, bare string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "wt")
	gitCLI(t, ".", "clone", "-q", bare, dir)
	return dir
}

// writeFiles writes files under dir; *.sh files are made executable.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(full, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func fsck(t *testing.T, bare string) {
	t.Helper()
	if out, err := gitErr(bare, "fsck", "--full", "--no-dangling"); err != nil {
		t.Fatalf("git fsck %s: %v\n%s", bare, err, out)
	}
}

// installHook writes an executable hook script into a bare repository.
func installHook(t *testing.T, bare, name, script string) {
	t.Helper()
	p := filepath.Join(bare, "hooks", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}
