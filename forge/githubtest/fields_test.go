package githubtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"vulnzero.dev/vulnzero/forge/githubtest"
)

// realdata finds shared/realdata/github/<sub> by walking up from the
// package directory (shared/ sits beside the module in CI).
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

// missing lists the fields of recorded that ours lacks: every key of every
// object, recursively into objects and into the first element of arrays
// of objects. A null on either side ends the descent there (GitHub sends
// null for an absent user or milestone).
func missing(recorded, ours any, path string) []string {
	rm, ok := recorded.(map[string]any)
	if !ok {
		ra, ok := recorded.([]any)
		oa, ok2 := ours.([]any)
		if ok && ok2 && len(ra) > 0 && len(oa) > 0 {
			return missing(ra[0], oa[0], path+"[0]")
		}
		return nil
	}
	om, ok := ours.(map[string]any)
	if !ok {
		if ours == nil {
			return nil
		}
		return []string{path + " (not an object)"}
	}
	var out []string
	for k, v := range rm {
		ov, ok := om[k]
		if !ok {
			out = append(out, path+"."+k)
			continue
		}
		if v != nil && ov != nil {
			out = append(out, missing(v, ov, path+"."+k)...)
		}
	}
	sort.Strings(out)
	return out
}

// api calls the server as a client would and returns status and JSON.
type api struct {
	t     *testing.T
	base  string
	token string
}

func (a api) do(method, path string, body any) (int, any) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var v any
	if len(data) > 0 {
		if err := json.Unmarshal(data, &v); err != nil {
			a.t.Fatalf("%s %s: response is not JSON: %s", method, path, data)
		}
	}
	return resp.StatusCode, v
}

// hookSink collects webhook deliveries.
type hookSink struct {
	mu     sync.Mutex
	bodies map[string][]map[string]any // event → payloads
}

func (h *hookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var v map[string]any
	_ = json.NewDecoder(r.Body).Decode(&v)
	h.mu.Lock()
	defer h.mu.Unlock()
	ev := r.Header.Get("X-GitHub-Event")
	if a, ok := v["action"].(string); ok {
		ev += "." + a
	}
	h.bodies[ev] = append(h.bodies[ev], v)
}

