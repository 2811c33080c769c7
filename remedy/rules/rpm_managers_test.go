package rules_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/rules"
)

// rpmToolsImage is vulnzero/rpm-tools:<manager>-12, built by
// scripts/build-rpm-image.sh (scripts/test-deps.sh runs it): Debian's real
// rpm, createrepo-c and dnf or zypper. VZ_TEST_RPM_IMAGE_<MANAGER> names
// another image (a real Rocky or openSUSE one with createrepo_c, say).
func rpmToolsImage(t *testing.T, manager string) (docker, image string) {
	t.Helper()
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker is not installed: the " + manager + " scripts cannot run against a real " + manager)
	}
	image = os.Getenv("VZ_TEST_RPM_IMAGE_" + strings.ToUpper(manager))
	if image == "" {
		image = "vulnzero/rpm-tools:" + manager + "-12"
	}
	if err := exec.Command(docker, "image", "inspect", image).Run(); err != nil {
		t.Skipf("image %s is missing: build it with scripts/build-rpm-image.sh to run the %s scripts against a real %s", image, manager, manager)
	}
	if _, err := exec.LookPath("rpmbuild"); err != nil {
		t.Skip("rpmbuild is not installed (scripts/test-deps.sh installs rpm): cannot build the fixture packages")
	}
	return docker, image
}

