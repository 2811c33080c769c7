package scan

import (
	"iter"
	"net/netip"
	"strings"

	"vulnzero.dev/vulnzero"
)

// HostMatcher maps the host names scanners report to inventory host names.
// Scanners name one machine differently (Trivy the short name, Qualys the
// FQDN, Nessus the IP), while patches target inventory names, so a finding
// must carry the inventory name to be remediated and deduplicated across
// scanners.
//
// Rules, strongest first; the first rule that finds candidates decides, and
// more than one candidate is ambiguous and matches nothing (a wrong host is
// worse than an unmatched one):
//
//  1. the exact inventory name;
//  2. the name compared case-insensitively (DNS names are);
//  3. the host's address: an IP compared as an IP (so "::1" and "0::1" are
//     one), a DNS name case-insensitively;
//  4. an FQDN whose first label is an inventory name (web-1.example.com is
//     web-1);
//  5. a short name that is the first label of an inventory name that is an
//     FQDN (web-1 is web-1.example.com).
//
// An FQDN is never matched to an inventory FQDN of another domain.
type HostMatcher struct {
	exact  map[string]bool
	folded map[string][]string // lower-case name → names
	addr   map[string][]string // normalized address → names
	short  map[string][]string // lower-case first label of FQDN names → names
}

// NewHostMatcher indexes inv's hosts. Hosts without a name are skipped.
func NewHostMatcher(inv vulnzero.Inventory) *HostMatcher {
	m := &HostMatcher{
		exact:  map[string]bool{},
		folded: map[string][]string{},
		addr:   map[string][]string{},
		short:  map[string][]string{},
	}
	add := func(idx map[string][]string, key, name string) {
		if key == "" {
			return
		}
		for _, n := range idx[key] {
			if n == name {
				return
			}
		}
		idx[key] = append(idx[key], name)
	}
	for _, h := range inv.Hosts {
		if h.Name == "" {
			continue
		}
		m.exact[h.Name] = true
		lower := normalName(h.Name)
		add(m.folded, lower, h.Name)
		add(m.addr, normalAddr(h.Address), h.Name)
		if first, _, ok := strings.Cut(lower, "."); ok && !isIP(lower) {
			add(m.short, first, h.Name)
		}
	}
	return m
}

// Match returns the inventory name of the host a scanner calls scanned; ok
// is false when no host or more than one host fits.
func (m *HostMatcher) Match(scanned string) (name string, ok bool) {
	if m == nil {
		return "", false
	}
	s := strings.TrimSpace(scanned)
	if s == "" {
		return "", false
	}
	if m.exact[s] {
		return s, true
	}
	lower := normalName(s)
	if c := m.folded[lower]; len(c) > 0 {
		return one(c)
	}
	if c := m.addr[normalAddr(s)]; len(c) > 0 {
		return one(c)
	}
	if isIP(lower) {
		return "", false
	}
	if first, _, fqdn := strings.Cut(lower, "."); fqdn {
		return one(m.folded[first])
	}
	return one(m.short[lower])
}

func one(candidates []string) (string, bool) {
	if len(candidates) != 1 {
		return "", false
	}
	return candidates[0], true
}

// normalName lower-cases a DNS name and drops the root's trailing dot.
func normalName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// normalAddr is an IP in canonical form, or a DNS name as normalName.
func normalAddr(s string) string {
	s = strings.TrimSpace(s)
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap().String()
	}
	return normalName(s)
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// MatchHosts rewrites each finding's Host, coverage markers included, to
// its inventory name. A finding whose host matches nothing is kept as it is
// (never dropped: it is still a vulnerability, only not one VulnZero can
// patch until the host joins the inventory), and unmatched, when not nil,
// is called once for each such host. Errors pass through unchanged. A nil m
// leaves every finding as it is.
func MatchHosts(seq iter.Seq2[vulnzero.Finding, error], m *HostMatcher, unmatched func(host string)) iter.Seq2[vulnzero.Finding, error] {
	if m == nil {
		return seq
	}
	return func(yield func(vulnzero.Finding, error) bool) {
		seen := map[string]bool{}
		for f, err := range seq {
			if err == nil && f.Host != "" {
				if name, ok := m.Match(f.Host); ok {
					f.Host = name
				} else if !seen[f.Host] {
					seen[f.Host] = true
					if unmatched != nil {
						unmatched(f.Host)
					}
				}
			}
			if !yield(f, err) {
				return
			}
		}
	}
}
