package source

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// memRuns is an in-memory RunStore (the SQL ones are held to the same
// behaviour by store/storetest).
type memRuns struct {
	mu   sync.Mutex
	runs []store.ScanRun
}

func (m *memRuns) RecordScanRun(_ context.Context, r store.ScanRun) (store.ScanRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.ID == 0 {
		r.ID = int64(len(m.runs) + 1)
		m.runs = append(m.runs, r)
		return r, nil
	}
	if r.ID > int64(len(m.runs)) {
		return store.ScanRun{}, vulnzero.ErrNotFound
	}
	m.runs[r.ID-1] = r
	return r, nil
}

func (m *memRuns) ListScanRuns(_ context.Context, f store.ScanRunFilter) ([]store.ScanRun, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.ScanRun
	for i := len(m.runs) - 1; i >= 0; i-- {
		if f.Source == "" || m.runs[i].Source == f.Source {
			out = append(out, m.runs[i])
		}
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

func (m *memRuns) all() []store.ScanRun {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.runs)
}

// fakeJob is a source whose run takes a set time (on the synctest clock).
type fakeJob struct {
	name  string
	cfg   Config
	took  time.Duration
	err   error
	panic bool

	mu     sync.Mutex
	starts []time.Time
}

func (j *fakeJob) Name() string   { return j.name }
func (j *fakeJob) Config() Config { return j.cfg }
func (j *fakeJob) Run(ctx context.Context) (Result, error) {
	j.mu.Lock()
	j.starts = append(j.starts, time.Now())
	j.mu.Unlock()
	if j.panic {
		panic("parser exploded")
	}
	t := time.NewTimer(j.took)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-t.C:
	}
	return Result{Read: 3, New: 2, Updated: 1, Hosts: []string{"web-1"}, Imports: make([]vulnzero.ImportResult, 1)}, j.err
}

func (j *fakeJob) startTimes() []time.Time {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.starts)
}

func states(runs []store.ScanRun) []store.ScanRunState {
	var out []store.ScanRunState
	for _, r := range runs {
		out = append(out, r.State)
	}
	return out
}

// TestSchedulerNoOverlap: a run that outlasts its interval makes the next
// firing a recorded skip; runs are recorded running, then succeeded.
func TestSchedulerNoOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		job := &fakeJob{name: "wazuh", took: 90 * time.Minute, cfg: Config{Schedule: "@every 1h", MaxRunTime: 2 * time.Hour}}
		runs := &memRuns{}
		s, err := NewScheduler(SchedulerConfig{Jobs: []Job{job}, Runs: runs})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(61 * time.Minute) // first firing at 1h: running
		synctest.Wait()
		if got := states(runs.all()); !slices.Equal(got, []store.ScanRunState{store.ScanRunning}) {
			t.Fatalf("after 1h: runs %v, want one running", got)
		}
		time.Sleep(60 * time.Minute) // 2h: fires while the first run is going
		synctest.Wait()
		got := runs.all()
		if !slices.Equal(states(got), []store.ScanRunState{store.ScanRunning, store.ScanSkipped}) || got[1].Error != SkipReason {
			t.Fatalf("after 2h: runs %+v, want the second firing skipped: %q", got, SkipReason)
		}
		time.Sleep(60 * time.Minute) // 2h30 first run ends; 3h next run starts
		synctest.Wait()
		s.Stop()
		got = runs.all()
		if !slices.Equal(states(got), []store.ScanRunState{store.ScanSucceeded, store.ScanSkipped, store.ScanFailed}) {
			t.Fatalf("runs %+v, want succeeded, skipped, then failed (cancelled by Stop)", got)
		}
		first := got[0]
		if first.Trigger != TriggerSchedule || first.Read != 3 || first.New != 2 || first.Hosts != 1 || first.Imports != 1 ||
			first.FinishedAt.Sub(first.StartedAt) != 90*time.Minute || !first.StartedAt.Equal(start.Add(time.Hour)) {
			t.Errorf("first run = %+v", first)
		}
		if got[2].Error == "" || !got[2].FinishedAt.Equal(start.Add(3*time.Hour+time.Minute)) {
			t.Errorf("run cancelled by Stop = %+v, want its error and end recorded", got[2])
		}
		if starts := job.startTimes(); len(starts) != 2 {
			t.Errorf("job ran %d times, want 2", len(starts))
		}
	})
}

