package source

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero/store"
)

// dropFile writes a file into the drop directory with the given age.
func dropFile(t *testing.T, dir, name string, data []byte, mod time.Time) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mod, mod); err != nil {
		t.Fatal(err)
	}
	return p
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestFileDrop imports recorded reports dropped into a directory into a real
// SQLite store: settled files import oldest first and move to done/; a bad
// file stays with NAME.error beside it and does not stop the others; it is
// not retried until it changes; a file still being written waits.
func TestFileDrop(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	old := now.Add(-time.Hour)
	trivy := realdata(t, "scanners/trivy/debian-buster.json")
	alpine := realdata(t, "scanners/trivy/alpine-310.json")

	dropFile(t, dir, "b-debian.json", trivy, old.Add(time.Minute))
	dropFile(t, dir, "a-alpine.json", alpine, old)
	bad := dropFile(t, dir, "c-broken.json", trivy[:len(trivy)/2], old.Add(2*time.Minute))
	dropFile(t, dir, "d-copying.json", trivy, now.Add(-time.Second)) // not settled
	dropFile(t, dir, ".hidden.json", trivy, old)
	dropFile(t, dir, "e-upload.json.part", trivy, old)
	dropFile(t, dir, "f-empty.json", nil, old.Add(3*time.Minute))

	st := newSQLite(t)
	deps := testDeps(st, &sleeper{})
	clock := now
	deps.Now = func() time.Time { return clock }
	s := mustNew(t, Config{Name: "drops", Type: TypeFile, Path: dir}, deps)

	res, err := s.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "1 of 4 files failed") {
		t.Fatalf("run: %v, want an error naming %s", err, bad)
	}
	if !slices.Equal(res.Failed, []string{"c-broken.json"}) || len(res.Imports) != 3 {
		t.Errorf("result = %+v, want 3 imports and c-broken.json failed", res)
	}
	for _, name := range []string{"a-alpine.json", "b-debian.json", "f-empty.json"} {
		if exists(filepath.Join(dir, name)) || !exists(filepath.Join(dir, DoneDir, name)) {
			t.Errorf("%s was not moved to %s/", name, DoneDir)
		}
	}
	for _, name := range []string{"c-broken.json", "d-copying.json", ".hidden.json", "e-upload.json.part"} {
		if !exists(filepath.Join(dir, name)) {
			t.Errorf("%s is gone; it should have been left", name)
		}
	}
	report, err := os.ReadFile(bad + ErrorSuffix)
	if err != nil {
		t.Fatalf("no error report beside the bad file: %v", err)
	}
	if !strings.Contains(string(report), bad+":") {
		t.Errorf("error report %q does not name the file and position", report)
	}
	imps, err := st.ListImports(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, imp := range imps {
		files = append(files, filepath.Base(imp.File))
		if imp.Source != "drops" || !imp.Complete {
			t.Errorf("import %+v, want complete imports of source drops", imp)
		}
	}
	// Newest first: the oldest file was imported first.
	if !slices.Equal(files, []string{"f-empty.json", "b-debian.json", "a-alpine.json"}) {
		t.Errorf("imports (newest first) = %v, want oldest file imported first", files)
	}
	fs, err := st.ListFindings(t.Context(), store.FindingFilter{Source: "drops"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != res.Read || res.Read == 0 {
		t.Errorf("stored %d findings, read %d", len(fs), res.Read)
	}

	// Next run: the bad file is unchanged (skipped, no error); the copy
	// has settled.
	clock = now.Add(time.Minute)
	res, err = s.Run(t.Context())
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if len(res.Imports) != 1 || !exists(filepath.Join(dir, DoneDir, "d-copying.json")) {
		t.Errorf("second run = %+v, want only d-copying.json imported", res)
	}

	// The bad file is replaced by a good one: it imports, and its report
	// goes. Its name is taken in done/, so it gets the import time added.
	dropFile(t, dir, "c-broken.json", trivy, clock.Add(time.Second))
	dropFile(t, dir, "b-debian.json", trivy, clock.Add(time.Second))
	clock = clock.Add(time.Minute)
	res, err = s.Run(t.Context())
	if err != nil {
		t.Fatalf("third run: %v", err)
	}
	if len(res.Imports) != 2 || exists(bad) || exists(bad+ErrorSuffix) {
		t.Errorf("third run = %+v; the fixed file should be imported and its report removed", res)
	}
	done, _ := os.ReadDir(filepath.Join(dir, DoneDir))
	if len(done) != 6 {
		var names []string
		for _, d := range done {
			names = append(names, d.Name())
		}
		t.Errorf("done/ holds %v, want 6 files (the second b-debian.json renamed)", names)
	}
}

// TestFileDropMissingDir: a drop directory that does not exist is an error
// naming it.
func TestFileDropMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	s := mustNew(t, Config{Name: "drops", Type: TypeFile, Path: dir}, testDeps(&fakeImporter{}, &sleeper{}))
	if _, err := s.Run(t.Context()); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("run: %v, want an error naming %s", err, dir)
	}
}
