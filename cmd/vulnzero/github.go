package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"

	"vulnzero.dev/vulnzero/forge/github"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/server"
)

// Forges Config.Forge selects.
const (
	forgeLocal  = "local"
	forgeGitHub = "github"
)

// GitHubConfig is the GitHub (or GitHub Enterprise) forge. Secrets come
// from the environment (VZ_GITHUB_TOKEN, VZ_GITHUB_WEBHOOK_SECRET) or from
// files, never from the YAML itself if that can be helped; none is logged.
type GitHubConfig struct {
	// BaseURL is the REST API root: https://api.github.com/ when empty; for
	// GitHub Enterprise Server https://HOST/api/v3/.
	BaseURL string `yaml:"baseURL"`
	Owner   string `yaml:"owner"`
	Repo    string `yaml:"repo"`
	// Token is a personal access token; TokenFile holds one. Secret.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"tokenFile"`
	// App authenticates as a GitHub App installation instead of a token.
	App GitHubAppConfig `yaml:"app"`
	// Checks is "statuses" (default) or "check-runs" (needs App).
	Checks string `yaml:"checks"`
	// MergeMethod is merge (default) or squash.
	MergeMethod string `yaml:"mergeMethod"`
	// WebhookSecret verifies POST /webhooks/github; WebhookSecretFile
	// holds it. Without one the webhook route is not served (polling
	// still reconciles). Secret.
	WebhookSecret     string `yaml:"webhookSecret"`
	WebhookSecretFile string `yaml:"webhookSecretFile"`
	// GitSSHKeyFile is a deploy key: when set, git fetches and pushes over
	// SSH with it instead of HTTPS with the token or app, checking the
	// server against GitKnownHostsFile (required with it; unknown or
	// changed host keys are refused).
	GitSSHKeyFile     string `yaml:"gitSSHKeyFile"`
	GitKnownHostsFile string `yaml:"gitKnownHostsFile"`
	// GitURL overrides the clone URL, e.g. ssh://git@github.com/OWNER/REPO.git;
	// with a deploy key it defaults to ssh://git@HOST/OWNER/REPO.git.
	GitURL string `yaml:"gitURL"`
}

// GitHubAppConfig is a GitHub App installation.
type GitHubAppConfig struct {
	ID             int64  `yaml:"id"`
	InstallationID int64  `yaml:"installationID"`
	PrivateKeyFile string `yaml:"privateKeyFile"`
}

// validateGitHub checks the forge choice and the GitHub section.
func (c Config) validateGitHub() error {
	switch c.Forge {
	case "", forgeLocal:
		return nil
	case forgeGitHub:
	default:
		return fmt.Errorf("config: forge: %q is not local or github", c.Forge)
	}
	g := c.GitHub
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: github.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if g.Owner == "" || g.Repo == "" {
		bad("owner/repo", "required with forge github")
	}
	if g.BaseURL != "" {
		if u, err := url.Parse(g.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("baseURL", "%q is not an http(s) URL", g.BaseURL)
		}
	}
	hasToken := g.Token != "" || g.TokenFile != ""
	hasApp := g.App.ID != 0 || g.App.InstallationID != 0 || g.App.PrivateKeyFile != ""
	switch {
	case hasToken && hasApp:
		bad("token/app", "set a token or an app, not both")
	case !hasToken && !hasApp:
		bad("token/app", "a token (VZ_GITHUB_TOKEN, github.tokenFile) or an app is required")
	case hasApp && (g.App.ID == 0 || g.App.InstallationID == 0 || g.App.PrivateKeyFile == ""):
		bad("app", "id, installationID and privateKeyFile are all required")
	}
	switch g.Checks {
	case "", "statuses":
	case "check-runs":
		if !hasApp {
			bad("checks", "check-runs need a GitHub App (GitHub refuses them from a token)")
		}
	default:
		bad("checks", "%q is not statuses or check-runs", g.Checks)
	}
	switch g.MergeMethod {
	case "", "merge", "squash":
	default:
		bad("mergeMethod", "%q is not merge or squash", g.MergeMethod)
	}
	if (g.GitSSHKeyFile == "") != (g.GitKnownHostsFile == "") {
		bad("gitSSHKeyFile/gitKnownHostsFile", "set both: a deploy key is only used with a known_hosts file to check the server")
	}
	if g.GitSSHKeyFile != "" {
		if u := c.withGitHubRepo().Repo.URL; strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			bad("gitSSHKeyFile", "the git URL %s is not an SSH URL", u)
		}
	}
	return errors.Join(errs...)
}

// gitHubCloneURL is the HTTPS clone URL of the configured repository: on
// github.com github.com/OWNER/REPO.git, on GitHub Enterprise the API host
// without /api/v3.
func (g GitHubConfig) gitHubCloneURL() string {
	host, prefix := "github.com", "https://"
	if g.BaseURL != "" {
		if u, err := url.Parse(g.BaseURL); err == nil && u.Host != "api.github.com" {
			host, prefix = u.Host, u.Scheme+"://"
		}
	}
	return prefix + host + "/" + g.Owner + "/" + g.Repo + ".git"
}

