package source

import (
	"context"
	"iter"
	"maps"
	"slices"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/scan"
)

// hostMatch renames the hosts of one run's findings to their inventory
// names and collects the hosts the inventory lacks. A nil *hostMatch (or
// one without a matcher) changes nothing.
type hostMatch struct {
	m         *scan.HostMatcher
	unmatched map[string]bool
}

// hostMatch reads the inventory for one run. Without Deps.Inventory, or
// when it fails, hosts are kept as the scanners name them: a run never
// fails or drops findings for want of the inventory.
func (s *Source) hostMatch(ctx context.Context) *hostMatch {
	if s.deps.Inventory == nil {
		return nil
	}
	inv, err := s.deps.Inventory(ctx)
	if err != nil {
		s.log.Warn("inventory not read; hosts kept as the scanners name them", "err", err)
		return nil
	}
	return &hostMatch{m: scan.NewHostMatcher(inv), unmatched: map[string]bool{}}
}

func (h *hostMatch) apply(seq iter.Seq2[vulnzero.Finding, error]) iter.Seq2[vulnzero.Finding, error] {
	if h == nil {
		return seq
	}
	return scan.MatchHosts(seq, h.m, func(host string) { h.unmatched[host] = true })
}

// sorted returns the unmatched hosts, sorted, once each.
func (h *hostMatch) sorted() []string {
	if h == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(h.unmatched))
}
