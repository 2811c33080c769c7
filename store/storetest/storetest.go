// Package storetest is the conformance suite every store.Store
// implementation runs, so SQLite, Postgres and any fake behave the same.
//
// Run calls newStore once per subtest and expects a fresh, empty store each
// time; it closes the store when the subtest ends. Times fed to the store
// carry nanoseconds and a non-UTC zone on purpose: a store must hand them
// back in UTC, truncated to store.Precision.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// Run runs the conformance suite against the stores newStore makes.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ImportUpsert", testImportUpsert},
		{"ImportDefaults", testImportDefaults},
		{"ImportComplete", testImportComplete},
		{"ImportReopen", testImportReopen},
		{"ImportScannerFixed", testImportScannerFixed},
		{"ImportDuplicateKey", testImportDuplicateKey},
		{"ImportAtomicOnIteratorError", testImportAtomic},
		{"ImportInvalidFinding", testImportInvalid},
		{"ListFindingsFilter", testListFindingsFilter},
		{"ListImports", testListImports},
		{"PullRequests", testPullRequests},
		{"PullRequestConflict", testPullRequestConflict},
		{"PullRequestNotFound", testPullRequestNotFound},
		{"Statuses", testStatuses},
		{"Rollouts", testRollouts},
		{"RolloutFilter", testRolloutFilter},
		{"HostSteps", testHostSteps},
		{"Ledger", testLedger},
		{"Quarantine", testQuarantine},
		{"Transcripts", testTranscripts},
		{"ScanRuns", testScanRuns},
		{"ZeroTimes", testZeroTimes},
		{"ConcurrentWriters", testConcurrent},
		{"CloseTwice", testCloseTwice},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// zone is deliberately not UTC and base carries nanoseconds: stores must
// return UTC at microsecond precision.
var (
	zone = time.FixedZone("UTC+2", 2*60*60)
	base = time.Date(2025, 3, 1, 12, 0, 0, 123456789, zone)
)

// at returns base plus n hours.
func at(n int) time.Time { return base.Add(time.Duration(n) * time.Hour) }

// stored is what a store hands back for a time it was given.
func stored(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(store.Precision)
}

