package main

import (
	"context"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/scan/source"
	"vulnzero.dev/vulnzero/store"
)

// newRolloutOpCmds are `vulnzero rollout pause|resume|abort ID`: operator
// requests the store keeps and the reconciler honours before its next host
// step (they work whether or not a reconciler runs right now).
func newRolloutOpCmds(g *globals) []*cobra.Command {
	ops := []struct {
		op    reconciler.Op
		short string
		done  string
	}{
		{reconciler.OpPause, "Pause a rollout: no new host starts; hosts in flight finish", "pause requested"},
		{reconciler.OpResume, "Resume a paused rollout", "resume requested"},
		{reconciler.OpAbort, "Abort a rollout: roll back every host it touched (no revert, no quarantine)", "abort requested"},
	}
	var cmds []*cobra.Command
	for _, o := range ops {
		var by string
		c := &cobra.Command{
			Use:   string(o.op) + " ID",
			Short: o.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := strconv.ParseInt(args[0], 10, 64)
				if err != nil {
					return fmt.Errorf("rollout %s: %q is not a rollout id", o.op, args[0])
				}
				if by == "" {
					by = operatorName()
				}
				return g.withApp(cmd, func(ctx context.Context, a *app) error {
					if err := reconciler.RequestOp(ctx, a.store, id, o.op, by, time.Now()); err != nil {
						return err
					}
					fmt.Fprintf(g.out, "rollout %d: %s by %s; the reconciler acts on it before its next host step\n", id, o.done, by)
					return nil
				})
			},
		}
		c.Flags().StringVar(&by, "by", "", "operator name recorded with the request (default: the OS user)")
		cmds = append(cmds, c)
	}
	return cmds
}

// operatorName is who runs the CLI, for the request's audit record.
func operatorName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "cli"
}

// rolloutStatus is what `rollout show` adds for an operator: hosts
// done/failed/pending over the whole rollout, the ETA from the hosts that
// finished, a waiting rollout's next window, the live blue-green group, an
// operator's request, and hosts pending a reboot.
func rolloutStatus(ctx context.Context, st store.Store, r vulnzero.Rollout, steps []vulnzero.HostStep) (string, error) {
	ledger, err := st.ListLedger(ctx)
	if err != nil {
		return "", err
	}
	ctl, err := reconciler.ReadControl(ctx, st, r.ID)
	if err != nil {
		return "", err
	}
	return formatStatus(r, reconciler.RolloutProgress(r, steps, ledger, time.Now()), ctl, time.Now()), nil
}

func formatStatus(r vulnzero.Rollout, p reconciler.Progress, ctl reconciler.Control, now time.Time) string {
	var b strings.Builder
	line := fmt.Sprintf("Hosts:    %d done, %d failed, %d running, %d pending", p.Done, p.Failed, p.Running, p.Pending)
	if p.RolledBack > 0 {
		line += fmt.Sprintf(", %d rolled back", p.RolledBack)
	}
	fmt.Fprintln(&b, line)
	switch {
	case p.ETAKnown:
		fmt.Fprintf(&b, "ETA:      %s (about %s; %s per host)\n", p.ETA.Round(time.Second), now.Add(p.ETA).UTC().Format(time.RFC3339), p.HostTime.Round(time.Second))
	case !r.State.Terminal() && r.State != vulnzero.RolloutFailed:
		fmt.Fprintln(&b, "ETA:      unknown (no host finished yet, or not progressing)")
	}
	if r.State == vulnzero.RolloutWaiting {
		if r.WaitUntil.IsZero() {
			fmt.Fprintln(&b, "Waiting:  no maintenance window opens within a year")
		} else {
			fmt.Fprintf(&b, "Waiting:  next maintenance window opens %s (in %s)\n", r.WaitUntil.UTC().Format(time.RFC3339), r.WaitUntil.Sub(now).Round(time.Minute))
		}
	}
	if r.ActiveGroup != "" {
		fmt.Fprintf(&b, "Live:     group %s serves traffic\n", r.ActiveGroup)
	}
	switch {
	case ctl.Aborted:
		fmt.Fprintf(&b, "Operator: abort requested by %s at %s\n", orDash(ctl.By), ctl.At.UTC().Format(time.RFC3339))
	case ctl.Paused:
		fmt.Fprintf(&b, "Operator: paused by %s at %s (vulnzero rollout resume %d)\n", orDash(ctl.By), ctl.At.UTC().Format(time.RFC3339), r.ID)
	}
	if len(p.PendingReboot) > 0 {
		fmt.Fprintf(&b, "Reboot:   pending on %s (the patch says reboot: never)\n", strings.Join(p.PendingReboot, ", "))
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rolloutNotifier is who hears about rollouts: a comment on the patch's PR
// once a failed rollout is rolled back, and the configured webhook (JSON
// or Slack) for every event.
func (a *app) rolloutNotifier() reconciler.Notifier {
	ns := reconciler.Notifiers{prNotifier{a.forge}}
	if u := a.cfg.Reconcile.WebhookURL; u != "" {
		w, err := reconciler.NewWebhook(reconciler.WebhookConfig{URL: u, Format: a.cfg.Reconcile.WebhookFormat, Logger: a.log})
		if err != nil {
			a.log.Error("rollout webhook not used", "err", err)
		} else {
			ns = append(ns, w)
		}
	}
	return ns
}

// kevCatalog is the emergency lane's CISA KEV catalog, loaded from the
// configured feed on first use and again once a day. A catalog that does
// not load keeps the lane closed (and says so in the log): a missing feed
// must not open it.
type kevCatalog struct {
	feeds source.FeedsConfig
	app   *app

	mu     sync.Mutex
	kev    map[string]bool
	loaded time.Time
}

func (a *app) kevCatalog() reconciler.KEVCatalog {
	if a.cfg.Feeds.KEV == "" {
		return nil
	}
	return &kevCatalog{feeds: source.FeedsConfig{KEV: a.cfg.Feeds.KEV, Timeout: a.cfg.Feeds.Timeout, Retries: a.cfg.Feeds.Retries}, app: a}
}

// Listed implements reconciler.KEVCatalog.
func (k *kevCatalog) Listed(cve string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if time.Since(k.loaded) > 24*time.Hour {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		f, err := source.LoadFeeds(ctx, k.feeds, source.FeedDeps{Logger: k.app.log})
		k.loaded = time.Now()
		if err != nil {
			k.app.log.Error("KEV feed for the emergency lane", "err", err)
			k.loaded = k.loaded.Add(-23 * time.Hour) // retried in an hour, not per host
		} else {
			k.kev = f.KEV
		}
	}
	return k.kev[cve]
}
