package gitsource

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"vulnzero.dev/vulnzero"
)

// change is the new state of one file: its content and mode, or deletion.
type change struct {
	data []byte
	mode filemode.FileMode // filemode.Regular or filemode.Executable
	del  bool
}

// toChanges turns a path → content map (nil content = delete) into changes.
// *.sh files, and files executable reports, get mode 100755.
func toChanges(s storer.EncodedObjectStorer, files map[string][]byte, executable func(string) bool, base *object.Tree, replaceDirs []string) (map[string]change, error) {
	changes := make(map[string]change, len(files))
	var errs []error
	for p, data := range files {
		if err := checkPath(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if data == nil {
			changes[p] = change{del: true}
			continue
		}
		mode := filemode.Regular
		if strings.HasSuffix(p, ".sh") || (executable != nil && executable(p)) {
			mode = filemode.Executable
		}
		changes[p] = change{data: data, mode: mode}
	}
	for _, dir := range replaceDirs {
		if err := checkPath(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		old, err := listFiles(s, base, dir)
		if err != nil {
			return nil, err
		}
		for p := range old {
			full := dir + "/" + p
			if _, ok := changes[full]; !ok {
				changes[full] = change{del: true}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return changes, nil
}

// checkPath refuses paths git would not store or that escape the repository.
func checkPath(p string) error {
	bad := p == "" || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, "\\\x00")
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." || strings.EqualFold(part, ".git") {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("path %q: %w: want a relative path like patches/x/apply.sh", p, vulnzero.ErrInvalid)
	}
	return nil
}

// editTree writes the tree that is base (nil: empty) with changes applied and
// returns its hash. Only the directories on changed paths are rewritten;
// directories left empty disappear, as git does not store empty trees.
func editTree(s storer.EncodedObjectStorer, base *object.Tree, changes map[string]change) (plumbing.Hash, error) {
	h, _, err := editTreeRec(s, base, changes)
	return h, err
}

func editTreeRec(s storer.EncodedObjectStorer, base *object.Tree, changes map[string]change) (plumbing.Hash, bool, error) {
	entries := map[string]object.TreeEntry{}
	if base != nil {
		for _, e := range base.Entries {
			entries[e.Name] = e
		}
	}
	nested := map[string]map[string]change{}
	for p, c := range changes {
		name, rest, deeper := strings.Cut(p, "/")
		if deeper {
			if nested[name] == nil {
				nested[name] = map[string]change{}
			}
			nested[name][rest] = c
			continue
		}
		if c.del {
			if e, ok := entries[name]; ok && e.Mode != filemode.Dir {
				delete(entries, name)
			}
			continue
		}
		h, err := writeBlob(s, c.data)
		if err != nil {
			return plumbing.ZeroHash, false, fmt.Errorf("write %s: %w", p, err)
		}
		entries[name] = object.TreeEntry{Name: name, Mode: c.mode, Hash: h}
	}
	for name, sub := range nested {
		var child *object.Tree
		e, exists := entries[name]
		if exists && e.Mode == filemode.Dir {
			t, err := getTree(s, e.Hash)
			if err != nil {
				return plumbing.ZeroHash, false, err
			}
			child = t
		}
		if exists && e.Mode != filemode.Dir && onlyDeletes(sub) {
			continue // deleting below a file: nothing there to delete
		}
		h, empty, err := editTreeRec(s, child, sub)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		if empty {
			delete(entries, name)
			continue
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	}
	list := make([]object.TreeEntry, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	h, err := writeTree(s, list)
	return h, len(list) == 0, err
}

func onlyDeletes(changes map[string]change) bool {
	for _, c := range changes {
		if !c.del {
			return false
		}
	}
	return true
}

// writeBlob stores data as a blob unless the store already has it.
func writeBlob(s storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return store(s, obj)
}

// writeTree stores a tree of entries in git's order and returns its hash.
func writeTree(s storer.EncodedObjectStorer, entries []object.TreeEntry) (plumbing.Hash, error) {
	sort.Sort(object.TreeEntrySorter(entries))
	obj := s.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode tree: %w", err)
	}
	return store(s, obj)
}

// writeCommit stores a commit of tree with the given parents.
func writeCommit(s storer.EncodedObjectStorer, tree plumbing.Hash, parents []plumbing.Hash, sig object.Signature, message string) (plumbing.Hash, error) {
	c := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      message,
		TreeHash:     tree,
		ParentHashes: parents,
	}
	obj := s.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	return store(s, obj)
}

func store(s storer.EncodedObjectStorer, obj plumbing.EncodedObject) (plumbing.Hash, error) {
	h := obj.Hash()
	if s.HasEncodedObject(h) == nil {
		return h, nil
	}
	return s.SetEncodedObject(obj)
}

// entryAt finds the entry at a slash-separated path, walking tree objects
// directly (object.Tree.FindEntry refuses some names git accepts). A missing
// path is (nil, nil).
func entryAt(s storer.EncodedObjectStorer, t *object.Tree, p string) (*object.TreeEntry, error) {
	if t == nil {
		return nil, nil
	}
	parts := strings.Split(p, "/")
	cur := t
	for i, part := range parts {
		var found *object.TreeEntry
		for j := range cur.Entries {
			if cur.Entries[j].Name == part {
				found = &cur.Entries[j]
				break
			}
		}
		if found == nil {
			return nil, nil
		}
		if i == len(parts)-1 {
			return found, nil
		}
		if found.Mode != filemode.Dir {
			return nil, nil
		}
		next, err := getTree(s, found.Hash)
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return nil, nil
}

// treeAt returns the directory at p, or nil when there is none.
func treeAt(s storer.EncodedObjectStorer, t *object.Tree, p string) (*object.Tree, error) {
	e, err := entryAt(s, t, p)
	if err != nil || e == nil || e.Mode != filemode.Dir {
		return nil, err
	}
	return getTree(s, e.Hash)
}

// subtreeHash is the tree hash of the directory at p, or the zero hash.
func subtreeHash(s storer.EncodedObjectStorer, t *object.Tree, p string) (plumbing.Hash, error) {
	e, err := entryAt(s, t, p)
	if err != nil || e == nil || e.Mode != filemode.Dir {
		return plumbing.ZeroHash, err
	}
	return e.Hash, nil
}

func getTree(s storer.EncodedObjectStorer, h plumbing.Hash) (*object.Tree, error) {
	t, err := object.GetTree(s, h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", h, err)
	}
	return t, nil
}

func readBlob(s storer.EncodedObjectStorer, h plumbing.Hash) ([]byte, error) {
	b, err := object.GetBlob(s, h)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", h, err)
	}
	return data, nil
}

// fileEntry is a file found under a directory: its mode and content.
type fileEntry struct {
	mode filemode.FileMode
	data []byte
}

// listFiles returns every file under dir of t (paths relative to dir). A
// missing dir is an empty map.
func listFiles(s storer.EncodedObjectStorer, t *object.Tree, dir string) (map[string]fileEntry, error) {
	files := map[string]fileEntry{}
	d, err := treeAt(s, t, dir)
	if err != nil || d == nil {
		return files, err
	}
	err = walkFiles(s, d, "", func(p string, e object.TreeEntry) error {
		data, err := readBlob(s, e.Hash)
		if err != nil {
			return fmt.Errorf("read %s/%s: %w", dir, p, err)
		}
		files[p] = fileEntry{mode: e.Mode, data: data}
		return nil
	})
	return files, err
}

// walkFiles calls fn for every non-directory entry under t, depth first.
func walkFiles(s storer.EncodedObjectStorer, t *object.Tree, prefix string, fn func(p string, e object.TreeEntry) error) error {
	for _, e := range t.Entries {
		p := path.Join(prefix, e.Name)
		if e.Mode == filemode.Dir {
			st, err := getTree(s, e.Hash)
			if err != nil {
				return err
			}
			if err := walkFiles(s, st, p, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(p, e); err != nil {
			return err
		}
	}
	return nil
}
