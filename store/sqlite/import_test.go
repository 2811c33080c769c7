package sqlite

import (
	"fmt"
	"iter"
	"path/filepath"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

func openFile(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "vulnzero.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func seqOf(fs []vulnzero.Finding) iter.Seq2[vulnzero.Finding, error] {
	return func(yield func(vulnzero.Finding, error) bool) {
		for _, f := range fs {
			if !yield(f, nil) {
				return
			}
		}
	}
}

// Text that SQLite could hold but PostgreSQL could not is stored as both
// stores store it: a NUL or an invalid byte becomes U+FFFD, the same way
// every time, so a re-import finds the same key.
func TestImportCleansText(t *testing.T) {
	s := openFile(t)
	f := vulnzero.Finding{Host: "web-1", Package: "java", CVE: "CVE-1", Installed: "17.0.10+7\x00-J", Title: "caf\xe9"}
	imp := vulnzero.Import{Source: "grype", Scanner: "grype", At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, want := range [][2]int{{1, 0}, {0, 1}} {
		res, err := s.ImportFindings(t.Context(), imp, seqOf([]vulnzero.Finding{f}))
		if err != nil || res.New != want[0] || res.Updated != want[1] {
			t.Fatalf("import %d: %+v, %v", i, res, err)
		}
	}
	fs, err := s.ListFindings(t.Context(), store.FindingFilter{})
	if err != nil || len(fs) != 1 || fs[0].Installed != "17.0.10+7\uFFFD-J" || fs[0].Title != "caf\uFFFD" {
		t.Fatalf("stored %+v, %v", fs, err)
	}
}

// An import larger than a staging batch, with repeats and markers, counts
// and stores each key once; a later complete import of part of it fixes
// the rest on the hosts it covers.
func TestImportManyFindings(t *testing.T) {
	s := openFile(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var fs []vulnzero.Finding
	for i := range 3*stageBatch + 7 {
		fs = append(fs, vulnzero.Finding{Host: fmt.Sprintf("h%02d", i%13), Package: fmt.Sprintf("p%d", i), CVE: "CVE-1", Installed: "1"})
	}
	fs = append(fs, fs[5], store.CoverageMarker("clean-host"), fs[700])
	res, err := s.ImportFindings(t.Context(), vulnzero.Import{Source: "trivy", Scanner: "trivy", Complete: true, At: at}, seqOf(fs))
	if err != nil || res.Read != 3*stageBatch+9 || res.New != 3*stageBatch+7 || res.Updated != 0 || len(res.Hosts) != 14 {
		t.Fatalf("first import: %+v, %v", res, err)
	}
	res, err = s.ImportFindings(t.Context(), vulnzero.Import{Source: "trivy", Scanner: "trivy", Complete: true, At: at.Add(time.Hour)}, seqOf(fs[:13]))
	if err != nil || res.Read != 13 || res.New != 0 || res.Updated != 13 || res.Fixed != 3*stageBatch+7-13 {
		t.Fatalf("second import: %+v, %v", res, err)
	}
	open, err := s.ListFindings(t.Context(), store.FindingFilter{Status: vulnzero.FindingOpen})
	if err != nil || len(open) != 13 {
		t.Fatalf("%d open findings, %v", len(open), err)
	}
}

// A large scan is read with no write lock held: other writers go on while
// the sequence is still being produced, and the import still sees its
// whole input.
func TestImportDoesNotBlockWritersWhileReading(t *testing.T) {
	s := openFile(t)
	release := make(chan struct{})
	reached := make(chan struct{})
	seq := func(yield func(vulnzero.Finding, error) bool) {
		for i := range 2 * stageBatch {
			if i == stageBatch+1 {
				close(reached)
				<-release // the scanner is slow here
			}
			if !yield(vulnzero.Finding{Host: "web-1", Package: fmt.Sprintf("p%d", i), CVE: "CVE-1"}, nil) {
				return
			}
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ImportFindings(t.Context(), vulnzero.Import{Source: "trivy"}, seq)
		done <- err
	}()
	<-reached
	wrote := make(chan error, 1)
	go func() {
		wrote <- s.Quarantine(t.Context(), vulnzero.Quarantine{PatchID: "p", Revision: "r", Reason: "x", At: time.Now()})
	}()
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("write during an import: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a write waited for an import that is still reading its input")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fs, _ := s.ListFindings(t.Context(), store.FindingFilter{})
	if len(fs) != 2*stageBatch {
		t.Errorf("%d findings stored, want %d", len(fs), 2*stageBatch)
	}
}
