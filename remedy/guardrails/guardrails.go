// Package guardrails checks patch scripts before they reach a branch.
//
// Every script is parsed with a real shell parser (mvdan.cc/sh) and its
// syntax tree is walked; nothing is decided by matching regexes against the
// raw text, so quoting tricks ('r”m'), absolute paths (/bin/rm) and
// wrappers (sudo, env, command, exec, xargs, nohup, timeout, …) do not hide a
// command. Strings that the shell will run as code — sh -c '…', bash -c,
// eval, alias, trap, env -S, su -c, here-documents fed to a shell — are
// parsed and checked the same way; when such a string is computed at run
// time (a variable, a command substitution) it cannot be checked and is a
// violation itself, as is a command whose name is computed.
//
// Word values are tracked conservatively: a variable may hold any value the
// script assigns to it, or, if it is never assigned, anything including the
// empty string. So `rm -rf "$DIR/"*` with DIR unset is caught as rm -rf /*.
//
// Downloads are followed too: a file written by curl -o or wget -O and
// later run (sh FILE, ./FILE, . FILE, python3 FILE) is remote code, and a
// value decoded or downloaded at run time (a=$(… | base64 -d)) is hidden
// data that rm -r must not be given. Inline interpreter code (python3 -c,
// perl -e) that starts shell commands is rejected, since the shell parser
// cannot see those commands.
//
// Scripts run on hosts with /bin/sh -s (dash on Debian), so the default
// dialect is POSIX sh and bashisms are parse errors; bash -n runs as a second
// opinion when bash is installed, and shellcheck (at warning severity by
// default) when it is installed, each finding a violation at its
// script:line:col with its SC code.
package guardrails

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"vulnzero.dev/vulnzero"
)

// Pattern is an extra deny rule: a regular expression (RE2) matched against
// every simple command after wrappers are resolved, rendered as its words
// joined by single spaces (computed words appear as written, e.g. "$X").
type Pattern struct {
	Name    string `yaml:"name" json:"name"` // rule name in violations
	Regexp  string `yaml:"regexp" json:"regexp"`
	Message string `yaml:"message,omitempty" json:"message,omitempty"`
}

// Rules configure Check. The built-in structural rules (rm of system paths,
// pipes into a shell, computed eval, …) always apply; Rules adds to them.
type Rules struct {
	// DeniedCommands are command names (shell globs such as "mkfs.*") or a
	// name followed by leading operands ("systemctl reboot", "init 0"); an
	// entry matches when the resolved command has that name and its first
	// operands (arguments not starting with '-') equal the rest.
	DeniedCommands []string `yaml:"deniedCommands,omitempty" json:"deniedCommands,omitempty"`
	// DeniedPatterns are matched against each resolved command line.
	DeniedPatterns []Pattern `yaml:"deniedPatterns,omitempty" json:"deniedPatterns,omitempty"`
	// RequiredScripts must be present, non-empty and contain a command.
	RequiredScripts []string `yaml:"requiredScripts,omitempty" json:"requiredScripts,omitempty"`
	// MaxScriptBytes bounds each script; 0 means no limit.
	MaxScriptBytes int `yaml:"maxScriptBytes,omitempty" json:"maxScriptBytes,omitempty"`
	// Dialect is the shell the scripts are written for: "posix" (the
	// default: hosts run /bin/sh -s) or "bash".
	Dialect string `yaml:"dialect,omitempty" json:"dialect,omitempty"`
	// BashPath is the bash used for the `bash -n` check; empty skips it, and
	// so does a path that does not exist.
	BashPath string `yaml:"bashPath,omitempty" json:"bashPath,omitempty"`
	// ShellcheckPath is the shellcheck run over every script that parses (a
	// bare name is looked up in PATH); empty skips it, and so does one that
	// is not installed. Its findings are violations of rule "shellcheck".
	ShellcheckPath string `yaml:"shellcheckPath,omitempty" json:"shellcheckPath,omitempty"`
	// ShellcheckSeverity is the lowest shellcheck level reported: error,
	// warning (the default), info or style.
	ShellcheckSeverity string `yaml:"shellcheckSeverity,omitempty" json:"shellcheckSeverity,omitempty"`
	// ShellcheckExclude lists shellcheck codes not reported, e.g. SC2034.
	ShellcheckExclude []string `yaml:"shellcheckExclude,omitempty" json:"shellcheckExclude,omitempty"`
}

