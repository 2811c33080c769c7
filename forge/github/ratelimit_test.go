package github_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/forge/github"
	"vulnzero.dev/vulnzero/forge/githubtest"
)

// fakeClock is the injected clock: Sleep advances it and records the wait.
// It starts in 2001, so go-github's own wall-clock rate-limit bookkeeping
// (which remembers resets) always sees them in the past and the client's
// policy is what is under test.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

func (c *fakeClock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func (c *fakeClock) policy() github.RateLimitPolicy {
	return github.RateLimitPolicy{Now: c.Now, Sleep: c.Sleep}
}

// limitedEnv is an env with one PR open, the clock fake, and the request
// count taken after setup.
func limitedEnv(t *testing.T) (*env, *fakeClock, int, int) {
	clock := newFakeClock()
	e := newEnv(t, envOpts{now: clock.Now, limits: clock.policy()})
	sha := e.push(t, forge.Branch("p"), "p")
	pr, err := e.client.OpenPR(context.Background(), forge.NewPR{Branch: forge.Branch("p"), Title: "Patch p", HeadSHA: sha})
	if err != nil {
		t.Fatal(err)
	}
	return e, clock, pr.Number, e.srv.Requests()
}

// TestPrimaryRateLimitWaitsUntilReset: 403 with X-RateLimit-Remaining 0
// becomes one wait until X-RateLimit-Reset (plus a second for skew), then
// the same request succeeds.
func TestPrimaryRateLimitWaitsUntilReset(t *testing.T) {
	e, clock, n, before := limitedEnv(t)
	e.srv.InjectLimit(githubtest.Limit{Kind: githubtest.Primary, Reset: clock.Now().Add(10 * time.Minute)})
	pr, err := e.client.GetPR(context.Background(), n)
	if err != nil || pr.Number != n {
		t.Fatalf("GetPR = %+v, %v", pr, err)
	}
	if got := clock.Sleeps(); len(got) != 1 || got[0] != 10*time.Minute+time.Second {
		t.Errorf("waits = %v, want [10m1s]", got)
	}
	if got := e.srv.Requests() - before; got != 2 {
		t.Errorf("%d requests, want 2 (limited, then retried)", got)
	}
}

// TestSecondaryRateLimitRetryAfter: 429 and 403 with Retry-After wait that
// long; a 403 that only says "secondary rate limit" waits a minute. A POST
// is sent again with its body.
func TestSecondaryRateLimitRetryAfter(t *testing.T) {
	e, clock, n, before := limitedEnv(t)
	e.srv.InjectLimit(
		githubtest.Limit{Kind: githubtest.Secondary, Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second},
		githubtest.Limit{Kind: githubtest.Secondary, RetryAfter: 5 * time.Second},
		githubtest.Limit{Kind: githubtest.Secondary},
	)
	if err := e.client.Comment(context.Background(), n, "Twin passed."); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{31 * time.Second, 6 * time.Second, time.Minute + time.Second}
	if got := clock.Sleeps(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits = %v, want %v", got, want)
	}
	if got := e.srv.Requests() - before; got != 4 {
		t.Errorf("%d requests, want 4", got)
	}
	if cs, err := e.client.Comments(context.Background(), n); err != nil || len(cs) != 1 || cs[0] != "Twin passed." {
		t.Errorf("comments after retried POST = %q, %v", cs, err)
	}
}

// TestRateLimitRetriesAreBounded: a limit that does not lift is retried
// MaxRetries times, then is an error — no hot loop.
func TestRateLimitRetriesAreBounded(t *testing.T) {
	e, clock, n, before := limitedEnv(t)
	for range 20 {
		e.srv.InjectLimit(githubtest.Limit{Kind: githubtest.Secondary, RetryAfter: time.Second})
	}
	_, err := e.client.GetPR(context.Background(), n)
	if !errors.Is(err, vulnzero.ErrUnreachable) {
		t.Fatalf("GetPR under a lasting limit: %v, want ErrUnreachable", err)
	}
	t.Logf("error: %v", err)
	if got := len(clock.Sleeps()); got != github.DefaultMaxRetries {
		t.Errorf("%d waits, want %d", got, github.DefaultMaxRetries)
	}
	if got := e.srv.Requests() - before; got != github.DefaultMaxRetries+1 {
		t.Errorf("%d requests, want %d", got, github.DefaultMaxRetries+1)
	}
}

// TestRateLimitBeyondMaxWaitFailsAtOnce: a reset further away than MaxWait
// is an error right away, without sleeping.
func TestRateLimitBeyondMaxWaitFailsAtOnce(t *testing.T) {
	e, clock, n, before := limitedEnv(t)
	e.srv.InjectLimit(githubtest.Limit{Kind: githubtest.Primary, Reset: clock.Now().Add(2 * time.Hour)})
	_, err := e.client.GetPR(context.Background(), n)
	if !errors.Is(err, vulnzero.ErrUnreachable) {
		t.Fatalf("GetPR: %v, want ErrUnreachable", err)
	}
	if got := clock.Sleeps(); len(got) != 0 {
		t.Errorf("slept %v", got)
	}
	if got := e.srv.Requests() - before; got != 1 {
		t.Errorf("%d requests, want 1", got)
	}
}

// TestExhaustedLimitDelaysNextRequest: a success that leaves nothing of the
// hourly limit makes the next request wait for the reset instead of
// spending a round trip on a certain 403.
func TestExhaustedLimitDelaysNextRequest(t *testing.T) {
	clock := newFakeClock()
	reset := clock.Now().Add(5 * time.Minute)
	var mu sync.Mutex
	var seen []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, clock.Now())
		first := len(seen) == 1
		mu.Unlock()
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		w.Header().Set("X-RateLimit-Remaining", map[bool]string{true: "0", false: "4999"}[first])
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"number": 7, "state": "open", "head": {"ref": "vulnzero/p", "sha": "`+forgetestSHA+`"}, "base": {"ref": "main"}}`)
	}))
	defer srv.Close()
	c, err := github.New(github.Config{BaseURL: srv.URL + "/api/v3/", Owner: "o", Repo: "r", Token: testToken, Limits: clock.policy()})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.GetPR(context.Background(), 7); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 2 || seen[1].Before(reset) {
		t.Errorf("requests at %v, want the second at or after the reset %v", seen, reset)
	}
	if got := clock.Sleeps(); len(got) != 1 || got[0] != 5*time.Minute+time.Second {
		t.Errorf("waits = %v", got)
	}
}

const forgetestSHA = "0123456789abcdef0123456789abcdef01234567"

// handlerTransport serves requests in-process, so a synctest bubble holds
// no goroutine blocked on a socket.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestDefaultClockWaitsOutGoGithubsOwnLimit runs the production defaults
// (time.Now, a real timer) in a synctest bubble, where time is virtual: once
// GitHub says the hour is used up, go-github refuses the next request on
// its own, and the client waits until the reset and sends it then.
func TestDefaultClockWaitsOutGoGithubsOwnLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		reset := start.Add(10 * time.Minute).Truncate(time.Second)
		var seen []time.Duration
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, time.Since(start))
			w.Header().Set("X-RateLimit-Limit", "5000")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
			w.Header().Set("X-RateLimit-Remaining", map[bool]string{true: "0", false: "4999"}[len(seen) == 1])
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"number": 7, "state": "open", "head": {"ref": "vulnzero/p", "sha": "`+forgetestSHA+`"}, "base": {"ref": "main"}}`)
		})
		c, err := github.New(github.Config{BaseURL: "https://ghe.example.test/api/v3/", Owner: "o", Repo: "r", Token: testToken,
			HTTPClient: &http.Client{Transport: handlerTransport{h}}})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := c.GetPR(context.Background(), 7); err != nil {
				t.Fatal(err)
			}
		}
		if len(seen) != 2 || start.Add(seen[1]).Before(reset) {
			t.Errorf("requests at %v, want the second after the reset (%v)", seen, reset.Sub(start))
		}
	})
}
