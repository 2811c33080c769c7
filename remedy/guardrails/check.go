package guardrails

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"mvdan.cc/sh/v3/syntax"
)

// config is Rules compiled for checking.
type config struct {
	denied   []deniedEntry
	patterns []compiledPattern
	maxBytes int
	lang     syntax.LangVariant
	dialect  string
	bashPath string

	shellcheckPath     string
	shellcheckSeverity string
	shellcheckExclude  []string
}

type deniedEntry struct {
	raw      string
	name     string // a glob over the command's base name
	operands []string
}

type compiledPattern struct {
	Pattern
	re *regexp.Regexp
}

func compile(r Rules) (*config, []error) {
	cfg := &config{maxBytes: r.MaxScriptBytes, lang: syntax.LangPOSIX, dialect: r.Dialect, bashPath: r.BashPath,
		shellcheckPath: r.ShellcheckPath, shellcheckSeverity: r.ShellcheckSeverity, shellcheckExclude: r.ShellcheckExclude}
	if cfg.shellcheckSeverity == "" {
		cfg.shellcheckSeverity = "warning"
	}
	var errs []error
	if err := r.Validate(); err != nil {
		errs = append(errs, err)
	}
	if r.Dialect == "bash" {
		cfg.lang = syntax.LangBash
	}
	for _, d := range r.DeniedCommands {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		cfg.denied = append(cfg.denied, deniedEntry{raw: strings.Join(f, " "), name: f[0], operands: f[1:]})
	}
	for _, p := range r.DeniedPatterns {
		re, err := regexp.Compile(p.Regexp)
		if err != nil {
			continue // reported by Validate
		}
		cfg.patterns = append(cfg.patterns, compiledPattern{Pattern: p, re: re})
	}
	return cfg, errs
}

// checkScript checks one script; ok reports whether it parsed (and was
// small enough to), so shellcheck may look at it too.
func checkScript(cfg *config, name string, src []byte, required bool) (vs []Violation, ok bool) {
	if cfg.maxBytes > 0 && len(src) > cfg.maxBytes {
		return []Violation{{Script: name, Rule: RuleMaxSize,
			Message: fmt.Sprintf("script is %d bytes, more than the limit of %d", len(src), cfg.maxBytes)}}, false
	}
	if required && len(bytes.TrimSpace(src)) == 0 {
		return []Violation{{Script: name, Rule: RuleRequiredScript, Message: "required script is empty"}}, false
	}
	file, err := syntax.NewParser(syntax.Variant(cfg.lang)).Parse(bytes.NewReader(src), name)
	if err != nil {
		pos, msg := parseErrorAt(err)
		v := Violation{Script: name, Line: int(pos.Line()), Col: int(pos.Col()), Rule: RuleParse, Message: msg}
		if cfg.lang == syntax.LangPOSIX {
			v.Message += " (scripts run under POSIX /bin/sh)"
		}
		return []Violation{v}, false
	}
	var out []Violation
	c := &checker{cfg: cfg, script: name, lang: cfg.lang, vars: map[string][]*syntax.Word{},
		out: &out, seen: map[string]bool{}, pipes: map[*syntax.BinaryCmd]bool{},
		memo: map[string][]string{}, busy: map[string]bool{}, downloads: map[string]bool{}}
	c.file(file)
	if required && len(file.Stmts) == 0 {
		out = append(out, Violation{Script: name, Rule: RuleRequiredScript, Message: "required script has no commands, only comments"})
	}
	if v, ok := bashSyntax(cfg.bashPath, name, src); !ok {
		out = append(out, v)
	}
	return out, true
}

// parseErrorAt splits a parser error into its position and its text.
func parseErrorAt(err error) (syntax.Pos, string) {
	var perr syntax.ParseError
	if errors.As(err, &perr) {
		return perr.Pos, perr.Text
	}
	var lerr syntax.LangError
	if errors.As(err, &lerr) {
		return lerr.Pos, fmt.Sprintf("%s is not available in %s", lerr.Feature, lerr.LangUsed)
	}
	return syntax.Pos{}, err.Error()
}

var bashLineRE = regexp.MustCompile(`line ([0-9]+): (.*)`)