// Rule names reported by the built-in checks.
const (
	RuleParse            = "parse"
	RuleBashSyntax       = "bash-syntax"
	RuleRequiredScript   = "required-script"
	RuleMaxSize          = "max-size"
	RuleConfig           = "guardrail-config"
	RuleDeniedCommand    = "denied-command"
	RuleComputedCommand  = "computed-command"
	RuleComputedEval     = "computed-eval"
	RuleRmSystemPath     = "rm-system-path"
	RuleRecursivePerms   = "recursive-perms"
	RuleDeviceWrite      = "device-write"
	RuleRemoteExec       = "remote-exec"
	RuleDecodeExec       = "decode-exec"
	RulePipeToShell      = "pipe-to-shell"
	RuleSecurityDisable  = "security-disable"
	RuleCredentialsWrite = "credentials-write"
	RuleForkBomb         = "fork-bomb"
	RuleBashism          = "bashism"
	RuleShellcheck       = "shellcheck"
)

// Defaults are the rules used when a repository has no GuardrailPolicy.
func Defaults() Rules {
	return Rules{
		DeniedCommands: []string{
			// disks and filesystems
			"mkfs", "mkfs.*", "mke2fs", "mkswap", "wipefs", "fdisk", "sfdisk", "cfdisk", "parted", "sgdisk",
			// accounts and credentials
			"useradd", "adduser", "usermod", "groupadd", "addgroup", "chpasswd", "visudo", "ssh-copy-id",
			"passwd", "userdel", "deluser", "groupdel", "delgroup", "gpasswd", "chage",
			// reboots belong to the reconciler (patch.yaml reboot: if-required)
			"shutdown", "reboot", "halt", "poweroff", "kexec",
			"systemctl reboot", "systemctl poweroff", "systemctl halt", "systemctl kexec", "systemctl soft-reboot",
			"init 0", "init 6", "telinit 0", "telinit 6",
		},
		DeniedPatterns: []Pattern{
			{
				Name:    "insecure-download",
				Regexp:  `^(curl|wget)( .*)? (-k|--insecure|--no-check-certificate)( |$)`,
				Message: "TLS certificate checks are disabled",
			},
			{
				Name: "unauthenticated-packages",
				Regexp: `(^| )(--allow-unauthenticated|--force-yes|--nogpgcheck|--nosignature|--nodigest|--allow-untrusted|--no-gpg-checks|--gpg-auto-import-keys|` +
					`APT::Get::AllowUnauthenticated=(true|1|yes)|--setopt=([^ =]*\.)?(localpkg_|repo_)?gpgcheck=(0|false|False|no))( |$)`,
				Message: "packages would be installed without signature checks",
			},
			{
				Name:    "package-from-url",
				Regexp:  `^(rpm|dnf|microdnf|yum|zypper|apk|dpkg|apt-get|apt|yum-config-manager|add-apt-repository)( .*)? [^ ]*(https?|ftp)://`,
				Message: "packages or repositories would come from a URL, not from the host's configured, signed repositories",
			},
		},
		RequiredScripts: []string{vulnzero.ApplyFile, vulnzero.VerifyFile, vulnzero.RollbackFile},
		MaxScriptBytes:  64 << 10,
		Dialect:         "posix",
		BashPath:        "/bin/bash",
		// Warnings are bugs (unquoted traps, broken tests, bad redirects);
		// info and style findings are taste. SC2034 (unused variable) is
		// left out: generated scripts share one header of settings and not
		// every script uses every one.
		ShellcheckPath:     "shellcheck",
		ShellcheckSeverity: "warning",
		ShellcheckExclude:  []string{"SC2034"},
	}
}

