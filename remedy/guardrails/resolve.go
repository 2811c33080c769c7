package guardrails

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// resolved is a command after wrappers are peeled off: sudo env rm -rf / is
// rm with args -rf /.
type resolved struct {
	name       string // base name, e.g. "rm"
	path       string // as written, e.g. "/bin/rm"
	args       []word
	readsStdin bool // a shell or interpreter that runs code read from stdin
}

// maxHops bounds wrapper chains (sudo env nice timeout …).
const maxHops = 16

var shells = map[string]syntax.LangVariant{
	"sh": syntax.LangPOSIX, "dash": syntax.LangPOSIX, "ash": syntax.LangPOSIX, "posh": syntax.LangPOSIX,
	"yash": syntax.LangPOSIX, "bash": syntax.LangBash, "rbash": syntax.LangBash, "zsh": syntax.LangBash,
	"ksh": syntax.LangMirBSDKorn, "ksh93": syntax.LangMirBSDKorn, "mksh": syntax.LangMirBSDKorn,
}

// shellLang is the dialect to parse code run by the named shell in; other
// code runners (eval, alias, trap) use the script's own dialect.
func shellLang(name string, def syntax.LangVariant) syntax.LangVariant {
	if l, ok := shells[name]; ok {
		return l
	}
	return def
}

var interpreters = set("python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh")

// opts lists options that take a separate argument.
func opts(names ...string) map[string]bool { return set(names...) }

// skipOptions returns the index of the first operand of args: options are
// literal words starting with '-', those in withArg consume the next word
// too, and "--" ends them. A computed word counts as an operand.
func skipOptions(args []word, withArg map[string]bool) int {
	i := 0
	for i < len(args) {
		a := args[i]
		if !a.lit {
			return i
		}
		v := a.value
		switch {
		case v == "--":
			return i + 1
		case v == "-" || !strings.HasPrefix(v, "-"):
			return i
		case strings.HasPrefix(v, "--") && strings.Contains(v, "="):
			i++
		case withArg[v]:
			i += 2
		default:
			i++
		}
	}
	return len(args)
}

