package githubtest

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

type comment struct {
	ID        int64
	Body      string
	User      string
	CreatedAt time.Time
}

func (s *Server) commentJSON(n int, c comment) map[string]any {
	full := s.opts.Owner + "/" + s.opts.Repo
	return map[string]any{
		"id": c.ID, "node_id": nodeID("IC", c.ID),
		"url":       fmt.Sprintf("%srepos/%s/issues/comments/%d", s.APIURL, full, c.ID),
		"html_url":  fmt.Sprintf("%s/%s/pull/%d#issuecomment-%d", s.URL, full, n, c.ID),
		"issue_url": fmt.Sprintf("%srepos/%s/issues/%d", s.APIURL, full, n),
		"body":      c.Body, "user": s.userJSON(c.User), "created_at": ts(c.CreatedAt), "updated_at": ts(c.CreatedAt),
		"author_association": "CONTRIBUTOR", "performed_via_github_app": nil,
	}
}

func (s *Server) createComment(w http.ResponseWriter, r *http.Request) {
	p, ok := s.pullNumber(w, r)
	if !ok {
		return
	}
	var req struct {
		Body string `json:"body"`
	}
	if !decode(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Body) == "" {
		writeValidation(w, "IssueComment", "body", "missing_field", "")
		return
	}
	if len(req.Body) > 65536 {
		writeValidation(w, "IssueComment", "body", "custom", "Body is too long (maximum is 65536 characters)")
		return
	}
	s.mu.Lock()
	c := &comment{ID: s.id(), Body: req.Body, User: callerOf(r).login, CreatedAt: s.now()}
	s.comments[p.Number] = append(s.comments[p.Number], c)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.commentJSON(p.Number, *c))
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request) {
	p, ok := s.pullNumber(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var cs []comment
	for _, c := range s.comments[p.Number] {
		cs = append(cs, *c)
	}
	s.mu.Unlock()
	out := []any{}
	for _, c := range page(w, r, cs) {
		out = append(out, s.commentJSON(p.Number, c))
	}
	writeJSON(w, http.StatusOK, out)
}

type status struct {
	ID          int64
	State       string
	Description *string
	TargetURL   *string
	Context     string
	Creator     string
	CreatedAt   time.Time
}

func (s *Server) statusJSON(sha string, st status, withCreator bool) map[string]any {
	m := map[string]any{
		"url": s.APIURL + "repos/" + s.opts.Owner + "/" + s.opts.Repo + "/statuses/" + sha,
		"id":  st.ID, "node_id": nodeID("SC", st.ID), "state": st.State, "context": st.Context,
		"avatar_url": s.URL + "/avatars/u/" + st.Creator,
		"created_at": ts(st.CreatedAt), "updated_at": ts(st.CreatedAt),
	}
	m["description"], m["target_url"] = nil, nil
	if st.Description != nil {
		m["description"] = *st.Description
	}
	if st.TargetURL != nil {
		m["target_url"] = *st.TargetURL
	}
	if withCreator {
		m["creator"] = s.userJSON(st.Creator)
	}
	return m
}

func isSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// createStatus is POST statuses/{sha}; the commit must exist.
func (s *Server) createStatus(w http.ResponseWriter, r *http.Request) {
	sha := r.PathValue("sha")
	var req struct {
		State       string  `json:"state"`
		TargetURL   *string `json:"target_url"`
		Description *string `json:"description"`
		Context     *string `json:"context"`
	}
	if !decode(w, r, &req) {
		return
	}
	if !isSHA(sha) || !s.git.commitExists(sha) {
		writeValidation(w, "Status", "sha", "custom", "No commit found for SHA: "+sha)
		return
	}
	switch req.State {
	case "error", "failure", "pending", "success":
	default:
		writeValidation(w, "Status", "state", "custom", "State is not included in the list")
		return
	}
	ctxName := "default"
	if req.Context != nil {
		ctxName = *req.Context
	}
	if len(ctxName) > 255 {
		writeValidation(w, "Status", "context", "custom", "Context is too long (maximum is 255 characters)")
		return
	}
	if req.Description != nil && len([]rune(*req.Description)) > 140 {
		writeValidation(w, "Status", "description", "custom", "Description is too long (maximum is 140 characters)")
		return
	}
	s.mu.Lock()
	st := &status{ID: s.id(), State: req.State, Description: req.Description, TargetURL: req.TargetURL, Context: ctxName, Creator: callerOf(r).login, CreatedAt: s.now()}
	s.statuses[sha] = append(s.statuses[sha], st)
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.statusJSON(sha, *st, true))
}

// latestStatuses returns the newest status per context.
func (s *Server) latestStatuses(sha string) []status {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var out []status
	all := s.statuses[sha]
	for i := len(all) - 1; i >= 0; i-- {
		if !seen[all[i].Context] {
			seen[all[i].Context] = true
			out = append(out, *all[i])
		}
	}
	return out
}

