package githubtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.repoJSON())
}

// getRef is GET git/ref/heads/{branch}.
func (s *Server) getRef(w http.ResponseWriter, r *http.Request) {
	branch, ok := strings.CutPrefix(r.PathValue("ref"), "heads/")
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	sha := s.git.head(branch)
	if sha == "" {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.refJSON(branch, sha))
}

// snapshot returns a copy of PR n with an open PR's head and base brought
// up to date with the branches; nil when there is no PR n.
func (s *Server) snapshot(n int) *pull {
	s.mu.Lock()
	if n < 1 || n > len(s.pulls) {
		s.mu.Unlock()
		return nil
	}
	p := *s.pulls[n-1]
	s.mu.Unlock()
	if p.State == "open" {
		if h := s.git.head(p.Head); h != "" {
			p.HeadSHA = h
		}
		if b := s.git.head(p.Base); b != "" {
			p.BaseSHA = b
		}
	}
	return &p
}

func (s *Server) pullNumber(w http.ResponseWriter, r *http.Request) (*pull, bool) {
	n, err := strconv.Atoi(r.PathValue("n"))
	p := s.snapshot(n)
	if err != nil || p == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return nil, false
	}
	return p, true
}

func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	head := q.Get("head")
	if owner, branch, ok := strings.Cut(head, ":"); ok {
		if owner != s.opts.Owner {
			writeJSON(w, http.StatusOK, []any{})
			return
		}
		head = branch
	}
	s.mu.Lock()
	n := len(s.pulls)
	s.mu.Unlock()
	var out []*pull
	for i := 1; i <= n; i++ {
		p := s.snapshot(i)
		if (state != "all" && p.State != state) || (head != "" && p.Head != head) || (q.Get("base") != "" && p.Base != q.Get("base")) {
			continue
		}
		out = append(out, p)
	}
	if q.Get("direction") != "asc" { // GitHub lists newest first by default
		slices.Reverse(out)
	}
	items := []any{}
	for _, p := range page(w, r, out) {
		items = append(items, s.pullJSON(*p))
	}
	writeJSON(w, http.StatusOK, items)
}

func (s *Server) getPull(w http.ResponseWriter, r *http.Request) {
	if p, ok := s.pullNumber(w, r); ok {
		writeJSON(w, http.StatusOK, s.pullJSON(*p))
	}
}

func (s *Server) createPull(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Title *string `json:"title"`
		Head  string  `json:"head"`
		Base  string  `json:"base"`
		Body  *string `json:"body"`
		Draft bool    `json:"draft"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Title == nil || strings.TrimSpace(*req.Title) == "" {
		writeValidation(w, "PullRequest", "title", "missing_field", "")
		return
	}
	if req.Base == "" {
		writeValidation(w, "PullRequest", "base", "missing_field", "")
		return
	}
	head := req.Head
	if owner, branch, ok := strings.Cut(head, ":"); ok {
		if owner != s.opts.Owner {
			writeValidation(w, "PullRequest", "head", "invalid", "")
			return
		}
		head = branch
	}
	s.git.mu.Lock() // the branches must not move between the checks and the PR
	defer s.git.mu.Unlock()
	headSHA, baseSHA := s.git.head(head), s.git.head(req.Base)
	switch {
	case headSHA == "":
		writeValidation(w, "PullRequest", "head", "invalid", "")
		return
	case baseSHA == "":
		writeValidation(w, "PullRequest", "base", "invalid", "")
		return
	case len(s.git.between(baseSHA, headSHA)) == 0:
		writeValidation(w, "PullRequest", "", "custom", fmt.Sprintf("No commits between %s and %s", req.Base, head))
		return
	}
	s.mu.Lock()
	for _, p := range s.pulls {
		if p.State == "open" && p.Head == head && p.Base == req.Base {
			s.mu.Unlock()
			writeValidation(w, "PullRequest", "", "custom", fmt.Sprintf("A pull request already exists for %s:%s.", s.opts.Owner, head))
			return
		}
	}
	now := s.now()
	p := &pull{
		Number: len(s.pulls) + 1, ID: s.id(), Title: *req.Title, Body: req.Body, Head: head, Base: req.Base,
		HeadSHA: headSHA, BaseSHA: baseSHA, State: "open", Draft: req.Draft, User: callerOf(r).login,
		CreatedAt: now, UpdatedAt: now,
	}
	s.pulls = append(s.pulls, p)
	snap := *p
	s.mu.Unlock()
	body := s.pullJSON(snap)
	s.sendPullRequest("opened", snap, callerOf(r).login, nil)
	writeJSON(w, http.StatusCreated, body)
}

// updatePull is PATCH pulls/{n}: title, body, base, state (close/reopen).
func (s *Server) updatePull(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || s.snapshot(n) == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var req struct {
		Title *string `json:"title"`
		Body  *string `json:"body"`
		Base  *string `json:"base"`
		State *string `json:"state"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Base != nil && s.git.head(*req.Base) == "" {
		writeValidation(w, "PullRequest", "base", "invalid", "")
		return
	}
	cur := s.snapshot(n) // with the head as of now, frozen if this closes it
	s.mu.Lock()
	p := s.pulls[n-1]
	now := s.now()
	var actions []string
	if req.Title != nil && *req.Title != p.Title || req.Body != nil && (p.Body == nil || *req.Body != *p.Body) || req.Base != nil && *req.Base != p.Base {
		actions = append(actions, "edited")
	}
	if req.Title != nil {
		p.Title = *req.Title
	}
	if req.Body != nil {
		p.Body = req.Body
	}
	if req.Base != nil {
		p.Base = *req.Base
	}
	if req.State != nil && *req.State != p.State {
		switch *req.State {
		case "closed":
			p.State, p.ClosedAt, p.HeadSHA, p.BaseSHA = "closed", &now, cur.HeadSHA, cur.BaseSHA
			actions = append(actions, "closed")
		case "open":
			if p.Merged {
				s.mu.Unlock()
				writeValidation(w, "PullRequest", "state", "invalid", "Cannot reopen a merged pull request")
				return
			}
			for _, o := range s.pulls {
				if o.State == "open" && o.Head == p.Head && o.Base == p.Base {
					s.mu.Unlock()
					writeValidation(w, "PullRequest", "", "custom", fmt.Sprintf("A pull request already exists for %s:%s.", s.opts.Owner, p.Head))
					return
				}
			}
			p.State, p.ClosedAt = "open", nil
			actions = append(actions, "reopened")
		default:
			s.mu.Unlock()
			writeValidation(w, "PullRequest", "state", "invalid", "")
			return
		}
	}
	p.UpdatedAt = now
	s.mu.Unlock()
	snap := s.snapshot(n)
	for _, a := range actions {
		s.sendPullRequest(a, *snap, callerOf(r).login, nil)
	}
	writeJSON(w, http.StatusOK, s.pullJSON(*snap))
}

