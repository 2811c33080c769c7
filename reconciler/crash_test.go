package reconciler

// The SIGKILL tests: the reconciler runs as a separate process (this test
// binary re-executed into TestCrashChild) against real sshd hosts, a SQLite
// file and a real git remediation repository, and is killed with SIGKILL at
// chosen points, then restarted, until the rollout ends. The patch's scripts
// record every run and every state change in files of each host (the hosts
// are local sshd processes, so the test reads those files directly).
//
// Kill points are of two kinds. A store kill makes the child kill itself
// right before or right after a chosen write (the Nth write, or the first
// write matching a description) — the only way to land exactly between a
// write and what follows it. A command kill is sent by the parent process
// while a chosen script is running on a host.
//
// What is proven, per host and revision: the change was made exactly once
// (the state log), no host was skipped, a script ran again only where the
// store showed its step as started without a result at a kill (a run in
// flight) — never after its result was recorded — and the ledger, steps and
// rollouts agree with the hosts.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/fleet/sshdtest"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/sqlite"
)

// envCrashChild holds the JSON config of a child run; set only by the parent.
const envCrashChild = "VZ_RECONCILER_CRASH_CHILD"

const crashPatch = "libcrash-1.2.3"

// crashChild is one run of the reconciler process.
type crashChild struct {
	Repo       string `json:"repo"`  // bare remediation repository
	Clone      string `json:"clone"` // fresh directory for this run's clone
	DB         string `json:"db"`
	KeyPath    string `json:"key"`
	KnownHosts string `json:"known_hosts"`
	// Store kill: the KillWrite-th write of this run (counted from 1), or
	// the first write whose description starts with KillMatch (see
	// crashStore for descriptions); before the write when KillBefore.
	KillWrite  int    `json:"kill_write,omitempty"`
	KillMatch  string `json:"kill_match,omitempty"`
	KillBefore bool   `json:"kill_before,omitempty"`
}

// crashKill is a kill point of a schedule.
type crashKill struct {
	write  int    // store kill at the Nth write …
	match  string // … or at the first write described so
	before bool
	cmd    string // command kill: the parent kills while the nth command line starting with cmd runs
	nth    int
}

func (k crashKill) String() string {
	when := "after"
	if k.before {
		when = "before"
	}
	switch {
	case k.cmd != "":
		return fmt.Sprintf("while %q #%d runs", k.cmd, k.nth)
	case k.match != "":
		return fmt.Sprintf("%s write %q", when, k.match)
	default:
		return fmt.Sprintf("%s write #%d", when, k.write)
	}
}