// resolve peels wrappers off a command and checks the code strings that
// shells, eval and friends will run. It returns the commands that finally
// run with their arguments (usually one; none when the name is computed).
func (c *checker) resolve(pos syntax.Pos, args []word, hops int) []resolved {
	if len(args) == 0 {
		return nil
	}
	if hops > maxHops {
		c.report(pos, RuleComputedCommand, "too many nested command wrappers to check")
		return nil
	}
	a0 := args[0]
	if !a0.lit {
		c.report(pos, RuleComputedCommand, fmt.Sprintf("command name %s is computed at run time, so what runs cannot be checked", a0.text))
		return nil
	}
	full := a0.value
	name := baseName(full)
	rest := args[1:]
	next := func(r []word) []resolved { return c.resolve(pos, r, hops+1) }
	self := []resolved{{name: name, path: full, args: rest}}

	switch name {
	case "sudo", "doas":
		i := skipOptions(rest, opts("-u", "-g", "-h", "-p", "-r", "-t", "-C", "-D", "-T", "-U", "-R",
			"--user", "--group", "--host", "--prompt", "--role", "--type", "--close-from", "--chdir",
			"--command-timeout", "--other-user", "--chroot"))
		flags := rest[:i]
		if hasOption(flags, "e", "--edit") {
			return []resolved{{name: "sudoedit", path: "sudoedit", args: rest[i:]}}
		}
		if i == len(rest) {
			if hasOption(flags, "s", "--shell") || hasOption(flags, "i", "--login") {
				return []resolved{{name: "sh", path: "sh", readsStdin: true}}
			}
			return nil
		}
		return next(rest[i:])
	case "sudoedit":
		return self
	case "env":
		return c.resolveEnv(pos, rest, hops)
	case "command":
		i := skipOptions(rest, nil)
		if hasOption(rest[:i], "v", "") || hasOption(rest[:i], "V", "") {
			return nil // only looks the name up
		}
		return next(rest[i:])
	case "exec":
		return next(rest[skipOptions(rest, opts("-a")):])
	case "builtin", "nohup", "unbuffer":
		return next(rest)
	case "setsid":
		return next(rest[skipOptions(rest, nil):])
	case "nice":
		return next(rest[skipOptions(rest, opts("-n", "--adjustment")):])
	case "ionice":
		i := skipOptions(rest, opts("-c", "-n", "--class", "--classdata"))
		if hasOption(rest[:i], "p", "--pid") || hasOption(rest[:i], "P", "--pgid") || hasOption(rest[:i], "u", "--uid") {
			return nil
		}
		return next(rest[i:])
	case "timeout":
		i := skipOptions(rest, opts("-s", "-k", "--signal", "--kill-after"))
		if i < len(rest) {
			i++ // the duration
		}
		return next(rest[i:])
	case "stdbuf":
		return next(rest[skipOptions(rest, opts("-i", "-o", "-e", "--input", "--output", "--error")):])
	case "chroot":
		i := skipOptions(rest, opts("--userspec", "--groups"))
		if i < len(rest) {
			i++ // the new root
		}
		return next(rest[i:])
	case "time":
		return next(rest[skipOptions(rest, opts("-f", "-o", "--format", "--output")):])
	case "busybox":
		return next(rest)
	case "flock":
		i := skipOptions(rest, opts("-w", "-E", "--timeout", "--conflict-exit-code"))
		if s, ok := optionValue(rest, "-c", "--command"); ok {
			c.codeString(pos, s, syntax.LangPOSIX, "flock -c string")
			return self
		}
		if i < len(rest) {
			i++ // the lock file
		}
		return next(rest[i:])
	case "su", "runuser":
		return c.resolveSu(pos, name, rest, hops)
	case "xargs":
		i := skipOptions(rest, opts("-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter",
			"--eof", "--replace", "--max-lines", "--max-args", "--max-procs", "--max-chars", "--process-slot-var"))
		cmd := rest[i:]
		if len(cmd) == 0 {
			return nil // echo
		}
		// The arguments come from stdin: anything.
		return next(append(append([]word(nil), cmd...), synthetic("<xargs input>", "", unknown)))
	case "eval":
		c.evalWords(pos, rest, c.lang, "eval string")
		return self
	case ".", "source":
		if ops := operands(rest); len(ops) > 0 {
			c.scriptOperand(pos, name, ops[0])
			if ops[0].lit && (ops[0].value == "/dev/stdin" || ops[0].value == "-") {
				self[0].readsStdin = true
			}
		}
		return self
	case "alias":
		for _, a := range rest {
			if !a.lit {
				c.report(pos, RuleComputedEval, fmt.Sprintf("alias %s is computed at run time, so the code it runs cannot be checked", a.text))
				continue
			}
			if _, body, ok := strings.Cut(a.value, "="); ok {
				c.inner(pos, body, c.lang, "alias "+a.value)
			}
		}
		return self
	case "trap":
		ops := operands(rest)
		if len(ops) >= 2 { // trap ACTION SIGNAL...; "trap - SIG" and "trap '' SIG" reset or ignore
			if !ops[0].lit {
				c.report(pos, RuleComputedEval, fmt.Sprintf("trap action %s is computed at run time, so the code it runs cannot be checked", ops[0].text))
			} else if ops[0].value != "-" && ops[0].value != "" {
				c.inner(pos, ops[0].value, c.lang, "trap action")
			}
		}
		return self
	}

	if lang, ok := shells[name]; ok {
		return c.resolveShell(pos, name, full, rest, lang)
	}
	if interpreters[name] || strings.HasPrefix(name, "python3.") {
		return c.resolveInterpreter(pos, name, full, rest)
	}
	return self
}

// resolveEnv handles env [-i] [-u NAME] [-C DIR] [-S STRING] [NAME=VALUE]... CMD.
func (c *checker) resolveEnv(pos syntax.Pos, args []word, hops int) []resolved {
	i := 0
	for i < len(args) {
		a := args[i]
		if !a.lit {
			break
		}
		v := a.value
		switch {
		case v == "--":
			i++
			return c.resolve(pos, args[i:], hops+1)
		case v == "-S" || v == "--split-string" || strings.HasPrefix(v, "-S") || strings.HasPrefix(v, "--split-string="):
			var s word
			switch {
			case v == "-S" || v == "--split-string":
				if i+1 >= len(args) {
					return nil
				}
				s, i = args[i+1], i+2
			case strings.HasPrefix(v, "--split-string="):
				s, i = synthLit(strings.TrimPrefix(v, "--split-string=")), i+1
			default:
				s, i = synthLit(strings.TrimPrefix(v, "-S")), i+1
			}
			if !s.lit {
				c.report(pos, RuleComputedEval, fmt.Sprintf("env -S string %s is computed at run time, so the command it runs cannot be checked", s.text))
				return nil
			}
			split, ok := c.splitWords(pos, s.value)
			if !ok {
				return nil
			}
			return c.resolve(pos, append(split, args[i:]...), hops+1)
		case v == "-u" || v == "--unset" || v == "-C" || v == "--chdir":
			i += 2
		case strings.HasPrefix(v, "-"):
			i++
		case isAssignment(v):
			i++
		default:
			return c.resolve(pos, args[i:], hops+1)
		}
	}
	return c.resolve(pos, args[i:], hops+1)
}

