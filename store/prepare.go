package store

import (
	"fmt"
	"time"

	"vulnzero.dev/vulnzero"
)

// Precision is the resolution at which stores keep times. Both databases
// hold microseconds, so every implementation truncates to it (and converts
// to UTC) before writing; values read back compare equal with time.Equal.
const Precision = time.Microsecond

// PrepareImport applies ImportFindings' rules to the import itself: a zero
// At means now, and At is kept in UTC at Precision. now is passed in so fakes
// and tests control the clock.
func PrepareImport(imp vulnzero.Import, now func() time.Time) vulnzero.Import {
	if imp.At.IsZero() {
		imp.At = now()
	}
	imp.At = imp.At.UTC().Truncate(Precision)
	return imp
}

// CoverageMarker returns the marker that says an import scanned host (see
// Store.ImportFindings); parsers yield one for every host a report covers.
func CoverageMarker(host string) vulnzero.Finding { return vulnzero.Finding{Host: host} }

// IsCoverageMarker reports whether f only marks its host as scanned.
func IsCoverageMarker(f vulnzero.Finding) bool {
	return f.Host != "" && f.Package == "" && f.CVE == ""
}

// PrepareFinding applies ImportFindings' input rules to the n-th (1-based)
// finding of imp, so that every implementation stores the same thing:
// Source and Scanner default to the import's; Host, Package and CVE (the key)
// must be set; and the store owns the lifecycle fields, so FirstSeen and
// LastSeen are imp.At and the finding is open, unless the scanner itself
// reported it fixed (Status FindingFixed), which is kept with FixedAt the
// scanner's date (imp.At when it gave none or a later one).
// imp must already have gone through PrepareImport.
func PrepareFinding(imp vulnzero.Import, n int, f vulnzero.Finding) (vulnzero.Finding, error) {
	if f.Source == "" {
		f.Source = imp.Source
	}
	if f.Scanner == "" {
		f.Scanner = imp.Scanner
	}
	var missing string
	switch {
	case f.Host == "":
		missing = "host"
	case f.Package == "":
		missing = "package"
	case f.CVE == "":
		missing = "cve"
	}
	if missing != "" {
		file := imp.File
		if file == "" {
			file = imp.Source
		}
		return f, &vulnzero.PositionError{
			File: file,
			Path: fmt.Sprintf("finding %d", n),
			Err:  fmt.Errorf("empty %s (host %q, package %q, cve %q)", missing, f.Host, f.Package, f.CVE),
		}
	}
	f.FirstSeen = imp.At
	f.LastSeen = imp.At
	if f.Status == vulnzero.FindingFixed {
		// The scanner says it is gone (DefectDojo mitigated, Qualys
		// Fixed, Tenable FIXED), as of its own date when it gave one.
		if f.FixedAt.IsZero() || f.FixedAt.After(imp.At) {
			f.FixedAt = imp.At
		}
		f.FixedAt = f.FixedAt.UTC().Truncate(Precision)
		return f, nil
	}
	f.Status = vulnzero.FindingOpen
	f.FixedAt = time.Time{}
	return f, nil
}
