package fleet

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero/fleet/sshdtest"
)

func TestRemoteCommand(t *testing.T) {
	for _, tc := range []struct {
		cmd  Command
		want string
	}{
		{Command{}, "/bin/sh -s"},
		{Command{Sudo: true}, "sudo -n -- /bin/sh -s"},
		{Command{Env: map[string]string{"B": "x y", "A": "it's"}}, `env A='it'\''s' B='x y' /bin/sh -s`},
		{Command{Sudo: true, Env: map[string]string{"VZ_PHASE": "apply"}}, "sudo -n -- env VZ_PHASE='apply' /bin/sh -s"},
	} {
		got, err := remoteCommand(tc.cmd)
		if err != nil || got != tc.want {
			t.Errorf("remoteCommand(%+v) = %q, %v; want %q", tc.cmd, got, err, tc.want)
		}
	}
	if _, err := remoteCommand(Command{Env: map[string]string{"A": "nul\x00byte"}}); err == nil {
		t.Error("a NUL byte in a value was accepted")
	}
}

func TestPIDFilter(t *testing.T) {
	const tag = "vulnzero-pid-0011223344556677:"
	var out bytes.Buffer
	f := &pidFilter{tag: []byte(tag), out: &out}
	// Login noise before the tag, the tag line split across writes, and
	// script output after it.
	for _, chunk := range []string{"motd line\n", "vulnzero-pid-00112233", "44556677:4242", "\nscript err\n", "more\n"} {
		if _, err := f.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	f.flush()
	if f.PID() != 4242 {
		t.Errorf("pid %d, want 4242", f.PID())
	}
	if got, want := out.String(), "motd line\nscript err\nmore\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}

	// No tag at all (e.g. a login shell that failed): everything passes.
	out.Reset()
	f = &pidFilter{tag: []byte(tag), out: &out}
	big := strings.Repeat("x", maxPIDLookahead+1)
	_, _ = f.Write([]byte("early\n"))
	_, _ = f.Write([]byte(big))
	_, _ = f.Write([]byte("late"))
	f.flush()
	if out.String() != "early\n"+big+"late" || f.PID() != 0 {
		t.Errorf("without a tag: got %d bytes, pid %d", out.Len(), f.PID())
	}
}

// TestRedialBrokenConnection plants a dead connection in the pool, as a
// connection that died unnoticed looks, and checks Run drops it and redials.
func TestRedialBrokenConnection(t *testing.T) {
	f := sshdtest.Start(t, 1)
	cb, err := KnownHosts(f.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Signers: []ssh.Signer{f.Signer}, HostKeyCallback: cb})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := f.Hosts[0]
	ctx := context.Background()
	script := Command{Script: []byte(`echo "$SSH_CONNECTION"`), Timeout: 10 * time.Second}
	first, err := c.Run(ctx, h, script)
	if err != nil {
		t.Fatal(err)
	}

	tgt := c.target(h)
	dead, err := c.dial(ctx, tgt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_ = dead.Close()
	c.mu.Lock()
	e := c.conns[tgt.key()]
	old := e.cl
	e.cl = dead
	c.mu.Unlock()
	_ = old.Close()

	second, err := c.Run(ctx, h, script)
	if err != nil {
		t.Fatalf("run over a broken pooled connection: %v", err)
	}
	if second.Stdout == "" || second.Stdout == first.Stdout {
		t.Errorf("connections %q then %q: want a new one", first.Stdout, second.Stdout)
	}
	c.mu.Lock()
	pooled := c.conns[tgt.key()].cl
	c.mu.Unlock()
	if pooled == dead || pooled == nil {
		t.Error("the pool still holds the dead connection (or none)")
	}
}