func isAssignment(v string) bool {
	name, _, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return false
	}
	for i, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func synthLit(s string) word { return word{lit: true, value: s, vals: []string{s}, text: s} }

// splitWords splits a string into words as env -S does (close enough: shell
// word rules).
func (c *checker) splitWords(pos syntax.Pos, s string) ([]word, bool) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(s), "")
	if err != nil || len(f.Stmts) != 1 {
		c.report(pos, RuleComputedEval, fmt.Sprintf("env -S string %q cannot be split into one command", s))
		return nil, false
	}
	call, ok := f.Stmts[0].Cmd.(*syntax.CallExpr)
	if !ok {
		c.report(pos, RuleComputedEval, fmt.Sprintf("env -S string %q is not a simple command", s))
		return nil, false
	}
	return c.words(call.Args), true
}

// resolveSu handles su/runuser: -c STRING is code; without a command they
// start a shell reading stdin.
func (c *checker) resolveSu(pos syntax.Pos, name string, args []word, hops int) []resolved {
	withArg := opts("-s", "-g", "-G", "-w", "--shell", "--group", "--supp-group", "--whitelist-environment", "-c", "--command", "-u", "--user")
	if s, ok := optionValue(args, "-c", "--command"); ok {
		c.codeString(pos, s, syntax.LangPOSIX, name+" -c string")
		return []resolved{{name: name, path: name, args: args}}
	}
	i := skipOptions(args, withArg)
	if name == "runuser" && hasExact(args[:i], "-u", "--user") {
		return c.resolve(pos, args[i:], hops+1)
	}
	if i < len(args) {
		i++ // the user
	}
	if i == len(args) {
		return []resolved{{name: "sh", path: "sh", readsStdin: true}}
	}
	// Remaining arguments go to the user's shell.
	return c.resolveShell(pos, "sh", "sh", args[i:], syntax.LangPOSIX)
}

// optionValue finds the value of an option given as "-c VALUE", "-cVALUE" or
// "--long=VALUE".
func optionValue(args []word, short, long string) (word, bool) {
	for i, a := range args {
		if !a.lit {
			continue
		}
		v := a.value
		switch {
		case v == "--":
			return word{}, false
		case v == short || v == long:
			if i+1 < len(args) {
				return args[i+1], true
			}
			return word{}, false
		case long != "" && strings.HasPrefix(v, long+"="):
			return synthLit(strings.TrimPrefix(v, long+"=")), true
		case len(short) == 2 && strings.HasPrefix(v, short) && len(v) > 2 && !strings.HasPrefix(v, "--"):
			return synthLit(v[2:]), true
		}
	}
	return word{}, false
}

// codeString checks a word that a shell will run as code.
func (c *checker) codeString(pos syntax.Pos, s word, lang syntax.LangVariant, what string) {
	if s.lit {
		c.inner(pos, s.value, lang, what)
		return
	}
	msg := fmt.Sprintf("%s %s is computed at run time, so the code it runs cannot be checked", what, s.text)
	if s.node != nil && hasSubst(s.node) {
		if rule, detail := c.classify(s.node); rule != RulePipeToShell {
			msg = fmt.Sprintf("%s %s runs %s: code that cannot be reviewed", what, s.text, detail)
		}
	}
	c.report(pos, RuleComputedEval, msg)
}

// evalWords checks eval's arguments, which eval joins with spaces and runs.
func (c *checker) evalWords(pos syntax.Pos, args []word, lang syntax.LangVariant, what string) {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		if !a.lit {
			c.codeString(pos, a, lang, what)
			return
		}
		parts = append(parts, a.value)
	}
	if len(parts) > 0 {
		c.inner(pos, strings.Join(parts, " "), lang, what)
	}
}

