package source

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"vulnzero.dev/vulnzero/scan"
)

// Type is the kind of a source: which API it pulls from, or a file drop.
type Type string

// Source types.
const (
	TypeWazuhAPI     Type = "wazuh-api"     // Wazuh manager API ≤ 4.7: GET /vulnerability/{agent}
	TypeWazuhIndexer Type = "wazuh-indexer" // Wazuh 4.8+ indexer: wazuh-states-vulnerabilities-*
	TypeQualys       Type = "qualys"        // Qualys VMDR host detections + KnowledgeBase
	TypeTenable      Type = "tenable"       // Tenable VM vulnerability export
	TypeFile         Type = "file"          // reports dropped into a directory
)

// Types lists the source types a Config may name.
func Types() []Type {
	return []Type{TypeWazuhAPI, TypeWazuhIndexer, TypeQualys, TypeTenable, TypeFile}
}

// Config is one configured source, as written under `sources:` in the
// configuration file. Zero fields take the defaults of WithDefaults.
//
// Credentials are Secrets: named by environment variable or file (or, for
// tests and throwaway setups, inline). They are resolved at each run, so a
// rotated secret file is picked up without a restart, and never logged.
type Config struct {
	// Name identifies the source: it is recorded as the findings' Source,
	// so a complete pull closes only what this source reported before.
	Name string `yaml:"name"`
	Type Type   `yaml:"type"`
	// URL is the API's base URL, e.g. https://wazuh.example:55000,
	// https://indexer.example:9200, https://qualysapi.qg2.apps.qualys.com,
	// https://cloud.tenable.com. It must not carry credentials.
	URL string `yaml:"url"`
	// Username and Password authenticate to Wazuh (API and indexer) and
	// Qualys (HTTP basic).
	Username Secret `yaml:"username"`
	Password Secret `yaml:"password"`
	// AccessKey and SecretKey authenticate to Tenable (X-ApiKeys).
	AccessKey Secret `yaml:"accessKey"`
	SecretKey Secret `yaml:"secretKey"`
	// CAFile is a PEM bundle trusted for the API's TLS certificate, for
	// self-signed Wazuh managers and indexers. Empty: the system roots.
	CAFile string `yaml:"caFile"`

	// Schedule is a cron spec (5 fields, or @every 6h, @daily, …; a
	// CRON_TZ= prefix sets the zone, UTC otherwise). Empty: the source runs
	// only on demand (`vulnzero scan run NAME`).
	Schedule string `yaml:"schedule"`
	// Jitter delays each scheduled run by a random amount up to this much,
	// so sources sharing a schedule do not hit their APIs at one instant.
	Jitter time.Duration `yaml:"jitter"`
	// MaxRunTime bounds one run. A run recorded as running for longer than
	// this is taken to be dead (its process stopped) and no longer blocks
	// the next one.
	MaxRunTime time.Duration `yaml:"maxRunTime"`

	// Timeout bounds each HTTP call, body included.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a call is retried after a timeout, a
	// network error, a 5xx or a rate-limit answer, with exponential backoff
	// and jitter between MinBackoff and MaxBackoff (or the wait the server
	// asks for, up to MaxWait). Zero takes the default.
	Retries    int           `yaml:"retries"`
	MinBackoff time.Duration `yaml:"minBackoff"`
	MaxBackoff time.Duration `yaml:"maxBackoff"`
	MaxWait    time.Duration `yaml:"maxWait"`
	// PageSize is the page length asked of the API: Wazuh API limit,
	// indexer size, Qualys truncation_limit (hosts per page), Tenable
	// num_assets per chunk.
	PageSize int `yaml:"pageSize"`
	// Partial says a pull is not a complete scan of the hosts it covers, so
	// findings it no longer reports stay open. By default a pull is
	// complete and they are marked fixed.
	Partial bool `yaml:"partial"`

	// Index is the Wazuh indexer index pattern.
	Index string `yaml:"index"`
	// ManagerURL is the Wazuh manager API (https://wazuh.example:55000) of
	// a wazuh-indexer source, read for the list of agents: the indexer
	// holds documents only for vulnerabilities, so an agent whose last one
	// was fixed vanishes from it, and only the agent list says it was
	// scanned and is clean. Without it, such an agent's findings stay open
	// (a warning says so at each run). ManagerUsername and ManagerPassword
	// authenticate to it; unset, Username and Password do.
	ManagerURL      string `yaml:"managerURL"`
	ManagerUsername Secret `yaml:"managerUsername"`
	ManagerPassword Secret `yaml:"managerPassword"`
	// PollInterval is how often a Tenable export's status is polled.
	PollInterval time.Duration `yaml:"pollInterval"`
	// States are the Tenable finding states exported. FIXED is included by
	// default so a host whose findings are all fixed is still covered.
	States []string `yaml:"states"`

	// Path is the drop directory of a file source. Files that appear in it
	// are imported one by one (oldest first) and moved to Path/done; a file
	// that fails stays where it is with NAME.error beside it, and is tried
	// again once it changes.
	Path string `yaml:"path"`
	// Format of dropped files; empty: detected by content.
	Format string `yaml:"format"`
	// Settle is how long a dropped file must be unmodified before it is
	// read, so a file still being copied in is not imported half-written.
	Settle time.Duration `yaml:"settle"`
}

