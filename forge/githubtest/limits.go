package githubtest

import (
	"net/http"
	"strconv"
	"time"
)

// rateLimit is the primary limit per hour GitHub gives a token.
const rateLimit = 5000

// rateWindow counts requests in the current hour, for the X-RateLimit-*
// headers on every response.
type rateWindow struct {
	used  int
	reset time.Time
}

// take counts one request at now and returns what is left and when the
// window resets.
func (w *rateWindow) take(now time.Time) (remaining int, reset time.Time) {
	if w.reset.IsZero() || !now.Before(w.reset) {
		w.used = 0
		w.reset = now.Add(time.Hour).Truncate(time.Second)
	}
	if w.used < rateLimit {
		w.used++
	}
	return rateLimit - w.used, w.reset
}

// LimitKind says which of GitHub's rate limits to answer with.
type LimitKind int

const (
	// Primary is the hourly limit: 403, X-RateLimit-Remaining: 0 and
	// X-RateLimit-Reset, "API rate limit exceeded".
	Primary LimitKind = iota
	// Secondary is the abuse limit: 403 (or Status) with Retry-After.
	Secondary
)

// Limit is one injected rate-limit response.
type Limit struct {
	Kind LimitKind
	// Status is 403 when zero; GitHub also answers secondary limits with 429.
	Status int
	// Reset is when a primary limit lifts (X-RateLimit-Reset).
	Reset time.Time
	// RetryAfter is a secondary limit's Retry-After, in whole seconds; none
	// when zero (GitHub then says to wait at least a minute).
	RetryAfter time.Duration
}

// InjectLimit makes the next len(ls) API requests answer with ls, in order.
func (s *Server) InjectLimit(ls ...Limit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = append(s.limits, ls...)
}

func (l Limit) write(w http.ResponseWriter, now time.Time) {
	code := l.Status
	if code == 0 {
		code = http.StatusForbidden
	}
	switch l.Kind {
	case Primary:
		reset := l.Reset
		if reset.IsZero() {
			reset = now.Add(time.Hour)
		}
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Used", strconv.Itoa(rateLimit))
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		writeJSON(w, code, map[string]any{
			"message":           "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
		})
	default:
		if l.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(l.RetryAfter/time.Second)))
		}
		writeJSON(w, code, map[string]any{
			"message":           "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
			"documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
		})
	}
}
