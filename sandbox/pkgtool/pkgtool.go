// Package pkgtool is a fake Debian package tool for the demo's sandbox hosts:
// it answers as apt-get, dpkg and dpkg-query so the real apt scripts written
// by remedy/rules run unmodified against a sandbox host, without root, a
// mirror or real .deb files.
//
// It emulates exactly what those scripts (and a package manifest) use:
//
//	dpkg-query -W [-f FORMAT | --showformat=FORMAT] [PACKAGE...]
//	dpkg --compare-versions A OP B
//	apt-get update
//	apt-get download PACKAGE[=VERSION]...
//	apt-get install [-y] [--only-upgrade] [--allow-downgrades] PACKAGE | PACKAGE=VERSION | ./FILE.deb ...
//	apt-get -o NAME=VALUE ... (options are accepted and ignored)
//
// with the real tools' messages and exit codes where scripts look at them
// (dpkg-query exits 1 for an unknown package, dpkg 1/2, apt-get 100).
// Versions compare with Debian's algorithm (github.com/knqyf263/go-deb-version).
//
// State lives under the host root named by VZ_SANDBOX_ROOT:
//
//	var/lib/vzpkg/status        installed packages, dpkg status stanzas
//	var/lib/vzpkg/available     the host's repository: one stanza per version
//	var/lib/vzpkg/hooks/P_V     optional postinst snippet run by /bin/sh after
//	                            P is set to version V (the demo uses it to
//	                            make a version break a service)
//	var/lib/vzpkg/lock          while present, apt-get cannot get the dpkg lock
//
// A "fake .deb" is a small text file naming the package and version; apt-get
// download writes one and apt-get install ./file.deb reads one.
//
// The tool is multi-call: Provision writes shims <root>/bin/{apt-get,dpkg,
// dpkg-query} that exec a Go binary with VZ_PKGTOOL=1, and that binary's
// main hands os.Args[1:] to Main.
package pkgtool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	debversion "github.com/knqyf263/go-deb-version"
)

// Paths of the state files, relative to a host root.
const (
	StatusFile    = "var/lib/vzpkg/status"
	AvailableFile = "var/lib/vzpkg/available"
	HooksDir      = "var/lib/vzpkg/hooks"
	LockFile      = "var/lib/vzpkg/lock"
)

// Status values written to the status file.
const (
	statusInstalled       = "install ok installed"
	statusHalfConfigured  = "install ok half-configured"
	fakeDebMagic          = "VZPKG-DEB 1"
	fakeArch              = "all"
	envRoot               = "VZ_SANDBOX_ROOT"
	envTool               = "VZ_PKGTOOL"
	exitDpkgQueryNotFound = 1
	exitDpkgError         = 2
	exitAptError          = 100
)

// Main runs one invocation of the tool. args[0] names the tool (apt-get,
// dpkg, dpkg-query; a path is fine); env supplies VZ_SANDBOX_ROOT. It returns
// the exit code the real tool would.
func Main(args []string, stdout, stderr io.Writer, env func(string) string) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "pkgtool: no tool name given (want apt-get, dpkg or dpkg-query)")
		return exitDpkgError
	}
	name := filepath.Base(args[0])
	root := env(envRoot)
	if root == "" {
		fmt.Fprintf(stderr, "%s: %s is not set: refusing to guess which sandbox host to change\n", name, envRoot)
		return exitDpkgError
	}
	if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(StatusFile))); err != nil || fi.IsDir() {
		fmt.Fprintf(stderr, "%s: %s=%s is not a provisioned sandbox host (no %s)\n", name, envRoot, root, StatusFile)
		return exitDpkgError
	}
	t := &tool{root: root, stdout: stdout, stderr: stderr}
	switch name {
	case "dpkg-query":
		return t.dpkgQuery(args[1:])
	case "dpkg":
		return t.dpkg(args[1:])
	case "apt-get":
		return t.aptGet(args[1:])
	default:
		fmt.Fprintf(stderr, "pkgtool: unknown tool %q (want apt-get, dpkg or dpkg-query)\n", name)
		return exitDpkgError
	}
}