// Defaults of Config fields left zero.
const (
	DefaultJitter       = 30 * time.Second
	DefaultMaxRunTime   = 2 * time.Hour
	DefaultTimeout      = 2 * time.Minute
	DefaultRetries      = 5
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Minute
	DefaultMaxWait      = 15 * time.Minute
	DefaultWazuhIndex   = "wazuh-states-vulnerabilities-*"
	DefaultPollInterval = 10 * time.Second
	DefaultSettle       = 5 * time.Second
)

// defaultPageSize per type: the largest page each API serves comfortably.
var defaultPageSize = map[Type]int{
	TypeWazuhAPI:     500,
	TypeWazuhIndexer: 1000,
	TypeQualys:       1000,
	TypeTenable:      50,
}

// defaultTenableStates are the states of the recorded export's filter.
var defaultTenableStates = []string{"OPEN", "REOPENED", "FIXED"}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.Jitter, DefaultJitter)
	set(&c.MaxRunTime, DefaultMaxRunTime)
	set(&c.Timeout, DefaultTimeout)
	set(&c.MinBackoff, DefaultMinBackoff)
	set(&c.MaxBackoff, DefaultMaxBackoff)
	set(&c.MaxWait, DefaultMaxWait)
	set(&c.PollInterval, DefaultPollInterval)
	set(&c.Settle, DefaultSettle)
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.PageSize == 0 {
		c.PageSize = defaultPageSize[c.Type]
	}
	if c.Index == "" && c.Type == TypeWazuhIndexer {
		c.Index = DefaultWazuhIndex
	}
	if len(c.States) == 0 && c.Type == TypeTenable {
		c.States = append([]string(nil), defaultTenableStates...)
	}
	return c
}

// Validate checks a config (after WithDefaults) and names each wrong field
// and why. It does not resolve secrets: an unset environment variable is
// reported when the source runs.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Name == "" {
		bad("name", "required")
	} else if strings.ContainsAny(c.Name, " \t\n/") {
		bad("name", "%q must not contain spaces or slashes", c.Name)
	}
	if c.ManagerURL != "" {
		if c.Type != TypeWazuhIndexer {
			bad("managerURL", "only for type %s", TypeWazuhIndexer)
		} else {
			validateURL(bad, "managerURL", c.ManagerURL, c.Type)
		}
	}
	switch c.Type {
	case TypeWazuhAPI, TypeWazuhIndexer, TypeQualys:
		c.validateURL(bad)
		if !c.Username.IsSet() {
			bad("username", "required for type %s", c.Type)
		}
		if !c.Password.IsSet() {
			bad("password", "required for type %s", c.Type)
		}
	case TypeTenable:
		c.validateURL(bad)
		if !c.AccessKey.IsSet() {
			bad("accessKey", "required for type %s", c.Type)
		}
		if !c.SecretKey.IsSet() {
			bad("secretKey", "required for type %s", c.Type)
		}
		for _, s := range c.States {
			switch s {
			case "OPEN", "REOPENED", "FIXED":
			default:
				bad("states", "%q is not OPEN, REOPENED or FIXED", s)
			}
		}
	case TypeFile:
		if c.Path == "" {
			bad("path", "required for type file")
		}
		if c.URL != "" {
			bad("url", "not used by type file (set path)")
		}
		if c.Format != "" {
			found := false
			for _, f := range scan.Formats() {
				found = found || string(f) == c.Format
			}
			if !found {
				bad("format", "%q is not one of %v", c.Format, scan.Formats())
			}
		}
	case "":
		bad("type", "required (one of %v)", Types())
	default:
		bad("type", "%q is not one of %v", c.Type, Types())
	}
	if c.Schedule != "" {
		if _, err := cron.ParseStandard(c.Schedule); err != nil {
			bad("schedule", "%q: %v", c.Schedule, err)
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"timeout", c.Timeout}, {"maxRunTime", c.MaxRunTime}, {"minBackoff", c.MinBackoff}, {"maxBackoff", c.MaxBackoff},
		{"maxWait", c.MaxWait}, {"pollInterval", c.PollInterval}} {
		if d.v <= 0 {
			bad(d.field, "must be positive, got %s", d.v)
		}
	}
	if c.Jitter < 0 {
		bad("jitter", "must not be negative, got %s", c.Jitter)
	}
	if c.Settle < 0 {
		bad("settle", "must not be negative, got %s", c.Settle)
	}
	if c.MaxBackoff < c.MinBackoff {
		bad("maxBackoff", "%s is less than minBackoff %s", c.MaxBackoff, c.MinBackoff)
	}
	if c.Retries < 0 {
		bad("retries", "must not be negative, got %d", c.Retries)
	}
	if c.Type != TypeFile && c.PageSize < 1 {
		bad("pageSize", "must be at least 1, got %d", c.PageSize)
	}
	for _, s := range []struct {
		field string
		s     Secret
	}{{"username", c.Username}, {"password", c.Password}, {"accessKey", c.AccessKey}, {"secretKey", c.SecretKey}} {
		if err := s.s.validate(); err != nil {
			bad(s.field, "%v", err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		name := c.Name
		if name == "" {
			name = "(unnamed)"
		}
		return fmt.Errorf("source %s: %w", name, err)
	}
	return nil
}

func (c Config) validateURL(bad func(field, format string, args ...any)) {
	validateURL(bad, "url", c.URL, c.Type)
}

func validateURL(bad func(field, format string, args ...any), field, raw string, typ Type) {
	if raw == "" {
		bad(field, "required for type %s", typ)
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		bad(field, "%q does not parse", RedactURL(raw))
	case u.Scheme != "https" && u.Scheme != "http":
		bad(field, "%q must be http:// or https://", RedactURL(raw))
	case u.Host == "":
		bad(field, "%q has no host", RedactURL(raw))
	case u.User != nil:
		bad(field, "%q carries credentials; use username/password (from env or file) instead", RedactURL(raw))
	}
}

// ValidateAll validates every config (after WithDefaults) and checks that
// names are unique.
func ValidateAll(cs []Config) error {
	var errs []error
	seen := map[string]int{}
	for i, c := range cs {
		if err := c.WithDefaults().Validate(); err != nil {
			errs = append(errs, fmt.Errorf("sources[%d]: %w", i, err))
		}
		if j, dup := seen[c.Name]; dup && c.Name != "" {
			errs = append(errs, fmt.Errorf("sources[%d]: name %q already used by sources[%d]", i, c.Name, j))
		}
		seen[c.Name] = i
	}
	return errors.Join(errs...)
}

// Secret is a credential given by environment variable, by file, or inline.
// Its value never appears in output: fmt and slog print only where it comes
// from.
//
// In YAML it is a mapping ({env: WAZUH_PASSWORD} or {file: /run/secrets/x})
// or a plain string, which is an inline value.
type Secret struct {
	Env   string `yaml:"env"`
	File  string `yaml:"file"`
	Value string `yaml:"value"`
}

// IsSet reports whether the secret names any source.
func (s Secret) IsSet() bool { return s.Env != "" || s.File != "" || s.Value != "" }

func (s Secret) validate() error {
	n := 0
	for _, v := range []string{s.Env, s.File, s.Value} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("set one of env, file or value, not %d", n)
	}
	return nil
}

