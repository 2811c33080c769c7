package github_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge/github"
	"vulnzero.dev/vulnzero/forge/githubtest"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/policies"
)

const (
	testToken = "ghp_TESTtokenVALUE0123456789abcdefghij"
	appID     = 31337
	instID    = 4711
)

// appKey is one RSA key for every test (generating one takes a while).
var appKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func appKeyPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(appKey())})
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is forge/github against the GitHub test server, with a gitsource
// clone that pushes to it over smart HTTP with the client's token.
type env struct {
	srv    *githubtest.Server
	client *github.Client
	repo   *gitsource.Repo

	mu sync.Mutex
	n  int
}

type envOpts struct {
	app       bool // GitHub App auth instead of the token
	checkRuns bool
	files     map[string][]byte
	limits    github.RateLimitPolicy
	now       func() time.Time
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	files := o.files
	if files == nil {
		files = map[string][]byte{"inventory/hosts.yaml": []byte("hosts:\n  - name: web-1\n    address: 127.0.0.1\n")}
	}
	srv := githubtest.New(t, githubtest.Options{
		Files: files, Token: testToken, Now: o.now,
		App: &githubtest.App{ID: appID, InstallationID: instID, PublicKey: &appKey().PublicKey},
	})
	cfg := github.Config{BaseURL: srv.APIURL, Owner: "vulnzero", Repo: "remediation", CheckRuns: o.checkRuns, Limits: o.limits, Logger: testLogger()}
	if o.app {
		cfg.App = &github.AppAuth{ID: appID, InstallationID: instID, PrivateKey: appKeyPEM()}
	} else {
		cfg.Token = testToken
	}
	client, err := github.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := gitsource.Open(context.Background(), gitsource.Config{
		URL: srv.GitURL, Dir: filepath.Join(t.TempDir(), "clone"), Auth: client.GitAuth(),
		Author: "VulnZero", Email: "vz@example.test", Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, client: client, repo: repo}
}

func testPatch(id string, n int) vulnzero.Patch {
	p, err := policies.ParsePatch("patch.yaml", id, fmt.Appendf(nil, `apiVersion: vulnzero.dev/v1
kind: Patch
id: %s
title: Upgrade libfoo
package: {name: libfoo, manager: apt, fixedVersion: 1.0.1}
targets: {hosts: [web-1]}
generator: {kind: rules}
`, id))
	if err != nil {
		panic(err)
	}
	p.Scripts = vulnzero.Scripts{
		Apply:    fmt.Appendf(nil, "#!/bin/sh\napt-get install -y libfoo # push %d\n", n),
		Verify:   []byte("#!/bin/sh\ndpkg -s libfoo\n"),
		Rollback: []byte("#!/bin/sh\napt-get install -y --allow-downgrades libfoo=1.0.0\n"),
	}
	return p
}

// push commits patch patchID (new content every time) on branch, cut from
// main, and pushes it to the test server over smart HTTP.
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
