package fleet

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

// Command is a script to run on a host.
type Command struct {
	// Script is fed on stdin to /bin/sh -s, so it needs no quoting and can
	// be any size.
	Script []byte
	// Env is set for the script. It travels in the command line as
	// `env K='v' …` rather than as SSH env requests, which sshd refuses
	// unless AcceptEnv allows them. Names must match [A-Za-z_][A-Za-z0-9_]*.
	// Values are visible in the remote process list: never put secrets here.
	Env map[string]string
	// Timeout bounds the whole run, dial included; zero means only ctx does.
	Timeout time.Duration
	// Sudo runs the script as root with `sudo -n` (never prompts: a host
	// that wants a password fails the command instead of hanging).
	Sudo bool
}

// remoteCommand is the command line sent in the exec request. It is parsed
// by the remote user's login shell, which must be POSIX-like (sh, bash,
// dash, zsh, ksh).
func remoteCommand(c Command) (string, error) {
	var b strings.Builder
	if c.Sudo {
		b.WriteString("sudo -n -- ")
	}
	if len(c.Env) > 0 {
		b.WriteString("env ")
		for _, k := range slices.Sorted(maps.Keys(c.Env)) {
			if !validEnvName(k) {
				return "", fmt.Errorf("env %q: name must match [A-Za-z_][A-Za-z0-9_]*: %w", k, vulnzero.ErrInvalid)
			}
			v := c.Env[k]
			if strings.IndexByte(v, 0) >= 0 {
				return "", fmt.Errorf("env %s: value contains a NUL byte: %w", k, vulnzero.ErrInvalid)
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(shellQuote(v))
			b.WriteByte(' ')
		}
	}
	b.WriteString("/bin/sh -s")
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// shellQuote single-quotes s for a POSIX shell: inside single quotes nothing
// is special; a single quote itself ends the quoting, is escaped with a
// backslash, and reopens it.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
