package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/forge/local"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/reconciler"
	"vulnzero.dev/vulnzero/store"
	"vulnzero.dev/vulnzero/store/sqlite"
)

const benchRolloutPolicy = `apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: bench
spec:
  strategy: all-at-once
  maxParallel: 10
  stages:
    - {hosts: "100%", maxFailures: "0"}
`

// latencyCmd measures merge → webhook → Trigger → first host command.
func latencyCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	var sf sshFlags
	sf.register(fs)
	merges := fs.Int("merges", 100, "merges to measure")
	targets := fs.Int("targets", 2, "hosts each patch targets (the first ones of the hosts file)")
	verbose := fs.Bool("v", false, "log the reconciler's lines to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := sf.check(); err != nil {
		return err
	}
	inv, err := sf.inventory()
	if err != nil {
		return err
	}
	if *targets < 1 || *targets > len(inv.Hosts) || *merges < 1 {
		return fmt.Errorf("want 1 ≤ --targets ≤ %d hosts and --merges ≥ 1", len(inv.Hosts))
	}
	inv.Hosts = inv.Hosts[:*targets]
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}

	dir, err := os.MkdirTemp("", "vz-bench-latency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	invYAML, err := yaml.Marshal(inv)
	if err != nil {
		return err
	}
	bare := filepath.Join(dir, "remediation.git")
	if _, err := gitsource.InitBare(ctx, bare, "main", map[string][]byte{
		"inventory/hosts.yaml":  invYAML,
		"policies/rollout.yaml": []byte(benchRolloutPolicy),
	}, "Initialize remediation repository", "bench", "bench@localhost"); err != nil {
		return err
	}
	// Two clones, as in production: the forge side (proposer, merges) and
	// the reconciler's, which learns of a merge only by fetching.
	open := func(name string) (*gitsource.Repo, error) {
		return gitsource.Open(ctx, gitsource.Config{URL: bare, Dir: filepath.Join(dir, name), Logger: log})
	}
	forgeRepo, err := open("forge.git")
	if err != nil {
		return err
	}
	recRepo, err := open("reconciler.git")
	if err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "vulnzero.db"), log)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	fg := local.New(forgeRepo, st, log)
	client, err := sf.client(10)
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()

	runner := &firstCommand{r: client, seen: map[string]chan time.Time{}}
	rec, err := reconciler.New(reconciler.Config{Source: gitDesired{recRepo}, Runner: runner, Store: st, Reverter: recRepo,
		Logger: log, PollInterval: time.Hour})
	if err != nil {
		return err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	hookURL, stopHook, err := serveWebhook(secret, rec.Trigger)
	if err != nil {
		return err
	}
	defer stopHook()
	if err := rec.Start(ctx); err != nil {
		return err
	}
	defer rec.Stop()

	names := make([]string, len(inv.Hosts))
	for i, h := range inv.Hosts {
		names[i] = h.Name
	}
	var afterMerge, withMerge []time.Duration
	for i := 1; i <= *merges; i++ {
		p := benchPatch(fmt.Sprintf("bench-%03d", i), fmt.Sprintf("Bench patch %d", i), []byte("echo applied "+fmt.Sprint(i)+"\n"), names)
		first := runner.expect(p.ID)
		branch := forge.Branch(p.ID)
		if _, err := forgeRepo.CommitPatch(ctx, branch, "main", p, "Add "+p.ID); err != nil {
			return err
		}
		pr, err := fg.OpenPR(ctx, forge.NewPR{Branch: branch, Title: p.Title})
		if err != nil {
			return err
		}
		t0 := time.Now()
		merged, err := fg.Merge(ctx, pr.Number)
		if err != nil {
			return err
		}
		t1 := time.Now()
		if err := postPush(ctx, hookURL, secret, merged.MergeSHA); err != nil {
			return err
		}
		var t2 time.Time
		select {
		case t2 = <-first:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("merge %d: no host command within 30s", i)
		case <-ctx.Done():
			return ctx.Err()
		}
		afterMerge = append(afterMerge, t2.Sub(t1))
		withMerge = append(withMerge, t2.Sub(t0))
		if err := waitRollout(ctx, st, p.ID); err != nil {
			return fmt.Errorf("merge %d: %w", i, err)
		}
	}
	fmt.Printf("merge-to-first-host latency over %d merges (webhook → Trigger → first host command; %d target hosts per patch, reconciler poll 1h):\n",
		*merges, *targets)
	fmt.Println("| measured from | p50 | p90 | p99 | max |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| merge commit pushed to main | %s |\n", quantiles(afterMerge))
	fmt.Printf("| merge call started (includes the forge merge) | %s |\n", quantiles(withMerge))
	return nil
}

