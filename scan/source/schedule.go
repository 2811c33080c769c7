package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// Triggers recorded with a run.
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
)

// SkipReason is the error recorded with a run that did not start because
// the previous run of its source was still going.
const SkipReason = "skipped: previous run still going"

// ErrRunning is returned by RunNow when the source is already running; it
// matches vulnzero.ErrConflict.
var ErrRunning = fmt.Errorf("%s: %w", SkipReason, vulnzero.ErrConflict)

// RunStore keeps the run history; store.Store satisfies it.
type RunStore interface {
	RecordScanRun(ctx context.Context, run store.ScanRun) (store.ScanRun, error)
	ListScanRuns(ctx context.Context, f store.ScanRunFilter) ([]store.ScanRun, error)
}

// Job is what the scheduler runs; *Source is one.
type Job interface {
	Name() string
	// Config gives the schedule, the jitter and MaxRunTime.
	Config() Config
	Run(ctx context.Context) (Result, error)
}

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	Jobs   []Job
	Runs   RunStore
	Logger *slog.Logger
	// Now is the clock for run records; nil is time.Now. The cron timer
	// itself runs on the time package (testing/synctest fakes both).
	Now func() time.Time
	// Rand returns a number in [0, n) for the jitter; nil is math/rand.
	Rand func(n int64) int64
}

// Scheduler runs each job on its cron schedule (robfig/cron, in UTC unless
// the spec says CRON_TZ=…), delayed by a random jitter, and on demand. A job
// never runs twice at once: a firing while its previous run is still going
// is recorded as skipped. Every run, skipped ones included, is recorded in
// the store: as running when it starts, and again when it ends.
//
// Runs in other processes (a `vulnzero scan run` beside `vulnzero serve`)
// are seen through the store: a run recorded as running that started less
// than MaxRunTime ago makes this one skip too. A run cannot last longer
// than MaxRunTime, so an older running record was left by a process that
// died and does not block.
type Scheduler struct {
	jobs  map[string]Job
	specs map[string]cron.Schedule
	runs  RunStore
	log   *slog.Logger
	now   func() time.Time
	rand  func(n int64) int64

	mu      sync.Mutex
	running map[string]bool
	cron    *cron.Cron
	cancel  context.CancelFunc
	wg      sync.WaitGroup // runs started by the scheduler or RunNow
	started bool
	stopped bool
}

// NewScheduler checks the jobs' schedules and builds a scheduler.
func NewScheduler(cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.Runs == nil {
		return nil, errors.New("scheduler: no run store")
	}
	s := &Scheduler{
		jobs: map[string]Job{}, specs: map[string]cron.Schedule{}, runs: cfg.Runs,
		log: cfg.Logger, now: cfg.Now, rand: cfg.Rand, running: map[string]bool{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = randN
	}
	for _, j := range cfg.Jobs {
		name := j.Name()
		if _, dup := s.jobs[name]; dup {
			return nil, fmt.Errorf("scheduler: two sources named %q", name)
		}
		s.jobs[name] = j
		if spec := j.Config().Schedule; spec != "" {
			sched, err := cron.ParseStandard(spec)
			if err != nil {
				return nil, fmt.Errorf("scheduler: source %s: schedule %q: %w", name, spec, err)
			}
			s.specs[name] = sched
		}
	}
	return s, nil
}

// Start starts the cron loop. Runs started by it end when ctx ends or Stop
// is called.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return errors.New("scheduler: already started")
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.cron = cron.New(cron.WithLocation(time.UTC), cron.WithLogger(cron.DiscardLogger))
	names := make([]string, 0, len(s.specs))
	for name := range s.specs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		job := s.jobs[name]
		s.cron.Schedule(s.specs[name], cron.FuncJob(func() { s.fire(ctx, job) }))
		s.log.Info("source scheduled", "source", name, "schedule", job.Config().Schedule, "next", s.specs[name].Next(s.now()).UTC())
	}
	s.cron.Start()
	return nil
}

// Stop stops the cron loop, cancels runs in flight and waits for them to
// record how they ended. Calling it again, or without Start, does nothing.
func (s *Scheduler) Stop() {
	s.mu.Lock()
	if s.stopped || !s.started {
		s.stopped = true
		s.mu.Unlock()
		return
	}
	s.stopped = true
	c, cancel := s.cron, s.cancel
	s.mu.Unlock()
	jobs := c.Stop() // no new firing after this returns
	cancel()
	<-jobs.Done()
	s.wg.Wait()
}

// fire is one cron firing: jitter, then a run, unless one is going.
func (s *Scheduler) fire(ctx context.Context, job Job) {
	var delay time.Duration
	if j := job.Config().Jitter; j > 0 {
		delay = time.Duration(s.rand(int64(j)))
	}
	run, err := s.runOnce(ctx, job, TriggerSchedule, delay)
	switch {
	case errors.Is(err, ErrRunning):
		s.log.Warn("scheduled run skipped", "source", job.Name(), "reason", SkipReason, "run", run.ID)
	case err != nil:
		s.log.Error("scheduled run failed", "source", job.Name(), "run", run.ID, "err", err)
	default:
		s.log.Info("scheduled run done", "source", job.Name(), "run", run.ID, "read", run.Read, "new", run.New, "fixed", run.Fixed, "hosts", run.Hosts)
	}
}

