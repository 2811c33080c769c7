package gitsource

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/go-git/go-git/v5/plumbing/transport"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"vulnzero.dev/vulnzero"
)

// SSHAuth authenticates git over SSH as user with the unencrypted private
// key in keyFile (a deploy key), and accepts only the host keys listed in
// the OpenSSH known_hosts file knownHostsFile: an unknown host or a changed
// key fails the fetch or push with an error matching vulnzero.ErrHostKey.
// Both files are read now, so a bad file fails at startup, not at the
// first fetch; an empty known_hosts trusts nothing.
func SSHAuth(user, keyFile, knownHostsFile string) (transport.AuthMethod, error) {
	if user == "" || keyFile == "" || knownHostsFile == "" {
		return nil, fmt.Errorf("git ssh auth: user, key file and known_hosts file are all required: %w", vulnzero.ErrInvalid)
	}
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("git ssh key %s: %w", keyFile, err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		// The parse error never quotes key material.
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return nil, fmt.Errorf("git ssh key %s: passphrase-protected keys are not supported: %w", keyFile, vulnzero.ErrInvalid)
		}
		return nil, fmt.Errorf("git ssh key %s: %w: %w", keyFile, err, vulnzero.ErrInvalid)
	}
	known, err := os.ReadFile(knownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("git known_hosts %s: %w", knownHostsFile, err)
	}
	cb, err := knownhosts.New(knownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("git known_hosts %s: %w: %w", knownHostsFile, err, vulnzero.ErrInvalid)
	}
	algos, err := knownKeyAlgorithms(known)
	if err != nil {
		return nil, fmt.Errorf("git known_hosts %s: %w: %w", knownHostsFile, err, vulnzero.ErrInvalid)
	}
	return &gitssh.PublicKeys{
		User:   user,
		Signer: signer,
		HostKeyCallbackHelper: gitssh.HostKeyCallbackHelper{
			HostKeyCallback:   hostKeyCallback(cb, knownHostsFile),
			HostKeyAlgorithms: algos,
		},
	}, nil
}

// hostKeyCallback turns knownhosts' refusals into errors that say which
// host, which file and whether the key is unknown or changed.
func hostKeyCallback(cb ssh.HostKeyCallback, file string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		if err == nil {
			return nil
		}
		host := knownhosts.Normalize(hostname)
		presented := key.Type() + " " + ssh.FingerprintSHA256(key)
		var keyErr *knownhosts.KeyError
		var revErr *knownhosts.RevokedError
		switch {
		case errors.As(err, &revErr):
			return fmt.Errorf("host key %s of %s is revoked in %s: %w", presented, host, file, vulnzero.ErrHostKey)
		case errors.As(err, &keyErr) && len(keyErr.Want) > 0:
			w := keyErr.Want[0]
			return fmt.Errorf("host key of %s changed, possible man-in-the-middle: it presented %s, %s:%d has %s: %w",
				host, presented, w.Filename, w.Line, w.Key.Type()+" "+ssh.FingerprintSHA256(w.Key), vulnzero.ErrHostKey)
		case errors.As(err, &keyErr):
			return fmt.Errorf("unknown host key for %s: %s is not in %s: %w", host, presented, file, vulnzero.ErrHostKey)
		default:
			return fmt.Errorf("check host key of %s against %s: %w", host, file, err)
		}
	}
}

// knownKeyAlgorithms lists the host key algorithms for the key types
// known_hosts holds, so the server is asked for a key type the file can
// vouch for: otherwise a host with several keys may present one the file
// lacks and be refused as "changed". Nil (no restriction) when the file is
// empty or has @cert-authority lines, whose certificate algorithms differ.
func knownKeyAlgorithms(known []byte) ([]string, error) {
	var algos []string
	seen := map[string]bool{}
	for {
		marker, _, key, _, rest, err := ssh.ParseKnownHosts(known)
		if errors.Is(err, io.EOF) {
			return algos, nil
		}
		if err != nil {
			return nil, err
		}
		known = rest
		if marker == "cert-authority" {
			return nil, nil
		}
		if marker == "revoked" || seen[key.Type()] {
			continue
		}
		seen[key.Type()] = true
		if key.Type() == ssh.KeyAlgoRSA {
			// An RSA key signs with SHA-2 on modern servers.
			algos = append(algos, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256)
		}
		algos = append(algos, key.Type())
	}
}
