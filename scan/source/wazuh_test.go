package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// wazuhManager is a Wazuh manager API (4.7) test server: JWT auth, the agent
// list and per-agent vulnerability lists, both paged with offset/limit. The
// vulnerability items are the recorded ones, served byte for byte (a whole
// list asked in one page is the recorded file itself).
type wazuhManager struct {
	t *testing.T

	mu        sync.Mutex
	agents    []wazuhAgent
	vulns     map[string][]byte // agent id → recorded API response
	tokens    int               // tokens issued
	expireAt  int               // vulnerability calls after which token 1 is refused
	vulnCalls int
	fail503   map[string]bool // request URI → fail once with 503
	requests  []string
	user      string // the credentials it accepts
	pass      string
}

func newWazuhManager(t *testing.T) (*wazuhManager, *httptest.Server) {
	m := &wazuhManager{t: t, vulns: map[string][]byte{}, fail503: map[string]bool{}, user: "vz-user", pass: "s3cr3t-pass"}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

func (m *wazuhManager) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, r.Method+" "+r.URL.RequestURI())
	if m.fail503[r.URL.RequestURI()] {
		delete(m.fail503, r.URL.RequestURI())
		http.Error(w, `{"title":"Service Unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path == "/security/user/authenticate" {
		u, p, ok := r.BasicAuth()
		if r.Method != http.MethodPost || !ok || u != m.user || p != m.pass {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"title":"Unauthorized","detail":"Invalid credentials"}`)
			return
		}
		m.tokens++
		fmt.Fprintf(w, `{"data":{"token":"jwt-%d"},"error":0}`, m.tokens)
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !strings.HasPrefix(tok, "jwt-") || (tok == "jwt-1" && m.expireAt > 0 && m.vulnCalls >= m.expireAt) {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"title":"Unauthorized","detail":"The server could not verify that you are authorized to access the URL requested"}`)
		return
	}
	offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/agents":
		if r.URL.Query().Get("select") != "id,name,status" {
			m.t.Errorf("GET /agents select = %q", r.URL.Query().Get("select"))
		}
		var items []json.RawMessage
		for _, a := range m.agents {
			b, _ := json.Marshal(map[string]string{"id": a.ID, "name": a.Name, "status": a.Status})
			items = append(items, b)
		}
		writeWazuhPage(w, items, offset, limit, "All selected agents information was returned")
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/vulnerability/"):
		m.vulnCalls++
		id := strings.TrimPrefix(r.URL.Path, "/vulnerability/")
		rec, ok := m.vulns[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"title":"Resource not found","detail":"agent %s"}`, id)
			return
		}
		var env struct {
			Data struct {
				AffectedItems []json.RawMessage `json:"affected_items"`
			} `json:"data"`
		}
		if err := json.Unmarshal(rec, &env); err != nil {
			m.t.Fatalf("recorded payload of agent %s: %v", id, err)
		}
		if offset == 0 && limit >= len(env.Data.AffectedItems) {
			w.Write(rec) // the recording itself
			return
		}
		writeWazuhPage(w, env.Data.AffectedItems, offset, limit, "All selected vulnerabilities were returned")
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"title":"Not Found"}`)
	}
}

func writeWazuhPage(w http.ResponseWriter, items []json.RawMessage, offset, limit int, msg string) {
	end := min(offset+limit, len(items))
	page := []json.RawMessage{}
	if offset < len(items) {
		page = items[offset:end]
	}
	b, _ := json.Marshal(map[string]any{
		"data": map[string]any{
			"affected_items": page, "total_affected_items": len(items),
			"total_failed_items": 0, "failed_items": []any{},
		},
		"message": msg, "error": 0,
	})
	w.Write(b)
}

func wazuhAPIConfig(url string) Config {
	return Config{
		Name: "wazuh-prod", Type: TypeWazuhAPI, URL: url,
		Username: Secret{Env: "VZ_TEST_USER"}, Password: Secret{Env: "VZ_TEST_PASS"},
		PageSize: 5,
	}
}

// TestWazuhAPIPull pages the agent list and each agent's vulnerabilities,
// retries a 503 with backoff, renews an expired token, skips agents that
// never connected, and covers every agent it read, the clean one included.
func TestWazuhAPIPull(t *testing.T) {
	m, srv := newWazuhManager(t)
	many := realdata(t, "scanners/wazuh/api-v4.7_many_findings.json")
	one := realdata(t, "scanners/wazuh/api-v4.7_one_finding_with_endpoint.json")
	m.agents = []wazuhAgent{
		{ID: "000", Name: "wazuh-manager", Status: "active"},
		{ID: "001", Name: "web-1", Status: "active"},
		{ID: "002", Name: "db-1", Status: "disconnected"},
		{ID: "003", Name: "new-box", Status: "never_connected"},
		{ID: "004", Name: "web-2", Status: "active"},
		{ID: "005", Name: "web-3", Status: "active"},
	}
	m.vulns["000"] = one
	m.vulns["001"] = many
	m.vulns["002"] = []byte(`{"data":{"affected_items":[],"total_affected_items":0,"total_failed_items":0,"failed_items":[]},"message":"No vulnerability information was returned","error":0}`)
	m.vulns["004"] = one
	m.vulns["005"] = one
	m.fail503["/vulnerability/001?limit=5&offset=5"] = true
	m.expireAt = 4 // token 1 expires half way

	sl := &sleeper{}
	s := mustNew(t, wazuhAPIConfig(srv.URL), testDeps(&fakeImporter{}, sl))
	p, err := s.puller.pull(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"wazuh-manager", "web-1", "db-1", "web-2", "web-3"}; !slices.Equal(p.hosts, want) {
		t.Errorf("covered hosts = %v, want %v (never-connected agent left out)", p.hosts, want)
	}
	// Agent 001's 13 recorded items in pages of 5; the others one page each.
	var hosts []string
	items := map[string][]json.RawMessage{}
	for _, d := range p.docs {
		if d.format != "wazuh" {
			t.Errorf("doc %s format %q", d.name, d.format)
		}
		hosts = append(hosts, d.host)
		b, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		var env wazuhEnvelope
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		items[d.host] = append(items[d.host], env.Data.AffectedItems...)
		if d.host == "wazuh-manager" && !bytes.Equal(b, one) {
			t.Errorf("%s: a one-page list is not the recorded payload byte for byte", d.name)
		}
	}
	if want := []string{"wazuh-manager", "web-1", "web-1", "web-1", "db-1", "web-2", "web-3"}; !slices.Equal(hosts, want) {
		t.Errorf("pages by host = %v, want %v", hosts, want)
	}
	var rec wazuhEnvelope
	if err := json.Unmarshal(many, &rec); err != nil {
		t.Fatal(err)
	}
	if got, want := len(items["web-1"]), len(rec.Data.AffectedItems); got != want || want != 13 {
		t.Fatalf("web-1 items = %d, want all %d recorded", got, want)
	}
	for i := range rec.Data.AffectedItems {
		if !bytes.Equal(compactJSON(t, items["web-1"][i]), compactJSON(t, rec.Data.AffectedItems[i])) {
			t.Errorf("web-1 item %d differs from the recording", i)
		}
	}
	if m.tokens != 2 {
		t.Errorf("tokens issued = %d, want 2 (the first expired and was renewed once)", m.tokens)
	}
	if w := sl.got(); len(w) != 1 || w[0] < DefaultMinBackoff/2 || w[0] > DefaultMinBackoff {
		t.Errorf("waits = %v, want one backoff within [%s, %s] for the 503", w, DefaultMinBackoff/2, DefaultMinBackoff)
	}
	for _, r := range m.requests {
		if strings.Contains(r, "/vulnerability/003") {
			t.Errorf("asked for the vulnerabilities of a never-connected agent: %s", r)
		}
	}
}

func compactJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestWazuhAPIErrors: bad credentials stop the pull before any agent is
// read; a 4.8 manager without /vulnerability says to use the indexer; the
// password never shows in an error.
func TestWazuhAPIErrors(t *testing.T) {
	m, srv := newWazuhManager(t)
	m.agents = []wazuhAgent{{ID: "001", Name: "web-1", Status: "active"}}
	sl := &sleeper{}

	cfg := wazuhAPIConfig(srv.URL)
	cfg.Password = Secret{Value: "wrong-password"}
	s := mustNew(t, cfg, testDeps(&fakeImporter{}, sl))
	_, err := s.puller.pull(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "authenticate") || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong password: %v, want an authenticate 401 error", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error shows the password: %v", err)
	}

	s = mustNew(t, wazuhAPIConfig(srv.URL), testDeps(&fakeImporter{}, sl))
	_, err = s.puller.pull(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), string(TypeWazuhIndexer)) {
		t.Errorf("no /vulnerability endpoint: %v, want a 404 that points to %s", err, TypeWazuhIndexer)
	}
	if len(sl.got()) != 0 {
		t.Errorf("waits = %v: 401 and 404 are not retried", sl.got())
	}

	cfg = wazuhAPIConfig(srv.URL)
	cfg.Password = Secret{Env: "VZ_UNSET"}
	s = mustNew(t, cfg, testDeps(&fakeImporter{}, sl))
	if _, err = s.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "VZ_UNSET") {
		t.Errorf("unset password variable: %v, want an error naming it", err)
	}
}

// opensearch is a Wazuh indexer test server: _search over the recorded
// documents with sort, size and search_after, as OpenSearch answers it (each
// hit carries its sort values).
type opensearch struct {
	t    *testing.T
	docs []map[string]any // the recorded hits

	mu       sync.Mutex
	bodies   []map[string]any
	first429 bool
	failed   bool // answer with a failed shard
}

func newOpenSearch(t *testing.T, recorded []byte) (*opensearch, *httptest.Server) {
	var ans struct {
		Hits struct {
			Hits []map[string]any `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(recorded, &ans); err != nil {
		t.Fatal(err)
	}
	o := &opensearch{t: t, docs: ans.Hits.Hits}
	srv := httptest.NewServer(o)
	t.Cleanup(srv.Close)
	return o, srv
}

