// Package vulnzero holds VulnZero's vocabulary: the domain types every other
// package speaks (hosts, findings, patches, revisions, rollouts, the ledger)
// and the error kinds checked with errors.Is at the edges.
//
// It imports only the standard library, so adapters (store, forge, fleet, …)
// can depend on it without depending on each other.
package vulnzero

import (
	"errors"
	"fmt"
	"time"
)

// Error kinds. Wrap them with context ("apply %s on %s: %w") and test with
// errors.Is.
var (
	// ErrNotFound: the object asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the write would contradict state already recorded.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: input failed validation; the message says where and why.
	ErrInvalid = errors.New("invalid")
	// ErrUnreachable: a host or remote could not be reached in time.
	ErrUnreachable = errors.New("unreachable")
	// ErrHostKey: a host presented an unknown or changed SSH host key.
	ErrHostKey = errors.New("host key rejected")
)

// PositionError is bad input with the place it was found: a file and a line
// (and column when known), or an element path for structured formats.
type PositionError struct {
	File   string // file name or source name
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Path   string // element path (e.g. "Results[2].Vulnerabilities[0]"); optional
	Err    error
}

func (e *PositionError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
		if e.Column > 0 {
			loc = fmt.Sprintf("%s:%d", loc, e.Column)
		}
	}
	if e.Path != "" {
		loc += " (" + e.Path + ")"
	}
	return loc + ": " + e.Err.Error()
}

func (e *PositionError) Unwrap() error { return e.Err }

// Is makes every PositionError match ErrInvalid.
func (e *PositionError) Is(target error) bool { return target == ErrInvalid }

// Severity is a normalized vulnerability severity. The zero value is unknown.
type Severity int

const (
	SeverityUnknown Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"unknown", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "unknown"
	}
	return severityNames[s]
}

// ParseSeverity maps a severity name (any case) to a Severity.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if equalFold(n, s) {
			return Severity(i), nil
		}
	}
	return SeverityUnknown, fmt.Errorf("severity %q: %w", s, ErrInvalid)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Host is one machine of the fleet, as declared in inventory/hosts.yaml.