// combinedStatus is GET commits/{ref}/status.
func (s *Server) combinedStatus(w http.ResponseWriter, r *http.Request) {
	sha, ok := s.resolve(w, r.PathValue("ref"))
	if !ok {
		return
	}
	latest := s.latestStatuses(sha)
	state := "success"
	if len(latest) == 0 {
		state = "pending"
	}
	for _, st := range latest {
		switch {
		case st.State == "error" || st.State == "failure":
			state = "failure"
		case st.State == "pending" && state != "failure":
			state = "pending"
		}
	}
	items := []any{}
	for _, st := range page(w, r, latest) {
		items = append(items, s.statusJSON(sha, st, false))
	}
	repo := s.repoJSON()
	api := s.APIURL + "repos/" + s.opts.Owner + "/" + s.opts.Repo
	writeJSON(w, http.StatusOK, map[string]any{
		"state": state, "statuses": items, "sha": sha, "total_count": len(latest), "repository": repo,
		"commit_url": api + "/commits/" + sha, "url": api + "/commits/" + sha + "/status",
	})
}

// listStatuses is GET commits/{ref}/statuses: every status, newest first.
func (s *Server) listStatuses(w http.ResponseWriter, r *http.Request) {
	sha, ok := s.resolve(w, r.PathValue("ref"))
	if !ok {
		return
	}
	s.mu.Lock()
	var all []status
	for _, st := range s.statuses[sha] {
		all = append(all, *st)
	}
	s.mu.Unlock()
	slices.Reverse(all)
	items := []any{}
	for _, st := range page(w, r, all) {
		items = append(items, s.statusJSON(sha, st, true))
	}
	writeJSON(w, http.StatusOK, items)
}

// resolve turns a ref (a commit hash or a branch) into a commit hash, or
// answers 404 as GitHub does for an unknown commit.
func (s *Server) resolve(w http.ResponseWriter, ref string) (string, bool) {
	if isSHA(ref) && s.git.commitExists(ref) {
		return ref, true
	}
	if sha := s.git.head(ref); sha != "" {
		return sha, true
	}
	writeError(w, http.StatusNotFound, "No commit found for SHA: "+ref)
	return "", false
}

type checkRun struct {
	ID                     int64
	Name, HeadSHA          string
	Status                 string // queued, in_progress, completed
	Conclusion             *string
	DetailsURL, ExternalID string
	Title, Summary, Text   *string
	StartedAt              time.Time
	CompletedAt            *time.Time
}

func (s *Server) checkRunJSON(c checkRun) map[string]any {
	api := s.APIURL + "repos/" + s.opts.Owner + "/" + s.opts.Repo
	var conclusion any
	if c.Conclusion != nil {
		conclusion = *c.Conclusion
	}
	app := s.opts.App
	appID := int64(0)
	slug := ""
	if app != nil {
		appID, slug = app.ID, app.Slug
	}
	str := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	var prs []any
	s.mu.Lock()
	for _, p := range s.pulls {
		if p.State == "open" && p.HeadSHA == c.HeadSHA {
			prs = append(prs, map[string]any{"id": p.ID, "number": p.Number, "url": fmt.Sprintf("%s/pulls/%d", api, p.Number),
				"head": map[string]any{"ref": p.Head, "sha": p.HeadSHA, "repo": map[string]any{"id": repoID, "name": s.opts.Repo, "url": api}},
				"base": map[string]any{"ref": p.Base, "sha": p.BaseSHA, "repo": map[string]any{"id": repoID, "name": s.opts.Repo, "url": api}}})
		}
	}
	s.mu.Unlock()
	if prs == nil {
		prs = []any{}
	}
	return map[string]any{
		"id": c.ID, "node_id": nodeID("CR", c.ID), "head_sha": c.HeadSHA, "external_id": c.ExternalID,
		"url":         fmt.Sprintf("%s/check-runs/%d", api, c.ID),
		"html_url":    fmt.Sprintf("%s/%s/%s/runs/%d", s.URL, s.opts.Owner, s.opts.Repo, c.ID),
		"details_url": c.DetailsURL, "status": c.Status, "conclusion": conclusion, "name": c.Name,
		"started_at": ts(c.StartedAt), "completed_at": tsPtr(c.CompletedAt),
		"output": map[string]any{"title": str(c.Title), "summary": str(c.Summary), "text": str(c.Text), "annotations_count": 0,
			"annotations_url": fmt.Sprintf("%s/check-runs/%d/annotations", api, c.ID)},
		"check_suite": map[string]any{"id": 1},
		"app": map[string]any{
			"id": appID, "slug": slug, "node_id": nodeID("A", appID), "owner": s.userJSON(s.opts.Owner), "name": slug,
			"description": "", "external_url": s.URL, "html_url": s.URL + "/apps/" + slug,
			"created_at": ts(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)), "updated_at": ts(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		},
		"pull_requests": prs,
	}
}

