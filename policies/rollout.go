package policies

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"vulnzero.dev/vulnzero"
)

// Window kinds.
const (
	WindowAllow = "allow"
	WindowDeny  = "deny"
)

// BlueGreen configures the blue-green strategy: two inventory groups, one
// serving traffic and one idle, and the hook that moves traffic between them.
type BlueGreen struct {
	Groups []string `yaml:"groups"`
	Switch *Hook    `yaml:"switch"`
}

// Hook is a command run over SSH on one inventory host. The blue-green
// switch runs with VZ_ACTIVE_GROUP (the group to serve traffic from now on)
// and VZ_PREVIOUS_GROUP in its environment; it must be idempotent, since a
// restarted reconciler may run it again.
type Hook struct {
	Host    string        `yaml:"host"`
	Command string        `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"`
}

// Emergency is the emergency lane: patches it covers start outside the
// allow windows. Deny windows still win — a change freeze is a person's
// decision, and lifting it is too.
type Emergency struct {
	// KEV: a patch fixing a CVE in CISA's Known Exploited Vulnerabilities
	// catalog takes the lane.
	KEV bool `yaml:"kev"`
}

// Reboot says how hosts are rebooted when a patch asks for it.
type Reboot struct {
	// Command reboots the host; DefaultRebootCommand when empty. It should
	// return before the host goes down (the default detaches).
	Command string `yaml:"command"`
	// Timeout bounds the wait for the host to come back with a new boot id.
	Timeout time.Duration `yaml:"timeout"`
	// PollInterval is the wait between boot id reads while it is down.
	PollInterval time.Duration `yaml:"pollInterval"`
}

// DefaultRebootCommand reboots with systemd or, without it, shutdown. It
// detaches so the SSH command returns exit 0 before the connection drops.
const DefaultRebootCommand = `nohup sh -c 'sleep 1; systemctl reboot || shutdown -r now' >/dev/null 2>&1 &`

// Window is a maintenance window: it opens at every activation of Schedule
// (a standard 5-field cron expression or a descriptor like @daily, read in
// TimeZone, UTC when empty) and stays open for Duration. An allow window
// says when changes may start; a deny window says when they may not, and
// wins over any allow window. Groups are the inventory groups it governs;
// none means every host.
type Window struct {
	Name     string        `yaml:"name"`
	Kind     string        `yaml:"kind"`
	Schedule string        `yaml:"schedule"`
	Duration time.Duration `yaml:"duration"`
	TimeZone string        `yaml:"timeZone"`
	Groups   []string      `yaml:"groups"`
}

// compile parses the schedule and loads the time zone.
func (w Window) compile() (cron.Schedule, *time.Location, error) {
	loc := time.UTC
	if w.TimeZone != "" {
		var err error
		if loc, err = time.LoadLocation(w.TimeZone); err != nil {
			return nil, nil, fmt.Errorf("time zone %q: %w", w.TimeZone, err)
		}
	}
	if strings.HasPrefix(w.Schedule, "TZ=") || strings.HasPrefix(w.Schedule, "CRON_TZ=") {
		return nil, nil, fmt.Errorf("schedule %q: give the time zone in timeZone", w.Schedule)
	}
	s, err := cron.ParseStandard(w.Schedule)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule %q: %w", w.Schedule, err)
	}
	return s, loc, nil
}

func (w Window) validate() error {
	switch w.Kind {
	case WindowAllow, WindowDeny:
	default:
		return fmt.Errorf("kind %q is not %s or %s", w.Kind, WindowAllow, WindowDeny)
	}
	if w.Duration <= 0 {
		return fmt.Errorf("duration must be positive")
	}
	if _, _, err := w.compile(); err != nil {
		return err
	}
	if slices.Contains(w.Groups, "") {
		return fmt.Errorf("groups: empty group name")
	}
	return nil
}

// Windows are the maintenance windows that govern one host.
type Windows []Window

