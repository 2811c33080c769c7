package reconciler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"vulnzero.dev/vulnzero"
)

// EventKind is why people are told about a rollout.
type EventKind string

const (
	// EventStageFailed: a stage of an apply rollout failed; its touched
	// hosts are being rolled back.
	EventStageFailed EventKind = "failed"
	// EventRolledBack: a failed rollout's touched hosts are rolled back, the
	// revert is written (Rollout.RevertSHA) and the revision quarantined.
	EventRolledBack EventKind = "rolled_back"
	// EventAborted: an operator aborted the rollout; its touched hosts are
	// rolled back.
	EventAborted EventKind = "aborted"
	// EventRemoved: a patch (or revision) that left main was rolled back
	// everywhere the ledger held it.
	EventRemoved EventKind = "removed"
	// EventRollbackFailed: rollback.sh failed on some hosts; they keep the
	// revision until a later reconcile succeeds.
	EventRollbackFailed EventKind = "rollback_failed"
)

// Event is one notification: what happened to which rollout.
type Event struct {
	Kind    EventKind
	Rollout vulnzero.Rollout
}

// Text is the one-line human summary used by every format.
func (e Event) Text() string {
	ro := e.Rollout
	what := fmt.Sprintf("rollout %d of %s@%s", ro.ID, ro.PatchID, ro.Revision.Short())
	var s string
	switch e.Kind {
	case EventStageFailed:
		s = "VulnZero: " + what + " failed; rolling back the hosts it touched"
	case EventRolledBack:
		s = "VulnZero: " + what + " failed and was rolled back"
		if ro.RevertSHA != "" {
			s += "; revert " + short(ro.RevertSHA)
		}
		s += "; the revision is quarantined"
	case EventAborted:
		s = "VulnZero: " + what + " was aborted by an operator and rolled back"
	case EventRemoved:
		s = "VulnZero: " + ro.PatchID + "@" + ro.Revision.Short() + " left main and was rolled back everywhere (rollout " + strconv.FormatInt(ro.ID, 10) + ")"
	case EventRollbackFailed:
		s = "VulnZero: rolling back " + what + " failed on some hosts; retrying on the next reconcile"
	default:
		s = "VulnZero: " + what + ": " + string(e.Kind)
	}
	if ro.Reason != "" {
		s += ". Reason: " + ro.Reason
	}
	return s
}

// Notifier tells people about a rollout (a PR comment, a webhook). The
// reconciler calls it once per rollout and event kind — it keeps a record
// of every event sent in the store — so implementations need not
// deduplicate. A notifier error is logged; it never fails a rollout.
type Notifier interface {
	Notify(ctx context.Context, e Event) error
}

// Notifiers sends every event to each notifier in turn and joins their
// errors.
type Notifiers []Notifier

