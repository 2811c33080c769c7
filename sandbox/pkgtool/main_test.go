package pkgtool_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero/sandbox/pkgtool"
)

// call runs Main in-process against root with cwd dir.
func call(t *testing.T, root string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	env := func(k string) string {
		if k == "VZ_SANDBOX_ROOT" {
			return root
		}
		return ""
	}
	code = pkgtool.Main(args, &o, &e, env)
	return o.String(), e.String(), code
}

func provisioned(t *testing.T, installed map[string]string, available map[string][]string) string {
	t.Helper()
	root := t.TempDir()
	if err := pkgtool.Provision(root, "/nonexistent/tool", installed, available); err != nil {
		t.Fatal(err)
	}
	return root
}

// The fake dpkg must order versions exactly as the real one; where dpkg is
// installed, every case is checked against it too.
func TestCompareVersions(t *testing.T) {
	root := provisioned(t, nil, nil)
	realDpkg, _ := exec.LookPath("dpkg")
	cases := []struct {
		a, op, b string
		want     int
	}{
		{"1.0", "lt", "1.0.1", 0},
		{"1.0.1", "lt", "1.0", 1},
		{"1.0~rc1", "lt", "1.0", 0},
		{"1.0", "lt", "1.0+b1", 0},
		{"1:0.9", "gt", "2.0", 0},
		{"3.0.13-1~deb12u1", "ge", "3.0.11-1~deb12u2", 0},
		{"3.0.11-1~deb12u2", "ge", "3.0.13-1~deb12u1", 1},
		{"2.36-9+deb12u4", "ge", "2.36-9+deb12u4", 0},
		{"2.36-9+deb12u4", "eq", "2.36-9+deb12u04", 0},
		{"1.0a", "gt", "1.0", 0},
		{"1.0", "ne", "1.0", 1},
		{"1.0", "le", "1.0", 0},
		{"1.0", "<<", "1.1", 0},
		{"1.1", ">>", "1.0", 0},
		{"1.0", ">=", "1.0", 0},
		{"1.0", "<=", "0.9", 1},
		{"", "lt", "1.0", 0},
		{"", "lt-nl", "1.0", 1},
		{"1.0", "ge", "", 0},
		{"1.0", "bogus", "1.0", 2},
		{"1 0", "lt", "2", 2},
	}
	for _, c := range cases {
		_, stderr, code := call(t, root, "dpkg", "--compare-versions", c.a, c.op, c.b)
		if code != c.want {
			t.Errorf("dpkg --compare-versions %q %s %q = %d, want %d (%s)", c.a, c.op, c.b, code, c.want, stderr)
		}
		if realDpkg != "" {
			err := exec.Command(realDpkg, "--compare-versions", c.a, c.op, c.b).Run()
			realCode := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				realCode = ee.ExitCode()
			}
			if realCode != code {
				t.Errorf("dpkg --compare-versions %q %s %q: real dpkg exits %d, fake %d", c.a, c.op, c.b, realCode, code)
			}
		}
	}
	if _, _, code := call(t, root, "dpkg", "--compare-versions", "1"); code != 2 {
		t.Errorf("two few arguments: exit %d", code)
	}
}

func TestDpkgQuery(t *testing.T) {
	root := provisioned(t, map[string]string{"vzdemo": "1:1.0-1", "libvz1": "2.3"}, nil)
	tests := []struct {
		args     []string
		out, err string
		code     int
	}{
		{[]string{"-W"}, "libvz1\t2.3\nvzdemo\t1:1.0-1\n", "", 0},
		{[]string{"-W", "-f=${Version}", "vzdemo"}, "1:1.0-1", "", 0},
		{[]string{"-W", "-f", "${Package} ${Status}\\n", "vzdemo"}, "vzdemo install ok installed\n", "", 0},
		{[]string{"-W", "--showformat=${Status}\\t${Version}\\n", "vzdemo"}, "install ok installed\t1:1.0-1\n", "", 0},
		{[]string{"-W", "-f", "${db:Status-Abbrev}${binary:Package}${Nope}\\n", "lib*"}, "ii libvz1\n", "", 0},
		{[]string{"-W", "nosuch"}, "", "dpkg-query: no packages found matching nosuch\n", 1},
		{[]string{"-W", "nosuch", "vzdemo"}, "vzdemo\t1:1.0-1\n", "no packages found matching nosuch", 1},
		{[]string{"-l"}, "", "not supported", 2},
	}
	for _, tt := range tests {
		out, errOut, code := call(t, root, append([]string{"dpkg-query"}, tt.args...)...)
		if out != tt.out || code != tt.code || !strings.Contains(errOut, tt.err) {
			t.Errorf("dpkg-query %q = %q, %q, %d; want %q, %q, %d", tt.args, out, errOut, code, tt.out, tt.err, tt.code)
		}
	}
}

