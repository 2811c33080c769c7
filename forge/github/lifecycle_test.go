package github_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/forge/github"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/server"
	"vulnzero.dev/vulnzero/store/sqlite"
)

const lifecycleInventory = `hosts:
  - name: web-1
    address: 127.0.0.1
  - name: web-2
    address: 127.0.0.2
`

// The remediation repository's policy: automatic rollbacks are written as
// revert pull requests.
const lifecyclePolicy = `apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: default
spec:
  strategy: canary
  revert: pull-request
  stages:
    - hosts: "1"
      maxFailures: "0"
      soak: 10m
    - hosts: "100%"
      maxFailures: "0"
`

// gitDesired is the reconciler's Source over a gitsource clone (as the
// wiring in cmd/vulnzero does): fetch, then read main's head.
type gitDesired struct{ repo *gitsource.Repo }

func (g gitDesired) Desired(ctx context.Context) (reconciler.Desired, error) {
	if err := g.repo.Fetch(ctx); err != nil {
		return reconciler.Desired{}, err
	}
	head, err := g.repo.Head(ctx, g.repo.Branch())
	if err != nil {
		return reconciler.Desired{}, err
	}
	st, err := g.repo.State(ctx, head)
	if err != nil {
		return reconciler.Desired{}, err
	}
	return reconciler.Desired{Commit: st.Commit, Patches: st.Patches, Inventory: st.Inventory, Policies: st.Policies}, nil
}

// brokenVerify is the fleet: every command succeeds except verify.sh, which
// finds the package still vulnerable — so the canary fails.
type brokenVerify struct {
	mu    sync.Mutex
	calls []string
}

