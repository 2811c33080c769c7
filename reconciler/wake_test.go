package reconciler

import (
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// TestStartWakesForTheWindow: a rollout waiting for a window that opens
// before the next poll is started when it opens, not an hour later.
func TestStartWakesForTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "vz.db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		pols, err := policies.Parse(map[string][]byte{"p.yaml": []byte(`apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: nightly
spec:
  strategy: all-at-once
  windows:
    - kind: allow
      schedule: "10 0 * * *"
      duration: 1h
`)})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now() // synctest's clock: midnight UTC
		src := &fakeSource{d: Desired{Commit: "main-1", Patches: []vulnzero.DesiredPatch{testPatch("r1")}, Inventory: fleetOf(2), Policies: pols}}
		r, err := New(Config{Source: src, Runner: &fakeRunner{hosts: map[string]behaviour{}}, Store: st, Reverter: &fakeReverter{}, PollInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer r.Stop()
		state := func() vulnzero.RolloutState {
			synctest.Wait()
			ro, err := st.GetRollout(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			return ro.State
		}
		if s := state(); s != vulnzero.RolloutWaiting {
			t.Fatalf("at %s: %s, want waiting", time.Since(start), s)
		}
		time.Sleep(9 * time.Minute)
		if s := state(); s != vulnzero.RolloutWaiting {
			t.Fatalf("at %s: %s, want waiting", time.Since(start), s)
		}
		time.Sleep(time.Minute + time.Second)
		if s := state(); s != vulnzero.RolloutSucceeded {
			t.Fatalf("at %s, after the window opened: %s, want succeeded", time.Since(start), s)
		}
	})
}
