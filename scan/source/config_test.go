package source

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestConfigYAML decodes a `sources:` list as main does (known fields
// only), with secrets given every way.
func TestConfigYAML(t *testing.T) {
	const doc = `
sources:
  - name: wazuh-prod
    type: wazuh-api
    url: https://wazuh.example:55000
    username: vulnzero
    password: {env: WAZUH_PASSWORD}
    caFile: /etc/vulnzero/wazuh-ca.pem
    schedule: "0 */6 * * *"
    jitter: 5m
  - name: tenable
    type: tenable
    url: https://cloud.tenable.com
    accessKey: {file: /run/secrets/tenable-access}
    secretKey: {file: /run/secrets/tenable-secret}
    schedule: "@daily"
    states: [OPEN, REOPENED]
  - name: drops
    type: file
    path: /var/lib/vulnzero/drop
    schedule: "@every 5m"
`
	var c struct {
		Sources []Config `yaml:"sources"`
	}
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := ValidateAll(c.Sources); err != nil {
		t.Fatal(err)
	}
	w := c.Sources[0].WithDefaults()
	if w.Username != (Secret{Value: "vulnzero"}) || w.Password != (Secret{Env: "WAZUH_PASSWORD"}) || w.Jitter != 5*time.Minute ||
		w.PageSize != 500 || w.Timeout != DefaultTimeout || w.Retries != DefaultRetries {
		t.Errorf("wazuh config = %+v", w)
	}
	tn := c.Sources[1].WithDefaults()
	if tn.AccessKey.File != "/run/secrets/tenable-access" || strings.Join(tn.States, ",") != "OPEN,REOPENED" || tn.PageSize != 50 {
		t.Errorf("tenable config = %+v", tn)
	}
	if d := c.Sources[2].WithDefaults(); d.Settle != DefaultSettle || d.Path != "/var/lib/vulnzero/drop" {
		t.Errorf("file config = %+v", d)
	}
}

// TestSecretYAMLTypo: an unknown key in a secret mapping is an error with
// its line, not an empty secret.
func TestSecretYAMLTypo(t *testing.T) {
	var c Config
	err := yaml.Unmarshal([]byte("name: w\npassword:\n  evn: WAZUH_PASSWORD\n"), &c)
	if err == nil || !strings.Contains(err.Error(), `line 3: secret key "evn"`) {
		t.Errorf("typo: %v", err)
	}
}

// TestConfigValidate names each wrong field.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"empty", Config{}, []string{"name: required", "type: required"}},
		{"unknown type", Config{Name: "x", Type: "nessus-pro"}, []string{`type: "nessus-pro" is not one of`}},
		{"wazuh without url and creds", Config{Name: "w", Type: TypeWazuhAPI}, []string{"url: required", "username: required", "password: required"}},
		{"credentials in url", Config{Name: "w", Type: TypeWazuhIndexer, URL: "https://admin:pw@idx:9200", Username: Secret{Value: "a"}, Password: Secret{Value: "b"}},
			[]string{"url: \"https://REDACTED@idx:9200\" carries credentials"}},
		{"manager url", Config{Name: "w", Type: TypeWazuhIndexer, URL: "https://idx:9200", ManagerURL: "https://wui:pw@wazuh:55000", Username: Secret{Value: "a"}, Password: Secret{Value: "b"}},
			[]string{"managerURL: \"https://REDACTED@wazuh:55000\" carries credentials"}},
		{"manager url on the API", Config{Name: "w", Type: TypeWazuhAPI, URL: "https://wazuh:55000", ManagerURL: "https://wazuh:55000", Username: Secret{Value: "a"}, Password: Secret{Value: "b"}},
			[]string{"managerURL: only for type wazuh-indexer"}},
		{"ftp url", Config{Name: "q", Type: TypeQualys, URL: "ftp://qualys", Username: Secret{Value: "a"}, Password: Secret{Value: "b"}}, []string{"must be http:// or https://"}},
		{"tenable keys", Config{Name: "t", Type: TypeTenable, URL: "https://cloud.tenable.com", States: []string{"OPEN", "closed"}},
			[]string{"accessKey: required", "secretKey: required", `states: "closed"`}},
		{"file", Config{Name: "f", Type: TypeFile, URL: "https://x", Format: "excel"}, []string{"path: required", "url: not used", `format: "excel"`}},
		{"schedule", Config{Name: "f", Type: TypeFile, Path: "/d", Schedule: "every day"}, []string{`schedule: "every day"`}},
		{"two secret sources", Config{Name: "w", Type: TypeWazuhAPI, URL: "https://w", Username: Secret{Value: "a"}, Password: Secret{Env: "P", File: "/p"}},
			[]string{"password: set one of env, file or value"}},
		{"bad name", Config{Name: "my source", Type: TypeFile, Path: "/d"}, []string{"must not contain spaces"}},
		{"negatives", Config{Name: "f", Type: TypeFile, Path: "/d", Jitter: -time.Second, Retries: -1, MinBackoff: time.Minute, MaxBackoff: time.Second},
			[]string{"jitter: must not be negative", "retries: must not be negative", "maxBackoff: 1s is less than minBackoff 1m0s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			if err == nil {
				t.Fatalf("Validate(%+v) = nil", tc.cfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if err := ValidateAll([]Config{{Name: "a", Type: TypeFile, Path: "/a"}, {Name: "a", Type: TypeFile, Path: "/b"}}); err == nil ||
		!strings.Contains(err.Error(), `sources[1]: name "a" already used by sources[0]`) {
		t.Errorf("duplicate names: %v", err)
	}
}

// TestSecret: values resolve from the environment or a file and never
// print.
func TestSecret(t *testing.T) {
	env := func(k string) string { return map[string]string{"PW": "from-env"}[k] }
	if v, err := (Secret{Env: "PW"}).Resolve(env); err != nil || v != "from-env" {
		t.Errorf("env: %q, %v", v, err)
	}
	if _, err := (Secret{Env: "MISSING"}).Resolve(env); err == nil || !strings.Contains(err.Error(), "MISSING") {
		t.Errorf("unset env: %v", err)
	}
	p := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(p, []byte("from-file\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := (Secret{File: p}).Resolve(env); err != nil || v != "from-file" {
		t.Errorf("file: %q, %v", v, err)
	}
	if _, err := (Secret{File: p + ".nope"}).Resolve(env); err == nil || !strings.Contains(err.Error(), p+".nope") {
		t.Errorf("missing file: %v", err)
	}

	s := Secret{Value: "hunter2"}
	cfg := Config{Name: "x", Password: s}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "password", s, "cfg", cfg)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s, s), fmt.Sprintf("%+v %#v", cfg, cfg), logged.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@host:55000/path?x=1":     "https://REDACTED@host:55000/path?x=1",
		"https://host/p?apiKey=abc&page=2":        "https://host/p?apiKey=REDACTED&page=2",
		"https://host/p?id_min=5&truncation=1000": "https://host/p?id_min=5&truncation=1000",
		"postgres://u:p@db/vz":                    "postgres://REDACTED@db/vz",
		"://bad":                                  "(unparseable URL)",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