// Notify implements Notifier.
func (ns Notifiers) Notify(ctx context.Context, e Event) error {
	var errs []error
	for _, n := range ns {
		if n == nil {
			continue
		}
		if err := n.Notify(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Webhook formats.
const (
	// FormatJSON posts {"event", "text", "rollout": {…}, "at"}.
	FormatJSON = "json"
	// FormatSlack posts {"text": …}: Slack incoming webhooks, and the many
	// chat tools that accept their payload (Mattermost, Rocket.Chat, …).
	FormatSlack = "slack"
)

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// URL receives a POST per event. It often holds a secret token (Slack),
	// so it is never logged: only its host is.
	URL string
	// Format is FormatJSON (the default) or FormatSlack.
	Format string
	// Client sends the request; http.DefaultClient when nil.
	Client *http.Client
	// Timeout bounds each POST (10s when zero).
	Timeout time.Duration
	Logger  *slog.Logger
}

// Webhook posts events as JSON to a URL.
type Webhook struct {
	cfg  WebhookConfig
	host string
	log  *slog.Logger
}

var _ Notifier = (*Webhook)(nil)

// NewWebhook checks cfg and builds a Webhook.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("webhook: url is not an http(s) URL: %w", vulnzero.ErrInvalid)
	}
	switch cfg.Format {
	case "":
		cfg.Format = FormatJSON
	case FormatJSON, FormatSlack:
	default:
		return nil, fmt.Errorf("webhook: format %q is not %s or %s: %w", cfg.Format, FormatJSON, FormatSlack, vulnzero.ErrInvalid)
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhook{cfg: cfg, host: u.Host, log: log}, nil
}

// webhookRollout is the rollout as the JSON format sends it.
type webhookRollout struct {
	ID        int64                 `json:"id"`
	PatchID   string                `json:"patch_id"`
	Revision  vulnzero.Revision     `json:"revision"`
	Commit    string                `json:"commit"`
	Kind      vulnzero.RolloutKind  `json:"kind"`
	Strategy  string                `json:"strategy"`
	State     vulnzero.RolloutState `json:"state"`
	Stage     int                   `json:"stage"`  // 1-based
	Stages    int                   `json:"stages"` // how many
	Reason    string                `json:"reason,omitempty"`
	RevertSHA string                `json:"revert_sha,omitempty"`
}

// Payload is the body the webhook posts for e.
func (w *Webhook) Payload(e Event, at time.Time) ([]byte, error) {
	if w.cfg.Format == FormatSlack {
		return json.Marshal(struct {
			Text string `json:"text"`
		}{e.Text()})
	}
	ro := e.Rollout
	return json.Marshal(struct {
		Event   string         `json:"event"`
		Text    string         `json:"text"`
		Rollout webhookRollout `json:"rollout"`
		At      time.Time      `json:"at"`
	}{
		Event: "rollout." + string(e.Kind),
		Text:  e.Text(),
		Rollout: webhookRollout{ID: ro.ID, PatchID: ro.PatchID, Revision: ro.Revision, Commit: ro.Commit, Kind: ro.Kind,
			Strategy: ro.Strategy, State: ro.State, Stage: ro.Stage + 1, Stages: len(ro.Stages), Reason: ro.Reason, RevertSHA: ro.RevertSHA},
		At: at.UTC(),
	})
}

// Notify posts the event. Any status other than 2xx is an error.
func (w *Webhook) Notify(ctx context.Context, e Event) error {
	body, err := w.Payload(e, time.Now())
	if err != nil {
		return fmt.Errorf("webhook %s: rollout %d %s: %w", w.host, e.Rollout.ID, e.Kind, err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: rollout %d %s: %w", w.host, e.Rollout.ID, e.Kind, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vulnzero-reconciler")
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		// The error names the URL, which may hold a token: keep only the host.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("webhook %s: rollout %d %s: %w", w.host, e.Rollout.ID, e.Kind, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s: rollout %d %s: status %s", w.host, e.Rollout.ID, e.Kind, resp.Status)
	}
	w.log.Info("webhook sent", "host", w.host, "rollout", e.Rollout.ID, "event", e.Kind)
	return nil
}

// notificationKind is the transcript kind recording sent notifications.
const notificationKind = "rollout-notification"

// notify tells the Notifier about e once per rollout and event kind. The
// store remembers what was sent (a transcript per event), so a restarted
// reconciler does not send it again; a crash between sending and recording
// may send it twice, never zero times. A failed send is not recorded, so
// the next step that raises the event tries again.
func (r *Reconciler) notify(ctx context.Context, kind EventKind, ro vulnzero.Rollout) {
	if r.cfg.Notifier == nil {
		return
	}
	ref := strconv.FormatInt(ro.ID, 10) + "/" + string(kind)
	sent, err := r.cfg.Store.ListTranscripts(ctx, notificationKind, ref)
	if err != nil {
		r.log.Error("notify: read sent notifications", "rollout", ro.ID, "event", kind, "err", err)
		return
	}
	if len(sent) > 0 {
		return
	}
	e := Event{Kind: kind, Rollout: ro}
	if err := r.cfg.Notifier.Notify(ctx, e); err != nil {
		r.log.Error("notify", "rollout", ro.ID, "patch", ro.PatchID, "event", kind, "err", err)
		return
	}
	if _, err := r.cfg.Store.AddTranscript(ctx, vulnzero.Transcript{Kind: notificationKind, Ref: ref, Body: e.Text(), CreatedAt: r.cfg.Now()}); err != nil {
		r.log.Error("notify: record", "rollout", ro.ID, "event", kind, "err", err)
	}
}
