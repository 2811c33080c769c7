// Package version orders package versions the way each distribution's own
// tools do, for planning (which fixed version wins when scanners disagree)
// and for tests that check the shell scripts' comparisons against Go's.
//
// Debian versions follow dpkg (github.com/knqyf263/go-deb-version), RPM
// versions (dnf, yum, zypper) follow rpmvercmp over epoch:version-release
// (github.com/knqyf263/go-rpm-version), and Alpine versions follow apk-tools
// (github.com/knqyf263/go-apk-version). These are the libraries Trivy uses
// to decide whether an installed package is vulnerable, so planning agrees
// with the scanners that produce the findings.
package version

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	apkversion "github.com/knqyf263/go-apk-version"
	debversion "github.com/knqyf263/go-deb-version"
	rpmversion "github.com/knqyf263/go-rpm-version"

	"vulnzero.dev/vulnzero"
)

// Scheme is a version ordering.
type Scheme string

// The orderings VulnZero knows.
const (
	Debian Scheme = "deb"
	RPM    Scheme = "rpm"
	Alpine Scheme = "apk"
)

// For returns the ordering a package manager uses.
func For(m vulnzero.PackageManager) (Scheme, error) {
	switch m {
	case vulnzero.APT:
		return Debian, nil
	case vulnzero.DNF, vulnzero.YUM, vulnzero.Zypper:
		return RPM, nil
	case vulnzero.APK:
		return Alpine, nil
	}
	return "", fmt.Errorf("version ordering for package manager %q: unknown manager: %w", m, vulnzero.ErrInvalid)
}

// rpmEVR is [epoch:]version[-release] with rpm's allowed characters:
// version and release may not contain '-', and neither may be empty.
var rpmEVR = regexp.MustCompile(`^(?:[0-9]+:)?[A-Za-z0-9._+~^]+(?:-[A-Za-z0-9._+~^]+)?$`)

// Valid reports why v is not a version of scheme s, or nil when it is.
func (s Scheme) Valid(v string) error {
	var ok bool
	switch s {
	case Debian:
		ok = debversion.Valid(v)
	case RPM:
		ok = rpmEVR.MatchString(v)
	case Alpine:
		ok = apkversion.Valid(v)
	default:
		return fmt.Errorf("version scheme %q: unknown: %w", s, vulnzero.ErrInvalid)
	}
	if !ok {
		return fmt.Errorf("version %q is not a valid %s version: %w", v, s, vulnzero.ErrInvalid)
	}
	return nil
}

// Compare returns -1, 0 or +1 as a is older than, equal to or newer than b.
// Both must be valid in s.
func (s Scheme) Compare(a, b string) (int, error) {
	if err := s.Valid(a); err != nil {
		return 0, err
	}
	if err := s.Valid(b); err != nil {
		return 0, err
	}
	switch s {
	case Debian:
		va, _ := debversion.NewVersion(a)
		vb, _ := debversion.NewVersion(b)
		return sign(va.Compare(vb)), nil
	case RPM:
		return sign(rpmversion.NewVersion(a).Compare(rpmversion.NewVersion(b))), nil
	default: // Alpine; Valid rejected anything else
		va, _ := apkversion.NewVersion(a)
		vb, _ := apkversion.NewVersion(b)
		return sign(va.Compare(vb)), nil
	}
}

// AtLeast reports whether installed is at or above fixed: the question every
// verify.sh answers on the host.
func (s Scheme) AtLeast(installed, fixed string) (bool, error) {
	c, err := s.Compare(installed, fixed)
	return c >= 0, err
}

// Highest returns the newest of vs. Planning uses it when scanners disagree
// on the fixed version of one package: upgrading to the highest fixes every
// finding. It fails on an empty list or an invalid version, naming it.
func (s Scheme) Highest(vs ...string) (string, error) {
	if len(vs) == 0 {
		return "", fmt.Errorf("highest %s version: no versions: %w", s, vulnzero.ErrInvalid)
	}
	best := vs[0]
	if err := s.Valid(best); err != nil {
		return "", fmt.Errorf("highest %s version: %w", s, err)
	}
	for _, v := range vs[1:] {
		c, err := s.Compare(v, best)
		if err != nil {
			return "", fmt.Errorf("highest %s version: %w", s, err)
		}
		if c > 0 {
			best = v
		}
	}
	return best, nil
}

// Sort orders vs oldest first in place, keeping the input order of equal
// versions; it fails, leaving vs unchanged, when any is invalid.
func (s Scheme) Sort(vs []string) error {
	for _, v := range vs {
		if err := s.Valid(v); err != nil {
			return fmt.Errorf("sort %s versions: %w", s, err)
		}
	}
	slices.SortStableFunc(vs, func(a, b string) int {
		c, _ := s.Compare(a, b)
		return c
	})
	return nil
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

// String is the scheme's name.
func (s Scheme) String() string { return strings.ToLower(string(s)) }
