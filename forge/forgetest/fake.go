package forgetest

import (
	"context"
	"crypto/sha1" //nolint:gosec // G505: fake commit ids, see FakeSHA
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
)

// Fake is an in-memory forge.Forge with no git behind it, for tests of code
// that uses a forge. It passes the same conformance suite as the real ones.
// Branches exist once pushed with Push (or named with a HeadSHA in OpenPR);
// commit hashes are made up but well-formed.
type Fake struct {
	// DefaultBase is the base of PRs opened without one ("main" when empty).
	DefaultBase string
	// Now stamps PRs and statuses; time.Now when nil.
	Now func() time.Time

	mu       sync.Mutex
	prs      []vulnzero.PullRequest // PR n is prs[n-1]
	branches map[string]string      // branch → head
	statuses map[string]map[string]vulnzero.CommitStatus
	comments map[int][]string
	pushes   int
}

var _ forge.Forge = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{} }

func (f *Fake) now() time.Time {
	if f.Now != nil {
		return f.Now().UTC()
	}
	return time.Now().UTC()
}

func (f *Fake) base() string {
	if f.DefaultBase != "" {
		return f.DefaultBase
	}
	return "main"
}

// FakeSHA is a well-formed commit hash derived from s.
func FakeSHA(s string) string {
	h := sha1.Sum([]byte(s)) //nolint:gosec // G401: a fake commit id shaped like git's, not a security hash
	return hex.EncodeToString(h[:])
}

// Push moves branch to a new made-up commit and returns it.
func (f *Fake) Push(branch string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes++
	sha := FakeSHA(fmt.Sprintf("%s#%d", branch, f.pushes))
	if f.branches == nil {
		f.branches = map[string]string{}
	}
	f.branches[branch] = sha
	return sha
}

// PushBranch is Push in the shape Run wants.
func (f *Fake) PushBranch(t *testing.T, branch, patchID string) string { return f.Push(branch) }

// OpenPR implements forge.Forge.
func (f *Fake) OpenPR(ctx context.Context, pr forge.NewPR) (vulnzero.PullRequest, error) {
	if err := pr.Validate(); err != nil {
		return vulnzero.PullRequest{}, err
	}
	if pr.Base == "" {
		pr.Base = f.base()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	head, known := f.branches[pr.Branch]
	switch {
	case pr.HeadSHA != "":
		head = pr.HeadSHA
		if f.branches == nil {
			f.branches = map[string]string{}
		}
		f.branches[pr.Branch] = head
	case !known:
		return vulnzero.PullRequest{}, fmt.Errorf("open pr for %s: branch %s: %w", pr.Branch, pr.Branch, vulnzero.ErrNotFound)
	}
	now := f.now()
	for i := range f.prs {
		p := &f.prs[i]
		if p.Branch == pr.Branch && p.State == vulnzero.PROpen {
			p.PatchID, p.Title, p.Body, p.Base, p.HeadSHA, p.UpdatedAt = pr.PatchID, pr.Title, pr.Body, pr.Base, head, now
			return *p, nil
		}
	}
	p := vulnzero.PullRequest{
		Number: len(f.prs) + 1, PatchID: pr.PatchID, Branch: pr.Branch, Base: pr.Base,
		Title: pr.Title, Body: pr.Body, State: vulnzero.PROpen, HeadSHA: head,
		CreatedAt: now, UpdatedAt: now,
	}
	f.prs = append(f.prs, p)
	return p, nil
}

// get returns PR n; the caller holds mu.
func (f *Fake) get(n int) (*vulnzero.PullRequest, error) {
	if n < 1 || n > len(f.prs) {
		return nil, fmt.Errorf("pr #%d: %w", n, vulnzero.ErrNotFound)
	}
	return &f.prs[n-1], nil
}

// GetPR implements forge.Forge.
func (f *Fake) GetPR(ctx context.Context, n int) (vulnzero.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.get(n)
	if err != nil {
		return vulnzero.PullRequest{}, err
	}
	return *p, nil
}

// ListPRs implements forge.Forge.
func (f *Fake) ListPRs(ctx context.Context, states ...vulnzero.PRState) ([]vulnzero.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []vulnzero.PullRequest
	for _, p := range f.prs {
		if len(states) == 0 || slices.Contains(states, p.State) {
			out = append(out, p)
		}
	}
	return out, nil
}

// SetStatus implements forge.Forge.
func (f *Fake) SetStatus(ctx context.Context, st vulnzero.CommitStatus) error {
	if err := forge.ValidateStatus(st); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = f.now()
	}
	if f.statuses == nil {
		f.statuses = map[string]map[string]vulnzero.CommitStatus{}
	}
	if f.statuses[st.SHA] == nil {
		f.statuses[st.SHA] = map[string]vulnzero.CommitStatus{}
	}
	f.statuses[st.SHA][st.Context] = st
	return nil
}

// Statuses implements forge.Forge.
func (f *Fake) Statuses(ctx context.Context, sha string) ([]vulnzero.CommitStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []vulnzero.CommitStatus
	for _, st := range f.statuses[sha] {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Context < out[j].Context })
	return out, nil
}

// Merge implements forge.Forge. The merge commit is made up.
func (f *Fake) Merge(ctx context.Context, n int) (vulnzero.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.get(n)
	if err != nil {
		return vulnzero.PullRequest{}, fmt.Errorf("merge %w", err)
	}
	if p.State != vulnzero.PROpen {
		return vulnzero.PullRequest{}, fmt.Errorf("merge pr #%d: it is %s: %w", n, p.State, vulnzero.ErrConflict)
	}
	if head, ok := f.branches[p.Branch]; ok {
		p.HeadSHA = head
	}
	p.State = vulnzero.PRMerged
	p.MergeSHA = FakeSHA(fmt.Sprintf("merge #%d %s", n, p.HeadSHA))
	p.UpdatedAt = f.now()
	if f.branches == nil {
		f.branches = map[string]string{}
	}
	f.branches[p.Base] = p.MergeSHA
	return *p, nil
}

// Comment implements forge.Forge.
func (f *Fake) Comment(ctx context.Context, n int, body string) error {
	if strings.TrimSpace(body) == "" {
		return fmt.Errorf("comment on pr #%d: empty body: %w", n, vulnzero.ErrInvalid)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.get(n); err != nil {
		return fmt.Errorf("comment on %w", err)
	}
	if f.comments == nil {
		f.comments = map[int][]string{}
	}
	f.comments[n] = append(f.comments[n], body)
	return nil
}

// Comments implements forge.Forge.
func (f *Fake) Comments(ctx context.Context, n int) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.get(n); err != nil {
		return nil, fmt.Errorf("comments of %w", err)
	}
	return slices.Clone(f.comments[n]), nil
}

// Close implements forge.Forge.
func (f *Fake) Close(ctx context.Context, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := f.get(n)
	if err != nil {
		return fmt.Errorf("close %w", err)
	}
	switch p.State {
	case vulnzero.PRClosed:
		return nil
	case vulnzero.PRMerged:
		return fmt.Errorf("close pr #%d: it is merged: %w", n, vulnzero.ErrConflict)
	}
	p.State = vulnzero.PRClosed
	p.UpdatedAt = f.now()
	return nil
}
