package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/remedy"
	"vulnzero.dev/vulnzero/store"
)

// proposeResult is what one pass of plan → generate → propose did.
type proposeResult struct {
	Proposals []remedy.Proposal
	Closed    []int // PRs closed because their findings are all gone
}

// proposeOnce runs flow steps 2–4 once: group the open findings by
// remediation key, score them (with the EPSS/KEV feeds and the inventory's
// criticality labels), propose a PR per key through the policy, generator
// and guardrails, and close the VulnZero PRs whose findings are all gone.
func (a *app) proposeOnce(ctx context.Context) (proposeResult, error) {
	var res proposeResult
	open, err := a.store.ListFindings(ctx, store.FindingFilter{Status: vulnzero.FindingOpen})
	if err != nil {
		return res, err
	}
	if err := a.repo.Fetch(ctx); err != nil {
		return res, err
	}
	st, err := a.repoState(ctx)
	if err != nil {
		return res, err
	}
	in, err := a.scoreInput(ctx)
	if err != nil {
		return res, fmt.Errorf("score feeds: %w", err)
	}
	in.Criticality = remedy.CriticalityFromInventory(st.Inventory)
	quarantined, err := a.store.ListQuarantined(ctx)
	if err != nil {
		return res, err
	}
	groups, _ := remedy.GroupFindings(open, in)
	// One patch per package and OS family, at the highest fixed version.
	groups = remedy.MergeFixedVersions(groups, in)
	rules := guardrailRules(st)
	p := &remedy.Proposer{
		Writer: a.repo, Forge: a.forge, Base: a.repo.Branch(), Revision: gitsource.PatchRevision,
		Policies: st.Policies, Inventory: st.Inventory, Quarantined: quarantined, Guardrails: rules,
		Alternatives: a.alternatives(rules), Logger: a.log,
	}
	if res.Proposals, err = p.Propose(ctx, groups); err != nil {
		return res, err
	}
	wanted := map[string]bool{}
	for _, g := range groups {
		wanted[remedy.PatchID(g.Key, g.Manager)] = true
	}
	res.Closed, err = a.closeFixedPRs(ctx, wanted)
	return res, err
}

// closeFixedPRs closes the open patch PRs whose patch no open finding wants
// any more (the next scan confirmed the fix, or the hosts left), with a
// comment saying why. Revert PRs and PRs VulnZero did not open are left alone.
func (a *app) closeFixedPRs(ctx context.Context, wanted map[string]bool) ([]int, error) {
	prs, err := a.forge.ListPRs(ctx, vulnzero.PROpen)
	if err != nil {
		return nil, err
	}
	var closed []int
	for _, pr := range prs {
		id, ours := forge.PatchID(pr.Branch)
		if !ours || strings.Contains(id, "/") || wanted[id] {
			continue
		}
		if err := a.forge.Comment(ctx, pr.Number, "Every finding this patch fixes is gone from the latest scans: closing."); err != nil {
			return closed, err
		}
		if err := a.forge.Close(ctx, pr.Number); err != nil {
			return closed, err
		}
		a.log.Info("closed patch PR: findings fixed", "pr", pr.Number, "patch", id)
		closed = append(closed, pr.Number)
	}
	return closed, nil
}

// startProposer runs proposeOnce on the reconcile interval until ctx ends.
func (a *app) startProposer(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(a.cfg.Reconcile.Interval)
		defer t.Stop()
		for {
			if res, err := a.proposeOnce(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("propose", "err", err)
			} else if err == nil {
				a.log.Debug("propose pass", "groups", len(res.Proposals), "closed", len(res.Closed))
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
