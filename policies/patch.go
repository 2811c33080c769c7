package policies

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"

	"gopkg.in/yaml.v3"

	"vulnzero.dev/vulnzero"
)

// patchID is what a patch id may look like: it names a directory and a
// branch (vulnzero/<id>), so it is kept to DNS-label characters.
var patchID = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,126}[a-z0-9])?$`)

// cveID accepts CVE ids and other advisory ids (GHSA, DSA, …) but not free text.
var cveID = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9:._-]+$`)

// ParsePatch decodes and validates a patch.yaml. dir is the patch directory's
// name, which must equal the id. Errors are *vulnzero.PositionError with the
// file and line at fault. Scripts are not read here.
func ParsePatch(file, dir string, data []byte) (vulnzero.Patch, error) {
	var p vulnzero.Patch
	root, err := decodeStrict(file, data, &p)
	if err != nil {
		return vulnzero.Patch{}, err
	}
	if err := validatePatch(file, dir, root, &p); err != nil {
		return vulnzero.Patch{}, err
	}
	return p, nil
}

func validatePatch(file, dir string, root *yaml.Node, p *vulnzero.Patch) error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fieldErr(file, root, path, format, args...))
	}
	if p.APIVersion != vulnzero.APIVersion {
		bad("apiVersion", "must be %q, got %q", vulnzero.APIVersion, p.APIVersion)
	}
	if p.Kind != vulnzero.KindPatch {
		bad("kind", "must be %q, got %q", vulnzero.KindPatch, p.Kind)
	}
	switch {
	case p.ID == "":
		bad("id", "required")
	case !patchID.MatchString(p.ID):
		bad("id", "%q must be lowercase letters, digits, '.' and '-' (it names a directory and a branch)", p.ID)
	case dir != "" && p.ID != dir:
		bad("id", "%q does not match its directory patches/%s", p.ID, dir)
	}
	if p.Title == "" {
		bad("title", "required")
	}
	for i, c := range p.CVEs {
		if !cveID.MatchString(c) {
			bad("cves", "entry %d %q is not an advisory id like CVE-2024-1234", i+1, c)
		}
	}
	if p.Package.Name == "" {
		bad("package.name", "required")
	}
	if !p.Package.Manager.Valid() {
		bad("package.manager", "%q is not one of apt, dnf, yum, zypper, apk", p.Package.Manager)
	}
	if p.Package.FixedVersion == "" {
		bad("package.fixedVersion", "required")
	}
	if len(p.Targets.Hosts) == 0 && len(p.Targets.Selector) == 0 {
		bad("targets", "needs a selector or a list of hosts")
	}
	switch p.Generator.Kind {
	case "rules", "llm":
	default:
		bad("generator.kind", "%q is not rules or llm", p.Generator.Kind)
	}
	switch p.Reboot {
	case "":
		p.Reboot = vulnzero.RebootNever
	case vulnzero.RebootNever, vulnzero.RebootIfRequired, vulnzero.RebootAlways:
	default:
		bad("reboot", "%q is not never, if-required or always", p.Reboot)
	}
	for i, hc := range p.HealthChecks {
		if hc.Name == "" || hc.Command == "" {
			bad("healthChecks", "entry %d needs a name and a command", i+1)
		}
	}
	if p.Rollout != nil {
		if e := checkRolloutSpec(*p.Rollout); e != nil {
			errs = append(errs, &vulnzero.PositionError{File: file, Line: lineOf(root, "rollout."+e.at), Err: fmt.Errorf("rollout.%s: %w", e.display, e.err)})
		}
	}
	if p.Timeouts.Apply < 0 || p.Timeouts.Verify < 0 || p.Timeouts.Rollback < 0 {
		bad("timeouts", "must not be negative")
	}
	return errors.Join(errs...)
}

// MarshalPatch renders a patch as patch.yaml.
func MarshalPatch(p vulnzero.Patch) ([]byte, error) {
	return marshal(p)
}

// marshal renders YAML with two-space indents, the style of hand-written files.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