// WindowsFor returns the policy's windows that govern host: those naming
// no group, and those naming a group of inv that holds the host.
func (p RolloutPolicy) WindowsFor(host string, inv vulnzero.Inventory) Windows {
	var ws Windows
	for _, w := range p.Windows {
		if len(w.Groups) == 0 {
			ws = append(ws, w)
			continue
		}
		for _, g := range w.Groups {
			if slices.Contains(inv.Groups[g], host) {
				ws = append(ws, w)
				break
			}
		}
	}
	return ws
}

// DenyOnly drops the allow windows: what the emergency lane still obeys.
func (ws Windows) DenyOnly() Windows {
	var out Windows
	for _, w := range ws {
		if w.Kind == WindowDeny {
			out = append(out, w)
		}
	}
	return out
}

// compiledWindow is a window ready to evaluate. A window whose schedule or
// time zone does not load (only possible when built in code, since Parse
// validates) fails safe: a deny window is always open, an allow window
// never.
type compiledWindow struct {
	deny   bool
	broken bool
	sched  cron.Schedule
	loc    *time.Location
	dur    time.Duration
}

func (ws Windows) compile() []compiledWindow {
	out := make([]compiledWindow, len(ws))
	for i, w := range ws {
		s, loc, err := w.compile()
		out[i] = compiledWindow{deny: w.Kind != WindowAllow, broken: err != nil || w.Duration <= 0, sched: s, loc: loc, dur: w.Duration}
	}
	return out
}

// activeAt reports whether the window is open at t, and when that opening
// ends. The window is open at t when an activation a satisfies
// a <= t < a+duration; the first activation after t-duration is the only
// candidate needed (cron's Next is strictly after its argument).
func (w compiledWindow) activeAt(t time.Time) (bool, time.Time) {
	if w.broken {
		return w.deny, time.Time{}
	}
	a := w.sched.Next(t.In(w.loc).Add(-w.dur))
	if a.IsZero() || a.After(t) {
		return false, time.Time{}
	}
	return true, a.Add(w.dur)
}

// Open reports whether changes may start at t: no deny window is open, and
// either an allow window is open or there are no allow windows.
func (ws Windows) Open(t time.Time) bool {
	return open(ws.compile(), t)
}

func open(cs []compiledWindow, t time.Time) bool {
	allows, allowed := 0, false
	for _, w := range cs {
		on, _ := w.activeAt(t)
		if w.deny && on {
			return false
		}
		if !w.deny {
			allows++
			allowed = allowed || on
		}
	}
	return allows == 0 || allowed
}

// nextOpenHorizon bounds NextOpen's search.
const nextOpenHorizon = 366 * 24 * time.Hour

// NextOpen returns the first time at or after t when changes may start,
// looking up to a year ahead; ok is false when the windows never open in
// that time (a broken allow window, or a deny window that never closes).
func (ws Windows) NextOpen(t time.Time) (next time.Time, ok bool) {
	cs := ws.compile()
	limit := t.Add(nextOpenHorizon)
	c := t
	for i := 0; i < 10000 && !c.After(limit); i++ {
		// Inside deny windows: jump to the latest end among them (every
		// moment before it is denied by that window).
		var denyEnd time.Time
		denied := false
		for _, w := range cs {
			if !w.deny {
				continue
			}
			if on, end := w.activeAt(c); on {
				if end.IsZero() { // broken deny: never ends
					return time.Time{}, false
				}
				denied = true
				if end.After(denyEnd) {
					denyEnd = end
				}
			}
		}
		if denied {
			c = denyEnd
			continue
		}
		if open(cs, c) {
			return c, true
		}
		// No allow window open: jump to the next activation of any.
		var soonest time.Time
		for _, w := range cs {
			if w.deny || w.broken {
				continue
			}
			if a := w.sched.Next(c.In(w.loc)); !a.IsZero() && (soonest.IsZero() || a.Before(soonest)) {
				soonest = a
			}
		}
		if soonest.IsZero() {
			return time.Time{}, false
		}
		c = soonest.In(t.Location())
	}
	return time.Time{}, false
}

// specError is a rollout spec problem: display is the field as people
// read it (relative to the spec), at the dotted path that locates its line.
type specError struct {
	display, at string
	err         error
}

func (e *specError) Error() string { return e.display + ": " + e.err.Error() }

func badSpec(display, at string, format string, args ...any) *specError {
	return &specError{display: display, at: at, err: fmt.Errorf(format, args...)}
}

