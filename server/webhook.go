package server

import (
	"container/list"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
)

// GitHub webhook defaults.
const (
	DefaultWebhookMaxBody    = 5 << 20 // GitHub caps payloads at 25 MB; ours are small
	DefaultWebhookDeliveries = 4096
)

// TwinRunFunc starts a twin rehearsal of PR pr at head (pr is 0 when a
// check run names no PR). It must return quickly — GitHub gives a webhook
// ten seconds — so it queues the run rather than doing it.
type TwinRunFunc func(ctx context.Context, pr int, head string) error

// GitHubWebhookConfig wires POST /webhooks/github.
type GitHubWebhookConfig struct {
	// Secret is the webhook secret; required. Secret: never logged.
	Secret []byte
	// Branch is the desired-state branch: a push to it, or a PR merged into
	// it, means "reconcile now".
	Branch string
	// Repo, "owner/name", ignores events of other repositories; any when
	// empty.
	Repo string
	// AppID ignores check runs of other Apps when set.
	AppID int64
	// Reconcile asks for a reconcile (the reconciler's Trigger: it never
	// blocks). Required.
	Reconcile func()
	// TwinRun queues a twin run; pull_request and check_run events are
	// ignored (204) without one.
	TwinRun TwinRunFunc
	// MaxBody caps the request body (DefaultWebhookMaxBody): larger → 413.
	MaxBody int64
	// Deliveries is how many delivery ids are remembered to drop
	// redeliveries (DefaultWebhookDeliveries).
	Deliveries int
	Logger     *slog.Logger
}

// GitHubWebhook is the handler of POST /webhooks/github. Per delivery:
//   - the body is read up to MaxBody (more → 413) and its X-Hub-Signature-256
//     is checked in constant time before anything else looks at it: a
//     missing or wrong signature is 401 and nothing happens;
//   - a delivery id already handled is 200 and nothing happens again;
//   - push to Branch, and pull_request closed+merged into Branch → Reconcile
//     (202);
//   - pull_request opened/synchronize/reopened from this repository (not
//     a fork: the twin runs the PR's scripts) → TwinRun (202);
//   - check_run rerequested → TwinRun for its head (202);
//   - ping → 200; anything else → 204.
//
// A delivery that failed (500) is forgotten, so GitHub's redelivery of it
// is handled.
type GitHubWebhook struct {
	cfg  GitHubWebhookConfig
	seen *deliveryLRU
}

