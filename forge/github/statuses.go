package github

import (
	"context"
	"errors"
	"fmt"
	"sort"

	gh "github.com/google/go-github/v62/github"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
)

// maxDescription is the longest commit status description GitHub accepts.
const maxDescription = 140

// truncate cuts s to n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// SetStatus implements forge.Forge: a commit status, or with CheckRuns the
// check run named st.Context on st.SHA (updated when one exists, created
// otherwise).
func (c *Client) SetStatus(ctx context.Context, st vulnzero.CommitStatus) error {
	if err := forge.ValidateStatus(st); err != nil {
		return err
	}
	op := fmt.Sprintf("set status %s on %s", st.Context, st.SHA)
	if c.cfg.CheckRuns {
		return c.setCheckRun(ctx, op, st)
	}
	status := &gh.RepoStatus{State: gh.String(string(st.State)), Context: gh.String(st.Context),
		Description: gh.String(truncate(st.Description, maxDescription))}
	if st.TargetURL != "" {
		status.TargetURL = gh.String(st.TargetURL)
	}
	return c.call(ctx, op, func() (resp *gh.Response, err error) {
		_, resp, err = c.gh.Repositories.CreateStatus(ctx, c.owner, c.repo, st.SHA, status)
		return resp, err
	})
}

// Statuses implements forge.Forge: the latest status (or check run) per
// context, by context. An unknown commit has none.
func (c *Client) Statuses(ctx context.Context, sha string) ([]vulnzero.CommitStatus, error) {
	var out []vulnzero.CommitStatus
	var err error
	if c.cfg.CheckRuns {
		out, err = c.checkRunStatuses(ctx, sha)
	} else {
		out, err = c.commitStatuses(ctx, sha)
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Context < out[j].Context })
	return out, nil
}

func (c *Client) commitStatuses(ctx context.Context, sha string) ([]vulnzero.CommitStatus, error) {
	opts := &gh.ListOptions{PerPage: 100}
	var out []vulnzero.CommitStatus
	for {
		var cs *gh.CombinedStatus
		var resp *gh.Response
		err := c.call(ctx, "statuses of "+sha, func() (r *gh.Response, err error) {
			cs, resp, err = c.gh.Repositories.GetCombinedStatus(ctx, c.owner, c.repo, sha, opts)
			return resp, err
		})
		if notFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, s := range cs.Statuses {
			out = append(out, vulnzero.CommitStatus{
				SHA: sha, Context: s.GetContext(), State: vulnzero.StatusState(s.GetState()),
				Description: s.GetDescription(), TargetURL: s.GetTargetURL(), UpdatedAt: s.GetUpdatedAt().UTC(),
			})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// Check runs carry a status as (status, conclusion): pending is
// in_progress; success, failure are those conclusions; error — the check
// could not reach a verdict — is "cancelled".
func checkRunOf(state vulnzero.StatusState) (status string, conclusion *string) {
	switch state {
	case vulnzero.StatusPending:
		return "in_progress", nil
	case vulnzero.StatusError:
		return "completed", gh.String("cancelled")
	default:
		return "completed", gh.String(string(state))
	}
}

func stateOf(run *gh.CheckRun) vulnzero.StatusState {
	if run.GetStatus() != "completed" {
		return vulnzero.StatusPending
	}
	switch run.GetConclusion() {
	case "success", "neutral", "skipped":
		return vulnzero.StatusSuccess
	case "failure":
		return vulnzero.StatusFailure
	default: // cancelled, timed_out, action_required, stale, startup_failure
		return vulnzero.StatusError
	}
}

func (c *Client) setCheckRun(ctx context.Context, op string, st vulnzero.CommitStatus) error {
	runs, err := c.checkRuns(ctx, st.SHA, st.Context)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	status, conclusion := checkRunOf(st.State)
	title := truncate(st.Description, 255)
	if title == "" {
		title = string(st.State)
	}
	output := &gh.CheckRunOutput{Title: gh.String(title), Summary: gh.String(st.Description + "\n")}
	var details *string
	if st.TargetURL != "" {
		details = gh.String(st.TargetURL)
	}
	var completed *gh.Timestamp
	if conclusion != nil {
		completed = &gh.Timestamp{Time: c.cfg.Limits.Now().UTC()}
	}
	if len(runs) > 0 {
		return c.call(ctx, op, func() (resp *gh.Response, err error) {
			_, resp, err = c.gh.Checks.UpdateCheckRun(ctx, c.owner, c.repo, runs[0].GetID(), gh.UpdateCheckRunOptions{
				Name: st.Context, DetailsURL: details, Status: gh.String(status), Conclusion: conclusion, CompletedAt: completed, Output: output,
			})
			return resp, err
		})
	}
	return c.call(ctx, op, func() (resp *gh.Response, err error) {
		_, resp, err = c.gh.Checks.CreateCheckRun(ctx, c.owner, c.repo, gh.CreateCheckRunOptions{
			Name: st.Context, HeadSHA: st.SHA, DetailsURL: details, Status: gh.String(status), Conclusion: conclusion,
			StartedAt: &gh.Timestamp{Time: c.cfg.Limits.Now().UTC()}, CompletedAt: completed, Output: output,
		})
		return resp, err
	})
}

// checkRuns lists the latest check run per name on sha (only name, when
// given).
func (c *Client) checkRuns(ctx context.Context, sha, name string) ([]*gh.CheckRun, error) {
	opts := &gh.ListCheckRunsOptions{Filter: gh.String("latest"), ListOptions: gh.ListOptions{PerPage: 100}}
	if name != "" {
		opts.CheckName = gh.String(name)
	}
	if c.cfg.App != nil {
		opts.AppID = gh.Int64(c.cfg.App.ID)
	}
	var out []*gh.CheckRun
	for {
		var res *gh.ListCheckRunsResults
		var resp *gh.Response
		err := c.call(ctx, "check runs of "+sha, func() (r *gh.Response, err error) {
			res, resp, err = c.gh.Checks.ListCheckRunsForRef(ctx, c.owner, c.repo, sha, opts)
			return resp, err
		})
		if notFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, res.CheckRuns...)
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (c *Client) checkRunStatuses(ctx context.Context, sha string) ([]vulnzero.CommitStatus, error) {
	runs, err := c.checkRuns(ctx, sha, "")
	if err != nil {
		return nil, err
	}
	var out []vulnzero.CommitStatus
	for _, r := range runs {
		updated := r.GetStartedAt().Time
		if r.CompletedAt != nil {
			updated = r.GetCompletedAt().Time
		}
		desc := r.GetOutput().GetTitle()
		if desc == string(stateOf(r)) && r.GetOutput().GetSummary() == "\n" {
			desc = ""
		}
		out = append(out, vulnzero.CommitStatus{
			SHA: sha, Context: r.GetName(), State: stateOf(r), Description: desc,
			TargetURL: r.GetDetailsURL(), UpdatedAt: updated.UTC(),
		})
	}
	return out, nil
}

func notFound(err error) bool {
	return err != nil && errors.Is(err, vulnzero.ErrNotFound)
}
