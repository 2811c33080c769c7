package rules_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/rules"
	"vulnzero.dev/vulnzero/remedy/version"
)

// debianImage is the twin base image built by scripts/build-twin-image.sh
// (make images): Debian 12 minbase with its real dpkg and apt. The test uses
// it rather than building a chroot of its own; VZ_TEST_DEBIAN_IMAGE names
// another image.
func debianImage(t *testing.T) (docker, image string) {
	t.Helper()
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("docker is not installed: the apt scripts cannot run against a real dpkg")
	}
	image = os.Getenv("VZ_TEST_DEBIAN_IMAGE")
	if image == "" {
		image = "vulnzero/twin-debian:12"
	}
	if err := exec.Command(docker, "image", "inspect", image).Run(); err != nil {
		t.Skipf("image %s is missing: build it with scripts/build-twin-image.sh (make images) to run the apt scripts against a real dpkg", image)
	}
	for _, tool := range []string{"dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: cannot build the fixture packages", tool)
		}
	}
	return docker, image
}

// buildDeb makes a real .deb of vz-fixture at v with dpkg-deb --build.
func buildDeb(t *testing.T, dir, v string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pkg")
	for _, d := range []string{"DEBIAN", "usr/share/vz-fixture"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := fmt.Sprintf("Package: vz-fixture\nVersion: %s\nArchitecture: all\nMaintainer: VulnZero tests <tests@vulnzero.invalid>\nSection: misc\nPriority: optional\nDescription: fixture for the apt rules test\n", v)
	mustWrite(t, filepath.Join(root, "DEBIAN/control"), control)
	mustWrite(t, filepath.Join(root, "usr/share/vz-fixture/VERSION"), v+"\n")
	name := "vz-fixture_" + strings.ReplaceAll(v, ":", "%3a") + "_all.deb"
	out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, filepath.Join(dir, name)).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --build %s: %v\n%s", v, err, out)
	}
	return name
}

func mustWrite(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeRepo writes a flat apt repository index (Packages and Release, as
// dpkg-scanpackages and apt-ftparchive would) for the .debs in dir.
func writeRepo(t *testing.T, dir string, debs []string) {
	t.Helper()
	var pk strings.Builder
	for _, deb := range debs {
		path := filepath.Join(dir, deb)
		fields, err := exec.Command("dpkg-deb", "-f", path).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", deb, err)
		}
		body, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(body)
		fmt.Fprintf(&pk, "%sFilename: ./%s\nSize: %d\nSHA256: %s\n\n", fields, deb, len(body), hex.EncodeToString(sum[:]))
	}
	mustWrite(t, filepath.Join(dir, "Packages"), pk.String())
	sum := sha256.Sum256([]byte(pk.String()))
	mustWrite(t, filepath.Join(dir, "Release"), fmt.Sprintf("Origin: vulnzero-test\nLabel: vulnzero-test\nSuite: test\nCodename: test\nArchitectures: all amd64\nDate: Thu, 01 Jan 2026 00:00:00 UTC\nSHA256:\n %s %d Packages\n",
		hex.EncodeToString(sum[:]), pk.Len()))
}

// container is a running Debian container the scripts are fed to.
type container struct {
	t      *testing.T
	docker string
	id     string
}

// run feeds script to /bin/sh -s as root, as the fleet does over SSH.
func (c container) run(script []byte, env ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"exec", "-i"}
	for _, e := range append([]string{"VZ_PATCH_ID=vz-fixture-1.0-2", "VZ_HOST=twin", "VZ_PHASE=test"}, env...) {
		args = append(args, "-e", e)
	}
	args = append(args, c.id, "/bin/sh", "-s")
	cmd := exec.CommandContext(ctx, c.docker, args...)
	cmd.Stdin = bytes.NewReader(script)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		var x *exec.ExitError
		if errors.As(err, &x) {
			return o.String(), e.String(), x.ExitCode()
		}
		c.t.Fatalf("docker exec: %v\n%s", err, e.String())
	}
	return o.String(), e.String(), 0
}

func (c container) sh(cmd string) string {
	c.t.Helper()
	out, errOut, code := c.run([]byte(cmd + "\n"))
	if code != 0 {
		c.t.Fatalf("%s: exit %d\n%s%s", cmd, code, out, errOut)
	}
	return strings.TrimSpace(out)
}

