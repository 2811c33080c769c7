package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// hookServer is a webhook receiver that keeps every body it gets.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	status int
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{status: http.StatusOK}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.URL.Path != "/hooks/T0KEN" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.bodies = append(h.bodies, m)
		w.WriteHeader(h.status)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) got() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.bodies...)
}

func TestWebhookPayloads(t *testing.T) {
	srv := newHookServer(t)
	ro := vulnzero.Rollout{ID: 7, PatchID: "openssl-3.0.13", Revision: "0123456789abcdef", Commit: "c0ffee", Kind: vulnzero.RolloutApply,
		Strategy: "canary", State: vulnzero.RolloutRolledBack, Stage: 1, Stages: make([]vulnzero.Stage, 3),
		Reason: "stage 2 (10%): verify failed on web-3: exit status 1", RevertSHA: "feedfacecafe1234"}
	ev := Event{Kind: EventRolledBack, Rollout: ro}
	wantText := "VulnZero: rollout 7 of openssl-3.0.13@0123456789ab failed and was rolled back; revert feedfacecafe; the revision is quarantined. Reason: stage 2 (10%): verify failed on web-3: exit status 1"

	slack, err := NewWebhook(WebhookConfig{URL: srv.URL + "/hooks/T0KEN", Format: FormatSlack})
	if err != nil {
		t.Fatal(err)
	}
	if err := slack.Notify(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	generic, err := NewWebhook(WebhookConfig{URL: srv.URL + "/hooks/T0KEN"})
	if err != nil {
		t.Fatal(err)
	}
	if err := generic.Notify(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	bodies := srv.got()
	if len(bodies) != 2 {
		t.Fatalf("bodies = %v", bodies)
	}
	if len(bodies[0]) != 1 || bodies[0]["text"] != wantText {
		t.Errorf("slack body = %v, want only text %q", bodies[0], wantText)
	}
	g := bodies[1]
	r, _ := g["rollout"].(map[string]any)
	if g["event"] != "rollout.rolled_back" || g["text"] != wantText || r == nil || r["id"] != 7.0 || r["patch_id"] != "openssl-3.0.13" ||
		r["state"] != "rolled_back" || r["stage"] != 2.0 || r["stages"] != 3.0 || r["revert_sha"] != "feedfacecafe1234" || g["at"] == nil {
		t.Errorf("json body = %v", g)
	}

	// A receiver error is an error that does not leak the URL's token.
	srv.mu.Lock()
	srv.status = http.StatusInternalServerError
	srv.mu.Unlock()
	err = generic.Notify(t.Context(), ev)
	if err == nil || !strings.Contains(err.Error(), "500") || strings.Contains(err.Error(), "T0KEN") {
		t.Errorf("error = %v, want the status without the token", err)
	}
	dead, _ := NewWebhook(WebhookConfig{URL: "http://127.0.0.1:1/hooks/T0KEN", Timeout: time.Second})
	if err := dead.Notify(t.Context(), ev); err == nil || strings.Contains(err.Error(), "T0KEN") {
		t.Errorf("unreachable receiver: %v, want an error without the token", err)
	}
	if _, err := NewWebhook(WebhookConfig{URL: "ftp://x/y"}); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("ftp URL: %v", err)
	}
	if _, err := NewWebhook(WebhookConfig{URL: "http://x/y", Format: "xml"}); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("xml format: %v", err)
	}
}

// flakyFinalStore fails the first write that ends a rollout rolled_back,
// as a crash right before it would.
type flakyFinalStore struct {
	store.Store
	failed atomic.Bool
}

func (s *flakyFinalStore) UpdateRollout(ctx context.Context, r vulnzero.Rollout) error {
	if r.State == vulnzero.RolloutRolledBack && s.failed.CompareAndSwap(false, true) {
		return errors.New("database is locked")
	}
	return s.Store.UpdateRollout(ctx, r)
}

// TestNotificationsAreSentOncePerRolloutAndReason: a failing rollout sends
// "failed" then "rolled_back" to a real webhook receiver; when recording the
// end fails and the next reconcile repeats the end, nothing is sent twice.
func TestNotificationsAreSentOncePerRolloutAndReason(t *testing.T) {
	srv := newHookServer(t)
	hook, err := NewWebhook(WebhookConfig{URL: srv.URL + "/hooks/T0KEN"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, 4, testPatch("r1"))
	flaky := &flakyFinalStore{Store: e.store}
	e.configure = func(c *Config) {
		c.Store = flaky
		c.Notifier = Notifiers{hook, e.notify}
	}
	e.r = e.newReconciler()
	e.runner.set("h01", exitOn(vulnzero.PhaseApply, 1))
	if _, err := e.r.RunOnce(t.Context()); err == nil || !strings.Contains(err.Error(), "database is locked") {
		t.Fatalf("first reconcile: %v, want the failed final write", err)
	}
	if o := resumed(t, e.runOnce()); o.State != vulnzero.RolloutRolledBack {
		t.Fatalf("second reconcile: %s", o)
	}
	var events []string
	for _, b := range srv.got() {
		events = append(events, b["event"].(string))
	}
	if strings.Join(events, " ") != "rollout.failed rollout.rolled_back" {
		t.Errorf("webhook events = %v, want failed then rolled_back, once each", events)
	}
	if got := e.notify.kinds(); got != "failed:1 rolled_back:1" {
		t.Errorf("notifier events = %s", got)
	}
	if len(e.revert.calls) != 1 {
		t.Errorf("revert calls = %d, want 1", len(e.revert.calls))
	}
}

func TestRemovedPatchNotifies(t *testing.T) {
	e := newEnv(t, 2, allAtOnce("r1"))
	onlyOutcome(t, e.runOnce())
	e.source.set(func(d *Desired) { d.Patches = nil })
	o := onlyOutcome(t, e.runOnce())
	if o.State != vulnzero.RolloutSucceeded || e.notify.kinds() != "removed:2" {
		t.Errorf("outcome %s, notifications %s", o, e.notify.kinds())
	}
}

func TestRevertModePullRequest(t *testing.T) {
	for _, withPR := range []bool{true, false} {
		name := "without a PR reverter"
		if withPR {
			name = "with a PR reverter"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 3, testPatch("r1"))
			e.policy("  revert: pull-request\n")
			prs := &fakeReverter{}
			if withPR {
				e.configure = func(c *Config) { c.PRReverter = prs }
				e.r = e.newReconciler()
			}
			e.runner.set("h01", exitOn(vulnzero.PhaseApply, 1))
			o := onlyOutcome(t, e.runOnce())
			if o.State != vulnzero.RolloutRolledBack {
				t.Fatalf("outcome = %s", o)
			}
			if len(e.revert.calls) != 0 {
				t.Errorf("pushed a revert though the policy asks for a pull request: %+v", e.revert.calls)
			}
			ro := e.rollout(o.RolloutID)
			if withPR {
				if len(prs.calls) != 1 || ro.RevertSHA != "revert-sha-1" {
					t.Errorf("PR reverter calls %+v, revert %q", prs.calls, ro.RevertSHA)
				}
				return
			}
			if ro.RevertSHA != "" || !strings.Contains(ro.Reason, "revert not written: the policy asks for a revert pull request") {
				t.Errorf("rollout = %+v", ro)
			}
			if q, _ := e.store.ListQuarantined(t.Context()); len(q) != 1 {
				t.Errorf("quarantined = %v, want the revision", q)
			}
		})
	}
}
