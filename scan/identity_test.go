package scan

import (
	"errors"
	"slices"
	"testing"

	"vulnzero.dev/vulnzero"
)

func TestHostMatcherMatch(t *testing.T) {
	inv := vulnzero.Inventory{Hosts: []vulnzero.Host{
		{Name: "web-1", Address: "10.0.0.1"},
		{Name: "Web-2", Address: "web-2.example.com"},
		{Name: "db-1.example.com", Address: "2001:db8::10"},
		{Name: "app", Address: "10.0.0.5"},
		{Name: "APP"},                                        // app/APP: case-folded ambiguity
		{Name: "cache-1", Address: "10.0.0.9"},               // shares its address
		{Name: "cache-2", Address: "10.0.0.9"},               // with cache-1
		{Name: "mail.example.com", Address: "10.0.1.1"},      // two FQDN names
		{Name: "mail.example.org", Address: "10.0.1.2"},      // with one first label
		{Name: "", Address: "10.0.0.99"},                     // no name: skipped
		{Name: "lb-1", Address: "::ffff:10.0.0.20"},          // IPv4-mapped IPv6
		{Name: "edge", Address: "edge.internal.example.net"}, // DNS address
	}}
	m := NewHostMatcher(inv)
	for _, tc := range []struct {
		scanned string
		want    string // "" means no match
	}{
		{"web-1", "web-1"},
		{" web-1 ", "web-1"},
		{"WEB-1", "web-1"},
		{"web-2", "Web-2"},
		{"web-1.example.com", "web-1"},
		{"WEB-1.Example.COM.", "web-1"},
		{"10.0.0.1", "web-1"},
		{"web-2.example.com", "Web-2"}, // the address, before the first label
		{"db-1.example.com", "db-1.example.com"},
		{"db-1", "db-1.example.com"},
		{"DB-1", "db-1.example.com"},
		{"2001:db8::10", "db-1.example.com"},
		{"2001:0db8:0:0::10", "db-1.example.com"},
		{"10.0.0.20", "lb-1"},
		{"edge.internal.example.net", "edge"},
		{"EDGE.internal.example.net.", "edge"},
		{"app", "app"}, // exact wins over case folding
		{"APP", "APP"},
		{"App", ""},             // ambiguous: app, APP
		{"app.example.com", ""}, // ambiguous first label
		{"10.0.0.5", "app"},
		{"10.0.0.9", ""}, // ambiguous address
		{"mail", ""},     // ambiguous short name
		{"mail.example.com", "mail.example.com"},
		{"db-1.other.example", ""}, // another domain's FQDN
		{"10.0.0.99", ""},          // its host has no name
		{"10.0.0.2", ""},           // unknown IP
		{"10.0.0", ""},             // not an IP, no such host
		{"web-3", ""},
		{"web-3.example.com", ""},
		{"", ""},
		{"   ", ""},
	} {
		got, ok := m.Match(tc.scanned)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("Match(%q) = %q, %v; want %q", tc.scanned, got, ok, tc.want)
		}
	}
	var nilM *HostMatcher
	if _, ok := nilM.Match("web-1"); ok {
		t.Error("a nil matcher matched")
	}
	if _, ok := NewHostMatcher(vulnzero.Inventory{}).Match("web-1"); ok {
		t.Error("an empty inventory matched")
	}
}

func TestMatchHosts(t *testing.T) {
	m := NewHostMatcher(vulnzero.Inventory{Hosts: []vulnzero.Host{{Name: "web-1", Address: "10.0.0.1"}}})
	boom := errors.New("boom")
	in := []struct {
		f   vulnzero.Finding
		err error
	}{
		{vulnzero.Finding{Host: "web-1.example.com"}, nil}, // coverage marker
		{vulnzero.Finding{Host: "web-1.example.com", Package: "libfoo", CVE: "CVE-2026-1"}, nil},
		{vulnzero.Finding{Host: "10.0.0.1", Package: "libbar", CVE: "CVE-2026-2"}, nil},
		{vulnzero.Finding{Host: "stray"}, nil},
		{vulnzero.Finding{Host: "stray", Package: "libfoo", CVE: "CVE-2026-1"}, nil},
		{vulnzero.Finding{Host: "10.9.9.9", Package: "libfoo", CVE: "CVE-2026-1"}, nil},
		{vulnzero.Finding{Package: "nohost"}, nil},
		{vulnzero.Finding{Host: "other"}, boom},
	}
	seq := func(yield func(vulnzero.Finding, error) bool) {
		for _, x := range in {
			if !yield(x.f, x.err) {
				return
			}
		}
	}
	var unmatched []string
	var hosts []string
	var errs []error
	for f, err := range MatchHosts(seq, m, func(h string) { unmatched = append(unmatched, h) }) {
		hosts = append(hosts, f.Host)
		errs = append(errs, err)
	}
	if want := []string{"web-1", "web-1", "web-1", "stray", "stray", "10.9.9.9", "", "other"}; !slices.Equal(hosts, want) {
		t.Errorf("hosts = %q, want %q", hosts, want)
	}
	if want := []string{"stray", "10.9.9.9"}; !slices.Equal(unmatched, want) {
		t.Errorf("unmatched = %q, want %q (each once; errors are not hosts)", unmatched, want)
	}
	if !errors.Is(errs[len(errs)-1], boom) {
		t.Errorf("the error did not pass through: %v", errs)
	}

	// Stopping early stops the source; a nil callback and a nil matcher are fine.
	n := 0
	for range MatchHosts(seq, m, nil) {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("early stop: %d", n)
	}
	var same []string
	for f := range MatchHosts(seq, nil, nil) {
		same = append(same, f.Host)
	}
	if same[0] != "web-1.example.com" {
		t.Errorf("a nil matcher rewrote %q", same[0])
	}
}
