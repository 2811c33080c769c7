package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/server"
	"vulnzero.dev/vulnzero/store/sqlite"
)

func newServer(t *testing.T) (*httptest.Server, *sqlite.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vz.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "vulnzero_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	srv, err := server.New(server.Config{Store: st, Gatherer: reg, Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, st
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	ts, st := newServer(t)
	ctx := context.Background()
	seq := func(yield func(vulnzero.Finding, error) bool) {
		yield(vulnzero.Finding{Host: "web-1", Package: "libfoo", CVE: "CVE-2026-1", Installed: "1.0", Fixed: "1.1", Severity: vulnzero.SeverityHigh}, nil)
	}
	if _, err := st.ImportFindings(ctx, vulnzero.Import{Source: "t", Scanner: "csv"}, seq); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreatePR(ctx, vulnzero.PullRequest{PatchID: "apt-libfoo", Branch: "vulnzero/apt-libfoo", Base: "main", Title: "Upgrade libfoo to <1.1>", HeadSHA: strings.Repeat("a", 40)}); err != nil {
		t.Fatal(err)
	}
	r, err := st.CreateRollout(ctx, vulnzero.Rollout{PatchID: "apt-libfoo", Revision: "abc", Kind: vulnzero.RolloutApply, State: vulnzero.RolloutProgressing,
		Stages: []vulnzero.Stage{{Name: "1", Hosts: []string{"web-1"}}}, CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutHostStep(ctx, vulnzero.HostStep{RolloutID: r.ID, Host: "web-1", Phase: vulnzero.PhaseApply, State: vulnzero.StepSucceeded, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	code, body := get(t, ts.URL+"/healthz")
	if code != 200 || !strings.Contains(body, `"ok"`) || !strings.Contains(body, "v-test") {
		t.Errorf("healthz %d %s", code, body)
	}
	code, body = get(t, ts.URL+"/metrics")
	if code != 200 || !strings.Contains(body, "vulnzero_test_total 1") {
		t.Errorf("metrics %d %s", code, body)
	}
	code, body = get(t, ts.URL+"/api/v1/findings?host=web-1")
	var fs []vulnzero.Finding
	if err := json.Unmarshal([]byte(body), &fs); code != 200 || err != nil || len(fs) != 1 || fs[0].Severity != vulnzero.SeverityHigh {
		t.Errorf("findings %d %v %s", code, err, body)
	}
	code, body = get(t, ts.URL+"/api/v1/findings?host=db-1")
	if code != 200 || strings.TrimSpace(body) != "null" && strings.TrimSpace(body) != "[]" {
		t.Errorf("findings of another host %d %s", code, body)
	}
	code, body = get(t, ts.URL+"/api/v1/rollouts/"+itoa(r.ID))
	if code != 200 || !strings.Contains(body, `"steps"`) || !strings.Contains(body, `"web-1"`) {
		t.Errorf("rollout %d %s", code, body)
	}
	if code, _ = get(t, ts.URL+"/api/v1/rollouts/999"); code != 404 {
		t.Errorf("missing rollout: %d", code)
	}
	if code, _ = get(t, ts.URL+"/api/v1/rollouts/x"); code != 400 {
		t.Errorf("bad rollout id: %d", code)
	}
	code, body = get(t, ts.URL+"/")
	if code != 200 || !strings.Contains(body, "Upgrade libfoo to &lt;1.1&gt;") || !strings.Contains(body, "<b>1</b> open") {
		t.Errorf("status page %d (titles must be escaped):\n%s", code, body)
	}
	if code, _ = get(t, ts.URL+"/nope"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

func TestHealthzReportsStoreDown(t *testing.T) {
	ts, st := newServer(t)
	st.Close()
	code, body := get(t, ts.URL+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "unavailable") {
		t.Errorf("healthz with a closed store: %d %s", code, body)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
