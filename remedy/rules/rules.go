// Package rules generates patches deterministically from package-manager
// templates: the same request always yields byte-identical scripts, so a
// re-run finds its existing PR unchanged and a reviewer reads the same
// well-known script every time.
//
// Each template is a POSIX sh script (the fleet runs scripts with
// /bin/sh -s, which is dash on Debian) rendered with text/template. Every
// value that reaches a script is validated against its grammar first
// (Debian package names and versions, patch ids, CVE ids) and then
// single-quoted, so nothing a scanner reports can become shell code.
//
// Only apt has a template today; the other managers are rejected with
// ErrInvalid until their templates exist.
package rules

import (
	"bytes"
	"embed"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"vulnzero.dev/vulnzero"
)

// Request is what the generator needs to write one patch.
type Request struct {
	PatchID      string
	Title        string // optional; derived from package, version and CVEs when empty
	Package      string
	Manager      vulnzero.PackageManager
	FixedVersion string
	CVEs         []string
	Hosts        []string
}

// Provider is the Generator.Provider recorded in patches made here.
const Provider = "vulnzero-rules"

//go:embed templates
var templateFS embed.FS

// aptTemplates holds common.sh.tmpl plus the three scripts; parsed once.
var aptTemplates = template.Must(template.New("apt").
	Funcs(template.FuncMap{"shq": ShellQuote, "join": strings.Join}).
	ParseFS(templateFS, "templates/apt/*.sh.tmpl"))

// Generate validates req and returns a complete patch with its scripts.
// Invalid input and managers without a template yield an error wrapping
// vulnzero.ErrInvalid that names the field and the reason.
func Generate(req Request) (vulnzero.Patch, error) {
	if err := validate(req); err != nil {
		return vulnzero.Patch{}, fmt.Errorf("generate patch %q: %w", req.PatchID, err)
	}
	var scripts vulnzero.Scripts
	switch req.Manager {
	case vulnzero.APT:
		s, err := renderApt(req)
		if err != nil {
			return vulnzero.Patch{}, fmt.Errorf("generate patch %s: %w", req.PatchID, err)
		}
		scripts = s
	default:
		return vulnzero.Patch{}, fmt.Errorf("generate patch %s: package manager %s has no rules template yet: %w",
			req.PatchID, req.Manager, vulnzero.ErrInvalid)
	}

	title := req.Title
	if title == "" {
		title = fmt.Sprintf("Upgrade %s to %s", req.Package, req.FixedVersion)
		if len(req.CVEs) > 0 {
			title += " (" + strings.Join(req.CVEs, ", ") + ")"
		}
	}
	return vulnzero.Patch{
		APIVersion: vulnzero.APIVersion,
		Kind:       vulnzero.KindPatch,
		ID:         req.PatchID,
		Title:      title,
		CVEs:       append([]string(nil), req.CVEs...),
		Package: vulnzero.PackageRef{
			Name:         req.Package,
			Manager:      req.Manager,
			FixedVersion: req.FixedVersion,
		},
		Targets:   vulnzero.Targets{Hosts: append([]string(nil), req.Hosts...)},
		Generator: vulnzero.Generator{Kind: "rules", Provider: Provider},
		Reboot:    vulnzero.RebootIfRequired,
		Scripts:   scripts,
	}, nil
}

// aptData is what the apt templates see; every field is already validated.
type aptData struct {
	PatchID      string
	Package      string
	FixedVersion string
	CVEs         []string
}

func renderApt(req Request) (vulnzero.Scripts, error) {
	data := aptData{PatchID: req.PatchID, Package: req.Package, FixedVersion: req.FixedVersion, CVEs: req.CVEs}
	render := func(name string) ([]byte, error) {
		var b bytes.Buffer
		if err := aptTemplates.ExecuteTemplate(&b, name, data); err != nil {
			return nil, fmt.Errorf("render apt template %s: %w", name, err)
		}
		return b.Bytes(), nil
	}
	apply, err := render("apply.sh.tmpl")
	if err != nil {
		return vulnzero.Scripts{}, err
	}
	verify, err := render("verify.sh.tmpl")
	if err != nil {
		return vulnzero.Scripts{}, err
	}
	rollback, err := render("rollback.sh.tmpl")
	if err != nil {
		return vulnzero.Scripts{}, err
	}
	return vulnzero.Scripts{Apply: apply, Verify: verify, Rollback: rollback}, nil
}

