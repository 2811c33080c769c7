package twin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"vulnzero.dev/vulnzero"
)

// Rehearser rehearses a patch on a replica of target and posts the
// statuses on sha; *Checker satisfies it.
type Rehearser interface {
	Check(ctx context.Context, sha string, p vulnzero.Patch, target vulnzero.Host) (Report, error)
}

// Resolver finds what a PR asks to rehearse: its patch at the head commit
// and the host whose replica rehearses it (the wiring reads the
// remediation repo at pr.HeadSHA and picks a target from the inventory).
type Resolver interface {
	Resolve(ctx context.Context, pr vulnzero.PullRequest) (vulnzero.Patch, vulnzero.Host, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, pr vulnzero.PullRequest) (vulnzero.Patch, vulnzero.Host, error)

// Resolve calls f.
func (f ResolverFunc) Resolve(ctx context.Context, pr vulnzero.PullRequest) (vulnzero.Patch, vulnzero.Host, error) {
	return f(ctx, pr)
}

// Job asks for a rehearsal of one PR head.
type Job struct {
	PR vulnzero.PullRequest
	// Reason is why: a pull_request action ("opened", "synchronize",
	// "reopened"), "poll" or "requested".
	Reason string
}

// ErrQueueFull is returned when QueueSize jobs already wait. The job is not
// lost for good: the next poll (or a new push) enqueues it again.
var ErrQueueFull = errors.New("twin queue is full")

// Runner runs twin rehearsals in the background, at most MaxConcurrent at
// once, from a bounded queue fed by PR events (OnPullRequest, from the
// webhook), by Poll (the fallback when webhooks are lost) and by Request
// (a person asking for a re-run). A PR head is rehearsed once: a second
// event for the same head is ignored, and a new head of a PR that is still
// waiting replaces the old one in the queue.
type Runner struct {
	Rehearser Rehearser
	Resolver  Resolver
	// MaxConcurrent bounds the rehearsals running at once (each is a
	// container or a staging host); 1 when zero.
	MaxConcurrent int
	// QueueSize bounds the jobs waiting; 16 when zero.
	QueueSize int
	Logger    *slog.Logger
	// Done, when set, is called after each job with its report or error.
	Done func(Job, Report, error)

	mu      sync.Mutex
	queue   []Job
	heads   map[int]string // PR number → the head queued, running or rehearsed last
	wake    chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

func (r *Runner) init() {
	if r.heads == nil {
		r.heads = map[int]string{}
		r.wake = make(chan struct{}, 1)
	}
}

func (r *Runner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// OnPullRequest takes a pull_request event: "opened", "synchronize" and
// "reopened" queue a rehearsal of the PR's head; other actions are
// ignored. It reports whether a job was queued.
func (r *Runner) OnPullRequest(action string, pr vulnzero.PullRequest) (bool, error) {
	switch action {
	case "opened", "synchronize", "reopened":
		return r.enqueue(Job{PR: pr, Reason: action}, false)
	default:
		return false, nil
	}
}

// Request queues a rehearsal of pr's head even when it was rehearsed
// before (a re-run on request).
func (r *Runner) Request(pr vulnzero.PullRequest) error {
	_, err := r.enqueue(Job{PR: pr, Reason: "requested"}, true)
	return err
}

// Poll queues every open PR whose head has not been rehearsed or queued
// yet, and returns how many it queued. It stops at the first error
// (ErrQueueFull): the rest wait for the next poll.
func (r *Runner) Poll(prs []vulnzero.PullRequest) (int, error) {
	n := 0
	for _, pr := range prs {
		if pr.State != vulnzero.PROpen {
			continue
		}
		queued, err := r.enqueue(Job{PR: pr, Reason: "poll"}, false)
		if err != nil {
			return n, err
		}
		if queued {
			n++
		}
	}
	return n, nil
}

func (r *Runner) enqueue(job Job, force bool) (bool, error) {
	if job.PR.HeadSHA == "" {
		return false, fmt.Errorf("queue twin for PR #%d: no head commit: %w", job.PR.Number, vulnzero.ErrInvalid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	n := job.PR.Number
	if !force && r.heads[n] == job.PR.HeadSHA {
		return false, nil
	}
	for i, q := range r.queue {
		if q.PR.Number == n {
			if q.PR.HeadSHA != job.PR.HeadSHA {
				r.log().Info("twin job superseded by a newer head", "pr", n, "old", q.PR.HeadSHA, "new", job.PR.HeadSHA)
			}
			r.queue[i] = job
			r.heads[n] = job.PR.HeadSHA
			return true, nil
		}
	}
	size := r.QueueSize
	if size <= 0 {
		size = 16
	}
	if len(r.queue) >= size {
		return false, fmt.Errorf("queue twin for PR #%d at %s: %w (%d waiting)", n, job.PR.HeadSHA, ErrQueueFull, len(r.queue))
	}
	r.queue = append(r.queue, job)
	r.heads[n] = job.PR.HeadSHA
	r.signal()
	return true, nil
}

func (r *Runner) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Queued is the number of jobs waiting.
func (r *Runner) Queued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue)
}

// Start starts MaxConcurrent workers that run queued jobs until Stop or
// ctx ends.
func (r *Runner) Start(ctx context.Context) error {
	if r.Rehearser == nil || r.Resolver == nil {
		return fmt.Errorf("twin runner: Rehearser and Resolver are required: %w", vulnzero.ErrInvalid)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return fmt.Errorf("twin runner: already started: %w", vulnzero.ErrConflict)
	}
	r.init()
	r.started = true
	ctx, r.cancel = context.WithCancel(ctx)
	workers := r.MaxConcurrent
	if workers <= 0 {
		workers = 1
	}
	for range workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for r.wait(ctx) {
				r.runOnce(ctx)
			}
		}()
	}
	return nil
}

// Stop cancels running rehearsals (their replicas are still removed) and
// waits for the workers. Queued jobs stay queued. It is idempotent.
func (r *Runner) Stop() {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	r.wg.Wait()
}

// wait blocks until a job is queued or ctx ends; false means stop.
func (r *Runner) wait(ctx context.Context) bool {
	for {
		if ctx.Err() != nil {
			return false
		}
		if r.Queued() > 0 {
			return true
		}
		select {
		case <-r.wake:
		case <-ctx.Done():
			return false
		}
	}
}

// runOnce takes the oldest queued job, if any, and runs it; it reports
// whether there was one.
func (r *Runner) runOnce(ctx context.Context) bool {
	r.mu.Lock()
	r.init()
	if len(r.queue) == 0 {
		r.mu.Unlock()
		return false
	}
	job := r.queue[0]
	r.queue = r.queue[1:]
	if len(r.queue) > 0 {
		r.signal() // another worker may take the next one
	}
	r.mu.Unlock()

	log := r.log().With("pr", job.PR.Number, "sha", job.PR.HeadSHA, "reason", job.Reason)
	report, err := r.run(ctx, job)
	if err != nil {
		log.Error("twin rehearsal did not complete", "err", err)
		// Forget the head so the next poll tries again: infrastructure
		// trouble is not a verdict on the patch.
		r.mu.Lock()
		if r.heads[job.PR.Number] == job.PR.HeadSHA && !r.queuedLocked(job.PR.Number) {
			delete(r.heads, job.PR.Number)
		}
		r.mu.Unlock()
	} else {
		log.Info("twin rehearsal finished", "passed", report.Passed(), "failed_phase", report.Failed, "duration", report.Duration)
	}
	if r.Done != nil {
		r.Done(job, report, err)
	}
	return true
}

func (r *Runner) run(ctx context.Context, job Job) (Report, error) {
	p, target, err := r.Resolver.Resolve(ctx, job.PR)
	if err != nil {
		return Report{}, fmt.Errorf("twin for PR #%d at %s: resolve: %w", job.PR.Number, job.PR.HeadSHA, err)
	}
	return r.Rehearser.Check(ctx, job.PR.HeadSHA, p, target)
}

func (r *Runner) queuedLocked(pr int) bool {
	for _, q := range r.queue {
		if q.PR.Number == pr {
			return true
		}
	}
	return false
}
