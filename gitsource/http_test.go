package gitsource

import (
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// serveSmartHTTP serves the bare repositories under root with git's own
// http-backend (smart HTTP, push enabled) behind basic auth.
func serveSmartHTTP(t *testing.T, root, user, password string) *httptest.Server {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatalf("git --exec-path: %v", err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		r.Header.Set("Remote-User", u) // http-backend allows push for authenticated users
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSmartHTTPRemote runs the read and write paths against git's smart HTTP
// server with credentials, and checks they never show up in errors.
func TestSmartHTTPRemote(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	bare := filepath.Join(root, "remediation.git")
	if _, err := InitBare(ctx, bare, "main", seedFiles("a"), "Initial", "Seed", "seed@example.test"); err != nil {
		t.Fatal(err)
	}
	gitCLI(t, bare, "config", "http.receivepack", "true")
	srv := serveSmartHTTP(t, root, "vulnzero", "s3cret-token")
	url := srv.URL + "/remediation.git"

	r, err := Open(ctx, Config{URL: url, Dir: filepath.Join(t.TempDir(), "clone"), Auth: &githttp.BasicAuth{Username: "vulnzero", Password: "s3cret-token"}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.State(ctx, "origin/main")
	if err != nil || len(st.Patches) != 1 {
		t.Fatalf("state over http = %+v, %v", st.Patches, err)
	}
	sha, err := r.CommitPatch(ctx, "vulnzero/b", "main", testPatch("b", "apt-get install -y libbar"), "Propose b")
	if err != nil {
		t.Fatal(err)
	}
	if got := gitCLI(t, bare, "rev-parse", "vulnzero/b"); got != sha {
		t.Errorf("pushed over http: remote at %s, want %s", got, sha)
	}

	// Credentials in the URL are used but never shown.
	withSecret := strings.Replace(url, "http://", "http://vulnzero:wrong-s3cret@", 1)
	_, err = Open(ctx, Config{URL: withSecret, Dir: filepath.Join(t.TempDir(), "clone2"), Logger: testLogger(t)})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	t.Logf("wrong password: %v", err)
	if strings.Contains(err.Error(), "wrong-s3cret") || !strings.Contains(err.Error(), url) {
		t.Errorf("error leaks or omits the remote: %v", err)
	}
	r2, err := Open(ctx, Config{URL: strings.Replace(url, "http://", "http://vulnzero:s3cret-token@", 1), Dir: filepath.Join(t.TempDir(), "clone3"), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r2.URL(), "s3cret") {
		t.Errorf("URL() = %s", r2.URL())
	}
}

// TestConcurrentWriters: two clones committing to main at once both land,
// one rebuilt on the other.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	bare := newRemote(t, seedFiles("a"))
	a, b := openClone(t, bare), openClone(t, bare)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, r := range []*Repo{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := []string{"one", "two"}[i]
			_, errs[i] = r.CommitFiles(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"docs/" + name: []byte(name)}, Message: "Add " + name})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := gitCLI(t, bare, "rev-list", "--count", "main"); n != "3" {
		t.Errorf("main has %s commits, want 3", n)
	}
	if ls := gitCLI(t, bare, "ls-tree", "--name-only", "main:docs"); ls != "one\ntwo" {
		t.Errorf("docs on main: %s", ls)
	}
	fsck(t, bare)
}
