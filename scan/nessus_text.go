package scan

import (
	"regexp"
	"strings"
)

// pkgFix is one package a scanner reports with its installed and fixed
// versions, read out of free text (Nessus plugin output, Qualys RESULTS).
type pkgFix struct {
	name, installed, fixed string
	ecosystem              string // "deb" or "rpm" when the text's form says so
}

// nessusPackages reads the package lines of local-check plugin output:
//
//	Remote package installed : pixman-0.26.2-5.el6_4
//	Should be                : pixman-0.26.2-5.1.el6_5
//
// (RPM NEVRA, several pairs per item), and the newer form, where the lines
// start with "- " and Debian and Ubuntu write name_version:
//
//	Installed package : openssl_1.0.1f-1ubuntu2.27
//	Fixed package     : openssl_1.0.1f-1ubuntu2.28
//
// A pair whose strings cannot be split into name and version is left out.
func nessusPackages(out string) []pkgFix {
	var pairs []pkgFix
	var installed string
	for line := range strings.SplitSeq(out, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(key), "-*+ ")))
		val = strings.TrimSpace(val)
		switch key {
		case "remote package installed", "installed package":
			installed = val
		case "should be", "fixed package":
			if installed == "" {
				continue
			}
			iname, iver, ieco, ok1 := splitPackage(installed)
			_, fver, _, ok2 := splitPackage(val)
			installed = ""
			if !ok1 || !ok2 {
				continue
			}
			pairs = append(pairs, pkgFix{name: iname, installed: iver, fixed: fver, ecosystem: ieco})
		}
	}
	return pairs
}

// nessusVersions reads the "Installed version : X" / "Fixed version : Y"
// lines that Windows, macOS and application plugins write (there is no
// package name: the product is in the plugin name). The first pair wins;
// a fixed version listing branches ("2.4.52 / 2.2.35") is chosen with
// pickFixed.
func nessusVersions(out string) (installed, fixed string) {
	for line := range strings.SplitSeq(out, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key = strings.ToLower(strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(key), "-*+ ")))
		val = strings.TrimSpace(val)
		switch key {
		case "installed version":
			if installed == "" {
				installed = val
			}
		case "fixed version":
			if fixed == "" {
				fixed = pickFixed(strings.ReplaceAll(val, " / ", ","), installed)
			}
		}
	}
	return installed, fixed
}

var rpmArches = map[string]bool{
	"x86_64": true, "i386": true, "i486": true, "i586": true, "i686": true, "noarch": true,
	"aarch64": true, "ppc64": true, "ppc64le": true, "s390x": true, "armv7hl": true, "src": true,
}

// splitPackage splits a package string into name and version. An RPM NEVRA
// "name-[epoch:]version-release[.arch]" has the version in its last two
// dash-separated fields, and that version starts with a digit and holds no
// '_'. Otherwise Debian's "name_version[_arch]" is tried (Debian names
// cannot hold '_'; SUSE's "libopenssl1_1-1.1.1d-11.20.1" is an RPM).
func splitPackage(s string) (name, version, ecosystem string, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, " \t") {
		return "", "", "", false
	}
	r := s
	if i := strings.LastIndexByte(r, '.'); i > 0 && rpmArches[r[i+1:]] {
		r = r[:i]
	}
	if rel := strings.LastIndexByte(r, '-'); rel > 0 && rel < len(r)-1 {
		if ver := strings.LastIndexByte(r[:rel], '-'); ver > 0 {
			v := r[ver+1 : rel]
			if _, after, ok := strings.Cut(v, ":"); ok {
				v = after
			}
			if v != "" && isDigit(v[0]) && !strings.Contains(v, "_") && isPackageName(r[:ver]) {
				return r[:ver], r[ver+1:], "rpm", true
			}
		}
	}
	if i := strings.IndexByte(s, '_'); i > 0 && i < len(s)-1 && isDigit(s[i+1]) && isPackageName(s[:i]) {
		version = s[i+1:]
		if j := strings.LastIndexByte(version, '_'); j > 0 {
			version = version[:j] // name_version_arch
		}
		return s[:i], version, "deb", true
	}
	return "", "", "", false
}

// isPackageName accepts the names Debian and RPM packages have: a letter
// or digit, then letters, digits and "+-._~" (RPM allows '_').
func isPackageName(s string) bool {
	if s == "" || !(isDigit(s[0]) || isLetter(s[0])) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && !isLetter(c) && !strings.ContainsRune("+-._~", rune(c)) {
			return false
		}
	}
	return true
}

// osFromText reads an OS family and version out of the free text scanners
// write: "Linux Kernel 2.6.32-279.el6.x86_64 on CentOS release 6.3
// (Final)" gives centos 6.3, "Ubuntu 22.04.1 LTS" ubuntu 22.04.1, "Windows
// 2008 R2 Enterprise" windows 2008, "macOS 12.0" macos 12.0. Only the first
// line and, in "X on Y", the Y part are read; a guess listing several OSes
// ("Ubuntu / Tiny Core Linux / Linux 2.6.x") is read up to the first " / ".
func osFromText(s string) (family, version string) {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if i := strings.LastIndex(s, " on "); i >= 0 {
		s = s[i+len(" on "):]
	}
	s, _, _ = strings.Cut(s, " / ")
	l := strings.ToLower(strings.TrimSpace(s))
	if l == "" {
		return "", ""
	}
	for _, d := range distros {
		if i := strings.Index(l, d.match); i >= 0 {
			return d.family, osVersionRe.FindString(l[i+len(d.match):])
		}
	}
	first, rest, _ := strings.Cut(l, " ")
	return first, osVersionRe.FindString(rest)
}

var osVersionRe = regexp.MustCompile(`\d+(\.\d+)*`)

// distros are matched in order, so longer names come before their
// prefixes.
var distros = []struct{ match, family string }{
	{"red hat enterprise linux", "redhat"},
	{"redhat", "redhat"},
	{"rhel", "redhat"},
	{"centos", "centos"},
	{"rocky linux", "rocky"},
	{"rocky", "rocky"},
	{"almalinux", "alma"},
	{"alma linux", "alma"},
	{"amazon linux", "amazon"},
	{"oracle linux", "oracle"},
	{"fedora", "fedora"},
	{"opensuse", "opensuse"},
	{"suse linux enterprise", "sles"},
	{"sles", "sles"},
	{"ubuntu", "ubuntu"},
	{"debian", "debian"},
	{"alpine", "alpine"},
	{"macos", "macos"},
	{"mac os x", "macos"},
	{"windows", "windows"},
}
