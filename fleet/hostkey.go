package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"vulnzero.dev/vulnzero"
)

// HostKeyError is a host key that known_hosts does not accept. It matches
// vulnzero.ErrHostKey with errors.Is.
type HostKeyError struct {
	Address string        // the host as known_hosts spells it, e.g. [127.0.0.1]:2201
	Key     ssh.PublicKey // the key the host presented
	File    string        // the known_hosts file consulted
	// Want lists the keys known_hosts has for Address. Empty means the host
	// is unknown; non-empty means its key changed (or it switched to a key
	// type known_hosts does not list for it).
	Want    []knownhosts.KnownKey
	Revoked *knownhosts.KnownKey // set when the key is marked @revoked
}

// Changed reports whether known_hosts lists other keys for the host.
func (e *HostKeyError) Changed() bool { return len(e.Want) > 0 }

func (e *HostKeyError) Error() string {
	presented := describeKey(e.Key)
	switch {
	case e.Revoked != nil:
		return fmt.Sprintf("host key %s of %s is revoked (%s:%d)", presented, e.Address, e.Revoked.Filename, e.Revoked.Line)
	case e.Changed():
		known := make([]string, len(e.Want))
		for i, k := range e.Want {
			known[i] = fmt.Sprintf("%s (%s:%d)", describeKey(k.Key), k.Filename, k.Line)
		}
		return fmt.Sprintf("host key of %s changed, possible man-in-the-middle: it presented %s, known_hosts has %s",
			e.Address, presented, strings.Join(known, ", "))
	default:
		return fmt.Sprintf("unknown host key for %s: %s is not in %s", e.Address, presented, e.File)
	}
}

// Unwrap makes errors.Is(err, vulnzero.ErrHostKey) hold.
func (e *HostKeyError) Unwrap() error { return vulnzero.ErrHostKey }

func describeKey(k ssh.PublicKey) string {
	if k == nil {
		return "(no key)"
	}
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}

// KnownHosts returns a host key callback that accepts only the keys listed
// in the OpenSSH known_hosts file at path. An unknown host, a changed key or
// a revoked key is refused with a *HostKeyError naming the host. The file is
// read once; a missing file is an error (create an empty one to start with no
// trusted hosts).
func KnownHosts(path string) (ssh.HostKeyCallback, error) {
	cb, err := knownhosts.New(path)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts %s: %w", path, err)
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		he := &HostKeyError{Address: knownhosts.Normalize(hostname), Key: key, File: path}
		var keyErr *knownhosts.KeyError
		var revErr *knownhosts.RevokedError
		switch {
		case errors.As(err, &keyErr):
			he.Want = keyErr.Want
		case errors.As(err, &revErr):
			he.Revoked = &revErr.Revoked
		default:
			return fmt.Errorf("check host key of %s against %s: %w", hostname, path, err)
		}
		return he
	}, nil
}

// LoadSigner reads an unencrypted private key file (OpenSSH, PKCS#1, PKCS#8
// or SEC1 PEM). The key material never appears in errors.
func LoadSigner(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("parse private key %s: key is passphrase-protected, which is not supported: %w", path, vulnzero.ErrInvalid)
		}
		return nil, fmt.Errorf("parse private key %s: %w: %w", path, err, vulnzero.ErrInvalid)
	}
	return s, nil
}

// probeKey is a throwaway key used to ask a host key callback which keys it
// knows for a host: no host presents it, so a known_hosts callback answers
// with the list of keys it would have accepted.
var probeKey = sync.OnceValue(func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil
	}
	return k
})

// hostKeyAlgorithms returns the host key algorithms to offer to a host so it
// presents a key type known_hosts lists for it. Without this, x/crypto
// prefers RSA and ECDSA, and a host known only by its ed25519 key would show
// an RSA key and be refused as "changed". Nil means no preference (unknown
// host, or a callback that does not list keys).
func hostKeyAlgorithms(cb ssh.HostKeyCallback, hostport string, remote net.Addr) []string {
	k := probeKey()
	if k == nil {
		return nil
	}
	err := cb(hostport, remote, k)
	var want []knownhosts.KnownKey
	var he *HostKeyError
	var ke *knownhosts.KeyError
	switch {
	case errors.As(err, &he):
		want = he.Want
	case errors.As(err, &ke):
		want = ke.Want
	default:
		return nil
	}
	have := map[string]bool{}
	for _, w := range want {
		have[w.Key.Type()] = true
	}
	var algos []string
	// In preference order: modern and small first.
	for _, typ := range []string{
		ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSA,
	} {
		if !have[typ] {
			continue
		}
		if typ == ssh.KeyAlgoRSA {
			// An RSA key signs with any of these; old servers only know ssh-rsa.
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
			continue
		}
		algos = append(algos, typ)
	}
	return algos
}
