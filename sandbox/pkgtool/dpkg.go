package pkgtool

import (
	"fmt"
	"path"
	"strings"
)

// dpkgQuery serves dpkg-query -W. Like the real tool it prints one formatted
// line per matching package, reports each pattern that matched nothing on
// stderr and then exits 1.
func (t *tool) dpkgQuery(args []string) int {
	format := "${binary:Package}\t${Version}\n"
	show := false
	var patterns []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-W" || a == "--show":
			show = true
		case a == "-f" || a == "--showformat":
			if i+1 >= len(args) {
				return t.dpkgQueryUsage("--showformat needs a value")
			}
			i++
			format = args[i]
		case strings.HasPrefix(a, "--showformat="):
			format = strings.TrimPrefix(a, "--showformat=")
		case strings.HasPrefix(a, "-f="):
			format = strings.TrimPrefix(a, "-f=") // dpkg-query accepts -f=FORMAT too
		case strings.HasPrefix(a, "-f"):
			format = strings.TrimPrefix(a, "-f")
		case a == "--":
			patterns = append(patterns, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-"):
			return t.dpkgQueryUsage(fmt.Sprintf("option %s is not supported by the VulnZero sandbox package tool", a))
		default:
			patterns = append(patterns, a)
		}
	}
	if !show {
		return t.dpkgQueryUsage("need an action option (the sandbox package tool supports -W)")
	}

	status, err := t.loadStatus()
	if err != nil {
		fmt.Fprintf(t.stderr, "dpkg-query: error: %v\n", err)
		return exitDpkgError
	}
	var out strings.Builder
	if len(patterns) == 0 {
		for _, name := range sortedKeys(status) {
			if p := status[name]; p.installed() || strings.HasSuffix(p.Status, " config-files") {
				out.WriteString(formatPackage(format, p))
			}
		}
		fmt.Fprint(t.stdout, out.String())
		return 0
	}
	code := 0
	for _, pat := range patterns {
		found := false
		for _, name := range sortedKeys(status) {
			if ok, _ := path.Match(pat, name); ok {
				found = true
				out.WriteString(formatPackage(format, status[name]))
			}
		}
		if !found {
			fmt.Fprintf(t.stderr, "dpkg-query: no packages found matching %s\n", pat)
			code = exitDpkgQueryNotFound
		}
	}
	fmt.Fprint(t.stdout, out.String())
	return code
}

func (t *tool) dpkgQueryUsage(msg string) int {
	fmt.Fprintf(t.stderr, "dpkg-query: error: %s\n\nUse --help for help about querying packages.\n", msg)
	return exitDpkgError
}

// formatPackage expands a dpkg-query format: ${Field} references (unknown
// fields expand to nothing, as in dpkg) and the escapes \n \t \\.
func formatPackage(format string, p pkgState) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '\\' && i+1 < len(format):
			i++
			switch format[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case '\\':
				b.WriteByte('\\')
			default:
				b.WriteByte('\\')
				b.WriteByte(format[i])
			}
		case c == '$' && i+1 < len(format) && format[i+1] == '{':
			end := strings.IndexByte(format[i:], '}')
			if end < 0 {
				b.WriteString(format[i:])
				return b.String()
			}
			field, _, _ := strings.Cut(format[i+2:i+end], ";") // width specs are ignored
			b.WriteString(fieldValue(field, p))
			i += end
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func fieldValue(field string, p pkgState) string {
	var want, eflag, st string
	if parts := strings.Fields(p.Status); len(parts) == 3 {
		want, eflag, st = parts[0], parts[1], parts[2]
	}
	switch strings.ToLower(field) {
	case "package", "binary:package":
		return p.Name
	case "version":
		return p.Version
	case "status":
		return p.Status
	case "architecture":
		return fakeArch
	case "db:status-want":
		return want
	case "db:status-eflag":
		return eflag
	case "db:status-status":
		return st
	case "db:status-abbrev":
		abbrev := map[string]string{"install": "i", "hold": "h", "deinstall": "r", "purge": "p", "unknown": "u"}[want]
		abbrev += map[string]string{"installed": "i", "not-installed": "n", "config-files": "c",
			"half-installed": "H", "unpacked": "U", "half-configured": "F",
			"triggers-awaited": "W", "triggers-pending": "t"}[st]
		return abbrev + " "
	}
	return ""
}

// dpkg serves dpkg --compare-versions, with dpkg's exit codes: 0 when the
// relation holds, 1 when it does not, 2 on bad usage or a bad version.
func (t *tool) dpkg(args []string) int {
	if len(args) == 0 || args[0] != "--compare-versions" {
		what := "no action"
		if len(args) > 0 {
			what = args[0]
		}
		fmt.Fprintf(t.stderr, "dpkg: error: %s is not supported by the VulnZero sandbox package tool (only --compare-versions)\n", what)
		return exitDpkgError
	}
	if len(args) != 4 {
		fmt.Fprintln(t.stderr, "dpkg: error: --compare-versions takes three arguments: <version> <relation> <version>")
		return exitDpkgError
	}
	a, op, b := args[1], args[2], args[3]
	holds, err := compareRelation(a, op, b)
	if err != nil {
		fmt.Fprintf(t.stderr, "dpkg: error: %v\n", err)
		return exitDpkgError
	}
	if holds {
		return 0
	}
	return 1
}

// compareRelation evaluates "a op b" as dpkg does. An empty version is
// older than every version, except with the -nl ("not less") relations,
// where it is newer.
func compareRelation(a, op, b string) (bool, error) {
	emptyNewer := strings.HasSuffix(op, "-nl")
	base := strings.TrimSuffix(op, "-nl")
	var cmp int
	switch {
	case a == "" && b == "":
		cmp = 0
	case a == "":
		cmp = -1
		if emptyNewer {
			cmp = 1
		}
	case b == "":
		cmp = 1
		if emptyNewer {
			cmp = -1
		}
	default:
		c, err := compareVersions(a, b)
		if err != nil {
			return false, err
		}
		cmp = c
	}
	if emptyNewer && base != "lt" && base != "le" && base != "gt" && base != "ge" {
		return false, fmt.Errorf("--compare-versions bad relation")
	}
	switch base {
	case "lt", "<<":
		return cmp < 0, nil
	case "le", "<=", "<":
		return cmp <= 0, nil
	case "eq", "=":
		return cmp == 0, nil
	case "ne":
		return cmp != 0, nil
	case "ge", ">=", ">":
		return cmp >= 0, nil
	case "gt", ">>":
		return cmp > 0, nil
	}
	return false, fmt.Errorf("--compare-versions bad relation")
}
