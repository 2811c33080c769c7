// Package local is the forge of the embedded default: pull requests are
// branches of the remediation repository (a local bare repository, reached
// through gitsource) plus records in the store, so the whole loop runs on one
// machine and PRs are merged from the CLI or the dashboard.
//
// Where things live:
//   - a PR's commits: branch vulnzero/<patch-id> of the repository;
//   - the PR itself (number, title, body, state, head, merge commit): the
//     store's pull requests (store.CreatePR/UpdatePR/GetPR/ListPRs);
//   - commit statuses: the store's statuses (store.SetStatus/ListStatuses);
//   - comments: store transcripts with Kind "pr-comment" and Ref "pr/<n>",
//     one per comment, listed oldest first.
//
// Merge is a squash onto the base branch: the PR branch's patches/<id>
// directory becomes one new commit "Merge patch <id> (#<n>)". Merging only
// the patch directory keeps a branch that was cut from an older main from
// undoing anything else that changed on main since.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/store"
)

// CommentKind is the transcript kind of PR comments (see CommentRef).
const CommentKind = "pr-comment"

// CommentRef is the transcript ref of PR n's comments.
func CommentRef(n int) string { return "pr/" + strconv.Itoa(n) }

// Forge is a forge.Forge on a local repository and the store.
type Forge struct {
	repo *gitsource.Repo
	st   store.Store
	log  *slog.Logger
	now  func() time.Time

	// mu serializes PR state changes, so "find the open PR for a branch,
	// then create or update it" and "check open, then merge" are atomic
	// within this process; the store's unique open-PR-per-branch rule
	// backs it across processes.
	mu sync.Mutex
}

var _ forge.Forge = (*Forge)(nil)

// New returns a local forge. logger may be nil.
func New(repo *gitsource.Repo, st store.Store, logger *slog.Logger) *Forge {
	if logger == nil {
		logger = slog.Default()
	}
	return &Forge{repo: repo, st: st, log: logger, now: time.Now}
}

// WithClock makes the forge stamp PRs and statuses with now.
func (f *Forge) WithClock(now func() time.Time) *Forge {
	f.now = now
	return f
}

// OpenPR implements forge.Forge. The PR's head is the branch's head on the
// remote after a fetch (pr.HeadSHA is not needed): a branch the remote does
// not have is ErrNotFound.
func (f *Forge) OpenPR(ctx context.Context, pr forge.NewPR) (vulnzero.PullRequest, error) {
	if err := pr.Validate(); err != nil {
		return vulnzero.PullRequest{}, err
	}
	if pr.Base == "" {
		pr.Base = f.repo.Branch()
	}
	if err := f.repo.Fetch(ctx); err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("open pr for %s: %w", pr.Branch, err)
	}
	head, err := f.repo.Head(ctx, pr.Branch)
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("open pr for %s: %w", pr.Branch, err)
	}
	if _, err := f.repo.Head(ctx, pr.Base); err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("open pr for %s: base: %w", pr.Branch, err)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now().UTC()
	for attempt := 0; attempt < 2; attempt++ {
		existing, found, err := f.openFor(ctx, pr.Branch)
		if err != nil {
			return vulnzero.PullRequest{}, fmt.Errorf("open pr for %s: %w", pr.Branch, err)
		}
		if found {
			existing.PatchID, existing.Title, existing.Body, existing.Base, existing.HeadSHA = pr.PatchID, pr.Title, pr.Body, pr.Base, head
			existing.UpdatedAt = now
			if err := f.st.UpdatePR(ctx, existing); err != nil {
				return vulnzero.PullRequest{}, fmt.Errorf("update pr #%d for %s: %w", existing.Number, pr.Branch, err)
			}
			f.log.Info("updated pr", "pr", existing.Number, "branch", pr.Branch, "head", head)
			return f.st.GetPR(ctx, existing.Number)
		}
		created, err := f.st.CreatePR(ctx, vulnzero.PullRequest{
			PatchID: pr.PatchID, Branch: pr.Branch, Base: pr.Base, Title: pr.Title, Body: pr.Body,
			State: vulnzero.PROpen, HeadSHA: head, CreatedAt: now, UpdatedAt: now,
		})
		if errors.Is(err, vulnzero.ErrConflict) {
			continue // another process opened it meanwhile: update that one
		}
		if err != nil {
			return vulnzero.PullRequest{}, fmt.Errorf("open pr for %s: %w", pr.Branch, err)
		}
		f.log.Info("opened pr", "pr", created.Number, "branch", pr.Branch, "head", head)
		return created, nil
	}
	return vulnzero.PullRequest{}, fmt.Errorf("open pr for %s: an open pr keeps appearing and vanishing: %w", pr.Branch, vulnzero.ErrConflict)
}

func (f *Forge) openFor(ctx context.Context, branch string) (vulnzero.PullRequest, bool, error) {
	open, err := f.st.ListPRs(ctx, vulnzero.PROpen)
	if err != nil {
		return vulnzero.PullRequest{}, false, err
	}
	for _, p := range open {
		if p.Branch == branch {
			return p, true, nil
		}
	}
	return vulnzero.PullRequest{}, false, nil
}