func TestAptGet(t *testing.T) {
	root := provisioned(t,
		map[string]string{"vzdemo": "1.0.1"},
		map[string][]string{"vzdemo": {"1.0.0", "1.0.1", "1:0.1"}, "newpkg": {"3"}})
	t.Chdir(t.TempDir())

	_, errOut, code := call(t, root, "apt-get", "install", "-y", "nosuch")
	expectTool(t, "unknown package", code, 100, errOut, "E: Unable to locate package nosuch")

	_, errOut, code = call(t, root, "apt-get", "install", "-y", "vzdemo=9.9")
	expectTool(t, "unknown version", code, 100, errOut, "E: Version '9.9' for 'vzdemo' was not found")

	_, errOut, code = call(t, root, "apt-get", "-o", "DPkg::Lock::Timeout=60", "install", "-y", "vzdemo=1.0.0")
	expectTool(t, "downgrade without --allow-downgrades", code, 100, errOut, "E: Packages were downgraded and -y was used without --allow-downgrades.")

	out, _, code := call(t, root, "apt-get", "install", "vzdemo=1.0.0", "--allow-downgrades")
	expectTool(t, "no -y", code, 1, out, "Do you want to continue? [Y/n] Abort.")

	out, _, code = call(t, root, "apt-get", "install", "-y", "--only-upgrade", "newpkg")
	expectTool(t, "only-upgrade of a package not installed", code, 0, out, "Skipping newpkg, it is not installed and only upgrades are requested.")
	if _, ok := mustInstalled(t, root)["newpkg"]; ok {
		t.Error("--only-upgrade installed a new package")
	}

	out, _, code = call(t, root, "apt-get", "install", "-y", "vzdemo")
	expectTool(t, "upgrade to the epoch version", code, 0, out, "Unpacking vzdemo (1:0.1) over (1.0.1) ...")
	out, _, code = call(t, root, "apt-get", "install", "-y", "vzdemo")
	expectTool(t, "already newest", code, 0, out, "vzdemo is already the newest version (1:0.1).")

	out, _, code = call(t, root, "apt-get", "download", "vzdemo=1.0.0", "vzdemo")
	expectTool(t, "download", code, 0, out, "Get:2 vzpkg:sandbox stable/main vzdemo all 1:0.1")
	for _, f := range []string{"vzdemo_1.0.0_all.deb", "vzdemo_1%3a0.1_all.deb"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("download did not write %s: %v", f, err)
		}
	}
	_, errOut, code = call(t, root, "apt-get", "download", "vzdemo=7")
	expectTool(t, "download of an unknown version", code, 100, errOut, "E: Version '7' for 'vzdemo' was not found")

	out, _, code = call(t, root, "apt-get", "install", "-y", "--allow-downgrades", "./vzdemo_1.0.0_all.deb")
	expectTool(t, "install a downloaded .deb", code, 0, out, "The following packages will be DOWNGRADED:")
	if v := mustInstalled(t, root)["vzdemo"]; v != "1.0.0" {
		t.Errorf("vzdemo = %q after installing the 1.0.0 .deb", v)
	}

	if err := os.WriteFile("junk.deb", []byte("not a deb"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = call(t, root, "apt-get", "install", "-y", "./junk.deb")
	expectTool(t, "invalid .deb", code, 100, errOut, "E: Invalid archive signature")
	_, errOut, code = call(t, root, "apt-get", "install", "-y", "./missing.deb")
	expectTool(t, "missing .deb", code, 100, errOut, "E: Unsupported file ./missing.deb given on commandline")

	out, _, code = call(t, root, "apt-get", "-qy", "install", "newpkg")
	expectTool(t, "new install", code, 0, out, "The following NEW packages will be installed:")

	_, errOut, code = call(t, root, "apt-get", "remove", "vzdemo")
	expectTool(t, "unsupported operation", code, 100, errOut, "E: Invalid operation remove")
	_, errOut, code = call(t, root, "apt-get", "--frobnicate", "install", "vzdemo")
	expectTool(t, "unknown option", code, 100, errOut, "--frobnicate is not understood")
}

func TestMainRefusesWithoutSandboxRoot(t *testing.T) {
	var o, e bytes.Buffer
	code := pkgtool.Main([]string{"/usr/bin/apt-get", "install", "-y", "x"}, &o, &e, func(string) string { return "" })
	expectTool(t, "no root", code, 2, e.String(), "VZ_SANDBOX_ROOT is not set")
	_, errOut, code := call(t, t.TempDir(), "dpkg-query", "-W")
	expectTool(t, "unprovisioned root", code, 2, errOut, "is not a provisioned sandbox host")
	_, errOut, code = call(t, provisioned(t, nil, nil), "yum", "install")
	expectTool(t, "unknown tool", code, 2, errOut, `unknown tool "yum"`)
}

func TestProvisionRejectsBadInput(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		installed map[string]string
		available map[string][]string
	}{
		{map[string]string{"Bad Name": "1"}, nil},
		{map[string]string{"ok": "1 0"}, nil},
		{nil, map[string][]string{"ok": {"x:y"}}},
	} {
		if err := pkgtool.Provision(root, "/bin/true", tc.installed, tc.available); err == nil {
			t.Errorf("Provision(%v, %v) accepted", tc.installed, tc.available)
		}
	}
	if err := pkgtool.Provision("relative", "/bin/true", nil, nil); err == nil {
		t.Error("relative root accepted")
	}
	if _, err := os.Stat(filepath.Join(root, "bin")); err == nil {
		t.Error("a rejected Provision wrote shims")
	}
}

func expectTool(t *testing.T, what string, code, want int, out, substr string) {
	t.Helper()
	if code != want || !strings.Contains(out, substr) {
		t.Errorf("%s: exit %d (want %d), output %q does not contain %q", what, code, want, out, substr)
	}
}