// checkRunRequest is the body of POST check-runs and PATCH check-runs/{id}.
type checkRunRequest struct {
	Name        *string    `json:"name"`
	HeadSHA     string     `json:"head_sha"`
	DetailsURL  *string    `json:"details_url"`
	ExternalID  *string    `json:"external_id"`
	Status      *string    `json:"status"`
	Conclusion  *string    `json:"conclusion"`
	StartedAt   *time.Time `json:"started_at"`
	CompletedAt *time.Time `json:"completed_at"`
	Output      *struct {
		Title   *string `json:"title"`
		Summary *string `json:"summary"`
		Text    *string `json:"text"`
	} `json:"output"`
}

// apply validates req onto c, as a create (all of it) or an update.
func (s *Server) applyCheckRun(c *checkRun, req checkRunRequest) string {
	if req.Name != nil {
		c.Name = *req.Name
	}
	if req.DetailsURL != nil {
		c.DetailsURL = *req.DetailsURL
	}
	if req.ExternalID != nil {
		c.ExternalID = *req.ExternalID
	}
	if req.Status != nil {
		switch *req.Status {
		case "queued", "in_progress", "completed":
			c.Status = *req.Status
		default:
			return "status"
		}
	}
	if req.Conclusion != nil {
		switch *req.Conclusion {
		case "action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out":
			c.Conclusion = req.Conclusion
			c.Status = "completed" // GitHub: a conclusion completes the run
		default:
			return "conclusion"
		}
	} else if req.Status != nil && *req.Status != "completed" {
		c.Conclusion, c.CompletedAt = nil, nil
	}
	if c.Status == "completed" && c.Conclusion == nil {
		return "conclusion"
	}
	if req.StartedAt != nil {
		c.StartedAt = req.StartedAt.UTC()
	}
	if c.Status == "completed" {
		at := s.now()
		if req.CompletedAt != nil {
			at = req.CompletedAt.UTC()
		}
		c.CompletedAt = &at
	}
	if o := req.Output; o != nil {
		if o.Title != nil {
			c.Title = o.Title
		}
		if o.Summary != nil {
			c.Summary = o.Summary
		}
		if o.Text != nil {
			c.Text = o.Text
		}
	}
	if strings.TrimSpace(c.Name) == "" {
		return "name"
	}
	return ""
}

// createCheckRun is POST check-runs; only a GitHub App may call it.
func (s *Server) createCheckRun(w http.ResponseWriter, r *http.Request) {
	if !callerOf(r).app {
		writeError(w, http.StatusForbidden, "You must authenticate via a GitHub App.")
		return
	}
	var req checkRunRequest
	if !decode(w, r, &req) {
		return
	}
	if !isSHA(req.HeadSHA) || !s.git.commitExists(req.HeadSHA) {
		writeValidation(w, "CheckRun", "head_sha", "invalid", "No commit found for SHA: "+req.HeadSHA)
		return
	}
	c := &checkRun{HeadSHA: req.HeadSHA, Status: "queued", StartedAt: s.now()}
	if field := s.applyCheckRun(c, req); field != "" {
		writeValidation(w, "CheckRun", field, "invalid", "")
		return
	}
	s.mu.Lock()
	c.ID = s.id()
	s.checkRuns = append(s.checkRuns, c)
	snap := *c
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, s.checkRunJSON(snap))
}

func (s *Server) updateCheckRun(w http.ResponseWriter, r *http.Request) {
	if !callerOf(r).app {
		writeError(w, http.StatusForbidden, "You must authenticate via a GitHub App.")
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var req checkRunRequest
	if !decode(w, r, &req) {
		return
	}
	s.mu.Lock()
	var found *checkRun
	for _, c := range s.checkRuns {
		if c.ID == id {
			found = c
		}
	}
	if found == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	c := *found
	s.mu.Unlock()
	if field := s.applyCheckRun(&c, req); field != "" {
		writeValidation(w, "CheckRun", field, "invalid", "")
		return
	}
	s.mu.Lock()
	*found = c
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.checkRunJSON(c))
}

// listCheckRuns is GET commits/{ref}/check-runs with check_name, status
// and filter (latest, the default: the newest run per name; or all).
func (s *Server) listCheckRuns(w http.ResponseWriter, r *http.Request) {
	sha, ok := s.resolve(w, r.PathValue("ref"))
	if !ok {
		return
	}
	q := r.URL.Query()
	s.mu.Lock()
	var runs []checkRun
	seen := map[string]bool{}
	for i := len(s.checkRuns) - 1; i >= 0; i-- {
		c := s.checkRuns[i]
		if c.HeadSHA != sha || (q.Get("check_name") != "" && c.Name != q.Get("check_name")) ||
			(q.Get("status") != "" && c.Status != q.Get("status")) {
			continue
		}
		if q.Get("filter") != "all" {
			if seen[c.Name] {
				continue
			}
			seen[c.Name] = true
		}
		runs = append(runs, *c)
	}
	s.mu.Unlock()
	items := []any{}
	for _, c := range page(w, r, runs) {
		items = append(items, s.checkRunJSON(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"total_count": len(runs), "check_runs": items})
}
