package sshdtest_test

import (
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero/fleet/sshdtest"
)

// TestOpenSSHClientConnects checks the harness with OpenSSH's own client:
// the generated key is accepted, known_hosts verifies every host strictly,
// and Stop takes a host down.
func TestOpenSSHClientConnects(t *testing.T) {
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("ssh (openssh-client) not found: run scripts/test-deps.sh: %v", err)
	}
	f := sshdtest.Start(t, 2)
	sshTo := func(i int, command string) (string, error) {
		h := f.Hosts[i]
		out, err := exec.Command(ssh, "-F", "/dev/null",
			"-i", f.KeyPath, "-o", "IdentitiesOnly=yes",
			"-o", "UserKnownHostsFile="+f.KnownHostsPath, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
			"-p", strconv.Itoa(h.Port), h.User+"@"+h.Address, command).CombinedOutput()
		return string(out), err
	}
	for i, h := range f.Hosts {
		out, err := sshTo(i, "echo $SSH_CONNECTION")
		if err != nil {
			t.Fatalf("%s: %v\n%s\nsshd log:\n%s", h.Name, err, out, f.Log(i))
		}
		if fields := strings.Fields(out); len(fields) != 4 || fields[3] != strconv.Itoa(h.Port) {
			t.Errorf("%s: SSH_CONNECTION %q, want server port %d", h.Name, out, h.Port)
		}
	}

	f.Stop(0)
	if _, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(f.Hosts[0].Port)), time.Second); err == nil {
		t.Error("stopped host still accepts connections")
	}
	if _, err := sshTo(1, "true"); err != nil {
		t.Errorf("host-2 after stopping host-1: %v", err)
	}
}
