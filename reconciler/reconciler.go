package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/store"
)

// Source reads the desired state: the wiring adapts gitsource, which fetches
// main and reads inventory, policies and patches at its head.
type Source interface {
	Desired(ctx context.Context) (Desired, error)
}

// Runner runs one command on one host. A non-zero exit is a Result, not an
// error; an error means the command could not run or finish (unreachable
// host, timeout). *fleet.Client satisfies it.
type Runner interface {
	Run(ctx context.Context, host vulnzero.Host, cmd fleet.Command) (fleet.Result, error)
}

// Reverter writes a failed revision back out of main and returns the
// commit. Config.Reverter pushes the revert onto main; Config.PRReverter,
// when set, opens a revert pull request instead (returning its head
// commit) for policies whose revert mode is pull-request.
type Reverter interface {
	RevertPatch(ctx context.Context, patchID string, rev vulnzero.Revision, reason string) (sha string, err error)
}

// RevertFinder is a Reverter that can find a revert it already wrote
// (gitsource.Repo): after a crash between pushing a revert and recording
// it, the rollout records that revert rather than say main moved on.
type RevertFinder interface {
	FindRevert(ctx context.Context, patchID string, rev vulnzero.Revision) (sha string, err error)
}

// KEVCatalog says whether a CVE is in CISA's Known Exploited
// Vulnerabilities catalog (the emergency lane's test).
type KEVCatalog interface {
	Listed(cve string) bool
}

// KEVSet is a KEVCatalog held in memory: CVE id → listed.
type KEVSet map[string]bool

// Listed implements KEVCatalog.
func (s KEVSet) Listed(cve string) bool { return s[cve] }

// Defaults.
const (
	DefaultPollInterval    = 5 * time.Minute
	DefaultJitter          = 0.1
	DefaultMaxParallel     = 10
	DefaultApplyTimeout    = 10 * time.Minute
	DefaultVerifyTimeout   = 2 * time.Minute
	DefaultRollbackTimeout = 10 * time.Minute
	DefaultCheckTimeout    = 30 * time.Second
	DefaultCheckInterval   = 10 * time.Second
	DefaultSwitchTimeout   = 2 * time.Minute
	DefaultRebootTimeout   = 10 * time.Minute
	DefaultRebootPoll      = 5 * time.Second
	DefaultControlPoll     = 5 * time.Second
	// abandonGrace is how long a command may outlive its timeout before
	// its host is counted as failed without waiting any longer for the
	// Runner: a stage never stalls on one host.
	abandonGrace = 5 * time.Second
)

// Config is what New needs. Source, Runner, Store and Reverter are required.
type Config struct {
	Source   Source
	Runner   Runner
	Store    store.Store
	Reverter Reverter
	// PRReverter opens revert pull requests, for policies whose revert mode
	// is pull-request; without it such a revert is not written (the Reason
	// says so) — pushing instead would overrule the policy.
	PRReverter Reverter
	Notifier   Notifier // optional
	// KEV is the catalog the emergency lane checks a patch's CVEs against;
	// without it no patch takes the lane.
	KEV KEVCatalog
	// HTTPClient runs the HTTP probes of stage checks; one with no
	// redirects followed when nil. Each probe has its own timeout.
	HTTPClient *http.Client
	// ControlPoll is how often a soak looks for an operator's pause or
	// abort (DefaultControlPoll when zero). Between hosts they are read
	// before every dispatch.
	ControlPoll time.Duration

	// Now is the clock written into records; time.Now when nil.
	Now func() time.Time
	// Wait blocks for a stage's soak or until ctx ends; a timer when nil.
	// Tests inject one that returns at once and records the duration.
	Wait func(ctx context.Context, d time.Duration) error
	// Logger; nil discards logs.
	Logger *slog.Logger
	// Metrics; unregistered collectors when nil.
	Metrics *Metrics

	// Sudo runs patch scripts with `sudo -n`: set it when inventory users
	// are not root.
	Sudo bool
	// PollInterval is how often Start reconciles without a Trigger
	// (DefaultPollInterval when zero); each wait is stretched by up to
	// Jitter (a fraction, DefaultJitter when zero) so replicas and hosts are
	// not hit in lockstep.
	PollInterval time.Duration
	Jitter       float64
}

