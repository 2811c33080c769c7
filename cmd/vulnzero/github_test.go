package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// TestGitHubConfig: the github section is validated with field names, its
// secrets come from the environment, and the clone URL follows the API
// host (github.com or GitHub Enterprise).
func TestGitHubConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vz.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte("dataDir: "+dir+"\n"+s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	write("forge: github\ngithub:\n  owner: acme\n  repo: remediation\n")
	if _, err := loadConfig(path, getenv); err == nil || !strings.Contains(err.Error(), "github.token/app") {
		t.Errorf("no credentials: %v", err)
	}
	env["VZ_GITHUB_TOKEN"] = "ghp_fromenv"
	env["VZ_GITHUB_WEBHOOK_SECRET"] = "whsec"
	c, err := loadConfig(path, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.GitHub.Token != "ghp_fromenv" || c.GitHub.WebhookSecret != "whsec" {
		t.Errorf("secrets from the environment: %+v", c.GitHub)
	}
	if u := c.withGitHubRepo().Repo.URL; u != "https://github.com/acme/remediation.git" {
		t.Errorf("clone URL = %s", u)
	}
	c.GitHub.BaseURL = "https://ghe.example.com/api/v3/"
	if u := c.withGitHubRepo().Repo.URL; u != "https://ghe.example.com/acme/remediation.git" {
		t.Errorf("GHE clone URL = %s", u)
	}

	write("forge: github\ngithub:\n  owner: acme\n  repo: r\n  checks: check-runs\n  mergeMethod: rebase\n")
	_, err = loadConfig(path, getenv)
	for _, want := range []string{"github.checks", "github.mergeMethod"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	write("forge: gitlab\n")
	if _, err := loadConfig(path, getenv); err == nil || !strings.Contains(err.Error(), "forge") {
		t.Errorf("unknown forge: %v", err)
	}
	delete(env, "VZ_GITHUB_TOKEN")
	write("forge: github\ngithub:\n  owner: acme\n  repo: r\n  app: {id: 1, installationID: 2, privateKeyFile: /k.pem}\n  checks: check-runs\n")
	if _, err := loadConfig(path, getenv); err != nil {
		t.Errorf("app config: %v", err)
	}
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte("ghp_fromfile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := secret("", tokFile, "token"); err != nil || s != "ghp_fromfile" {
		t.Errorf("secret from file = %q, %v", s, err)
	}
}

// TestGitHubDeployKeyConfig: a deploy key needs a known_hosts file, switches
// the clone URL to SSH (or github.gitURL) and the git auth to the key.
func TestGitHubDeployKeyConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vz.yaml")
	getenv := func(k string) string { return map[string]string{"VZ_GITHUB_TOKEN": "ghp_x"}[k] }
	load := func(s string) (Config, error) {
		if err := os.WriteFile(path, []byte("dataDir: "+dir+"\nforge: github\ngithub:\n  owner: acme\n  repo: r\n"+s), 0o600); err != nil {
			t.Fatal(err)
		}
		return loadConfig(path, getenv)
	}
	if _, err := load("  gitSSHKeyFile: /k\n"); err == nil || !strings.Contains(err.Error(), "github.gitSSHKeyFile/gitKnownHostsFile") {
		t.Errorf("key without known_hosts: %v", err)
	}
	if _, err := load("  gitSSHKeyFile: /k\n  gitKnownHostsFile: /kh\n  gitURL: https://github.com/acme/r.git\n"); err == nil || !strings.Contains(err.Error(), "not an SSH URL") {
		t.Errorf("deploy key with an https URL: %v", err)
	}

	key := filepath.Join(dir, "deploy_key")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	line := knownhosts.Line([]string{"github.com"}, signer.PublicKey()) + "\n"
	if err := os.WriteFile(known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load("  gitSSHKeyFile: " + key + "\n  gitKnownHostsFile: " + known + "\n")
	if err != nil {
		t.Fatal(err)
	}
	c = c.withGitHubRepo()
	if c.Repo.URL != "ssh://git@github.com/acme/r.git" {
		t.Errorf("deploy key clone URL = %s", c.Repo.URL)
	}
	a := &app{cfg: c, log: slog.New(slog.DiscardHandler)}
	_, auth, err := a.newGitHubForge()
	if err != nil {
		t.Fatal(err)
	}
	if pk, ok := auth.(*gitssh.PublicKeys); !ok || pk.User != "git" || pk.HostKeyCallback == nil {
		t.Errorf("git auth = %T %v, want ssh public keys as git with a host key check", auth, auth)
	}
	c.GitHub.GitURL, c.Repo.URL = "ssh://deploy@ghe.example.com:2222/acme/r.git", ""
	if u := c.withGitHubRepo().Repo.URL; u != c.GitHub.GitURL {
		t.Errorf("gitURL override = %s", u)
	}
}
