package source

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"vulnzero.dev/vulnzero/scan"
)

// formatWazuh is the scan format of every Wazuh shape: API ≤ 4.7 responses,
// indexer search results and alerts.
const formatWazuh scan.Format = "wazuh"

// maxPages bounds every paged loop, so an API that keeps answering "more"
// cannot keep a run going forever (MaxRunTime bounds it in time as well).
const maxPages = 100_000

// basicAuth is the Authorization header value for HTTP basic auth.
func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// joinURL appends an API path (and query) to the configured base URL,
// keeping any path prefix the base has (a manager behind a reverse proxy).
func joinURL(base, path string, query url.Values) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("url %s: %w", RedactURL(base), err)
	}
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawPath = ""
	if query != nil {
		u.RawQuery = query.Encode()
	}
	return u.String(), nil
}

// credentials resolves the username and password of a source.
func (s *Source) credentials() (user, pass string, err error) {
	if user, err = s.cfg.Username.Resolve(s.deps.Getenv); err != nil {
		return "", "", fmt.Errorf("username: %w", err)
	}
	if pass, err = s.cfg.Password.Resolve(s.deps.Getenv); err != nil {
		return "", "", fmt.Errorf("password: %w", err)
	}
	return user, pass, nil
}

// managerCredentials are those of a wazuh-indexer source's manager API:
// its own when set, else the source's.
func (s *Source) managerCredentials() (user, pass string, err error) {
	if !s.cfg.ManagerUsername.IsSet() && !s.cfg.ManagerPassword.IsSet() {
		return s.credentials()
	}
	if user, err = s.cfg.ManagerUsername.Resolve(s.deps.Getenv); err != nil {
		return "", "", fmt.Errorf("managerUsername: %w", err)
	}
	if pass, err = s.cfg.ManagerPassword.Resolve(s.deps.Getenv); err != nil {
		return "", "", fmt.Errorf("managerPassword: %w", err)
	}
	return user, pass, nil
}

// wazuhAPI pulls from the Wazuh manager API (≤ 4.7): authenticate for a
// JWT, list the agents, then read every agent's vulnerabilities page by
// page. The vulnerability responses do not name the host, so each page is
// parsed with the agent's name as the host.
type wazuhAPI struct {
	src   *Source
	c     *client
	base  string                                // the manager API's URL
	creds func() (user, pass string, err error) // its username and password

	mu    sync.Mutex
	token string
}

// wazuhEnvelope is the part of every Wazuh API answer the puller reads.
type wazuhEnvelope struct {
	Data struct {
		AffectedItems      []json.RawMessage `json:"affected_items"`
		TotalAffectedItems int               `json:"total_affected_items"`
		FailedItems        []json.RawMessage `json:"failed_items"`
	} `json:"data"`
	Error   int    `json:"error"`
	Message string `json:"message"`
}

type wazuhAgent struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// scanned says the manager has scanned the agent: one never connected (or
// still pending enrolment) has nothing to read and covers nothing.
func (a wazuhAgent) scanned() bool { return a.Status != "never_connected" && a.Status != "pending" }

// host is the name findings of the agent are stored under (the indexer's
// agent.name, the name the API gives).
func (a wazuhAgent) host() string {
	if a.Name != "" {
		return a.Name
	}
	return a.ID
}

func (w *wazuhAPI) formats() []scan.Format { return []scan.Format{formatWazuh} }

func (w *wazuhAPI) pull(ctx context.Context, dir string) (pulled, error) {
	if err := w.authenticate(ctx); err != nil {
		return pulled{}, err
	}
	agents, err := w.agents(ctx, dir)
	if err != nil {
		return pulled{}, err
	}
	p := pulled{scanner: formatWazuh}
	n := 0
	for _, a := range agents {
		if !a.scanned() {
			continue
		}
		host := a.host()
		offset := 0
		for range maxPages {
			q := url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(w.src.cfg.PageSize)}}
			path := spoolPath(dir, "wazuh-vulnerability", n)
			n++
			env, err := w.get(ctx, "/vulnerability/"+url.PathEscape(a.ID), q, path)
			if err != nil {
				if httpStatus(err) == http.StatusNotFound {
					err = fmt.Errorf("%w (Wazuh 4.8 and later keep vulnerabilities in the indexer: use type %s)", err, TypeWazuhIndexer)
				}
				return pulled{}, fmt.Errorf("agent %s (%s): %w", a.ID, host, err)
			}
			p.docs = append(p.docs, doc{
				name:   fmt.Sprintf("%s: GET /vulnerability/%s?offset=%d", w.src.cfg.Name, a.ID, offset),
				path:   path,
				format: formatWazuh,
				host:   host,
			})
			offset += len(env.Data.AffectedItems)
			if len(env.Data.AffectedItems) == 0 || offset >= env.Data.TotalAffectedItems {
				break
			}
		}
		p.hosts = append(p.hosts, host)
	}
	return p, nil
}

