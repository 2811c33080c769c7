// Package github is forge.Forge on GitHub and GitHub Enterprise, with
// google/go-github (this is the only package that imports it).
//
// The model: a patch PR is identified by its head branch
// (vulnzero/<patch-id>), so OpenPR first lists the open PRs for that head
// and updates the one it finds; only when there is none does it create one,
// and a create that loses a race to another process ("already exists")
// falls back to the update. PRs are labeled "vulnzero" (plus whatever
// AddLabels adds, e.g. severity:critical), and the PRs VulnZero owns — its
// inventory, what ListPRs returns — are those whose head branch starts with
// forge.BranchPrefix or that carry the label.
//
// Statuses are commit statuses, or check runs when Config.CheckRuns is set
// (check runs need GitHub App auth, as on GitHub). A status context is the
// check run's name; the state maps onto status and conclusion.
//
// Auth is a personal access token or a GitHub App (a JWT signed with the
// App's key buys an installation token, via bradleyfalzon/ghinstallation).
// GitAuth gives go-git the same credentials for pushing over HTTPS
// (user "x-access-token"). Tokens never reach a log or an error.
//
// Rate limits: the transport under go-github turns GitHub's primary limit
// (X-RateLimit-Remaining: 0 until X-RateLimit-Reset) and secondary limit
// (403/429 with Retry-After) into a wait until that time, on an injected
// clock, bounded in length and in retries — never a hot loop, never a
// failure for a wait it is allowed to sit out.
package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v62/github"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
)

// DefaultBaseURL is github.com's API.
const DefaultBaseURL = "https://api.github.com/"

// Label marks the PRs VulnZero opened.
const Label = "vulnzero"

// AppAuth is a GitHub App installation.
type AppAuth struct {
	ID             int64
	InstallationID int64
	// PrivateKey is the App's PEM-encoded RSA key. Secret.
	PrivateKey []byte
}

// Config says which repository to use and how to authenticate.
type Config struct {
	// BaseURL is the REST API root: DefaultBaseURL when empty; for GitHub
	// Enterprise Server https://HOST/api/v3/.
	BaseURL string
	// Owner and Repo name the remediation repository.
	Owner, Repo string
	// Base is the branch PRs merge into when NewPR.Base is empty; the
	// repository's default branch when empty.
	Base string
	// Token is a personal access token (or any token GitHub accepts as
	// "Bearer"). Secret. Exactly one of Token and App is required.
	Token string
	// App authenticates as a GitHub App installation.
	App *AppAuth
	// CheckRuns writes statuses as check runs instead of commit statuses;
	// it needs App.
	CheckRuns bool
	// MergeMethod is "merge" (default) or "squash".
	MergeMethod string

	// HTTPClient's transport carries every request (http.DefaultTransport
	// when nil); its Timeout, if any, bounds each request.
	HTTPClient *http.Client
	// Limits bounds rate-limit waits; see RateLimitPolicy.
	Limits RateLimitPolicy
	// Logger; nil discards.
	Logger *slog.Logger
}

// Validate checks c and fills defaults.
func (c *Config) Validate() error {
	var problems []string
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if !strings.HasSuffix(c.BaseURL, "/") {
		c.BaseURL += "/"
	}
	if !strings.HasPrefix(c.BaseURL, "https://") && !strings.HasPrefix(c.BaseURL, "http://") {
		problems = append(problems, fmt.Sprintf("base url %q is not http(s)", c.BaseURL))
	}
	if c.Owner == "" || c.Repo == "" {
		problems = append(problems, "owner and repo required")
	}
	switch {
	case c.Token == "" && c.App == nil:
		problems = append(problems, "a token or a GitHub App is required")
	case c.Token != "" && c.App != nil:
		problems = append(problems, "a token and a GitHub App are both set; choose one")
	case c.App != nil && (c.App.ID == 0 || c.App.InstallationID == 0 || len(c.App.PrivateKey) == 0):
		problems = append(problems, "GitHub App needs an app id, an installation id and a private key")
	}
	if c.CheckRuns && c.App == nil {
		problems = append(problems, "check runs need GitHub App auth (GitHub refuses them from a token)")
	}
	switch c.MergeMethod {
	case "":
		c.MergeMethod = "merge"
	case "merge", "squash":
	default:
		problems = append(problems, fmt.Sprintf("merge method %q is not merge or squash", c.MergeMethod))
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Limits = c.Limits.withDefaults()
	if len(problems) > 0 {
		return fmt.Errorf("github forge config: %s: %w", strings.Join(problems, "; "), vulnzero.ErrInvalid)
	}
	return nil
}

// Client is a forge.Forge on one GitHub repository.
type Client struct {
	cfg   Config
	gh    *gh.Client
	app   *ghinstallation.Transport // nil with a token
	log   *slog.Logger
	owner string
	repo  string
	mu    sync.Mutex
	base  string // the default base; resolved on first use when not configured
}

var _ forge.Forge = (*Client)(nil)

// New builds a Client. It makes no request.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	inner := http.DefaultTransport
	var timeout time.Duration
	if cfg.HTTPClient != nil {
		if cfg.HTTPClient.Transport != nil {
			inner = cfg.HTTPClient.Transport
		}
		timeout = cfg.HTTPClient.Timeout
	}
	// go-github decides the API root: for a GitHub Enterprise host given
	// without a path it appends api/v3/.
	probe, err := gh.NewClient(nil).WithEnterpriseURLs(cfg.BaseURL, cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("github base url %s: %w", cfg.BaseURL, vulnzero.ErrInvalid)
	}
	apiURL := probe.BaseURL.String()
	limited := &rateLimitTransport{next: inner, policy: cfg.Limits, log: cfg.Logger}
	c := &Client{cfg: cfg, log: cfg.Logger, owner: cfg.Owner, repo: cfg.Repo, base: cfg.Base}
	var rt http.RoundTripper = limited
	if cfg.App != nil {
		itr, err := ghinstallation.New(limited, cfg.App.ID, cfg.App.InstallationID, cfg.App.PrivateKey)
		if err != nil {
			// The key's text is not in the error: ghinstallation reports
			// only that it could not parse it.
			return nil, fmt.Errorf("github app %d: private key: %w", cfg.App.ID, vulnzero.ErrInvalid)
		}
		itr.BaseURL = strings.TrimSuffix(apiURL, "/")
		c.app, rt = itr, itr
	}
	client := gh.NewClient(&http.Client{Transport: rt, Timeout: timeout})
	if cfg.Token != "" {
		client = client.WithAuthToken(cfg.Token)
	}
	if client, err = client.WithEnterpriseURLs(apiURL, apiURL); err != nil {
		return nil, fmt.Errorf("github base url %s: %w", cfg.BaseURL, vulnzero.ErrInvalid)
	}
	client.UserAgent = "vulnzero"
	c.gh = client
	return c, nil
}

