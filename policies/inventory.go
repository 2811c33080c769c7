package policies

import (
	"errors"
	"fmt"
	"regexp"

	"vulnzero.dev/vulnzero"
)

// hostName is what an inventory host name may be: it appears in ledger keys,
// branch-free but shown everywhere, so it is kept to hostname characters.
var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]{0,252})$`)

// ParseInventory decodes and validates inventory/hosts.yaml: every host has a
// unique name and an address, ports are in range, and every group member is
// a host.
func ParseInventory(file string, data []byte) (vulnzero.Inventory, error) {
	var inv vulnzero.Inventory
	root, err := decodeStrict(file, data, &inv)
	if err != nil {
		return vulnzero.Inventory{}, err
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fieldErr(file, root, "hosts", format, args...))
	}
	names := map[string]bool{}
	for i, h := range inv.Hosts {
		switch {
		case !hostName.MatchString(h.Name):
			bad("host %d: name %q must be a hostname", i+1, h.Name)
		case names[h.Name]:
			bad("host %d: name %q is listed twice", i+1, h.Name)
		}
		names[h.Name] = true
		if h.Address == "" {
			bad("host %d (%s): address required", i+1, h.Name)
		}
		if h.Port < 0 || h.Port > 65535 {
			bad("host %d (%s): port %d out of range", i+1, h.Name, h.Port)
		}
	}
	for g, members := range inv.Groups {
		for _, m := range members {
			if !names[m] {
				errs = append(errs, fieldErr(file, root, "groups."+g, "member %q is not a host of this inventory", m))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return vulnzero.Inventory{}, err
	}
	return inv, nil
}

// MarshalInventory renders an inventory as hosts.yaml.
func MarshalInventory(inv vulnzero.Inventory) ([]byte, error) {
	b, err := marshal(inv)
	if err != nil {
		return nil, fmt.Errorf("marshal inventory: %w", err)
	}
	return b, nil
}