// bashSyntax runs `bash -n` on src as a second opinion on its syntax.
func bashSyntax(bashPath, name string, src []byte) (Violation, bool) {
	if bashPath == "" {
		return Violation{}, true
	}
	if _, err := os.Stat(bashPath); err != nil {
		return Violation{}, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bashPath, "-n")
	cmd.Stdin = bytes.NewReader(src)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return Violation{}, true
	}
	v := Violation{Script: name, Rule: RuleBashSyntax, Message: "bash -n: " + strings.TrimSpace(string(out))}
	if ctx.Err() != nil {
		v.Message = "bash -n did not finish in 10s"
	}
	if m := bashLineRE.FindStringSubmatch(string(out)); m != nil {
		v.Line, _ = strconv.Atoi(m[1])
		v.Message = "bash -n: " + strings.TrimSpace(m[2])
	}
	return v, false
}

// maxNesting bounds strings-in-strings (sh -c "eval '…'") the checker
// follows; deeper nesting is itself a violation.
const maxNesting = 4

// checker walks one parsed script (or a string nested in it).
type checker struct {
	cfg    *config
	script string
	lang   syntax.LangVariant
	vars   map[string][]*syntax.Word
	out    *[]Violation
	seen   map[string]bool
	pipes  map[*syntax.BinaryCmd]bool // pipelines already checked whole
	memo   map[string][]string        // varValues results
	busy   map[string]bool            // variables being evaluated
	// downloads holds the files the script has downloaded so far (curl -o,
	// wget -O), shared with nested strings: running one is remote code.
	downloads map[string]bool

	// outer is the position of the command holding the string being
	// checked; violations inside the string are reported there.
	outer     syntax.Pos
	outerWhat string
	depth     int
	quiet     bool // classify only: report nothing
}

func (c *checker) report(pos syntax.Pos, rule, msg string) {
	if c.quiet {
		return
	}
	if c.outer.IsValid() {
		pos = c.outer
		msg = "in " + c.outerWhat + ": " + msg
	}
	v := Violation{Script: c.script, Line: int(pos.Line()), Col: int(pos.Col()), Rule: rule, Message: msg}
	if key := v.String(); !c.seen[key] {
		c.seen[key] = true
		*c.out = append(*c.out, v)
	}
}

// silent returns a copy of c that reports nothing, for classifying commands
// that are (or will be) checked on their own.
func (c *checker) silent() *checker {
	q := *c
	q.quiet = true
	q.pipes = map[*syntax.BinaryCmd]bool{}
	return &q
}

func (c *checker) file(f *syntax.File) {
	collectVars(f, c.vars)
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Stmt:
			c.stmt(n)
		case *syntax.BinaryCmd:
			if n.Op == syntax.Pipe || n.Op == syntax.PipeAll {
				c.pipeline(n)
			}
		case *syntax.FuncDecl:
			c.funcDecl(n)
		}
		return true
	})
}

// inner checks src, a string the shell will run as code, as a script of its
// own; its violations are reported at pos.
func (c *checker) inner(pos syntax.Pos, src string, lang syntax.LangVariant, what string) {
	if c.depth >= maxNesting {
		c.report(pos, RuleComputedEval, what+" nests code in strings too deeply to check")
		return
	}
	f, err := syntax.NewParser(syntax.Variant(lang)).Parse(strings.NewReader(src), "")
	if err != nil {
		_, msg := parseErrorAt(err)
		c.report(pos, RuleParse, fmt.Sprintf("%s does not parse: %s", what, msg))
		return
	}
	sub := &checker{cfg: c.cfg, script: c.script, lang: lang, vars: map[string][]*syntax.Word{},
		out: c.out, seen: c.seen, pipes: map[*syntax.BinaryCmd]bool{}, depth: c.depth + 1, quiet: c.quiet,
		memo: map[string][]string{}, busy: map[string]bool{}, outer: pos, outerWhat: what, downloads: c.downloads}
	if c.outer.IsValid() {
		sub.outer, sub.outerWhat = c.outer, c.outerWhat+": "+what
	}
	for k, v := range c.vars {
		sub.vars[k] = append([]*syntax.Word(nil), v...)
	}
	sub.file(f)
}

func (c *checker) stmt(st *syntax.Stmt) {
	for _, r := range st.Redirs {
		if r.Word != nil && writesFile(r) {
			c.writeTarget(r.OpPos, c.word(r.Word), "redirect")
		}
	}
	call, ok := st.Cmd.(*syntax.CallExpr)
	if !ok || len(call.Args) == 0 {
		return
	}
	pos := call.Args[0].Pos()
	for _, r := range c.resolve(pos, c.words(call.Args), 0) {
		c.command(pos, r)
		if r.readsStdin {
			c.stdinRedirects(st, r)
		}
	}
}

