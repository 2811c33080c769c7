package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/memory"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
)

// Paths of the remediation repository layout (DESIGN §1).
const (
	InventoryFile = "inventory/hosts.yaml"
	PoliciesDir   = "policies"
	PatchesDir    = "patches"
)

// PatchDir is the repository path of a patch's directory.
func PatchDir(patchID string) string { return PatchesDir + "/" + patchID }

// State is the desired state read from the repository at one commit.
type State struct {
	// Commit is the commit read; empty for DirState.
	Commit string
	// CommitTime is when Commit was committed (for a merge: the merge), the
	// start of the merge-to-first-host clock; zero for DirState.
	CommitTime time.Time
	// Patches are every patch under patches/, sorted by id.
	Patches []vulnzero.DesiredPatch
	// Inventory is inventory/hosts.yaml; empty when the file is missing.
	Inventory vulnzero.Inventory
	// Policies are policies/*.yaml over the built-in defaults.
	Policies policies.Set
	// PolicyFiles are the policy documents read, by repository path.
	PolicyFiles map[string][]byte
}

// Patch returns the desired patch with the given id.
func (s State) Patch(id string) (vulnzero.DesiredPatch, bool) {
	i := sort.Search(len(s.Patches), func(i int) bool { return s.Patches[i].Patch.ID >= id })
	if i < len(s.Patches) && s.Patches[i].Patch.ID == id {
		return s.Patches[i], true
	}
	return vulnzero.DesiredPatch{}, false
}

// State reads the desired state at commit (a hash, or a revision such as
// "origin/main"). Every problem found is reported, joined: each is a
// *vulnzero.PositionError naming the repository path (and line for YAML), so
// the error matches vulnzero.ErrInvalid. On error the State is empty.
func (r *Repo) State(ctx context.Context, commit string) (State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	c, err := r.commit(commit)
	if err != nil {
		return State{}, fmt.Errorf("read state: %w", err)
	}
	root, err := c.Tree()
	if err != nil {
		return State{}, fmt.Errorf("read state at %s: %w", c.Hash, err)
	}
	st, err := readState(r.repo.Storer, root, c.Hash.String())
	if err != nil {
		return State{}, fmt.Errorf("read state at %s: %w", c.Hash.String()[:12], err)
	}
	st.CommitTime = c.Committer.When.UTC()
	return st, nil
}

// DirState reads the desired state from a plain directory laid out like the
// repository (a working copy, for `vulnzero validate`). Revisions are the
// tree hashes git would compute for the same files: every regular file under
// inventory/, policies/ and patches/ counts (no ignore rules), with the
// executable bit as git records it (100755 when any x bit is set).
func DirState(dir string) (State, error) {
	s := memory.NewStorage()
	var entries []object.TreeEntry
	for _, name := range []string{"inventory", PoliciesDir, PatchesDir} {
		h, empty, err := buildDirTree(s, filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return State{}, fmt.Errorf("read state of %s: %w", dir, err)
		}
		if !empty {
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h})
		}
	}
	rootHash, err := writeTree(s, entries)
	if err != nil {
		return State{}, fmt.Errorf("read state of %s: %w", dir, err)
	}
	root, err := getTree(s, rootHash)
	if err != nil {
		return State{}, fmt.Errorf("read state of %s: %w", dir, err)
	}
	st, err := readState(s, root, "")
	if err != nil {
		return State{}, fmt.Errorf("read state of %s: %w", dir, err)
	}
	return st, nil
}

// buildDirTree stores the files under dir as git tree and blob objects and
// returns the tree's hash; empty is true when dir holds no file at all (git
// would not record it).
func buildDirTree(s storer.EncodedObjectStorer, dir string) (h plumbing.Hash, empty bool, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	var entries []object.TreeEntry
	for _, de := range des {
		name := de.Name()
		p := filepath.Join(dir, name)
		if name == ".git" {
			continue
		}
		info, err := os.Lstat(p)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		switch {
		case info.IsDir():
			sub, empty, err := buildDirTree(s, p)
			if err != nil {
				return plumbing.ZeroHash, false, err
			}
			if !empty {
				entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: sub})
			}
		case info.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return plumbing.ZeroHash, false, err
			}
			bh, err := writeBlob(s, []byte(filepath.ToSlash(target)))
			if err != nil {
				return plumbing.ZeroHash, false, fmt.Errorf("hash %s: %w", p, err)
			}
			entries = append(entries, object.TreeEntry{Name: name, Mode: filemode.Symlink, Hash: bh})
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return plumbing.ZeroHash, false, err
			}
			bh, err := writeBlob(s, data)
			if err != nil {
				return plumbing.ZeroHash, false, fmt.Errorf("hash %s: %w", p, err)
			}
			mode := filemode.Regular
			if info.Mode().Perm()&0o111 != 0 {
				mode = filemode.Executable
			}
			entries = append(entries, object.TreeEntry{Name: name, Mode: mode, Hash: bh})
		default:
			return plumbing.ZeroHash, false, fmt.Errorf("%s: not a regular file, directory or symlink", p)
		}
	}
	if len(entries) == 0 {
		return plumbing.ZeroHash, true, nil
	}
	h, err = writeTree(s, entries)
	return h, false, err
}