// TestSchedulerJitter delays each firing by Rand's share of Jitter.
func TestSchedulerJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		job := &fakeJob{name: "qualys", took: time.Minute, cfg: Config{Schedule: "@every 1h", Jitter: 10 * time.Minute, MaxRunTime: time.Hour}}
		var asked []int64
		s, err := NewScheduler(SchedulerConfig{Jobs: []Job{job}, Runs: &memRuns{}, Rand: func(n int64) int64 {
			asked = append(asked, n)
			return int64(4 * time.Minute)
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2*time.Hour + 30*time.Minute)
		synctest.Wait()
		s.Stop()
		starts := job.startTimes()
		want := []time.Time{start.Add(time.Hour + 4*time.Minute), start.Add(2*time.Hour + 4*time.Minute)}
		if !slices.EqualFunc(starts, want, time.Time.Equal) {
			t.Errorf("runs started at %v, want %v", starts, want)
		}
		if len(asked) != 2 || asked[0] != int64(10*time.Minute) {
			t.Errorf("jitter asked for %v, want [0, 10m) twice", asked)
		}
	})
}

// TestRunNow runs a source on demand; a run recorded as running by another
// process blocks it until that record is older than MaxRunTime; an unknown
// source is ErrNotFound; a panicking job is a failed run, not a crash.
func TestRunNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		runs := &memRuns{}
		job := &fakeJob{name: "tenable", took: time.Minute, cfg: Config{MaxRunTime: time.Hour}}
		boom := &fakeJob{name: "boom", panic: true, cfg: Config{MaxRunTime: time.Hour}}
		failing := &fakeJob{name: "failing", took: time.Second, err: errors.New("pull tenable: export ended ERROR"), cfg: Config{MaxRunTime: time.Hour}}
		s, err := NewScheduler(SchedulerConfig{Jobs: []Job{job, boom, failing}, Runs: runs})
		if err != nil {
			t.Fatal(err)
		}
		// Another process started a run 10 minutes ago.
		if _, err := runs.RecordScanRun(t.Context(), store.ScanRun{Source: "tenable", State: store.ScanRunning, StartedAt: time.Now().Add(-10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		run, err := s.RunNow(t.Context(), "tenable")
		if !errors.Is(err, ErrRunning) || !errors.Is(err, vulnzero.ErrConflict) || run.State != store.ScanSkipped {
			t.Fatalf("RunNow beside a running run = %+v, %v; want a recorded skip", run, err)
		}
		time.Sleep(time.Hour) // that run's record is now stale
		run, err = s.RunNow(t.Context(), "tenable")
		if err != nil || run.State != store.ScanSucceeded || run.Trigger != TriggerManual {
			t.Fatalf("RunNow after the stale record = %+v, %v", run, err)
		}

		run, err = s.RunNow(t.Context(), "boom")
		if err == nil || run.State != store.ScanFailed || !containsAll(run.Error, "panic", "parser exploded") {
			t.Errorf("panicking job = %+v, %v; want a failed run", run, err)
		}
		run, err = s.RunNow(t.Context(), "failing")
		if err == nil || run.State != store.ScanFailed || run.Error != "pull tenable: export ended ERROR" || run.Read != 3 {
			t.Errorf("failing job = %+v, %v", run, err)
		}
		if _, err := s.RunNow(t.Context(), "nope"); !errors.Is(err, vulnzero.ErrNotFound) {
			t.Errorf("unknown source: %v, want ErrNotFound", err)
		}

		// Two on-demand runs at once: the second is skipped.
		done := make(chan error, 1)
		go func() { _, err := s.RunNow(t.Context(), "tenable"); done <- err }()
		synctest.Wait()
		if _, err := s.RunNow(t.Context(), "tenable"); !errors.Is(err, ErrRunning) {
			t.Errorf("concurrent RunNow: %v, want ErrRunning", err)
		}
		if err := <-done; err != nil {
			t.Errorf("first RunNow: %v", err)
		}
	})
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestSchedulerConfigErrors: a bad spec or two sources with one name are
// refused up front; Stop without Start is harmless.
func TestSchedulerConfigErrors(t *testing.T) {
	if _, err := NewScheduler(SchedulerConfig{Runs: &memRuns{}, Jobs: []Job{&fakeJob{name: "x", cfg: Config{Schedule: "every tuesday"}}}}); err == nil {
		t.Error("bad schedule accepted")
	}
	if _, err := NewScheduler(SchedulerConfig{Runs: &memRuns{}, Jobs: []Job{&fakeJob{name: "x"}, &fakeJob{name: "x"}}}); err == nil {
		t.Error("duplicate names accepted")
	}
	s, err := NewScheduler(SchedulerConfig{Runs: &memRuns{}, Jobs: []Job{&fakeJob{name: "x", cfg: Config{Schedule: "0 3 * * *"}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Stop()
	from := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if got, want := s.Next("x", from), time.Date(2025, 3, 2, 3, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Next = %v, want %v", got, want)
	}
	if got, err := NextRun("CRON_TZ=Europe/Paris 0 3 * * *", from); err != nil || !got.Equal(time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("NextRun with CRON_TZ = %v, %v", got, err)
	}
}