// checkTime fails unless got is want as stored: equal instant, UTC.
func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	w := stored(want)
	if !got.Equal(w) || (!got.IsZero() && got.Location() != time.UTC) {
		t.Errorf("%s = %v (%v), want %v in UTC", what, got, got.Location(), w)
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

// seq yields the findings in order.
func seq(fs ...vulnzero.Finding) iter.Seq2[vulnzero.Finding, error] {
	return func(yield func(vulnzero.Finding, error) bool) {
		for _, f := range fs {
			if !yield(f, nil) {
				return
			}
		}
	}
}

// seqFailing yields the findings, then err.
func seqFailing(err error, fs ...vulnzero.Finding) iter.Seq2[vulnzero.Finding, error] {
	return func(yield func(vulnzero.Finding, error) bool) {
		for _, f := range fs {
			if !yield(f, nil) {
				return
			}
		}
		yield(vulnzero.Finding{}, err)
	}
}

// finding is a fully populated open finding; the other lifecycle fields
// are set to junk the store must ignore (see fixedBy for a finding the
// scanner reports fixed).
func finding(host, pkg, cve string) vulnzero.Finding {
	return vulnzero.Finding{
		Source:     "trivy-a",
		Scanner:    "trivy",
		Host:       host,
		OS:         "debian 12",
		OSFamily:   "debian",
		Package:    pkg,
		Ecosystem:  "deb",
		Installed:  "1.0-1",
		Fixed:      "1.0-2",
		CVE:        cve,
		Title:      pkg + " is vulnerable (" + cve + ")",
		Severity:   vulnzero.SeverityHigh,
		CVSS:       7.5,
		CVSSVector: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
		RuleID:     "rule-" + cve,
		FirstSeen:  at(-100),
		LastSeen:   at(-100),
		Status:     vulnzero.FindingOpen,
		FixedAt:    at(-99),
	}
}

func importOf(source string, complete bool, when time.Time) vulnzero.Import {
	return vulnzero.Import{Source: source, Scanner: "trivy", File: source + ".json", Complete: complete, At: when}
}

func mustImport(t *testing.T, s store.Store, imp vulnzero.Import, fs ...vulnzero.Finding) vulnzero.ImportResult {
	t.Helper()
	res, err := s.ImportFindings(ctx(t), imp, seq(fs...))
	if err != nil {
		t.Fatalf("ImportFindings(%s): %v", imp.Source, err)
	}
	return res
}

func checkResult(t *testing.T, got vulnzero.ImportResult, read, new, updated, fixed int, hosts ...string) {
	t.Helper()
	if got.ImportID <= 0 {
		t.Errorf("ImportID = %d, want > 0", got.ImportID)
	}
	if got.Read != read || got.New != new || got.Updated != updated || got.Fixed != fixed {
		t.Errorf("result read/new/updated/fixed = %d/%d/%d/%d, want %d/%d/%d/%d",
			got.Read, got.New, got.Updated, got.Fixed, read, new, updated, fixed)
	}
	if len(hosts) == 0 {
		hosts = nil
	}
	gotHosts := got.Hosts
	if len(gotHosts) == 0 {
		gotHosts = nil
	}
	if !reflect.DeepEqual(gotHosts, hosts) {
		t.Errorf("result hosts = %q, want %q (sorted)", got.Hosts, hosts)
	}
}

func listFindings(t *testing.T, s store.Store, f store.FindingFilter) []vulnzero.Finding {
	t.Helper()
	fs, err := s.ListFindings(ctx(t), f)
	if err != nil {
		t.Fatalf("ListFindings(%+v): %v", f, err)
	}
	return fs
}

// findingMap indexes findings by key.
func findingMap(t *testing.T, s store.Store) map[string]vulnzero.Finding {
	t.Helper()
	m := map[string]vulnzero.Finding{}
	for _, f := range listFindings(t, s, store.FindingFilter{}) {
		m[f.Key()] = f
	}
	return m
}

func get(t *testing.T, m map[string]vulnzero.Finding, host, pkg, cve string) vulnzero.Finding {
	t.Helper()
	f, ok := m[vulnzero.Finding{Host: host, Package: pkg, CVE: cve}.Key()]
	if !ok {
		t.Fatalf("finding %s/%s/%s not stored", host, pkg, cve)
	}
	return f
}

// checkLifecycle checks the store-owned fields of a finding.
func checkLifecycle(t *testing.T, f vulnzero.Finding, status vulnzero.FindingStatus, first, last, fixedAt time.Time) {
	t.Helper()
	if f.Status != status {
		t.Errorf("%s/%s/%s status = %q, want %q", f.Host, f.Package, f.CVE, f.Status, status)
	}
	checkTime(t, f.Host+"/"+f.Package+" first_seen", f.FirstSeen, first)
	checkTime(t, f.Host+"/"+f.Package+" last_seen", f.LastSeen, last)
	checkTime(t, f.Host+"/"+f.Package+" fixed_at", f.FixedAt, fixedAt)
}

// withoutLifecycle blanks the store-owned fields, to compare the rest.
func withoutLifecycle(f vulnzero.Finding) vulnzero.Finding {
	f.FirstSeen, f.LastSeen, f.FixedAt, f.Status = time.Time{}, time.Time{}, time.Time{}, ""
	return f
}

func testImportUpsert(t *testing.T, s store.Store) {
	a1 := finding("web-1", "openssl", "CVE-2024-0001")
	a2 := finding("web-1", "zlib", "CVE-2024-0002")
	a2.Fixed, a2.CVSS, a2.CVSSVector, a2.Severity = "", 0, "", vulnzero.SeverityUnknown
	res := mustImport(t, s, importOf("trivy-a", false, at(0)), a1, a2)
	checkResult(t, res, 2, 2, 0, 0, "web-1")

	m := findingMap(t, s)
	if len(m) != 2 {
		t.Fatalf("stored %d findings, want 2", len(m))
	}
	for _, want := range []vulnzero.Finding{a1, a2} {
		got := get(t, m, want.Host, want.Package, want.CVE)
		if !reflect.DeepEqual(withoutLifecycle(got), withoutLifecycle(want)) {
			t.Errorf("stored finding\n got %+v\nwant %+v", withoutLifecycle(got), withoutLifecycle(want))
		}
		checkLifecycle(t, got, vulnzero.FindingOpen, at(0), at(0), time.Time{})
	}

	// A second import updates the fields, moves last_seen, keeps first_seen.
	a1.Installed, a1.Title, a1.Severity = "1.0-1+deb12u1", "new title", vulnzero.SeverityCritical
	res = mustImport(t, s, importOf("trivy-a", false, at(1)), a1)
	checkResult(t, res, 1, 0, 1, 0, "web-1")
	m = findingMap(t, s)
	got := get(t, m, "web-1", "openssl", "CVE-2024-0001")
	if !reflect.DeepEqual(withoutLifecycle(got), withoutLifecycle(a1)) {
		t.Errorf("updated finding\n got %+v\nwant %+v", withoutLifecycle(got), withoutLifecycle(a1))
	}
	checkLifecycle(t, got, vulnzero.FindingOpen, at(0), at(1), time.Time{})
	// Not reported, not complete: untouched.
	checkLifecycle(t, get(t, m, "web-1", "zlib", "CVE-2024-0002"), vulnzero.FindingOpen, at(0), at(0), time.Time{})
	if res2 := res.ImportID; res2 <= 0 {
		t.Errorf("second ImportID = %d", res2)
	}
}

func testImportDefaults(t *testing.T, s store.Store) {
	f := finding("db-1", "postgresql-15", "CVE-2024-1000")
	f.Source, f.Scanner = "", ""
	before := time.Now()
	imp := vulnzero.Import{Source: "grype-nightly", Scanner: "grype", File: "nightly.json"}
	mustImport(t, s, imp, f)
	after := time.Now()

	got := listFindings(t, s, store.FindingFilter{})
	if len(got) != 1 {
		t.Fatalf("stored %d findings, want 1", len(got))
	}
	if got[0].Source != "grype-nightly" || got[0].Scanner != "grype" {
		t.Errorf("source/scanner = %q/%q, want the import's grype-nightly/grype", got[0].Source, got[0].Scanner)
	}
	imps, err := s.ListImports(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(imps) != 1 {
		t.Fatalf("ListImports returned %d imports, want 1", len(imps))
	}
	when := imps[0].At
	if when.Before(before.Truncate(store.Precision)) || when.After(after) {
		t.Errorf("zero Import.At stored as %v, want now (between %v and %v)", when, before, after)
	}
	checkTime(t, "first_seen of an import at now", got[0].FirstSeen, when)
}

func testImportComplete(t *testing.T, s store.Store) {
	mustImport(t, s, importOf("trivy-a", false, at(0)),
		finding("web-1", "openssl", "CVE-1"),
		finding("web-1", "zlib", "CVE-2"),
		finding("web-1", "curl", "CVE-3"),
		finding("web-2", "zlib", "CVE-2"),
	)
	other := finding("web-1", "bash", "CVE-4")
	other.Source = "wazuh"
	mustImport(t, s, importOf("wazuh", false, at(0)), other)

	// Complete import of trivy-a covering web-1 only, no longer reporting
	// zlib and curl: those two become fixed; web-2 and wazuh's are untouched.
	res := mustImport(t, s, importOf("trivy-a", true, at(2)), finding("web-1", "openssl", "CVE-1"))
	checkResult(t, res, 1, 0, 1, 2, "web-1")

	m := findingMap(t, s)
	checkLifecycle(t, get(t, m, "web-1", "openssl", "CVE-1"), vulnzero.FindingOpen, at(0), at(2), time.Time{})
	checkLifecycle(t, get(t, m, "web-1", "zlib", "CVE-2"), vulnzero.FindingFixed, at(0), at(0), at(2))
	checkLifecycle(t, get(t, m, "web-1", "curl", "CVE-3"), vulnzero.FindingFixed, at(0), at(0), at(2))
	checkLifecycle(t, get(t, m, "web-2", "zlib", "CVE-2"), vulnzero.FindingOpen, at(0), at(0), time.Time{})
	checkLifecycle(t, get(t, m, "web-1", "bash", "CVE-4"), vulnzero.FindingOpen, at(0), at(0), time.Time{})

	// Fixing is not repeated: already-fixed findings are not counted again
	// and keep their fixed_at.
	res = mustImport(t, s, importOf("trivy-a", true, at(3)), finding("web-1", "openssl", "CVE-1"))
	checkResult(t, res, 1, 0, 1, 0, "web-1")
	checkLifecycle(t, get(t, findingMap(t, s), "web-1", "zlib", "CVE-2"), vulnzero.FindingFixed, at(0), at(0), at(2))

	// An incomplete import fixes nothing.
	res = mustImport(t, s, importOf("trivy-a", false, at(4)), finding("web-2", "curl", "CVE-3"))
	checkResult(t, res, 1, 1, 0, 0, "web-2")
	checkLifecycle(t, get(t, findingMap(t, s), "web-2", "zlib", "CVE-2"), vulnzero.FindingOpen, at(0), at(0), time.Time{})

	// A complete import with no findings covers no host and fixes nothing.
	res = mustImport(t, s, importOf("trivy-a", true, at(5)))
	checkResult(t, res, 0, 0, 0, 0)
	if open := listFindings(t, s, store.FindingFilter{Status: vulnzero.FindingOpen}); len(open) != 4 {
		t.Errorf("%d open findings after an empty complete import, want 4", len(open))
	}

	// A coverage marker says a host was scanned and is now clean: its
	// findings become fixed, and the marker itself is neither stored nor read.
	res = mustImport(t, s, importOf("trivy-a", true, at(6)), store.CoverageMarker("web-2"))
	checkResult(t, res, 0, 0, 0, 2, "web-2")
	m = findingMap(t, s)
	checkLifecycle(t, get(t, m, "web-2", "zlib", "CVE-2"), vulnzero.FindingFixed, at(0), at(0), at(6))
	checkLifecycle(t, get(t, m, "web-2", "curl", "CVE-3"), vulnzero.FindingFixed, at(4), at(4), at(6))
	checkLifecycle(t, get(t, m, "web-1", "openssl", "CVE-1"), vulnzero.FindingOpen, at(0), at(3), time.Time{})
}

func testImportReopen(t *testing.T, s store.Store) {
	mustImport(t, s, importOf("trivy-a", false, at(0)),
		finding("web-1", "openssl", "CVE-1"), finding("web-1", "zlib", "CVE-2"))
	res := mustImport(t, s, importOf("trivy-a", true, at(1)), finding("web-1", "zlib", "CVE-2"))
	checkResult(t, res, 1, 0, 1, 1, "web-1")
	checkLifecycle(t, get(t, findingMap(t, s), "web-1", "openssl", "CVE-1"), vulnzero.FindingFixed, at(0), at(0), at(1))

	// It comes back: reopened, counted New, first_seen kept, fixed_at cleared.
	res = mustImport(t, s, importOf("trivy-a", false, at(2)), finding("web-1", "openssl", "CVE-1"))
	checkResult(t, res, 1, 1, 0, 0, "web-1")
	checkLifecycle(t, get(t, findingMap(t, s), "web-1", "openssl", "CVE-1"), vulnzero.FindingOpen, at(0), at(2), time.Time{})
}

// fixedBy is f as a scanner reports it once it is gone (DefectDojo
// mitigated, Qualys Fixed, Tenable FIXED), as of when (zero: not said).
func fixedBy(f vulnzero.Finding, when time.Time) vulnzero.Finding {
	f.Status, f.FixedAt = vulnzero.FindingFixed, when
	return f
}

func testImportScannerFixed(t *testing.T, s store.Store) {
	mustImport(t, s, importOf("trivy-a", false, at(0)),
		finding("web-1", "openssl", "CVE-1"), finding("web-1", "zlib", "CVE-2"))

	// The scanner says openssl is fixed (as of half an hour before the
	// import), and reports a key never seen as fixed: the first is closed
	// and counted Fixed; the second is stored fixed and counted nowhere.
	halfPast := at(1).Add(-30 * time.Minute)
	res := mustImport(t, s, importOf("trivy-a", false, at(1)),
		fixedBy(finding("web-1", "openssl", "CVE-1"), halfPast), fixedBy(finding("web-2", "curl", "CVE-3"), time.Time{}))
	checkResult(t, res, 2, 0, 0, 1, "web-1", "web-2")
	m := findingMap(t, s)
	checkLifecycle(t, get(t, m, "web-1", "openssl", "CVE-1"), vulnzero.FindingFixed, at(0), at(1), halfPast)
	checkLifecycle(t, get(t, m, "web-2", "curl", "CVE-3"), vulnzero.FindingFixed, at(1), at(1), at(1))
	checkLifecycle(t, get(t, m, "web-1", "zlib", "CVE-2"), vulnzero.FindingOpen, at(0), at(0), time.Time{})
	if open := listFindings(t, s, store.FindingFilter{Status: vulnzero.FindingOpen}); len(open) != 1 {
		t.Errorf("%d open findings, want 1 (zlib)", len(open))
	}

	// Said again, later: still fixed as of the first time, not counted. A
	// date after the import is taken as the import's.
	res = mustImport(t, s, importOf("trivy-a", false, at(2)), fixedBy(finding("web-1", "openssl", "CVE-1"), at(5)))
	checkResult(t, res, 1, 0, 0, 0, "web-1")
	checkLifecycle(t, get(t, findingMap(t, s), "web-1", "openssl", "CVE-1"), vulnzero.FindingFixed, at(0), at(2), halfPast)

	// Reported open again: reopened, counted New.
	res = mustImport(t, s, importOf("trivy-a", false, at(3)), finding("web-1", "openssl", "CVE-1"))
	checkResult(t, res, 1, 1, 0, 0, "web-1")
	checkLifecycle(t, get(t, findingMap(t, s), "web-1", "openssl", "CVE-1"), vulnzero.FindingOpen, at(0), at(3), time.Time{})

	// A complete import that reports zlib fixed and no longer reports
	// openssl closes both, each counted once; zlib as of the scanner's date
	// (the import's, as it gave none).
	res = mustImport(t, s, importOf("trivy-a", true, at(4)), fixedBy(finding("web-1", "zlib", "CVE-2"), time.Time{}))
	checkResult(t, res, 1, 0, 0, 2, "web-1")
	m = findingMap(t, s)
	checkLifecycle(t, get(t, m, "web-1", "zlib", "CVE-2"), vulnzero.FindingFixed, at(0), at(4), at(4))
	checkLifecycle(t, get(t, m, "web-1", "openssl", "CVE-1"), vulnzero.FindingFixed, at(0), at(3), at(4))
}

func testImportDuplicateKey(t *testing.T, s store.Store) {
	first := finding("web-1", "openssl", "CVE-1")
	second := first
	second.Installed = "9.9"
	res := mustImport(t, s, importOf("trivy-a", false, at(0)), first, finding("web-2", "openssl", "CVE-1"), second)
	checkResult(t, res, 3, 2, 0, 0, "web-1", "web-2")
	got := get(t, findingMap(t, s), "web-1", "openssl", "CVE-1")
	if got.Installed != "9.9" {
		t.Errorf("installed = %q, want the later occurrence's 9.9", got.Installed)
	}
	res = mustImport(t, s, importOf("trivy-a", false, at(1)), first, first)
	checkResult(t, res, 2, 0, 1, 0, "web-1")
}

func testImportAtomic(t *testing.T, s store.Store) {
	mustImport(t, s, importOf("trivy-a", false, at(0)),
		finding("web-1", "openssl", "CVE-1"), finding("web-1", "zlib", "CVE-2"))
	beforeFindings := listFindings(t, s, store.FindingFilter{})
	beforeImports, err := s.ListImports(ctx(t))
	if err != nil {
		t.Fatal(err)
	}

	// Many findings before the error, so batching implementations have
	// already written some of them when it arrives.
	var fs []vulnzero.Finding
	fs = append(fs, finding("web-1", "openssl", "CVE-1")) // would update
	for i := range 1200 {
		fs = append(fs, finding(fmt.Sprintf("web-%d", i%7), fmt.Sprintf("pkg-%d", i), "CVE-9"))
	}
	errParse := errors.New("scan.json:17: unexpected token")
	res, err := s.ImportFindings(ctx(t), importOf("trivy-a", true, at(1)), seqFailing(errParse, fs...))
	if !errors.Is(err, errParse) {
		t.Fatalf("ImportFindings with a failing sequence = %+v, %v; want the sequence's error", res, err)
	}

	if after := listFindings(t, s, store.FindingFilter{}); !reflect.DeepEqual(after, beforeFindings) {
		t.Errorf("findings changed by a failed import:\n got %+v\nwant %+v", after, beforeFindings)
	}
	afterImports, err := s.ListImports(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(afterImports, beforeImports) {
		t.Errorf("imports changed by a failed import:\n got %+v\nwant %+v", afterImports, beforeImports)
	}

	// The store still works afterwards.
	res = mustImport(t, s, importOf("trivy-a", true, at(2)), finding("web-1", "openssl", "CVE-1"))
	checkResult(t, res, 1, 0, 1, 1, "web-1")
}

func testImportInvalid(t *testing.T, s store.Store) {
	bad := finding("web-1", "openssl", "")
	_, err := s.ImportFindings(ctx(t), importOf("trivy-a", false, at(0)),
		seq(finding("web-1", "zlib", "CVE-2"), bad))
	if !errors.Is(err, vulnzero.ErrInvalid) {
		t.Fatalf("ImportFindings with a finding without CVE: %v, want ErrInvalid", err)
	}
	if fs := listFindings(t, s, store.FindingFilter{}); len(fs) != 0 {
		t.Errorf("a rejected import stored %d findings", len(fs))
	}
	if imps, err := s.ListImports(ctx(t)); err != nil || len(imps) != 0 {
		t.Errorf("a rejected import stored imports %+v (err %v)", imps, err)
	}
}

func testListFindingsFilter(t *testing.T, s store.Store) {
	// Imported out of order: the list comes back by host, package, CVE.
	mustImport(t, s, importOf("trivy-a", false, at(0)),
		finding("web-2", "zlib", "CVE-2"),
		finding("web-1", "zlib", "CVE-9"),
		finding("web-1", "zlib", "CVE-10"),
		finding("web-1", "openssl", "CVE-1"),
	)
	other := finding("db-1", "openssl", "CVE-1")
	other.Source = "wazuh"
	mustImport(t, s, importOf("wazuh", false, at(0)), other)
	mustImport(t, s, importOf("trivy-a", true, at(1)),
		finding("web-1", "zlib", "CVE-9"), finding("web-1", "zlib", "CVE-10"))

	keys := func(fs []vulnzero.Finding) []string {
		var ks []string
		for _, f := range fs {
			ks = append(ks, f.Host+"/"+f.Package+"/"+f.CVE)
		}
		return ks
	}
	for _, tc := range []struct {
		filter store.FindingFilter
		want   []string
	}{
		{store.FindingFilter{}, []string{"db-1/openssl/CVE-1", "web-1/openssl/CVE-1", "web-1/zlib/CVE-10", "web-1/zlib/CVE-9", "web-2/zlib/CVE-2"}},
		{store.FindingFilter{Host: "web-1"}, []string{"web-1/openssl/CVE-1", "web-1/zlib/CVE-10", "web-1/zlib/CVE-9"}},
		{store.FindingFilter{Status: vulnzero.FindingFixed}, []string{"web-1/openssl/CVE-1"}},
		{store.FindingFilter{Status: vulnzero.FindingOpen, Host: "web-1"}, []string{"web-1/zlib/CVE-10", "web-1/zlib/CVE-9"}},
		{store.FindingFilter{Source: "wazuh"}, []string{"db-1/openssl/CVE-1"}},
		{store.FindingFilter{Source: "trivy-a", Host: "db-1"}, nil},
		{store.FindingFilter{Host: "nope"}, nil},
	} {
		if got := keys(listFindings(t, s, tc.filter)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListFindings(%+v) = %q, want %q", tc.filter, got, tc.want)
		}
	}
}

func testListImports(t *testing.T, s store.Store) {
	imps := []vulnzero.Import{
		{Source: "trivy-a", Scanner: "trivy", File: "a.json", Complete: true, At: at(0)},
		{Source: "csv-manual", Scanner: "csv", File: "", Complete: false, At: at(2)},
		{Source: "wazuh", Scanner: "wazuh", File: "w.json", Complete: true, At: at(1)},
	}
	var ids []int64
	for _, imp := range imps {
		res := mustImport(t, s, imp, finding("web-1", imp.Source, "CVE-1"))
		ids = append(ids, res.ImportID)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Errorf("import ids not distinct: %v", ids)
	}
	got, err := s.ListImports(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("ListImports returned %d, want 3", len(got))
	}
	for i, wantIdx := range []int{1, 2, 0} { // newest first
		want := imps[wantIdx]
		want.ID = ids[wantIdx]
		want.At = stored(want.At)
		checkTime(t, "import at", got[i].At, imps[wantIdx].At)
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("ListImports[%d] = %+v, want %+v", i, got[i], want)
		}
	}
}

func pr(patch, branch string, state vulnzero.PRState, when time.Time) vulnzero.PullRequest {
	return vulnzero.PullRequest{
		PatchID:   patch,
		Branch:    branch,
		Base:      "main",
		Title:     "Patch " + patch,
		Body:      "## Findings\n\n| host | cve |\n|---|---|\n| web-1 | CVE-1 |\n",
		State:     state,
		HeadSHA:   "1111111111111111111111111111111111111111",
		URL:       "http://forge.local/pr/" + patch,
		CreatedAt: when,
		UpdatedAt: when,
	}
}

func storedPR(p vulnzero.PullRequest) vulnzero.PullRequest {
	p.CreatedAt, p.UpdatedAt = stored(p.CreatedAt), stored(p.UpdatedAt)
	return p
}

func mustCreatePR(t *testing.T, s store.Store, p vulnzero.PullRequest) vulnzero.PullRequest {
	t.Helper()
	got, err := s.CreatePR(ctx(t), p)
	if err != nil {
		t.Fatalf("CreatePR(%s): %v", p.Branch, err)
	}
	return got
}

func numbers(prs []vulnzero.PullRequest) []int {
	var ns []int
	for _, p := range prs {
		ns = append(ns, p.Number)
	}
	return ns
}

func testPullRequests(t *testing.T, s store.Store) {
	in := pr("openssl-a1", "vulnzero/openssl-a1", vulnzero.PROpen, at(0))
	in.Number = 42 // ignored
	p1 := mustCreatePR(t, s, in)
	if p1.Number != 1 {
		t.Errorf("first PR number = %d, want 1", p1.Number)
	}
	want := storedPR(in)
	want.Number = 1
	if !reflect.DeepEqual(p1, want) {
		t.Errorf("CreatePR returned\n %+v\nwant %+v", p1, want)
	}
	got, err := s.GetPR(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetPR(1)\n got %+v\nwant %+v", got, want)
	}
	checkTime(t, "pr created_at", got.CreatedAt, at(0))

	noState := pr("zlib-b2", "vulnzero/zlib-b2", "", at(1))
	p2 := mustCreatePR(t, s, noState)
	if p2.Number != 2 || p2.State != vulnzero.PROpen {
		t.Errorf("second PR number/state = %d/%q, want 2/open", p2.Number, p2.State)
	}
	p3 := mustCreatePR(t, s, pr("curl-c3", "vulnzero/curl-c3", vulnzero.PROpen, at(2)))

	// Update replaces every field.
	p1.State = vulnzero.PRMerged
	p1.MergeSHA = "2222222222222222222222222222222222222222"
	p1.HeadSHA = "3333333333333333333333333333333333333333"
	p1.Title, p1.Body, p1.URL = "merged title", "", ""
	p1.UpdatedAt = at(3)
	if err := s.UpdatePR(ctx(t), p1); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetPR(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := storedPR(p1); !reflect.DeepEqual(got, want) {
		t.Errorf("GetPR after UpdatePR\n got %+v\nwant %+v", got, want)
	}
	p3.State = vulnzero.PRClosed
	if err := s.UpdatePR(ctx(t), p3); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		states []vulnzero.PRState
		want   []int
	}{
		{nil, []int{1, 2, 3}},
		{[]vulnzero.PRState{vulnzero.PROpen}, []int{2}},
		{[]vulnzero.PRState{vulnzero.PRMerged, vulnzero.PRClosed}, []int{1, 3}},
		{[]vulnzero.PRState{vulnzero.PRClosed}, []int{3}},
	} {
		prs, err := s.ListPRs(ctx(t), tc.states...)
		if err != nil {
			t.Fatal(err)
		}
		if got := numbers(prs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListPRs(%v) = %v, want %v", tc.states, got, tc.want)
		}
	}
	all, err := s.ListPRs(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := storedPR(p2); len(all) == 3 && !reflect.DeepEqual(all[1], want) {
		t.Errorf("ListPRs()[1]\n got %+v\nwant %+v", all[1], want)
	}
}

func testPullRequestConflict(t *testing.T, s store.Store) {
	mustCreatePR(t, s, pr("p", "vulnzero/p", vulnzero.PROpen, at(0)))
	_, err := s.CreatePR(ctx(t), pr("p", "vulnzero/p", vulnzero.PROpen, at(1)))
	if !errors.Is(err, vulnzero.ErrConflict) {
		t.Fatalf("second open PR for the same branch: %v, want ErrConflict", err)
	}
	// A closed PR for the branch is history, not a conflict, and the failed
	// create did not use up a number.
	closed := mustCreatePR(t, s, pr("p", "vulnzero/p", vulnzero.PRClosed, at(1)))
	if closed.Number != 2 {
		t.Errorf("number after a conflict = %d, want 2", closed.Number)
	}
	// Once #1 is merged, a new open PR for the branch is fine…
	p1, err := s.GetPR(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	p1.State = vulnzero.PRMerged
	if err := s.UpdatePR(ctx(t), p1); err != nil {
		t.Fatal(err)
	}
	p3 := mustCreatePR(t, s, pr("p", "vulnzero/p", vulnzero.PROpen, at(2)))
	if p3.Number != 3 {
		t.Errorf("number = %d, want 3", p3.Number)
	}
	// …and reopening #1 now conflicts with it.
	p1.State = vulnzero.PROpen
	if err := s.UpdatePR(ctx(t), p1); !errors.Is(err, vulnzero.ErrConflict) {
		t.Errorf("reopening a PR while its branch has another open PR: %v, want ErrConflict", err)
	}
	if got, err := s.GetPR(ctx(t), 1); err != nil || got.State != vulnzero.PRMerged {
		t.Errorf("PR 1 after a rejected update = %+v, %v; want it still merged", got, err)
	}
}

func testPullRequestNotFound(t *testing.T, s store.Store) {
	if _, err := s.GetPR(ctx(t), 7); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("GetPR of a missing PR: %v, want ErrNotFound", err)
	}
	if err := s.UpdatePR(ctx(t), pr("p", "b", vulnzero.PROpen, at(0))); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("UpdatePR of PR 0: %v, want ErrNotFound", err)
	}
	p := pr("p", "b", vulnzero.PROpen, at(0))
	p.Number = 7
	if err := s.UpdatePR(ctx(t), p); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("UpdatePR of a missing PR: %v, want ErrNotFound", err)
	}
	if prs, err := s.ListPRs(ctx(t)); err != nil || len(prs) != 0 {
		t.Errorf("ListPRs of an empty store = %v, %v; want none", prs, err)
	}
}

func testStatuses(t *testing.T, s store.Store) {
	sha1 := "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sha2 := "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	put := func(st vulnzero.CommitStatus) {
		t.Helper()
		if err := s.SetStatus(ctx(t), st); err != nil {
			t.Fatalf("SetStatus(%s, %s): %v", st.SHA, st.Context, err)
		}
	}
	put(vulnzero.CommitStatus{SHA: sha1, Context: "vulnzero/twin", State: vulnzero.StatusPending, Description: "rehearsing", UpdatedAt: at(0)})
	put(vulnzero.CommitStatus{SHA: sha1, Context: "vulnzero/lint", State: vulnzero.StatusSuccess, Description: "ok", TargetURL: "http://x/1", UpdatedAt: at(0)})
	put(vulnzero.CommitStatus{SHA: sha2, Context: "vulnzero/twin", State: vulnzero.StatusError, Description: "boom", UpdatedAt: at(0)})
	twin := vulnzero.CommitStatus{SHA: sha1, Context: "vulnzero/twin", State: vulnzero.StatusFailure, Description: "verify failed", TargetURL: "http://x/transcripts/3", UpdatedAt: at(1)}
	put(twin)

	got, err := s.ListStatuses(ctx(t), sha1)
	if err != nil {
		t.Fatal(err)
	}
	twin.UpdatedAt = stored(twin.UpdatedAt)
	want := []vulnzero.CommitStatus{
		{SHA: sha1, Context: "vulnzero/lint", State: vulnzero.StatusSuccess, Description: "ok", TargetURL: "http://x/1", UpdatedAt: stored(at(0))},
		twin,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListStatuses(sha1)\n got %+v\nwant %+v", got, want)
	}
	if got, err := s.ListStatuses(ctx(t), sha2); err != nil || len(got) != 1 || got[0].State != vulnzero.StatusError {
		t.Errorf("ListStatuses(sha2) = %+v, %v", got, err)
	}
	if got, err := s.ListStatuses(ctx(t), "cccc"); err != nil || len(got) != 0 {
		t.Errorf("ListStatuses of an unknown commit = %+v, %v; want none", got, err)
	}
}

func rollout(patch string, state vulnzero.RolloutState, when time.Time) vulnzero.Rollout {
	return vulnzero.Rollout{
		PatchID:  patch,
		Revision: "0123456789abcdef0123456789abcdef01234567",
		Commit:   "fedcba9876543210fedcba9876543210fedcba98",
		Kind:     vulnzero.RolloutApply,
		Strategy: "canary",
		State:    state,
		Stages: []vulnzero.Stage{
			{Name: "canary", Hosts: []string{"web-1"}, MaxFailures: 0, Soak: 5 * time.Minute},
			{Name: "rest", Hosts: []string{"web-2", "web-3", "db-1"}, MaxFailures: 1, Soak: 1500 * time.Millisecond},
		},
		CreatedAt: when,
		UpdatedAt: when,
	}
}

func storedRollout(r vulnzero.Rollout) vulnzero.Rollout {
	r.CreatedAt, r.UpdatedAt = stored(r.CreatedAt), stored(r.UpdatedAt)
	return r
}

func mustCreateRollout(t *testing.T, s store.Store, r vulnzero.Rollout) vulnzero.Rollout {
	t.Helper()
	got, err := s.CreateRollout(ctx(t), r)
	if err != nil {
		t.Fatalf("CreateRollout(%s): %v", r.PatchID, err)
	}
	return got
}

func testRollouts(t *testing.T, s store.Store) {
	in := rollout("openssl-a1", vulnzero.RolloutPending, at(0))
	r := mustCreateRollout(t, s, in)
	if r.ID <= 0 {
		t.Fatalf("rollout ID = %d, want > 0", r.ID)
	}
	want := storedRollout(in)
	want.ID = r.ID
	if !reflect.DeepEqual(r, want) {
		t.Errorf("CreateRollout returned\n %+v\nwant %+v", r, want)
	}
	got, err := s.GetRollout(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetRollout\n got %+v\nwant %+v", got, want)
	}

	r.State = vulnzero.RolloutFailed
	r.Stage = 1
	r.Reason = "stage rest: 2 of 3 hosts failed (budget 1)"
	r.RevertSHA = "9999999999999999999999999999999999999999"
	r.Stages = append(r.Stages, vulnzero.Stage{Name: "extra", Hosts: []string{"x"}})
	r.Kind = vulnzero.RolloutRollback
	r.UpdatedAt = at(1)
	if err := s.UpdateRollout(ctx(t), r); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetRollout(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := storedRollout(r); !reflect.DeepEqual(got, want) {
		t.Errorf("GetRollout after UpdateRollout\n got %+v\nwant %+v", got, want)
	}

	r2 := mustCreateRollout(t, s, rollout("zlib-b2", vulnzero.RolloutPending, at(2)))
	if r2.ID == r.ID {
		t.Errorf("two rollouts got ID %d", r.ID)
	}
	if _, err := s.GetRollout(ctx(t), r2.ID+100); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("GetRollout of a missing rollout: %v, want ErrNotFound", err)
	}
	missing := r2
	missing.ID = r2.ID + 100
	if err := s.UpdateRollout(ctx(t), missing); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("UpdateRollout of a missing rollout: %v, want ErrNotFound", err)
	}
}