// Token returns a token for git over HTTPS: the personal access token, or
// a current installation token (refreshed before it expires).
func (c *Client) Token(ctx context.Context) (string, error) {
	if c.app == nil {
		return c.cfg.Token, nil
	}
	tok, err := c.app.Token(ctx)
	if err != nil {
		return "", fmt.Errorf("github app %d installation %d: token: %w", c.cfg.App.ID, c.cfg.App.InstallationID, c.scrub(err))
	}
	return tok, nil
}

// call runs one API call, turns go-github's errors into VulnZero's error
// kinds (naming op) and, when go-github refused to send a request because
// it remembers a rate limit, waits that out like the transport does.
func (c *Client) call(ctx context.Context, op string, fn func() (*gh.Response, error)) error {
	for attempt := 0; ; attempt++ {
		resp, err := fn()
		if err == nil {
			return nil
		}
		if until, ok := preempted(err, c.cfg.Limits.Now); ok && attempt < c.cfg.Limits.MaxRetries {
			if werr := c.cfg.Limits.waitUntil(ctx, until); werr == nil {
				c.log.Info("github rate limit: waited", "op", op, "until", until)
				continue
			}
		}
		return c.kind(op, resp, err)
	}
}

// preempted reports a rate-limit error go-github made up without asking
// GitHub (it remembered Remaining 0 or a Retry-After), and until when.
func preempted(err error, now func() time.Time) (time.Time, bool) {
	var rl *gh.RateLimitError
	if errors.As(err, &rl) && rl.Response != nil && rl.Response.Header.Get("X-RateLimit-Limit") == "" {
		return rl.Rate.Reset.Time, true
	}
	var ab *gh.AbuseRateLimitError
	if errors.As(err, &ab) && ab.Response != nil && ab.Response.Header.Get("X-RateLimit-Limit") == "" && ab.RetryAfter != nil {
		return now().Add(*ab.RetryAfter), true
	}
	return time.Time{}, false
}

// kind maps an API error to ErrNotFound, ErrConflict, ErrInvalid or
// ErrUnreachable.
func (c *Client) kind(op string, resp *gh.Response, err error) error {
	var kind error
	var rl *gh.RateLimitError
	var ab *gh.AbuseRateLimitError
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case errors.As(err, &rl):
		return fmt.Errorf("%s: github rate limit until %s: %w", op, rl.Rate.Reset.UTC().Format(time.RFC3339), vulnzero.ErrUnreachable)
	case errors.As(err, &ab):
		return fmt.Errorf("%s: github secondary rate limit: %w", op, vulnzero.ErrUnreachable)
	case resp == nil || resp.Response == nil:
		kind = vulnzero.ErrUnreachable
	case resp.StatusCode == http.StatusNotFound:
		kind = vulnzero.ErrNotFound
	case resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusMethodNotAllowed:
		kind = vulnzero.ErrConflict
	case resp.StatusCode == http.StatusUnprocessableEntity || resp.StatusCode == http.StatusBadRequest:
		kind = vulnzero.ErrInvalid
	case resp.StatusCode >= 500:
		kind = vulnzero.ErrUnreachable
	}
	err = c.scrub(err)
	if kind == nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, err, kind)
}

// scrub keeps the token out of an error's text (transport errors may quote
// a request's headers or URL).
func (c *Client) scrub(err error) error {
	if err == nil || c.cfg.Token == "" || !strings.Contains(err.Error(), c.cfg.Token) {
		return err
	}
	return &scrubbed{msg: strings.ReplaceAll(err.Error(), c.cfg.Token, "***"), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }
