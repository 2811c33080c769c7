package version_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/version"
)

type pair struct {
	a, b string
	want int
}

var debPairs = []pair{
	{"1.0", "1.0", 0},
	{"1.0-1", "1.0-2", -1},
	{"1:1.0", "2.0", 1},
	{"3.0.13-1~deb12u1", "3.0.13-1", -1},
	{"3.0.13-1~deb12u1", "3.0.11-1~deb12u2", 1},
	{"1.0~rc1", "1.0", -1},
	{"1.0+b1", "1.0", 1},
	{"2:9.0.1378-2", "2:9.0.1378-2+deb12u1", -1},
	{"7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1},
	{"1.2a", "1.2", 1},
	{"0.5.12-2", "0.5.12-2", 0},
}

var rpmPairs = []pair{
	{"3.0.7-27.el9", "3.0.7-27.el9", 0},
	{"3.0.7-25.el9", "3.0.7-27.el9", -1},
	{"1:3.0.7-25.el9", "3.0.7-27.el9", 1},
	{"3.0.7-27.el9_5", "3.0.7-27.el9", 1},
	{"1.0~rc1-1", "1.0-1", -1},
	{"1.0^git1-1", "1.0-1", 1},
	{"2.10-1", "2.9-1", 1},
	{"1.0a-1", "1.0-1", 1},
	{"0:1.0-1", "1.0-1", 0},
	{"8.7p1-38.el9_4.4", "8.7p1-38.el9", 1},
}

var apkPairs = []pair{
	{"3.1.4-r0", "3.1.4-r1", -1},
	{"3.1.4-r5", "3.1.5-r0", -1},
	{"1.36.1-r2", "1.36.1-r2", 0},
	{"1.0_rc1-r0", "1.0-r0", -1},
	{"1.0_p1-r0", "1.0-r0", 1},
	{"2.10-r0", "2.9-r0", 1},
	{"1.2.3a-r0", "1.2.3-r0", 1},
}

func check(t *testing.T, s version.Scheme, pairs []pair) {
	t.Helper()
	for _, p := range pairs {
		got, err := s.Compare(p.a, p.b)
		if err != nil {
			t.Errorf("%s Compare(%q, %q): %v", s, p.a, p.b, err)
			continue
		}
		if got != p.want {
			t.Errorf("%s Compare(%q, %q) = %d, want %d", s, p.a, p.b, got, p.want)
		}
		if back, _ := s.Compare(p.b, p.a); back != -p.want {
			t.Errorf("%s Compare(%q, %q) = %d, not antisymmetric", s, p.b, p.a, back)
		}
	}
}

func TestCompare(t *testing.T) {
	check(t, version.Debian, debPairs)
	check(t, version.RPM, rpmPairs)
	check(t, version.Alpine, apkPairs)
}

// The table above is what the scripts' own tools say: dpkg is on every
// Debian host, so the Go ordering is checked against the real one.
func TestDebianAgreesWithDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg is not installed: cannot check against the real Debian ordering")
	}
	for _, p := range debPairs {
		for op, want := range map[string]bool{"lt": p.want < 0, "eq": p.want == 0, "gt": p.want > 0} {
			err := exec.Command(dpkg, "--compare-versions", p.a, op, p.b).Run()
			if got := err == nil; got != want {
				t.Errorf("dpkg --compare-versions %s %s %s = %v, Go says %d", p.a, op, p.b, got, p.want)
			}
		}
	}
}

// rpm's own vercmp, through the same Lua call the dnf/yum/zypper verify.sh
// uses; scripts/test-deps.sh installs Debian's rpm package for it.
func TestRPMAgreesWithRpmVercmp(t *testing.T) {
	rpm, err := exec.LookPath("rpm")
	if err != nil {
		t.Skip("rpm is not installed (scripts/test-deps.sh installs it): cannot check against rpm's ordering")
	}
	var expr strings.Builder
	for _, p := range rpmPairs {
		fmt.Fprintf(&expr, "print(rpm.vercmp(%q, %q)) print(' ') ", p.a, p.b)
	}
	out, err := exec.Command(rpm, "--eval", "%{lua: "+expr.String()+"}").Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	got := strings.Fields(string(out))
	if len(got) != len(rpmPairs) {
		t.Fatalf("rpm printed %q for %d pairs", out, len(rpmPairs))
	}
	for i, p := range rpmPairs {
		if want := fmt.Sprint(p.want); got[i] != want {
			t.Errorf("rpm.vercmp(%q, %q) = %s, Go says %s", p.a, p.b, got[i], want)
		}
	}
}

func TestHighestAndSort(t *testing.T) {
	h, err := version.Debian.Highest("3.0.11-1~deb12u2", "3.0.13-1~deb12u1", "3.0.13-1~deb12u1~rc")
	if err != nil || h != "3.0.13-1~deb12u1" {
		t.Errorf("Debian.Highest = %q, %v", h, err)
	}
	h, err = version.RPM.Highest("3.0.7-27.el9", "1:3.0.1-1.el9", "3.0.7-28.el9")
	if err != nil || h != "1:3.0.1-1.el9" {
		t.Errorf("RPM.Highest = %q, %v (the epoch wins)", h, err)
	}
	vs := []string{"1.0_p1-r0", "1.0-r0", "1.0_rc1-r0", "0.9-r3"}
	if err := version.Alpine.Sort(vs); err != nil || strings.Join(vs, " ") != "0.9-r3 1.0_rc1-r0 1.0-r0 1.0_p1-r0" {
		t.Errorf("Alpine.Sort = %v, %v", vs, err)
	}
	if _, err := version.Debian.Highest(); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("Highest() = %v", err)
	}
	bad := []string{"1.0", "not a version"}
	if err := version.Debian.Sort(bad); err == nil || bad[1] != "not a version" {
		t.Errorf("Sort with an invalid version: %v %v", err, bad)
	}
}

func TestInvalid(t *testing.T) {
	for _, c := range []struct {
		s version.Scheme
		v string
	}{
		{version.Debian, ""}, {version.Debian, "a:1.0"}, {version.Debian, "1.0 2"},
		{version.RPM, ""}, {version.RPM, "1.0-1-2"}, {version.RPM, "1.0$(id)"}, {version.RPM, "x:1.0"},
		{version.Alpine, "1.0-rX"}, {version.Alpine, "abc"},
		{version.Scheme("pacman"), "1.0"},
	} {
		if _, err := c.s.Compare(c.v, "1.0"); !errors.Is(err, vulnzero.ErrInvalid) {
			t.Errorf("%s Compare(%q) = %v, want ErrInvalid", c.s, c.v, err)
		}
	}
}

func TestFor(t *testing.T) {
	for m, want := range map[vulnzero.PackageManager]version.Scheme{
		vulnzero.APT: version.Debian, vulnzero.DNF: version.RPM, vulnzero.YUM: version.RPM,
		vulnzero.Zypper: version.RPM, vulnzero.APK: version.Alpine,
	} {
		if got, err := version.For(m); err != nil || got != want {
			t.Errorf("For(%s) = %s, %v", m, got, err)
		}
	}
	if _, err := version.For("pacman"); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("For(pacman) = %v", err)
	}
}
