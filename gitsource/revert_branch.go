package gitsource

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"

	"vulnzero.dev/vulnzero"
)

// RevertPatchOnBranch is RevertPatch for the "pull-request" revert mode:
// the same inverse change of patches/<patchID> (git's revert message and
// all), committed on branch — cut from the configured branch when the
// remote does not have it — instead of on the configured branch itself, so
// a person merges it. The configured branch's head must hold revision rev
// (else ErrConflict, nothing written). Calling it again once the branch
// holds the revert writes nothing and returns the branch's head.
func (r *Repo) RevertPatchOnBranch(ctx context.Context, patchID string, rev vulnzero.Revision, reason, branch string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := checkPath(PatchDir(patchID)); err != nil || strings.Contains(patchID, "/") {
		return "", fmt.Errorf("revert patch %q on %s: %w", patchID, branch, vulnzero.ErrInvalid)
	}
	if branch == "" || branch == r.cfg.Branch {
		return "", fmt.Errorf("revert patch %s on %q: a branch other than %s is required: %w", patchID, branch, r.cfg.Branch, vulnzero.ErrInvalid)
	}
	dir := PatchDir(patchID)
	want := plumbing.NewHash(string(rev))
	if err := r.fetch(ctx); err != nil {
		return "", fmt.Errorf("revert patch %s@%s on %s: %w", patchID, rev.Short(), branch, err)
	}
	headHash, err := r.head(r.cfg.Branch)
	if err != nil {
		return "", fmt.Errorf("revert patch %s@%s on %s: %w", patchID, rev.Short(), branch, err)
	}
	head, err := r.repo.CommitObject(headHash)
	if err != nil {
		return "", fmt.Errorf("revert patch %s@%s on %s: read head: %w", patchID, rev.Short(), branch, err)
	}
	if h, err := r.dirHash(head, dir); err != nil {
		return "", fmt.Errorf("revert patch %s@%s on %s: %w", patchID, rev.Short(), branch, err)
	} else if h != want {
		return "", fmt.Errorf("revert patch %s@%s on %s: %s on %s is not that revision (already reverted or changed): %w",
			patchID, rev.Short(), branch, dir, r.cfg.Branch, vulnzero.ErrConflict)
	}
	intro, before, err := r.introducedBy(head, dir, want)
	if err != nil {
		return "", fmt.Errorf("revert patch %s@%s on %s: %w", patchID, rev.Short(), branch, err)
	}
	files := map[string][]byte{}
	exec := map[string]bool{}
	if before != nil {
		tree, err := before.Tree()
		if err != nil {
			return "", fmt.Errorf("revert patch %s@%s on %s: read %s: %w", patchID, rev.Short(), branch, before.Hash, err)
		}
		old, err := listFiles(r.repo.Storer, tree, dir)
		if err != nil {
			return "", fmt.Errorf("revert patch %s@%s on %s: %w", patchID, rev.Short(), branch, err)
		}
		for p, f := range old {
			files[dir+"/"+p] = f.data
			exec[dir+"/"+p] = f.mode == filemode.Executable
		}
	}
	subject, _, _ := strings.Cut(strings.TrimSpace(intro.Message), "\n")
	msg := fmt.Sprintf("Revert \"%s\"\n\nThis reverts commit %s.\n", subject, intro.Hash)
	if reason = strings.TrimSpace(reason); reason != "" {
		msg += "\nReason: " + reason + "\n"
	}
	sha, err := r.commitFiles(ctx, CommitRequest{
		Branch:      branch,
		Base:        r.cfg.Branch,
		Files:       files,
		ReplaceDirs: []string{dir},
		Executable:  func(p string) bool { return exec[p] },
		Message:     msg,
	}, nil)
	if err != nil {
		return "", fmt.Errorf("revert patch %s@%s on %s: %w", patchID, rev.Short(), branch, err)
	}
	r.log.Info("reverted patch on branch", "patch", patchID, "revision", string(rev), "reverted", intro.Hash.String(), "branch", branch, "commit", sha)
	return sha, nil
}