// gitHubSSHURL is the SSH clone URL of the configured repository, on the
// host of the HTTPS one.
func (g GitHubConfig) gitHubSSHURL() string {
	host := "github.com"
	if u, err := url.Parse(g.gitHubCloneURL()); err == nil {
		host = u.Host
	}
	return "ssh://git@" + host + "/" + g.Owner + "/" + g.Repo + ".git"
}

// withGitHubRepo points the remediation repository at GitHub when the
// forge is github and no repo.url is set: github.gitURL, else SSH with a
// deploy key, else HTTPS.
func (c Config) withGitHubRepo() Config {
	if c.Forge == forgeGitHub && c.Repo.URL == "" {
		switch {
		case c.GitHub.GitURL != "":
			c.Repo.URL = c.GitHub.GitURL
		case c.GitHub.GitSSHKeyFile != "":
			c.Repo.URL = c.GitHub.gitHubSSHURL()
		default:
			c.Repo.URL = c.GitHub.gitHubCloneURL()
		}
	}
	return c
}

// secret is value, or the trimmed content of file.
func secret(value, file, what string) (string, error) {
	if value != "" || file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// newGitHubForge builds the GitHub client and the git auth: the same
// identity over HTTPS, or the deploy key over SSH when one is configured;
// nil, nil when the forge is local.
func (a *app) newGitHubForge() (*github.Client, transport.AuthMethod, error) {
	if a.cfg.Forge != forgeGitHub {
		return nil, nil, nil
	}
	g := a.cfg.GitHub
	cfg := github.Config{
		BaseURL: g.BaseURL, Owner: g.Owner, Repo: g.Repo, Base: a.cfg.Repo.Branch,
		CheckRuns: g.Checks == "check-runs", MergeMethod: g.MergeMethod, Logger: a.log,
		HTTPClient: &http.Client{Timeout: githubRequestTimeout},
	}
	if g.App.ID != 0 {
		key, err := os.ReadFile(g.App.PrivateKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("github app private key: %w", err)
		}
		cfg.App = &github.AppAuth{ID: g.App.ID, InstallationID: g.App.InstallationID, PrivateKey: key}
	} else {
		tok, err := secret(g.Token, g.TokenFile, "github token file")
		if err != nil {
			return nil, nil, err
		}
		cfg.Token = tok
	}
	c, err := github.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	if g.GitSSHKeyFile == "" {
		return c, c.GitAuth(), nil
	}
	// The SSH user comes from the URL (git on GitHub).
	user := "git"
	if ep, err := transport.NewEndpoint(a.cfg.Repo.URL); err == nil && ep.User != "" {
		user = ep.User
	}
	auth, err := gitsource.SSHAuth(user, g.GitSSHKeyFile, g.GitKnownHostsFile)
	if err != nil {
		return nil, nil, fmt.Errorf("github deploy key: %w", err)
	}
	return c, auth, nil
}

// githubRequestTimeout bounds each GitHub API request.
const githubRequestTimeout = 30 * time.Second

// prReverter is the reconciler's revert-PR writer for policies whose
// revert mode is pull-request; only the GitHub forge has one (a local
// forge's merge carries a patch directory, not its removal).
func (a *app) prReverter() reconciler.Reverter {
	if a.cfg.Forge != forgeGitHub {
		return nil
	}
	return github.RevertPR{Git: a.repo, Forge: a.forge, Base: a.repo.Branch(), Logger: a.log}
}

// mountGitHubWebhook serves POST /webhooks/github when the forge is GitHub
// and a webhook secret is configured: pushes to the desired-state branch
// and merged PRs trigger a reconcile (the poll keeps running beside it, for
// deliveries that are lost). Twin runs are not wired into serve yet:
// pull_request and check_run events are acknowledged and ignored.
func (a *app) mountGitHubWebhook(srv *server.Server, trigger func(), twinRun server.TwinRunFunc) error {
	if a.cfg.Forge != forgeGitHub {
		return nil
	}
	g := a.cfg.GitHub
	sec, err := secret(g.WebhookSecret, g.WebhookSecretFile, "github webhook secret file")
	if err != nil {
		return err
	}
	if sec == "" {
		a.log.Warn("github webhook not served: set VZ_GITHUB_WEBHOOK_SECRET or github.webhookSecretFile; reconciling by polling only")
		return nil
	}
	h, err := server.NewGitHubWebhook(server.GitHubWebhookConfig{
		Secret: []byte(sec), Branch: a.cfg.Repo.Branch, Repo: g.Owner + "/" + g.Repo, AppID: g.App.ID,
		Reconcile: trigger, TwinRun: twinRun, Logger: a.log,
	})
	if err != nil {
		return err
	}
	srv.Handle("POST /webhooks/github", h)
	a.log.Info("github webhook served", "path", "/webhooks/github", "repo", g.Owner+"/"+g.Repo)
	return nil
}
