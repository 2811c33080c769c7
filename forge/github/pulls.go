package github

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	gh "github.com/google/go-github/v62/github"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
)

// defaultBase is Config.Base, or the repository's default branch.
func (c *Client) defaultBase(ctx context.Context) (string, error) {
	c.mu.Lock()
	b := c.base
	c.mu.Unlock()
	if b != "" {
		return b, nil
	}
	var repo *gh.Repository
	err := c.call(ctx, "default branch of "+c.owner+"/"+c.repo, func() (resp *gh.Response, err error) {
		repo, resp, err = c.gh.Repositories.Get(ctx, c.owner, c.repo)
		return resp, err
	})
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.base = repo.GetDefaultBranch()
	c.mu.Unlock()
	return repo.GetDefaultBranch(), nil
}

// branchHead is the head of branch, ErrNotFound when GitHub has none.
func (c *Client) branchHead(ctx context.Context, branch string) (string, error) {
	var ref *gh.Reference
	err := c.call(ctx, "branch "+branch, func() (resp *gh.Response, err error) {
		ref, resp, err = c.gh.Git.GetRef(ctx, c.owner, c.repo, "refs/heads/"+branch)
		return resp, err
	})
	if err != nil {
		return "", err
	}
	return ref.GetObject().GetSHA(), nil
}

// OpenPR implements forge.Forge: the open PR whose head is pr.Branch is
// updated (title, body, base); without one a PR is created. Either way it
// carries the vulnzero label.
func (c *Client) OpenPR(ctx context.Context, pr forge.NewPR) (vulnzero.PullRequest, error) {
	if err := pr.Validate(); err != nil {
		return vulnzero.PullRequest{}, err
	}
	op := "open pr for " + pr.Branch
	if pr.Base == "" {
		b, err := c.defaultBase(ctx)
		if err != nil {
			return vulnzero.PullRequest{}, fmt.Errorf("%s: %w", op, err)
		}
		pr.Base = b
	}
	if _, err := c.branchHead(ctx, pr.Branch); err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("%s: %w", op, err)
	}
	for attempt := 0; attempt < 2; attempt++ {
		existing, err := c.openFor(ctx, pr.Branch)
		if err != nil {
			return vulnzero.PullRequest{}, fmt.Errorf("%s: %w", op, err)
		}
		var got *gh.PullRequest
		if existing != nil {
			err = c.call(ctx, fmt.Sprintf("%s: update #%d", op, existing.GetNumber()), func() (resp *gh.Response, err error) {
				got, resp, err = c.gh.PullRequests.Edit(ctx, c.owner, c.repo, existing.GetNumber(),
					&gh.PullRequest{Title: gh.String(pr.Title), Body: gh.String(pr.Body), Base: &gh.PullRequestBranch{Ref: gh.String(pr.Base)}})
				return resp, err
			})
		} else {
			err = c.call(ctx, op+": create", func() (resp *gh.Response, err error) {
				got, resp, err = c.gh.PullRequests.Create(ctx, c.owner, c.repo, &gh.NewPullRequest{
					Title: gh.String(pr.Title), Head: gh.String(pr.Branch), Base: gh.String(pr.Base), Body: gh.String(pr.Body),
					MaintainerCanModify: gh.Bool(false),
				})
				return resp, err
			})
			if alreadyExists(err) {
				continue // another process opened it meanwhile: update that one
			}
		}
		if err != nil {
			return vulnzero.PullRequest{}, err
		}
		if !slices.ContainsFunc(got.Labels, func(l *gh.Label) bool { return l.GetName() == Label }) {
			if err := c.AddLabels(ctx, got.GetNumber(), Label); err != nil {
				return vulnzero.PullRequest{}, fmt.Errorf("%s: %w", op, err)
			}
		}
		out := toPR(got)
		if pr.PatchID != "" {
			out.PatchID = pr.PatchID
		}
		verb := "opened pr"
		if existing != nil {
			verb = "updated pr"
		}
		c.log.Info(verb, "pr", out.Number, "branch", pr.Branch, "head", out.HeadSHA)
		return out, nil
	}
	return vulnzero.PullRequest{}, fmt.Errorf("%s: an open pr keeps appearing and vanishing: %w", op, vulnzero.ErrConflict)
}

// alreadyExists is GitHub's 422 for a second open PR on the same head.
func alreadyExists(err error) bool {
	var er *gh.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	for _, e := range er.Errors {
		if strings.Contains(e.Message, "already exists") {
			return true
		}
	}
	return strings.Contains(er.Message, "already exists")
}