// NewGitHubWebhook checks cfg and builds the handler.
func NewGitHubWebhook(cfg GitHubWebhookConfig) (*GitHubWebhook, error) {
	var problems []string
	if len(cfg.Secret) == 0 {
		problems = append(problems, "a secret is required")
	}
	if cfg.Branch == "" {
		problems = append(problems, "a branch is required")
	}
	if cfg.Reconcile == nil {
		problems = append(problems, "a reconcile trigger is required")
	}
	if len(problems) > 0 {
		return nil, errors.New("github webhook: " + strings.Join(problems, "; "))
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultWebhookMaxBody
	}
	if cfg.Deliveries <= 0 {
		cfg.Deliveries = DefaultWebhookDeliveries
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &GitHubWebhook{cfg: cfg, seen: newDeliveryLRU(cfg.Deliveries)}, nil
}

// validSignature checks "sha256=<hex>" against the HMAC of body.
func validSignature(secret, body []byte, header string) bool {
	hexSum, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// webhookEvent holds the payload fields any handled event uses.
type webhookEvent struct {
	Action     string `json:"action"`
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	Repository struct {
		FullName string `json:"full_name"`
	} `json:"repository"`
	PullRequest *struct {
		Number int  `json:"number"`
		Merged bool `json:"merged"`
		Head   struct {
			SHA  string `json:"sha"`
			Repo *struct {
				FullName string `json:"full_name"`
			} `json:"repo"`
		} `json:"head"`
		Base struct {
			Ref  string `json:"ref"`
			Repo struct {
				FullName string `json:"full_name"`
			} `json:"repo"`
		} `json:"base"`
	} `json:"pull_request"`
	CheckRun *struct {
		HeadSHA string `json:"head_sha"`
		App     struct {
			ID int64 `json:"id"`
		} `json:"app"`
		PullRequests []struct {
			Number int `json:"number"`
		} `json:"pull_requests"`
	} `json:"check_run"`
}

func (h *GitHubWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.cfg.Logger
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		log.Warn("github webhook: body too large", "limit", h.cfg.MaxBody)
		http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	if !validSignature(h.cfg.Secret, body, r.Header.Get("X-Hub-Signature-256")) {
		log.Warn("github webhook: bad or missing signature", "remote", r.RemoteAddr, "event", r.Header.Get("X-GitHub-Event"))
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	event, delivery := r.Header.Get("X-GitHub-Event"), r.Header.Get("X-GitHub-Delivery")
	log = log.With("event", event, "delivery", delivery)
	if delivery == "" {
		http.Error(w, "X-GitHub-Delivery required", http.StatusBadRequest)
		return
	}
	// Claiming the id before handling makes two concurrent deliveries of
	// it run once; a failure releases it for GitHub's redelivery.
	if !h.seen.claim(delivery) {
		log.Info("github webhook: redelivery ignored")
		w.WriteHeader(http.StatusOK)
		return
	}
	var ev webhookEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		h.seen.release(delivery)
		http.Error(w, "payload is not JSON", http.StatusBadRequest)
		return
	}
	code, err := h.handle(context.WithoutCancel(r.Context()), event, ev, log)
	if err != nil {
		h.seen.release(delivery)
		log.Error("github webhook", "err", err)
		http.Error(w, "handling the event failed", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(code)
}

// handle acts on one verified event and returns the response code.
func (h *GitHubWebhook) handle(ctx context.Context, event string, ev webhookEvent, log *slog.Logger) (int, error) {
	if event == "ping" {
		return http.StatusOK, nil
	}
	if h.cfg.Repo != "" && !strings.EqualFold(ev.Repository.FullName, h.cfg.Repo) {
		log.Info("github webhook: other repository ignored", "repo", ev.Repository.FullName)
		return http.StatusNoContent, nil
	}
	switch event {
	case "push":
		if ev.Ref != "refs/heads/"+h.cfg.Branch || ev.Deleted {
			return http.StatusNoContent, nil
		}
		log.Info("github webhook: push to the desired-state branch; reconciling", "after", ev.After)
		h.cfg.Reconcile()
		return http.StatusAccepted, nil
	case "pull_request":
		pr := ev.PullRequest
		if pr == nil {
			return http.StatusNoContent, nil
		}
		switch ev.Action {
		case "closed":
			if !pr.Merged || pr.Base.Ref != h.cfg.Branch {
				return http.StatusNoContent, nil
			}
			log.Info("github webhook: pr merged; reconciling", "pr", pr.Number)
			h.cfg.Reconcile()
			return http.StatusAccepted, nil
		case "opened", "synchronize", "reopened":
			if h.cfg.TwinRun == nil {
				return http.StatusNoContent, nil
			}
			// A fork's PR brings someone else's scripts: the twin runs
			// only what was pushed to this repository.
			if pr.Head.Repo == nil || !strings.EqualFold(pr.Head.Repo.FullName, pr.Base.Repo.FullName) {
				log.Info("github webhook: pr from a fork; no twin run", "pr", pr.Number)
				return http.StatusNoContent, nil
			}
			log.Info("github webhook: twin run", "pr", pr.Number, "head", pr.Head.SHA, "action", ev.Action)
			return http.StatusAccepted, h.cfg.TwinRun(ctx, pr.Number, pr.Head.SHA)
		}
		return http.StatusNoContent, nil
	case "check_run":
		cr := ev.CheckRun
		if ev.Action != "rerequested" || cr == nil || h.cfg.TwinRun == nil || (h.cfg.AppID != 0 && cr.App.ID != h.cfg.AppID) {
			return http.StatusNoContent, nil
		}
		n := 0
		if len(cr.PullRequests) > 0 {
			n = cr.PullRequests[0].Number
		}
		log.Info("github webhook: check run re-requested; twin run", "pr", n, "head", cr.HeadSHA)
		return http.StatusAccepted, h.cfg.TwinRun(ctx, n, cr.HeadSHA)
	}
	return http.StatusNoContent, nil
}

// deliveryLRU remembers the most recent delivery ids.
type deliveryLRU struct {
	mu    sync.Mutex
	max   int
	order *list.List // front = newest
	index map[string]*list.Element
}

func newDeliveryLRU(n int) *deliveryLRU {
	return &deliveryLRU{max: n, order: list.New(), index: map[string]*list.Element{}}
}

// claim records id and reports whether it was new.
func (l *deliveryLRU) claim(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.index[id]; ok {
		l.order.MoveToFront(e)
		return false
	}
	l.index[id] = l.order.PushFront(id)
	for l.order.Len() > l.max {
		old := l.order.Back()
		l.order.Remove(old)
		delete(l.index, old.Value.(string))
	}
	return true
}

// release forgets id.
func (l *deliveryLRU) release(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.index[id]; ok {
		l.order.Remove(e)
		delete(l.index, id)
	}
}