func testRolloutFilter(t *testing.T, s store.Store) {
	a1 := mustCreateRollout(t, s, rollout("openssl-a1", vulnzero.RolloutSucceeded, at(0)))
	b1 := mustCreateRollout(t, s, rollout("zlib-b2", vulnzero.RolloutProgressing, at(1)))
	a2 := mustCreateRollout(t, s, rollout("openssl-a1", vulnzero.RolloutProgressing, at(2)))
	b2 := mustCreateRollout(t, s, rollout("zlib-b2", vulnzero.RolloutFailed, at(3)))
	empty := rollout("empty", vulnzero.RolloutPending, at(4))
	empty.Stages = nil
	e := mustCreateRollout(t, s, empty)

	ids := func(rs []vulnzero.Rollout) []int64 {
		var out []int64
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.RolloutFilter
		want []int64
	}{
		{store.RolloutFilter{}, []int64{a1.ID, b1.ID, a2.ID, b2.ID, e.ID}},
		{store.RolloutFilter{PatchID: "openssl-a1"}, []int64{a1.ID, a2.ID}},
		{store.RolloutFilter{States: []vulnzero.RolloutState{vulnzero.RolloutProgressing}}, []int64{b1.ID, a2.ID}},
		{store.RolloutFilter{States: []vulnzero.RolloutState{vulnzero.RolloutFailed, vulnzero.RolloutPending}}, []int64{b2.ID, e.ID}},
		{store.RolloutFilter{PatchID: "zlib-b2", States: []vulnzero.RolloutState{vulnzero.RolloutProgressing, vulnzero.RolloutSucceeded}}, []int64{b1.ID}},
		{store.RolloutFilter{PatchID: "nope"}, nil},
	} {
		rs, err := s.ListRollouts(ctx(t), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(rs); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListRollouts(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	rs, err := s.ListRollouts(ctx(t), store.RolloutFilter{PatchID: "openssl-a1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := storedRollout(a2); len(rs) == 2 && !reflect.DeepEqual(rs[1], want) {
		t.Errorf("listed rollout\n got %+v\nwant %+v", rs[1], want)
	}
	got, err := s.GetRollout(ctx(t), e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Stages) != 0 {
		t.Errorf("rollout without stages read back with %d stages", len(got.Stages))
	}
}

func testHostSteps(t *testing.T, s store.Store) {
	r := mustCreateRollout(t, s, rollout("openssl-a1", vulnzero.RolloutProgressing, at(0)))
	other := mustCreateRollout(t, s, rollout("zlib-b2", vulnzero.RolloutProgressing, at(0)))
	put := func(st vulnzero.HostStep) {
		t.Helper()
		if err := s.PutHostStep(ctx(t), st); err != nil {
			t.Fatalf("PutHostStep(%d, %s, %s): %v", st.RolloutID, st.Host, st.Phase, err)
		}
	}
	put(vulnzero.HostStep{RolloutID: r.ID, Host: "web-1", Phase: vulnzero.PhaseApply, State: vulnzero.StepStarted, StartedAt: at(1)})
	put(vulnzero.HostStep{RolloutID: r.ID, Host: "web-1", Phase: vulnzero.PhaseVerify, State: vulnzero.StepStarted, StartedAt: at(3)})
	put(vulnzero.HostStep{RolloutID: r.ID, Host: "db-1", Phase: vulnzero.PhaseApply, State: vulnzero.StepStarted, StartedAt: at(2)})
	put(vulnzero.HostStep{RolloutID: other.ID, Host: "web-1", Phase: vulnzero.PhaseApply, State: vulnzero.StepStarted, StartedAt: at(1)})

	// The finished apply replaces the started one, with output that is not
	// valid UTF-8 and holds a NUL: command output is bytes.
	done := vulnzero.HostStep{
		RolloutID:  r.ID,
		Host:       "web-1",
		Phase:      vulnzero.PhaseApply,
		State:      vulnzero.StepFailed,
		ExitCode:   100,
		Stdout:     "Reading package lists...\nE: \xff\xfe broken\x00 tail  \n",
		Stderr:     "dpkg: error processing package openssl\r\n",
		Error:      "apply openssl-a1 on web-1: exit status 100",
		StartedAt:  at(1),
		FinishedAt: at(1).Add(1500 * time.Millisecond),
	}
	put(done)

	got, err := s.ListHostSteps(ctx(t), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, st := range got {
		keys = append(keys, st.Host+"/"+string(st.Phase)+"/"+string(st.State))
	}
	wantKeys := []string{"db-1/apply/started", "web-1/apply/failed", "web-1/verify/started"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Fatalf("ListHostSteps = %q, want %q", keys, wantKeys)
	}
	want := done
	want.StartedAt, want.FinishedAt = stored(done.StartedAt), stored(done.FinishedAt)
	if !reflect.DeepEqual(got[1], want) {
		t.Errorf("stored step\n got %+v\nwant %+v", got[1], want)
	}
	checkTime(t, "finished_at", got[1].FinishedAt, done.FinishedAt)
	if !got[0].FinishedAt.IsZero() {
		t.Errorf("unfinished step has finished_at %v", got[0].FinishedAt)
	}

	if got, err := s.ListHostSteps(ctx(t), other.ID); err != nil || len(got) != 1 {
		t.Errorf("ListHostSteps(other) = %+v, %v; want its one step", got, err)
	}
	if got, err := s.ListHostSteps(ctx(t), other.ID+100); err != nil || len(got) != 0 {
		t.Errorf("ListHostSteps(missing) = %+v, %v; want none", got, err)
	}
	err = s.PutHostStep(ctx(t), vulnzero.HostStep{RolloutID: other.ID + 100, Host: "web-1", Phase: vulnzero.PhaseApply, State: vulnzero.StepStarted, StartedAt: at(1)})
	if !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("PutHostStep for a missing rollout: %v, want ErrNotFound", err)
	}
}

func testLedger(t *testing.T, s store.Store) {
	scripts := vulnzero.Scripts{
		Apply:    []byte("#!/bin/sh\nset -eu\napt-get install -y openssl=3.0.15-1~deb12u1\n"),
		Verify:   []byte("#!/bin/sh\r\ndpkg -s openssl | grep -q '3.0.15'   \n\n"),
		Rollback: []byte("#!/bin/sh\n\x00\xff\xfe binary tail\t"),
	}
	e1 := vulnzero.LedgerEntry{Host: "web-1", PatchID: "openssl-a1", Revision: "rev1", State: vulnzero.LedgerApplying,
		Commit: "c1", RolloutID: 1, Scripts: scripts, UpdatedAt: at(0)}
	e2 := vulnzero.LedgerEntry{Host: "db-1", PatchID: "zlib-b2", Revision: "rev9", State: vulnzero.LedgerRolledBack,
		Commit: "c9", RolloutID: 0, Scripts: vulnzero.Scripts{Apply: []byte("x")}, UpdatedAt: at(1)}
	e3 := vulnzero.LedgerEntry{Host: "web-1", PatchID: "curl-c3", Revision: "rev3", State: vulnzero.LedgerFailed,
		Commit: "c3", RolloutID: 3, UpdatedAt: at(2)}
	for _, e := range []vulnzero.LedgerEntry{e1, e2, e3} {
		if err := s.PutLedger(ctx(t), e); err != nil {
			t.Fatalf("PutLedger(%s, %s): %v", e.Host, e.PatchID, err)
		}
	}
	e1.State, e1.Revision, e1.UpdatedAt = vulnzero.LedgerApplied, "rev2", at(3)
	e1.Scripts.Verify = []byte("#!/bin/sh\ntrue\n")
	if err := s.PutLedger(ctx(t), e1); err != nil {
		t.Fatal(err)
	}

	got, err := s.ListLedger(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []vulnzero.LedgerEntry{e2, e3, e1} // by host, then patch
	if len(got) != len(want) {
		t.Fatalf("ListLedger returned %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		checkTime(t, "ledger updated_at", g.UpdatedAt, w.UpdatedAt)
		for name, pair := range map[string][2][]byte{
			"apply":    {g.Scripts.Apply, w.Scripts.Apply},
			"verify":   {g.Scripts.Verify, w.Scripts.Verify},
			"rollback": {g.Scripts.Rollback, w.Scripts.Rollback},
		} {
			if !bytes.Equal(pair[0], pair[1]) {
				t.Errorf("ledger %s/%s %s script = %q, want %q", w.Host, w.PatchID, name, pair[0], pair[1])
			}
		}
		g.Scripts, w.Scripts = vulnzero.Scripts{}, vulnzero.Scripts{}
		w.UpdatedAt = stored(w.UpdatedAt)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("ListLedger[%d]\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func testQuarantine(t *testing.T, s store.Store) {
	q1 := vulnzero.Quarantine{PatchID: "openssl-a1", Revision: "rev2", Reason: "stage canary failed on web-1", At: at(0)}
	q2 := vulnzero.Quarantine{PatchID: "openssl-a1", Revision: "rev1", Reason: "verify failed", At: at(1)}
	q3 := vulnzero.Quarantine{PatchID: "curl-c3", Revision: "rev7", Reason: "health check failed", At: at(2)}
	for _, q := range []vulnzero.Quarantine{q1, q2, q3} {
		if err := s.Quarantine(ctx(t), q); err != nil {
			t.Fatalf("Quarantine(%s@%s): %v", q.PatchID, q.Revision, err)
		}
	}
	again := q1
	again.Reason, again.At = "second time", at(5)
	if err := s.Quarantine(ctx(t), again); err != nil {
		t.Fatalf("quarantining a revision twice: %v, want no error", err)
	}
	got, err := s.ListQuarantined(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []vulnzero.Quarantine{q3, q2, q1} // by patch, then revision
	for i := range want {
		want[i].At = stored(want[i].At)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListQuarantined\n got %+v\nwant %+v", got, want)
	}
}

func testTranscripts(t *testing.T, s store.Store) {
	in := vulnzero.Transcript{Kind: "twin", Ref: "openssl-a1@1111111", Body: "$ apply.sh\n\x1b[31mred\x1b[0m\n\x00\xff\nexit 0\n", CreatedAt: at(0)}
	tr, err := s.AddTranscript(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	if tr.ID <= 0 {
		t.Fatalf("transcript ID = %d, want > 0", tr.ID)
	}
	want := in
	want.ID, want.CreatedAt = tr.ID, stored(in.CreatedAt)
	if !reflect.DeepEqual(tr, want) {
		t.Errorf("AddTranscript returned\n %+v\nwant %+v", tr, want)
	}
	got, err := s.GetTranscript(ctx(t), tr.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetTranscript\n got %+v\nwant %+v", got, want)
	}
	tr2, err := s.AddTranscript(ctx(t), vulnzero.Transcript{Kind: "twin", Ref: "x", CreatedAt: at(1)})
	if err != nil {
		t.Fatal(err)
	}
	if tr2.ID == tr.ID {
		t.Errorf("two transcripts got ID %d", tr.ID)
	}
	if got, err := s.GetTranscript(ctx(t), tr2.ID); err != nil || got.Body != "" {
		t.Errorf("GetTranscript(empty body) = %+v, %v", got, err)
	}
	tr3, err := s.AddTranscript(ctx(t), vulnzero.Transcript{Kind: "twin", Ref: "openssl-a1@1111111", Body: "second", CreatedAt: at(2)})
	if err != nil {
		t.Fatal(err)
	}
	list, err := s.ListTranscripts(ctx(t), "twin", "openssl-a1@1111111")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != tr.ID || list[1].ID != tr3.ID || list[0].Body != in.Body {
		t.Errorf("ListTranscripts = %+v, want transcripts %d then %d", list, tr.ID, tr3.ID)
	}
	if list, err := s.ListTranscripts(ctx(t), "pr-comment", "openssl-a1@1111111"); err != nil || len(list) != 0 {
		t.Errorf("ListTranscripts of another kind = %+v, %v", list, err)
	}
	if _, err := s.GetTranscript(ctx(t), tr2.ID+100); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("GetTranscript of a missing transcript: %v, want ErrNotFound", err)
	}
}

// testZeroTimes checks that zero times survive as zero, not as year 1 in
// some zone or the Unix epoch.
func testZeroTimes(t *testing.T, s store.Store) {
	p := mustCreatePR(t, s, pr("p", "b", vulnzero.PROpen, time.Time{}))
	if got, err := s.GetPR(ctx(t), p.Number); err != nil || !got.CreatedAt.IsZero() || !got.UpdatedAt.IsZero() {
		t.Errorf("PR with zero times read back as %+v, %v", got, err)
	}
	r := mustCreateRollout(t, s, rollout("p", vulnzero.RolloutPending, time.Time{}))
	if got, err := s.GetRollout(ctx(t), r.ID); err != nil || !got.CreatedAt.IsZero() || !got.UpdatedAt.IsZero() {
		t.Errorf("rollout with zero times read back as %+v, %v", got, err)
	}
	if err := s.PutHostStep(ctx(t), vulnzero.HostStep{RolloutID: r.ID, Host: "h", Phase: vulnzero.PhaseApply, State: vulnzero.StepStarted}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListHostSteps(ctx(t), r.ID); err != nil || len(got) != 1 || !got[0].StartedAt.IsZero() || !got[0].FinishedAt.IsZero() {
		t.Errorf("host step with zero times read back as %+v, %v", got, err)
	}
	tr, err := s.AddTranscript(ctx(t), vulnzero.Transcript{Kind: "twin"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetTranscript(ctx(t), tr.ID); err != nil || !got.CreatedAt.IsZero() {
		t.Errorf("transcript with zero time read back as %+v, %v", got, err)
	}
}

// testConcurrent runs a few writers at once; none may fail (no "database is
// locked", no serialization errors surfacing to callers).
func testConcurrent(t *testing.T, s store.Store) {
	const workers, each = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*6)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				c := ctx(t)
				host := fmt.Sprintf("host-%d-%d", w, i)
				branch := "vulnzero/" + host
				sha := fmt.Sprintf("%040d", w*100+i)
				if _, err := s.CreatePR(c, pr(host, branch, vulnzero.PROpen, at(i))); err != nil {
					errs <- fmt.Errorf("CreatePR %s: %w", branch, err)
				}
				if err := s.SetStatus(c, vulnzero.CommitStatus{SHA: sha, Context: "vulnzero/twin", State: vulnzero.StatusPending, UpdatedAt: at(i)}); err != nil {
					errs <- fmt.Errorf("SetStatus %s: %w", sha, err)
				}
				if _, err := s.ImportFindings(c, importOf(fmt.Sprintf("src-%d", w), true, at(i)),
					seq(finding(host, "openssl", "CVE-1"), finding(host, "zlib", "CVE-2"))); err != nil {
					errs <- fmt.Errorf("ImportFindings %s: %w", host, err)
				}
				if err := s.PutLedger(c, vulnzero.LedgerEntry{Host: host, PatchID: "p", State: vulnzero.LedgerApplied, UpdatedAt: at(i)}); err != nil {
					errs <- fmt.Errorf("PutLedger %s: %w", host, err)
				}
				if _, err := s.AddTranscript(c, vulnzero.Transcript{Kind: "twin", Ref: host, Body: host, CreatedAt: at(i)}); err != nil {
					errs <- fmt.Errorf("AddTranscript %s: %w", host, err)
				}
				if err := s.Quarantine(c, vulnzero.Quarantine{PatchID: "shared", Revision: "rev", Reason: host, At: at(i)}); err != nil {
					errs <- fmt.Errorf("quarantine from %s: %w", host, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	prs, err := s.ListPRs(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	got := numbers(prs)
	sort.Ints(got)
	var want []int
	for n := 1; n <= workers*each; n++ {
		want = append(want, n)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PR numbers after concurrent creates = %v, want 1..%d without gaps", got, workers*each)
	}
	if fs := listFindings(t, s, store.FindingFilter{Status: vulnzero.FindingOpen}); len(fs) != 2*workers*each {
		t.Errorf("%d open findings after concurrent imports, want %d", len(fs), 2*workers*each)
	}
	if l, err := s.ListLedger(ctx(t)); err != nil || len(l) != workers*each {
		t.Errorf("ListLedger after concurrent puts: %d entries, %v; want %d", len(l), err, workers*each)
	}
	if q, err := s.ListQuarantined(ctx(t)); err != nil || len(q) != 1 {
		t.Errorf("ListQuarantined after concurrent quarantines: %+v, %v; want one", q, err)
	}
}

func testCloseTwice(t *testing.T, s store.Store) {
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Run's cleanup closes it again, which must be a no-op.
}
