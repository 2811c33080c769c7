package githubtest

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// The JSON builders below give every object the fields GitHub's own
// responses carry (see fields_test.go), with URLs that point at this server.

func nodeID(kind string, id int64) string {
	return base64.RawStdEncoding.EncodeToString(fmt.Appendf(nil, "0:%s%d", kind, id))
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

// userID gives logins stable ids.
func userID(login string) int64 {
	var h int64 = 7
	for _, c := range login {
		h = h*31 + int64(c)
	}
	if h < 0 {
		h = -h
	}
	return h%90_000_000 + 1_000_000
}

func (s *Server) userJSON(login string) map[string]any {
	api := s.APIURL + "users/" + login
	typ := "User"
	if strings.HasSuffix(login, "[bot]") {
		typ = "Bot"
	}
	if login == s.opts.Owner {
		typ = "Organization"
	}
	id := userID(login)
	return map[string]any{
		"login": login, "id": id, "node_id": nodeID("U", id),
		"avatar_url": s.URL + "/avatars/u/" + login, "gravatar_id": "",
		"url": api, "html_url": s.URL + "/" + login,
		"followers_url": api + "/followers", "following_url": api + "/following{/other_user}",
		"gists_url": api + "/gists{/gist_id}", "starred_url": api + "/starred{/owner}{/repo}",
		"subscriptions_url": api + "/subscriptions", "organizations_url": api + "/orgs",
		"repos_url": api + "/repos", "events_url": api + "/events{/privacy}",
		"received_events_url": api + "/received_events", "type": typ, "site_admin": false,
	}
}

const repoID = 4242

// repoJSON is the full repository object (as in a pull request's head and
// base, and webhook payloads).
func (s *Server) repoJSON() map[string]any {
	full := s.opts.Owner + "/" + s.opts.Repo
	api := s.APIURL + "repos/" + full
	html := s.URL + "/" + full
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.mu.Lock()
	open := 0
	for _, p := range s.pulls {
		if p.State == "open" {
			open++
		}
	}
	s.mu.Unlock()
	return map[string]any{
		"id": repoID, "node_id": nodeID("R", repoID), "name": s.opts.Repo, "full_name": full,
		"private": true, "owner": s.userJSON(s.opts.Owner), "html_url": html,
		"description": "VulnZero remediation repository", "fork": false, "url": api,
		"forks_url": api + "/forks", "keys_url": api + "/keys{/key_id}",
		"collaborators_url": api + "/collaborators{/collaborator}", "teams_url": api + "/teams",
		"hooks_url": api + "/hooks", "issue_events_url": api + "/issues/events{/number}",
		"events_url": api + "/events", "assignees_url": api + "/assignees{/user}",
		"branches_url": api + "/branches{/branch}", "tags_url": api + "/tags",
		"blobs_url": api + "/git/blobs{/sha}", "git_tags_url": api + "/git/tags{/sha}",
		"git_refs_url": api + "/git/refs{/sha}", "trees_url": api + "/git/trees{/sha}",
		"statuses_url": api + "/statuses/{sha}", "languages_url": api + "/languages",
		"stargazers_url": api + "/stargazers", "contributors_url": api + "/contributors",
		"subscribers_url": api + "/subscribers", "subscription_url": api + "/subscription",
		"commits_url": api + "/commits{/sha}", "git_commits_url": api + "/git/commits{/sha}",
		"comments_url": api + "/comments{/number}", "issue_comment_url": api + "/issues/comments{/number}",
		"contents_url": api + "/contents/{+path}", "compare_url": api + "/compare/{base}...{head}",
		"merges_url": api + "/merges", "archive_url": api + "/{archive_format}{/ref}",
		"downloads_url": api + "/downloads", "issues_url": api + "/issues{/number}",
		"pulls_url": api + "/pulls{/number}", "milestones_url": api + "/milestones{/number}",
		"notifications_url": api + "/notifications{?since,all,participating}",
		"labels_url":        api + "/labels{/name}", "releases_url": api + "/releases{/id}",
		"deployments_url": api + "/deployments",
		"created_at":      ts(created), "updated_at": ts(s.now()), "pushed_at": ts(s.now()),
		"git_url": strings.Replace(s.GitURL, "http://", "git://", 1), "ssh_url": "git@" + strings.TrimPrefix(s.URL, "http://") + ":" + full + ".git",
		"clone_url": s.GitURL, "svn_url": html, "homepage": nil, "size": 1,
		"stargazers_count": 0, "watchers_count": 0, "language": "Shell",
		"has_issues": true, "has_projects": false, "has_downloads": true, "has_wiki": false,
		"has_pages": false, "has_discussions": false, "forks_count": 0, "mirror_url": nil,
		"archived": false, "disabled": false, "open_issues_count": open, "license": nil,
		"allow_forking": false, "is_template": false, "web_commit_signoff_required": false,
		"topics": []string{}, "custom_properties": map[string]any{}, "visibility": "private", "forks": 0, "open_issues": open,
		"watchers": 0, "default_branch": s.opts.DefaultBranch, "master_branch": s.opts.DefaultBranch,
	}
}

// pull is a pull request as the server keeps it.
type pull struct {
	Number    int
	ID        int64
	Title     string
	Body      *string
	Head      string // branch
	Base      string // branch
	HeadSHA   string // frozen once closed; while open the branch's head
	BaseSHA   string
	State     string // open, closed
	Draft     bool
	Merged    bool
	MergeSHA  string
	MergedBy  string
	User      string
	Labels    []string
	CreatedAt time.Time
	UpdatedAt time.Time
	ClosedAt  *time.Time
	MergedAt  *time.Time
}

func (s *Server) labelJSON(name string) map[string]any {
	s.mu.Lock()
	id, ok := s.labels[name]
	if !ok {
		id = s.id()
		s.labels[name] = id
	}
	s.mu.Unlock()
	return map[string]any{
		"id": id, "node_id": nodeID("LA", id), "url": s.APIURL + "repos/" + s.opts.Owner + "/" + s.opts.Repo + "/labels/" + name,
		"name": name, "color": "ededed", "default": false, "description": nil,
	}
}

// pullJSON renders p; the caller does not hold s.mu.
func (s *Server) pullJSON(p pull) map[string]any {
	full := s.opts.Owner + "/" + s.opts.Repo
	api := fmt.Sprintf("%srepos/%s/pulls/%d", s.APIURL, full, p.Number)
	issue := fmt.Sprintf("%srepos/%s/issues/%d", s.APIURL, full, p.Number)
	html := fmt.Sprintf("%s/%s/pull/%d", s.URL, full, p.Number)
	statuses := fmt.Sprintf("%srepos/%s/statuses/%s", s.APIURL, full, p.HeadSHA)
	repo := s.repoJSON()
	owner := s.userJSON(s.opts.Owner)
	labels := []any{}
	for _, l := range p.Labels {
		labels = append(labels, s.labelJSON(l))
	}
	var mergedBy any
	if p.MergedBy != "" {
		mergedBy = s.userJSON(p.MergedBy)
	}
	var body any
	if p.Body != nil {
		body = *p.Body
	}
	var mergeSHA any
	if p.MergeSHA != "" {
		mergeSHA = p.MergeSHA
	}
	var mergeable any = true
	state := "clean"
	if p.State != "open" {
		mergeable, state = nil, "unknown"
	}
	s.mu.Lock()
	ncomments := len(s.comments[p.Number])
	s.mu.Unlock()
	href := func(u string) map[string]any { return map[string]any{"href": u} }
	return map[string]any{
		"url": api, "id": p.ID, "node_id": nodeID("PR", p.ID), "html_url": html,
		"diff_url": html + ".diff", "patch_url": html + ".patch", "issue_url": issue,
		"number": p.Number, "state": p.State, "locked": false, "title": p.Title,
		"user": s.userJSON(p.User), "body": body, "created_at": ts(p.CreatedAt), "updated_at": ts(p.UpdatedAt),
		"closed_at": tsPtr(p.ClosedAt), "merged_at": tsPtr(p.MergedAt), "merge_commit_sha": mergeSHA,
		"assignee": nil, "assignees": []any{}, "requested_reviewers": []any{}, "requested_teams": []any{},
		"labels": labels, "milestone": nil, "draft": p.Draft,
		"commits_url": api + "/commits", "review_comments_url": api + "/comments",
		"review_comment_url": s.APIURL + "repos/" + full + "/pulls/comments{/number}",
		"comments_url":       issue + "/comments", "statuses_url": statuses,
		"head": map[string]any{"label": s.opts.Owner + ":" + p.Head, "ref": p.Head, "sha": p.HeadSHA, "user": owner, "repo": repo},
		"base": map[string]any{"label": s.opts.Owner + ":" + p.Base, "ref": p.Base, "sha": p.BaseSHA, "user": owner, "repo": repo},
		"_links": map[string]any{
			"self": href(api), "html": href(html), "issue": href(issue), "comments": href(issue + "/comments"),
			"review_comments": href(api + "/comments"), "review_comment": href(s.APIURL + "repos/" + full + "/pulls/comments{/number}"),
			"commits": href(api + "/commits"), "statuses": href(statuses),
		},
		"author_association": "CONTRIBUTOR", "auto_merge": nil, "active_lock_reason": nil,
		"merged": p.Merged, "mergeable": mergeable, "rebaseable": mergeable, "mergeable_state": state,
		"merged_by": mergedBy, "comments": ncomments, "review_comments": 0, "maintainer_can_modify": false,
		"commits": 1, "additions": 0, "deletions": 0, "changed_files": 0,
	}
}

// refJSON is a git reference object.
func (s *Server) refJSON(branch, sha string) map[string]any {
	api := s.APIURL + "repos/" + s.opts.Owner + "/" + s.opts.Repo
	return map[string]any{
		"ref": "refs/heads/" + branch, "node_id": nodeID("REF", userID(branch)), "url": api + "/git/refs/heads/" + branch,
		"object": map[string]any{"sha": sha, "type": "commit", "url": api + "/git/commits/" + sha},
	}
}
