package githubtest_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"

	"vulnzero.dev/vulnzero/forge/githubtest"
)

const token = "ghp_fieldsTESTtoken0123456789"

var keyOnce = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func appKey(t *testing.T) *rsa.PrivateKey {
	k, err := keyOnce()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// installationToken signs an App JWT and exchanges it, as ghinstallation
// does.
func installationToken(t *testing.T, s *githubtest.Server, key *rsa.PrivateKey, appID, instID int64) string {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	jwtStr, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{
		Issuer: strconv.FormatInt(appID, 10), IssuedAt: jwt.NewNumericDate(now.Add(-30 * time.Second)), ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Minute)),
	}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", s.APIURL+"app/installations/"+strconv.FormatInt(instID, 10)+"/access_tokens", nil)
	req.Header.Set("Authorization", "Bearer "+jwtStr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil || out.Token == "" {
		t.Fatalf("token exchange: %s", resp.Status)
	}
	return out.Token
}

// git runs the git CLI with a throwaway identity and no user config.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Person", "-c", "user.email=p@example.test"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func authURL(s *githubtest.Server, tok string) string {
	return strings.Replace(s.GitURL, "http://", "http://x-access-token:"+tok+"@", 1)
}

// pushBranch clones over smart HTTP with the git CLI, commits path on a
// new branch and pushes it; it returns the pushed commit.
func pushBranch(t *testing.T, s *githubtest.Server, branch, path, content string) string {
	t.Helper()
	wt := filepath.Join(t.TempDir(), "wt")
	git(t, ".", "clone", "-q", authURL(s, token), wt)
	git(t, wt, "checkout", "-q", "-b", branch)
	if err := os.MkdirAll(filepath.Dir(filepath.Join(wt, path)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wt, path), []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, wt, "add", "-A")
	git(t, wt, "commit", "-q", "-m", "Add "+path)
	git(t, wt, "push", "-q", "origin", branch)
	return git(t, wt, "rev-parse", "HEAD")
}

// TestGitSmartHTTPAuthAndPushEvents: git reaches the repository only with
// a valid token; a push is followed by a signed push webhook, and pushing
// a PR's branch by pull_request synchronize.
func TestGitSmartHTTPAuthAndPushEvents(t *testing.T) {
	type got struct {
		event, action, sig string
		body               []byte
	}
	var mu sync.Mutex
	var hooks []got
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var v struct {
			Action string `json:"action"`
		}
		_ = json.Unmarshal(b, &v)
		mu.Lock()
		hooks = append(hooks, got{r.Header.Get("X-GitHub-Event"), v.Action, r.Header.Get("X-Hub-Signature-256"), b})
		mu.Unlock()
		if r.Header.Get("X-GitHub-Delivery") == "" {
			t.Error("webhook without X-GitHub-Delivery")
		}
	}))
	defer recv.Close()
	s := githubtest.New(t, githubtest.Options{Token: token, WebhookURL: recv.URL, WebhookSecret: "topsecret"})

	cmd := exec.Command("git", "ls-remote", authURL(s, "wrong-token"))
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_GLOBAL=/dev/null")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("ls-remote with a wrong token succeeded:\n%s", out)
	}

	sha := pushBranch(t, s, "vulnzero/p", "patches/p/apply.sh", "echo 1\n")
	if got := git(t, s.BareDir, "rev-parse", "vulnzero/p"); got != sha {
		t.Fatalf("bare repository has %s, pushed %s", got, sha)
	}
	pat := api{t, strings.TrimSuffix(s.APIURL, "/"), token}
	if code, v := pat.do("POST", "/repos/vulnzero/remediation/pulls", map[string]any{"title": "p", "head": "vulnzero/p", "base": "main"}); code != 201 {
		t.Fatalf("create PR: %d %v", code, v)
	}
	// A second push to the PR's branch.
	wt := filepath.Join(t.TempDir(), "wt2")
	git(t, ".", "clone", "-q", "-b", "vulnzero/p", authURL(s, token), wt)
	if err := os.WriteFile(filepath.Join(wt, "patches/p/apply.sh"), []byte("echo 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, wt, "commit", "-q", "-am", "Second")
	git(t, wt, "push", "-q")
	head := git(t, wt, "rev-parse", "HEAD")
	if code, v := pat.do("GET", "/repos/vulnzero/remediation/pulls/1", nil); code != 200 || v.(map[string]any)["head"].(map[string]any)["sha"] != head {
		t.Errorf("PR head after push = %v", v)
	}

	s.Deliveries() // wait for the queue
	mu.Lock()
	defer mu.Unlock()
	var seq []string
	for _, h := range hooks {
		seq = append(seq, strings.TrimSuffix(h.event+"."+h.action, "."))
		m := hmac.New(sha256.New, []byte("topsecret"))
		m.Write(h.body)
		if h.sig != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("%s webhook: bad signature %q", h.event, h.sig)
		}
	}
	if got := strings.Join(seq, ","); got != "push,pull_request.opened,push,pull_request.synchronize" {
		t.Errorf("webhooks: %s", got)
	}
}

