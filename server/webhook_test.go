package server_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"vulnzero.dev/vulnzero/server"
)

const secret = "It's a Secret to Everybody"

func sign(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// recorder counts what the handler asked for.
type recorder struct {
	mu         sync.Mutex
	reconciles int
	twins      []string // "pr@head"
	twinErr    error
}

func (r *recorder) reconcile() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reconciles++
}

func (r *recorder) twin(_ context.Context, pr int, head string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.twinErr != nil {
		return r.twinErr
	}
	r.twins = append(r.twins, fmt.Sprintf("%d@%s", pr, head))
	return nil
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("reconciles=%d twins=%v", r.reconciles, r.twins)
}

func newHook(t *testing.T, mod func(*server.GitHubWebhookConfig)) (*server.GitHubWebhook, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg := server.GitHubWebhookConfig{Secret: []byte(secret), Branch: "master", Reconcile: rec.reconcile, TwinRun: rec.twin}
	if mod != nil {
		mod(&cfg)
	}
	h, err := server.NewGitHubWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, rec
}

func deliver(h http.Handler, event, id string, body []byte, sig string) int {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	if id != "" {
		req.Header.Set("X-GitHub-Delivery", id)
	}
	if sig != "" {
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Code
}

// realdata finds shared/realdata/github by walking up from the package
// directory (the repository's shared/ sits beside the module in CI).
func realdata(t *testing.T, sub string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "shared", "realdata", "github", sub)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		if filepath.Dir(d) == d {
			t.Fatalf("shared/realdata/github/%s not found above %s: the recorded GitHub payloads are required (CI has them beside the module)", sub, dir)
		}
	}
}

// TestGitHubWebhookRecordedPayloads delivers every recorded GitHub webhook,
// signed with the test secret, and checks what the handler did with it.
// A recording missing from the table fails the test, so a new one gets a
// decision.
func TestGitHubWebhookRecordedPayloads(t *testing.T) {
	dir := realdata(t, "webhooks")
	type want struct {
		code      int
		reconcile bool
		twin      string
	}
	table := map[string]want{
		"captured_pull_request.closed.merged.json": {http.StatusAccepted, true, ""},   // merged into master
		"captured_pull_request.from-fork.json":     {http.StatusNoContent, false, ""}, // a fork's scripts never run
		"captured_push.master.json":                {http.StatusAccepted, true, ""},
		"check_run.created.json":                   {http.StatusNoContent, false, ""},
		"check_run.requested_action.json":          {http.StatusNoContent, false, ""},
		"check_run.rerequested.json":               {http.StatusAccepted, false, "0@d6fde92930d4715a2b49857d24b940956b26d2d3"},
		"check_suite.completed.json":               {http.StatusNoContent, false, ""},
		"check_suite.requested.json":               {http.StatusNoContent, false, ""},
		"check_suite.rerequested.json":             {http.StatusNoContent, false, ""},
		"installation.created.json":                {http.StatusNoContent, false, ""},
		"ping.app.json":                            {http.StatusOK, false, ""},
		"pull_request.closed.not-merged.json":      {http.StatusNoContent, false, ""},
		"pull_request.opened.json":                 {http.StatusAccepted, false, "2@ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
		"pull_request.opened.null-body.json":       {http.StatusAccepted, false, "2@ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
		"pull_request.reopened.json":               {http.StatusAccepted, false, "2@ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
		"pull_request.synchronize.json":            {http.StatusAccepted, false, "2@ec26c3e57ca3a959ca5aad62de7213c562f8c821"},
		"push.new-branch.json":                     {http.StatusAccepted, true, ""},
		"push.no-username-committer.json":          {http.StatusAccepted, true, ""},
		"push.tag-deleted.json":                    {http.StatusNoContent, false, ""},
		"status.author-committer-null.json":        {http.StatusNoContent, false, ""},
		"status.json":                              {http.StatusNoContent, false, ""},
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded webhooks in %s: %v", dir, err)
	}
	sort.Strings(files)
	for i, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			w, ok := table[name]
			if !ok {
				t.Fatalf("recording %s is not in the table: decide what the handler should do with it", name)
			}
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			event := strings.TrimPrefix(strings.SplitN(name, ".", 2)[0], "captured_")
			h, rec := newHook(t, nil)
			code := deliver(h, event, fmt.Sprintf("delivery-%d", i), body, sign(secret, body))
			if code != w.code {
				t.Errorf("%s: code %d, want %d (%s)", event, code, w.code, rec)
			}
			if (rec.reconciles == 1) != w.reconcile || rec.reconciles > 1 {
				t.Errorf("%s: %s, want reconcile=%v", event, rec, w.reconcile)
			}
			if got := strings.Join(rec.twins, ","); got != w.twin {
				t.Errorf("%s: twin runs %q, want %q", event, got, w.twin)
			}
		})
	}
	for name := range table {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("table names %s, which is not recorded", name)
		}
	}
}

