package guardrails

import (
	"path"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// unknown stands for a non-empty value the checker cannot know (the output
// of a command substitution, an environment variable's content, …). It is a
// character no path check ever matches.
const unknown = "\uFFFD"

// hidden marks an unknown value that comes from decoding or downloading at
// run time (a=$(echo … | base64 -d)): data deliberately kept out of sight.
// It contains unknown, so every check treats it as unknown too.
const hidden = unknown + "hidden"

// maxValues bounds the set of possible values tracked for one word; past it
// the set is cut and unknown added.
const maxValues = 32

// word is one shell word as the checker sees it.
type word struct {
	lit   bool     // no expansions at all: value is exactly what runs
	value string   // the value, when lit
	vals  []string // every value the word may take (see unknown)
	text  string   // as written in the script
	subst bool     // holds a command or process substitution
	node  *syntax.Word
}

// synthetic makes a word that did not come from the parser (xargs input,
// find's {}), with the given possible values.
func synthetic(text string, vals ...string) word {
	return word{text: text, vals: vals}
}

// words turns call arguments into words, applying brace expansion where the
// dialect has it (bash: {rm,-rf,/} is three words).
func (c *checker) words(ws []*syntax.Word) []word {
	out := make([]word, 0, len(ws))
	for _, w := range ws {
		// SplitBraces rewrites the word it is given; work on a copy so the
		// tree stays walkable (syntax.Walk does not know BraceExp nodes).
		braced := *w
		if c.lang != syntax.LangPOSIX && syntax.SplitBraces(&braced) {
			for bw, err := range expand.BracesSeq(nil, &braced) {
				if err != nil {
					out = append(out, word{text: printNode(w), vals: []string{unknown}, node: w})
					break
				}
				out = append(out, c.word(bw))
			}
			continue
		}
		out = append(out, c.word(w))
	}
	return out
}

func (c *checker) word(w *syntax.Word) word {
	lit := isLiteral(w)
	vals := c.values(w)
	out := word{lit: lit, vals: vals, text: printNode(w), subst: hasSubst(w), node: w}
	if lit && len(vals) == 1 {
		out.value = vals[0]
	}
	return out
}

// isLiteral reports whether w has no expansion: only plain text and quotes.
func isLiteral(w *syntax.Word) bool {
	for _, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit, *syntax.SglQuoted:
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				if _, ok := q.(*syntax.Lit); !ok {
					return false
				}
			}
		default:
			return false
		}
	}
	return true
}

// hasSubst reports whether n contains a command or process substitution.
func hasSubst(n syntax.Node) bool {
	found := false
	syntax.Walk(n, func(n syntax.Node) bool {
		switch n.(type) {
		case *syntax.CmdSubst, *syntax.ProcSubst:
			found = true
		}
		return !found
	})
	return found
}

func printNode(n syntax.Node) string {
	var b strings.Builder
	if err := syntax.NewPrinter().Print(&b, n); err != nil {
		return "?"
	}
	return b.String()
}

// values returns the possible values of w: the product of its parts'
// possible values, capped at maxValues.
func (c *checker) values(w *syntax.Word) []string {
	acc := []string{""}
	for i, p := range w.Parts {
		acc = product(acc, c.partValues(p, i == 0, false))
	}
	return acc
}

func (c *checker) partValues(p syntax.WordPart, first, quoted bool) []string {
	switch p := p.(type) {
	case *syntax.Lit:
		if quoted {
			return []string{unescapeDouble(p.Value)}
		}
		v := unescapeBare(p.Value)
		if first {
			v = expandTilde(v)
		}
		return []string{v}
	case *syntax.SglQuoted:
		if !p.Dollar {
			return []string{p.Value}
		}
		s, err := expand.Literal(nil, &syntax.Word{Parts: []syntax.WordPart{p}})
		if err != nil {
			return []string{unknown}
		}
		return []string{s}
	case *syntax.DblQuoted:
		acc := []string{""}
		for _, q := range p.Parts {
			acc = product(acc, c.partValues(q, false, true))
		}
		return acc
	case *syntax.ParamExp:
		return c.paramValues(p)
	case *syntax.ArithmExp:
		return []string{unknown}
	case *syntax.CmdSubst:
		if rule, _ := c.classify(p); rule == RuleDecodeExec || rule == RuleRemoteExec {
			return []string{"", hidden}
		}
		return []string{"", unknown}
	default: // process substitutions, extended globs, …
		return []string{"", unknown}
	}
}

func (c *checker) paramValues(p *syntax.ParamExp) []string {
	if p.Length {
		return []string{unknown}
	}
	if p.Param == nil || p.Excl || p.Width || p.Index != nil || p.Slice != nil || p.Repl != nil ||
		p.Names != 0 || p.NestedParam != nil {
		return []string{"", unknown}
	}
	base := c.varValues(p.Param.Value)
	if p.Exp == nil {
		return base
	}
	alt := func() []string {
		if p.Exp.Word == nil {
			return []string{""}
		}
		return c.values(p.Exp.Word)
	}
	switch p.Exp.Op {
	case syntax.DefaultUnset, syntax.DefaultUnsetOrNull, syntax.AssignUnset, syntax.AssignUnsetOrNull:
		out := without(base, "")
		if len(out) < len(base) {
			out = union(out, alt())
		}
		return out
	case syntax.ErrorUnset, syntax.ErrorUnsetOrNull:
		if out := without(base, ""); len(out) > 0 {
			return out
		}
		return []string{unknown}
	case syntax.AlternateUnset, syntax.AlternateUnsetOrNull:
		return union([]string{""}, alt())
	default: // prefix/suffix removal, case changes: anything shorter or changed
		return union(base, []string{"", unknown})
	}
}

