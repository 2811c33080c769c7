package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