// writesFile reports whether a redirect opens its word for writing.
func writesFile(r *syntax.Redirect) bool {
	switch r.Op {
	case syntax.RdrOut, syntax.AppOut, syntax.RdrInOut, syntax.RdrClob, syntax.AppClob,
		syntax.RdrAll, syntax.RdrAllClob, syntax.AppAll, syntax.AppAllClob:
		return true
	case syntax.DplOut: // >&word: a file unless the word is a descriptor or "-"
		lit := r.Word.Lit()
		if lit == "-" {
			return false
		}
		_, err := strconv.Atoi(lit)
		return err != nil
	}
	return false
}

// stdinRedirects checks what a shell reading its stdin is given: a
// here-document is code to check; a process substitution is classified.
func (c *checker) stdinRedirects(st *syntax.Stmt, r resolved) {
	for _, rd := range st.Redirs {
		switch rd.Op {
		case syntax.Hdoc, syntax.DashHdoc:
			if rd.Hdoc == nil {
				continue
			}
			if body, ok := heredocBody(rd); ok {
				c.inner(rd.OpPos, body, shellLang(r.name, c.lang), r.name+" here-document")
			} else {
				c.report(rd.OpPos, RuleComputedEval, fmt.Sprintf("here-document fed to %s expands variables or commands at run time, so the code it runs cannot be checked", r.name))
			}
		case syntax.WordHdoc:
			w := c.word(rd.Word)
			if w.lit {
				c.inner(rd.OpPos, w.value, shellLang(r.name, c.lang), r.name+" here-string")
			} else {
				c.report(rd.OpPos, RuleComputedEval, fmt.Sprintf("here-string %s fed to %s is computed at run time, so the code it runs cannot be checked", w.text, r.name))
			}
		case syntax.RdrIn:
			if hasSubst(rd.Word) {
				rule, detail := c.classify(rd.Word)
				c.report(rd.OpPos, rule, fmt.Sprintf("%s piped into %s runs code that cannot be reviewed", detail, r.name))
			}
		}
	}
}

// heredocBody returns a here-document's text when it has no expansions.
func heredocBody(rd *syntax.Redirect) (string, bool) {
	quoted := !isPlainLit(rd.Word)
	var b strings.Builder
	for _, p := range rd.Hdoc.Parts {
		lit, ok := p.(*syntax.Lit)
		if !ok {
			return "", false
		}
		if quoted {
			b.WriteString(lit.Value)
		} else {
			b.WriteString(unescapeDouble(lit.Value))
		}
	}
	return b.String(), true
}