func field(doc map[string]any, path string) string {
	v := doc["_source"]
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

func (o *opensearch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/wazuh-states-vulnerabilities-*/_search" {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"type":"index_not_found_exception","reason":"no such index [%s]"},"status":404}`, r.URL.Path)
		return
	}
	if u, p, ok := r.BasicAuth(); !ok || u != "vz-user" || p != "s3cr3t-pass" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `Unauthorized`)
		return
	}
	if o.first429 {
		o.first429 = false
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"error":{"type":"rejected_execution_exception"},"status":429}`)
		return
	}
	var body struct {
		Size        int                 `json:"size"`
		Sort        []map[string]string `json:"sort"`
		SearchAfter []string            `json:"search_after"`
	}
	raw := map[string]any{}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		o.t.Errorf("search body: %v", err)
	}
	_ = json.Unmarshal(b, &raw)
	o.bodies = append(o.bodies, raw)
	var fields []string
	for _, s := range body.Sort {
		for f, dir := range s {
			if dir != "asc" {
				o.t.Errorf("sort %s %s, want asc", f, dir)
			}
			fields = append(fields, f)
		}
	}
	key := func(d map[string]any) []string {
		k := make([]string, len(fields))
		for i, f := range fields {
			k[i] = field(d, f)
		}
		return k
	}
	docs := slices.Clone(o.docs)
	sort.SliceStable(docs, func(i, j int) bool { return slices.Compare(key(docs[i]), key(docs[j])) < 0 })
	var page []map[string]any
	for _, d := range docs {
		if body.SearchAfter != nil && slices.Compare(key(d), body.SearchAfter) <= 0 {
			continue
		}
		if len(page) == body.Size {
			break
		}
		hit := map[string]any{}
		for k, v := range d {
			hit[k] = v
		}
		hit["sort"] = key(d)
		page = append(page, hit)
	}
	if page == nil {
		page = []map[string]any{}
	}
	shards := map[string]int{"total": 1, "successful": 1, "skipped": 0, "failed": 0}
	if o.failed {
		shards["failed"], shards["successful"] = 1, 0
	}
	out, _ := json.Marshal(map[string]any{
		"took": 3, "timed_out": false, "_shards": shards,
		"hits": map[string]any{"total": map[string]any{"value": len(o.docs), "relation": "eq"}, "max_score": nil, "hits": page},
	})
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Write(out)
}

func indexerConfig(url string) Config {
	return Config{
		Name: "wazuh-indexer", Type: TypeWazuhIndexer, URL: url,
		Username: Secret{Env: "VZ_TEST_USER"}, Password: Secret{Env: "VZ_TEST_PASS"},
		PageSize: 3,
	}
}

// TestWazuhIndexerPull pages the recorded search results with
// search_after, waits out a 429's Retry-After, and gets every document
// exactly once.
func TestWazuhIndexerPull(t *testing.T) {
	rec := realdata(t, "scanners/wazuh/indexer-v4.8_many_findings.json")
	o, srv := newOpenSearch(t, rec)
	o.first429 = true
	sl := &sleeper{}
	s := mustNew(t, indexerConfig(srv.URL), testDeps(&fakeImporter{}, sl))
	p, err := s.puller.pull(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.docs) != 4 {
		t.Errorf("pages = %d, want 4 (10 documents in pages of 3)", len(p.docs))
	}
	type id struct{ id, version string }
	var got, want []id
	for _, d := range o.docs {
		want = append(want, id{d["_id"].(string), field(d, "package.version")})
	}
	for _, d := range p.docs {
		b, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Hits struct {
				Hits []map[string]any `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		for _, h := range page.Hits.Hits {
			got = append(got, id{h["_id"].(string), field(h, "package.version")})
		}
	}
	cmp := func(a, b id) int { return strings.Compare(a.id+a.version, b.id+b.version) }
	slices.SortFunc(got, cmp)
	slices.SortFunc(want, cmp)
	if !slices.Equal(got, want) || len(want) != 10 {
		t.Errorf("documents pulled = %v\nwant each recorded one once: %v", got, want)
	}
	if w := sl.got(); !slices.Equal(w, []time.Duration{7 * time.Second}) {
		t.Errorf("waits = %v, want the 7s the 429 asked for", w)
	}
	if len(o.bodies) != 4 { // answered searches (the 429 is not one)
		t.Fatalf("searches = %d, want 4", len(o.bodies))
	}
	if _, ok := o.bodies[0]["search_after"]; ok {
		t.Errorf("first page sent search_after")
	}
	if _, ok := o.bodies[1]["search_after"]; !ok {
		t.Errorf("second page did not send search_after")
	}
}

