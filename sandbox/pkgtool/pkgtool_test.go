package pkgtool_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/rules"
	"vulnzero.dev/vulnzero/sandbox/pkgtool"
)

// TestMain lets the test binary serve as the package tool: the shims that
// Provision writes exec it with VZ_PKGTOOL=1.
func TestMain(m *testing.M) {
	if os.Getenv("VZ_PKGTOOL") == "1" {
		os.Exit(pkgtool.Main(os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
	}
	os.Exit(m.Run())
}

const patchID = "vzdemo-1.0.1-debian"

// host is one provisioned sandbox root.
type host struct {
	t    *testing.T
	root string
	// noPatchID leaves VZ_PATCH_ID out of the scripts' environment.
	noPatchID bool
}

func newHost(t *testing.T, installed map[string]string, available map[string][]string) *host {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := pkgtool.Provision(root, exe, installed, available); err != nil {
		t.Fatal(err)
	}
	return &host{t: t, root: root}
}

func (h *host) stateDir() string { return filepath.Join(h.root, "var/lib/vulnzero") }

// run feeds script to /bin/sh -s on stdin, as the fleet does over SSH.
func (h *host) run(phase vulnzero.Phase, script []byte) (stdout, stderr string, code int) {
	h.t.Helper()
	cmd := exec.Command("/bin/sh", "-s")
	cmd.Dir = h.root
	cmd.Stdin = bytes.NewReader(script)
	cmd.Env = []string{
		"PATH=" + filepath.Join(h.root, "bin") + ":/usr/bin:/bin",
		"VZ_SANDBOX_ROOT=" + h.root,
		"VZ_STATE_DIR=" + h.stateDir(),
		"VZ_HOST=sandbox-1",
		"VZ_PHASE=" + string(phase),
		"VZ_REBOOT_REQUIRED_FILE=" + filepath.Join(h.root, "run/reboot-required"),
	}
	if !h.noPatchID {
		cmd.Env = append(cmd.Env, "VZ_PATCH_ID="+patchID)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			h.t.Fatalf("run %s: %v", phase, err)
		}
		code = ee.ExitCode()
	}
	h.t.Logf("%s exit %d\nstdout:\n%s\nstderr:\n%s", phase, code, o.String(), e.String())
	return o.String(), e.String(), code
}

// manifest lists the host's packages the way the twin does: dpkg-query -W
// through the shim.
func (h *host) manifest() string {
	h.t.Helper()
	cmd := exec.Command(filepath.Join(h.root, "bin", "dpkg-query"), "-W")
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // the shim supplies VZ_SANDBOX_ROOT itself
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("dpkg-query -W: %v", err)
	}
	return string(out)
}

func (h *host) installed(pkg string) string {
	h.t.Helper()
	m, err := pkgtool.Installed(h.root)
	if err != nil {
		h.t.Fatal(err)
	}
	return m[pkg]
}