// Validate reports configuration errors: bad patterns, a negative size, an
// unknown dialect, empty deny entries.
func (r Rules) Validate() error {
	var errs []error
	for i, p := range r.DeniedPatterns {
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("deniedPatterns[%d]: name is empty", i))
		}
		if _, err := regexp.Compile(p.Regexp); err != nil {
			errs = append(errs, fmt.Errorf("deniedPatterns[%d] (%s): %w", i, p.Name, err))
		}
	}
	for i, d := range r.DeniedCommands {
		if strings.TrimSpace(d) == "" {
			errs = append(errs, fmt.Errorf("deniedCommands[%d] is empty", i))
		}
	}
	if r.MaxScriptBytes < 0 {
		errs = append(errs, fmt.Errorf("maxScriptBytes %d is negative", r.MaxScriptBytes))
	}
	switch r.Dialect {
	case "", "posix", "bash":
	default:
		errs = append(errs, fmt.Errorf("dialect %q: want posix or bash", r.Dialect))
	}
	switch r.ShellcheckSeverity {
	case "", "error", "warning", "info", "style":
	default:
		errs = append(errs, fmt.Errorf("shellcheckSeverity %q: want error, warning, info or style", r.ShellcheckSeverity))
	}
	for i, code := range r.ShellcheckExclude {
		if !shellcheckCodeRE.MatchString(code) {
			errs = append(errs, fmt.Errorf("shellcheckExclude[%d] %q: want a code such as SC2034", i, code))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("guardrail rules: %w: %w", err, vulnzero.ErrInvalid)
	}
	return nil
}

var shellcheckCodeRE = regexp.MustCompile(`^SC[0-9]{4}$`)

// Violation is one broken rule at one place in one script.
type Violation struct {
	Script  string // file name, e.g. apply.sh
	Line    int    // 1-based; 0 when the violation is about the whole script
	Col     int    // 1-based; 0 when unknown
	Rule    string
	Message string
}

// String renders "apply.sh:3:1: rule: message".
func (v Violation) String() string {
	loc := v.Script
	if v.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, v.Line)
		if v.Col > 0 {
			loc = fmt.Sprintf("%s:%d", loc, v.Col)
		}
	}
	return loc + ": " + v.Rule + ": " + v.Message
}

// Check checks every script (file name → content) and returns the
// violations sorted by script, line and column; none means the scripts pass.
// Each script is parsed and its syntax tree checked, then bash -n and
// shellcheck (when installed) give their opinion.
// Invalid rules are reported as violations too, so a broken policy fails
// closed.
func Check(rules Rules, scripts map[string][]byte) []Violation {
	var out []Violation
	cfg, errs := compile(rules)
	for _, err := range errs {
		out = append(out, Violation{Script: "guardrails", Rule: RuleConfig, Message: err.Error()})
	}
	required := map[string]bool{}
	for _, name := range rules.RequiredScripts {
		required[name] = true
		if _, ok := scripts[name]; !ok {
			out = append(out, Violation{Script: name, Rule: RuleRequiredScript, Message: "required script is missing"})
		}
	}
	names := make([]string, 0, len(scripts))
	for name := range scripts {
		names = append(names, name)
	}
	sort.Strings(names)
	var parsed []string
	for _, name := range names {
		vs, ok := checkScript(cfg, name, scripts[name], required[name])
		out = append(out, vs...)
		if ok {
			parsed = append(parsed, name)
		}
	}
	// shellcheck sees only scripts that parsed: on the others it would
	// repeat the parse error.
	out = append(out, shellcheck(cfg, scripts, parsed)...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Script != b.Script {
			return a.Script < b.Script
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Rule < b.Rule
	})
	return out
}

// CheckPatch checks a patch's three scripts under their file names.
func CheckPatch(rules Rules, p vulnzero.Patch) []Violation {
	return Check(rules, map[string][]byte{
		vulnzero.ApplyFile:    p.Scripts.Apply,
		vulnzero.VerifyFile:   p.Scripts.Verify,
		vulnzero.RollbackFile: p.Scripts.Rollback,
	})
}

// Err turns violations into one error wrapping vulnzero.ErrInvalid that
// lists them all, or nil when there are none.
func Err(vs []Violation) error {
	if len(vs) == 0 {
		return nil
	}
	lines := make([]string, len(vs))
	for i, v := range vs {
		lines[i] = v.String()
	}
	return fmt.Errorf("guardrails: %d violation(s):\n%s: %w", len(vs), strings.Join(lines, "\n"), vulnzero.ErrInvalid)
}