// scriptOperand checks the script a shell or "." reads: a process
// substitution there runs another command's output as code.
func (c *checker) scriptOperand(pos syntax.Pos, runner string, w word) {
	c.runsDownload(pos, runner, w)
	if w.node == nil {
		return
	}
	var procs []syntax.Node
	syntax.Walk(w.node, func(n syntax.Node) bool {
		if ps, ok := n.(*syntax.ProcSubst); ok {
			procs = append(procs, ps)
		}
		return true
	})
	if len(procs) > 0 {
		rule, detail := c.classify(procs...)
		c.report(pos, rule, fmt.Sprintf("%s run by %s through a process substitution runs code that cannot be reviewed", detail, runner))
	}
}

// resolveShell handles sh/bash/…: -c STRING is checked as code; with no
// script operand (or -s, or "-") the shell runs its stdin.
func (c *checker) resolveShell(pos syntax.Pos, name, full string, args []word, lang syntax.LangVariant) []resolved {
	self := resolved{name: name, path: full, args: args}
	cflag, sflag := false, false
	i := 0
	for i < len(args) {
		a := args[i]
		if !a.lit {
			break
		}
		v := a.value
		if v == "--" || v == "-" {
			sflag = sflag || v == "-"
			i++
			break
		}
		if len(v) < 2 || (v[0] != '-' && v[0] != '+') {
			break
		}
		switch v {
		case "-o", "+o", "-O", "+O", "--rcfile", "--init-file":
			i += 2
			continue
		}
		if !strings.HasPrefix(v, "--") {
			cflag = cflag || strings.ContainsRune(v[1:], 'c')
			sflag = sflag || strings.ContainsRune(v[1:], 's')
		}
		i++
	}
	ops := args[i:]
	switch {
	case cflag:
		if len(ops) == 0 {
			c.report(pos, RuleParse, name+" -c without a command string")
			return []resolved{self}
		}
		c.codeString(pos, ops[0], lang, name+" -c string")
	case sflag || len(ops) == 0:
		self.readsStdin = true
	default:
		c.scriptOperand(pos, name, ops[0])
		if ops[0].lit && ops[0].value == "/dev/stdin" {
			self.readsStdin = true
		}
	}
	return []resolved{self}
}

// resolveInterpreter handles python/perl/ruby/node/…: code given with -c or
// -e cannot be checked here but must at least be fixed text; with no script
// the interpreter runs its stdin.
func (c *checker) resolveInterpreter(pos syntax.Pos, name, full string, args []word) []resolved {
	self := resolved{name: name, path: full, args: args}
	code := false
	i := 0
	for i < len(args) {
		a := args[i]
		if !a.lit {
			break
		}
		v := a.value
		if v == "-" {
			self.readsStdin = true
			return []resolved{self}
		}
		if v == "--" {
			i++
			break
		}
		if !strings.HasPrefix(v, "-") {
			break
		}
		switch v {
		case "-c", "-e", "-E", "--eval", "-p", "--print", "-r", "-m", "-M", "-I", "-W", "-X", "-x":
			if (v == "-c" || v == "-e" || v == "-E" || v == "--eval" || v == "-p" || v == "--print") && i+1 < len(args) {
				code = true
				if s := args[i+1]; !s.lit {
					c.codeString(pos, s, syntax.LangPOSIX, name+" "+v+" code")
				} else if m := interpreterShellRE.FindString(s.value); m != "" {
					c.report(pos, RuleComputedEval, fmt.Sprintf("%s %s code runs shell commands (%s), which cannot be checked as shell", name, v, m))
				}
			}
			if v == "-m" {
				code = true // runs a module
			}
			i += 2
			continue
		}
		i++
	}
	if !code && i == len(args) {
		self.readsStdin = true
	}
	if !code && i < len(args) {
		c.scriptOperand(pos, name, args[i])
	}
	return []resolved{self}
}

// bashOnly are bash keywords and builtins that POSIX sh (dash) parses as
// ordinary commands and then cannot find.
var bashOnly = set("[[", "source", "declare", "typeset", "shopt", "pushd", "popd", "let", "mapfile", "readarray", "function", "select")

// interpreterShellRE finds the calls by which inline Python, Perl, Ruby or
// Node code starts shell commands; such code hides its commands from the
// shell parser.
var interpreterShellRE = regexp.MustCompile("os\\.system|os\\.popen|os\\.exec|subprocess|pty\\.spawn|\\bsystem\\s*\\(|\\bexec\\s*\\(|\\bspawn|child_process|IO\\.popen|Kernel\\.exec|%x\\(|`|\\bqx")

