// Package forge is where patch proposals live: pull requests, commit statuses
// and comments. Forge is the small interface the rest of VulnZero speaks;
// forge/github implements it on GitHub (and GitHub Enterprise), forge/local
// on a local bare repository plus the store (the embedded default), and
// forge/forgetest holds the conformance suite both must pass and an
// in-memory Fake for tests of the code that uses a forge.
//
// Identity is deterministic: a patch's PR lives on branch Branch(patchID), and
// OpenPR is idempotent by branch, so a proposer that crashed after pushing
// finds its PR instead of opening a second one.
package forge

import (
	"context"
	"fmt"
	"strings"

	"vulnzero.dev/vulnzero"
)

// Forge hosts patch pull requests. Errors wrap vulnzero.ErrNotFound (no such
// PR or branch), vulnzero.ErrConflict (the PR is not in a state that allows
// the operation) or vulnzero.ErrInvalid (bad input), so callers can decide
// with errors.Is.
type Forge interface {
	// OpenPR opens a PR from pr.Branch into pr.Base, or, when an open PR for
	// that branch exists, updates its title, body, base and head instead
	// (same number). The branch must exist on the forge: a branch it does not
	// know and no HeadSHA is ErrNotFound.
	OpenPR(ctx context.Context, pr NewPR) (vulnzero.PullRequest, error)
	// GetPR returns PR number n.
	GetPR(ctx context.Context, n int) (vulnzero.PullRequest, error)
	// ListPRs returns PRs in the given states (all when none), by number.
	ListPRs(ctx context.Context, states ...vulnzero.PRState) ([]vulnzero.PullRequest, error)
	// SetStatus creates or replaces the status of (st.SHA, st.Context).
	SetStatus(ctx context.Context, st vulnzero.CommitStatus) error
	// Statuses returns the statuses of a commit, one per context, by context.
	Statuses(ctx context.Context, sha string) ([]vulnzero.CommitStatus, error)
	// Merge merges open PR n into its base and returns it merged, with
	// MergeSHA. A PR that is not open is ErrConflict.
	Merge(ctx context.Context, n int) (vulnzero.PullRequest, error)
	// Comment adds a comment to PR n (in any state).
	Comment(ctx context.Context, n int, body string) error
	// Comments returns the comments of PR n, oldest first.
	Comments(ctx context.Context, n int) ([]string, error)
	// Close closes open PR n without merging; closing a closed PR is a
	// no-op, closing a merged one is ErrConflict.
	Close(ctx context.Context, n int) error
}

// NewPR is a pull request to open or update.
type NewPR struct {
	PatchID string // defaults to the patch id in Branch
	Branch  string // required: the head branch, Branch(PatchID)
	Base    string // the branch to merge into; the forge's default when empty
	Title   string // required
	Body    string
	// HeadSHA is the commit the caller pushed to Branch. Forges that can see
	// the branch record its actual head.
	HeadSHA string
}

// Validate checks pr and fills PatchID from the branch name.
func (pr *NewPR) Validate() error {
	var problems []string
	if pr.Branch == "" {
		problems = append(problems, "branch required")
	}
	if strings.TrimSpace(pr.Title) == "" {
		problems = append(problems, "title required")
	}
	if pr.PatchID == "" {
		if id, ok := PatchID(pr.Branch); ok {
			pr.PatchID = id
		} else {
			problems = append(problems, "patch id required (or a branch named "+BranchPrefix+"<patch-id>)")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("pull request for %q: %s: %w", pr.Branch, strings.Join(problems, "; "), vulnzero.ErrInvalid)
	}
	return nil
}

// BranchPrefix starts every patch branch.
const BranchPrefix = "vulnzero/"

// Branch is the branch that proposes patch patchID.
func Branch(patchID string) string { return BranchPrefix + patchID }

// PatchID is the patch a branch proposes, when it is a patch branch.
func PatchID(branch string) (string, bool) {
	id, ok := strings.CutPrefix(branch, BranchPrefix)
	return id, ok && id != ""
}

// MaxContextLen is the longest status context GitHub accepts.
const MaxContextLen = 255

// ValidateStatus checks a commit status before any forge stores it: a
// commit hash, a context of 1 to MaxContextLen characters and a known state.
func ValidateStatus(st vulnzero.CommitStatus) error {
	var problems []string
	if !isHex(st.SHA) || (len(st.SHA) != 40 && len(st.SHA) != 64) {
		problems = append(problems, fmt.Sprintf("sha %q is not a commit hash", st.SHA))
	}
	switch n := len(st.Context); {
	case n == 0:
		problems = append(problems, "context required")
	case n > MaxContextLen:
		problems = append(problems, fmt.Sprintf("context is %d characters, at most %d", n, MaxContextLen))
	}
	switch st.State {
	case vulnzero.StatusPending, vulnzero.StatusSuccess, vulnzero.StatusFailure, vulnzero.StatusError:
	default:
		problems = append(problems, fmt.Sprintf("state %q is not pending, success, failure or error", st.State))
	}
	if len(problems) > 0 {
		return fmt.Errorf("commit status %q: %s: %w", st.Context, strings.Join(problems, "; "), vulnzero.ErrInvalid)
	}
	return nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return s != ""
}
