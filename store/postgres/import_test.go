package postgres

import (
	"errors"
	"fmt"
	"iter"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/postgres/pgtest"
)

func openDB(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), pgtest.NewDatabase(t), nil)
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

// A NUL (which text cannot hold) or an invalid byte is stored as U+FFFD,
// the same way every time, so a re-import finds the same key.
func TestImportCleansText(t *testing.T) {
	s := openDB(t)
	f := vulnzero.Finding{Host: "web\x00-1", Package: "java", CVE: "CVE-1", Installed: "17.0.10+7\x00-J", Title: "caf\xe9"}
	imp := vulnzero.Import{Source: "grype", Scanner: "grype", At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for i, want := range [][2]int{{1, 0}, {0, 1}} {
		res, err := s.ImportFindings(t.Context(), imp, seqOf([]vulnzero.Finding{f}))
		if err != nil || res.New != want[0] || res.Updated != want[1] {
			t.Fatalf("import %d: %+v, %v", i, res, err)
		}
	}
	fs, err := s.ListFindings(t.Context(), store.FindingFilter{})
	if err != nil || len(fs) != 1 || fs[0].Host != "web\uFFFD-1" || fs[0].Installed != "17.0.10+7\uFFFD-J" || fs[0].Title != "caf\uFFFD" {
		t.Fatalf("stored %+v, %v", fs, err)
	}
}

// Thousands of findings through COPY, with repeats (the last one wins) and
// markers; a sequence that fails after them stores nothing and leaves the
// connection usable (the staging table goes with the transaction).
func TestImportManyFindings(t *testing.T) {
	s := openDB(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var fs []vulnzero.Finding
	for i := range 5000 {
		fs = append(fs, vulnzero.Finding{Host: fmt.Sprintf("h%02d", i%13), Package: fmt.Sprintf("p%d", i), CVE: "CVE-1", Installed: "1"})
	}
	last := fs[5]
	last.Installed = "2"
	fs = append(fs, last, store.CoverageMarker("clean-host"))
	res, err := s.ImportFindings(t.Context(), vulnzero.Import{Source: "trivy", Scanner: "trivy", Complete: true, At: at}, seqOf(fs))
	if err != nil || res.Read != 5001 || res.New != 5000 || res.Updated != 0 || len(res.Hosts) != 14 {
		t.Fatalf("first import: %+v, %v", res, err)
	}
	got, err := s.ListFindings(t.Context(), store.FindingFilter{Host: last.Host})
	for _, f := range got {
		if f.Package == last.Package && f.Installed != "2" {
			t.Errorf("repeated key stored %q, want the last occurrence's", f.Installed)
		}
	}
	if err != nil {
		t.Fatal(err)
	}

	boom := errors.New("scan.json:9: bad token")
	failing := func(yield func(vulnzero.Finding, error) bool) {
		for _, f := range fs[:3000] {
			if !yield(f, nil) {
				return
			}
		}
		yield(vulnzero.Finding{}, boom)
	}
	for range 2 { // twice: the first failure must not leave the staging table behind
		if _, err := s.ImportFindings(t.Context(), vulnzero.Import{Source: "trivy", Complete: true, At: at.Add(time.Hour)}, failing); !errors.Is(err, boom) {
			t.Fatalf("failing import: %v", err)
		}
	}
	res, err = s.ImportFindings(t.Context(), vulnzero.Import{Source: "trivy", Scanner: "trivy", Complete: true, At: at.Add(2 * time.Hour)}, seqOf(fs[:13]))
	if err != nil || res.Read != 13 || res.New != 0 || res.Updated != 13 || res.Fixed != 5000-13 {
		t.Fatalf("second import: %+v, %v", res, err)
	}
}