func demoPatch(t *testing.T, fixed string) vulnzero.Patch {
	t.Helper()
	p, err := rules.Generate(rules.Request{
		PatchID: patchID, Package: "vzdemo", Manager: vulnzero.APT, FixedVersion: fixed,
		CVEs: []string{"CVE-2024-99999"}, Hosts: []string{"sandbox-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func expect(t *testing.T, what string, code, want int, out, substr string) {
	t.Helper()
	if code != want {
		t.Fatalf("%s: exit %d, want %d", what, code, want)
	}
	if !strings.Contains(out, substr) {
		t.Fatalf("%s: output does not contain %q:\n%s", what, substr, out)
	}
}

func TestAptScriptsEndToEnd(t *testing.T) {
	h := newHost(t,
		map[string]string{"vzdemo": "1.0.0", "libvz1": "2.3-1"},
		map[string][]string{"vzdemo": {"1.0.1", "1.0.0"}, "libvz1": {"2.3-1"}})
	p := demoPatch(t, "1.0.1")
	before := h.manifest()
	if before != "libvz1\t2.3-1\nvzdemo\t1.0.0\n" {
		t.Fatalf("manifest before = %q", before)
	}

	out, _, code := h.run(vulnzero.PhaseVerify, p.Scripts.Verify)
	expect(t, "verify before apply", code, 1, out, "VULNERABLE: vzdemo 1.0.0 is below 1.0.1")

	out, _, code = h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply", code, 0, out, "upgraded vzdemo from 1.0.0 to 1.0.1")
	if v := h.installed("vzdemo"); v != "1.0.1" {
		t.Fatalf("after apply vzdemo = %q, want 1.0.1", v)
	}
	if strings.Contains(out, "VZ_REBOOT_REQUIRED") {
		t.Error("apply asked for a reboot though no reboot-required file exists")
	}
	state := filepath.Join(h.stateDir(), patchID)
	prev, err := os.ReadFile(filepath.Join(state, "previous-version"))
	if err != nil || string(prev) != "1.0.0\n" {
		t.Fatalf("previous-version = %q, %v", prev, err)
	}
	deb, err := os.ReadFile(filepath.Join(state, "vzdemo_1.0.0_all.deb"))
	if err != nil || !bytes.Contains(deb, []byte("Version: 1.0.0")) {
		t.Fatalf("saved .deb = %q, %v", deb, err)
	}

	out, _, code = h.run(vulnzero.PhaseVerify, p.Scripts.Verify)
	expect(t, "verify after apply", code, 0, out, "fixed: vzdemo 1.0.1 is at or above 1.0.1")

	out, _, code = h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply again", code, 0, out, "nothing to do")
	if strings.Contains(out, "Unpacking") {
		t.Error("second apply ran apt-get install")
	}
	if prev2, _ := os.ReadFile(filepath.Join(state, "previous-version")); !bytes.Equal(prev2, prev) {
		t.Errorf("second apply changed previous-version to %q", prev2)
	}

	out, _, code = h.run(vulnzero.PhaseRollback, p.Scripts.Rollback)
	expect(t, "rollback", code, 0, out, "rolled back vzdemo to 1.0.0")
	if !strings.Contains(out, "vzdemo_1.0.0_all.deb") {
		t.Errorf("rollback did not reinstall the saved .deb:\n%s", out)
	}
	if v := h.installed("vzdemo"); v != "1.0.0" {
		t.Fatalf("after rollback vzdemo = %q, want 1.0.0", v)
	}
	out, _, code = h.run(vulnzero.PhaseVerify, p.Scripts.Verify)
	expect(t, "verify after rollback", code, 1, out, "VULNERABLE")
	if after := h.manifest(); after != before {
		t.Errorf("manifest after rollback = %q, want %q", after, before)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state dir left after rollback: %v", err)
	}

	out, _, code = h.run(vulnzero.PhaseRollback, p.Scripts.Rollback)
	expect(t, "rollback again", code, 0, out, "nothing to roll back")
}

func TestRollbackBeforeApplyIsNoop(t *testing.T) {
	h := newHost(t, map[string]string{"vzdemo": "1.0.0"}, map[string][]string{"vzdemo": {"1.0.0", "1.0.1"}})
	out, _, code := h.run(vulnzero.PhaseRollback, demoPatch(t, "1.0.1").Scripts.Rollback)
	expect(t, "rollback", code, 0, out, "apply never changed this host")
	if v := h.installed("vzdemo"); v != "1.0.0" {
		t.Errorf("vzdemo = %q", v)
	}
}

func TestApplyLockHeld(t *testing.T) {
	h := newHost(t, map[string]string{"vzdemo": "1.0.0"}, map[string][]string{"vzdemo": {"1.0.0", "1.0.1"}})
	if err := pkgtool.SetLock(h.root, true); err != nil {
		t.Fatal(err)
	}
	p := demoPatch(t, "1.0.1")
	_, errOut, code := h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply with the lock held", code, 1, errOut, "apt lock held for 60s")
	if !strings.Contains(errOut, "Could not get lock") {
		t.Errorf("apt's own lock message is not passed through:\n%s", errOut)
	}
	if v := h.installed("vzdemo"); v != "1.0.0" {
		t.Errorf("vzdemo = %q after a failed apply", v)
	}
	// Once the lock is free the same script finishes the job, keeping the
	// state the first run saved.
	if err := pkgtool.SetLock(h.root, false); err != nil {
		t.Fatal(err)
	}
	out, _, code := h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply after the lock is free", code, 0, out, "keeping state saved by an earlier run: previous version 1.0.0")
	if v := h.installed("vzdemo"); v != "1.0.1" {
		t.Errorf("vzdemo = %q", v)
	}
}

func TestApplyReportsRebootRequired(t *testing.T) {
	h := newHost(t, map[string]string{"vzdemo": "1.0.0"}, map[string][]string{"vzdemo": {"1.0.0", "1.0.1"}})
	hook := "mkdir -p \"$VZ_SANDBOX_ROOT/run\" && touch \"$VZ_SANDBOX_ROOT/run/reboot-required\"\n" +
		"echo \"postinst $DPKG_MAINTSCRIPT_PACKAGE $1 $2\"\n"
	if err := pkgtool.SetHook(h.root, "vzdemo", "1.0.1", hook); err != nil {
		t.Fatal(err)
	}
	out, _, code := h.run(vulnzero.PhaseApply, demoPatch(t, "1.0.1").Scripts.Apply)
	expect(t, "apply", code, 0, out, "\nVZ_REBOOT_REQUIRED=1\n")
	expect(t, "apply", code, 0, out, "postinst vzdemo configure 1.0.0")
}

func TestApplyFailsWhenFixIsNotInRepository(t *testing.T) {
	h := newHost(t, map[string]string{"vzdemo": "1.0.0"}, map[string][]string{"vzdemo": {"1.0.0"}})
	p := demoPatch(t, "1.0.1")
	_, errOut, code := h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply", code, 1, errOut, "vzdemo is at 1.0.0 after the upgrade, still below 1.0.1")
	// Nothing changed, so rollback only clears the saved state.
	out, _, code := h.run(vulnzero.PhaseRollback, p.Scripts.Rollback)
	expect(t, "rollback", code, 0, out, "vzdemo is already at 1.0.0")
}

func TestApplyFailingPostinstThenRollback(t *testing.T) {
	h := newHost(t, map[string]string{"vzdemo": "1.0.0"}, map[string][]string{"vzdemo": {"1.0.0", "1.0.1"}})
	if err := pkgtool.SetHook(h.root, "vzdemo", "1.0.1", "echo 'service vzdemo: bad config' >&2\nexit 3\n"); err != nil {
		t.Fatal(err)
	}
	p := demoPatch(t, "1.0.1")
	_, errOut, code := h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply", code, 1, errOut, "post-installation script subprocess returned error exit status 3")
	expect(t, "apply", code, 1, errOut, "apt-get install --only-upgrade vzdemo failed")
	out, _, code := h.run(vulnzero.PhaseRollback, p.Scripts.Rollback)
	expect(t, "rollback", code, 0, out, "rolled back vzdemo to 1.0.0")
	if v := h.installed("vzdemo"); v != "1.0.0" {
		t.Errorf("vzdemo = %q", v)
	}
}

// When the mirror no longer has the installed build, apply goes on without
// a .deb and rollback asks apt for the exact version instead.
func TestRollbackWithoutSavedDeb(t *testing.T) {
	exe, _ := os.Executable()
	h := newHost(t, map[string]string{"vzdemo": "1.0.0"}, map[string][]string{"vzdemo": {"1.0.1"}})
	p := demoPatch(t, "1.0.1")
	out, errOut, code := h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply", code, 0, out, "warning: no .deb of vzdemo 1.0.0 could be saved")
	if !strings.Contains(errOut, "Can't find a source to download version '1.0.0' of 'vzdemo:all'") {
		t.Errorf("apt-get download error not shown:\n%s", errOut)
	}

	_, errOut, code = h.run(vulnzero.PhaseRollback, p.Scripts.Rollback)
	expect(t, "rollback with 1.0.0 gone", code, 1, errOut, "apt-get install vzdemo=1.0.0 failed")

	// The version comes back to the repository: rollback now succeeds.
	if err := pkgtool.Provision(h.root, exe, map[string]string{"vzdemo": "1.0.1"}, map[string][]string{"vzdemo": {"1.0.0", "1.0.1"}}); err != nil {
		t.Fatal(err)
	}
	out, _, code = h.run(vulnzero.PhaseRollback, p.Scripts.Rollback)
	expect(t, "rollback", code, 0, out, "asking apt for vzdemo=1.0.0")
	if v := h.installed("vzdemo"); v != "1.0.0" {
		t.Errorf("vzdemo = %q", v)
	}
}

func TestNotInstalledPackage(t *testing.T) {
	h := newHost(t, map[string]string{"other": "1"}, map[string][]string{"vzdemo": {"1.0.1"}})
	p := demoPatch(t, "1.0.1")
	out, _, code := h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply", code, 0, out, "vzdemo is not installed: nothing to upgrade")
	out, _, code = h.run(vulnzero.PhaseVerify, p.Scripts.Verify)
	expect(t, "verify", code, 0, out, "fixed: vzdemo is not installed")
	if _, ok := mustInstalled(t, h.root)["vzdemo"]; ok {
		t.Error("apply installed a package that was not there")
	}
}

func mustInstalled(t *testing.T, root string) map[string]string {
	t.Helper()
	m, err := pkgtool.Installed(root)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Without VZ_PATCH_ID the scripts fall back to the id baked in at generation.
func TestScriptsDefaultPatchID(t *testing.T) {
	h := newHost(t, map[string]string{"vzdemo": "1.0.0"}, map[string][]string{"vzdemo": {"1.0.0", "1.0.1"}})
	h.noPatchID = true
	p, err := rules.Generate(rules.Request{
		PatchID: "baked-id", Package: "vzdemo", Manager: vulnzero.APT, FixedVersion: "1.0.1", Hosts: []string{"sandbox-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _, code := h.run(vulnzero.PhaseApply, p.Scripts.Apply)
	expect(t, "apply", code, 0, out, "vulnzero apply baked-id: upgraded vzdemo")
	if _, err := os.Stat(filepath.Join(h.stateDir(), "baked-id", "previous-version")); err != nil {
		t.Fatalf("state not under the baked id: %v", err)
	}
	out, _, code = h.run(vulnzero.PhaseRollback, p.Scripts.Rollback)
	expect(t, "rollback", code, 0, out, "rolled back vzdemo to 1.0.0")
}
