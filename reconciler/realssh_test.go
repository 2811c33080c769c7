package reconciler

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/fleet/sshdtest"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// realFleet runs a reconciler against real OpenSSH sshd hosts on loopback
// (host keys checked against known_hosts) with a SQLite store.
func realFleet(t *testing.T, n int, dp vulnzero.DesiredPatch, policy string) (*Reconciler, *sqlite.Store, *sshdtest.Fleet) {
	t.Helper()
	f := sshdtest.Start(t, n)
	hk, err := fleet.KnownHosts(f.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	client, err := fleet.New(fleet.Config{Signers: []ssh.Signer{f.Signer}, HostKeyCallback: hk, ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "vz.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pols, err := policies.Parse(map[string][]byte{"p.yaml": []byte("apiVersion: vulnzero.dev/v1\nkind: RolloutPolicy\nname: t\nspec:\n" + policy)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range f.Hosts {
		names = append(names, h.Name)
	}
	dp.Patch.Targets = vulnzero.Targets{Hosts: names}
	src := &fakeSource{d: Desired{Commit: "main-1", Patches: []vulnzero.DesiredPatch{dp}, Inventory: vulnzero.Inventory{Hosts: f.Hosts}, Policies: pols}}
	r, err := New(Config{Source: src, Runner: client, Store: st, Reverter: &fakeReverter{}})
	if err != nil {
		t.Fatal(err)
	}
	return r, st, f
}

// TestRealSSHHangingAndDownHostsDoNotStallTheStage: over real sshd, a host
// whose apply.sh hangs fails at its timeout, a host whose sshd is down fails
// at once, both count against maxFailures, and the other hosts go on.
func TestRealSSHHangingAndDownHostsDoNotStallTheStage(t *testing.T) {
	dp := testPatch("r1")
	dp.Patch.HealthChecks = nil
	dp.Patch.Timeouts.Apply = 2 * time.Second
	dp.Patch.Scripts = vulnzero.Scripts{
		Apply:    []byte("if [ \"$VZ_HOST\" = host-2 ]; then sleep 300; fi\necho patched $VZ_HOST\n"),
		Verify:   []byte("true\n"),
		Rollback: []byte("echo rolled back\n"),
	}
	r, st, f := realFleet(t, 5, dp, "  strategy: all-at-once\n  maxFailures: \"2\"\n  maxParallel: 2\n")
	f.Stop(3) // host-4 is down
	start := time.Now()
	rep, err := r.RunOnce(t.Context())
	took := time.Since(start)
	if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].State != vulnzero.RolloutSucceeded {
		t.Fatalf("RunOnce: %v\n%s", err, rep)
	}
	if took > 30*time.Second {
		t.Errorf("the stage took %s; a hung host must not hold it much past its 2s timeout", took)
	}
	ledger, err := st.ListLedger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]vulnzero.LedgerState{}
	for _, e := range ledger {
		got[e.Host] = e.State
	}
	want := map[string]vulnzero.LedgerState{"host-1": vulnzero.LedgerApplied, "host-2": vulnzero.LedgerFailed, "host-3": vulnzero.LedgerApplied,
		"host-4": vulnzero.LedgerFailed, "host-5": vulnzero.LedgerApplied}
	for h, w := range want {
		if got[h] != w {
			t.Errorf("ledger %s = %s, want %s", h, got[h], w)
		}
	}
	steps, err := st.ListHostSteps(t.Context(), rep.Outcomes[0].RolloutID)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(steps, func(s vulnzero.HostStep) bool { return s.Host == "host-2" && s.Phase == vulnzero.PhaseApply })
	if i < 0 || steps[i].State != vulnzero.StepFailed || !strings.Contains(steps[i].Error, "deadline") {
		t.Fatalf("host-2 apply step missing or not failed at its deadline: %+v", steps)
	}
	if d := steps[i].FinishedAt.Sub(steps[i].StartedAt); d < 2*time.Second || d > 20*time.Second {
		t.Errorf("host-2 apply took %s, want about its 2s timeout", d)
	}
}

// TestRealSSHRebootThatNeverHappensTimesOut reads the real boot id over
// sshd; a reboot command that does not reboot leaves it unchanged, so the
// host fails after the policy's timeout and the rollout rolls back.
func TestRealSSHRebootThatNeverHappensTimesOut(t *testing.T) {
	dp := testPatch("r1")
	dp.Patch.HealthChecks = nil
	dp.Patch.Reboot = vulnzero.RebootIfRequired
	dp.Patch.Scripts = vulnzero.Scripts{
		Apply:    []byte("echo upgraded\necho " + RebootRequiredMarker + "\n"),
		Verify:   []byte("true\n"),
		Rollback: []byte("true\n"),
	}
	r, st, _ := realFleet(t, 1, dp, "  strategy: all-at-once\n  reboot:\n    command: \"true\"\n    timeout: 2s\n    pollInterval: 500ms\n")
	rep, err := r.RunOnce(t.Context())
	if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].State != vulnzero.RolloutRolledBack {
		t.Fatalf("RunOnce: %v\n%s", err, rep)
	}
	steps, err := st.ListHostSteps(t.Context(), rep.Outcomes[0].RolloutID)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(steps, func(s vulnzero.HostStep) bool { return s.Phase == vulnzero.PhaseReboot })
	if i < 0 || steps[i].State != vulnzero.StepFailed || !strings.Contains(steps[i].Error, "no new boot_id within 2s (boot_id unchanged)") {
		t.Fatalf("reboot step = %+v", steps)
	}
	id := recordedBootID(steps[i].Stdout)
	if len(id) != 36 || strings.Count(id, "-") != 4 {
		t.Errorf("recorded boot id %q is not the kernel's UUID", id)
	}
}