type tool struct {
	root           string
	stdout, stderr io.Writer
}

func (t *tool) path(rel string) string { return filepath.Join(t.root, filepath.FromSlash(rel)) }

// pkgState is one package's line in the status file.
type pkgState struct {
	Name, Version, Status string
}

func (p pkgState) installed() bool {
	return p.Status != "" && !strings.HasSuffix(p.Status, " not-installed") && !strings.HasSuffix(p.Status, " config-files")
}

// readStanzas parses deb822-style stanzas: "Field: value" lines separated
// by blank lines. It is enough for the files this package writes.
func readStanzas(path string) ([]map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), " \t\r")
		if text == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"Field: value\", got %q", path, line, text)
		}
		cur[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, sc.Err()
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadStatus reads the status file into a map keyed by package name.
func (t *tool) loadStatus() (map[string]pkgState, error) {
	stanzas, err := readStanzas(t.path(StatusFile))
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	m := make(map[string]pkgState, len(stanzas))
	for _, s := range stanzas {
		m[s["Package"]] = pkgState{Name: s["Package"], Version: s["Version"], Status: s["Status"]}
	}
	return m, nil
}

func (t *tool) saveStatus(m map[string]pkgState) error {
	var b strings.Builder
	for _, name := range sortedKeys(m) {
		p := m[name]
		fmt.Fprintf(&b, "Package: %s\nStatus: %s\nArchitecture: %s\nVersion: %s\n\n", p.Name, p.Status, fakeArch, p.Version)
	}
	if err := writeFileAtomic(t.path(StatusFile), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	return nil
}

// loadAvailable reads the repository: package name → versions, ascending.
func (t *tool) loadAvailable() (map[string][]string, error) {
	stanzas, err := readStanzas(t.path(AvailableFile))
	if err != nil {
		return nil, fmt.Errorf("read available: %w", err)
	}
	m := map[string][]string{}
	for _, s := range stanzas {
		m[s["Package"]] = append(m[s["Package"]], s["Version"])
	}
	for _, vs := range m {
		sortVersions(vs)
	}
	return m, nil
}

// compareVersions compares two Debian versions; it fails when either
// does not parse.
func compareVersions(a, b string) (int, error) {
	va, err := debversion.NewVersion(a)
	if err != nil {
		return 0, fmt.Errorf("version '%s' has bad syntax: %w", a, err)
	}
	vb, err := debversion.NewVersion(b)
	if err != nil {
		return 0, fmt.Errorf("version '%s' has bad syntax: %w", b, err)
	}
	return va.Compare(vb), nil
}

func sortVersions(vs []string) {
	sort.SliceStable(vs, func(i, j int) bool {
		c, err := compareVersions(vs[i], vs[j])
		if err != nil {
			return vs[i] < vs[j]
		}
		return c < 0
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

var packageNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

func validPackage(name, version string) error {
	if !packageNameRE.MatchString(name) {
		return fmt.Errorf("package name %q: want Debian policy syntax [a-z0-9][a-z0-9+.-]+", name)
	}
	if strings.ContainsAny(version, " \t\n") || !debversion.Valid(version) {
		return fmt.Errorf("package %s version %q: not a Debian version", name, version)
	}
	return nil
}

// Provision makes root a sandbox host: it writes the status file with the
// installed packages, the repository with the available versions (the
// installed version is downloadable only if it is listed there too, as on a
// real host), an empty hooks directory, and shims <root>/bin/apt-get, dpkg
// and dpkg-query that run toolPath with VZ_PKGTOOL=1. The shims default
// VZ_SANDBOX_ROOT to root, so a shell on the host needs only PATH.
func Provision(root, toolPath string, installed map[string]string, available map[string][]string) error {
	if !filepath.IsAbs(root) || !filepath.IsAbs(toolPath) {
		return fmt.Errorf("provision %s: root and tool path %s must be absolute", root, toolPath)
	}
	t := &tool{root: root}
	status := map[string]pkgState{}
	for name, v := range installed {
		if err := validPackage(name, v); err != nil {
			return fmt.Errorf("provision %s: installed %w", root, err)
		}
		status[name] = pkgState{Name: name, Version: v, Status: statusInstalled}
	}
	if err := t.saveStatus(status); err != nil {
		return fmt.Errorf("provision %s: %w", root, err)
	}

	var b strings.Builder
	for _, name := range sortedKeys(available) {
		vs := append([]string(nil), available[name]...)
		for _, v := range vs {
			if err := validPackage(name, v); err != nil {
				return fmt.Errorf("provision %s: available %w", root, err)
			}
		}
		sortVersions(vs)
		for _, v := range vs {
			fmt.Fprintf(&b, "Package: %s\nVersion: %s\nArchitecture: %s\n\n", name, v, fakeArch)
		}
	}
	if err := writeFileAtomic(t.path(AvailableFile), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("provision %s: write available: %w", root, err)
	}
	if err := os.MkdirAll(t.path(HooksDir), 0o750); err != nil {
		return fmt.Errorf("provision %s: %w", root, err)
	}

	for _, name := range []string{"apt-get", "dpkg", "dpkg-query"} {
		shim := fmt.Sprintf("#!/bin/sh\n"+
			"# VulnZero sandbox: %s is served by the fake package tool (sandbox/pkgtool).\n"+
			"if [ -z \"${%s:-}\" ]; then %s=%s; fi\n"+
			"export %s\n"+
			"%s=1 exec %s %s \"$@\"\n",
			name, envRoot, envRoot, shellQuote(root), envRoot, envTool, shellQuote(toolPath), name)
		if err := writeFileAtomic(filepath.Join(root, "bin", name), []byte(shim), 0o755); err != nil {
			return fmt.Errorf("provision %s: write shim %s: %w", root, name, err)
		}
	}
	return nil
}

// Installed returns the packages installed on the sandbox host at root,
// name → version.
func Installed(root string) (map[string]string, error) {
	t := &tool{root: root}
	status, err := t.loadStatus()
	if err != nil {
		return nil, fmt.Errorf("installed on %s: %w", root, err)
	}
	out := map[string]string{}
	for name, p := range status {
		if p.installed() {
			out[name] = p.Version
		}
	}
	return out, nil
}

// SetHook installs a postinst snippet run by /bin/sh after pkg is set to
// version on the host at root (with VZ_SANDBOX_ROOT exported and the host
// root as working directory). A non-zero exit fails the install the way a
// failing maintainer script does. An empty script removes the hook.
func SetHook(root, pkg, version, script string) error {
	if err := validPackage(pkg, version); err != nil {
		return fmt.Errorf("set hook on %s: %w", root, err)
	}
	path := filepath.Join(root, filepath.FromSlash(HooksDir), hookName(pkg, version))
	if script == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove hook %s: %w", path, err)
		}
		return nil
	}
	if err := writeFileAtomic(path, []byte(script), 0o644); err != nil {
		return fmt.Errorf("set hook %s: %w", path, err)
	}
	return nil
}

// SetLock makes the host's dpkg lock held (or free): while held, apt-get
// update and install fail the way apt does when its lock timeout expires.
func SetLock(root string, held bool) error {
	path := filepath.Join(root, filepath.FromSlash(LockFile))
	if !held {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("release lock on %s: %w", root, err)
		}
		return nil
	}
	if err := writeFileAtomic(path, []byte("4242 unattended-upgr\n"), 0o644); err != nil {
		return fmt.Errorf("hold lock on %s: %w", root, err)
	}
	return nil
}

// hookName is the file name of a hook; ':' (an epoch) becomes "%3a" as in
// .deb file names.
func hookName(pkg, version string) string {
	return pkg + "_" + strings.ReplaceAll(version, ":", "%3a")
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