// readState parses the repository tree root. Problems are collected, not
// stopped at, so one run shows them all.
func readState(s storer.EncodedObjectStorer, root *object.Tree, commit string) (State, error) {
	st := State{Commit: commit, PolicyFiles: map[string][]byte{}}
	var errs []error
	bad := func(file, format string, args ...any) {
		errs = append(errs, &vulnzero.PositionError{File: file, Err: fmt.Errorf(format, args...)})
	}

	inv, err := entryAt(s, root, InventoryFile)
	switch {
	case err != nil:
		return State{}, err
	case inv == nil:
	case inv.Mode == filemode.Dir:
		bad(InventoryFile, "is a directory, want a YAML file")
	default:
		data, err := readBlob(s, inv.Hash)
		if err != nil {
			return State{}, err
		}
		st.Inventory, err = policies.ParseInventory(InventoryFile, data)
		if err != nil {
			errs = append(errs, err)
		}
	}

	pol, err := treeAt(s, root, PoliciesDir)
	if err != nil {
		return State{}, err
	}
	if pol != nil {
		for _, e := range pol.Entries {
			file := PoliciesDir + "/" + e.Name
			switch {
			case e.Mode == filemode.Dir:
			case strings.HasSuffix(e.Name, ".yml"):
				bad(file, "policy files end in .yaml; rename it so it is read")
			case strings.HasSuffix(e.Name, ".yaml"):
				data, err := readBlob(s, e.Hash)
				if err != nil {
					return State{}, err
				}
				st.PolicyFiles[file] = data
			}
		}
	}
	st.Policies, err = policies.Parse(st.PolicyFiles)
	if err != nil {
		errs = append(errs, err)
	}

	patches, err := treeAt(s, root, PatchesDir)
	if err != nil {
		return State{}, err
	}
	if patches != nil {
		for _, e := range patches.Entries {
			dir := PatchDir(e.Name)
			if e.Mode != filemode.Dir {
				if !strings.HasPrefix(e.Name, ".") { // .gitkeep and friends
					bad(dir, "not a directory: patches/ holds one directory per patch")
				}
				continue
			}
			p, err := readPatch(s, e)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			st.Patches = append(st.Patches, vulnzero.DesiredPatch{Patch: p, Revision: vulnzero.Revision(e.Hash.String()), Commit: commit})
		}
	}
	sort.Slice(st.Patches, func(i, j int) bool { return st.Patches[i].Patch.ID < st.Patches[j].Patch.ID })

	if err := errors.Join(errs...); err != nil {
		return State{}, err
	}
	return st, nil
}

// readPatch parses patches/<name>/: patch.yaml and the three scripts, which
// must be executable files.
func readPatch(s storer.EncodedObjectStorer, dirEntry object.TreeEntry) (vulnzero.Patch, error) {
	dir := PatchDir(dirEntry.Name)
	t, err := getTree(s, dirEntry.Hash)
	if err != nil {
		return vulnzero.Patch{}, err
	}
	byName := map[string]object.TreeEntry{}
	for _, e := range t.Entries {
		byName[e.Name] = e
	}
	var errs []error
	read := func(name string, wantExec bool) []byte {
		file := dir + "/" + name
		e, ok := byName[name]
		switch {
		case !ok:
			errs = append(errs, &vulnzero.PositionError{File: file, Err: fmt.Errorf("missing: every patch needs %s, %s, %s and %s", vulnzero.PatchFile, vulnzero.ApplyFile, vulnzero.VerifyFile, vulnzero.RollbackFile)})
			return nil
		case e.Mode == filemode.Dir:
			errs = append(errs, &vulnzero.PositionError{File: file, Err: errors.New("is a directory, want a file")})
			return nil
		case wantExec && e.Mode != filemode.Executable:
			errs = append(errs, &vulnzero.PositionError{File: file, Err: fmt.Errorf("not executable (git mode %06o, want 100755: git update-index --chmod=+x %s)", uint32(e.Mode), file)})
			return nil
		}
		data, err := readBlob(s, e.Hash)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", file, err))
			return nil
		}
		return data
	}
	meta := read(vulnzero.PatchFile, false)
	scripts := vulnzero.Scripts{
		Apply:    read(vulnzero.ApplyFile, true),
		Verify:   read(vulnzero.VerifyFile, true),
		Rollback: read(vulnzero.RollbackFile, true),
	}
	var p vulnzero.Patch
	if meta != nil {
		p, err = policies.ParsePatch(dir+"/"+vulnzero.PatchFile, dirEntry.Name, meta)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return vulnzero.Patch{}, err
	}
	p.Scripts = scripts
	return p, nil
}

// PatchFiles returns the files of patches/<patchID> at commit, by path
// relative to the patch directory ("patch.yaml", "apply.sh", …). A commit
// without that patch is ErrNotFound.
func (r *Repo) PatchFiles(ctx context.Context, commit, patchID string) (map[string][]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := r.commit(commit)
	if err != nil {
		return nil, fmt.Errorf("files of patch %s: %w", patchID, err)
	}
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("files of patch %s at %s: %w", patchID, c.Hash, err)
	}
	files, err := listFiles(r.repo.Storer, root, PatchDir(patchID))
	if err != nil {
		return nil, fmt.Errorf("files of patch %s at %s: %w", patchID, c.Hash, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("patch %s at %s: %w", patchID, c.Hash.String()[:12], vulnzero.ErrNotFound)
	}
	out := make(map[string][]byte, len(files))
	for p, f := range files {
		out[p] = f.data
	}
	return out, nil
}