// The apt scripts run for real: Debian 12's dpkg and apt-get in a container
// (no network), a local repository of .debs built here, the scripts fed to
// /bin/sh -s. The whole contract is exercised: verify fails, apply upgrades
// only that package and saves the old .deb, apply again is a no-op, verify
// passes, rollback restores the exact old build, verify fails again, a held
// dpkg lock gives the lock message, and the reboot hint is printed.
func TestAptScriptsAgainstRealDpkg(t *testing.T) {
	docker, image := debianImage(t)
	dir := t.TempDir()
	const vulnerable, fixed, newest = "1.0-1", "1.0-2~deb12u1", "1.0-2"
	var debs []string
	for _, v := range []string{vulnerable, fixed, newest} {
		debs = append(debs, buildDeb(t, dir, v))
	}
	writeRepo(t, dir, debs)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	p, err := rules.Generate(rules.Request{PatchID: "vz-fixture-1.0-2", Package: "vz-fixture", Manager: vulnzero.APT,
		FixedVersion: fixed, CVEs: []string{"CVE-2099-0001"}, Hosts: []string{"twin"}})
	if err != nil {
		t.Fatal(err)
	}

	name := fmt.Sprintf("vz-rules-dpkg-%d", time.Now().UnixNano())
	out, err := exec.Command(docker, "run", "-d", "--rm", "--name", name, "--network", "none",
		"-v", dir+":/vz:ro", image, "sleep", "600").CombinedOutput()
	if err != nil {
		t.Fatalf("docker run %s: %v\n%s", image, err, out)
	}
	c := container{t: t, docker: docker, id: strings.TrimSpace(string(out))}
	t.Cleanup(func() { _ = exec.Command(docker, "rm", "-f", c.id).Run() })

	c.sh("echo 'deb [trusted=yes] file:/vz ./' >/etc/apt/sources.list.d/vz.list && dpkg -i /vz/" + debs[0] + " >/dev/null")
	installed := func() string { return c.sh("dpkg-query -W -f='${Version}' vz-fixture") }
	if v := installed(); v != vulnerable {
		t.Fatalf("installed %q, want %q", v, vulnerable)
	}

	expect := func(what string, script []byte, wantCode int, want string, env ...string) string {
		t.Helper()
		out, errOut, code := c.run(script, env...)
		if code != wantCode || !strings.Contains(out+errOut, want) {
			t.Fatalf("%s: exit %d (want %d), output lacks %q:\n%s%s", what, code, wantCode, want, out, errOut)
		}
		return out + errOut
	}

	expect("verify before apply", p.Scripts.Verify, 1, "VULNERABLE: vz-fixture 1.0-1 is below "+fixed)

	// A dpkg lock held by another process (an fcntl lock, as apt and dpkg
	// take it) makes apply wait, then fail with the lock message.
	c.sh(`perl -MFcntl -e 'open(my $f, ">>", "/var/lib/dpkg/lock-frontend") or die; my $l = pack("s s x4 q q l x4", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_SETLKW, $l) or die "lock: $!"; open(my $r, ">", "/tmp/locked"); print $r "$$\n"; close($r); sleep 60' >/dev/null 2>&1 &
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /tmp/locked ] && exit 0; sleep 0.5; done; exit 1`)
	expect("apply with the dpkg lock held", p.Scripts.Apply, 1, "apt lock held for 2s: another package operation is running on this host", "VZ_LOCK_WAIT=2")
	c.sh("kill $(cat /tmp/locked) && rm -f /tmp/locked")
	if v := installed(); v != vulnerable {
		t.Fatalf("after the lock failure: installed %q, want %q", v, vulnerable)
	}

	c.sh("touch /var/run/reboot-required")
	log := expect("apply", p.Scripts.Apply, 0, "upgraded vz-fixture from 1.0-1 to "+newest)
	if !strings.Contains(log, "VZ_REBOOT_REQUIRED=1") {
		t.Errorf("apply did not report the reboot the host wants:\n%s", log)
	}
	if v := installed(); v != newest {
		t.Fatalf("after apply: installed %q, want %q (the newest candidate, at or above the fix)", v, newest)
	}
	if ok, err := version.Debian.AtLeast(installed(), fixed); err != nil || !ok {
		t.Errorf("Go ordering disagrees with apply: %s >= %s is %v (%v)", installed(), fixed, ok, err)
	}
	if saved := c.sh("ls /var/lib/vulnzero/vz-fixture-1.0-2"); !strings.Contains(saved, "vz-fixture_1.0-1_all.deb") || !strings.Contains(saved, "previous-version") {
		t.Errorf("apply saved %q, want the old .deb and previous-version", saved)
	}
	expect("apply again", p.Scripts.Apply, 0, "already at or above "+fixed+": nothing to do")
	expect("verify after apply", p.Scripts.Verify, 0, "fixed: vz-fixture "+newest+" is at or above "+fixed)

	// The repository loses the old build: rollback must use the saved .deb.
	c.sh("rm -f /var/cache/apt/archives/*.deb && echo 'deb [trusted=yes] file:/nonexistent ./' >/etc/apt/sources.list.d/vz.list")
	expect("rollback", p.Scripts.Rollback, 0, "rolled back vz-fixture to 1.0-1")
	if v := installed(); v != vulnerable {
		t.Fatalf("after rollback: installed %q, want %q", v, vulnerable)
	}
	if got := c.sh("cat /usr/share/vz-fixture/VERSION"); got != vulnerable {
		t.Errorf("the old build's files are not back: VERSION = %q", got)
	}
	expect("verify after rollback", p.Scripts.Verify, 1, "VULNERABLE")
	expect("rollback again", p.Scripts.Rollback, 0, "nothing to roll back")
	if got := c.sh("ls -A /var/lib/vulnzero"); got != "" {
		t.Errorf("rollback left state behind: %q", got)
	}
}