// ShellQuote quotes s for POSIX sh as one word: single quotes, with each
// embedded single quote closed, backslash-escaped and reopened.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var (
	// Debian policy §5.6.1: lowercase letters, digits, + - . ; at least two
	// characters, starting with an alphanumeric.
	debPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	patchIDRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// CVE ids and other advisory ids (GHSA-…, DSA-5555-1, RHSA-2024:1234).
	advisoryRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)
	epochRE    = regexp.MustCompile(`^[0-9]+$`)
	upstreamRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~:-]*$`)
	revisionRE = regexp.MustCompile(`^[A-Za-z0-9.+~]+$`)
)

const maxFieldLen = 128

func validate(req Request) error {
	if len(req.PatchID) > maxFieldLen || !patchIDRE.MatchString(req.PatchID) {
		return invalid("patch id", req.PatchID, "must be letters, digits, '.', '_' or '-', starting with a letter or digit, at most 128 characters")
	}
	if !req.Manager.Valid() {
		return invalid("package manager", string(req.Manager), "must be one of apt, dnf, yum, zypper, apk")
	}
	if req.Manager == vulnzero.APT {
		if err := ValidateDebPackage(req.Package); err != nil {
			return err
		}
		if err := ValidateDebVersion(req.FixedVersion); err != nil {
			return err
		}
	} else if req.Package == "" || req.FixedVersion == "" {
		return invalid("package", req.Package+" "+req.FixedVersion, "package and fixed version are required")
	}
	for i, c := range req.CVEs {
		if len(c) > maxFieldLen || !advisoryRE.MatchString(c) {
			return invalid(fmt.Sprintf("cves[%d]", i), c, "must be an advisory id such as CVE-2024-1234")
		}
	}
	if len(req.Hosts) == 0 {
		return invalid("hosts", "", "at least one target host is required")
	}
	for i, h := range req.Hosts {
		if h == "" || strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return invalid(fmt.Sprintf("hosts[%d]", i), h, "must be a non-empty name without spaces or control characters")
		}
	}
	if strings.ContainsFunc(req.Title, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return invalid("title", req.Title, "must be one line without control characters")
	}
	return nil
}

func invalid(field, value, why string) error {
	return fmt.Errorf("%s %q: %s: %w", field, value, why, vulnzero.ErrInvalid)
}

// ValidateDebPackage checks a binary package name against Debian policy
// §5.6.1. Architecture qualifiers ("foo:amd64") are rejected: a rules patch
// upgrades the package on whatever architectures it is installed for.
func ValidateDebPackage(name string) error {
	if len(name) > maxFieldLen || !debPackageRE.MatchString(name) {
		return invalid("package", name, "Debian package names are lowercase letters, digits, '+', '-' and '.', at least two characters, starting with a letter or digit")
	}
	return nil
}

// ValidateDebVersion checks v against the Debian version syntax of policy
// §5.6.12: [epoch:]upstream_version[-debian_revision], where the epoch is
// digits, the upstream version starts with a digit and holds only
// alphanumerics and . + ~ (plus - when there is a revision, and : when there
// is an epoch), and the revision holds alphanumerics and . + ~.
func ValidateDebVersion(v string) error {
	bad := func(why string) error { return invalid("version", v, why) }
	if v == "" {
		return bad("empty")
	}
	if len(v) > maxFieldLen {
		return bad("longer than 128 characters")
	}
	rest := v
	hasEpoch := false
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		if !epochRE.MatchString(rest[:i]) {
			return bad("the epoch before ':' must be digits")
		}
		rest, hasEpoch = rest[i+1:], true
	}
	upstream := rest
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		upstream = rest[:i]
		if !revisionRE.MatchString(rest[i+1:]) {
			return bad("the Debian revision after the last '-' must be non-empty alphanumerics and . + ~")
		}
	}
	if !upstreamRE.MatchString(upstream) {
		return bad("the upstream version must start with a digit and hold only alphanumerics and . + ~ - :")
	}
	if !hasEpoch && strings.Contains(upstream, ":") {
		return bad("':' is allowed in the upstream version only after an epoch")
	}
	return nil
}
