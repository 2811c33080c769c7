package gitsource

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/go-git/go-git/v5/storage/memory"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
)

// CommitRequest is one commit to build and push.
type CommitRequest struct {
	// Branch is committed on and pushed; required.
	Branch string
	// Base is where Branch starts when the remote does not have it yet; the
	// configured branch when empty.
	Base string
	// Files maps repository paths to their new content; nil content deletes
	// the file. *.sh files are committed executable (100755).
	Files map[string][]byte
	// ReplaceDirs are directories whose files not named in Files are
	// deleted, so the directory ends up holding exactly Files.
	ReplaceDirs []string
	// Executable marks further paths as executable, beyond *.sh; optional.
	Executable func(path string) bool
	// Message is the commit message.
	Message string
}

// CommitFiles builds one commit from req on top of Branch's remote head (or
// Base's, when the remote has no Branch yet) and pushes it to Branch. Nothing
// touches a worktree: trees are edited in the object store.
//
// When the tree would not change it returns the current head (Base's head for
// a branch the remote does not have, which is then not created) and pushes
// nothing. A push the remote rejects because Branch moved meanwhile is
// rebuilt once on the fetched head; any other rejection, or a second one, is
// an error naming the remote, the branch and the remote's reason, and leaves
// the clone's references as they were.
func (r *Repo) CommitFiles(ctx context.Context, req CommitRequest) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.commitFiles(ctx, req, nil)
}

// commitFiles is CommitFiles with a precondition: check sees the parent the
// commit is about to be built on (on every attempt) and may refuse it.
func (r *Repo) commitFiles(ctx context.Context, req CommitRequest, check func(parent *object.Commit) error) (string, error) {
	if req.Branch == "" {
		return "", fmt.Errorf("commit: branch required: %w", vulnzero.ErrInvalid)
	}
	if req.Base == "" {
		req.Base = r.cfg.Branch
	}
	if strings.TrimSpace(req.Message) == "" {
		return "", fmt.Errorf("commit on %s: message required: %w", req.Branch, vulnzero.ErrInvalid)
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		built, err := r.head(req.Branch) // zero when the remote has no such branch
		if err != nil && !errors.Is(err, vulnzero.ErrNotFound) {
			return "", err
		}
		parentHash := built
		if built.IsZero() {
			if parentHash, err = r.head(req.Base); err != nil {
				return "", fmt.Errorf("commit on new branch %s: base: %w", req.Branch, err)
			}
		}
		parent, err := r.repo.CommitObject(parentHash)
		if err != nil {
			return "", fmt.Errorf("commit on %s: read parent %s: %w", req.Branch, parentHash, err)
		}
		if check != nil {
			if err := check(parent); err != nil {
				return "", err
			}
		}
		sha, changed, err := r.buildCommit(parent, req)
		if err != nil {
			return "", fmt.Errorf("commit on %s: %w", req.Branch, err)
		}
		if !changed {
			r.log.Debug("nothing to commit", "branch", req.Branch, "head", parentHash.String())
			return parentHash.String(), nil
		}
		pushErr := r.push(ctx, req.Branch, sha)
		if pushErr == nil {
			r.log.Info("pushed", "branch", req.Branch, "commit", sha.String(), "parent", parentHash.String())
			return sha.String(), nil
		}
		if attempt == 1 && r.remoteMoved(ctx, req.Branch, built) {
			r.log.Info("remote moved during push; rebuilding on the new head", "branch", req.Branch, "err", pushErr)
			continue
		}
		return "", fmt.Errorf("push %s to %s: %w", req.Branch, r.url, pushErr)
	}
}