// TestGitHubWebhookSignature: anything but the right HMAC is 401 and
// nothing happens.
func TestGitHubWebhookSignature(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/master","after":"a21683865c088b5fe1906cf6552d15a285a4986d","repository":{"full_name":"o/r"}}`)
	good := sign(secret, body)
	h, rec := newHook(t, nil)
	for name, sig := range map[string]string{
		"missing":           "",
		"wrong secret":      sign("not the secret", body),
		"sha1 only":         "sha1=" + strings.TrimPrefix(good, "sha256="),
		"not hex":           "sha256=zz" + good[9:],
		"truncated":         good[:len(good)-2],
		"upper-case prefix": "SHA256=" + strings.TrimPrefix(good, "sha256="),
	} {
		if code := deliver(h, "push", "d-"+name, body, sig); code != http.StatusUnauthorized {
			t.Errorf("%s signature: %d, want 401", name, code)
		}
	}
	tampered := bytes.Replace(body, []byte("master"), []byte("main00"), 1)
	if code := deliver(h, "push", "d-tampered", tampered, good); code != http.StatusUnauthorized {
		t.Errorf("tampered body: %d, want 401", code)
	}
	if rec.reconciles != 0 || len(rec.twins) != 0 {
		t.Fatalf("rejected deliveries had effects: %s", rec)
	}
	// A rejected delivery id is not remembered: the genuine one still works.
	if code := deliver(h, "push", "d-missing", body, good); code != http.StatusAccepted || rec.reconciles != 1 {
		t.Errorf("genuine delivery: %d, %s", code, rec)
	}
}

// TestGitHubWebhookDedupe: a redelivery (same X-GitHub-Delivery) is 200
// without effect; a delivery that failed is handled when redelivered.
func TestGitHubWebhookDedupe(t *testing.T) {
	body := []byte(`{"action":"opened","pull_request":{"number":5,"merged":false,"head":{"sha":"abc","repo":{"full_name":"o/r"}},"base":{"ref":"master","repo":{"full_name":"o/r"}}},"repository":{"full_name":"o/r"}}`)
	h, rec := newHook(t, nil)
	for i, want := range []int{http.StatusAccepted, http.StatusOK, http.StatusOK} {
		if code := deliver(h, "pull_request", "same-id", body, sign(secret, body)); code != want {
			t.Errorf("delivery %d: %d, want %d", i+1, code, want)
		}
	}
	if len(rec.twins) != 1 {
		t.Errorf("twin runs %v, want one", rec.twins)
	}
	if code := deliver(h, "pull_request", "", body, sign(secret, body)); code != http.StatusBadRequest {
		t.Errorf("no delivery id: %d, want 400", code)
	}

	rec.twinErr = errors.New("queue full")
	if code := deliver(h, "pull_request", "flaky", body, sign(secret, body)); code != http.StatusInternalServerError {
		t.Errorf("failing twin queue: %d, want 500", code)
	}
	rec.twinErr = nil
	if code := deliver(h, "pull_request", "flaky", body, sign(secret, body)); code != http.StatusAccepted || len(rec.twins) != 2 {
		t.Errorf("redelivery after a failure: %d, %s", code, rec)
	}
}

