package github

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Rate-limit defaults.
const (
	DefaultMaxWait    = 15 * time.Minute
	DefaultMaxRetries = 3
	// DefaultSecondaryWait is how long to wait on a secondary limit that
	// names no Retry-After: GitHub says "at least one minute".
	DefaultSecondaryWait = time.Minute
)

// RateLimitPolicy bounds how the client waits out GitHub's rate limits.
type RateLimitPolicy struct {
	// MaxWait is the longest single wait; a limit that lifts later is
	// returned as an error (wrapping vulnzero.ErrUnreachable) at once, so
	// a reconcile is not held for an hour. DefaultMaxWait when zero.
	MaxWait time.Duration
	// MaxRetries bounds the waits for one request (DefaultMaxRetries).
	MaxRetries int
	// Now and Sleep are the clock; time.Now and a timer when nil. Tests
	// inject a fake pair so nothing really sleeps.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

func (p RateLimitPolicy) withDefaults() RateLimitPolicy {
	if p.MaxWait <= 0 {
		p.MaxWait = DefaultMaxWait
	}
	if p.MaxRetries <= 0 {
		p.MaxRetries = DefaultMaxRetries
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errTooLong is a wait beyond MaxWait.
type errTooLong struct{ until time.Time }

func (e errTooLong) Error() string {
	return "rate limited until " + e.until.UTC().Format(time.RFC3339) + ", longer than the longest wait allowed"
}

// waitUntil sleeps until t (nothing when t has passed), or fails at once
// when that is longer than MaxWait. A one-second margin covers clock skew
// between GitHub and here, so the retry does not land just before reset.
func (p RateLimitPolicy) waitUntil(ctx context.Context, t time.Time) error {
	d := t.Sub(p.Now())
	if d <= 0 {
		return nil
	}
	d += time.Second
	if d > p.MaxWait {
		return errTooLong{t}
	}
	return p.Sleep(ctx, d)
}

// rateLimitTransport waits out GitHub's rate limits under go-github:
//   - a 403 or 429 with Retry-After (secondary limit) waits that long;
//   - a 403 or 429 with X-RateLimit-Remaining: 0 (primary limit) waits
//     until X-RateLimit-Reset;
//   - a 403/429 saying "secondary rate limit" with neither waits
//     DefaultSecondaryWait;
//
// and then sends the request again, at most MaxRetries times. A success
// that leaves Remaining at 0 makes the next request wait for the reset
// instead of spending a round trip on a certain 403. A wait longer than
// MaxWait, or a request whose body cannot be replayed, returns GitHub's
// response as is, for go-github to turn into its rate-limit error.
type rateLimitTransport struct {
	next   http.RoundTripper
	policy RateLimitPolicy
	log    *slog.Logger

	mu        sync.Mutex
	exhausted time.Time // the primary limit is used up until then
}

func (t *rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	t.mu.Lock()
	until := t.exhausted
	t.mu.Unlock()
	if !until.IsZero() {
		if err := t.policy.waitUntil(ctx, until); err != nil {
			return nil, fmt.Errorf("github: %w", err)
		}
		t.mu.Lock()
		if t.exhausted.Equal(until) {
			t.exhausted = time.Time{}
		}
		t.mu.Unlock()
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && req.Body != nil {
			if req.GetBody == nil {
				return nil, fmt.Errorf("github: %s %s: rate limited and the request body cannot be sent again", req.Method, req.URL.Path)
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			req = req.Clone(ctx)
			req.Body = body
		}
		resp, err := t.next.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		wait, limited := t.limit(resp)
		if !limited {
			return resp, nil
		}
		if attempt >= t.policy.MaxRetries {
			t.log.Warn("github rate limit: giving up", "method", req.Method, "path", req.URL.Path, "attempts", attempt+1)
			return resp, nil
		}
		if d := wait.Sub(t.policy.Now()); d > t.policy.MaxWait {
			t.log.Warn("github rate limit: wait too long", "method", req.Method, "path", req.URL.Path, "until", wait)
			return resp, nil
		}
		t.log.Info("github rate limit: waiting", "method", req.Method, "path", req.URL.Path, "until", wait.UTC(), "status", resp.StatusCode)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err := t.policy.waitUntil(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// limit reads a response's rate-limit headers: whether it is a limited
// response to retry, and until when to wait. A success with nothing left
// records the reset for the next request.
func (t *rateLimitTransport) limit(resp *http.Response) (time.Time, bool) {
	now := t.policy.Now()
	remaining := resp.Header.Get("X-RateLimit-Remaining")
	reset := resp.Header.Get("X-RateLimit-Reset")
	var resetAt time.Time
	if sec, err := strconv.ParseInt(reset, 10, 64); err == nil {
		resetAt = time.Unix(sec, 0)
	}
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		if remaining == "0" && !resetAt.IsZero() {
			t.mu.Lock()
			t.exhausted = resetAt
			t.mu.Unlock()
		}
		return time.Time{}, false
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if sec, err := strconv.Atoi(ra); err == nil && sec >= 0 {
			return now.Add(time.Duration(sec) * time.Second), true
		}
		if at, err := http.ParseTime(ra); err == nil {
			return at, true
		}
	}
	if remaining == "0" && !resetAt.IsZero() {
		return resetAt, true
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return now.Add(DefaultSecondaryWait), true
	}
	// A plain 403 is a permission problem, not a limit: unless GitHub's
	// body says "secondary rate limit" — peek without consuming it.
	if peekSecondary(resp) {
		return now.Add(DefaultSecondaryWait), true
	}
	return time.Time{}, false
}

// peekSecondary reports whether resp's body mentions a secondary rate
// limit, leaving the body readable.
func peekSecondary(resp *http.Response) bool {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), rest), rest}
	return err == nil && bytes.Contains(bytes.ToLower(b), []byte("secondary rate limit"))
}