// TestResponsesCarryRecordedFields drives every REST call forge/github
// makes and checks each response against GitHub's recorded payload for the
// same call; the webhooks the server sent are checked against the recorded
// webhooks too. Every recording is either checked or listed as not served,
// with the reason.
func TestResponsesCarryRecordedFields(t *testing.T) {
	restDir, hookDir := realdata(t, "rest"), realdata(t, "webhooks")
	key := appKey(t)
	sink := &hookSink{bodies: map[string][]map[string]any{}}
	hooks := httptest.NewServer(sink)
	defer hooks.Close()
	s := githubtest.New(t, githubtest.Options{Token: token, App: &githubtest.App{ID: 9, InstallationID: 10, PublicKey: &key.PublicKey},
		WebhookURL: hooks.URL, WebhookSecret: "s"})
	pat := api{t, strings.TrimSuffix(s.APIURL, "/"), token}
	app := api{t, pat.base, installationToken(t, s, key, 9, 10)}
	repo := "/repos/vulnzero/remediation"

	head := pushBranch(t, s, "vulnzero/p", "patches/p/apply.sh", "echo p\n")
	pushBranch(t, s, "vulnzero/q", "patches/q/apply.sh", "echo q\n")

	ours := map[string]any{} // recording → our response
	check := func(rec string, wantCode, code int, v any) {
		t.Helper()
		if code != wantCode {
			t.Fatalf("%s: status %d, want %d: %v", rec, code, wantCode, v)
		}
		ours[rec] = v
	}
	code, v := pat.do("POST", repo+"/pulls", map[string]any{"title": "Patch p", "head": "vulnzero/p", "base": "main", "body": "b"})
	check("pulls.create.201.json", 201, code, v)
	code, v = pat.do("POST", repo+"/pulls", map[string]any{"title": "Patch q", "head": "vulnzero/q", "base": "main", "draft": true})
	check("pulls.create.draft.201.json", 201, code, v)
	code, v = pat.do("POST", repo+"/pulls", map[string]any{"title": "Patch p", "head": "vulnzero/p", "base": "main"})
	check("pulls.create.422.already-exists.json", 422, code, v)
	code, v = pat.do("GET", repo+"/pulls/1/merge", nil)
	check("pulls.merged.404.not-merged.json", 404, code, v)
	code, v = pat.do("GET", repo+"/commits/"+head+"/status", nil)
	check("commits.combined-status.200.pending-empty.json", 200, code, v)
	code, v = pat.do("POST", repo+"/statuses/"+head, map[string]any{"state": "success", "context": "vulnzero/twin", "target_url": "http://x/t/1"})
	check("statuses.create.201.json", 201, code, v)
	code, v = app.do("POST", repo+"/check-runs", map[string]any{"name": "vulnzero/twin", "head_sha": head, "status": "queued"})
	check("check-runs.create.201.json", 201, code, v)
	id := int64(v.(map[string]any)["id"].(float64))
	code, v = app.do("PATCH", fmt.Sprintf("%s/check-runs/%d", repo, id), map[string]any{"name": "vulnzero/twin", "conclusion": "success"})
	check("check-runs.update.200.json", 200, code, v)
	code, v = app.do("GET", repo+"/commits/"+head+"/check-runs", nil)
	check("check-runs.list-for-ref.200.json", 200, code, v)
	code, v = pat.do("GET", repo+"/git/ref/heads/vulnzero/p", nil)
	// GitHub answers these three with the same reference object.
	check("git.refs.get.tag.200.json", 200, code, v)
	ours["git.refs.create.201.json"], ours["git.refs.update.200.json"] = v, v
	code, v = pat.do("PATCH", repo+"/pulls/2", map[string]any{"state": "closed"})
	check("pulls.update.close.200.json", 200, code, v)
	code, v = pat.do("PUT", repo+"/pulls/1/merge", map[string]any{"sha": head})
	check("pulls.merge.200.json", 200, code, v)

	notServed := map[string]string{
		"contents.put.create-file.201.json":   "VulnZero commits through git (smart HTTP), never the contents API",
		"octokit-fixtures_create-file.json":   "the contents API, likewise",
		"octokit-fixtures_errors-422.json":    "checked below against our 422 on an invalid label",
		"octokit-fixtures_git-refs.json":      "checked below against our reference object",
		"octokit-fixtures_create-status.json": "checked below, call by call",
	}
	files, _ := filepath.Glob(filepath.Join(restDir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no recordings in %s", restDir)
	}
	for _, f := range files {
		name := filepath.Base(f)
		got, ok := ours[name]
		if !ok {
			if _, listed := notServed[name]; !listed {
				t.Errorf("recording %s is neither checked nor listed as not served", name)
			}
			continue
		}
		if m := missing(readJSON(t, f), got, ""); len(m) > 0 {
			t.Errorf("%s: our response lacks %s", name, strings.Join(m, ", "))
		}
	}

	// The octokit fixtures are request/response pairs.
	ref := ours["git.refs.get.tag.200.json"]
	_, listStatuses := pat.do("GET", repo+"/commits/"+head+"/statuses", nil)
	_, combined := pat.do("GET", repo+"/commits/"+head+"/status", nil)
	_, created := pat.do("POST", repo+"/statuses/"+head, map[string]any{"state": "failure", "context": "example/1", "description": "d", "target_url": "https://example.com"})
	_, invalid := pat.do("POST", repo+"/issues/1/labels", []string{strings.Repeat("x", 60)})
	for _, fx := range []struct {
		file string
		pick func(method, path string) (any, bool)
	}{
		{"octokit-fixtures_create-status.json", func(method, path string) (any, bool) {
			switch {
			case method == "post":
				return created, true
			case strings.HasSuffix(path, "/statuses"):
				return listStatuses, true
			case strings.HasSuffix(path, "/status"):
				return combined, true
			}
			return nil, false
		}},
		{"octokit-fixtures_git-refs.json", func(method, path string) (any, bool) {
			if method == "delete" {
				return nil, false // 204, no body
			}
			if method == "get" { // a list of references
				return []any{ref}, true
			}
			return ref, true
		}},
		{"octokit-fixtures_errors-422.json", func(string, string) (any, bool) { return invalid, true }},
	} {
		var pairs []struct {
			Method, Path string
			Status       int
			Response     any
		}
		data, err := os.ReadFile(filepath.Join(restDir, fx.file))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &pairs); err != nil {
			t.Fatalf("%s: %v", fx.file, err)
		}
		for _, p := range pairs {
			got, ok := fx.pick(p.Method, p.Path)
			if !ok {
				continue
			}
			if m := missing(p.Response, got, ""); len(m) > 0 {
				t.Errorf("%s %s %s: our response lacks %s", fx.file, p.Method, p.Path, strings.Join(m, ", "))
			}
		}
	}

	// Webhooks: what the server sent for the calls above.
	d := s.Deliveries()
	if len(d) == 0 {
		t.Fatal("no webhooks delivered")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for ev, rec := range map[string]string{
		"pull_request.opened": "pull_request.opened.json",
		"pull_request.closed": "captured_pull_request.closed.merged.json",
		"push":                "captured_push.master.json",
	} {
		got := sink.bodies[ev]
		if len(got) == 0 {
			t.Errorf("no %s webhook sent", ev)
			continue
		}
		want := readJSON(t, filepath.Join(hookDir, rec)).(map[string]any)
		delete(want, "installation") // sent only to GitHub Apps' hooks
		if m := missing(want, any(got[len(got)-1]), ""); len(m) > 0 {
			t.Errorf("%s webhook lacks %s (recorded: %s)", ev, strings.Join(m, ", "), rec)
		}
	}
}

func readJSON(t *testing.T, path string) any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}
