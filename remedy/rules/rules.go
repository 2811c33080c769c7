// Package rules generates patches deterministically from package-manager
// templates: the same request always yields byte-identical scripts, so a
// re-run finds its existing PR unchanged and a reviewer reads the same
// well-known script every time.
//
// Each template is a POSIX sh script (the fleet runs scripts with
// /bin/sh -s: dash on Debian, bash on RHEL and SUSE, busybox ash on Alpine)
// rendered with text/template. Every value that reaches a script is
// validated against its grammar first (package names and versions of the
// manager's format, patch ids, CVE ids) and then single-quoted, so nothing a
// scanner reports can become shell code.
//
// Every template follows one contract, per manager:
//
//	manager  lock wait                          version order          old build saved             reboot
//	apt      60s, DPkg::Lock::Timeout           dpkg --compare-versions apt-get download / cache  /var/run/reboot-required
//	dnf/yum  30s, pid files + exit_on_lock      rpm.vercmp via rpm Lua  transaction id + rpm         needs-restarting -r
//	zypper   30s, ZYPP_LOCK_TIMEOUT (exit 7)    rpm.vercmp via rpm Lua  zypper download (zypp cache) zypper needs-rebooting
//	apk      30s, apk --wait                    apk version -t          apk fetch / apk cache       kernel packages only
//
// apply.sh upgrades only the affected package, to at least the fixed
// version, after saving what rollback.sh needs; verify.sh exits 0 iff the
// installed version is at or above the fixed one; rollback.sh reinstalls the
// saved build (downgrade allowed) and checks the version (and, for rpm and
// apk, reports how the package manifest differs from before apply).
package rules