// Validate reports missing collaborators and impossible settings.
func (c Config) Validate() error {
	var errs []error
	if c.Source == nil {
		errs = append(errs, errors.New("source is required"))
	}
	if c.Runner == nil {
		errs = append(errs, errors.New("runner is required"))
	}
	if c.Store == nil {
		errs = append(errs, errors.New("store is required"))
	}
	if c.Reverter == nil {
		errs = append(errs, errors.New("reverter is required"))
	}
	if c.PollInterval < 0 {
		errs = append(errs, errors.New("poll interval must not be negative"))
	}
	if c.Jitter < 0 || c.Jitter > 1 {
		errs = append(errs, errors.New("jitter must be between 0 and 1"))
	}
	if c.ControlPoll < 0 {
		errs = append(errs, errors.New("control poll must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reconciler config: %w: %w", err, vulnzero.ErrInvalid)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Wait == nil {
		c.Wait = sleep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics(nil)
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.ControlPoll == 0 {
		c.ControlPoll = DefaultControlPoll
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return c
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Metrics are the reconciler's Prometheus collectors.
type Metrics struct {
	// ReconcileDuration: seconds per RunOnce, by result (ok, error).
	ReconcileDuration *prometheus.HistogramVec
	// Rollouts counts rollouts entering a state, by kind and state.
	Rollouts *prometheus.CounterVec
	// HostResults counts commands run on hosts, by phase and result
	// (ok, failed: non-zero exit, error: could not run).
	HostResults *prometheus.CounterVec
	// Rollbacks counts rollouts that rolled hosts back, by cause (failure,
	// superseded, removed, aborted).
	Rollbacks *prometheus.CounterVec
	// RolloutsByState is how many rollouts the store holds in each state,
	// by kind, as of the last reconcile.
	RolloutsByState *prometheus.GaugeVec
	// MergeToFirstHost is the time from the commit time of the desired
	// commit (the merge) to the first command a new rollout runs on a host.
	MergeToFirstHost prometheus.Histogram
}

// NewMetrics builds the collectors and registers them on reg (skipped when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ReconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vulnzero_reconcile_duration_seconds",
			Help:    "Duration of one reconcile (observe, plan, execute).",
			Buckets: []float64{.01, .1, 1, 10, 60, 300, 900, 3600},
		}, []string{"result"}),
		Rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vulnzero_rollouts_total",
			Help: "Rollouts entering a state.",
		}, []string{"kind", "state"}),
		HostResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vulnzero_host_results_total",
			Help: "Commands run on hosts, by phase and result.",
		}, []string{"phase", "result"}),
		Rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vulnzero_rollbacks_total",
			Help: "Rollouts that rolled hosts back, by cause.",
		}, []string{"cause"}),
		RolloutsByState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vulnzero_rollouts",
			Help: "Rollouts in the store, by kind and state, as of the last reconcile.",
		}, []string{"kind", "state"}),
		MergeToFirstHost: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vulnzero_merge_to_first_host_seconds",
			Help:    "Time from the merge (commit time of the desired commit) to a new rollout's first host command.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.ReconcileDuration, m.Rollouts, m.HostResults, m.Rollbacks, m.RolloutsByState, m.MergeToFirstHost)
	}
	return m
}

// Reconciler makes the fleet follow main. It is a service: Start runs
// RunOnce on a poll interval and on Trigger; RunOnce may also be called
// directly (tests, `vulnzero reconcile --once`).
type Reconciler struct {
	cfg Config
	log *slog.Logger
	m   *Metrics

	runMu   sync.Mutex // one RunOnce at a time
	trigger chan struct{}
	// firstCmd holds rollouts created by this process whose first host
	// command is still to come: rollout ID → merge time.
	firstCmd sync.Map

	mu      sync.Mutex // guards cancel and done
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

// New checks cfg and builds a Reconciler.
func New(cfg Config) (*Reconciler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Reconciler{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, trigger: make(chan struct{}, 1)}, nil
}

// Start reconciles at once, then after every poll interval (with jitter) and
// whenever Trigger is called, until ctx ends or Stop is called. It returns
// at once; a Reconciler starts only once.
func (r *Reconciler) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil || r.stopped {
		return errors.New("reconciler: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	go r.loop(ctx, r.done)
	return nil
}

// Stop ends the loop started by Start and waits for a running reconcile to
// return (it stops between host steps; the store lets the next start
// resume). Calling it again, or without Start, does nothing.
func (r *Reconciler) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.stopped = true
	r.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// Trigger asks for a reconcile as soon as the current one (if any) ends.
// Triggers arriving meanwhile collapse into one. It never blocks.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

func (r *Reconciler) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		rep, err := r.RunOnce(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.log.Error("reconcile", "commit", rep.Commit, "err", err)
		case len(rep.Outcomes) > 0:
			r.log.Info("reconciled", "commit", rep.Commit, "actions", len(rep.Outcomes), "took", rep.Duration)
		}
		next := r.nextPoll()
		if !rep.WakeAt.IsZero() {
			// A waiting rollout's window opens before the next poll.
			next = min(next, max(rep.WakeAt.Sub(r.cfg.Now()), time.Second))
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-r.trigger:
			t.Stop()
		}
	}
}

