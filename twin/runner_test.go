package twin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"vulnzero.dev/vulnzero"
)

// fakeRehearser records the rehearsals and, when gate is set, holds each
// one until gate is closed.
type fakeRehearser struct {
	gate chan struct{}
	fail map[string]error // by sha

	mu       sync.Mutex
	running  int
	peak     int
	rehearse []string // "PR@sha" in the order they started
}

func (f *fakeRehearser) Check(ctx context.Context, sha string, p vulnzero.Patch, _ vulnzero.Host) (Report, error) {
	f.mu.Lock()
	f.running++
	f.peak = max(f.peak, f.running)
	f.rehearse = append(f.rehearse, p.ID+"@"+sha)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.mu.Unlock()
	}()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return Report{}, ctx.Err()
		}
	}
	if err := f.fail[sha]; err != nil {
		return Report{}, err
	}
	return Report{PatchID: p.ID}, nil
}

func (f *fakeRehearser) started() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.rehearse...)
}

var byNumber = ResolverFunc(func(_ context.Context, pr vulnzero.PullRequest) (vulnzero.Patch, vulnzero.Host, error) {
	return vulnzero.Patch{ID: fmt.Sprintf("pr%d", pr.Number)}, vulnzero.Host{Name: "web-1"}, nil
})

func pr(n int, sha string) vulnzero.PullRequest {
	return vulnzero.PullRequest{Number: n, HeadSHA: sha, State: vulnzero.PROpen}
}

// Opened and synchronized PRs are queued once per head; a new head of a
// waiting PR replaces the old one; other actions are ignored; Request
// re-runs a head; the queue is bounded.
func TestRunnerQueue(t *testing.T) {
	f := &fakeRehearser{}
	r := &Runner{Rehearser: f, Resolver: byNumber, QueueSize: 2}
	ctx := context.Background()
	mustQueue := func(action string, p vulnzero.PullRequest, want bool) {
		t.Helper()
		got, err := r.OnPullRequest(action, p)
		if err != nil || got != want {
			t.Fatalf("OnPullRequest(%s, #%d@%s) = %v, %v; want %v", action, p.Number, p.HeadSHA, got, err, want)
		}
	}
	mustQueue("opened", pr(1, "a1"), true)
	mustQueue("synchronize", pr(1, "a1"), false) // same head: once
	mustQueue("closed", pr(2, "b1"), false)
	mustQueue("labeled", pr(2, "b1"), false)
	mustQueue("synchronize", pr(1, "a2"), true) // replaces a1 in the queue
	mustQueue("opened", pr(2, "b1"), true)
	if _, err := r.OnPullRequest("opened", pr(3, "c1")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third PR with QueueSize 2: err = %v, want ErrQueueFull", err)
	}
	if r.Queued() != 2 {
		t.Fatalf("queued = %d, want 2", r.Queued())
	}
	for r.runOnce(ctx) {
	}
	if got, want := fmt.Sprint(f.started()), "[pr1@a2 pr2@b1]"; got != want {
		t.Fatalf("rehearsed %s, want %s", got, want)
	}
	// Rehearsed heads are not queued again by events or polls …
	mustQueue("synchronize", pr(1, "a2"), false)
	if n, err := r.Poll([]vulnzero.PullRequest{pr(1, "a2"), pr(2, "b1"), {Number: 4, HeadSHA: "d1", State: vulnzero.PRClosed}}); n != 0 || err != nil {
		t.Fatalf("Poll = %d, %v; want nothing queued", n, err)
	}
	// … but a request re-runs one, and a poll picks up the PR the full
	// queue refused.
	if err := r.Request(pr(1, "a2")); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Poll([]vulnzero.PullRequest{pr(3, "c1")}); n != 1 || err != nil {
		t.Fatalf("Poll = %d, %v; want PR #3 queued", n, err)
	}
	for r.runOnce(ctx) {
	}
	if got, want := fmt.Sprint(f.started()), "[pr1@a2 pr2@b1 pr1@a2 pr3@c1]"; got != want {
		t.Fatalf("rehearsed %s, want %s", got, want)
	}
	if _, err := r.OnPullRequest("opened", pr(5, "")); !errors.Is(err, vulnzero.ErrInvalid) {
		t.Fatalf("PR without a head: err = %v, want ErrInvalid", err)
	}
}

// A rehearsal that could not complete (provisioning trouble) is no verdict:
// the next poll queues the same head again.
func TestRunnerRetriesAfterInfrastructureError(t *testing.T) {
	f := &fakeRehearser{fail: map[string]error{"a1": errors.New("docker is down")}}
	var errs []error
	r := &Runner{Rehearser: f, Resolver: byNumber, Done: func(_ Job, _ Report, err error) { errs = append(errs, err) }}
	if _, err := r.OnPullRequest("opened", pr(1, "a1")); err != nil {
		t.Fatal(err)
	}
	r.runOnce(context.Background())
	if len(errs) != 1 || errs[0] == nil {
		t.Fatalf("Done got %v, want the rehearsal's error", errs)
	}
	if n, _ := r.Poll([]vulnzero.PullRequest{pr(1, "a1")}); n != 1 {
		t.Fatalf("Poll queued %d, want the failed head again", n)
	}
}

// No more than MaxConcurrent rehearsals run at once, every queued job
// runs, and Stop ends the workers.
func TestRunnerConcurrencyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRehearser{gate: make(chan struct{})}
		var mu sync.Mutex
		done := 0
		r := &Runner{Rehearser: f, Resolver: byNumber, MaxConcurrent: 2, QueueSize: 10,
			Done: func(Job, Report, error) { mu.Lock(); done++; mu.Unlock() }}
		if err := r.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		for i := 1; i <= 5; i++ {
			if _, err := r.OnPullRequest("opened", pr(i, fmt.Sprintf("sha%d", i))); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait() // every worker is blocked in a rehearsal or idle
		if got := len(f.started()); got != 2 {
			t.Fatalf("%d rehearsals started with MaxConcurrent 2, want 2", got)
		}
		if r.Queued() != 3 {
			t.Fatalf("queued = %d, want 3", r.Queued())
		}
		close(f.gate)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if done != 5 || f.peak != 2 {
			t.Fatalf("done = %d, peak concurrency = %d; want 5 and 2", done, f.peak)
		}
		if err := r.Start(t.Context()); !errors.Is(err, vulnzero.ErrConflict) {
			t.Fatalf("second Start: %v, want ErrConflict", err)
		}
	})
}