var strategies = []string{StrategyAllAtOnce, StrategyCanary, StrategyRolling, StrategyBlueGreen}

// checkRolloutSpec validates a rollout spec (a policy's, or a patch's
// overrides, which may leave anything unset).
func checkRolloutSpec(r vulnzero.RolloutSpec) *specError {
	if r.Strategy != "" && !slices.Contains(strategies, r.Strategy) {
		return badSpec("strategy", "strategy", "%q is not one of %s", r.Strategy, strings.Join(strategies, ", "))
	}
	if r.MaxParallel < 0 {
		return badSpec("maxParallel", "maxParallel", "must not be negative")
	}
	if len(r.Stages) > 0 && (r.Strategy == StrategyRolling || r.Strategy == StrategyBlueGreen) {
		return badSpec("stages", "stages", "%s takes no stages (rolling: batchSize; both: maxFailures, soak, check)", r.Strategy)
	}
	for i, st := range r.Stages {
		at := fmt.Sprintf("stages.%d", i)
		if _, _, err := ParseAmount(st.Hosts); err != nil {
			return badSpec("stages", at+".hosts", "stage %d hosts: %w", i+1, err)
		}
		if st.MaxFailures != "" {
			if _, _, err := ParseAmount(st.MaxFailures); err != nil {
				return badSpec("stages", at+".maxFailures", "stage %d maxFailures: %w", i+1, err)
			}
		}
		if st.Soak < 0 {
			return badSpec("stages", at+".soak", "stage %d soak must not be negative", i+1)
		}
		if st.MaxParallel < 0 {
			return badSpec("stages", at+".maxParallel", "stage %d maxParallel must not be negative", i+1)
		}
		if st.ConsecutiveErrorLimit < 0 || st.CheckInterval < 0 {
			return badSpec("stages", at, "stage %d consecutiveErrorLimit and checkInterval must not be negative", i+1)
		}
		if err := checkStageCheck(st.Check); err != nil {
			return badSpec("stages", at+".check", "stage %d check: %w", i+1, err)
		}
	}
	if r.BatchSize != "" {
		n, _, err := ParseAmount(r.BatchSize)
		if err != nil {
			return badSpec("batchSize", "batchSize", "%w", err)
		}
		if n == 0 {
			return badSpec("batchSize", "batchSize", "must be at least 1 host or 1%%")
		}
	}
	if r.Strategy == StrategyRolling && r.BatchSize == "" {
		return badSpec("batchSize", "strategy", "rolling needs a batchSize")
	}
	if r.MaxFailures != "" {
		if _, _, err := ParseAmount(r.MaxFailures); err != nil {
			return badSpec("maxFailures", "maxFailures", "%w", err)
		}
	}
	if r.Soak < 0 {
		return badSpec("soak", "soak", "must not be negative")
	}
	if r.ConsecutiveErrorLimit < 0 {
		return badSpec("consecutiveErrorLimit", "consecutiveErrorLimit", "must not be negative")
	}
	if r.CheckInterval < 0 {
		return badSpec("checkInterval", "checkInterval", "must not be negative")
	}
	if err := checkStageCheck(r.Check); err != nil {
		return badSpec("check", "check", "%w", err)
	}
	if len(r.Groups) > 0 && (len(r.Groups) != 2 || r.Groups[0] == "" || r.Groups[1] == "" || r.Groups[0] == r.Groups[1]) {
		return badSpec("groups", "groups", "blue-green needs two different groups, got %q", r.Groups)
	}
	return nil
}

func checkStageCheck(c *vulnzero.StageCheck) error {
	if c == nil {
		return nil
	}
	switch {
	case c.URL != "" && (c.Command != "" || c.Host != ""):
		return fmt.Errorf("give either url, or host and command, not both")
	case c.URL != "":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("url %q is not an http(s) URL", c.URL)
		}
	case c.Host == "" || c.Command == "":
		return fmt.Errorf("needs a url, or a host and a command")
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		return fmt.Errorf("expectStatus %d is not an HTTP status", c.ExpectStatus)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("timeout must not be negative")
	}
	return nil
}