// GetPR implements forge.Forge.
func (f *Forge) GetPR(ctx context.Context, n int) (vulnzero.PullRequest, error) {
	return f.st.GetPR(ctx, n)
}

// ListPRs implements forge.Forge.
func (f *Forge) ListPRs(ctx context.Context, states ...vulnzero.PRState) ([]vulnzero.PullRequest, error) {
	return f.st.ListPRs(ctx, states...)
}

// SetStatus implements forge.Forge. A zero UpdatedAt is stamped now.
func (f *Forge) SetStatus(ctx context.Context, st vulnzero.CommitStatus) error {
	if err := forge.ValidateStatus(st); err != nil {
		return err
	}
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = f.now().UTC()
	}
	if err := f.st.SetStatus(ctx, st); err != nil {
		return fmt.Errorf("set status %s on %s: %w", st.Context, st.SHA, err)
	}
	return nil
}

// Statuses implements forge.Forge.
func (f *Forge) Statuses(ctx context.Context, sha string) ([]vulnzero.CommitStatus, error) {
	return f.st.ListStatuses(ctx, sha)
}

// Merge implements forge.Forge: the PR branch's patches/<id> directory, as of
// the branch's current head, is committed onto the base branch as one commit
// (message "Merge patch <id> (#<n>)", a blank line, the title) and pushed;
// the PR becomes merged with that commit as MergeSHA. When the base already
// holds exactly that directory, MergeSHA is the base's head.
func (f *Forge) Merge(ctx context.Context, n int) (vulnzero.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr, err := f.st.GetPR(ctx, n)
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: %w", n, err)
	}
	if pr.State != vulnzero.PROpen {
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: it is %s: %w", n, pr.State, vulnzero.ErrConflict)
	}
	if err := f.repo.Fetch(ctx); err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: %w", n, err)
	}
	head, err := f.repo.Head(ctx, pr.Branch)
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: %w", n, err)
	}
	files, err := f.repo.PatchFiles(ctx, head, pr.PatchID)
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: %w", n, err)
	}
	dir := gitsource.PatchDir(pr.PatchID)
	changes := make(map[string][]byte, len(files))
	for p, b := range files {
		changes[dir+"/"+p] = b
	}
	sha, err := f.repo.CommitFiles(ctx, gitsource.CommitRequest{
		Branch:      pr.Base,
		Files:       changes,
		ReplaceDirs: []string{dir},
		Message:     fmt.Sprintf("Merge patch %s (#%d)\n\n%s\n", pr.PatchID, n, strings.TrimSpace(pr.Title)),
	})
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: %w", n, err)
	}
	pr.State = vulnzero.PRMerged
	pr.HeadSHA = head
	pr.MergeSHA = sha
	pr.UpdatedAt = f.now().UTC()
	if err := f.st.UpdatePR(ctx, pr); err != nil {
		// The commit is on the base branch: say so, so a person can mark
		// the PR by hand rather than merge it twice.
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: merged as %s but recording it: %w", n, sha, err)
	}
	f.log.Info("merged pr", "pr", n, "patch", pr.PatchID, "commit", sha)
	return f.st.GetPR(ctx, n)
}

// Comment implements forge.Forge.
func (f *Forge) Comment(ctx context.Context, n int, body string) error {
	if strings.TrimSpace(body) == "" {
		return fmt.Errorf("comment on pr #%d: empty body: %w", n, vulnzero.ErrInvalid)
	}
	if _, err := f.st.GetPR(ctx, n); err != nil {
		return fmt.Errorf("comment on pr #%d: %w", n, err)
	}
	if _, err := f.st.AddTranscript(ctx, vulnzero.Transcript{Kind: CommentKind, Ref: CommentRef(n), Body: body, CreatedAt: f.now().UTC()}); err != nil {
		return fmt.Errorf("comment on pr #%d: %w", n, err)
	}
	return nil
}

// Comments implements forge.Forge.
func (f *Forge) Comments(ctx context.Context, n int) ([]string, error) {
	if _, err := f.st.GetPR(ctx, n); err != nil {
		return nil, fmt.Errorf("comments of pr #%d: %w", n, err)
	}
	ts, err := f.st.ListTranscripts(ctx, CommentKind, CommentRef(n))
	if err != nil {
		return nil, fmt.Errorf("comments of pr #%d: %w", n, err)
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Body
	}
	return out, nil
}

// Close implements forge.Forge. The branch is kept, as GitHub does.
func (f *Forge) Close(ctx context.Context, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr, err := f.st.GetPR(ctx, n)
	if err != nil {
		return fmt.Errorf("close pr #%d: %w", n, err)
	}
	switch pr.State {
	case vulnzero.PRClosed:
		return nil
	case vulnzero.PRMerged:
		return fmt.Errorf("close pr #%d: it is merged: %w", n, vulnzero.ErrConflict)
	}
	pr.State = vulnzero.PRClosed
	pr.UpdatedAt = f.now().UTC()
	if err := f.st.UpdatePR(ctx, pr); err != nil {
		return fmt.Errorf("close pr #%d: %w", n, err)
	}
	f.log.Info("closed pr", "pr", n, "branch", pr.Branch)
	return nil
}