// authenticate trades the username and password for a JWT.
func (w *wazuhAPI) authenticate(ctx context.Context) error {
	user, pass, err := w.creds()
	if err != nil {
		return err
	}
	u, err := joinURL(w.base, "/security/user/authenticate", nil)
	if err != nil {
		return err
	}
	var body []byte
	err = w.c.do(ctx, request{method: http.MethodPost, url: u, header: http.Header{"Authorization": {basicAuth(user, pass)}}},
		func(resp *http.Response) error {
			var err error
			body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			return err
		})
	if err != nil {
		return fmt.Errorf("authenticate: %w", err)
	}
	var ans struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.Data.Token == "" {
		return fmt.Errorf("authenticate: answer holds no token (%d bytes)", len(body))
	}
	w.mu.Lock()
	w.token = ans.Data.Token
	w.mu.Unlock()
	return nil
}

// get spools GET path?q to file and decodes its envelope. An expired token
// (401) is renewed once.
func (w *wazuhAPI) get(ctx context.Context, path string, q url.Values, file string) (wazuhEnvelope, error) {
	u, err := joinURL(w.base, path, q)
	if err != nil {
		return wazuhEnvelope{}, err
	}
	for renewed := false; ; renewed = true {
		w.mu.Lock()
		tok := w.token
		w.mu.Unlock()
		_, err = w.c.spool(ctx, request{method: http.MethodGet, url: u, header: http.Header{"Authorization": {"Bearer " + tok}}}, file)
		if httpStatus(err) == http.StatusUnauthorized && !renewed {
			if err := w.authenticate(ctx); err != nil {
				return wazuhEnvelope{}, err
			}
			continue
		}
		break
	}
	if err != nil {
		return wazuhEnvelope{}, err
	}
	f, err := os.Open(file)
	if err != nil {
		return wazuhEnvelope{}, err
	}
	defer f.Close()
	var env wazuhEnvelope
	if err := json.NewDecoder(f).Decode(&env); err != nil {
		return wazuhEnvelope{}, fmt.Errorf("GET %s: answer is not a Wazuh API response: %w", path, err)
	}
	if env.Error != 0 && len(env.Data.AffectedItems) == 0 {
		return wazuhEnvelope{}, fmt.Errorf("GET %s: Wazuh API error %d: %s", path, env.Error, env.Message)
	}
	if len(env.Data.FailedItems) > 0 {
		// A partial answer is not a complete scan.
		return wazuhEnvelope{}, fmt.Errorf("GET %s: %d failed items: %s", path, len(env.Data.FailedItems), truncate(string(env.Data.FailedItems[0]), 200))
	}
	return env, nil
}

// agents lists every agent, page by page.
func (w *wazuhAPI) agents(ctx context.Context, dir string) ([]wazuhAgent, error) {
	var out []wazuhAgent
	offset := 0
	for page := range maxPages {
		q := url.Values{
			"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(w.src.cfg.PageSize)},
			"select": {"id,name,status"}, "sort": {"+id"},
		}
		env, err := w.get(ctx, "/agents", q, spoolPath(dir, "wazuh-agents", page))
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		for _, raw := range env.Data.AffectedItems {
			var a wazuhAgent
			if err := json.Unmarshal(raw, &a); err != nil || a.ID == "" {
				return nil, fmt.Errorf("list agents: item %s has no agent id", truncate(string(raw), 100))
			}
			out = append(out, a)
		}
		offset += len(env.Data.AffectedItems)
		if len(env.Data.AffectedItems) == 0 || offset >= env.Data.TotalAffectedItems {
			break
		}
	}
	return out, nil
}

// wazuhIndexer pulls the vulnerability states from the Wazuh 4.8+ indexer
// (OpenSearch): _search on the states index sorted on a unique key, paged
// with search_after. Each page is a _search response, which the wazuh
// format reads as it is.
type wazuhIndexer struct {
	src *Source
	c   *client
	// manager lists the agents, when a manager URL is configured: every
	// scanned agent is covered, including those with no document left.
	manager *wazuhAPI
}

