package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"vulnzero.dev/vulnzero/scan/source"
)

// Config is VulnZero's whole configuration: one YAML file plus environment
// overrides, parsed once here and handed to constructors as typed values.
// Every field has a default, so no file at all runs the embedded defaults.
type Config struct {
	// DataDir holds local state: the SQLite database, clones, the local
	// forge's bare repository.
	DataDir   string          `yaml:"dataDir"`
	Database  DatabaseConfig  `yaml:"database"`
	Repo      RepoConfig      `yaml:"repo"`
	SSH       SSHConfig       `yaml:"ssh"`
	Server    ServerConfig    `yaml:"server"`
	Reconcile ReconcileConfig `yaml:"reconcile"`
	Twin      TwinConfig      `yaml:"twin"`
	Log       LogConfig       `yaml:"log"`
	// Forge is where patch PRs live: local (default) or github.
	Forge  string       `yaml:"forge"`
	GitHub GitHubConfig `yaml:"github"`
	// Sources are the scanners pulled on a schedule (scan/source).
	Sources []source.Config `yaml:"sources"`
	// Feeds are the EPSS and CISA KEV feeds that enrich scoring.
	Feeds source.FeedsConfig `yaml:"feeds"`
	// LLM is the generator asked for alternatives to quarantined patches.
	LLM LLMConfig `yaml:"llm"`
}

// DatabaseConfig picks the store: PostgreSQL when URL is set, else SQLite.
type DatabaseConfig struct {
	// URL is a PostgreSQL URL (postgres://…). Secret: never logged.
	URL string `yaml:"url"`
	// SQLitePath defaults to <dataDir>/vulnzero.db.
	SQLitePath string `yaml:"sqlitePath"`
}

// RepoConfig is the remediation repository.
type RepoConfig struct {
	// URL of the remote; empty = the local forge's bare repository at
	// <dataDir>/remediation.git, created on first start.
	URL    string `yaml:"url"`
	Branch string `yaml:"branch"`
	Author string `yaml:"author"`
	Email  string `yaml:"email"`
}

// SSHConfig is how the fleet is reached.
type SSHConfig struct {
	User           string        `yaml:"user"`
	KeyFile        string        `yaml:"keyFile"`
	KnownHostsFile string        `yaml:"knownHostsFile"`
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
	MaxParallel    int           `yaml:"maxParallel"`
}

// ServerConfig is the HTTP server (API, webhooks, dashboard, metrics).
type ServerConfig struct {
	Listen string `yaml:"listen"`
}

// ReconcileConfig is the reconciler's poll loop.
type ReconcileConfig struct {
	Interval time.Duration `yaml:"interval"`
	// LeaseTTL bounds how long a standby replica waits to take over from a
	// leader cut off from PostgreSQL (a dead leader is replaced within a
	// fifth of it); lease.DefaultTTL when zero. Unused with SQLite.
	LeaseTTL time.Duration `yaml:"leaseTTL"`
	// WebhookURL receives a JSON POST per rollout event (a stage failed,
	// rolled back, aborted, removed). Secret — chat webhook URLs hold a
	// token: prefer VZ_NOTIFY_WEBHOOK_URL. Never logged.
	WebhookURL string `yaml:"webhookURL"`
	// WebhookFormat is json (default) or slack ({"text": …}).
	WebhookFormat string `yaml:"webhookFormat"`
}

// LogConfig sets slog's level and format.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug|info|warn|error
	Format string `yaml:"format"` // text|json
}

// defaultConfig is what runs with no file and no environment.
func defaultConfig() Config {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return Config{
		DataDir:   filepath.Join(home, ".vulnzero"),
		Repo:      RepoConfig{Branch: "main", Author: "VulnZero", Email: "vulnzero@localhost"},
		SSH:       SSHConfig{User: "root", ConnectTimeout: 10 * time.Second, MaxParallel: 50},
		Server:    ServerConfig{Listen: "127.0.0.1:8080"},
		Reconcile: ReconcileConfig{Interval: time.Minute},
		Twin:      defaultTwinConfig(),
		Log:       LogConfig{Level: "info", Format: "text"},
	}
}