// download records the file a curl or wget writes, so a later command that
// runs it is caught: download-then-run is piping a download into a shell
// with a file in between.
func (c *checker) download(r resolved) {
	var outs []word
	switch r.name {
	case "curl":
		if w, ok := clusterValue(r.args, 'o', "--output"); ok {
			outs = append(outs, w)
		}
		if hasOption(r.args, "O", "--remote-name") {
			for _, a := range operands(r.args) {
				for _, v := range a.vals {
					if strings.Contains(v, "://") {
						outs = append(outs, synthLit(baseName(v)))
					}
				}
			}
		}
	case "wget":
		if w, ok := clusterValue(r.args, 'O', "--output-document"); ok {
			outs = append(outs, w)
		} else {
			for _, a := range operands(r.args) {
				for _, v := range a.vals {
					if strings.Contains(v, "://") {
						outs = append(outs, synthLit(baseName(v)))
					}
				}
			}
		}
	}
	for _, w := range outs {
		for _, v := range w.vals {
			if v != "" && v != "-" && !strings.Contains(v, unknown) {
				c.downloads[path.Clean(v)] = true
				c.downloads[baseName(v)] = true
			}
		}
	}
}

// clusterValue returns the value of a short option that takes one, also at
// the end of a cluster (curl -fsSLo FILE) or attached (-oFILE), or of the
// long option (--output FILE, --output=FILE).
func clusterValue(args []word, short byte, long string) (word, bool) {
	for i, a := range args {
		if !a.lit {
			continue
		}
		v := a.value
		switch {
		case v == "--":
			return word{}, false
		case v == long || (len(v) > 1 && v[0] == '-' && v[1] != '-' && v[len(v)-1] == short):
			if i+1 < len(args) {
				return args[i+1], true
			}
		case strings.HasPrefix(v, long+"="):
			return synthLit(strings.TrimPrefix(v, long+"=")), true
		case len(v) > 2 && v[0] == '-' && v[1] == short:
			return synthLit(v[2:]), true
		}
	}
	return word{}, false
}

// runsDownload reports running a file the script downloaded.
func (c *checker) runsDownload(pos syntax.Pos, runner string, w word) {
	for _, v := range w.vals {
		if v == "" || strings.Contains(v, unknown) {
			continue
		}
		if c.downloads[path.Clean(v)] || (!strings.Contains(v, "/") && c.downloads[v]) || (strings.HasPrefix(v, "./") && c.downloads[baseName(v)]) {
			c.report(pos, RuleRemoteExec, fmt.Sprintf("%s runs %s, which the script downloaded: remote code that cannot be reviewed", runner, v))
			return
		}
	}
}

// command applies the per-command rules to one resolved command.
func (c *checker) command(pos syntax.Pos, r resolved) {
	if r.path != "" {
		c.runsDownload(pos, "the script", synthLit(r.path))
	}
	c.download(r)
	c.deniedCommand(pos, r)
	c.patterns(pos, r)
	if c.lang == syntax.LangPOSIX && bashOnly[r.name] {
		c.report(pos, RuleBashism, fmt.Sprintf("%s exists only in bash; scripts run under POSIX /bin/sh (dash on Debian)", r.name))
	}
	switch r.name {
	case "rm":
		c.rm(pos, r)
	case "find":
		c.find(pos, r)
	case "chmod", "chown", "chgrp", "setfacl":
		c.recursivePerms(pos, r)
	case "dd":
		for _, a := range r.args {
			var targets []string
			for _, v := range a.vals {
				if t, ok := strings.CutPrefix(v, "of="); ok {
					targets = append(targets, t)
				}
			}
			if len(targets) > 0 {
				c.writeTarget(pos, word{vals: targets, text: a.text}, "dd")
			}
		}
	case "tee", "truncate", "sudoedit", "sponge":
		for _, a := range operands(r.args) {
			c.writeTarget(pos, a, r.name)
		}
	case "cp", "mv", "install", "ln", "rsync", "scp":
		if t, ok := optionValue(r.args, "-t", "--target-directory"); ok {
			c.writeTarget(pos, t, r.name)
		} else if ops := operands(r.args); len(ops) >= 2 {
			c.writeTarget(pos, ops[len(ops)-1], r.name)
		}
	case "sed", "perl":
		if hasOption(r.args, "i", "--in-place") {
			for _, a := range operands(r.args) {
				c.writeTarget(pos, a, r.name+" -i")
			}
		}
	}
	c.securityDisable(pos, r)
}