// varValues returns what a variable may hold: every value the script assigns
// to it, or, when the script never assigns it (environment, positional
// parameters), the empty string or something unknown. Results are memoized
// (scripts assign the same variable many times) and a variable defined in
// terms of itself (X=$X/more) counts as unknown at the point of recursion.
func (c *checker) varValues(name string) []string {
	if v, ok := c.memo[name]; ok {
		return v
	}
	defs, ok := c.vars[name]
	if !ok || c.busy[name] {
		return []string{"", unknown}
	}
	c.busy[name] = true
	var out []string
	for _, d := range defs {
		if d == nil {
			out = union(out, []string{"", unknown})
			continue
		}
		out = union(out, c.values(d))
	}
	delete(c.busy, name)
	if len(out) == 0 {
		out = []string{"", unknown}
	}
	c.memo[name] = out
	return out
}

// collectVars records every assignment in n: NAME=word, declarations, and
// for-loop variables (which take each listed item). Variables set in other
// ways (read, getopts, arrays) are left out, so they count as unknown.
func collectVars(n syntax.Node, vars map[string][]*syntax.Word) {
	syntax.Walk(n, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Assign:
			if n.Name == nil {
				return true
			}
			switch {
			case n.Value != nil && !n.Append && n.Index == nil:
				vars[n.Name.Value] = append(vars[n.Name.Value], n.Value)
			case n.Naked:
				// "export X" keeps the value; "local X" empties it.
				vars[n.Name.Value] = append(vars[n.Name.Value], &syntax.Word{})
			default:
				vars[n.Name.Value] = append(vars[n.Name.Value], nil)
			}
		case *syntax.WordIter:
			if !n.InPos.IsValid() {
				vars[n.Name.Value] = append(vars[n.Name.Value], nil)
			}
			for _, item := range n.Items {
				if hasGlob(item) {
					// "for f in *" gives f one file name at a time, never "*".
					item = nil
				}
				vars[n.Name.Value] = append(vars[n.Name.Value], item)
			}
		}
		return true
	})
}

// hasGlob reports whether w has an unquoted glob character.
func hasGlob(w *syntax.Word) bool {
	for _, p := range w.Parts {
		if lit, ok := p.(*syntax.Lit); ok && strings.ContainsAny(lit.Value, "*?[") {
			return true
		}
	}
	return false
}

func product(acc, next []string) []string {
	out := make([]string, 0, len(acc)*len(next))
	for _, a := range acc {
		for _, b := range next {
			if len(out) >= maxValues {
				return union(out, []string{unknown})
			}
			out = append(out, a+b)
		}
	}
	return dedupe(out)
}

func union(a, b []string) []string { return dedupe(append(append([]string(nil), a...), b...)) }

func without(vals []string, drop string) []string {
	var out []string
	for _, v := range vals {
		if v != drop {
			out = append(out, v)
		}
	}
	return out
}

// dedupe drops repeated values and caps the set at maxValues, adding
// unknown for what was cut.
func dedupe(vals []string) []string {
	seen := make(map[string]bool, len(vals))
	out := vals[:0]
	for _, v := range vals {
		if seen[v] {
			continue
		}
		if len(out) >= maxValues {
			if !seen[unknown] {
				out[len(out)-1] = unknown
			}
			break
		}
		seen[v] = true
		out = append(out, v)
	}
	return out
}

// unescapeBare removes the backslashes of an unquoted word: \x is x and a
// backslash-newline disappears.
func unescapeBare(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] != '\n' {
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescapeDouble removes the backslashes that are special inside double
// quotes (before $ ` " \ and newline) and keeps the others.
func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
			i++
			if s[i] != '\n' {
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// expandTilde expands a leading ~ as root's shell would: scripts run as root.
func expandTilde(s string) string {
	if !strings.HasPrefix(s, "~") {
		return s
	}
	user, rest, _ := strings.Cut(s[1:], "/")
	home := "/root"
	if user != "" && user != "root" {
		home = "/home/" + user
	}
	if rest == "" && !strings.Contains(s, "/") {
		return home
	}
	return home + "/" + rest
}

// systemTrees are directories whose recursive removal or permission change
// breaks a host.
var systemTrees = map[string]bool{
	"/": true, "/bin": true, "/boot": true, "/boot/efi": true, "/dev": true, "/etc": true, "/etc/apt": true,
	"/etc/pam.d": true, "/etc/ssh": true, "/etc/systemd": true, "/home": true, "/lib": true, "/lib32": true,
	"/lib64": true, "/libx32": true, "/opt": true, "/proc": true, "/root": true, "/run": true, "/sbin": true,
	"/srv": true, "/sys": true, "/tmp": true, "/usr": true, "/usr/bin": true, "/usr/include": true,
	"/usr/lib": true, "/usr/lib64": true, "/usr/libexec": true, "/usr/local": true, "/usr/sbin": true,
	"/usr/share": true, "/var": true, "/var/lib": true, "/var/lib/apt": true, "/var/lib/dpkg": true,
	"/var/lib/rpm": true, "/var/log": true, "/var/spool": true, "/var/tmp": true,
}

// systemPath reports whether the path p names a system tree, or a glob over
// one (/*, /etc/*, /e*): then it returns that tree.
func systemPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	elems := strings.Split(p, "/")
	for i, e := range elems {
		if strings.Contains(e, unknown) {
			return "", false
		}
		if strings.ContainsAny(e, "*?[") {
			dir := path.Clean("/" + strings.Join(elems[:i], "/"))
			return dir, systemTrees[dir]
		}
	}
	clean := path.Clean(p)
	return clean, systemTrees[clean]
}