// envOverrides maps environment variables onto config fields. Environment
// wins over the file, so a secret can stay out of the file.
var envOverrides = []struct {
	name string
	set  func(c *Config, v string) error
}{
	{"VZ_DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"VZ_DATABASE_URL", func(c *Config, v string) error { c.Database.URL = v; return nil }},
	{"VZ_REPO_URL", func(c *Config, v string) error { c.Repo.URL = v; return nil }},
	{"VZ_REPO_BRANCH", func(c *Config, v string) error { c.Repo.Branch = v; return nil }},
	{"VZ_SSH_USER", func(c *Config, v string) error { c.SSH.User = v; return nil }},
	{"VZ_SSH_KEY_FILE", func(c *Config, v string) error { c.SSH.KeyFile = v; return nil }},
	{"VZ_SSH_KNOWN_HOSTS", func(c *Config, v string) error { c.SSH.KnownHostsFile = v; return nil }},
	{"VZ_SSH_MAX_PARALLEL", func(c *Config, v string) (err error) { c.SSH.MaxParallel, err = strconv.Atoi(v); return err }},
	{"VZ_LISTEN", func(c *Config, v string) error { c.Server.Listen = v; return nil }},
	{"VZ_TWIN_PROVISIONER", func(c *Config, v string) error { c.Twin.Provisioner = v; return nil }},
	{"VZ_RECONCILE_INTERVAL", func(c *Config, v string) (err error) { c.Reconcile.Interval, err = time.ParseDuration(v); return err }},
	{"VZ_NOTIFY_WEBHOOK_URL", func(c *Config, v string) error { c.Reconcile.WebhookURL = v; return nil }},
	{"VZ_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"VZ_LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"VZ_FORGE", func(c *Config, v string) error { c.Forge = v; return nil }},
	{"VZ_GITHUB_TOKEN", func(c *Config, v string) error { c.GitHub.Token = v; return nil }},
	{"VZ_GITHUB_WEBHOOK_SECRET", func(c *Config, v string) error { c.GitHub.WebhookSecret = v; return nil }},
}

// loadConfig reads the file at path (none when empty), applies the
// environment through getenv, fills defaults and validates.
func loadConfig(path string, getenv func(string) string) (Config, error) {
	c := defaultConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	for _, o := range envOverrides {
		if v := getenv(o.name); v != "" {
			if err := o.set(&c, v); err != nil {
				return Config{}, fmt.Errorf("config: environment %s=%q: %w", o.name, v, err)
			}
		}
	}
	c.LLM = c.LLM.fromEnv(getenv)
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the config and says which field is wrong and why.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("dataDir", "required")
	}
	if u := c.Database.URL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		bad("database.url", "must be a postgres:// URL")
	}
	if c.Repo.Branch == "" {
		bad("repo.branch", "required")
	}
	if c.SSH.MaxParallel < 1 {
		bad("ssh.maxParallel", "must be at least 1, got %d", c.SSH.MaxParallel)
	}
	if c.SSH.ConnectTimeout <= 0 {
		bad("ssh.connectTimeout", "must be positive")
	}
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		bad("server.listen", "%q is not host:port", c.Server.Listen)
	}
	if c.Reconcile.Interval < time.Second {
		bad("reconcile.interval", "must be at least 1s, got %s", c.Reconcile.Interval)
	}
	if u := c.Reconcile.WebhookURL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		bad("reconcile.webhookURL", "must be an http(s) URL")
	}
	switch c.Reconcile.WebhookFormat {
	case "", "json", "slack":
	default:
		bad("reconcile.webhookFormat", "%q is not json or slack", c.Reconcile.WebhookFormat)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not text or json", c.Log.Format)
	}
	if err := source.ValidateAll(c.Sources); err != nil {
		errs = append(errs, fmt.Errorf("config: %w", err))
	}
	if err := c.Feeds.WithDefaults().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("config: %w", err))
	}
	if err := c.validateGitHub(); err != nil {
		errs = append(errs, err)
	}
	if err := c.LLM.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Twin.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sqlitePath is where the embedded database lives.
func (c Config) sqlitePath() string {
	if c.Database.SQLitePath != "" {
		return c.Database.SQLitePath
	}
	return filepath.Join(c.DataDir, "vulnzero.db")
}

// repoURL is the remediation repository's remote.
func (c Config) repoURL() string {
	if c.Repo.URL != "" {
		return c.Repo.URL
	}
	return filepath.Join(c.DataDir, "remediation.git")
}
