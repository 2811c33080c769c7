package rules_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/rules"
	"vulnzero.dev/vulnzero/remedy/version"
)

// rpmHost is an rpm database of its own, made with the real rpm (Debian's
// rpm package) and selected through ~/.rpmmacros, so the scripts' plain
// `rpm -q` reads it.
type rpmHost struct {
	t    *testing.T
	home string
	top  string
}

func newRPMHost(t *testing.T) *rpmHost {
	t.Helper()
	for _, tool := range []string{"rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (scripts/test-deps.sh installs rpm): cannot run the rpm scripts against a real rpm database", tool)
		}
	}
	h := &rpmHost{t: t, home: t.TempDir(), top: t.TempDir()}
	mustWrite(t, filepath.Join(h.home, ".rpmmacros"), fmt.Sprintf("%%_dbpath %s/db\n%%_topdir %s\n", h.home, h.top))
	h.rpm("--initdb")
	return h
}

func (h *rpmHost) env() []string {
	return append(os.Environ(), "HOME="+h.home)
}

func (h *rpmHost) rpm(args ...string) string {
	h.t.Helper()
	cmd := exec.Command("rpm", args...)
	cmd.Env = h.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("rpm %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// install builds a real package vz-fixture at epoch:version-release with
// rpmbuild and records it in the database (--justdb: no files to write).
func (h *rpmHost) install(epoch, ver, rel string, upgrade bool) {
	h.t.Helper()
	spec := filepath.Join(h.top, "vz-fixture.spec")
	e := ""
	if epoch != "" {
		e = "Epoch: " + epoch + "\n"
	}
	mustWrite(h.t, spec, fmt.Sprintf("Name: vz-fixture\n%sVersion: %s\nRelease: %s\nSummary: fixture\nLicense: MIT\nBuildArch: noarch\n\n%%description\nfixture for the rpm rules test\n\n%%files\n", e, ver, rel))
	cmd := exec.Command("rpmbuild", "-bb", "--quiet", spec)
	cmd.Env = h.env()
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("rpmbuild %s-%s: %v\n%s", ver, rel, err, out)
	}
	pkg := filepath.Join(h.top, "RPMS/noarch", fmt.Sprintf("vz-fixture-%s-%s.noarch.rpm", ver, rel))
	mode := "-i"
	if upgrade {
		mode = "-U"
	}
	h.rpm(mode, "--justdb", "--nodeps", "--nosignature", "--nodigest", "--oldpackage", pkg)
}

func (h *rpmHost) run(shell []string, script []byte) (string, int) {
	h.t.Helper()
	cmd := exec.Command(shell[0], shell[1:]...)
	cmd.Env = h.env()
	cmd.Stdin = bytes.NewReader(script)
	out, err := cmd.CombinedOutput()
	var x *exec.ExitError
	if errors.As(err, &x) {
		return string(out), x.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return string(out), 0
}

// The rpm family's verify.sh runs for real against rpm 4.18: it reads the
// installed epoch:version-release with rpm -q, picks the newest of several
// installed builds, and orders versions with rpm's own vercmp through rpm's
// Lua — under dash and under bash in POSIX mode (RHEL's /bin/sh).
func TestRPMVerifyAgainstRealRpm(t *testing.T) {
	h := newRPMHost(t)
	const fixed = "1:3.0.7-27.el9"
	var verify []byte
	for _, m := range []vulnzero.PackageManager{vulnzero.DNF, vulnzero.YUM, vulnzero.Zypper} {
		p, err := rules.Generate(rules.Request{PatchID: "vz-fixture-fix", Package: "vz-fixture", Manager: m,
			FixedVersion: fixed, Hosts: []string{"h"}})
		if err != nil {
			t.Fatal(err)
		}
		if verify != nil && !bytes.Equal(bytes.ReplaceAll(p.Scripts.Verify, []byte(string(m)), []byte("dnf")), verify) {
			t.Errorf("%s verify.sh differs from dnf's beyond the manager's name", m)
		}
		if verify == nil {
			verify = p.Scripts.Verify
		}
	}
	var shells [][]string
	for _, sh := range [][]string{{"dash", "-s"}, {"bash", "--posix", "-s"}} {
		if _, err := exec.LookPath(sh[0]); err == nil {
			shells = append(shells, sh)
		}
	}
	if len(shells) == 0 {
		t.Skip("neither dash nor bash is installed")
	}
	check := func(what string, wantCode int, want string) {
		t.Helper()
		for _, sh := range shells {
			out, code := h.run(sh, verify)
			if code != wantCode || !strings.Contains(out, want) {
				t.Errorf("%s under %s: exit %d (want %d), output lacks %q:\n%s", what, sh[0], code, wantCode, want, out)
			}
		}
	}

	check("not installed", 0, "fixed: vz-fixture is not installed")
	h.install("1", "3.0.7", "25.el9", false)
	check("older release", 1, "VULNERABLE: vz-fixture 1:3.0.7-25.el9 is below "+fixed)
	// Without the epoch 4.0 would win; with it, 0:4.0 is older than 1:3.0.7.
	h.install("", "4.0", "1.el9", true)
	check("higher version, lower epoch", 1, "VULNERABLE: vz-fixture 4.0-1.el9 is below "+fixed)
	h.install("1", "3.0.7", "27.el9_5", true)
	check("newer release", 0, "fixed: vz-fixture 1:3.0.7-27.el9_5 is at or above "+fixed)
	// Two builds installed side by side (install-only packages): the newest counts.
	h.install("1", "3.0.7", "27.el9~rc1", false)
	if n := strings.Count(h.rpm("-q", "vz-fixture"), "vz-fixture-"); n != 2 {
		t.Fatalf("%d builds installed, want 2", n)
	}
	check("two builds installed", 0, "fixed: vz-fixture 1:3.0.7-27.el9_5 is at or above "+fixed)

	// The Go ordering used for planning agrees with what the script decided.
	for v, want := range map[string]bool{"1:3.0.7-25.el9": false, "4.0-1.el9": false, "1:3.0.7-27.el9_5": true, "1:3.0.7-27.el9~rc1": false} {
		if ok, err := version.RPM.AtLeast(v, fixed); err != nil || ok != want {
			t.Errorf("version.RPM.AtLeast(%s, %s) = %v, %v; the script says %v", v, fixed, ok, err, want)
		}
	}
}