func (r *Reconciler) nextPoll() time.Duration {
	d := r.cfg.PollInterval
	return d + time.Duration(rand.Float64()*r.cfg.Jitter*float64(d)) //nolint:gosec // G404: jitter spreads load; it needs no unpredictability
}

// Report is what one RunOnce did.
type Report struct {
	Commit   string
	Started  time.Time
	Duration time.Duration
	Outcomes []Outcome
	// WakeAt is the earliest time a waiting rollout can go on (its
	// maintenance window opens); zero when none waits. Start reconciles
	// then even if the poll interval is longer.
	WakeAt time.Time
}

// Outcome is one executed Action.
type Outcome struct {
	Action    Action
	RolloutID int64                 // the rollout created or resumed; 0 for Skip
	State     vulnzero.RolloutState // its state when the action returned
	Detail    string                // the rollout's Reason, or the skip reason
	WaitUntil time.Time             // a waiting rollout's next window
	// Err: the action stopped before a final state (store failure,
	// shutdown); the rollout is resumed next time.
	Err error
}

func (o Outcome) String() string {
	s := o.Action.String()
	if o.RolloutID != 0 {
		s += fmt.Sprintf(" → rollout %d %s", o.RolloutID, o.State)
		if o.Detail != "" && o.Detail != o.Action.Reason {
			s += ": " + o.Detail
		}
	}
	if o.Err != nil {
		s += " (error: " + o.Err.Error() + ")"
	}
	return s
}

func (rep Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "reconcile of %s at %s (%s): %d action(s)\n", short(rep.Commit),
		rep.Started.UTC().Format(time.RFC3339), rep.Duration.Round(time.Millisecond), len(rep.Outcomes))
	for _, o := range rep.Outcomes {
		fmt.Fprintf(&b, "  %s\n", o)
	}
	return b.String()
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// RunOnce is one reconcile: observe (store) → desire (Source) → Plan →
// execute each action in order. Actions run one after another, never in
// parallel: two patches' scripts on one host at once would fight over the
// package manager's lock. An action that stops early (store failure,
// shutdown) is reported and the rest still run; the returned error joins
// those, so a rollout that failed and rolled back cleanly is an outcome, not
// an error.
func (r *Reconciler) RunOnce(ctx context.Context) (rep Report, err error) {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	rep.Started = r.cfg.Now()
	defer func() {
		rep.Duration = r.cfg.Now().Sub(rep.Started)
		result := "ok"
		if err != nil {
			result = "error"
		}
		r.m.ReconcileDuration.WithLabelValues(result).Observe(rep.Duration.Seconds())
	}()

	obs, err := r.observe(ctx)
	if err != nil {
		return rep, err
	}
	des, err := r.cfg.Source.Desired(ctx)
	if err != nil {
		return rep, fmt.Errorf("reconcile: read desired state: %w", err)
	}
	rep.Commit = des.Commit
	var errs []error
	for _, a := range Plan(des, obs) {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		o := r.execute(ctx, des, a)
		rep.Outcomes = append(rep.Outcomes, o)
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
		if o.State == vulnzero.RolloutWaiting && !o.WaitUntil.IsZero() && (rep.WakeAt.IsZero() || o.WaitUntil.Before(rep.WakeAt)) {
			rep.WakeAt = o.WaitUntil
		}
	}
	return rep, errors.Join(errs...)
}

func (r *Reconciler) observe(ctx context.Context) (Observed, error) {
	var o Observed
	var err error
	if o.Ledger, err = r.cfg.Store.ListLedger(ctx); err != nil {
		return o, fmt.Errorf("reconcile: observe ledger: %w", err)
	}
	if o.Rollouts, err = r.cfg.Store.ListRollouts(ctx, store.RolloutFilter{}); err != nil {
		return o, fmt.Errorf("reconcile: observe rollouts: %w", err)
	}
	type kindState struct{ kind, state string }
	counts := map[kindState]int{}
	for _, ro := range o.Rollouts {
		if !ro.State.Terminal() {
			o.Active = append(o.Active, ro)
		}
		counts[kindState{string(ro.Kind), string(ro.State)}]++
	}
	r.m.RolloutsByState.Reset()
	for k, n := range counts {
		r.m.RolloutsByState.WithLabelValues(k.kind, k.state).Set(float64(n))
	}
	if o.Quarantined, err = r.cfg.Store.ListQuarantined(ctx); err != nil {
		return o, fmt.Errorf("reconcile: observe quarantine: %w", err)
	}
	return o, nil
}