// RunNow runs the named source now and returns its record. A source that is
// running already gives ErrRunning (the skip is recorded too).
func (s *Scheduler) RunNow(ctx context.Context, name string) (store.ScanRun, error) {
	job, ok := s.jobs[name]
	if !ok {
		return store.ScanRun{}, fmt.Errorf("run source %s: %w", name, vulnzero.ErrNotFound)
	}
	return s.runOnce(ctx, job, TriggerManual, 0)
}

// Next is when the named source is next due (before jitter), or zero when
// it has no schedule.
func (s *Scheduler) Next(name string, after time.Time) time.Time {
	if sched, ok := s.specs[name]; ok {
		return sched.Next(after)
	}
	return time.Time{}
}

// NextRun is when a cron spec next fires after a time (before jitter), or
// zero for an empty spec.
func NextRun(spec string, after time.Time) (time.Time, error) {
	if spec == "" {
		return time.Time{}, nil
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return time.Time{}, fmt.Errorf("schedule %q: %w", spec, err)
	}
	return sched.Next(after), nil
}

func (s *Scheduler) claim(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[name] {
		return false
	}
	s.running[name] = true
	s.wg.Add(1)
	return true
}

func (s *Scheduler) release(name string) {
	s.mu.Lock()
	delete(s.running, name)
	s.mu.Unlock()
	s.wg.Done()
}

// runOnce runs a job once after delay, unless it is running here or (per
// the store) elsewhere, and records the run. It records a skipped run and
// returns ErrRunning in that case.
func (s *Scheduler) runOnce(ctx context.Context, job Job, trigger string, delay time.Duration) (store.ScanRun, error) {
	name := job.Name()
	if !s.claim(name) {
		return s.recordSkip(ctx, name, trigger)
	}
	defer s.release(name)
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return store.ScanRun{}, ctx.Err()
		case <-t.C:
		}
	}
	if busy, err := s.runningElsewhere(ctx, job); err != nil {
		return store.ScanRun{}, err
	} else if busy {
		return s.recordSkip(ctx, name, trigger)
	}

	run, err := s.runs.RecordScanRun(ctx, store.ScanRun{Source: name, Trigger: trigger, State: store.ScanRunning, StartedAt: s.now()})
	if err != nil {
		return store.ScanRun{}, fmt.Errorf("run source %s: %w", name, err)
	}
	s.log.Info("source run started", "source", name, "trigger", trigger, "run", run.ID)
	res, runErr := s.runSafely(ctx, job)
	run.FinishedAt = s.now()
	run.Imports, run.Read, run.New, run.Updated, run.Fixed, run.Hosts = len(res.Imports), res.Read, res.New, res.Updated, res.Fixed, len(res.Hosts)
	run.SetUnmatched(res.Unmatched)
	run.State = store.ScanSucceeded
	if runErr != nil {
		run.State, run.Error = store.ScanFailed, runErr.Error()
	}
	// Record the end even when ctx was cancelled (shutdown), so the run
	// does not stay "running".
	rec, err := s.runs.RecordScanRun(context.WithoutCancel(ctx), run)
	if err != nil {
		return run, errors.Join(runErr, fmt.Errorf("record end of run %d of %s: %w", run.ID, name, err))
	}
	return rec, runErr
}

// runningElsewhere reports whether the store has a run of the job that is
// recorded as running and started less than MaxRunTime ago.
func (s *Scheduler) runningElsewhere(ctx context.Context, job Job) (bool, error) {
	last, err := s.runs.ListScanRuns(ctx, store.ScanRunFilter{Source: job.Name(), Limit: 5})
	if err != nil {
		return false, fmt.Errorf("run source %s: read run history: %w", job.Name(), err)
	}
	limit := job.Config().MaxRunTime
	for _, r := range last {
		if r.State == store.ScanRunning && (limit <= 0 || s.now().Sub(r.StartedAt) < limit) {
			return true, nil
		}
	}
	return false, nil
}

func (s *Scheduler) recordSkip(ctx context.Context, name, trigger string) (store.ScanRun, error) {
	now := s.now()
	run, err := s.runs.RecordScanRun(ctx, store.ScanRun{
		Source: name, Trigger: trigger, State: store.ScanSkipped, StartedAt: now, FinishedAt: now, Error: SkipReason,
	})
	if err != nil {
		return store.ScanRun{}, errors.Join(ErrRunning, fmt.Errorf("record skipped run of %s: %w", name, err))
	}
	return run, fmt.Errorf("run source %s: %w", name, ErrRunning)
}

// runSafely runs a job, turning a panic into an error so that one broken
// source neither kills the process nor stays marked running. The stack goes
// to the log, not into the run history.
func (s *Scheduler) runSafely(ctx context.Context, job Job) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("source run panicked", "source", job.Name(), "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("run %s: panic: %v", job.Name(), p)
		}
	}()
	return job.Run(ctx)
}