// TestGitHubWebhookDedupeIsBounded: the memory of delivery ids is an LRU.
func TestGitHubWebhookDedupeIsBounded(t *testing.T) {
	body := []byte(`{"ref":"refs/heads/master","repository":{"full_name":"o/r"}}`)
	h, rec := newHook(t, func(c *server.GitHubWebhookConfig) { c.Deliveries = 2 })
	for _, id := range []string{"a", "b", "a", "c", "b"} {
		deliver(h, "push", id, body, sign(secret, body))
	}
	// a, b handled; a again is a duplicate (and becomes newest); c evicts b;
	// so b is handled again.
	if rec.reconciles != 4 {
		t.Errorf("reconciles = %d, want 4", rec.reconciles)
	}
}

// TestGitHubWebhookBodyCap: a body over MaxBody is 413 and has no effect,
// even when correctly signed.
func TestGitHubWebhookBodyCap(t *testing.T) {
	h, rec := newHook(t, func(c *server.GitHubWebhookConfig) { c.MaxBody = 1024 })
	body := []byte(`{"ref":"refs/heads/master","pad":"` + strings.Repeat("x", 2048) + `","repository":{"full_name":"o/r"}}`)
	if code := deliver(h, "push", "big", body, sign(secret, body)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("big body: %d, want 413", code)
	}
	if rec.reconciles != 0 {
		t.Errorf("big body had effects: %s", rec)
	}
}

// TestGitHubWebhookFilters: other repositories, other Apps' check runs,
// other branches and no twin runner are ignored.
func TestGitHubWebhookFilters(t *testing.T) {
	h, rec := newHook(t, func(c *server.GitHubWebhookConfig) { c.Repo = "vulnzero/remediation"; c.AppID = 42 })
	cases := []struct {
		event, body string
		want        int
	}{
		{"push", `{"ref":"refs/heads/master","repository":{"full_name":"someone/else"}}`, http.StatusNoContent},
		{"push", `{"ref":"refs/heads/master","repository":{"full_name":"VulnZero/Remediation"}}`, http.StatusAccepted},
		{"push", `{"ref":"refs/heads/vulnzero/p","repository":{"full_name":"vulnzero/remediation"}}`, http.StatusNoContent},
		{"push", `{"ref":"refs/heads/master","deleted":true,"repository":{"full_name":"vulnzero/remediation"}}`, http.StatusNoContent},
		{"check_run", `{"action":"rerequested","check_run":{"head_sha":"abc","app":{"id":7}},"repository":{"full_name":"vulnzero/remediation"}}`, http.StatusNoContent},
		{"check_run", `{"action":"rerequested","check_run":{"head_sha":"abc","app":{"id":42},"pull_requests":[{"number":9}]},"repository":{"full_name":"vulnzero/remediation"}}`, http.StatusAccepted},
		{"pull_request", `{"action":"closed","pull_request":{"number":3,"merged":true,"base":{"ref":"release"}},"repository":{"full_name":"vulnzero/remediation"}}`, http.StatusNoContent},
	}
	for i, c := range cases {
		if code := deliver(h, c.event, fmt.Sprint(i), []byte(c.body), sign(secret, []byte(c.body))); code != c.want {
			t.Errorf("case %d (%s): %d, want %d", i, c.event, code, c.want)
		}
	}
	if rec.reconciles != 1 || strings.Join(rec.twins, ",") != "9@abc" {
		t.Errorf("effects: %s", rec)
	}

	noTwin, rec2 := newHook(t, func(c *server.GitHubWebhookConfig) { c.TwinRun = nil })
	body := []byte(`{"action":"opened","pull_request":{"number":5,"head":{"sha":"abc","repo":{"full_name":"o/r"}},"base":{"ref":"master","repo":{"full_name":"o/r"}}},"repository":{"full_name":"o/r"}}`)
	if code := deliver(noTwin, "pull_request", "x", body, sign(secret, body)); code != http.StatusNoContent || len(rec2.twins) != 0 {
		t.Errorf("without a twin runner: %d, %s", code, rec2)
	}
	if _, err := server.NewGitHubWebhook(server.GitHubWebhookConfig{Branch: "main", Reconcile: func() {}}); err == nil {
		t.Error("a webhook without a secret was accepted")
	}
}
