package scan

import (
	"strings"
)

// NormalizeOSFamily maps the OS names scanners use to the families VulnZero
// patches by: "debian" (Debian, Ubuntu), "rhel" (Red Hat, CentOS, Rocky,
// Alma, Amazon, Oracle, Fedora), "suse" (SLES, openSUSE) and "alpine". Any
// other name is returned lowercased and trimmed, so it stays visible but
// matches no package manager.
func NormalizeOSFamily(s string) string {
	// "debian 12", "Red Hat Enterprise Linux 9", "opensuse.leap": the first
	// word is enough to tell the family.
	f := strings.ToLower(strings.TrimSpace(s))
	if i := strings.IndexAny(f, " \t"); i >= 0 {
		f = f[:i]
	}
	switch f {
	case "debian", "ubuntu":
		return "debian"
	case "redhat", "rhel", "red", "centos", "rocky", "rockylinux", "alma", "almalinux",
		"amazon", "amzn", "oracle", "ol", "fedora":
		return "rhel"
	case "suse", "sles":
		return "suse"
	case "alpine":
		return "alpine"
	}
	if strings.HasPrefix(f, "opensuse") || strings.HasPrefix(f, "sles") {
		return "suse"
	}
	return f
}

// osEcosystem is the package format of an OS family: what Finding.Ecosystem
// says for OS packages.
func osEcosystem(family string) string {
	switch NormalizeOSFamily(family) {
	case "debian":
		return "deb"
	case "rhel", "suse", "photon", "cbl-mariner", "azurelinux":
		return "rpm"
	case "alpine", "wolfi", "chainguard":
		return "apk"
	}
	return ""
}

// isOSFamily reports whether a Trivy result Type names an OS (so its
// packages are OS packages) rather than a language ecosystem. The legacy
// Trivy format has no Class, so this is how its OS results are told apart.
func isOSFamily(typ string) bool { return osEcosystem(typ) != "" }

// osName joins a family and version the way Finding.OS spells it:
// "debian 10.1".
func osName(family, version string) string {
	family = strings.ToLower(strings.TrimSpace(family))
	version = strings.TrimSpace(version)
	switch {
	case family == "":
		return ""
	case version == "":
		return family
	}
	return family + " " + version
}

// pickFixed chooses one fixed version from what a scanner wrote. Scanners
// may list one fixed version per release branch ("1.2.3, 1.3.1") or write
// a legacy range (">=4.17.11"). The choice is the lowest listed version
// above the installed one: the smallest upgrade that fixes this host. When
// none is above it (the branches do not compare cleanly), the highest listed
// version is taken. Entries that are ranges we cannot read as one version
// ("<2.0", "1.0 - 2.0") are dropped; when nothing is left the fix is
// unknown ("").
func pickFixed(fixed, installed string) string {
	var cands []string
	for _, part := range strings.FieldsFunc(fixed, func(r rune) bool { return r == ',' || r == '|' }) {
		v := strings.TrimSpace(part)
		v = strings.TrimPrefix(v, ">=")
		v = strings.TrimPrefix(v, "=")
		v = strings.TrimSpace(v)
		if v == "" || strings.ContainsAny(v, "<> \t!") {
			continue
		}
		cands = append(cands, v)
	}
	if len(cands) == 0 {
		return ""
	}
	best, highest := "", cands[0]
	for _, c := range cands {
		if compareVersions(c, highest) > 0 {
			highest = c
		}
		if installed != "" && compareVersions(c, installed) <= 0 {
			continue
		}
		if best == "" || compareVersions(c, best) < 0 {
			best = c
		}
	}
	if best == "" {
		return highest
	}
	return best
}

// compareVersions orders two version strings the way rpm and dpkg roughly
// agree on: an optional "epoch:" first, then runs of digits compared as
// numbers and runs of letters compared as text, separators ignored, and a
// "~" sorting before anything (even the end). It is good enough to choose
// among a scanner's fixed versions; the package manager on the host stays
// the authority on what is newer.
func compareVersions(a, b string) int {
	ea, ra := splitEpoch(a)
	eb, rb := splitEpoch(b)
	if c := compareNumeric(ea, eb); c != 0 {
		return c
	}
	return compareSegments(ra, rb)
}

func splitEpoch(v string) (epoch, rest string) {
	if i := strings.IndexByte(v, ':'); i > 0 && allDigits(v[:i]) {
		return v[:i], v[i+1:]
	}
	return "0", v
}

func compareSegments(a, b string) int {
	for {
		a = strings.TrimLeftFunc(a, isSeparator)
		b = strings.TrimLeftFunc(b, isSeparator)
		ta, tb := strings.HasPrefix(a, "~"), strings.HasPrefix(b, "~")
		switch {
		case ta && tb:
			a, b = a[1:], b[1:]
			continue
		case ta:
			return -1
		case tb:
			return 1
		}
		if a == "" || b == "" {
			switch {
			case a == b:
				return 0
			case a == "":
				return -1
			}
			return 1
		}
		da, db := isDigit(a[0]), isDigit(b[0])
		if da != db {
			// A number is newer than letters at the same place (rpm's rule).
			if da {
				return 1
			}
			return -1
		}
		sa, sb := leadingRun(a, da), leadingRun(b, db)
		var c int
		if da {
			c = compareNumeric(sa, sb)
		} else {
			c = strings.Compare(sa, sb)
		}
		if c != 0 {
			return c
		}
		a, b = a[len(sa):], b[len(sb):]
	}
}

func compareNumeric(a, b string) int {
	a = strings.TrimLeft(a, "0")
	b = strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func leadingRun(s string, digits bool) string {
	i := 0
	for i < len(s) && (isDigit(s[i]) == digits) && (digits || isLetter(s[i])) {
		i++
	}
	return s[:i]
}

func isSeparator(r rune) bool {
	return r != '~' && !(r < 128 && (isDigit(byte(r)) || isLetter(byte(r)))) //nolint:gosec // G115: r < 128 is checked first
}

func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