// buildRPMs makes real packages vz-fixture 1.0-1 and 1.0-2 with rpmbuild,
// each installing /usr/share/vz-fixture/VERSION, and returns their
// directory.
func buildRPMs(t *testing.T) string {
	t.Helper()
	top, home, out := t.TempDir(), t.TempDir(), t.TempDir()
	for _, rel := range []string{"1", "2"} {
		spec := filepath.Join(top, "vz-fixture.spec")
		mustWrite(t, spec, fmt.Sprintf(`Name: vz-fixture
Version: 1.0
Release: %s
Summary: fixture for the rpm rules test
License: MIT
BuildArch: noarch

%%description
fixture for the rpm rules test

%%install
mkdir -p %%{buildroot}/usr/share/vz-fixture
echo 1.0-%s >%%{buildroot}/usr/share/vz-fixture/VERSION

%%files
/usr/share/vz-fixture/VERSION
`, rel, rel))
		cmd := exec.Command("rpmbuild", "-bb", "--quiet", "--define", "_topdir "+top, spec)
		cmd.Env = append(os.Environ(), "HOME="+home)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rpmbuild 1.0-%s: %v\n%s", rel, err, b)
		}
		name := "vz-fixture-1.0-" + rel + ".noarch.rpm"
		b, err := os.ReadFile(filepath.Join(top, "RPMS", "noarch", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

// repoSetup registers the local repository /srv/repo with each manager.
var repoSetup = map[string]string{
	"dnf":    "printf '[local]\\nname=local\\nbaseurl=file:///srv/repo\\nenabled=1\\ngpgcheck=0\\n' >/etc/yum.repos.d/local.repo",
	"zypper": "zypper --non-interactive --quiet addrepo --no-gpgcheck file:///srv/repo local && zypper --non-interactive --quiet refresh",
}

// rpmBox starts a container of manager's rpm-tools image with the fixture
// packages in a local repository (createrepo_c) registered with the
// manager, and vz-fixture 1.0-1 installed.
func rpmBox(t *testing.T, manager string) container {
	t.Helper()
	docker, image := rpmToolsImage(t, manager)
	rpms, setup := buildRPMs(t), repoSetup[manager]
	name := fmt.Sprintf("vz-rules-rpm-%d", time.Now().UnixNano())
	out, err := exec.Command(docker, "run", "-d", "--rm", "--name", name, "--network", "none",
		"-v", rpms+":/vz:ro", "--entrypoint", "sleep", image, "600").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v\n%s", image, err, out)
	}
	c := container{t: t, docker: docker, id: strings.TrimSpace(string(out))}
	t.Cleanup(func() { _ = exec.Command(docker, "rm", "-f", c.id).Run() })
	c.sh("mkdir -p /srv/repo && cp /vz/*.rpm /srv/repo/ && createrepo_c -q /srv/repo && " + setup +
		" && rpm -i --nodeps /srv/repo/vz-fixture-1.0-1.noarch.rpm 2>/dev/null")
	return c
}

// rpmScripts generates the patch that upgrades vz-fixture to 1.0-2.
func rpmScripts(t *testing.T, m vulnzero.PackageManager) vulnzero.Patch {
	t.Helper()
	p, err := rules.Generate(rules.Request{PatchID: "vz-fixture-1.0-2", Package: "vz-fixture", Manager: m,
		FixedVersion: "1.0-2", CVEs: []string{"CVE-2099-0001"}, Hosts: []string{"twin"}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rpmContract runs the contract every manager's scripts keep against the
// real manager in c: verify fails, apply upgrades and saves the old rpm
// (says it could not, when saved is false), apply again is a no-op, verify
// passes, rollback restores the old build (its files too), verify fails
// again, rollback again is a no-op. It returns each step's output by name,
// for checks of a manager's own.
func rpmContract(t *testing.T, c container, p vulnzero.Patch, saved bool) map[string]string {
	t.Helper()
	outputs := map[string]string{}
	step := func(what string, script []byte, wantCode int, want string) {
		t.Helper()
		out, errOut, code := c.run(script)
		outputs[what] = out + errOut
		if code != wantCode || !strings.Contains(out+errOut, want) {
			t.Fatalf("%s: exit %d (want %d), output lacks %q:\n%s%s", what, code, wantCode, want, out, errOut)
		}
	}
	installed := func(want string) {
		t.Helper()
		if v := c.sh("rpm -q --qf '%{VERSION}-%{RELEASE}' vz-fixture"); v != want {
			t.Fatalf("rpm says vz-fixture %s, want %s", v, want)
		}
		if v := c.sh("cat /usr/share/vz-fixture/VERSION"); v != want {
			t.Fatalf("the package's file says %s, want %s", v, want)
		}
	}
	installed("1.0-1")
	step("verify before", p.Scripts.Verify, 1, "VULNERABLE: vz-fixture 1.0-1 is below 1.0-2")
	step("apply", p.Scripts.Apply, 0, "upgraded vz-fixture from 1.0-1 to 1.0-2")
	want := "saved the rpm of vz-fixture 1.0-1"
	if !saved {
		want = "the rpm of vz-fixture 1.0-1 could not be saved"
	}
	if !strings.Contains(outputs["apply"], want) {
		t.Errorf("apply output lacks %q:\n%s", want, outputs["apply"])
	}
	installed("1.0-2")
	step("apply again", p.Scripts.Apply, 0, "vz-fixture 1.0-2 is already at or above 1.0-2: nothing to do")
	step("verify after", p.Scripts.Verify, 0, "fixed: vz-fixture 1.0-2 is at or above 1.0-2")
	step("rollback", p.Scripts.Rollback, 0, "rolled back vz-fixture to 1.0-1")
	installed("1.0-1")
	step("verify after rollback", p.Scripts.Verify, 1, "VULNERABLE")
	step("rollback again", p.Scripts.Rollback, 0, "nothing to roll back")
	return outputs
}

// The dnf scripts run against Debian's dnf 4.14 with dnf-plugins-core and
// a real rpm database: the contract, rollback by undoing the recorded dnf
// transaction, and, when the transaction is gone, by downgrading to the rpm
// apply saved with `dnf download`.
func TestDNFScriptsAgainstRealDnf(t *testing.T) {
	c := rpmBox(t, "dnf")
	p := rpmScripts(t, vulnzero.DNF)

	out := rpmContract(t, c, p, true)
	if !strings.Contains(out["apply"], "dnf transaction 1 upgraded vz-fixture") || !strings.Contains(out["rollback"], "undoing dnf transaction 1") {
		t.Errorf("rollback did not undo the transaction apply recorded:\napply:\n%s\nrollback:\n%s", out["apply"], out["rollback"])
	}

	// Without the transaction (history lost), the saved rpm brings the old
	// build back.
	if _, errOut, code := c.run(p.Scripts.Apply); code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, errOut)
	}
	c.sh("rm /var/lib/vulnzero/vz-fixture-1.0-2/transaction")
	stdout, errOut, code := c.run(p.Scripts.Rollback)
	if code != 0 || !strings.Contains(stdout, "reinstalling vz-fixture 1.0-1 from the rpm saved in /var/lib/vulnzero/vz-fixture-1.0-2") {
		t.Fatalf("rollback from the saved rpm: exit %d\n%s%s", code, stdout, errOut)
	}
	if v := c.sh("cat /usr/share/vz-fixture/VERSION"); v != "1.0-1" {
		t.Errorf("after rollback from the saved rpm the package's file says %s", v)
	}
}

// The yum scripts run against yum as RHEL 8 and later have it, dnf under
// that name: the contract and rollback by transaction undo, without
// yumdownloader (yum-utils) to save the old rpm. RHEL 7's own yum 3 is not
// in Debian.
func TestYumScriptsAgainstDnfAsYum(t *testing.T) {
	c := rpmBox(t, "dnf")
	out := rpmContract(t, c, rpmScripts(t, vulnzero.YUM), false) // no yumdownloader: rollback undoes the transaction
	if !strings.Contains(out["rollback"], "undoing yum transaction 1") {
		t.Errorf("rollback did not undo the transaction apply recorded:\n%s", out["rollback"])
	}
}

// The zypper scripts run against Debian's zypper 1.14 and a real rpm
// database: the contract, with the old rpm saved from zypp's cache. zypper
// checks the signature of a plain rpm file whatever the repository says,
// so the unsigned fixture is refused from the saved file and rollback gets
// the old build from the repository instead.
func TestZypperScriptsAgainstRealZypper(t *testing.T) {
	c := rpmBox(t, "zypper")
	p := rpmScripts(t, vulnzero.Zypper)

	out := rpmContract(t, c, p, true)
	if !strings.Contains(out["rollback"], "zypper refused the saved rpm; asking the repositories for vz-fixture=1.0-1") {
		t.Errorf("rollback of an unsigned package did not fall back to the repositories:\n%s", out["rollback"])
	}
}
