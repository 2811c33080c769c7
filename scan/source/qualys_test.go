package source

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero/store"
)

// qualysAPI is a Qualys API v2 test server: host list detection pages with
// the truncation warning (RESPONSE/WARNING/URL with id_min) on every page
// but the last, the KnowledgeBase list filtered to the QIDs asked for, the
// rate-limit headers, and a 409 when the concurrency limit is hit.
type qualysAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	pages     [][]byte          // detection pages, recorded
	kb        []byte            // recorded KnowledgeBase answer
	remap     map[string]string // QID rewrites applied to detection pages (see TestQualysRunImports)
	nextHost  string            // host the truncation URL names; the server's own when empty
	kbIDs     []string          // ids= of each KB call
	calls     []string
	limitOnce bool // answer page 1 with X-RateLimit-Remaining: 0
	busyOnce  bool // answer the first KB call 409 (concurrency limit)
}

func newQualysAPI(t *testing.T, pages ...[]byte) *qualysAPI {
	q := &qualysAPI{t: t, pages: pages}
	q.srv = httptest.NewServer(q)
	t.Cleanup(q.srv.Close)
	return q
}

var vulnBlock = regexp.MustCompile(`(?s)\s*<VULN>.*?</VULN>`)
var qidTag = regexp.MustCompile(`<QID>(\d+)</QID>`)

