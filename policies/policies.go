// Package policies loads, validates and evaluates the policy documents of a
// remediation repository (policies/*.yaml) and its other YAML files
// (patches/<id>/patch.yaml, inventory/hosts.yaml).
//
// Every document is decoded strictly — unknown fields are errors — and every
// error is a *vulnzero.PositionError naming the file and line, so `vulnzero
// validate` can print "policies/rollout.yaml:7: spec.stages: …". Built-in
// defaults are embedded YAML documents parsed by the same code, so the
// defaults and a user's files can never disagree about the schema.
package policies

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"vulnzero.dev/vulnzero"
)

// Policy kinds.
const (
	KindRemediation = "RemediationPolicy"
	KindRollout     = "RolloutPolicy"
	KindGuardrail   = "GuardrailPolicy"
	KindTwin        = "TwinPolicy"
)

// Strategies a RolloutPolicy may name.
const (
	StrategyAllAtOnce = "all-at-once"
	StrategyCanary    = "canary"
	StrategyRolling   = "rolling"
	StrategyBlueGreen = "blue-green"
)

// Revert modes: how an automatic rollback is written back to git.
const (
	RevertPush        = "push"         // commit the revert straight onto main
	RevertPullRequest = "pull-request" // open a revert PR for a person to merge
)

// document is one policy file: the shared header and a kind's spec.
type document[T any] struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Name       string `yaml:"name"`
	Spec       T      `yaml:"spec"`
}

// RemediationPolicy decides which findings become patch PRs.
type RemediationPolicy struct {
	Name string `yaml:"-"`
	// MinSeverity: findings below it are not proposed.
	MinSeverity vulnzero.Severity `yaml:"minSeverity"`
	// MaxOpenPRs bounds open patch PRs.
	MaxOpenPRs int `yaml:"maxOpenPRs"`
	// AutoMerge merges a PR without a person when every listed condition holds.
	AutoMerge AutoMerge `yaml:"autoMerge"`
	// Exceptions are accepted risks: matching findings are not proposed until
	// the exception expires.
	Exceptions []Exception `yaml:"exceptions"`
}

// AutoMerge conditions.
type AutoMerge struct {
	Enabled bool `yaml:"enabled"`
	// Generators that may be auto-merged (e.g. ["rules"]).
	Generators []string `yaml:"generators"`
	// RequireTwin: every twin status must be success.
	RequireTwin bool `yaml:"requireTwin"`
}

// Exception is an accepted risk for a CVE (optionally on one host).
type Exception struct {
	CVE     string    `yaml:"cve"`
	Host    string    `yaml:"host"`
	Reason  string    `yaml:"reason"`
	Expires time.Time `yaml:"expires"`
}

// RolloutPolicy says how a patch reaches its hosts.
type RolloutPolicy struct {
	Name string `yaml:"-"`
	// Selector picks the patches' target hosts it governs (labels); empty
	// matches every host.
	Selector    map[string]string    `yaml:"selector"`
	Strategy    string               `yaml:"strategy"`
	Stages      []vulnzero.StageSpec `yaml:"stages"`
	MaxParallel int                  `yaml:"maxParallel"`
	// Revert is how an automatic rollback is written back: push or pull-request.
	Revert string `yaml:"revert"`

	// BatchSize: rolling, hosts per batch ("5" or "20%").
	BatchSize string `yaml:"batchSize"`
	// MaxFailures is the failure budget of stages that set none.
	MaxFailures string `yaml:"maxFailures"`
	// Soak after each stage that sets none (rolling: after each batch;
	// blue-green: after the switch, while the old group is the rollback
	// target).
	Soak time.Duration `yaml:"soak"`
	// Check is the stage-level check of stages that set none.
	Check                 *vulnzero.StageCheck `yaml:"check"`
	ConsecutiveErrorLimit int                  `yaml:"consecutiveErrorLimit"`
	CheckInterval         time.Duration        `yaml:"checkInterval"`
	// HealthChecks run on every host after the patch's own.
	HealthChecks []vulnzero.HealthCheck `yaml:"healthChecks"`
	BlueGreen    BlueGreen              `yaml:"blueGreen"`
	// Windows are maintenance windows; see Windows.
	Windows   []Window  `yaml:"windows"`
	Emergency Emergency `yaml:"emergency"`
	Reboot    Reboot    `yaml:"reboot"`
}

// GuardrailPolicy bounds what a patch script may do.
type GuardrailPolicy struct {
	Name            string   `yaml:"-"`
	DeniedCommands  []string `yaml:"deniedCommands"`
	RequiredScripts []string `yaml:"requiredScripts"`
	MaxScriptBytes  int      `yaml:"maxScriptBytes"`
}

// TwinPolicy says how to build a patch's twin.
type TwinPolicy struct {
	Name string `yaml:"-"`
	// Images maps an OS ("debian 12") to a twin image.
	Images map[string]string `yaml:"images"`
	// Services to start in the twin before the rehearsal.
	Services     []string               `yaml:"services"`
	HealthChecks []vulnzero.HealthCheck `yaml:"healthChecks"`
}

// Set is every policy in force: a repository's documents over the defaults.
type Set struct {
	Remediation RemediationPolicy
	Rollouts    []RolloutPolicy // most specific selector first; the last matches everything
	Guardrail   GuardrailPolicy
	Twin        TwinPolicy
}

