package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// client makes the API calls of one source: each attempt has its own
// timeout (body included), and timeouts, network errors, 5xx and rate-limit
// answers are retried with exponential backoff and jitter, a bounded number
// of times. The waits go through sleep, which tests replace.
type client struct {
	http       *http.Client
	source     string
	timeout    time.Duration
	retries    int
	minBackoff time.Duration
	maxBackoff time.Duration
	maxWait    time.Duration // longest wait a server may ask for (Retry-After, Qualys ToWait)
	sleep      func(ctx context.Context, d time.Duration) error
	now        func() time.Time
	rand       func(n int64) int64 // [0, n)
	log        *slog.Logger

	mu        sync.Mutex
	notBefore time.Time // a rate limit said: no call before this
}

// request is one API call. The body is bytes so that a retry can send it
// again.
type request struct {
	method string
	url    string
	header http.Header
	body   []byte
}

// what names the call in errors and logs, without credentials.
func (r request) what() string { return r.method + " " + RedactURL(r.url) }

// statusError is a non-2xx answer that was not retried (or ran out of
// retries).
type statusError struct {
	Code int
	Body string // the start of the body, for the API's own explanation
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// httpStatus reports the status code of an error from client.do, or 0.
func httpStatus(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// retryableError marks an error from a response handler (such as a body cut
// short) as worth another attempt.
type retryableError struct{ err error }

func (e retryableError) Error() string { return e.err.Error() }
func (e retryableError) Unwrap() error { return e.err }

// do sends req and hands a 2xx response to handle, which must finish with
// the body inside the attempt's timeout (it typically copies it to a spool
// file). handle may be called more than once: once per attempt.
func (c *client) do(ctx context.Context, req request, handle func(*http.Response) error) error {
	var lastErr error
	for attempt := 0; ; attempt++ {
		if err := c.waitRateLimit(ctx); err != nil {
			return fmt.Errorf("%s: %w", req.what(), err)
		}
		wait, err := c.attempt(ctx, req, handle)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", req.what(), ctx.Err())
		}
		if wait < 0 { // not retryable
			return fmt.Errorf("%s: %w", req.what(), err)
		}
		lastErr = err
		if attempt >= c.retries {
			return fmt.Errorf("%s: gave up after %d attempts: %w", req.what(), attempt+1, lastErr)
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		if wait > c.maxWait {
			return fmt.Errorf("%s: server asks to wait %s, more than maxWait %s: %w", req.what(), wait, c.maxWait, err)
		}
		c.log.Warn("retrying API call", "source", c.source, "call", req.what(), "attempt", attempt+1, "wait", wait, "err", err)
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", req.what(), err)
		}
	}
}

// attempt makes one call. It returns nil, or the error and how long to
// wait before retrying: 0 for the computed backoff, a positive wait the
// server asked for, or -1 when the error is final.
func (c *client) attempt(ctx context.Context, req request, handle func(*http.Response) error) (time.Duration, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(actx, req.method, req.url, body)
	if err != nil {
		return -1, err
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		err = unwrapURLError(err)
		if ctx.Err() == nil && (actx.Err() != nil || isTemporary(err)) {
			return 0, timeoutNote(err, actx, c.timeout)
		}
		return -1, err
	}
	defer func() {
		// Drain a little so the connection can be reused; never much.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		resp.Body.Close()
	}()
	c.noteRateLimit(resp.Header)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		err := handle(resp)
		if err == nil {
			return 0, nil
		}
		var re retryableError
		if ctx.Err() == nil && (actx.Err() != nil || errors.As(err, &re) || isTemporary(err)) {
			return 0, timeoutNote(err, actx, c.timeout)
		}
		return -1, err
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	se := &statusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(bytes.ToValidUTF8(snippet, []byte("?"))))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return c.serverWait(resp.Header), se
	case resp.StatusCode == http.StatusConflict && resp.Header.Get("X-RateLimit-ToWait-Sec") != "":
		// Qualys answers 409 when the rate or concurrency limit is hit.
		return c.serverWait(resp.Header), se
	case resp.StatusCode >= 500:
		return c.serverWait(resp.Header), se
	}
	return -1, se
}

// serverWait is the wait a response asks for (Retry-After in seconds or as
// an HTTP date, or Qualys' X-RateLimit-ToWait-Sec), or 0 for none.
func (c *client) serverWait(h http.Header) time.Duration {
	if v := h.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			return max(time.Duration(n)*time.Second, time.Millisecond)
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(c.now()), time.Millisecond)
		}
	}
	if v := h.Get("X-RateLimit-ToWait-Sec"); v != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// noteRateLimit reads Qualys' rate-limit headers on any answer: when no
// calls remain in the window, the next call waits for ToWait-Sec.
func (c *client) noteRateLimit(h http.Header) {
	rem, wait := h.Get("X-RateLimit-Remaining"), h.Get("X-RateLimit-ToWait-Sec")
	if rem == "" || wait == "" {
		return
	}
	r, err1 := strconv.Atoi(strings.TrimSpace(rem))
	w, err2 := strconv.Atoi(strings.TrimSpace(wait))
	if err1 != nil || err2 != nil || r > 0 || w <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.now().Add(time.Duration(w) * time.Second); t.After(c.notBefore) {
		c.notBefore = t
	}
}

// waitRateLimit sleeps until a rate limit noted earlier has passed.
func (c *client) waitRateLimit(ctx context.Context) error {
	c.mu.Lock()
	d := c.notBefore.Sub(c.now())
	c.mu.Unlock()
	if d <= 0 {
		return nil
	}
	if d > c.maxWait {
		return fmt.Errorf("rate limit asks to wait %s, more than maxWait %s", d, c.maxWait)
	}
	c.log.Info("waiting for the API rate limit", "source", c.source, "wait", d)
	return c.sleep(ctx, d)
}

// backoff is the wait before retry number attempt+1: exponential from
// minBackoff, capped at maxBackoff, with "equal jitter" (half fixed, half
// random) so that clients retrying together spread out.
func (c *client) backoff(attempt int) time.Duration {
	d := c.minBackoff
	for i := 0; i < attempt && d < c.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.maxBackoff)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + time.Duration(c.rand(int64(half)+1))
}

// unwrapURLError drops net/http's *url.Error wrapper: its message repeats
// the URL unredacted, and the caller names the call itself.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func isTemporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET)
}

func timeoutNote(err error, actx context.Context, timeout time.Duration) error {
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("no complete answer within timeout %s: %w", timeout, err)
	}
	return err
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// randN spreads retries and runs; it is jitter, not a secret.
func randN(n int64) int64 { return rand.Int64N(n) } //nolint:gosec // G404: jitter needs no cryptographic randomness
