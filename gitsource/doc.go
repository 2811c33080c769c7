// Package gitsource is VulnZero's side of the remediation repository: it
// fetches it, reads the desired state at a commit, and writes commits back —
// patch branches for proposals and revert commits for rollbacks — with go-git.
//
// The model: a Repo is a bare local clone of one remote. Fetch mirrors the
// remote's branches into refs/remotes/origin/*, and everything VulnZero
// reads or builds starts from those remote-tracking heads, never from local
// branches, so there is no local state that can drift from the remote.
//
// Writing never needs a worktree: CommitFiles edits trees directly in the
// object store (only the directories on the changed paths are rewritten),
// makes one commit on top of the branch's remote head and pushes that commit
// by hash. References are touched only after the remote accepted the push, so
// a rejected push leaves the clone as it was (apart from unreferenced objects
// that git gc prunes). A push rejected because the remote moved is rebuilt
// once on the new head.
//
// A patch's revision is the git tree hash of its patches/<id> directory.
// DirState computes the same hash for a plain directory by building the tree
// objects in memory, so `vulnzero validate` on a working copy and the
// reconciler reading main agree on every revision.
//
// go-git has no revert; RevertPatch writes the inverse change of one patch
// directory as a new commit, with git's own revert message.
package gitsource
