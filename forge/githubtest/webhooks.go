package githubtest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // G505: X-Hub-Signature is GitHub's legacy HMAC-SHA1, sent alongside the SHA-256 one
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Delivery is one webhook the server sent.
type Delivery struct {
	Event  string // X-GitHub-Event
	ID     string // X-GitHub-Delivery
	Action string // the payload's action, if any
	Body   []byte
	Status int   // the receiver's response code; 0 when the request failed
	Err    error // why the request failed
}

// deliverer sends webhooks one at a time, in the order they happened, from
// its own goroutine (GitHub delivers asynchronously too: the API call that
// caused an event returns before the hook is delivered).
type deliverer struct {
	mu      sync.Mutex
	url     string
	secret  string
	queue   chan Delivery
	pending sync.WaitGroup
	done    []Delivery
	closed  chan struct{}
	client  *http.Client
}

func newDeliverer(url, secret string) *deliverer {
	d := &deliverer{url: url, secret: secret, queue: make(chan Delivery, 256), closed: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second}}
	go d.loop()
	return d
}

func (d *deliverer) set(url, secret string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.url, d.secret = url, secret
}

func (d *deliverer) enqueue(event string, payload map[string]any) {
	d.mu.Lock()
	url := d.url
	d.mu.Unlock()
	if url == "" {
		return
	}
	body, err := json.Marshal(payload)
	if err != nil {
		panic(err) // payloads are built here from plain values
	}
	action, _ := payload["action"].(string)
	d.pending.Add(1)
	select {
	case d.queue <- Delivery{Event: event, ID: uuid(), Action: action, Body: body}:
	case <-d.closed:
		d.pending.Done()
	}
}

func (d *deliverer) loop() {
	for {
		select {
		case <-d.closed:
			return
		case del := <-d.queue:
			d.send(&del)
			d.mu.Lock()
			d.done = append(d.done, del)
			d.mu.Unlock()
			d.pending.Done()
		}
	}
}

// Sign is the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (d *deliverer) send(del *Delivery) {
	d.mu.Lock()
	url, secret := d.url, d.secret
	d.mu.Unlock()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(del.Body))
	if err != nil {
		del.Err = err
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/githubtest")
	req.Header.Set("X-GitHub-Event", del.Event)
	req.Header.Set("X-GitHub-Delivery", del.ID)
	req.Header.Set("X-GitHub-Hook-ID", "1")
	req.Header.Set("X-GitHub-Hook-Installation-Target-Type", "repository")
	if secret != "" {
		req.Header.Set("X-Hub-Signature-256", Sign(secret, del.Body))
		m := hmac.New(sha1.New, []byte(secret))
		m.Write(del.Body)
		req.Header.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(m.Sum(nil)))
	}
	resp, err := d.client.Do(req)
	if err != nil {
		del.Err = err
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	del.Status = resp.StatusCode
}

// flush waits until every queued webhook was sent.
func (d *deliverer) flush() { d.pending.Wait() }

func (d *deliverer) list() []Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.done)
}

func (d *deliverer) close() {
	select {
	case <-d.closed:
	default:
		close(d.closed)
	}
}

// uuid is a random version-4 UUID, the shape of X-GitHub-Delivery.
func uuid() string {
	h := randomHex(16)
	return fmt.Sprintf("%s-%s-4%s-a%s-%s", h[0:8], h[8:12], h[13:16], h[17:20], h[20:32])
}

// sendPullRequest queues a pull_request event for p.
func (s *Server) sendPullRequest(action string, p pull, sender string, extra map[string]any) {
	payload := map[string]any{
		"action": action, "number": p.Number, "pull_request": s.pullJSON(p),
		"repository": s.repoJSON(), "sender": s.userJSON(sender),
	}
	for k, v := range extra {
		payload[k] = v
	}
	s.hook.enqueue("pull_request", payload)
}

// sendPush queues a push event for branch moving from before to after
// (either may be empty: created or deleted).
func (s *Server) sendPush(branch, before, after string, who caller) {
	zero := strings.Repeat("0", 40)
	full := s.opts.Owner + "/" + s.opts.Repo
	commitJSON := func(sha string) map[string]any {
		c, err := s.git.commit(sha)
		if err != nil {
			return nil
		}
		orEmpty := func(ss []string) []string {
			if ss == nil {
				return []string{}
			}
			return ss
		}
		return map[string]any{
			"id": c.SHA, "tree_id": c.Tree, "distinct": true, "message": c.Message, "timestamp": c.When.Format(time.RFC3339),
			"url":       s.URL + "/" + full + "/commit/" + c.SHA,
			"author":    map[string]any{"name": c.Author.name, "email": c.Author.email, "username": c.Author.name},
			"committer": map[string]any{"name": c.Committer.name, "email": c.Committer.email, "username": c.Committer.name},
			"added":     orEmpty(c.Added), "removed": orEmpty(c.Removed), "modified": orEmpty(c.Modif),
		}
	}
	commits := []any{}
	var head any
	if after != "" {
		for _, sha := range s.git.between(before, after) {
			if c := commitJSON(sha); c != nil {
				commits = append(commits, c)
			}
		}
		if c := commitJSON(after); c != nil {
			head = c
		}
	}
	b, a := before, after
	if b == "" {
		b = zero
	}
	if a == "" {
		a = zero
	}
	// A push payload's repository is the older shape: the owner carries a
	// name and email, and stargazers is there beside stargazers_count.
	repo := s.repoJSON()
	owner := repo["owner"].(map[string]any)
	owner["name"], owner["email"] = s.opts.Owner, nil
	repo["stargazers"] = 0
	s.hook.enqueue("push", map[string]any{
		"ref": "refs/heads/" + branch, "before": b, "after": a,
		"created": before == "", "deleted": after == "", "forced": false, "base_ref": nil,
		"compare": fmt.Sprintf("%s/%s/compare/%s...%s", s.URL, full, b[:12], a[:12]),
		"commits": commits, "head_commit": head, "repository": repo,
		"pusher": map[string]any{"name": who.login, "email": who.login + "@users.noreply.github.com"},
		"sender": s.userJSON(who.login),
	})
}

// pushed sends what GitHub sends after a git push: a push event per moved
// branch, and pull_request synchronize for open PRs whose head moved.
func (s *Server) pushed(before, after map[string]string, who caller) {
	var branches []string
	for b := range after {
		branches = append(branches, b)
	}
	for b := range before {
		if _, ok := after[b]; !ok {
			branches = append(branches, b)
		}
	}
	slices.Sort(branches)
	for _, b := range branches {
		old, cur := before[b], after[b]
		if old == cur {
			continue
		}
		s.sendPush(b, old, cur, who)
		if cur == "" {
			continue
		}
		s.mu.Lock()
		var synced []pull
		for _, p := range s.pulls {
			if p.State == "open" && p.Head == b {
				p.HeadSHA, p.UpdatedAt = cur, s.now()
				synced = append(synced, *p)
			}
		}
		s.mu.Unlock()
		for _, p := range synced {
			p.BaseSHA = s.git.head(p.Base)
			s.sendPullRequest("synchronize", p, who.login, map[string]any{"before": old, "after": cur})
		}
	}
}