//go:embed defaults/*.yaml
var defaultFS embed.FS

// Defaults returns the built-in policies.
func Defaults() Set {
	files := map[string][]byte{}
	err := fs.WalkDir(defaultFS, "defaults", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := defaultFS.ReadFile(p)
		files[p] = b
		return err
	})
	if err != nil {
		panic("policies: embedded defaults: " + err.Error())
	}
	s, err := parse(Set{}, files)
	if err != nil {
		panic("policies: embedded defaults do not validate: " + err.Error())
	}
	return s
}

// Parse reads policy documents (file name → content) over the defaults: a
// RemediationPolicy, GuardrailPolicy or TwinPolicy replaces the default one;
// RolloutPolicies are added before the default catch-all.
func Parse(files map[string][]byte) (Set, error) {
	return parse(Defaults(), files)
}

func parse(base Set, files map[string][]byte) (Set, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	s := base
	var user []RolloutPolicy
	var errs []error
	seen := map[string]string{}
	for _, file := range names {
		data := files[file]
		var kind struct {
			Kind string `yaml:"kind"`
		}
		_ = yaml.Unmarshal(data, &kind) // errors are reported by the strict decode below
		var err error
		switch kind.Kind {
		case KindRemediation:
			err = decodeDoc(file, data, seen, func(name string, p RemediationPolicy, root *yaml.Node) error {
				p.Name = name
				s.Remediation = p
				return p.validate(file, root)
			})
		case KindRollout:
			err = decodeDoc(file, data, seen, func(name string, p RolloutPolicy, root *yaml.Node) error {
				p.Name = name
				user = append(user, p)
				return p.validate(file, root)
			})
		case KindGuardrail:
			err = decodeDoc(file, data, seen, func(name string, p GuardrailPolicy, root *yaml.Node) error {
				p.Name = name
				s.Guardrail = p
				return p.validate(file, root)
			})
		case KindTwin:
			err = decodeDoc(file, data, seen, func(name string, p TwinPolicy, root *yaml.Node) error {
				p.Name = name
				s.Twin = p
				return nil
			})
		default:
			var root *yaml.Node
			if root, err = decodeStrict(file, data, &yaml.Node{}); err == nil {
				err = fieldErr(file, root, "kind", "%q is not one of %s, %s, %s, %s", kind.Kind, KindRemediation, KindRollout, KindGuardrail, KindTwin)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Set{}, err
	}
	// More labels in the selector = more specific = considered first; the
	// defaults (empty selector) stay last.
	sort.SliceStable(user, func(i, j int) bool { return len(user[i].Selector) > len(user[j].Selector) })
	s.Rollouts = append(user, base.Rollouts...)
	return s, nil
}

// decodeDoc decodes one policy document of spec type T strictly (so line
// numbers are the file's own), checks the header and hands the spec to use.
// seen maps kind/name to the file that defined it, to refuse duplicates.
func decodeDoc[T any](file string, data []byte, seen map[string]string, use func(name string, spec T, root *yaml.Node) error) error {
	var d document[T]
	root, err := decodeStrict(file, data, &d)
	if err != nil {
		return err
	}
	if d.APIVersion != vulnzero.APIVersion {
		return fieldErr(file, root, "apiVersion", "must be %q, got %q", vulnzero.APIVersion, d.APIVersion)
	}
	if d.Name == "" {
		return fieldErr(file, root, "name", "required")
	}
	id := d.Kind + "/" + d.Name
	if prev, dup := seen[id]; dup && prev != file {
		return fieldErr(file, root, "name", "%s %q is also defined in %s", d.Kind, d.Name, prev)
	}
	seen[id] = file
	return use(d.Name, d.Spec, root)
}

func (p RemediationPolicy) validate(file string, root *yaml.Node) error {
	if p.MaxOpenPRs < 0 {
		return fieldErr(file, root, "spec.maxOpenPRs", "must not be negative")
	}
	for i, e := range p.Exceptions {
		if e.CVE == "" || e.Reason == "" || e.Expires.IsZero() {
			return fieldErr(file, root, "spec.exceptions", "entry %d needs cve, reason and expires (exceptions always expire)", i+1)
		}
	}
	return nil
}

func (p GuardrailPolicy) validate(file string, root *yaml.Node) error {
	if p.MaxScriptBytes < 0 {
		return fieldErr(file, root, "spec.maxScriptBytes", "must not be negative")
	}
	for _, s := range p.RequiredScripts {
		if path.Base(s) != s || !strings.HasSuffix(s, ".sh") {
			return fieldErr(file, root, "spec.requiredScripts", "%q must be a script file name like apply.sh", s)
		}
	}
	return nil
}

var amountRE = regexp.MustCompile(`^(\d+)(%?)$`)

// ParseAmount reads "3" (a count) or "25%" (a share of 0–100).
func ParseAmount(s string) (n int, percent bool, err error) {
	m := amountRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false, fmt.Errorf("%q is not a count like 3 or a share like 25%%", s)
	}
	n, _ = strconv.Atoi(m[1])
	if m[2] == "%" && n > 100 {
		return 0, false, fmt.Errorf("%q is more than 100%%", s)
	}
	return n, m[2] == "%", nil
}

func selectsAll(sel map[string]string, hosts []vulnzero.Host) bool {
	for _, h := range hosts {
		for k, v := range sel {
			if h.Labels[k] != v {
				return false
			}
		}
	}
	return true
}