func (c *checker) deniedCommand(pos syntax.Pos, r resolved) {
	for _, d := range c.cfg.denied {
		if !pathMatch(d.name, r.name) {
			continue
		}
		if len(d.operands) > 0 {
			ops := operands(r.args)
			if len(ops) < len(d.operands) {
				continue
			}
			match := true
			for i, want := range d.operands {
				if !ops[i].lit || ops[i].value != want {
					match = false
					break
				}
			}
			if !match {
				continue
			}
		}
		c.report(pos, RuleDeniedCommand, fmt.Sprintf("%s is denied: %s", d.raw, denyReason(d.name)))
	}
}

func denyReason(name string) string {
	switch {
	case strings.HasPrefix(name, "mkfs") || name == "mke2fs" || name == "mkswap" || name == "wipefs":
		return "it destroys a filesystem"
	case strings.HasSuffix(name, "fdisk") || name == "parted" || name == "sgdisk":
		return "it repartitions a disk"
	case name == "useradd" || name == "adduser" || name == "usermod" || name == "groupadd" || name == "addgroup" ||
		name == "chpasswd" || name == "visudo" || name == "ssh-copy-id":
		return "patch scripts must not create or change accounts or credentials"
	case name == "shutdown" || name == "reboot" || name == "halt" || name == "poweroff" || name == "kexec" ||
		name == "systemctl" || name == "init" || name == "telinit":
		return "reboots are the reconciler's job: declare reboot: if-required (or always) in patch.yaml"
	}
	return "denied by the guardrail policy"
}

func (c *checker) patterns(pos syntax.Pos, r resolved) {
	if len(c.cfg.patterns) == 0 {
		return
	}
	parts := []string{r.name}
	for _, a := range r.args {
		if a.lit {
			parts = append(parts, a.value)
		} else {
			parts = append(parts, a.text)
		}
	}
	line := strings.Join(parts, " ")
	for _, p := range c.cfg.patterns {
		if p.re.MatchString(line) {
			msg := p.Message
			if msg == "" {
				msg = "matches denied pattern " + p.Regexp
			}
			c.report(pos, p.Name, fmt.Sprintf("%s: %s", r.name, msg))
		}
	}
}

// couldBeOption reports whether a computed word might expand to an option.
func couldBeOption(a word) bool {
	for _, v := range a.vals {
		if v == unknown || strings.HasPrefix(v, "-") {
			return true
		}
	}
	return false
}

func (c *checker) rm(pos syntax.Pos, r resolved) {
	recursive := false
	var paths []word
	opts := true
	for _, a := range r.args {
		switch {
		case opts && a.lit && a.value == "--":
			opts = false
		case opts && a.lit && len(a.value) > 1 && a.value[0] == '-':
			if a.value == "--recursive" || (!strings.HasPrefix(a.value, "--") && strings.ContainsAny(a.value, "rR")) {
				recursive = true
			}
			if a.value == "--no-preserve-root" {
				c.report(pos, RuleRmSystemPath, "rm --no-preserve-root lifts rm's own guard against removing /")
			}
		default:
			if opts && !a.lit && couldBeOption(a) {
				recursive = true
			}
			paths = append(paths, a)
		}
	}
	if !recursive {
		return
	}
	for _, p := range paths {
		for _, v := range p.vals {
			if tree, ok := systemPath(v); ok {
				c.report(pos, RuleRmSystemPath, fmt.Sprintf("rm -r %s can remove the system tree %s", p.text, tree))
				break
			}
			if workingDirSweep(v) {
				c.report(pos, RuleRmSystemPath, fmt.Sprintf("rm -r %s sweeps the working directory, which is root's home (/root) under SSH unless the script changed it", p.text))
				break
			}
		}
		if p.subst {
			c.report(pos, RuleRmSystemPath, fmt.Sprintf("rm -r %s removes a path computed by a command substitution, which cannot be checked", p.text))
		} else if slices.ContainsFunc(p.vals, func(v string) bool { return strings.Contains(v, hidden) }) {
			c.report(pos, RuleRmSystemPath, fmt.Sprintf("rm -r %s removes a path that is decoded or downloaded at run time, which cannot be checked", p.text))
		}
	}
}