// Resolve returns the secret's value. getenv is passed in (main passes
// os.Getenv) because packages do not read the environment themselves. A
// file's trailing newline is dropped. Errors name the variable or file,
// never a value.
func (s Secret) Resolve(getenv func(string) string) (string, error) {
	switch {
	case s.Env != "":
		if getenv == nil {
			return "", fmt.Errorf("secret from environment %s: no environment given", s.Env)
		}
		v := getenv(s.Env)
		if v == "" {
			return "", fmt.Errorf("secret from environment %s: not set", s.Env)
		}
		return v, nil
	case s.File != "":
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret from file: %w", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret from file %s: empty", s.File)
		}
		return v, nil
	case s.Value != "":
		return s.Value, nil
	}
	return "", errors.New("secret not configured")
}

// String says where the secret comes from, never its value.
func (s Secret) String() string {
	switch {
	case s.Env != "":
		return "env:" + s.Env
	case s.File != "":
		return "file:" + s.File
	case s.Value != "":
		return "inline:REDACTED"
	}
	return "unset"
}

// GoString keeps %#v (and so %+v of a struct holding a Secret) from
// printing the value.
func (s Secret) GoString() string { return "Secret(" + s.String() + ")" }

// Format prints String for every verb, so no formatting path reaches Value.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// UnmarshalYAML accepts a plain string as an inline value, or a mapping.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = Secret{Value: n.Value}
		return nil
	}
	if n.Kind == yaml.MappingNode {
		// n.Decode does not inherit the file decoder's KnownFields: check
		// the keys here, so a typo is not a silently empty secret.
		for i := 0; i+1 < len(n.Content); i += 2 {
			switch k := n.Content[i]; k.Value {
			case "env", "file", "value":
			default:
				return fmt.Errorf("line %d: secret key %q is not env, file or value", k.Line, k.Value)
			}
		}
	}
	type plain Secret // no methods: decode the mapping field by field
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Secret(p)
	return nil
}

// RedactURL strips credentials from a URL before it reaches an error, a log
// or the run history: the user info, and the values of query parameters
// whose names suggest a secret. Unparseable input is replaced whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			lk := strings.ToLower(k)
			for _, w := range []string{"pass", "secret", "token", "key", "auth", "sig", "credential"} {
				if strings.Contains(lk, w) {
					q[k] = []string{"REDACTED"}
					changed = true
					break
				}
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
