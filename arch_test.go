package vulnzero_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "vulnzero.dev/vulnzero"

// pkgFiles maps each package directory (relative, "." for the root) to its
// parsed non-test files' imports and whether any file has a package doc.
type pkgInfo struct {
	imports map[string]bool
	doc     bool
	main    bool
}

func packages(t *testing.T) map[string]*pkgInfo {
	t.Helper()
	pkgs := map[string]*pkgInfo{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		p := pkgs[dir]
		if p == nil {
			p = &pkgInfo{imports: map[string]bool{}}
			pkgs[dir] = p
		}
		p.doc = p.doc || f.Doc != nil
		p.main = f.Name.Name == "main"
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			p.imports[path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// The root package is the vocabulary: standard library only.
func TestRootImportsOnlyStandardLibrary(t *testing.T) {
	for imp := range packages(t)["."].imports {
		if strings.Contains(strings.Split(imp, "/")[0], ".") {
			t.Errorf("root package imports %s; it may import only the standard library", imp)
		}
	}
}

// Each third-party client is wrapped by exactly one adapter.
func TestAdaptersOwnTheirLibraries(t *testing.T) {
	owners := map[string][]string{
		"github.com/google/go-github/": {"forge/github"},
		"github.com/jackc/pgx/":        {"store/postgres"},
		"modernc.org/sqlite":           {"store/sqlite"},
	}
	for dir, p := range packages(t) {
		for imp := range p.imports {
			for lib, allowed := range owners {
				if !strings.HasPrefix(imp, lib) {
					continue
				}
				ok := false
				for _, a := range allowed {
					ok = ok || dir == a || strings.HasPrefix(dir, a+string(os.PathSeparator)) || strings.HasPrefix(dir, a+"test")
				}
				if !ok {
					t.Errorf("%s imports %s; only %v may", dir, imp, allowed)
				}
			}
		}
	}
}

// Every package says what it is for.
func TestEveryPackageHasADocComment(t *testing.T) {
	for dir, p := range packages(t) {
		if !p.doc {
			t.Errorf("package %s has no package doc comment", dir)
		}
	}
}

// Nothing imports cmd/vulnzero, and no package outside cmd imports the CLI
// library: wiring stays in main.
func TestWiringStaysInMain(t *testing.T) {
	for dir, p := range packages(t) {
		if strings.HasPrefix(dir, "cmd") {
			continue
		}
		for imp := range p.imports {
			if strings.HasPrefix(imp, module+"/cmd") || strings.HasPrefix(imp, "github.com/spf13/cobra") {
				t.Errorf("%s imports %s", dir, imp)
			}
		}
	}
}