type Host struct {
	Name    string            `yaml:"name" json:"name"`
	Address string            `yaml:"address" json:"address"`
	Port    int               `yaml:"port,omitempty" json:"port,omitempty"` // 22 when zero
	User    string            `yaml:"user,omitempty" json:"user,omitempty"`
	Labels  map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// Inventory is the desired fleet: hosts and named groups of host names.
type Inventory struct {
	Hosts  []Host              `yaml:"hosts" json:"hosts"`
	Groups map[string][]string `yaml:"groups,omitempty" json:"groups,omitempty"`
}

// Host returns the host with the given name.
func (inv Inventory) Host(name string) (Host, bool) {
	for _, h := range inv.Hosts {
		if h.Name == name {
			return h, true
		}
	}
	return Host{}, false
}

// FindingStatus is where a finding is in its life.
type FindingStatus string

const (
	FindingOpen  FindingStatus = "open"
	FindingFixed FindingStatus = "fixed"
)

// Finding is one vulnerable package on one host, normalized from any scanner.
// Its identity is (Host, Package, CVE): see Key.
type Finding struct {
	Source     string        `json:"source"`  // configured source name (or file name)
	Scanner    string        `json:"scanner"` // format: trivy, csv, …
	Host       string        `json:"host"`
	OS         string        `json:"os,omitempty"`        // e.g. "debian 12"
	OSFamily   string        `json:"os_family,omitempty"` // debian, rhel, suse, alpine
	Package    string        `json:"package"`
	Ecosystem  string        `json:"ecosystem,omitempty"` // deb, rpm, apk, npm, …
	Installed  string        `json:"installed"`
	Fixed      string        `json:"fixed,omitempty"` // empty when no fix is known
	CVE        string        `json:"cve"`             // the CVE (or advisory id) this finding is about
	Title      string        `json:"title,omitempty"`
	Severity   Severity      `json:"severity"`
	CVSS       float64       `json:"cvss,omitempty"`
	CVSSVector string        `json:"cvss_vector,omitempty"`
	RuleID     string        `json:"rule_id,omitempty"` // scanner's own rule/plugin/QID id
	FirstSeen  time.Time     `json:"first_seen"`
	LastSeen   time.Time     `json:"last_seen"`
	Status     FindingStatus `json:"status"`
	FixedAt    time.Time     `json:"fixed_at,omitzero"`
}

// Key is the dedupe key of a finding: one row per (host, package, CVE).
func (f Finding) Key() string { return f.Host + "\x00" + f.Package + "\x00" + f.CVE }

// Import describes one scan import: everything read from one file or one
// pull of a source. A complete import replaces what that source said before
// about the hosts it covers: findings it no longer reports become fixed.
type Import struct {
	ID       int64     `json:"id"`
	Source   string    `json:"source"`
	Scanner  string    `json:"scanner"`
	File     string    `json:"file,omitempty"`
	Complete bool      `json:"complete"`
	At       time.Time `json:"at"`
}

// ImportResult counts what an import changed.
type ImportResult struct {
	ImportID int64    `json:"import_id"`
	Read     int      `json:"read"`    // findings read from the input
	New      int      `json:"new"`     // keys not stored before (or reopened)
	Updated  int      `json:"updated"` // keys already open, last_seen moved
	Fixed    int      `json:"fixed"`   // open keys this import no longer reports
	Hosts    []string `json:"hosts"`   // hosts the import covered
}

// PackageManager names a host package manager.
type PackageManager string

const (
	APT    PackageManager = "apt"
	DNF    PackageManager = "dnf"
	YUM    PackageManager = "yum"
	Zypper PackageManager = "zypper"
	APK    PackageManager = "apk"
)

// Valid reports whether m is a known package manager.
func (m PackageManager) Valid() bool {
	switch m {
	case APT, DNF, YUM, Zypper, APK:
		return true
	}
	return false
}

// Reboot says what a patch does about reboots.
type Reboot string

const (
	RebootNever      Reboot = "never"
	RebootIfRequired Reboot = "if-required"
	RebootAlways     Reboot = "always"
)

// APIVersion and KindPatch identify patch.yaml documents.
const (
	APIVersion = "vulnzero.dev/v1"
	KindPatch  = "Patch"
)

// Patch is patches/<id>/patch.yaml plus its three scripts.
type Patch struct {
	APIVersion   string        `yaml:"apiVersion" json:"apiVersion"`
	Kind         string        `yaml:"kind" json:"kind"`
	ID           string        `yaml:"id" json:"id"`
	Title        string        `yaml:"title" json:"title"`
	CVEs         []string      `yaml:"cves,omitempty" json:"cves,omitempty"`
	Package      PackageRef    `yaml:"package" json:"package"`
	Targets      Targets       `yaml:"targets" json:"targets"`
	Generator    Generator     `yaml:"generator" json:"generator"`
	Rollout      *RolloutSpec  `yaml:"rollout,omitempty" json:"rollout,omitempty"`
	Reboot       Reboot        `yaml:"reboot,omitempty" json:"reboot,omitempty"`
	HealthChecks []HealthCheck `yaml:"healthChecks,omitempty" json:"healthChecks,omitempty"`
	Timeouts     Timeouts      `yaml:"timeouts,omitempty" json:"timeouts,omitempty"`
	Scripts      Scripts       `yaml:"-" json:"-"`
}

// PackageRef is the package a patch fixes.
type PackageRef struct {
	Name         string         `yaml:"name" json:"name"`
	Manager      PackageManager `yaml:"manager" json:"manager"`
	FixedVersion string         `yaml:"fixedVersion" json:"fixedVersion"`
}

// Targets selects the hosts a patch applies to: by labels, or by name.
type Targets struct {
	Selector map[string]string `yaml:"selector,omitempty" json:"selector,omitempty"`
	Hosts    []string          `yaml:"hosts,omitempty" json:"hosts,omitempty"`
}

// Matches reports whether h is targeted. Explicit host names win; a selector
// matches hosts carrying every listed label; an empty Targets matches nothing.
func (t Targets) Matches(h Host) bool {
	for _, n := range t.Hosts {
		if n == h.Name {
			return true
		}
	}
	if len(t.Selector) == 0 {
		return false
	}
	for k, v := range t.Selector {
		if h.Labels[k] != v {
			return false
		}
	}
	return true
}

// Generator records how a patch was made.
type Generator struct {
	Kind         string `yaml:"kind" json:"kind"` // rules | llm
	Provider     string `yaml:"provider,omitempty" json:"provider,omitempty"`
	Model        string `yaml:"model,omitempty" json:"model,omitempty"`
	PromptSHA256 string `yaml:"promptSHA256,omitempty" json:"promptSHA256,omitempty"`
}

// RolloutSpec describes how a patch rolls out. A patch may override parts of
// the RolloutPolicy with it.
type RolloutSpec struct {
	Strategy    string      `yaml:"strategy,omitempty" json:"strategy,omitempty"` // all-at-once | canary | rolling | blue-green
	Stages      []StageSpec `yaml:"stages,omitempty" json:"stages,omitempty"`
	MaxParallel int         `yaml:"maxParallel,omitempty" json:"maxParallel,omitempty"`
	// BatchSize is the size of each batch of a rolling rollout: a count
	// ("5") or a share of the hosts ("20%").
	BatchSize string `yaml:"batchSize,omitempty" json:"batchSize,omitempty"`
	// MaxFailures is the failure budget of every stage that sets none (a
	// canary's first stage excepted: it tolerates none unless it says so).
	MaxFailures string `yaml:"maxFailures,omitempty" json:"maxFailures,omitempty"`
	// Soak is the wait after each stage that sets none: after each batch of
	// a rolling rollout, after the switch of a blue-green one.
	Soak time.Duration `yaml:"soak,omitempty" json:"soak,omitempty"`
	// Groups are the two inventory groups of a blue-green rollout.
	Groups []string `yaml:"groups,omitempty" json:"groups,omitempty"`
	// Check is the stage-level check of every stage that sets none.
	Check *StageCheck `yaml:"check,omitempty" json:"check,omitempty"`
	// ConsecutiveErrorLimit is how many attempts of a check may fail in a
	// row before the check fails (1 when zero: no retry).
	ConsecutiveErrorLimit int `yaml:"consecutiveErrorLimit,omitempty" json:"consecutiveErrorLimit,omitempty"`
	// CheckInterval is the wait between attempts of a check.
	CheckInterval time.Duration `yaml:"checkInterval,omitempty" json:"checkInterval,omitempty"`
}

// StageSpec is one stage of a rollout: a host count ("1") or a share ("10%"),
// and how many host failures it tolerates ("0", "2" or "10%").
type StageSpec struct {
	Hosts       string        `yaml:"hosts" json:"hosts"`
	MaxFailures string        `yaml:"maxFailures,omitempty" json:"maxFailures,omitempty"`
	Soak        time.Duration `yaml:"soak,omitempty" json:"soak,omitempty"`
	// MaxParallel bounds the SSH sessions of this stage (the spec's when 0).
	MaxParallel int `yaml:"maxParallel,omitempty" json:"maxParallel,omitempty"`
	// Check runs once the stage's hosts passed (the spec's when nil).
	Check                 *StageCheck   `yaml:"check,omitempty" json:"check,omitempty"`
	ConsecutiveErrorLimit int           `yaml:"consecutiveErrorLimit,omitempty" json:"consecutiveErrorLimit,omitempty"`
	CheckInterval         time.Duration `yaml:"checkInterval,omitempty" json:"checkInterval,omitempty"`
}

// StageCheck is a stage-level check: a command run over SSH on one
// designated inventory host, or an HTTP GET of a URL (exactly one of the two).
type StageCheck struct {
	Host    string `yaml:"host,omitempty" json:"host,omitempty"`
	Command string `yaml:"command,omitempty" json:"command,omitempty"`
	URL     string `yaml:"url,omitempty" json:"url,omitempty"`
	// ExpectStatus is the HTTP status that passes; any 2xx when zero.
	ExpectStatus int           `yaml:"expectStatus,omitempty" json:"expectStatus,omitempty"`
	Timeout      time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// HealthCheck is a command run on each host after verify; exit 0 is healthy.
type HealthCheck struct {
	Name    string `yaml:"name" json:"name"`
	Command string `yaml:"command" json:"command"`
}

// Timeouts bound each script run on a host.
type Timeouts struct {
	Apply    time.Duration `yaml:"apply,omitempty" json:"apply,omitempty"`
	Verify   time.Duration `yaml:"verify,omitempty" json:"verify,omitempty"`
	Rollback time.Duration `yaml:"rollback,omitempty" json:"rollback,omitempty"`
}

// Scripts are the three scripts of a patch directory.
type Scripts struct {
	Apply    []byte `json:"apply"`
	Verify   []byte `json:"verify"`
	Rollback []byte `json:"rollback"`
}

// Script file names inside a patch directory.
const (
	PatchFile    = "patch.yaml"
	ApplyFile    = "apply.sh"
	VerifyFile   = "verify.sh"
	RollbackFile = "rollback.sh"
)

// Revision is the hash of a patch directory's tree (git's tree hash), so any
// change to patch.yaml or a script is a new revision.
type Revision string

// Short is the first 12 characters of the revision.
func (r Revision) Short() string {
	if len(r) > 12 {
		return string(r[:12])
	}
	return string(r)
}

// DesiredPatch is a patch as found under patches/ at a commit of main.
type DesiredPatch struct {
	Patch    Patch    `json:"patch"`
	Revision Revision `json:"revision"`
	Commit   string   `json:"commit"` // the commit it was read at
}

// Phase names a step run on a host.
type Phase string

const (
	PhaseApply    Phase = "apply"
	PhaseVerify   Phase = "verify"
	PhaseHealth   Phase = "health"
	PhaseRollback Phase = "rollback"
	PhaseReboot   Phase = "reboot"
	// PhaseStageCheck and PhaseSwitch are rollout-level steps; their
	// HostStep.Host names the stage ("stage:2") or the switch ("switch:green"),
	// which no inventory host name can be.
	PhaseStageCheck Phase = "stage-check"
	PhaseSwitch     Phase = "switch"
)

// LedgerState is the observed state of a patch revision on a host.
type LedgerState string

const (
	LedgerApplying   LedgerState = "applying" // written before apply runs
	LedgerApplied    LedgerState = "applied"
	LedgerFailed     LedgerState = "failed"
	LedgerRolledBack LedgerState = "rolled_back"
)

// LedgerEntry is the observed state of one (host, patch): the revision last
// touched, its state, the commit it came from, and the scripts it ran, so a
// patch deleted from main can still be rolled back with its own rollback.sh.
type LedgerEntry struct {
	Host      string      `json:"host"`
	PatchID   string      `json:"patch_id"`
	Revision  Revision    `json:"revision"`
	State     LedgerState `json:"state"`
	Commit    string      `json:"commit"`
	RolloutID int64       `json:"rollout_id"`
	Scripts   Scripts     `json:"scripts"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// RolloutKind says whether a rollout applies a revision or removes it.
type RolloutKind string

const (
	RolloutApply    RolloutKind = "apply"
	RolloutRollback RolloutKind = "rollback" // the patch left main: undo it everywhere
)

// RolloutState is where a rollout is.
type RolloutState string

const (
	RolloutPending     RolloutState = "pending"
	RolloutProgressing RolloutState = "progressing"
	RolloutSucceeded   RolloutState = "succeeded"
	RolloutFailed      RolloutState = "failed"      // a stage failed; rollback of touched hosts follows
	RolloutRolledBack  RolloutState = "rolled_back" // touched hosts rolled back, revert written
	RolloutWaiting     RolloutState = "waiting"     // outside its maintenance window until WaitUntil
	RolloutPaused      RolloutState = "paused"      // an operator paused it
)

// Terminal reports whether no more work will happen on a rollout in state s.
func (s RolloutState) Terminal() bool {
	return s == RolloutSucceeded || s == RolloutRolledBack
}

// Rollout is one deployment of one patch revision across its target hosts.
type Rollout struct {
	ID        int64        `json:"id"`
	PatchID   string       `json:"patch_id"`
	Revision  Revision     `json:"revision"`
	Commit    string       `json:"commit"`
	Kind      RolloutKind  `json:"kind"`
	Strategy  string       `json:"strategy"`
	State     RolloutState `json:"state"`
	Stages    []Stage      `json:"stages"`
	Stage     int          `json:"stage"`  // index of the current stage
	Reason    string       `json:"reason"` // why it failed, when it did
	RevertSHA string       `json:"revert_sha,omitempty"`
	// WaitUntil is when a waiting rollout's next maintenance window opens,
	// or when the soak of its current stage ends.
	WaitUntil time.Time `json:"wait_until,omitzero"`
	// ActiveGroup is the blue-green group serving traffic as this rollout
	// last left it.
	ActiveGroup string    `json:"active_group,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Stage is a resolved stage of a rollout: the exact hosts and failure budget.
type Stage struct {
	Name        string        `json:"name"`
	Hosts       []string      `json:"hosts"`
	MaxFailures int           `json:"max_failures"`
	Soak        time.Duration `json:"soak"`
	// MaxParallel bounds the SSH sessions of the stage (policy's when 0).
	MaxParallel           int           `json:"max_parallel,omitempty"`
	Check                 *StageCheck   `json:"check,omitempty"`
	ConsecutiveErrorLimit int           `json:"consecutive_error_limit,omitempty"`
	CheckInterval         time.Duration `json:"check_interval,omitempty"`
	// Group is the blue-green group of the stage's hosts; once they pass,
	// traffic moves from SwitchFrom to SwitchTo when those are set.
	Group      string `json:"group,omitempty"`
	SwitchTo   string `json:"switch_to,omitempty"`
	SwitchFrom string `json:"switch_from,omitempty"`
}

// StepState is the state of one host step.
type StepState string

const (
	StepStarted   StepState = "started" // written before the command runs
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepSkipped   StepState = "skipped" // not run; Stdout says why (e.g. a reboot left pending)
)

// HostStep is one phase run on one host within a rollout, keyed by
// (RolloutID, Host, Phase). It is written before the command runs (Started)
// and again after (Succeeded/Failed), with the full output.
type HostStep struct {
	RolloutID  int64     `json:"rollout_id"`
	Host       string    `json:"host"`
	Phase      Phase     `json:"phase"`
	State      StepState `json:"state"`
	ExitCode   int       `json:"exit_code"`
	Stdout     string    `json:"stdout"`
	Stderr     string    `json:"stderr"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Quarantine marks a patch revision that failed in production; it is never
// proposed or applied again.
type Quarantine struct {
	PatchID  string    `json:"patch_id"`
	Revision Revision  `json:"revision"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// PRState is the state of a pull request.
type PRState string

const (
	PROpen   PRState = "open"
	PRMerged PRState = "merged"
	PRClosed PRState = "closed"
)

// PullRequest is a patch proposal on a forge.
type PullRequest struct {
	Number    int       `json:"number"`
	PatchID   string    `json:"patch_id"`
	Branch    string    `json:"branch"`
	Base      string    `json:"base"`
	Title     string    `json:"title"`
	Body      string    `json:"body"`
	State     PRState   `json:"state"`
	HeadSHA   string    `json:"head_sha"`
	MergeSHA  string    `json:"merge_sha,omitempty"`
	URL       string    `json:"url,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// StatusState is a commit status state, as GitHub names them.
type StatusState string

const (
	StatusPending StatusState = "pending"
	StatusSuccess StatusState = "success"
	StatusFailure StatusState = "failure"
	StatusError   StatusState = "error"
)

// CommitStatus is one status context on one commit.
type CommitStatus struct {
	SHA         string      `json:"sha"`
	Context     string      `json:"context"`
	State       StatusState `json:"state"`
	Description string      `json:"description"`
	TargetURL   string      `json:"target_url,omitempty"`
	UpdatedAt   time.Time   `json:"updated_at"`
}

// Transcript is the recorded output of one twin run or phase, linked from a
// commit status.
type Transcript struct {
	ID        int64     `json:"id"`
	Kind      string    `json:"kind"` // e.g. "twin"
	Ref       string    `json:"ref"`  // e.g. patch id @ head sha
	Body      string    `json:"body"`
	CreatedAt time.Time `json:"created_at"`
}