// TestCrashChild is the reconciler process of the SIGKILL tests; it only
// runs when re-executed by them.
func TestCrashChild(t *testing.T) {
	raw := os.Getenv(envCrashChild)
	if raw == "" {
		t.Skip("runs only as the child process of TestSIGKILL* (" + envCrashChild + " unset)")
	}
	var c crashChild
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := sqlite.Open(ctx, c.DB, log)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := gitsource.Open(ctx, gitsource.Config{URL: c.Repo, Dir: c.Clone, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := fleet.LoadSigner(c.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := fleet.KnownHosts(c.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	client, err := fleet.New(fleet.Config{Signers: []ssh.Signer{signer}, HostKeyCallback: hk, ConnectTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{
		Source:   crashSource{repo},
		Runner:   crashRunner{client},
		Store:    &crashStore{Store: st, c: c},
		Reverter: crashReverter{repo: repo, c: c},
		Logger:   log,
		Wait:     func(context.Context, time.Duration) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	for range 10 {
		rep, err := r.RunOnce(ctx)
		if err != nil {
			t.Fatalf("reconcile: %v\n%s", err, rep)
		}
		ros, err := st.ListRollouts(ctx, store.RolloutFilter{})
		if err != nil {
			t.Fatal(err)
		}
		active := slices.ContainsFunc(ros, func(ro vulnzero.Rollout) bool { return !ro.State.Terminal() })
		worked := slices.ContainsFunc(rep.Outcomes, func(o Outcome) bool { return o.Action.Kind != Skip })
		if !active && !worked {
			fmt.Println("converged")
			return
		}
	}
	t.Fatal("not converged after 10 reconciles")
}

// crashSource reads main of the remediation repository, as the wiring does.
type crashSource struct{ repo *gitsource.Repo }

func (s crashSource) Desired(ctx context.Context) (Desired, error) {
	if err := s.repo.Fetch(ctx); err != nil {
		return Desired{}, err
	}
	head, err := s.repo.Head(ctx, s.repo.Branch())
	if err != nil {
		return Desired{}, err
	}
	st, err := s.repo.State(ctx, head)
	if err != nil {
		return Desired{}, err
	}
	return Desired{Commit: st.Commit, Patches: st.Patches, Inventory: st.Inventory, Policies: st.Policies}, nil
}

// crashRunner announces each command on stdout before it starts, so the
// parent can kill the process while it runs.
type crashRunner struct{ r Runner }

func (c crashRunner) Run(ctx context.Context, h vulnzero.Host, cmd fleet.Command) (fleet.Result, error) {
	fmt.Printf("cmd %s %s\n", cmd.Env["VZ_PHASE"], h.Name)
	return c.r.Run(ctx, h, cmd)
}

// crashStore counts writes and SIGKILLs its own process at the chosen one.
// Descriptions: "rollout create", "rollout <state>", "step <phase> <state>
// <host>", "ledger <state> <host>", "quarantine".
type crashStore struct {
	store.Store
	c crashChild
	n atomic.Int64
}

func (s *crashStore) write(desc string, fn func() error) error {
	n := s.n.Add(1)
	hit := (s.c.KillWrite > 0 && n == int64(s.c.KillWrite)) || (s.c.KillMatch != "" && strings.HasPrefix(desc, s.c.KillMatch))
	if hit && s.c.KillBefore {
		crashDie(desc)
	}
	err := fn()
	if hit {
		crashDie(desc)
	}
	return err
}

func crashDie(desc string) {
	fmt.Printf("killing at %s\n", desc)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; nothing runs after it
}

func (s *crashStore) CreateRollout(ctx context.Context, r vulnzero.Rollout) (out vulnzero.Rollout, err error) {
	err = s.write("rollout create", func() error { out, err = s.Store.CreateRollout(ctx, r); return err })
	return out, err
}

func (s *crashStore) UpdateRollout(ctx context.Context, r vulnzero.Rollout) error {
	return s.write("rollout "+string(r.State), func() error { return s.Store.UpdateRollout(ctx, r) })
}

func (s *crashStore) PutHostStep(ctx context.Context, st vulnzero.HostStep) error {
	return s.write(fmt.Sprintf("step %s %s %s", st.Phase, st.State, st.Host), func() error { return s.Store.PutHostStep(ctx, st) })
}

func (s *crashStore) PutLedger(ctx context.Context, e vulnzero.LedgerEntry) error {
	return s.write(fmt.Sprintf("ledger %s %s", e.State, e.Host), func() error { return s.Store.PutLedger(ctx, e) })
}

func (s *crashStore) Quarantine(ctx context.Context, q vulnzero.Quarantine) error {
	return s.write("quarantine", func() error { return s.Store.Quarantine(ctx, q) })
}

// crashReverter is the repository's revert, with a kill point right after
// the revert is pushed (description "revert pushed").
type crashReverter struct {
	repo *gitsource.Repo
	c    crashChild
}

func (r crashReverter) RevertPatch(ctx context.Context, id string, rev vulnzero.Revision, reason string) (string, error) {
	sha, err := r.repo.RevertPatch(ctx, id, rev, reason)
	if err == nil && r.c.KillMatch == "revert pushed" {
		crashDie("revert pushed")
	}
	return sha, err
}

func (r crashReverter) FindRevert(ctx context.Context, id string, rev vulnzero.Revision) (string, error) {
	return r.repo.FindRevert(ctx, id, rev)
}

// crashWorld is the parent's side: sshd hosts, the repository, the store
// file, and what it saw at each kill.
type crashWorld struct {
	t     *testing.T
	fleet *sshdtest.Fleet
	root  string // host data: root/<host>/{runs.log,state.log,lock,broken}
	repo  string
	db    string
	runs  int
	kills int

	// inFlight counts, per (rollout, host, phase), the steps the store
	// showed as started without a result at a kill: each allows one more
	// run.
	inFlight map[string]int
	counted  map[string]bool // (rollout, host, phase, started_at) already counted
}

func newCrashWorld(t *testing.T, f *sshdtest.Fleet, tag string) *crashWorld {
	t.Helper()
	dir := t.TempDir()
	w := &crashWorld{t: t, fleet: f, root: filepath.Join(dir, "hosts"), repo: filepath.Join(dir, "remediation.git"),
		db: filepath.Join(dir, "vulnzero.db"), inFlight: map[string]int{}, counted: map[string]bool{}}
	for _, h := range f.Hosts {
		if err := os.MkdirAll(filepath.Join(w.root, h.Name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var inv strings.Builder
	inv.WriteString("hosts:\n")
	for _, h := range f.Hosts {
		fmt.Fprintf(&inv, "  - {name: %s, address: %s, port: %d, user: %s, labels: {role: app}}\n", h.Name, h.Address, h.Port, h.User)
	}
	files := map[string][]byte{
		"inventory/hosts.yaml": []byte(inv.String()),
		"policies/rollout.yaml": []byte(`apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: crash
spec:
  strategy: canary
  maxParallel: 2
  revert: push
  stages:
    - {hosts: "1", maxFailures: "0"}
    - {hosts: "50%", maxFailures: "0"}
    - {hosts: "100%", maxFailures: "0"}
`),
	}
	for p, b := range w.patchFiles(tag) {
		files[p] = b
	}
	if _, err := gitsource.InitBare(t.Context(), w.repo, "main", files, "Merge patch "+crashPatch, "test", "test@localhost"); err != nil {
		t.Fatal(err)
	}
	return w
}

// patchFiles is the patch directory whose scripts carry tag (a new tag is a
// new revision). Each script takes the host's lock, as a package manager
// does: a run orphaned by a killed reconciler may still be going when the
// next one starts. state.log's last line is the host's state; a change is
// one appended line, so it happens entirely or not at all.
func (w *crashWorld) patchFiles(tag string) map[string][]byte {
	pre := fmt.Sprintf(`set -eu
d=%q/"$VZ_HOST"
exec 9>>"$d/lock"
flock 9
echo "$VZ_PHASE %s $$" >> "$d/runs.log"
last=$(tail -n 1 "$d/state.log" 2>/dev/null || true)
`, w.root, tag)
	dir := "patches/" + crashPatch + "/"
	return map[string][]byte{
		dir + "patch.yaml": fmt.Appendf(nil, `apiVersion: vulnzero.dev/v1
kind: Patch
id: %s
title: Upgrade libcrash (%s)
cves: [CVE-2026-4242]
package: {name: libcrash, manager: apt, fixedVersion: 1.2.3}
targets:
  selector: {role: app}
generator: {kind: rules}
`, crashPatch, tag),
		dir + "apply.sh": []byte(pre + fmt.Sprintf(`sleep 0.2
if [ "$last" = "applied %[1]s" ]; then exit 0; fi
if [ -f "$d/broken" ]; then
  if [ "$last" != "half %[1]s" ]; then echo "half %[1]s" >> "$d/state.log"; fi
  echo "dpkg: error processing libcrash on $VZ_HOST" >&2
  exit 1
fi
echo "applied %[1]s" >> "$d/state.log"
`, tag)),
		dir + "verify.sh": []byte(pre + fmt.Sprintf("sleep 0.05\n[ \"$last\" = \"applied %s\" ]\n", tag)),
		dir + "rollback.sh": []byte(pre + fmt.Sprintf(`sleep 0.3
case "$last" in
  "applied %[1]s"|"half %[1]s") echo "rolled-back %[1]s" >> "$d/state.log" ;;
esac
`, tag)),
	}
}

// merge commits a new revision of the patch to main.
func (w *crashWorld) merge(tag string) {
	w.t.Helper()
	repo, err := gitsource.Open(w.t.Context(), gitsource.Config{URL: w.repo, Dir: w.t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := repo.CommitFiles(w.t.Context(), gitsource.CommitRequest{Branch: "main", Files: w.patchFiles(tag),
		Message: "Merge patch " + crashPatch + " " + tag}); err != nil {
		w.t.Fatal(err)
	}
}

// run starts the reconciler process with kill point k (none when zero) and
// waits for it. It reports whether the process was killed; a process that
// exits on its own must have converged.
func (w *crashWorld) run(k crashKill) (killed bool) {
	t := w.t
	t.Helper()
	w.runs++
	c := crashChild{Repo: w.repo, Clone: filepath.Join(t.TempDir(), "clone"), DB: w.db, KeyPath: w.fleet.KeyPath,
		KnownHosts: w.fleet.KnownHostsPath, KillWrite: k.write, KillMatch: k.match, KillBefore: k.before}
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashChild+"="+string(raw))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var stdout []string
	seen := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		stdout = append(stdout, line)
		if k.cmd != "" && strings.HasPrefix(line, "cmd "+k.cmd) {
			if seen++; seen == k.nth {
				// The scripts sleep 0.05–0.3 s: this lands while the
				// command is starting or running on the host.
				time.Sleep(80 * time.Millisecond)
				_ = cmd.Process.Signal(syscall.SIGKILL)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			w.kills++
			t.Logf("run %d: SIGKILL %s (%s)", w.runs, k, lastLine(stdout))
			w.noteInFlight()
			return true
		}
	}
	if err != nil || !slices.Contains(stdout, "converged") {
		t.Fatalf("run %d (kill %s): %v\nstdout:\n%s\nstderr:\n%s", w.runs, k, err, strings.Join(stdout, "\n"), stderr.String())
	}
	t.Logf("run %d: converged (kill point %s not reached)", w.runs, k)
	return false
}

func lastLine(lines []string) string {
	if len(lines) == 0 {
		return "no output"
	}
	return lines[len(lines)-1]
}

// noteInFlight records the steps a kill left started without a result.
func (w *crashWorld) noteInFlight() {
	st := w.open()
	defer st.Close()
	ros, err := st.ListRollouts(w.t.Context(), store.RolloutFilter{})
	if err != nil {
		w.t.Fatal(err)
	}
	for _, ro := range ros {
		steps, err := st.ListHostSteps(w.t.Context(), ro.ID)
		if err != nil {
			w.t.Fatal(err)
		}
		for _, s := range steps {
			key := fmt.Sprintf("%d/%s/%s/%s", ro.ID, s.Host, s.Phase, s.StartedAt)
			if s.State == vulnzero.StepStarted && !w.counted[key] {
				w.counted[key] = true
				w.inFlight[fmt.Sprintf("%d/%s/%s", ro.ID, s.Host, s.Phase)]++
			}
		}
	}
}

func (w *crashWorld) open() *sqlite.Store {
	st, err := sqlite.Open(w.t.Context(), w.db, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// schedule runs the reconciler through the kill points in order — stopping
// early if the rollout converges first (a machine slow enough can let a
// command kill land later than planned) — then once more without one, and
// checks that at least minKills kills landed.
func (w *crashWorld) schedule(minKills int, ks ...crashKill) {
	before := w.kills
	converged := false
	for _, k := range ks {
		if !w.run(k) {
			converged = true
			break
		}
	}
	if !converged && w.run(crashKill{}) {
		w.t.Fatal("killed without a kill point")
	}
	if n := w.kills - before; n < minKills {
		w.t.Fatalf("%d of %d kills landed, want at least %d: the schedule no longer covers the rollout", n, len(ks), minKills)
	}
}

// hostLog reads root/<host>/<name>: one entry per line.
func (w *crashWorld) hostLog(host, name string) []string {
	b, err := os.ReadFile(filepath.Join(w.root, host, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

// runsOf counts the runs of phase with tag on host, from runs.log lines
// "<phase> <tag> <pid>".
func (w *crashWorld) runsOf(host string, phase vulnzero.Phase, tag string) int {
	n := 0
	for _, l := range w.hostLog(host, "runs.log") {
		if strings.HasPrefix(l, string(phase)+"_"+tag+"_") {
			n++
		}
	}
	return n
}

// checkRuns: the script of phase, carrying tag, ran once on host in
// rollout ro — or again only as often as kills left its step in flight.
func (w *crashWorld) checkRuns(ro int64, host string, phase vulnzero.Phase, tag string, want int) {
	w.t.Helper()
	got, extra := w.runsOf(host, phase, tag), w.inFlight[fmt.Sprintf("%d/%s/%s", ro, host, phase)]
	if got < want || got > want+extra {
		w.t.Errorf("%s ran %s %s %d time(s); want %d, plus at most %d for runs in flight at a kill", host, phase, tag, got, want, extra)
	}
}

// rollouts returns the apply rollouts, by ID.
func (w *crashWorld) rollouts(st store.Store) []vulnzero.Rollout {
	ros, err := st.ListRollouts(w.t.Context(), store.RolloutFilter{PatchID: crashPatch})
	if err != nil {
		w.t.Fatal(err)
	}
	return ros
}

// TestSIGKILLResume kills the reconciler process at eleven points of a
// canary rollout to six real sshd hosts, then at eight points of the
// rollout of a second revision; each time it is restarted until the
// rollout ends. Every host applies each revision exactly once; nothing is
// skipped, run again after its result was recorded, or left inconsistent.
func TestSIGKILLResume(t *testing.T) {
	f := sshdtest.Start(t, 6)
	w := newCrashWorld(t, f, "r1")

	// Stages: host-1 | 2 more hosts | 3 more; two hosts at a time.
	w.schedule(9,
		crashKill{match: "rollout create"},
		crashKill{cmd: "apply", nth: 1}, // the canary's apply.sh is running
		crashKill{match: "step apply succeeded", before: true},
		crashKill{match: "ledger applied"},
		crashKill{match: "rollout progressing"}, // stage 1 done, stage 2 recorded
		crashKill{cmd: "verify", nth: 1},
		crashKill{write: 3},
		crashKill{cmd: "apply", nth: 2}, // two applies in flight at once
		crashKill{write: 5, before: true},
		crashKill{match: "step verify started"},
		crashKill{match: "rollout succeeded", before: true},
	)
	w.merge("r2")
	w.schedule(6,
		crashKill{match: "rollout create"},
		crashKill{cmd: "apply", nth: 1},
		crashKill{match: "ledger applying"},
		crashKill{match: "rollout progressing", before: true},
		crashKill{cmd: "apply", nth: 3},
		crashKill{write: 4},
		crashKill{match: "step verify succeeded"},
		crashKill{match: "rollout succeeded"},
	)

	st := w.open()
	defer st.Close()
	ros := w.rollouts(st)
	if len(ros) != 2 {
		t.Fatalf("%d rollouts, want one per revision: %+v", len(ros), ros)
	}
	for _, ro := range ros {
		if ro.Kind != vulnzero.RolloutApply || ro.State != vulnzero.RolloutSucceeded {
			t.Errorf("rollout %d: %s %s (%s), want a succeeded apply", ro.ID, ro.Kind, ro.State, ro.Reason)
		}
		steps, err := st.ListHostSteps(t.Context(), ro.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			if s.State != vulnzero.StepSucceeded {
				t.Errorf("rollout %d: %s %s is %s (%s)", ro.ID, s.Host, s.Phase, s.State, s.Error)
			}
		}
		if len(steps) != 2*len(f.Hosts) {
			t.Errorf("rollout %d: %d steps, want apply and verify on %d hosts", ro.ID, len(steps), len(f.Hosts))
		}
	}
	ledger, err := st.ListLedger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ledger) != len(f.Hosts) {
		t.Errorf("%d ledger entries, want one per host", len(ledger))
	}
	last := ros[len(ros)-1]
	for _, e := range ledger {
		if e.State != vulnzero.LedgerApplied || e.Revision != last.Revision || e.RolloutID != last.ID {
			t.Errorf("ledger %s: %s of %s by rollout %d, want applied %s by rollout %d", e.Host, e.State, e.Revision.Short(), e.RolloutID, last.Revision.Short(), last.ID)
		}
	}
	for _, h := range f.Hosts {
		if got, want := w.hostLog(h.Name, "state.log"), []string{"applied_r1", "applied_r2"}; !slices.Equal(got, want) {
			t.Errorf("%s state changes = %q, want %q: each revision applied exactly once", h.Name, got, want)
		}
		for i, tag := range []string{"r1", "r2"} {
			w.checkRuns(ros[i].ID, h.Name, vulnzero.PhaseApply, tag, 1)
			w.checkRuns(ros[i].ID, h.Name, vulnzero.PhaseVerify, tag, 1)
		}
		if n := w.runsOf(h.Name, vulnzero.PhaseRollback, "r1") + w.runsOf(h.Name, vulnzero.PhaseRollback, "r2"); n != 0 {
			t.Errorf("%s rolled back %d time(s), want never", h.Name, n)
		}
	}
	t.Logf("%d runs, %d SIGKILLs; re-runs allowed by in-flight steps: %v", w.runs, w.kills, w.inFlight)
}

// TestSIGKILLDuringRollback: every host's apply fails (dpkg breaks half
// way), so the canary fails and is rolled back, the revision is reverted on
// main and quarantined — with the reconciler killed before, during and
// after the rollback and right after the revert is pushed.
func TestSIGKILLDuringRollback(t *testing.T) {
	f := sshdtest.Start(t, 6)
	w := newCrashWorld(t, f, "r1")
	for _, h := range f.Hosts {
		if err := os.WriteFile(filepath.Join(w.root, h.Name, "broken"), []byte("held\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.schedule(10,
		crashKill{cmd: "apply", nth: 1},
		crashKill{match: "step apply failed"},
		crashKill{match: "rollout failed"},
		crashKill{match: "step rollback started"},
		crashKill{cmd: "rollback", nth: 1}, // rollback.sh is running
		crashKill{match: "step rollback succeeded"},
		crashKill{match: "ledger rolled_back", before: true},
		crashKill{match: "revert pushed"},
		crashKill{match: "quarantine"},
		crashKill{match: "rollout rolled_back", before: true},
	)

	st := w.open()
	defer st.Close()
	ros := w.rollouts(st)
	if len(ros) != 1 {
		t.Fatalf("%d rollouts, want 1: %+v", len(ros), ros)
	}
	ro := ros[0]
	if ro.State != vulnzero.RolloutRolledBack || !strings.Contains(ro.Reason, "apply failed on") {
		t.Errorf("rollout: %s (%s), want rolled_back after the canary's apply failed", ro.State, ro.Reason)
	}
	canary := ro.Stages[0].Hosts
	if len(canary) != 1 {
		t.Fatalf("canary stage hosts = %v", canary)
	}
	q, err := st.ListQuarantined(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].Revision != ro.Revision {
		t.Errorf("quarantined = %+v, want revision %s", q, ro.Revision.Short())
	}
	ledger, err := st.ListLedger(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 1 || ledger[0].Host != canary[0] || ledger[0].State != vulnzero.LedgerRolledBack {
		t.Errorf("ledger = %+v, want only the canary %s, rolled_back", ledger, canary[0])
	}

	// Main holds exactly one revert, and no longer the patch.
	reverts, patchOnMain := crashRevertLog(t, w.repo)
	if reverts != 1 || patchOnMain {
		t.Errorf("main: %d revert commit(s), patch still present: %v; want exactly one revert that removed it", reverts, patchOnMain)
	}
	// Even when the kill landed between the push and its record, the
	// restart finds the revert it wrote.
	if ro.RevertSHA == "" || strings.Contains(ro.Reason, "revert skipped") {
		t.Errorf("rollout records revert %q, reason %q; want the one revert on main", ro.RevertSHA, ro.Reason)
	}

	for _, h := range f.Hosts {
		if h.Name != canary[0] {
			if runs := w.hostLog(h.Name, "runs.log"); len(runs) != 0 {
				t.Errorf("%s is not the canary but ran %q", h.Name, runs)
			}
			continue
		}
		if got, want := w.hostLog(h.Name, "state.log"), []string{"half_r1", "rolled-back_r1"}; !slices.Equal(got, want) {
			t.Errorf("canary %s state changes = %q, want %q: broken once, rolled back exactly once", h.Name, got, want)
		}
		w.checkRuns(ro.ID, h.Name, vulnzero.PhaseApply, "r1", 1)
		w.checkRuns(ro.ID, h.Name, vulnzero.PhaseRollback, "r1", 1)
		if n := w.runsOf(h.Name, vulnzero.PhaseVerify, "r1"); n != 0 {
			t.Errorf("canary verified %d time(s) after a failed apply", n)
		}
	}
	t.Logf("%d runs, %d SIGKILLs; re-runs allowed by in-flight steps: %v", w.runs, w.kills, w.inFlight)
}

// crashRevertLog counts revert commits on main of the bare repository and
// says whether main's head still holds the patch.
func crashRevertLog(t *testing.T, repo string) (reverts int, patchOnMain bool) {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", repo, "log", "--format=%s", "main").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(s, "Revert ") {
			reverts++
		}
	}
	err = exec.Command("git", "--git-dir", repo, "cat-file", "-e", "main:patches/"+crashPatch).Run()
	return reverts, err == nil
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