// buildCommit writes the tree and commit for req on parent; changed is false
// when the tree equals the parent's.
func (r *Repo) buildCommit(parent *object.Commit, req CommitRequest) (plumbing.Hash, bool, error) {
	s := r.repo.Storer
	base, err := parent.Tree()
	if err != nil {
		return plumbing.ZeroHash, false, fmt.Errorf("read tree of %s: %w", parent.Hash, err)
	}
	changes, err := toChanges(s, req.Files, req.Executable, base, req.ReplaceDirs)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	tree, err := editTree(s, base, changes)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	if tree == parent.TreeHash {
		return parent.Hash, false, nil
	}
	sig := object.Signature{Name: r.cfg.Author, Email: r.cfg.Email, When: r.cfg.Now()}
	h, err := writeCommit(s, tree, []plumbing.Hash{parent.Hash}, sig, req.Message)
	return h, true, err
}

// push sends commit sha to branch on the remote (fast-forward only) and, once
// the remote accepted it, records it as the branch's remote-tracking head.
func (r *Repo) push(ctx context.Context, branch string, sha plumbing.Hash) error {
	var progress bytes.Buffer
	err := r.repo.PushContext(ctx, &git.PushOptions{
		RemoteName: remoteName,
		RefSpecs:   []config.RefSpec{config.RefSpec(sha.String() + ":" + plumbing.NewBranchReferenceName(branch).String())},
		Auth:       r.cfg.Auth,
		Progress:   &progress,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil {
		if msg := remoteMessage(progress.String()); msg != "" {
			return fmt.Errorf("%w (remote: %s)", r.scrub(err), msg)
		}
		return r.scrub(err)
	}
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(trackingRef(branch), sha)); err != nil {
		return fmt.Errorf("record pushed head: %w", err)
	}
	return nil
}

// remoteMessage keeps the last few lines the remote printed (hook output),
// which usually say why a push was refused.
func remoteMessage(s string) string {
	var lines []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	msg := strings.Join(lines, "; ")
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// remoteMoved fetches and reports whether branch's remote head differs from
// the one a commit was built on (zero: the branch did not exist).
func (r *Repo) remoteMoved(ctx context.Context, branch string, built plumbing.Hash) bool {
	if err := r.fetch(ctx); err != nil {
		r.log.Warn("fetch after rejected push", "branch", branch, "err", err)
		return false
	}
	now, err := r.head(branch)
	if err != nil && !errors.Is(err, vulnzero.ErrNotFound) {
		return false
	}
	return now != built
}

// CommitPatch writes p as patches/<id>/ (patch.yaml and the three scripts,
// replacing whatever else the directory held) in one commit on branch, which
// starts from base when the remote does not have it, and pushes it. It
// returns the new head (or the unchanged one: see CommitFiles).
func (r *Repo) CommitPatch(ctx context.Context, branch, base string, p vulnzero.Patch, message string) (string, error) {
	files, err := patchFiles(p)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	sha, err := r.commitFiles(ctx, CommitRequest{
		Branch:      branch,
		Base:        base,
		Files:       files,
		ReplaceDirs: []string{PatchDir(p.ID)},
		Message:     message,
	}, nil)
	if err != nil {
		return "", fmt.Errorf("commit patch %s: %w", p.ID, err)
	}
	return sha, nil
}

// patchFiles renders a patch's directory, refusing a patch State would
// reject when read back.
func patchFiles(p vulnzero.Patch) (map[string][]byte, error) {
	dir := PatchDir(p.ID)
	meta, err := policies.MarshalPatch(p)
	if err != nil {
		return nil, fmt.Errorf("commit patch %s: marshal: %w", p.ID, err)
	}
	if _, err := policies.ParsePatch(dir+"/"+vulnzero.PatchFile, p.ID, meta); err != nil {
		return nil, fmt.Errorf("commit patch %s: %w", p.ID, err)
	}
	files := map[string][]byte{dir + "/" + vulnzero.PatchFile: meta}
	var errs []error
	for name, data := range map[string][]byte{
		vulnzero.ApplyFile:    p.Scripts.Apply,
		vulnzero.VerifyFile:   p.Scripts.Verify,
		vulnzero.RollbackFile: p.Scripts.Rollback,
	} {
		if len(data) == 0 {
			errs = append(errs, fmt.Errorf("%s/%s is empty: %w", dir, name, vulnzero.ErrInvalid))
			continue
		}
		files[dir+"/"+name] = data
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("commit patch %s: %w", p.ID, err)
	}
	return files, nil
}

// RevertPatch undoes revision rev of patches/<patchID> on the configured
// branch, the way `git revert` would but limited to that directory: it finds
// the commit that introduced rev (walking first parents from the head, the
// newest commit whose patches/<patchID> tree is rev while its parent's is
// not), and commits on top of the current head the directory as it was in
// that commit's parent — or no directory at all when the parent had none.
// The message is git's: `Revert "<subject>"`, "This reverts commit <sha>.",
// and "Reason: <reason>", with a trailer naming what it reverts
// (RevertTrailer) for FindRevert.
//
// When the head's patches/<patchID> is not revision rev (already reverted, or
// changed since), nothing is written and the error wraps ErrConflict.
func (r *Repo) RevertPatch(ctx context.Context, patchID string, rev vulnzero.Revision, reason string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := checkPath(PatchDir(patchID)); err != nil || strings.Contains(patchID, "/") {
		return "", fmt.Errorf("revert patch %q: %w", patchID, vulnzero.ErrInvalid)
	}
	dir := PatchDir(patchID)
	want := plumbing.NewHash(string(rev))
	if err := r.fetch(ctx); err != nil {
		return "", fmt.Errorf("revert patch %s@%s: %w", patchID, rev.Short(), err)
	}
	// atRev refuses to build on a head whose patch directory is not rev, on
	// the first attempt and again if the push has to be rebuilt.
	atRev := func(head *object.Commit) error {
		h, err := r.dirHash(head, dir)
		if err != nil {
			return fmt.Errorf("revert patch %s@%s: %w", patchID, rev.Short(), err)
		}
		if h != want {
			now := "absent"
			if !h.IsZero() {
				now = "revision " + vulnzero.Revision(h.String()).Short()
			}
			return fmt.Errorf("revert patch %s@%s: %s on %s at %s is %s (already reverted or changed): %w",
				patchID, rev.Short(), dir, r.cfg.Branch, head.Hash.String()[:12], now, vulnzero.ErrConflict)
		}
		return nil
	}
	headHash, err := r.head(r.cfg.Branch)
	if err != nil {
		return "", fmt.Errorf("revert patch %s@%s: %w", patchID, rev.Short(), err)
	}
	head, err := r.repo.CommitObject(headHash)
	if err != nil {
		return "", fmt.Errorf("revert patch %s@%s: read head: %w", patchID, rev.Short(), err)
	}
	if err := atRev(head); err != nil {
		return "", err
	}
	intro, before, err := r.introducedBy(head, dir, want)
	if err != nil {
		return "", fmt.Errorf("revert patch %s@%s: %w", patchID, rev.Short(), err)
	}

	files := map[string][]byte{}
	exec := map[string]bool{}
	if before != nil {
		tree, err := before.Tree()
		if err != nil {
			return "", fmt.Errorf("revert patch %s@%s: read %s: %w", patchID, rev.Short(), before.Hash, err)
		}
		old, err := listFiles(r.repo.Storer, tree, dir)
		if err != nil {
			return "", fmt.Errorf("revert patch %s@%s: %w", patchID, rev.Short(), err)
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
	msg += "\n" + RevertTrailer(patchID, rev) + "\n"
	sha, err := r.commitFiles(ctx, CommitRequest{
		Branch:      r.cfg.Branch,
		Files:       files,
		ReplaceDirs: []string{dir},
		Executable:  func(p string) bool { return exec[p] },
		Message:     msg,
	}, atRev)
	if err != nil {
		return "", fmt.Errorf("revert patch %s@%s: %w", patchID, rev.Short(), err)
	}
	r.log.Info("reverted patch", "patch", patchID, "revision", string(rev), "reverted", intro.Hash.String(), "commit", sha)
	return sha, nil
}

// RevertTrailer is the last line of a revert commit RevertPatch writes:
// what it reverts, for FindRevert.
func RevertTrailer(patchID string, rev vulnzero.Revision) string {
	return "VulnZero-Reverts: " + patchID + "@" + string(rev)
}

// maxRevertSearch bounds how far back FindRevert looks: a revert is found
// right after a crash, a few commits from the head at most.
const maxRevertSearch = 1000

// FindRevert returns the revert commit RevertPatch wrote for revision rev
// of patchID on the configured branch, "" when there is none among the
// last maxRevertSearch first-parent commits. A reconciler that died between
// pushing a revert and recording it finds it here instead of writing a
// second one or saying main moved on.
func (r *Repo) FindRevert(ctx context.Context, patchID string, rev vulnzero.Revision) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fetch(ctx); err != nil {
		return "", fmt.Errorf("find revert of %s@%s: %w", patchID, rev.Short(), err)
	}
	h, err := r.head(r.cfg.Branch)
	if err != nil {
		return "", fmt.Errorf("find revert of %s@%s: %w", patchID, rev.Short(), err)
	}
	trailer := RevertTrailer(patchID, rev)
	for range maxRevertSearch {
		c, err := r.repo.CommitObject(h)
		if err != nil {
			return "", fmt.Errorf("find revert of %s@%s: read %s: %w", patchID, rev.Short(), h, err)
		}
		for _, line := range strings.Split(c.Message, "\n") {
			if strings.TrimSpace(line) == trailer {
				return c.Hash.String(), nil
			}
		}
		if len(c.ParentHashes) == 0 {
			break
		}
		h = c.ParentHashes[0]
	}
	return "", nil
}

// introducedBy walks first parents from head (whose dir is want) to the
// newest commit whose parent's dir differs. before is that parent; nil when
// the commit is the root.
func (r *Repo) introducedBy(head *object.Commit, dir string, want plumbing.Hash) (intro, before *object.Commit, err error) {
	c := head
	for {
		if len(c.ParentHashes) == 0 {
			return c, nil, nil
		}
		p, err := r.repo.CommitObject(c.ParentHashes[0])
		if err != nil {
			return nil, nil, fmt.Errorf("read parent of %s: %w", c.Hash, err)
		}
		h, err := r.dirHash(p, dir)
		if err != nil {
			return nil, nil, err
		}
		if h != want {
			return c, p, nil
		}
		c = p
	}
}

// dirHash is the tree hash of dir at commit c, zero when absent.
func (r *Repo) dirHash(c *object.Commit, dir string) (plumbing.Hash, error) {
	t, err := c.Tree()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read tree of %s: %w", c.Hash, err)
	}
	return subtreeHash(r.repo.Storer, t, dir)
}

// PatchRevision returns the revision p will have once committed by
// CommitPatch: the tree hash of its rendered directory. Proposers use it to
// recognise a quarantined revision before it reaches a branch.
func PatchRevision(p vulnzero.Patch) (vulnzero.Revision, error) {
	files, err := patchFiles(p)
	if err != nil {
		return "", err
	}
	s := memory.NewStorage()
	changes, err := toChanges(s, files, nil, nil, nil)
	if err != nil {
		return "", fmt.Errorf("revision of patch %s: %w", p.ID, err)
	}
	root, err := editTree(s, nil, changes)
	if err != nil {
		return "", fmt.Errorf("revision of patch %s: %w", p.ID, err)
	}
	t, err := getTree(s, root)
	if err != nil {
		return "", fmt.Errorf("revision of patch %s: %w", p.ID, err)
	}
	h, err := subtreeHash(s, t, PatchDir(p.ID))
	if err != nil {
		return "", fmt.Errorf("revision of patch %s: %w", p.ID, err)
	}
	return vulnzero.Revision(h.String()), nil
}