// workingDirSweep reports whether a relative path removes a whole directory
// level: ".", "..", "*", "./*", ".*", "../*" and the like.
func workingDirSweep(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, unknown) {
		return false
	}
	clean := path.Clean(p)
	if clean == "." || clean == ".." || strings.Trim(clean, "./") == "" {
		return true
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(clean, "../"), "/")
	return strings.Trim(first, "*.?") == ""
}

// findFilters are find tests that narrow what an action touches.
var findFilters = set("-name", "-iname", "-path", "-ipath", "-wholename", "-iwholename", "-regex", "-iregex",
	"-type", "-xtype", "-newer", "-newermt", "-mtime", "-mmin", "-ctime", "-cmin", "-atime", "-amin", "-user",
	"-group", "-uid", "-gid", "-perm", "-size", "-empty", "-links", "-inum", "-samefile", "-lname", "-ilname",
	"-nouser", "-nogroup", "-fstype", "-readable", "-writable", "-executable")

// find checks -delete and -exec over system trees; -exec commands are
// checked as commands with {} standing for what find visits.
func (c *checker) find(pos syntax.Pos, r resolved) {
	args := r.args
	i := 0
	for i < len(args) && args[i].lit && (args[i].value == "-H" || args[i].value == "-L" || args[i].value == "-P") {
		i++
	}
	var starts []word
	for i < len(args) {
		a := args[i]
		if a.lit && (strings.HasPrefix(a.value, "-") || a.value == "(" || a.value == "!" || a.value == ",") {
			break
		}
		starts = append(starts, a)
		i++
	}
	expr := args[i:]
	filtered := false
	for _, a := range expr {
		if a.lit && findFilters[a.value] {
			filtered = true
		}
	}
	var visited []string
	for _, s := range starts {
		for _, v := range s.vals {
			if filtered {
				visited = append(visited, strings.TrimSuffix(v, "/")+"/"+unknown)
			} else {
				visited = append(visited, v)
			}
		}
	}
	if len(starts) == 0 {
		visited = []string{"."}
	}
	for j := 0; j < len(expr); j++ {
		a := expr[j]
		if !a.lit {
			continue
		}
		switch a.value {
		case "-delete":
			for _, v := range visited {
				if tree, ok := systemPath(v); ok {
					c.report(pos, RuleRmSystemPath, fmt.Sprintf("find -delete over %s removes the system tree %s", v, tree))
					break
				}
			}
		case "-exec", "-execdir", "-ok", "-okdir":
			var cmd []word
			k := j + 1
			for ; k < len(expr); k++ {
				if e := expr[k]; e.lit && (e.value == ";" || e.value == "+") {
					break
				}
				if e := expr[k]; e.lit && e.value == "{}" {
					cmd = append(cmd, synthetic("{}", visited...))
					continue
				}
				cmd = append(cmd, expr[k])
			}
			for _, sub := range c.resolve(pos, cmd, 1) {
				c.command(pos, sub)
			}
			j = k
		}
	}
}

func (c *checker) recursivePerms(pos syntax.Pos, r resolved) {
	if !hasOption(r.args, "R", "--recursive") {
		return
	}
	for _, a := range operands(r.args) {
		for _, v := range a.vals {
			if tree, ok := systemPath(v); ok {
				c.report(pos, RuleRecursivePerms, fmt.Sprintf("%s -R over %s changes the system tree %s", r.name, a.text, tree))
				break
			}
		}
	}
}

// devicesAllowed are the /dev files scripts may write to.
var devicesAllowed = set("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/stdin",
	"/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/console", "/dev/kmsg")

var credentialFiles = set("/etc/sudoers", "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")