func (p RolloutPolicy) spec() vulnzero.RolloutSpec {
	return vulnzero.RolloutSpec{Strategy: p.Strategy, Stages: p.Stages, MaxParallel: p.MaxParallel,
		BatchSize: p.BatchSize, MaxFailures: p.MaxFailures, Soak: p.Soak, Groups: p.BlueGreen.Groups,
		Check: p.Check, ConsecutiveErrorLimit: p.ConsecutiveErrorLimit, CheckInterval: p.CheckInterval}
}

func (p RolloutPolicy) validate(file string, root *yaml.Node) error {
	switch p.Revert {
	case "", RevertPush, RevertPullRequest:
	default:
		return fieldErr(file, root, "spec.revert", "%q is not %s or %s", p.Revert, RevertPush, RevertPullRequest)
	}
	if e := checkRolloutSpec(p.spec()); e != nil {
		return &vulnzero.PositionError{File: file, Line: lineOf(root, "spec."+e.at), Err: fmt.Errorf("spec.%s: %w", e.display, e.err)}
	}
	if p.Strategy == StrategyBlueGreen && len(p.BlueGreen.Groups) == 0 {
		return fieldErr(file, root, "spec.strategy", "blue-green needs blueGreen.groups")
	}
	if len(p.BlueGreen.Groups) > 0 && p.BlueGreen.Switch == nil {
		return fieldErr(file, root, "spec.blueGreen", "needs a switch hook (host and command)")
	}
	if h := p.BlueGreen.Switch; h != nil && (h.Host == "" || h.Command == "" || h.Timeout < 0) {
		return fieldErr(file, root, "spec.blueGreen.switch", "needs a host and a command (and a timeout that is not negative)")
	}
	for i, hc := range p.HealthChecks {
		if hc.Name == "" || hc.Command == "" {
			return fieldErr(file, root, fmt.Sprintf("spec.healthChecks.%d", i), "entry %d needs a name and a command", i+1)
		}
	}
	for i, w := range p.Windows {
		if err := w.validate(); err != nil {
			return fieldErr(file, root, fmt.Sprintf("spec.windows.%d", i), "window %d: %v", i+1, err)
		}
	}
	if p.Reboot.Timeout < 0 || p.Reboot.PollInterval < 0 {
		return fieldErr(file, root, "spec.reboot", "timeout and pollInterval must not be negative")
	}
	return nil
}

// RolloutFor returns the rollout spec for a patch: the first RolloutPolicy
// whose selector matches every target host, with the patch's own overrides
// on top. It also returns that policy, for what only a policy says (revert
// mode, windows, blue-green switch, reboot). A patch that names another
// strategy than the policy's does not inherit the policy's stages.
func (s Set) RolloutFor(p vulnzero.Patch, targets []vulnzero.Host) (vulnzero.RolloutSpec, RolloutPolicy) {
	pol := s.Rollouts[len(s.Rollouts)-1]
	for _, rp := range s.Rollouts {
		if selectsAll(rp.Selector, targets) {
			pol = rp
			break
		}
	}
	spec := pol.spec()
	o := p.Rollout
	if o == nil {
		return spec, pol
	}
	if o.Strategy != "" && o.Strategy != spec.Strategy {
		spec.Strategy, spec.Stages = o.Strategy, nil
	}
	if len(o.Stages) > 0 {
		spec.Stages = o.Stages
	}
	if o.MaxParallel > 0 {
		spec.MaxParallel = o.MaxParallel
	}
	if o.BatchSize != "" {
		spec.BatchSize = o.BatchSize
	}
	if o.MaxFailures != "" {
		spec.MaxFailures = o.MaxFailures
	}
	if o.Soak > 0 {
		spec.Soak = o.Soak
	}
	if len(o.Groups) > 0 {
		spec.Groups = o.Groups
	}
	if o.Check != nil {
		spec.Check = o.Check
	}
	if o.ConsecutiveErrorLimit > 0 {
		spec.ConsecutiveErrorLimit = o.ConsecutiveErrorLimit
	}
	if o.CheckInterval > 0 {
		spec.CheckInterval = o.CheckInterval
	}
	return spec, pol
}