// openFor is the open PR whose head is branch, nil when there is none.
func (c *Client) openFor(ctx context.Context, branch string) (*gh.PullRequest, error) {
	var prs []*gh.PullRequest
	err := c.call(ctx, "list open prs for "+branch, func() (resp *gh.Response, err error) {
		prs, resp, err = c.gh.PullRequests.List(ctx, c.owner, c.repo, &gh.PullRequestListOptions{
			State: "open", Head: c.owner + ":" + branch, ListOptions: gh.ListOptions{PerPage: 100},
		})
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	for _, p := range prs {
		if p.GetHead().GetRef() == branch {
			return p, nil
		}
	}
	return nil, nil
}

// AddLabels adds labels to PR n (GitHub creates labels it does not know).
func (c *Client) AddLabels(ctx context.Context, n int, labels ...string) error {
	if len(labels) == 0 {
		return nil
	}
	return c.call(ctx, fmt.Sprintf("label pr #%d", n), func() (resp *gh.Response, err error) {
		_, resp, err = c.gh.Issues.AddLabelsToIssue(ctx, c.owner, c.repo, n, labels)
		return resp, err
	})
}

// toPR maps a GitHub PR onto VulnZero's.
func toPR(p *gh.PullRequest) vulnzero.PullRequest {
	state := vulnzero.PROpen
	switch {
	case p.GetMerged() || p.MergedAt != nil:
		state = vulnzero.PRMerged
	case p.GetState() == "closed":
		state = vulnzero.PRClosed
	}
	branch := p.GetHead().GetRef()
	out := vulnzero.PullRequest{
		Number: p.GetNumber(), PatchID: patchIDOf(branch), Branch: branch, Base: p.GetBase().GetRef(),
		Title: p.GetTitle(), Body: p.GetBody(), State: state, HeadSHA: p.GetHead().GetSHA(),
		URL: p.GetHTMLURL(), CreatedAt: p.GetCreatedAt().UTC(), UpdatedAt: p.GetUpdatedAt().UTC(),
	}
	if state == vulnzero.PRMerged {
		out.MergeSHA = p.GetMergeCommitSHA()
	}
	return out
}

// owned reports whether VulnZero opened p: a patch or revert branch, or
// its label.
func owned(p *gh.PullRequest) bool {
	if strings.HasPrefix(p.GetHead().GetRef(), forge.BranchPrefix) {
		return true
	}
	return slices.ContainsFunc(p.Labels, func(l *gh.Label) bool { return l.GetName() == Label })
}

// GetPR implements forge.Forge.
func (c *Client) GetPR(ctx context.Context, n int) (vulnzero.PullRequest, error) {
	var p *gh.PullRequest
	err := c.call(ctx, fmt.Sprintf("pr #%d", n), func() (resp *gh.Response, err error) {
		p, resp, err = c.gh.PullRequests.Get(ctx, c.owner, c.repo, n)
		return resp, err
	})
	if err != nil {
		return vulnzero.PullRequest{}, err
	}
	return toPR(p), nil
}

// ListPRs implements forge.Forge over VulnZero's inventory: the PRs it
// owns (see owned), in the given states, by number.
func (c *Client) ListPRs(ctx context.Context, states ...vulnzero.PRState) ([]vulnzero.PullRequest, error) {
	apiState := "all"
	switch {
	case len(states) > 0 && !slices.ContainsFunc(states, func(s vulnzero.PRState) bool { return s != vulnzero.PROpen }):
		apiState = "open"
	case len(states) > 0 && !slices.Contains(states, vulnzero.PROpen):
		apiState = "closed"
	}
	opts := &gh.PullRequestListOptions{State: apiState, Sort: "created", Direction: "asc", ListOptions: gh.ListOptions{PerPage: 100}}
	var out []vulnzero.PullRequest
	for {
		var prs []*gh.PullRequest
		var resp *gh.Response
		err := c.call(ctx, "list prs", func() (r *gh.Response, err error) {
			prs, resp, err = c.gh.PullRequests.List(ctx, c.owner, c.repo, opts)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, p := range prs {
			if !owned(p) {
				continue
			}
			v := toPR(p)
			if len(states) == 0 || slices.Contains(states, v.State) {
				out = append(out, v)
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// Merge implements forge.Forge: merges PR n at the head it has now (GitHub
// refuses with 409 if the branch moves in between) with the configured
// method, and returns the PR as merged.
func (c *Client) Merge(ctx context.Context, n int) (vulnzero.PullRequest, error) {
	pr, err := c.GetPR(ctx, n)
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("merge %w", err)
	}
	if pr.State != vulnzero.PROpen {
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: it is %s: %w", n, pr.State, vulnzero.ErrConflict)
	}
	title := fmt.Sprintf("Merge patch %s (#%d)", pr.PatchID, n)
	if pr.PatchID == "" {
		title = fmt.Sprintf("Merge pull request #%d from %s", n, pr.Branch)
	}
	err = c.call(ctx, fmt.Sprintf("merge pr #%d", n), func() (resp *gh.Response, err error) {
		_, resp, err = c.gh.PullRequests.Merge(ctx, c.owner, c.repo, n, strings.TrimSpace(pr.Title),
			&gh.PullRequestOptions{CommitTitle: title, SHA: pr.HeadSHA, MergeMethod: c.cfg.MergeMethod})
		return resp, err
	})
	if err != nil {
		return vulnzero.PullRequest{}, err
	}
	merged, err := c.GetPR(ctx, n)
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("merge: %w", err)
	}
	c.log.Info("merged pr", "pr", n, "patch", merged.PatchID, "commit", merged.MergeSHA)
	return merged, nil
}

// Comment implements forge.Forge (an issue comment on the PR).
func (c *Client) Comment(ctx context.Context, n int, body string) error {
	if strings.TrimSpace(body) == "" {
		return fmt.Errorf("comment on pr #%d: empty body: %w", n, vulnzero.ErrInvalid)
	}
	return c.call(ctx, fmt.Sprintf("comment on pr #%d", n), func() (resp *gh.Response, err error) {
		_, resp, err = c.gh.Issues.CreateComment(ctx, c.owner, c.repo, n, &gh.IssueComment{Body: gh.String(body)})
		return resp, err
	})
}

// Comments implements forge.Forge.
func (c *Client) Comments(ctx context.Context, n int) ([]string, error) {
	if _, err := c.GetPR(ctx, n); err != nil {
		return nil, fmt.Errorf("comments of %w", err)
	}
	opts := &gh.IssueListCommentsOptions{Sort: gh.String("created"), Direction: gh.String("asc"), ListOptions: gh.ListOptions{PerPage: 100}}
	out := []string{}
	for {
		var cs []*gh.IssueComment
		var resp *gh.Response
		err := c.call(ctx, fmt.Sprintf("comments of pr #%d", n), func() (r *gh.Response, err error) {
			cs, resp, err = c.gh.Issues.ListComments(ctx, c.owner, c.repo, n, opts)
			return resp, err
		})
		if err != nil {
			return nil, err
		}
		for _, cm := range cs {
			out = append(out, cm.GetBody())
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// Close implements forge.Forge. The branch is kept.
func (c *Client) Close(ctx context.Context, n int) error {
	pr, err := c.GetPR(ctx, n)
	if err != nil {
		return fmt.Errorf("close %w", err)
	}
	switch pr.State {
	case vulnzero.PRClosed:
		return nil
	case vulnzero.PRMerged:
		return fmt.Errorf("close pr #%d: it is merged: %w", n, vulnzero.ErrConflict)
	}
	err = c.call(ctx, fmt.Sprintf("close pr #%d", n), func() (resp *gh.Response, err error) {
		_, resp, err = c.gh.PullRequests.Edit(ctx, c.owner, c.repo, n, &gh.PullRequest{State: gh.String("closed")})
		return resp, err
	})
	if err == nil {
		c.log.Info("closed pr", "pr", n, "branch", pr.Branch)
	}
	return err
}

// CloseFixed closes the open PRs VulnZero owns whose patch is not in
// wanted (the patches that still have open findings), with a comment
// saying why, and returns their numbers. Revert PRs are left alone.
func (c *Client) CloseFixed(ctx context.Context, wanted map[string]bool, reason string) ([]int, error) {
	open, err := c.ListPRs(ctx, vulnzero.PROpen)
	if err != nil {
		return nil, err
	}
	var closed []int
	for _, pr := range open {
		if pr.PatchID == "" || wanted[pr.PatchID] || IsRevertBranch(pr.Branch) {
			continue
		}
		if err := c.Comment(ctx, pr.Number, reason); err != nil {
			return closed, err
		}
		if err := c.Close(ctx, pr.Number); err != nil {
			return closed, err
		}
		closed = append(closed, pr.Number)
	}
	return closed, nil
}
