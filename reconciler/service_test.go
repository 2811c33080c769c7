package reconciler

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// emptyStore observes nothing. Only the three reads RunOnce makes with an
// empty plan are implemented; any other call would panic on the nil
// embedded interface, which is the point: an empty plan writes nothing.
type emptyStore struct{ store.Store }

func (emptyStore) ListLedger(context.Context) ([]vulnzero.LedgerEntry, error) { return nil, nil }
func (emptyStore) ListRollouts(context.Context, store.RolloutFilter) ([]vulnzero.Rollout, error) {
	return nil, nil
}
func (emptyStore) ListQuarantined(context.Context) ([]vulnzero.Quarantine, error) { return nil, nil }

// gateSource counts Desired calls, tracks how many run at once, and blocks
// while gate is set and open.
type gateSource struct {
	mu            sync.Mutex
	calls, inside int
	maxInside     int
	gate          chan struct{}
}

func (s *gateSource) Desired(ctx context.Context) (Desired, error) {
	s.mu.Lock()
	s.calls++
	s.inside++
	s.maxInside = max(s.maxInside, s.inside)
	gate := s.gate
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inside--
		s.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return Desired{}, ctx.Err()
		}
	}
	return Desired{Commit: "main"}, nil
}

func (s *gateSource) count() (calls, maxInside int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.maxInside
}

func TestStartPollsTriggersAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &gateSource{}
		r, err := New(Config{Source: src, Runner: &fakeRunner{}, Store: emptyStore{}, Reverter: &fakeReverter{},
			PollInterval: time.Minute, Jitter: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n, _ := src.count(); n != 1 {
			t.Fatalf("after Start: %d reconciles, want 1 at once", n)
		}
		r.Trigger()
		synctest.Wait()
		if n, _ := src.count(); n != 2 {
			t.Fatalf("after Trigger: %d reconciles, want 2", n)
		}
		time.Sleep(59 * time.Second)
		synctest.Wait()
		if n, _ := src.count(); n != 2 {
			t.Fatalf("before the poll interval: %d reconciles, want 2", n)
		}
		time.Sleep(7 * time.Second) // interval + at most 10% jitter
		synctest.Wait()
		if n, _ := src.count(); n != 3 {
			t.Fatalf("after the poll interval: %d reconciles, want 3", n)
		}

		// Triggers during a reconcile collapse into one more, never a
		// second reconcile at the same time.
		gate := make(chan struct{})
		src.mu.Lock()
		src.gate = gate
		src.mu.Unlock()
		r.Trigger()
		synctest.Wait()
		r.Trigger()
		r.Trigger()
		r.Trigger()
		synctest.Wait()
		if n, inside := src.count(); n != 4 || inside != 1 {
			t.Fatalf("while blocked: %d reconciles, %d at once; want 4 and 1", n, inside)
		}
		close(gate)
		synctest.Wait()
		if n, inside := src.count(); n != 5 || inside != 1 {
			t.Fatalf("after release: %d reconciles, %d at once; want 5 (one for the collapsed triggers) and 1", n, inside)
		}

		r.Stop()
		r.Stop() // idempotent
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if n, _ := src.count(); n != 5 {
			t.Fatalf("after Stop: %d reconciles, want none more", n)
		}
		if err := r.Start(t.Context()); err == nil {
			t.Error("Start after Stop succeeded, want an error")
		}
	})
}

func TestStopWithoutStart(t *testing.T) {
	r, err := New(Config{Source: &gateSource{}, Runner: &fakeRunner{}, Store: emptyStore{}, Reverter: &fakeReverter{}})
	if err != nil {
		t.Fatal(err)
	}
	r.Stop() // must not block or panic
}
