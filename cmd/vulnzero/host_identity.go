package main

import (
	"context"
	"fmt"
	"io"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/scan"
)

// inventory reads the inventory at the head of the remediation repository,
// fetched first so that hosts added there since the last fetch count; when
// the fetch fails the last fetched inventory is used (with a warning), as
// matching scanned hosts should not depend on the forge being up.
func (a *app) inventory(ctx context.Context) (vulnzero.Inventory, error) {
	if err := a.repo.Fetch(ctx); err != nil {
		a.log.Warn("fetch remediation repository; using the last fetched inventory", "err", err)
	}
	st, err := a.repoState(ctx)
	if err != nil {
		return vulnzero.Inventory{}, fmt.Errorf("read inventory: %w", err)
	}
	return st.Inventory, nil
}

// hostMatcher matches scanned host names against the inventory. An ingest
// never fails for want of the inventory: when it cannot be read, a warning
// goes to errw and the result is nil, which keeps every host as the
// scanner names it.
func (a *app) hostMatcher(ctx context.Context, errw io.Writer) *scan.HostMatcher {
	inv, err := a.inventory(ctx)
	if err != nil {
		fmt.Fprintf(errw, "warning: hosts are kept as the scanner names them: %v\n", err)
		return nil
	}
	return scan.NewHostMatcher(inv)
}