// TestWazuhIndexerPartialAnswer: a search that failed on a shard is not a
// complete scan.
func TestWazuhIndexerPartialAnswer(t *testing.T) {
	o, srv := newOpenSearch(t, realdata(t, "scanners/wazuh/indexer-v4.8_many_findings.json"))
	o.failed = true
	s := mustNew(t, indexerConfig(srv.URL), testDeps(&fakeImporter{}, &sleeper{}))
	if _, err := s.puller.pull(t.Context(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "shards") {
		t.Errorf("failed shard: %v, want an error", err)
	}
}

// TestWazuhRunImports runs both Wazuh sources end to end into a real SQLite
// store: the pages parse with the wazuh format, the import is complete, and
// an agent whose list is now empty gets its old findings closed.
func TestWazuhRunImports(t *testing.T) {
	if err := requireFormat(formatWazuh); err != nil {
		t.Fatalf("this build must parse Wazuh: %v", err)
	}
	st := newSQLite(t)
	m, srv := newWazuhManager(t)
	m.agents = []wazuhAgent{{ID: "001", Name: "web-1", Status: "active"}, {ID: "002", Name: "db-1", Status: "active"}}
	m.vulns["001"] = realdata(t, "scanners/wazuh/api-v4.7_one_finding_with_endpoint.json")
	m.vulns["002"] = []byte(`{"data":{"affected_items":[],"total_affected_items":0,"total_failed_items":0,"failed_items":[]},"error":0}`)

	// db-1 had a finding from this source before; its list is now empty.
	old := vulnzero.Finding{Host: "db-1", Package: "openssl", Installed: "1.0", CVE: "CVE-2024-0001"}
	if _, err := st.ImportFindings(t.Context(), vulnzero.Import{Source: "wazuh-prod", Scanner: "wazuh", Complete: true}, func(yield func(vulnzero.Finding, error) bool) { yield(old, nil) }); err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, wazuhAPIConfig(srv.URL), testDeps(st, &sleeper{}))
	res, err := s.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 1 || res.Fixed != 1 || !slices.Equal(res.Hosts, []string{"db-1", "web-1"}) {
		t.Errorf("result = %+v, want 1 read on web-1 and db-1's old finding fixed", res)
	}
	fs, err := st.ListFindings(t.Context(), store.FindingFilter{Source: "wazuh-prod", Host: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].CVE != "CVE-1234-1234" || fs[0].Package != "asdf" || fs[0].Scanner != "wazuh" {
		t.Errorf("web-1 findings = %+v, want the recorded CVE-1234-1234 on asdf", fs)
	}

	rec := realdata(t, "scanners/wazuh/indexer-v4.8_many_findings.json")
	_, isrv := newOpenSearch(t, rec)
	is := mustNew(t, indexerConfig(isrv.URL), testDeps(st, &sleeper{}))
	ires, err := is.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ires.Read != 10 || len(ires.Imports) != 1 {
		t.Errorf("indexer result = %+v, want the 10 recorded documents in one import", ires)
	}
	imps, err := st.ListImports(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(imps) == 0 || imps[0].Source != "wazuh-indexer" || !imps[0].Complete || strings.Contains(imps[0].File, "pass") {
		t.Errorf("latest import = %+v, want a complete wazuh-indexer import", imps[0])
	}
}

// TestWazuhIndexerCoversCleanAgents: the indexer holds documents only for
// vulnerabilities, so an agent whose last one was fixed is not in it. With
// a manager URL the agent list covers it and its old findings close; an
// agent that never connected covers nothing. The manager API has its own
// credentials.
func TestWazuhIndexerCoversCleanAgents(t *testing.T) {
	st := newSQLite(t)
	m, msrv := newWazuhManager(t)
	m.agents = []wazuhAgent{
		{ID: "001", Name: "myhost0", Status: "active"},
		{ID: "002", Name: "myhost1", Status: "active"},
		{ID: "003", Name: "patched-1", Status: "disconnected"},
		{ID: "004", Name: "new-1", Status: "never_connected"},
	}
	_, isrv := newOpenSearch(t, realdata(t, "scanners/wazuh/indexer-v4.8_many_findings.json"))
	seed := func(host string) vulnzero.Finding {
		return vulnzero.Finding{Host: host, Package: "openssl", Installed: "1.0", CVE: "CVE-2024-0001"}
	}
	if _, err := st.ImportFindings(t.Context(), vulnzero.Import{Source: "wazuh-indexer", Scanner: "wazuh", Complete: true},
		func(yield func(vulnzero.Finding, error) bool) {
			_ = yield(seed("patched-1"), nil) && yield(seed("new-1"), nil)
		}); err != nil {
		t.Fatal(err)
	}
	m.user, m.pass = "wazuh-wui", "wui-pass" // not the indexer's
	cfg := indexerConfig(isrv.URL)
	cfg.ManagerURL = msrv.URL
	cfg.ManagerUsername, cfg.ManagerPassword = Secret{Value: "wazuh-wui"}, Secret{Value: "wui-pass"}
	res, err := mustNew(t, cfg, testDeps(st, &sleeper{})).Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 10 || res.Fixed != 1 || !slices.Equal(res.Hosts, []string{"myhost0", "myhost1", "patched-1"}) {
		t.Errorf("result = %+v, want the 10 documents, patched-1 covered and its finding fixed", res)
	}
	for host, want := range map[string]vulnzero.FindingStatus{"patched-1": vulnzero.FindingFixed, "new-1": vulnzero.FindingOpen} {
		fs, err := st.ListFindings(t.Context(), store.FindingFilter{Host: host})
		if err != nil || len(fs) != 1 || fs[0].Status != want {
			t.Errorf("%s findings = %+v, %v; want one %s", host, fs, err, want)
		}
	}
	if got := m.requests; len(got) < 2 || got[0] != "POST /security/user/authenticate" || !strings.HasPrefix(got[1], "GET /agents?") {
		t.Errorf("manager requests = %q, want authenticate then the agent list", got)
	}
}