func (q *qualysAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(q.calls, r.Method+" "+r.URL.RequestURI())
	if u, p, ok := r.BasicAuth(); !ok || u != "vz-user" || p != "s3cr3t-pass" || r.Header.Get("X-Requested-With") == "" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8" ?><SIMPLE_RETURN><RESPONSE><DATETIME>2023-05-24T09:59:43Z</DATETIME><CODE>2000</CODE><TEXT>Bad Login/Password</TEXT></RESPONSE></SIMPLE_RETURN>`)
		return
	}
	if r.Method != http.MethodPost {
		q.t.Errorf("%s %s, want POST", r.Method, r.URL)
	}
	if err := r.ParseForm(); err != nil {
		q.t.Fatal(err)
	}
	w.Header().Set("X-RateLimit-Limit", "300")
	w.Header().Set("X-RateLimit-Window-Sec", "3600")
	switch r.URL.Path {
	case qualysDetectionPath:
		if r.Form.Get("action") != "list" || r.Form.Get("truncation_limit") == "" {
			q.t.Errorf("detection call without action=list and truncation_limit: %v", r.Form)
		}
		page := 0
		if id := r.Form.Get("id_min"); id != "" {
			fmt.Sscan(id, &page)
			page -= 1000 // id_min values are 1000+page below
		}
		if page < 0 || page >= len(q.pages) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<SIMPLE_RETURN><RESPONSE><CODE>1905</CODE><TEXT>parameter id_min has invalid value</TEXT></RESPONSE></SIMPLE_RETURN>`)
			return
		}
		body := q.pages[page]
		for from, to := range q.remap {
			body = bytes.ReplaceAll(body, []byte("<QID>"+from+"</QID>"), []byte("<QID>"+to+"</QID>"))
		}
		if page < len(q.pages)-1 {
			host := q.nextHost
			if host == "" {
				host = q.srv.URL
			}
			next := fmt.Sprintf("%s%s?action=list&truncation_limit=%s&id_min=%d", host, qualysDetectionPath, r.Form.Get("truncation_limit"), 1001+page)
			warning := "  <WARNING>\n      <CODE>1980</CODE>\n      <TEXT>1 record limit exceeded. Use URL to get next batch of results.</TEXT>\n      <URL><![CDATA[" + next + "]]></URL>\n    </WARNING>\n  </RESPONSE>"
			body = bytes.Replace(body, []byte("</RESPONSE>"), []byte(warning), 1)
		}
		if page == 0 && q.limitOnce {
			q.limitOnce = false
			w.Header().Set("X-RateLimit-Remaining", "0")
			w.Header().Set("X-RateLimit-ToWait-Sec", "3")
		} else {
			w.Header().Set("X-RateLimit-Remaining", "250")
		}
		w.Write(body)
	case qualysKBPath:
		if q.busyOnce {
			q.busyOnce = false
			w.Header().Set("X-Concurrency-Limit-Limit", "2")
			w.Header().Set("X-RateLimit-ToWait-Sec", "2")
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `<SIMPLE_RETURN><RESPONSE><CODE>1960</CODE><TEXT>This API cannot be run again until 2 currently running instances have finished.</TEXT></RESPONSE></SIMPLE_RETURN>`)
			return
		}
		if r.Form.Get("action") != "list" || r.Form.Get("details") != "All" {
			q.t.Errorf("KB call form %v, want action=list details=All", r.Form)
		}
		ids := strings.Split(r.Form.Get("ids"), ",")
		q.kbIDs = append(q.kbIDs, r.Form.Get("ids"))
		// Like the API: only the entries asked for.
		body := vulnBlock.ReplaceAllFunc(q.kb, func(b []byte) []byte {
			m := qidTag.FindSubmatch(b)
			if m != nil && slices.Contains(ids, string(m[1])) {
				return b
			}
			return nil
		})
		w.Header().Set("X-RateLimit-Remaining", "249")
		w.Write(body)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func qualysConfig(url string) Config {
	return Config{
		Name: "qualys-vmdr", Type: TypeQualys, URL: url,
		Username: Secret{Env: "VZ_TEST_USER"}, PageSize: 1,
	}
}

func qualysDeps(t *testing.T, st Importer, sl *sleeper) Deps {
	d := testDeps(st, sl)
	d.Now = sl.now
	return d
}

func withPasswordFile(t *testing.T, cfg Config) Config {
	p := t.TempDir() + "/qualys-password"
	if err := os.WriteFile(p, []byte("s3cr3t-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Password = Secret{File: p}
	return cfg
}

// TestQualysPull follows the truncation URL across the recorded detection
// pages, waits out the rate limit (X-RateLimit-Remaining: 0 →
// X-RateLimit-ToWait-Sec) and a 409 concurrency answer, and asks the
// KnowledgeBase for exactly the QIDs detected.
func TestQualysPull(t *testing.T) {
	demisto := realdata(t, "scanners/qualys/host_list_vm_detection_output_demisto.xml")
	graph := realdata(t, "scanners/qualys/host_list_vm_detection_output_graph-qualys.xml")
	q := newQualysAPI(t, demisto, graph)
	q.kb = realdata(t, "scanners/qualys/knowledge_base_vuln_list_output.xml")
	q.limitOnce, q.busyOnce = true, true
	sl := &sleeper{}
	s := mustNew(t, withPasswordFile(t, qualysConfig(q.srv.URL)), qualysDeps(t, &fakeImporter{}, sl))
	p, err := s.puller.pull(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.docs) != 2 {
		t.Fatalf("pages = %d, want 2", len(p.docs))
	}
	last, err := os.ReadFile(p.docs[1].path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(last, graph) {
		t.Errorf("last page is not the recorded payload byte for byte")
	}
	if want := []string{"11827,15033,15034,15068,38170,38173,38601,38628,38726,38739,38794"}; !slices.Equal(q.kbIDs, want) {
		t.Errorf("KB asked for %v, want the detected QIDs %v", q.kbIDs, want)
	}
	if w := sl.got(); !slices.Equal(w, []time.Duration{3 * time.Second, 2 * time.Second}) {
		t.Errorf("waits = %v, want 3s (rate limit) then 2s (409 concurrency)", w)
	}
	if p.options == nil {
		t.Errorf("no KnowledgeBase option for the parser")
	}
	wantCalls := []string{
		"POST " + qualysDetectionPath,
		"POST " + qualysDetectionPath + "?action=list&truncation_limit=1&id_min=1001",
		"POST " + qualysKBPath,
		"POST " + qualysKBPath,
	}
	if !slices.Equal(q.calls, wantCalls) {
		t.Errorf("calls =\n%s\nwant\n%s", strings.Join(q.calls, "\n"), strings.Join(wantCalls, "\n"))
	}
}

// TestQualysRunImports imports the recorded detections joined with the
// recorded KnowledgeBase into a real SQLite store. The two recordings come
// from different subscriptions and share no QID, so the server rewrites the
// detections' QIDs onto KnowledgeBase entries (those with CVEs first).
// Without the rewrite the import fails naming the QID and stores nothing:
// a finding is never a bare QID.
func TestQualysRunImports(t *testing.T) {
	if err := requireFormat(formatQualys); err != nil {
		t.Fatalf("this build must parse Qualys: %v", err)
	}
	demisto := realdata(t, "scanners/qualys/host_list_vm_detection_output_demisto.xml")
	graph := realdata(t, "scanners/qualys/host_list_vm_detection_output_graph-qualys.xml")
	kb := realdata(t, "scanners/qualys/knowledge_base_vuln_list_output.xml")

	st := newSQLite(t)
	q := newQualysAPI(t, demisto, graph)
	q.kb = kb
	s := mustNew(t, withPasswordFile(t, qualysConfig(q.srv.URL)), qualysDeps(t, st, &sleeper{}))
	_, err := s.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "QID") || !strings.Contains(err.Error(), "KnowledgeBase") {
		t.Fatalf("detections without KB entries: %v, want an error naming the QID", err)
	}
	if imps, _ := st.ListImports(t.Context()); len(imps) != 0 {
		t.Fatalf("a failed import stored %d imports", len(imps))
	}

	q.remap = map[string]string{
		"11827": "150272", "15033": "150400", "15034": "150456", "15068": "150461", "38628": "150462",
		"38726": "150001", "38739": "150053", "38794": "150076", "38170": "150112", "38173": "150124", "38601": "150150",
	}
	res, err := s.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hosts) != 3 || res.Read == 0 {
		t.Errorf("result = %+v, want the 3 recorded hosts", res)
	}
	fs, err := st.ListFindings(t.Context(), store.FindingFilter{Source: "qualys-vmdr"})
	if err != nil {
		t.Fatal(err)
	}
	var cves []string
	for _, f := range fs {
		if regexp.MustCompile(`^\d+$`).MatchString(f.CVE) || f.Title == "" {
			t.Errorf("finding %+v is a bare QID or has no title", f)
		}
		if strings.HasPrefix(f.CVE, "CVE-") {
			cves = append(cves, f.CVE)
		}
	}
	for _, want := range []string{"CVE-2019-11041", "CVE-2021-33193", "CVE-2021-44790"} {
		if !slices.Contains(cves, want) {
			t.Errorf("CVEs %v lack %s from the KnowledgeBase", cves, want)
		}
	}
}

// TestQualysTruncationElsewhere: a truncation URL on another host is not
// followed (credentials would go there).
func TestQualysTruncationElsewhere(t *testing.T) {
	demisto := realdata(t, "scanners/qualys/host_list_vm_detection_output_demisto.xml")
	graph := realdata(t, "scanners/qualys/host_list_vm_detection_output_graph-qualys.xml")
	q := newQualysAPI(t, demisto, graph)
	q.nextHost = "https://attacker.example"
	s := mustNew(t, withPasswordFile(t, qualysConfig(q.srv.URL)), qualysDeps(t, &fakeImporter{}, &sleeper{}))
	_, err := s.puller.pull(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "attacker.example") {
		t.Fatalf("foreign truncation URL: %v, want an error naming it", err)
	}
	if len(q.calls) != 1 {
		t.Errorf("calls = %v, want only the first page", q.calls)
	}
}

// TestQualysBadLogin: the API's SIMPLE_RETURN explanation reaches the
// error; the password does not.
func TestQualysBadLogin(t *testing.T) {
	q := newQualysAPI(t, realdata(t, "scanners/qualys/host_list_vm_detection_output_graph-qualys.xml"))
	cfg := qualysConfig(q.srv.URL)
	cfg.Password = Secret{Value: "not-the-password"}
	s := mustNew(t, cfg, qualysDeps(t, &fakeImporter{}, &sleeper{}))
	_, err := s.puller.pull(t.Context(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "Bad Login/Password") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad login: %v", err)
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error shows the password: %v", err)
	}
	if u, _ := url.Parse(q.srv.URL); !strings.Contains(err.Error(), u.Host) {
		t.Errorf("error %v does not name the API", err)
	}
}