// TestMergeIsARealMergeCommit: merging writes a two-parent commit on the
// base branch of the bare repository; squash one with a single parent; a
// stale head is 409 and a closed PR 405.
func TestMergeIsARealMergeCommit(t *testing.T) {
	s := githubtest.New(t, githubtest.Options{Token: token})
	pat := api{t, strings.TrimSuffix(s.APIURL, "/"), token}
	repo := "/repos/vulnzero/remediation"
	a := pushBranch(t, s, "vulnzero/a", "patches/a/apply.sh", "echo a\n")
	pushBranch(t, s, "vulnzero/b", "patches/b/apply.sh", "echo b\n")
	for _, b := range []string{"a", "b"} {
		if code, v := pat.do("POST", repo+"/pulls", map[string]any{"title": "Patch " + b, "head": "vulnzero/" + b, "base": "main"}); code != 201 {
			t.Fatalf("create: %d %v", code, v)
		}
	}
	if code, _ := pat.do("PUT", repo+"/pulls/1/merge", map[string]any{"sha": strings.Repeat("0", 40)}); code != http.StatusConflict {
		t.Errorf("merge at a stale head: %d, want 409", code)
	}
	code, v := pat.do("PUT", repo+"/pulls/1/merge", map[string]any{"sha": a, "commit_title": "Merge patch a (#1)"})
	if code != 200 {
		t.Fatalf("merge: %d %v", code, v)
	}
	merge := v.(map[string]any)["sha"].(string)
	if got := git(t, s.BareDir, "rev-parse", "main"); got != merge {
		t.Errorf("main at %s, merge %s", got, merge)
	}
	if parents := git(t, s.BareDir, "log", "-1", "--format=%P", "main"); !strings.HasSuffix(parents, " "+a) {
		t.Errorf("merge parents %q, want main's old head and %s", parents, a)
	}
	if subj := git(t, s.BareDir, "log", "-1", "--format=%s", "main"); subj != "Merge patch a (#1)" {
		t.Errorf("merge subject %q", subj)
	}
	code, v = pat.do("PUT", repo+"/pulls/2/merge", map[string]any{"merge_method": "squash"})
	if code != 200 {
		t.Fatalf("squash: %d %v", code, v)
	}
	if parents := git(t, s.BareDir, "log", "-1", "--format=%P", "main"); strings.Contains(parents, " ") {
		t.Errorf("squash has parents %q", parents)
	}
	if ls := git(t, s.BareDir, "ls-tree", "--name-only", "main:patches"); ls != "a\nb" {
		t.Errorf("patches on main: %q", ls)
	}
	if code, _ := pat.do("PUT", repo+"/pulls/2/merge", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("merging a merged PR: %d, want 405", code)
	}
	if out, err := exec.Command("git", "-C", s.BareDir, "fsck", "--full").CombinedOutput(); err != nil {
		t.Errorf("git fsck: %v\n%s", err, out)
	}
}

// TestAPIAuth: no or a wrong token is 401; a JWT from the wrong key buys no
// installation token; a token cannot write check runs, an App can.
func TestAPIAuth(t *testing.T) {
	key := appKey(t)
	s := githubtest.New(t, githubtest.Options{Token: token, App: &githubtest.App{ID: 9, InstallationID: 10, PublicKey: &key.PublicKey}})
	base := strings.TrimSuffix(s.APIURL, "/")
	for _, tok := range []string{"", "wrong"} {
		if code, _ := (api{t, base, tok}).do("GET", "/repos/vulnzero/remediation/pulls", nil); code != http.StatusUnauthorized {
			t.Errorf("token %q: %d, want 401", tok, code)
		}
	}
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	jwtStr, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.RegisteredClaims{Issuer: "9",
		IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}).SignedString(other)
	req, _ := http.NewRequest("POST", s.APIURL+"app/installations/10/access_tokens", nil)
	req.Header.Set("Authorization", "Bearer "+jwtStr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("JWT signed by another key: %v, want 401", resp.StatusCode)
	}
	head := git(t, s.BareDir, "rev-parse", "main")
	body := map[string]any{"name": "c", "head_sha": head}
	if code, _ := (api{t, base, token}).do("POST", "/repos/vulnzero/remediation/check-runs", body); code != http.StatusForbidden {
		t.Errorf("check run with a token: %d, want 403", code)
	}
	if code, v := (api{t, base, installationToken(t, s, key, 9, 10)}).do("POST", "/repos/vulnzero/remediation/check-runs", body); code != http.StatusCreated {
		t.Errorf("check run as the App: %d %v", code, v)
	}
}