func (b *brokenVerify) Run(ctx context.Context, h vulnzero.Host, cmd fleet.Command) (fleet.Result, error) {
	phase := cmd.Env["VZ_PHASE"]
	b.mu.Lock()
	b.calls = append(b.calls, h.Name+":"+phase)
	b.mu.Unlock()
	res := fleet.Result{Host: h.Name, Started: time.Now(), Stdout: "ran " + phase + "\n"}
	if phase == string(vulnzero.PhaseVerify) {
		res.ExitCode, res.Stderr = 1, "libfoo 1.0.0 is still installed\n"
	}
	return res, nil
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestPullRequestLifecycle drives a patch through GitHub as VulnZero does,
// against the GitHub test server and through go-github: open the PR →
// statuses → merge → the server delivers the signed merge webhooks to the
// real webhook handler → which triggers a real reconcile (desired state
// read over git smart HTTP, SQLite store, a fleet whose verify fails) →
// the canary fails and rolls back → the revert is opened as a PR through
// forge/github, built by gitsource on its own branch.
func TestPullRequestLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{files: map[string][]byte{
		"inventory/hosts.yaml":  []byte(lifecycleInventory),
		"policies/rollout.yaml": []byte(lifecyclePolicy),
		"README.md":             []byte("# remediation\n"),
	}})

	// The reconciler side: its own clone over smart HTTP, a real store.
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vulnzero.db"), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	recRepo, err := gitsource.Open(ctx, gitsource.Config{URL: e.srv.GitURL, Dir: filepath.Join(dir, "clone"), Auth: e.client.GitAuth(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	fleetRunner := &brokenVerify{}
	rec, err := reconciler.New(reconciler.Config{
		Source: gitDesired{recRepo}, Runner: fleetRunner, Store: st,
		Reverter:   recRepo,
		PRReverter: github.RevertPR{Git: recRepo, Forge: e.client, Logger: testLogger()},
		Wait:       func(ctx context.Context, d time.Duration) error { return ctx.Err() },
		Logger:     testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}

	// The webhook receiver: the real handler; a reconcile request runs a
	// real RunOnce, and twin requests are recorded.
	var runs sync.WaitGroup
	var mu sync.Mutex
	var reports []reconciler.Report
	var runErrs []error
	var twins []string
	hook, err := server.NewGitHubWebhook(server.GitHubWebhookConfig{
		Secret: []byte("lifecycle-secret"), Branch: "main", Repo: "vulnzero/remediation",
		Reconcile: func() {
			runs.Add(1)
			go func() {
				defer runs.Done()
				rep, err := rec.RunOnce(ctx)
				mu.Lock()
				defer mu.Unlock()
				reports, runErrs = append(reports, rep), append(runErrs, err)
			}()
		},
		TwinRun: func(_ context.Context, pr int, head string) error {
			mu.Lock()
			defer mu.Unlock()
			twins = append(twins, fmt.Sprintf("#%d@%s", pr, head[:12]))
			return nil
		},
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	receiver := httptest.NewServer(hook)
	defer receiver.Close()
	e.srv.SetWebhook(receiver.URL, "lifecycle-secret")

	// 1. Propose: push the patch branch over git, open the PR.
	patchID := "apt-libfoo-1.0.1-0a1b2c3d"
	head := e.push(t, forge.Branch(patchID), patchID)
	pr, err := e.client.OpenPR(ctx, forge.NewPR{Branch: forge.Branch(patchID), Title: "Upgrade libfoo to 1.0.1", Body: "Fixes CVE-2026-10001", HeadSHA: head})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.AddLabels(ctx, pr.Number, "severity:high"); err != nil {
		t.Fatal(err)
	}

	// 2. The twin reports on the head.
	for _, phase := range []string{"apply", "verify", "rollback"} {
		for _, state := range []vulnzero.StatusState{vulnzero.StatusPending, vulnzero.StatusSuccess} {
			if err := e.client.SetStatus(ctx, vulnzero.CommitStatus{SHA: head, Context: "vulnzero/twin/" + phase, State: state,
				Description: phase + " " + string(state), TargetURL: "http://127.0.0.1:8080/transcripts/1"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sts, err := e.client.Statuses(ctx, head)
	if err != nil || len(sts) != 3 || sts[0].State != vulnzero.StatusSuccess {
		t.Fatalf("statuses = %+v, %v", sts, err)
	}

	// 3. Merge through go-github; GitHub (the test server) sends the
	// merge's webhooks, which reconcile.
	merged, err := e.client.Merge(ctx, pr.Number)
	if err != nil {
		t.Fatal(err)
	}
	if merged.State != vulnzero.PRMerged || merged.MergeSHA == "" {
		t.Fatalf("merged = %+v", merged)
	}
	deliveries := e.srv.Deliveries() // waits for them to be delivered
	runs.Wait()

	var got []string
	for _, d := range deliveries {
		got = append(got, fmt.Sprintf("%s.%s=%d", d.Event, d.Action, d.Status))
	}
	t.Logf("webhooks: %s", strings.Join(got, " "))
	mu.Lock()
	nReports := len(reports)
	var failed *reconciler.Outcome
	for i, rep := range reports {
		if runErrs[i] != nil {
			t.Errorf("reconcile %d: %v", i, runErrs[i])
		}
		t.Logf("%s", rep)
		for j, o := range rep.Outcomes {
			if o.RolloutID != 0 && o.State == vulnzero.RolloutRolledBack {
				failed = &rep.Outcomes[j]
			}
		}
	}
	mu.Unlock()
	if nReports == 0 {
		t.Fatal("the merge webhooks triggered no reconcile")
	}
	if failed == nil {
		t.Fatal("no rollout was rolled back")
	}

	// 4. The canary failed and was rolled back on the one host it touched.
	fleetRunner.mu.Lock()
	calls := strings.Join(fleetRunner.calls, " ")
	fleetRunner.mu.Unlock()
	if !strings.Contains(calls, ":apply") || !strings.Contains(calls, ":verify") || !strings.Contains(calls, ":rollback") {
		t.Errorf("fleet calls: %s", calls)
	}
	ro, err := st.GetRollout(ctx, failed.RolloutID)
	if err != nil {
		t.Fatal(err)
	}
	quarantined, err := st.ListQuarantined(ctx)
	if err != nil || len(quarantined) != 1 || quarantined[0].PatchID != patchID {
		t.Errorf("quarantine = %+v, %v", quarantined, err)
	}

	// 5. The revert is a PR, opened through forge/github, on its branch.
	open, err := e.client.ListPRs(ctx, vulnzero.PROpen)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].Branch != github.RevertBranch(patchID, ro.Revision) || open[0].PatchID != patchID {
		t.Fatalf("open PRs after the failed rollout = %+v, want the revert PR", open)
	}
	revert := open[0]
	if ro.RevertSHA != revert.HeadSHA {
		t.Errorf("rollout records revert %s, the PR's head is %s", ro.RevertSHA, revert.HeadSHA)
	}
	if !strings.Contains(revert.Body, "Automatic rollback") || !strings.HasPrefix(revert.Title, "Revert patch "+patchID) {
		t.Errorf("revert PR = %q\n%s", revert.Title, revert.Body)
	}
	bare := e.srv.BareDir
	if ls := gitOut(t, bare, "ls-tree", "--name-only", revert.Branch+":"); strings.Contains(ls, "patches") {
		t.Errorf("the revert branch still has patches/: %s", ls)
	}
	if msg := gitOut(t, bare, "log", "-1", "--format=%B", revert.Branch); !strings.HasPrefix(msg, "Revert \"") || !strings.Contains(msg, "This reverts commit ") {
		t.Errorf("revert commit message:\n%s", msg)
	}
	if mainHead := gitOut(t, bare, "rev-parse", "main"); mainHead != merged.MergeSHA {
		t.Errorf("main moved to %s: in pull-request mode the revert waits for a person", mainHead)
	}

	// The revert PR's opening asked for a twin run of its head, like any PR.
	e.srv.Deliveries()
	mu.Lock()
	defer mu.Unlock()
	if want := fmt.Sprintf("#%d@%s", revert.Number, revert.HeadSHA[:12]); !strings.Contains(strings.Join(twins, " "), want) {
		t.Errorf("twin runs %v, want one for the revert PR %s", twins, want)
	}
}