func isPlainLit(w *syntax.Word) bool {
	for _, p := range w.Parts {
		lit, ok := p.(*syntax.Lit)
		if !ok || strings.Contains(lit.Value, `\`) {
			return false
		}
	}
	return true
}

// pipeline checks a whole pipeline once: a shell (or interpreter) reading
// its stdin from an earlier stage runs code nobody reviewed.
func (c *checker) pipeline(b *syntax.BinaryCmd) {
	if c.pipes[b] {
		return
	}
	var stages []*syntax.Stmt
	var flatten func(s *syntax.Stmt)
	flatten = func(s *syntax.Stmt) {
		if bc, ok := s.Cmd.(*syntax.BinaryCmd); ok && (bc.Op == syntax.Pipe || bc.Op == syntax.PipeAll) && len(s.Redirs) == 0 && !s.Negated {
			c.pipes[bc] = true
			flatten(bc.X)
			flatten(bc.Y)
			return
		}
		stages = append(stages, s)
	}
	c.pipes[b] = true
	flatten(b.X)
	flatten(b.Y)

	q := c.silent()
	for i := 1; i < len(stages); i++ {
		call, ok := stages[i].Cmd.(*syntax.CallExpr)
		if !ok || len(call.Args) == 0 {
			continue
		}
		for _, r := range q.resolve(call.Args[0].Pos(), q.words(call.Args), 0) {
			if !r.readsStdin {
				continue
			}
			nodes := make([]syntax.Node, i)
			for j := range nodes {
				nodes[j] = stages[j]
			}
			rule, detail := c.classify(nodes...)
			c.report(stages[i].Pos(), rule, fmt.Sprintf("%s piped into %s runs code that cannot be reviewed", detail, r.name))
		}
	}
}

// classify names what feeds code to a shell: a download, a decoder, or
// something else.
func (c *checker) classify(nodes ...syntax.Node) (rule, detail string) {
	q := c.silent()
	rule, detail = RulePipeToShell, "output of a command"
	for _, n := range nodes {
		syntax.Walk(n, func(n syntax.Node) bool {
			call, ok := n.(*syntax.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			for _, r := range q.resolve(call.Args[0].Pos(), q.words(call.Args), 0) {
				switch {
				case downloaders[r.name]:
					rule, detail = RuleRemoteExec, "content downloaded by "+r.name
				case rule != RuleRemoteExec && isDecoder(r):
					rule, detail = RuleDecodeExec, "data decoded by "+r.name
				}
			}
			return rule != RuleRemoteExec
		})
	}
	return rule, detail
}

var downloaders = set("curl", "wget", "fetch", "aria2c", "axel", "lwp-request", "GET", "http", "https",
	"nc", "ncat", "netcat", "socat", "ftp", "tftp", "lynx", "links", "w3m")

func isDecoder(r resolved) bool {
	switch r.name {
	case "uudecode", "gunzip", "zcat", "bzcat", "xzcat", "zstdcat", "unxz", "bunzip2", "unzstd", "lzcat":
		return true
	case "base64", "base32", "basenc":
		return hasOption(r.args, "d", "--decode") || hasOption(r.args, "D", "")
	case "xxd": // single-dash long options: match whole words
		return hasExact(r.args, "-r", "-revert", "-rp", "-pr", "-r -p")
	case "openssl":
		return hasExact(r.args, "-d")
	case "gzip", "xz", "bzip2", "zstd", "lzma":
		return hasOption(r.args, "d", "--decompress")
	}
	return false
}

// funcDecl flags a function that starts copies of itself in the background
// or in a pipeline: the fork bomb :(){ :|:& };:.
func (c *checker) funcDecl(fd *syntax.FuncDecl) {
	if fd.Name == nil || fd.Body == nil {
		return
	}
	name := fd.Name.Value
	bomb := false
	syntax.Walk(fd.Body, func(n syntax.Node) bool {
		switch n := n.(type) {
		case *syntax.Stmt:
			if n.Background && callsName(n, name) {
				bomb = true
			}
		case *syntax.BinaryCmd:
			if (n.Op == syntax.Pipe || n.Op == syntax.PipeAll) && (callsName(n.X, name) || callsName(n.Y, name)) {
				bomb = true
			}
		}
		return !bomb
	})
	if bomb {
		c.report(fd.Pos(), RuleForkBomb, fmt.Sprintf("function %s starts copies of itself in the background or a pipeline: a fork bomb", name))
	}
}

func callsName(n syntax.Node, name string) bool {
	found := false
	syntax.Walk(n, func(n syntax.Node) bool {
		if call, ok := n.(*syntax.CallExpr); ok && len(call.Args) > 0 && call.Args[0].Lit() == name {
			found = true
		}
		return !found
	})
	return found
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// hasOption reports whether args (before "--") hold the short option letter
// (alone or in a cluster such as -di) or the long option.
func hasOption(args []word, short, long string) bool {
	for _, a := range args {
		if !a.lit {
			continue
		}
		v := a.value
		if v == "--" {
			return false
		}
		if long != "" && (v == long || strings.HasPrefix(v, long+"=")) {
			return true
		}
		if short != "" && len(v) > 1 && v[0] == '-' && v[1] != '-' && strings.Contains(v[1:], short) {
			return true
		}
	}
	return false
}

// hasExact reports whether a literal argument equals one of opts.
func hasExact(args []word, opts ...string) bool {
	for _, a := range args {
		for _, o := range opts {
			if a.lit && a.value == o {
				return true
			}
		}
	}
	return false
}

// operands returns the arguments that are not options, in order: literal
// arguments not starting with '-', everything after "--", and computed
// arguments.
func operands(args []word) []word {
	var out []word
	opts := true
	for _, a := range args {
		if opts && a.lit && a.value == "--" {
			opts = false
			continue
		}
		if opts && a.lit && len(a.value) > 1 && a.value[0] == '-' {
			continue
		}
		out = append(out, a)
	}
	return out
}

// baseName is the command name without its directory.
func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// pathMatch is path.Match that treats a bad pattern as no match.
func pathMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}