// indexerSort orders the states index on fields every document has, most
// significant first, so that search_after pages neither skip nor repeat a
// document. The document _id is not used: sorting on it needs fielddata,
// and it has been seen repeated across package versions.
var indexerSort = []string{"agent.id", "agent.name", "package.name", "package.version", "vulnerability.id"}

func (w *wazuhIndexer) formats() []scan.Format { return []scan.Format{formatWazuh} }

func (w *wazuhIndexer) pull(ctx context.Context, dir string) (pulled, error) {
	user, pass, err := w.src.credentials()
	if err != nil {
		return pulled{}, err
	}
	u, err := joinURL(w.src.cfg.URL, "/"+w.src.cfg.Index+"/_search", nil)
	if err != nil {
		return pulled{}, err
	}
	sort := make([]map[string]string, len(indexerSort))
	for i, f := range indexerSort {
		sort[i] = map[string]string{f: "asc"}
	}
	p := pulled{scanner: formatWazuh}
	var after json.RawMessage
	for page := range maxPages {
		q := map[string]any{
			"size":             w.src.cfg.PageSize,
			"sort":             sort,
			"query":            map[string]any{"match_all": map[string]any{}},
			"track_total_hits": false,
		}
		if after != nil {
			q["search_after"] = after
		}
		body, err := json.Marshal(q)
		if err != nil {
			return pulled{}, err
		}
		path := spoolPath(dir, "wazuh-indexer", page)
		req := request{method: http.MethodPost, url: u, body: body, header: http.Header{
			"Authorization": {basicAuth(user, pass)}, "Content-Type": {"application/json"},
		}}
		if _, err := w.c.spool(ctx, req, path); err != nil {
			return pulled{}, fmt.Errorf("search page %d: %w", page+1, err)
		}
		hits, last, err := readSearchPage(path)
		if err != nil {
			return pulled{}, fmt.Errorf("search page %d: %w", page+1, err)
		}
		if hits == 0 {
			break
		}
		p.docs = append(p.docs, doc{
			name:   fmt.Sprintf("%s: POST /%s/_search page %d", w.src.cfg.Name, w.src.cfg.Index, page+1),
			path:   path,
			format: formatWazuh,
		})
		if hits < w.src.cfg.PageSize {
			break
		}
		if len(last) == 0 {
			return pulled{}, fmt.Errorf("search page %d: hits carry no sort values to page after", page+1)
		}
		after = last
	}
	if w.manager == nil {
		w.src.log.Warn("no managerURL: agents whose vulnerabilities are all fixed are gone from the indexer, and their findings stay open", "source", w.src.cfg.Name)
		return p, nil
	}
	if err := w.manager.authenticate(ctx); err != nil {
		return pulled{}, fmt.Errorf("manager API: %w", err)
	}
	agents, err := w.manager.agents(ctx, dir)
	if err != nil {
		return pulled{}, fmt.Errorf("manager API: %w", err)
	}
	for _, a := range agents {
		if a.scanned() {
			p.hosts = append(p.hosts, a.host())
		}
	}
	return p, nil
}

// readSearchPage reads an OpenSearch _search answer: how many hits it holds
// and the sort values of the last. A timed-out search or a failed shard is
// an error: a partial answer is not a complete scan.
func readSearchPage(path string) (int, json.RawMessage, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	var ans struct {
		TimedOut bool `json:"timed_out"`
		Shards   struct {
			Total  int `json:"total"`
			Failed int `json:"failed"`
		} `json:"_shards"`
		Hits *struct {
			Hits []struct {
				Sort json.RawMessage `json:"sort"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(f).Decode(&ans); err != nil {
		return 0, nil, fmt.Errorf("answer is not a search response: %w", err)
	}
	switch {
	case ans.TimedOut:
		return 0, nil, fmt.Errorf("search timed out on the indexer")
	case ans.Shards.Failed > 0:
		return 0, nil, fmt.Errorf("search failed on %d of %d shards", ans.Shards.Failed, ans.Shards.Total)
	case ans.Hits == nil:
		return 0, nil, fmt.Errorf("answer has no hits object")
	}
	n := len(ans.Hits.Hits)
	if n == 0 {
		return 0, nil, nil
	}
	return n, ans.Hits.Hits[n-1].Sort, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
