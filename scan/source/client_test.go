package source

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testClient(sl *sleeper, retries int, timeout time.Duration) *client {
	return &client{
		http: &http.Client{}, source: "test", timeout: timeout, retries: retries,
		minBackoff: time.Second, maxBackoff: 8 * time.Second, maxWait: 15 * time.Minute,
		sleep: sl.sleep, now: sl.now, rand: func(n int64) int64 { return n - 1 }, log: slog.New(slog.DiscardHandler),
	}
}

func get(c *client, ctx context.Context, u string) (string, error) {
	var body string
	err := c.do(ctx, request{method: http.MethodGet, url: u}, func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err
	})
	return body, err
}

// TestClientBackoff: 5xx answers are retried with exponential backoff,
// capped, and the call gives up after Retries.
func TestClientBackoff(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	defer srv.Close()
	sl := &sleeper{}
	c := testClient(sl, 5, time.Second)
	_, err := get(c, t.Context(), srv.URL+"/x")
	if err == nil || !strings.Contains(err.Error(), "gave up after 6 attempts") || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "upstream down") {
		t.Fatalf("err = %v", err)
	}
	if calls.Load() != 6 {
		t.Errorf("calls = %d, want 6", calls.Load())
	}
	// Rand gives the top of each range: 1s, 2s, 4s, 8s, then capped at 8s.
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second}
	if got := sl.got(); !slices.Equal(got, want) {
		t.Errorf("waits = %v, want %v", got, want)
	}
	c.rand = func(int64) int64 { return 0 }
	for i, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		if got := c.backoff(i); got != want {
			t.Errorf("backoff(%d) with no jitter = %v, want %v (half the full wait)", i, got, want)
		}
	}
}

// TestClientFinalErrors: a 4xx other than 429 is not retried; a server
// asking for a wait longer than MaxWait gives up at once.
func TestClientFinalErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bad":
			http.Error(w, `{"error":"invalid filter state"}`, http.StatusBadRequest)
		case "/slowdown":
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	sl := &sleeper{}
	c := testClient(sl, 3, time.Second)
	if _, err := get(c, t.Context(), srv.URL+"/bad"); err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "invalid filter state") {
		t.Errorf("400: %v", err)
	}
	if _, err := get(c, t.Context(), srv.URL+"/slowdown"); err == nil || !strings.Contains(err.Error(), "more than maxWait") {
		t.Errorf("Retry-After 3600: %v", err)
	}
	if len(sl.got()) != 0 {
		t.Errorf("waits = %v, want none", sl.got())
	}
	// Retry-After as an HTTP date, against the injected clock.
	var n atomic.Int32
	dated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", sl.now().Add(42*time.Second).Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer dated.Close()
	if _, err := get(c, t.Context(), dated.URL); err != nil {
		t.Fatal(err)
	}
	if got := sl.got(); !slices.Equal(got, []time.Duration{42 * time.Second}) {
		t.Errorf("waits = %v, want the 42s of the Retry-After date", got)
	}
}

// TestClientTimeout: each attempt has its own timeout, which covers the
// body; a body cut short by it is retried like a timeout.
func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1: // headers, half a body, then nothing
			w.Write([]byte(`{"data":`))
			w.(http.Flusher).Flush()
		case 2: // nothing at all
		default:
			fmt.Fprint(w, `{"data":{}}`)
			return
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	sl := &sleeper{}
	c := testClient(sl, 3, 100*time.Millisecond)
	start := time.Now()
	body, err := get(c, t.Context(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if body != `{"data":{}}` || calls.Load() != 3 || len(sl.got()) != 2 {
		t.Errorf("body %q after %d calls, %d waits; want the third answer after two retries", body, calls.Load(), len(sl.got()))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %v: the per-call timeout did not cut the calls short", d)
	}

	c.retries = 0
	calls.Store(1) // next call is the silent one
	if _, err := get(c, t.Context(), srv.URL); err == nil || !strings.Contains(err.Error(), "within timeout 100ms") {
		t.Errorf("silent server: %v, want a timeout error", err)
	}
}

// TestClientRedacts: a failing call's error names the URL without its
// credentials.
func TestClientRedacts(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close() // connection refused from now on
	sl := &sleeper{}
	c := testClient(sl, 1, time.Second)
	withCreds := strings.Replace(u, "http://", "http://admin:hunter2@", 1) + "/export?access_token=tok-123&page=2"
	_, err := get(c, t.Context(), withCreds)
	if err == nil {
		t.Fatal("call to a closed server succeeded")
	}
	for _, secret := range []string{"hunter2", "tok-123", "admin"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows %q", err, secret)
		}
	}
	if !strings.Contains(err.Error(), "page=2") || !strings.Contains(err.Error(), "REDACTED") {
		t.Errorf("error %q should keep the harmless parts and mark what it removed", err)
	}
	if len(sl.got()) != 1 {
		t.Errorf("waits = %v: connection refused is retried", sl.got())
	}
}