// writeTarget checks a file a command writes: block devices, credential
// files, and SELinux's switches.
func (c *checker) writeTarget(pos syntax.Pos, w word, how string) {
	reported := map[string]bool{}
	for _, v := range w.vals {
		if v == "" || strings.Contains(v, unknown) && !strings.Contains(v, "/") {
			continue
		}
		clean := v
		if strings.HasPrefix(v, "/") {
			clean = path.Clean(v)
		}
		base := baseName(clean)
		switch {
		case strings.HasPrefix(clean, "/dev/") && !devicesAllowed[clean] && !strings.HasPrefix(clean, "/dev/fd/") &&
			!strings.HasPrefix(clean, "/dev/shm/") && !strings.Contains(clean, unknown):
			if !reported[RuleDeviceWrite] {
				reported[RuleDeviceWrite] = true
				c.report(pos, RuleDeviceWrite, fmt.Sprintf("%s writes to the device %s", how, clean))
			}
		case base == "authorized_keys" || base == "authorized_keys2" || strings.HasSuffix(clean, "/.ssh") ||
			credentialFiles[clean] || strings.HasPrefix(clean, "/etc/sudoers.d"):
			if !reported[RuleCredentialsWrite] {
				reported[RuleCredentialsWrite] = true
				c.report(pos, RuleCredentialsWrite, fmt.Sprintf("%s writes to %s: patch scripts must not add users, keys or sudo rights", how, clean))
			}
		case clean == "/proc/sysrq-trigger":
			if !reported[RuleDeviceWrite] {
				reported[RuleDeviceWrite] = true
				c.report(pos, RuleDeviceWrite, fmt.Sprintf("%s writes to %s, which can reboot or crash the host at once", how, clean))
			}
		case clean == "/etc/selinux/config" || clean == "/sys/fs/selinux/enforce":
			if !reported[RuleSecurityDisable] {
				reported[RuleSecurityDisable] = true
				c.report(pos, RuleSecurityDisable, fmt.Sprintf("%s writes to %s: patch scripts must not change SELinux enforcement", how, clean))
			}
		}
	}
}

// securityServices are units whose stopping lowers a host's defences.
var securityServices = set("firewalld", "ufw", "nftables", "iptables", "ip6tables", "netfilter-persistent",
	"apparmor", "auditd", "fail2ban", "selinux")

var iptablesLike = set("iptables", "ip6tables", "iptables-legacy", "ip6tables-legacy", "iptables-nft",
	"ip6tables-nft", "ebtables", "arptables")

func (c *checker) securityDisable(pos syntax.Pos, r resolved) {
	ops := operands(r.args)
	lit := func(i int) string {
		if i < len(ops) && ops[i].lit {
			return ops[i].value
		}
		return ""
	}
	unit := func(s string) string { return strings.TrimSuffix(s, ".service") }
	bad := func(what string) {
		c.report(pos, RuleSecurityDisable, what+": patch scripts must not weaken the firewall, SELinux, AppArmor or auditing")
	}
	switch {
	case r.name == "ufw" && strings.HasPrefix(r.path, "/etc/init.d/"):
		if lit(0) == "stop" {
			bad(r.path + " stop")
		}
	case r.name == "ufw":
		if v := lit(0); v == "disable" || v == "reset" {
			bad("ufw " + v)
		}
	case r.name == "setenforce":
		if v := strings.ToLower(lit(0)); v == "0" || v == "permissive" {
			bad("setenforce " + lit(0))
		}
	case r.name == "systemctl":
		switch lit(0) {
		case "stop", "disable", "mask", "kill":
			for i := 1; i < len(ops); i++ {
				if securityServices[unit(lit(i))] {
					bad("systemctl " + lit(0) + " " + lit(i))
				}
			}
		}
	case r.name == "service" || r.name == "rc-service":
		if securityServices[unit(lit(0))] && lit(1) == "stop" {
			bad(r.name + " " + lit(0) + " stop")
		}
	case r.name == "update-rc.d":
		if securityServices[lit(0)] && (lit(1) == "disable" || lit(1) == "remove") {
			bad("update-rc.d " + lit(0) + " " + lit(1))
		}
	case r.name == "chkconfig":
		if securityServices[lit(0)] && lit(1) == "off" {
			bad("chkconfig " + lit(0) + " off")
		}
	case strings.HasPrefix(r.path, "/etc/init.d/") && securityServices[r.name]:
		if lit(0) == "stop" {
			bad(r.path + " stop")
		}
	case iptablesLike[r.name]:
		if hasExact(r.args, "-F", "--flush") {
			bad(r.name + " -F")
		}
		if hasExact(r.args, "-P", "--policy") && hasExact(r.args, "ACCEPT") {
			bad(r.name + " -P … ACCEPT")
		}
	case r.name == "nft":
		if lit(0) == "flush" && lit(1) == "ruleset" {
			bad("nft flush ruleset")
		}
	case r.name == "aa-disable" || r.name == "aa-complain" || r.name == "aa-teardown":
		bad(r.name)
	case r.name == "apparmor_parser":
		if hasOption(r.args, "R", "--remove") {
			bad("apparmor_parser -R")
		}
	case r.name == "auditctl":
		if v, ok := optionValue(r.args, "-e", ""); ok && v.lit && v.value == "0" {
			bad("auditctl -e 0")
		}
		if hasExact(r.args, "-D") {
			bad("auditctl -D")
		}
	}
}