// mergePull is PUT pulls/{n}/merge: a real merge (or squash) commit on the
// base branch, then the pull_request closed and push webhooks.
func (s *Server) mergePull(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || s.snapshot(n) == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var req struct {
		CommitTitle   string `json:"commit_title"`
		CommitMessage string `json:"commit_message"`
		SHA           string `json:"sha"`
		MergeMethod   string `json:"merge_method"`
	}
	if !decode(w, r, &req) {
		return
	}
	squash := false
	switch req.MergeMethod {
	case "", "merge":
	case "squash":
		squash = true
	default:
		writeValidation(w, "PullRequest", "merge_method", "invalid", "Merge method "+req.MergeMethod+" is not supported by this server")
		return
	}
	s.git.mu.Lock()
	defer s.git.mu.Unlock()
	p := s.snapshot(n)
	if p.State != "open" {
		writeError(w, http.StatusMethodNotAllowed, "Pull Request is not mergeable")
		return
	}
	if req.SHA != "" && req.SHA != p.HeadSHA {
		writeError(w, http.StatusConflict, "Head branch was modified. Review and try the merge again.")
		return
	}
	who := callerOf(r).login
	title := req.CommitTitle
	if title == "" {
		title = fmt.Sprintf("Merge pull request #%d from %s/%s", n, s.opts.Owner, p.Head)
		if squash {
			title = fmt.Sprintf("%s (#%d)", p.Title, n)
		}
	}
	msg := title
	if body := req.CommitMessage; body != "" {
		msg += "\n\n" + body
	} else if !squash {
		msg += "\n\n" + p.Title
	}
	baseBefore := p.BaseSHA
	sha, err := s.git.merge(p.Base, p.HeadSHA, msg, squash, signature{who, who + "@users.noreply.github.com"}, s.now())
	if errors.Is(err, errConflict) {
		writeError(w, http.StatusMethodNotAllowed, "Merge conflict")
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.mu.Lock()
	stored := s.pulls[n-1]
	now := s.now()
	stored.State, stored.Merged, stored.MergeSHA, stored.MergedBy = "closed", true, sha, who
	stored.HeadSHA, stored.BaseSHA = p.HeadSHA, baseBefore
	stored.MergedAt, stored.ClosedAt, stored.UpdatedAt = &now, &now, now
	snap := *stored
	s.mu.Unlock()
	s.sendPullRequest("closed", snap, who, nil)
	s.sendPush(p.Base, baseBefore, sha, caller{login: who})
	writeJSON(w, http.StatusOK, map[string]any{"sha": sha, "merged": true, "message": "Pull Request successfully merged"})
}

func (s *Server) isMerged(w http.ResponseWriter, r *http.Request) {
	p, ok := s.pullNumber(w, r)
	if !ok {
		return
	}
	if !p.Merged {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// addLabels is POST issues/{n}/labels with ["a","b"] or {"labels": [...]}.
func (s *Server) addLabels(w http.ResponseWriter, r *http.Request) {
	p, ok := s.pullNumber(w, r)
	if !ok {
		return
	}
	var raw json.RawMessage
	if !decode(w, r, &raw) {
		return
	}
	var names []string
	if json.Unmarshal(raw, &names) != nil {
		var obj struct {
			Labels []string `json:"labels"`
		}
		if json.Unmarshal(raw, &obj) != nil {
			writeError(w, http.StatusBadRequest, "Problems parsing JSON")
			return
		}
		names = obj.Labels
	}
	for _, l := range names {
		if strings.TrimSpace(l) == "" || len(l) > 50 {
			writeValidation(w, "Label", "name", "invalid", "")
			return
		}
	}
	s.mu.Lock()
	stored := s.pulls[p.Number-1]
	for _, l := range names {
		if !slices.Contains(stored.Labels, l) {
			stored.Labels = append(stored.Labels, l)
		}
	}
	all := slices.Clone(stored.Labels)
	s.mu.Unlock()
	out := []any{}
	for _, l := range all {
		out = append(out, s.labelJSON(l))
	}
	writeJSON(w, http.StatusOK, out)
}