import (
	"bytes"
	"embed"
	"fmt"
	"regexp"
	"strings"
	"text/template"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/version"
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

var funcs = template.FuncMap{"shq": ShellQuote, "join": strings.Join}

// aptTemplates holds common.sh.tmpl plus the three scripts; parsed once.
var aptTemplates = template.Must(template.New("apt").Funcs(funcs).ParseFS(templateFS, "templates/apt/*.sh.tmpl"))

// The other managers share templates/shared (header, helpers, rpm ordering);
// dnf and yum share one set, told apart by .Manager.
var (
	dnfTemplates    = template.Must(template.New("dnf").Funcs(funcs).ParseFS(templateFS, "templates/shared/*.sh.tmpl", "templates/dnf/*.sh.tmpl"))
	zypperTemplates = template.Must(template.New("zypper").Funcs(funcs).ParseFS(templateFS, "templates/shared/*.sh.tmpl", "templates/zypper/*.sh.tmpl"))
	apkTemplates    = template.Must(template.New("apk").Funcs(funcs).ParseFS(templateFS, "templates/shared/*.sh.tmpl", "templates/apk/*.sh.tmpl"))
)

// LockWait is how long the dnf, yum, zypper and apk scripts wait for another
// package operation to release its lock (apt waits 60s, as apt-get's own
// DPkg::Lock::Timeout).
const LockWait = 30

// Generate validates req and returns a complete patch with its scripts.
// Invalid input and managers without a template yield an error wrapping
// vulnzero.ErrInvalid that names the field and the reason.
func Generate(req Request) (vulnzero.Patch, error) {
	if err := validate(req); err != nil {
		return vulnzero.Patch{}, fmt.Errorf("generate patch %q: %w", req.PatchID, err)
	}
	var set *template.Template
	switch req.Manager {
	case vulnzero.APT:
		set = aptTemplates
	case vulnzero.DNF, vulnzero.YUM:
		set = dnfTemplates
	case vulnzero.Zypper:
		set = zypperTemplates
	case vulnzero.APK:
		set = apkTemplates
	}
	scripts, err := render(set, req)
	if err != nil {
		return vulnzero.Patch{}, fmt.Errorf("generate patch %s: %w", req.PatchID, err)
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

// data is what the templates see; every field is already validated.
type data struct {
	PatchID      string
	Package      string
	FixedVersion string
	CVEs         []string
	Manager      vulnzero.PackageManager
	LockWait     int
}

func render(set *template.Template, req Request) (vulnzero.Scripts, error) {
	d := data{PatchID: req.PatchID, Package: req.Package, FixedVersion: req.FixedVersion, CVEs: req.CVEs,
		Manager: req.Manager, LockWait: LockWait}
	one := func(name string) ([]byte, error) {
		var b bytes.Buffer
		if err := set.ExecuteTemplate(&b, name, d); err != nil {
			return nil, fmt.Errorf("render %s template %s: %w", req.Manager, name, err)
		}
		return b.Bytes(), nil
	}
	apply, err := one("apply.sh.tmpl")
	if err != nil {
		return vulnzero.Scripts{}, err
	}
	verify, err := one("verify.sh.tmpl")
	if err != nil {
		return vulnzero.Scripts{}, err
	}
	rollback, err := one("rollback.sh.tmpl")
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
	switch req.Manager {
	case vulnzero.APT:
		if err := ValidateDebPackage(req.Package); err != nil {
			return err
		}
		if err := ValidateDebVersion(req.FixedVersion); err != nil {
			return err
		}
	case vulnzero.DNF, vulnzero.YUM, vulnzero.Zypper:
		if err := ValidateRPMPackage(req.Package); err != nil {
			return err
		}
		if err := ValidateRPMVersion(req.FixedVersion); err != nil {
			return err
		}
	case vulnzero.APK:
		if err := ValidateAPKPackage(req.Package); err != nil {
			return err
		}
		if err := ValidateAPKVersion(req.FixedVersion); err != nil {
			return err
		}
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

var (
	// rpm names: letters, digits and ._+- (rpmbuild rejects the rest); a
	// leading '-' would read as an option.
	rpmPackageRE = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9._+-]*$`)
	// [epoch:]version[-release]: version and release hold letters, digits
	// and ._+~^ and no '-'.
	rpmVersionRE = regexp.MustCompile(`^(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9._+~^]*(?:-[A-Za-z0-9._+~^]+)?$`)
	// apk names are lowercase by convention but apk accepts capitals.
	apkPackageRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)
)

// ValidateRPMPackage checks an rpm package name (dnf, yum, zypper). Names
// with an architecture ("openssl.x86_64") are accepted as rpm spells them.
func ValidateRPMPackage(name string) error {
	if len(name) > maxFieldLen || !rpmPackageRE.MatchString(name) {
		return invalid("package", name, "rpm package names are letters, digits, '.', '_', '+' and '-', not starting with '.' or '-'")
	}
	return nil
}

// ValidateRPMVersion checks [epoch:]version[-release] as rpm orders it
// (see remedy/version): the scripts compare it with rpm's vercmp.
func ValidateRPMVersion(v string) error {
	if v == "" || len(v) > maxFieldLen || !rpmVersionRE.MatchString(v) {
		return invalid("version", v, "rpm versions are [epoch:]version[-release]; version and release hold letters, digits and . _ + ~ ^")
	}
	if err := version.RPM.Valid(v); err != nil {
		return invalid("version", v, err.Error())
	}
	return nil
}

// ValidateAPKPackage checks an Alpine package name.
func ValidateAPKPackage(name string) error {
	if len(name) > maxFieldLen || !apkPackageRE.MatchString(name) {
		return invalid("package", name, "apk package names are letters, digits, '.', '_', '+' and '-', starting with a letter or digit")
	}
	return nil
}

// ValidateAPKVersion checks v against apk-tools' version grammar
// (1.2.3_rc1-r0): the scripts compare it with apk version -t.
func ValidateAPKVersion(v string) error {
	if v == "" || len(v) > maxFieldLen || version.Alpine.Valid(v) != nil || strings.ContainsAny(v, " '\"$`") {
		return invalid("version", v, "apk versions look like 1.2.3_rc1-r0")
	}
	return nil
}