// quantiles formats p50 | p90 | p99 | max (nearest rank).
func quantiles(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	return fmt.Sprintf("%s | %s | %s | %s", f(q(.5)), f(q(.9)), f(q(.99)), f(s[len(s)-1]))
}

// waitRollout waits for the patch's rollout to end: the next merge starts
// from an idle reconciler.
func waitRollout(ctx context.Context, st store.Store, id string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ros, err := st.ListRollouts(ctx, store.RolloutFilter{PatchID: id})
		if err != nil {
			return err
		}
		if len(ros) > 0 && ros[len(ros)-1].State.Terminal() {
			if ro := ros[len(ros)-1]; ro.State != vulnzero.RolloutSucceeded {
				return fmt.Errorf("rollout %d of %s: %s (%s)", ro.ID, id, ro.State, ro.Reason)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rollout of %s not done after 60s", id)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// gitDesired reads main at its head after a fetch, as serve's wiring does.
type gitDesired struct{ repo *gitsource.Repo }

func (g gitDesired) Desired(ctx context.Context) (reconciler.Desired, error) {
	if err := g.repo.Fetch(ctx); err != nil {
		return reconciler.Desired{}, err
	}
	head, err := g.repo.Head(ctx, g.repo.Branch())
	if err != nil {
		return reconciler.Desired{}, err
	}
	s, err := g.repo.State(ctx, head)
	if err != nil {
		return reconciler.Desired{}, err
	}
	return reconciler.Desired{Commit: s.Commit, Patches: s.Patches, Inventory: s.Inventory, Policies: s.Policies}, nil
}

// firstCommand is the runner's record of when the first command of each
// patch started.
type firstCommand struct {
	r    reconciler.Runner
	mu   sync.Mutex
	seen map[string]chan time.Time // patch → gets the first start time
}

func (f *firstCommand) expect(patch string) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	f.seen[patch] = ch
	return ch
}

func (f *firstCommand) Run(ctx context.Context, h vulnzero.Host, cmd fleet.Command) (fleet.Result, error) {
	now := time.Now()
	f.mu.Lock()
	if ch, ok := f.seen[cmd.Env["VZ_PATCH_ID"]]; ok {
		ch <- now
		delete(f.seen, cmd.Env["VZ_PATCH_ID"])
	}
	f.mu.Unlock()
	return f.r.Run(ctx, h, cmd)
}

// serveWebhook serves a GitHub-style push webhook on loopback: the HMAC-SHA256
// signature is checked, then trigger is called.
func serveWebhook(secret []byte, trigger func()) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhook", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if !hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte(signature(secret, body))) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.Header.Get("X-GitHub-Event") == "push" {
			trigger()
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String() + "/webhook", func() { _ = srv.Close() }, nil
}

func signature(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// postPush sends the push event for a new head of main.
func postPush(ctx context.Context, url string, secret []byte, sha string) error {
	body, err := json.Marshal(map[string]any{"ref": "refs/heads/main", "after": sha})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", signature(secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("webhook: %s: %w", resp.Status, errors.New("not delivered"))
	}
	return nil
}
