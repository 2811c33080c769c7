package guardrails

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// shellcheckTimeout bounds one shellcheck run over all of a patch's scripts.
const shellcheckTimeout = 30 * time.Second

// shellcheckComment is one finding in shellcheck's json1 output.
type shellcheckComment struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Level   string `json:"level"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// shellcheckBinary resolves the configured shellcheck: a bare name is looked
// up in PATH; empty or missing means the check is skipped ("when
// installed"), as for bash -n.
func shellcheckBinary(p string) (string, bool) {
	if p == "" {
		return "", false
	}
	if !strings.Contains(p, "/") {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", false
		}
		return found, true
	}
	if _, err := os.Stat(p); err != nil {
		return "", false
	}
	return p, true
}

// shellcheck runs shellcheck once over every named script and maps each
// finding at or above the configured severity to a violation at its
// script:line:col under the rule "shellcheck", with the SC code in the
// message so a policy can exclude it by code. A shellcheck that cannot run
// or whose output does not parse is a violation too: the check fails closed.
func shellcheck(cfg *config, scripts map[string][]byte, names []string) []Violation {
	bin, ok := shellcheckBinary(cfg.shellcheckPath)
	if !ok || len(names) == 0 {
		return nil
	}
	fail := func(msg string) []Violation {
		return []Violation{{Script: "guardrails", Rule: RuleShellcheck, Message: msg}}
	}
	dir, err := os.MkdirTemp("", "vz-shellcheck-")
	if err != nil {
		return fail(fmt.Sprintf("shellcheck: temp dir: %v", err))
	}
	defer os.RemoveAll(dir)

	// Files are numbered, not named after the scripts, so no script name can
	// become an option or a path outside dir.
	byFile := map[string]string{}
	args := []string{"--norc", "--format=json1", "--shell=" + cfg.shellcheckShell(), "--severity=" + cfg.shellcheckSeverity}
	if len(cfg.shellcheckExclude) > 0 {
		args = append(args, "--exclude="+strings.Join(cfg.shellcheckExclude, ","))
	}
	args = append(args, "--")
	for i, name := range names {
		f := filepath.Join(dir, strconv.Itoa(i)+".sh")
		if err := os.WriteFile(f, scripts[name], 0o600); err != nil {
			return fail(fmt.Sprintf("shellcheck: write %s: %v", name, err))
		}
		byFile[f] = name
		args = append(args, f)
	}

	ctx, cancel := context.WithTimeout(context.Background(), shellcheckTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return fail(fmt.Sprintf("shellcheck did not finish in %s", shellcheckTimeout))
	}
	// shellcheck exits 1 when it has findings; anything else is a failure.
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 1) {
		return fail(fmt.Sprintf("shellcheck: %v: %s", err, strings.TrimSpace(stderr.String())))
	}
	var res struct {
		Comments []shellcheckComment `json:"comments"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return fail(fmt.Sprintf("shellcheck output does not parse: %v", err))
	}
	var vs []Violation
	for _, c := range res.Comments {
		name, ok := byFile[c.File]
		if !ok {
			continue
		}
		vs = append(vs, Violation{Script: name, Line: c.Line, Col: c.Column, Rule: RuleShellcheck,
			Message: fmt.Sprintf("SC%d (%s): %s", c.Code, c.Level, c.Message)})
	}
	return vs
}

func (c *config) shellcheckShell() string {
	if c.dialect == "bash" {
		return "bash"
	}
	return "sh"
}
