package sandbox

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// Request payloads of RFC 4254 §6.
type envRequest struct{ Name, Value string }
type execRequest struct{ Command string }
type signalRequest struct{ Signal string }
type exitStatus struct{ Status uint32 }
type exitSignal struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}

// signals maps SSH signal names (RFC 4254 §6.10) to Unix signals.
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// reserved env names a client may not override: they locate the host.
var reservedEnv = map[string]bool{"VZ_SANDBOX_ROOT": true, "VZ_STATE_DIR": true}

// session serves one session channel: env requests collect VZ_* variables,
// one exec request runs a command, signal requests reach its process group.
// Interactive requests (shell, pty, subsystems) are refused with a message.
func (f *Fleet) session(h *host, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	var env []string
	var running *process
	for req := range reqs {
		switch req.Type {
		case "env":
			var e envRequest
			ok := ssh.Unmarshal(req.Payload, &e) == nil && running == nil &&
				strings.HasPrefix(e.Name, "VZ_") && !reservedEnv[e.Name] && validEnvName(e.Name) &&
				!strings.ContainsRune(e.Value, 0)
			if ok {
				env = append(env, e.Name+"="+e.Value)
			}
			_ = req.Reply(ok, nil)
		case "exec":
			var e execRequest
			if running != nil || ssh.Unmarshal(req.Payload, &e) != nil {
				_ = req.Reply(false, nil)
				continue
			}
			p, err := f.start(h, ch, e.Command, env)
			if err != nil {
				f.log.Warn("sandbox exec", "host", h.spec.Name, "err", err)
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(true, nil)
			running = p
		case "signal":
			var s signalRequest
			if running != nil && ssh.Unmarshal(req.Payload, &s) == nil {
				if sig, ok := signals[s.Signal]; ok {
					running.signal(sig)
				}
			}
			_ = req.Reply(false, nil) // signal requests never want a reply
		case "shell", "subsystem":
			_, _ = ch.Stderr().Write([]byte("vulnzero sandbox host " + h.spec.Name + ": only commands (exec requests) are supported, no " + req.Type + "\r\n"))
			_ = req.Reply(false, nil)
		default: // pty-req, x11-req, auth-agent-req@openssh.com, …
			_ = req.Reply(false, nil)
		}
	}
	// The client closed the channel or the connection dropped: nothing may
	// keep running on its behalf.
	if running != nil {
		running.signal(syscall.SIGKILL)
		running.wait()
	}
}

// process is a command running for a session.
type process struct {
	done chan struct{}
	mu   sync.Mutex
	pgid int
}

func (p *process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pgid > 0 {
		_ = syscall.Kill(-p.pgid, sig)
	}
}

func (p *process) wait() { <-p.done }

// start runs command with /bin/sh in the host root and, when it ends, sends
// its exit status and closes the channel.
func (f *Fleet) start(h *host, ch ssh.Channel, command string, extraEnv []string) (*process, error) {
	root := h.root
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Dir = root
	cmd.Env = append([]string{
		"PATH=" + filepath.Join(root, "bin") + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + root,
		"VZ_SANDBOX_ROOT=" + root,
		"VZ_STATE_DIR=" + filepath.Join(root, "var", "lib", "vulnzero"),
	}, extraEnv...)
	// Its own process group, so the whole command tree can be signalled.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	// Pipes are made by hand rather than by exec: Wait then returns when the
	// shell exits, and the copies below end when the last writer (a
	// background child included) is gone, which the group kill guarantees.
	var pipes []*os.File
	closeAll := func() {
		for _, p := range pipes {
			_ = p.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			pipes = append(pipes, r, w)
		}
		return r, w, err
	}
	stdinR, stdinW, err := pipe()
	if err != nil {
		return nil, err
	}
	stdoutR, stdoutW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	stderrR, stderrW, err := pipe()
	if err != nil {
		closeAll()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdinR, stdoutW, stderrW
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, err
	}
	// The child has its copies; ours would keep the pipes open.
	_ = stdinR.Close()
	_ = stdoutW.Close()
	_ = stderrW.Close()

	p := &process{done: make(chan struct{}), pgid: cmd.Process.Pid}
	go func() {
		_, _ = io.Copy(stdinW, ch)
		_ = stdinW.Close()
	}()
	var copies sync.WaitGroup
	copies.Go(func() { _, _ = io.Copy(ch, stdoutR); _ = stdoutR.Close() })
	copies.Go(func() { _, _ = io.Copy(ch.Stderr(), stderrR); _ = stderrR.Close() })

	f.wg.Go(func() {
		defer close(p.done)
		_ = cmd.Wait()
		// Background children left in the group die with the command:
		// sandbox hosts have no init system to hand them to, and they would
		// outlive the demo on the developer's machine.
		p.mu.Lock()
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		p.pgid = 0 // the group is gone; never signal a recycled id
		p.mu.Unlock()
		copies.Wait()
		_ = ch.CloseWrite()
		sendExit(ch, cmd)
		_ = ch.Close()
		f.log.Debug("sandbox exec", "host", h.spec.Name, "exit", cmd.ProcessState.String())
	})
	return p, nil
}

// sendExit reports how the command ended: exit-signal when a signal killed
// it (as OpenSSH does), exit-status otherwise.
func sendExit(ch ssh.Channel, cmd *exec.Cmd) {
	ps := cmd.ProcessState
	if ps == nil {
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{Status: 255}))
		return
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		for name, sig := range signals {
			if sig == ws.Signal() {
				_, _ = ch.SendRequest("exit-signal", false, ssh.Marshal(exitSignal{Signal: name, CoreDumped: ws.CoreDump()}))
				return
			}
		}
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{Status: uint32(128 + ws.Signal())})) //nolint:gosec // G115: signal numbers are small and positive
		return
	}
	code := ps.ExitCode()
	if code < 0 {
		code = 255
	}
	_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{Status: uint32(code)}))
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
