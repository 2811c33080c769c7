package gitsource

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet/sshdtest"
)

// TestSSHRemote reads and pushes over a real OpenSSH sshd with a deploy key,
// the host key checked against known_hosts; an unknown or changed host key
// is refused before any git traffic.
func TestSSHRemote(t *testing.T) {
	ctx := context.Background()
	f := sshdtest.Start(t, 1)
	h := f.Hosts[0]
	bare := filepath.Join(t.TempDir(), "remediation.git")
	if _, err := InitBare(ctx, bare, "main", seedFiles("a"), "Initial", "Seed", "seed@example.test"); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
	url := "ssh://" + h.User + "@" + addr + bare

	auth, err := SSHAuth(h.User, f.KeyPath, f.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, Config{URL: url, Dir: filepath.Join(t.TempDir(), "clone"), Auth: auth, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("open over ssh: %v\nsshd log:\n%s", err, f.Log(0))
	}
	st, err := r.State(ctx, "origin/main")
	if err != nil || len(st.Patches) != 1 {
		t.Fatalf("state over ssh = %+v, %v", st.Patches, err)
	}
	sha, err := r.CommitFiles(ctx, CommitRequest{Branch: "vulnzero/b", Files: patchFilesFor("b"), Message: "Propose b"})
	if err != nil {
		t.Fatalf("push over ssh: %v\nsshd log:\n%s", err, f.Log(0))
	}
	if got := gitCLI(t, bare, "rev-parse", "refs/heads/vulnzero/b"); got != sha {
		t.Errorf("pushed over ssh: remote at %s, want %s", got, sha)
	}
	fsck(t, bare)

	dir := t.TempDir()
	empty := filepath.Join(dir, "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := ssh.NewPublicKey(other)
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(dir, "changed_known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, otherKey) + "\n"
	if err := os.WriteFile(changed, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, knownHosts string
		want             []string
	}{
		{"unknown", empty, []string{"unknown host key", empty}},
		{"changed", changed, []string{"changed", changed + ":1", ssh.FingerprintSHA256(f.HostKeys[0])}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth, err := SSHAuth(h.User, f.KeyPath, tc.knownHosts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Open(ctx, Config{URL: url, Dir: filepath.Join(t.TempDir(), "clone"), Auth: auth, Logger: testLogger(t)})
			if err == nil {
				t.Fatal("Open succeeded with a host key known_hosts does not vouch for")
			}
			t.Logf("%s host key: %v", tc.name, err)
			if !errors.Is(err, vulnzero.ErrHostKey) {
				t.Errorf("error is not ErrHostKey: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestSSHAuthBadFiles: a missing or unreadable file fails at SSHAuth, naming
// the file.
func TestSSHAuthBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_ed25519")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name, key, known, want string
	}{
		{"missing key", missing, garbage, missing},
		{"bad key", garbage, garbage, garbage},
		{"missing known_hosts", key, missing, missing},
		{"bad known_hosts", key, garbage, garbage + ": no valid entries, line 1"},
	} {
		_, err := SSHAuth("git", tc.key, tc.known)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v does not name %s", tc.name, err, tc.want)
		}
	}
	if _, err := SSHAuth("", key, garbage); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Errorf("no user: %v", err)
	}
}

// TestKnownKeyAlgorithms: the server is asked only for key types known_hosts
// lists, each once; @cert-authority lines lift the restriction.
func TestKnownKeyAlgorithms(t *testing.T) {
	key := func() ssh.PublicKey {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	file := "# comment\n" + knownhosts.Line([]string{"a.example"}, key()) + "\n\n" + knownhosts.Line([]string{"b.example"}, key()) + "\n"
	algos, err := knownKeyAlgorithms([]byte(file))
	if err != nil || strings.Join(algos, ",") != ssh.KeyAlgoED25519 {
		t.Errorf("algorithms = %v, %v; want [%s]", algos, err, ssh.KeyAlgoED25519)
	}
	ca := "@cert-authority *.example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key()))) + "\n"
	if algos, err := knownKeyAlgorithms([]byte(file + ca)); err != nil || algos != nil {
		t.Errorf("with a CA: %v, %v; want no restriction", algos, err)
	}
	if algos, err := knownKeyAlgorithms(nil); err != nil || algos != nil {
		t.Errorf("empty: %v, %v", algos, err)
	}
}
