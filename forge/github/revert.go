package github

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
)

// revertPrefix starts the branches of revert PRs.
const revertPrefix = forge.BranchPrefix + "revert/"

// RevertBranch is the branch of the PR that reverts revision rev of a patch:
// vulnzero/revert/<patch-id>/<revision, 12 hex digits>.
func RevertBranch(patchID string, rev vulnzero.Revision) string {
	return revertPrefix + patchID + "/" + rev.Short()
}

// IsRevertBranch reports whether branch is a RevertBranch.
func IsRevertBranch(branch string) bool { return strings.HasPrefix(branch, revertPrefix) }

// patchIDOf is the patch a branch proposes or reverts; "" for other
// branches.
func patchIDOf(branch string) string {
	if rest, ok := strings.CutPrefix(branch, revertPrefix); ok {
		id, _, _ := strings.Cut(rest, "/")
		return id
	}
	id, _ := forge.PatchID(branch)
	return id
}

// BranchReverter writes the inverse change of a patch revision as a commit
// on a branch cut from main; *gitsource.Repo satisfies it.
type BranchReverter interface {
	RevertPatchOnBranch(ctx context.Context, patchID string, rev vulnzero.Revision, reason, branch string) (string, error)
}

// RevertPR is the reconciler's Reverter for the "pull-request" revert mode:
// GitHub's REST API cannot revert, so the revert commit is built by git on
// RevertBranch(patch, revision) and proposed as a PR for a person to merge.
// It returns the revert commit on that branch. Repeating it finds the same
// branch and PR, so a reconciler that restarts mid-rollback opens no
// second PR.
type RevertPR struct {
	Git    BranchReverter
	Forge  forge.Forge
	Base   string // the branch the PR merges into; the forge's default when empty
	Logger *slog.Logger
}

// RevertPatch implements the reconciler's Reverter.
func (r RevertPR) RevertPatch(ctx context.Context, patchID string, rev vulnzero.Revision, reason string) (string, error) {
	branch := RevertBranch(patchID, rev)
	sha, err := r.Git.RevertPatchOnBranch(ctx, patchID, rev, reason, branch)
	if err != nil {
		return "", fmt.Errorf("revert pr for %s@%s: %w", patchID, rev.Short(), err)
	}
	body := fmt.Sprintf("Automatic rollback of patch `%s` revision `%s`.\n\n"+
		"The rollout failed and every touched host was rolled back. Merging this PR removes the revision from the "+
		"desired state; until then it is quarantined and will not be applied again.\n\nReason: %s\n",
		patchID, rev.Short(), strings.TrimSpace(reason))
	pr, err := r.Forge.OpenPR(ctx, forge.NewPR{
		PatchID: patchID, Branch: branch, Base: r.Base, HeadSHA: sha,
		Title: fmt.Sprintf("Revert patch %s (revision %s)", patchID, rev.Short()), Body: body,
	})
	if err != nil {
		return "", fmt.Errorf("revert pr for %s@%s: %w", patchID, rev.Short(), err)
	}
	if r.Logger != nil {
		r.Logger.Info("opened revert pr", "patch", patchID, "revision", rev.Short(), "pr", pr.Number, "commit", sha)
	}
	return sha, nil
}
