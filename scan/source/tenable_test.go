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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero/store"
)

// tenableVM is a Tenable VM vulnerability-export test server: POST
// /vulns/export gives the recorded export uuid; the status answers follow a
// script (the last one is repeated); chunks are served from memory.
type tenableVM struct {
	t *testing.T

	mu          sync.Mutex
	uuid        string
	statuses    [][]byte       // status answers in order
	chunks      map[int][]byte // chunk id → body
	exportBody  map[string]any
	calls       []string
	throttle    map[string]bool // request path → answer 429 once
	statusCalls int
}

func newTenableVM(t *testing.T) (*tenableVM, *httptest.Server) {
	var st struct {
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal(realdata(t, "scanners/tenable/tenable_io_vulns_export_status_finished.json"), &st); err != nil {
		t.Fatal(err)
	}
	v := &tenableVM{t: t, uuid: st.UUID, chunks: map[int][]byte{}, throttle: map[string]bool{}}
	srv := httptest.NewServer(v)
	t.Cleanup(srv.Close)
	return v, srv
}

func (v *tenableVM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get("X-ApiKeys") != "accessKey=vz-user;secretKey=s3cr3t-pass" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"statusCode":401,"error":"Unauthorized","message":"Invalid Credentials"}`)
		return
	}
	if v.throttle[r.URL.Path] {
		delete(v.throttle, r.URL.Path)
		w.Header().Set("Retry-After", "11")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"statusCode":429,"error":"Too Many Requests"}`)
		return
	}
	prefix := "/vulns/export/" + v.uuid
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/vulns/export":
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &v.exportBody); err != nil {
			v.t.Errorf("export request body: %v", err)
		}
		fmt.Fprintf(w, `{"export_uuid":"%s"}`, v.uuid)
	case r.Method == http.MethodGet && r.URL.Path == prefix+"/status":
		i := min(v.statusCalls, len(v.statuses)-1)
		v.statusCalls++
		w.Write(v.statuses[i])
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, prefix+"/chunks/"):
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, prefix+"/chunks/"))
		b, ok := v.chunks[n]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"statusCode":404,"error":"Not Found","message":"Chunk not found"}`)
			return
		}
		w.Write(b)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func tenableConfig(url string) Config {
	return Config{
		Name: "tenable-vm", Type: TypeTenable, URL: url,
		AccessKey: Secret{Env: "VZ_TEST_USER"}, SecretKey: Secret{Env: "VZ_TEST_PASS"},
		PollInterval: 3 * time.Second,
	}
}

// splitChunk splits the recorded chunk (a JSON array) into n chunks,
// keeping each finding's bytes as recorded.
func splitChunk(t *testing.T, rec []byte, n int) [][]byte {
	var items []json.RawMessage
	if err := json.Unmarshal(rec, &items); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	per := (len(items) + n - 1) / n
	for i := 0; i < len(items); i += per {
		var b bytes.Buffer
		b.WriteString("[")
		for j, it := range items[i:min(i+per, len(items))] {
			if j > 0 {
				b.WriteString(",")
			}
			b.Write(it)
		}
		b.WriteString("]")
		out = append(out, b.Bytes())
	}
	return out
}

// TestTenablePullRecorded replays the recorded export: the recorded status
// (FINISHED, chunk 1) and the recorded chunk, byte for byte.
func TestTenablePullRecorded(t *testing.T) {
	v, srv := newTenableVM(t)
	chunk := realdata(t, "scanners/tenable/tenable_io_vulns_export_chunk_1.json")
	v.statuses = [][]byte{realdata(t, "scanners/tenable/tenable_io_vulns_export_status_finished.json")}
	v.chunks[1] = chunk
	sl := &sleeper{}
	s := mustNew(t, tenableConfig(srv.URL), testDeps(&fakeImporter{}, sl))
	p, err := s.puller.pull(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.docs) != 1 {
		t.Fatalf("chunks = %d, want 1", len(p.docs))
	}
	got, _ := os.ReadFile(p.docs[0].path)
	if !bytes.Equal(got, chunk) {
		t.Errorf("chunk is not the recorded payload byte for byte")
	}
	if len(sl.got()) != 0 {
		t.Errorf("waits = %v, want none: the export was already finished", sl.got())
	}
	want := map[string]any{"num_assets": float64(50), "filters": map[string]any{"state": []any{"OPEN", "REOPENED", "FIXED"}}}
	if fmt.Sprint(v.exportBody) != fmt.Sprint(want) {
		t.Errorf("export request = %v, want %v", v.exportBody, want)
	}
}

// TestTenablePullPolls polls a processing export, downloads chunks as they
// become available (the recorded chunk split in two), and waits out a 429's
// Retry-After on a chunk.
func TestTenablePullPolls(t *testing.T) {
	v, srv := newTenableVM(t)
	parts := splitChunk(t, realdata(t, "scanners/tenable/tenable_io_vulns_export_chunk_1.json"), 2)
	v.chunks[1], v.chunks[2] = parts[0], parts[1]
	v.statuses = [][]byte{
		[]byte(`{"uuid":"` + v.uuid + `","status":"QUEUED","chunks_available":[],"chunks_failed":[],"chunks_cancelled":[],"total_chunks":0}`),
		[]byte(`{"uuid":"` + v.uuid + `","status":"PROCESSING","chunks_available":[1],"chunks_failed":[],"chunks_cancelled":[],"total_chunks":0}`),
		[]byte(`{"uuid":"` + v.uuid + `","status":"FINISHED","chunks_available":[1,2],"chunks_failed":[],"chunks_cancelled":[],"total_chunks":2,"finished_chunks":2}`),
	}
	v.throttle["/vulns/export/"+v.uuid+"/chunks/2"] = true
	sl := &sleeper{}
	s := mustNew(t, tenableConfig(srv.URL), testDeps(&fakeImporter{}, sl))
	p, err := s.puller.pull(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(p.docs) != 2 {
		t.Fatalf("chunks = %d, want 2", len(p.docs))
	}
	var n int
	for _, d := range p.docs {
		b, _ := os.ReadFile(d.path)
		var items []json.RawMessage
		if err := json.Unmarshal(b, &items); err != nil {
			t.Fatal(err)
		}
		n += len(items)
	}
	if n != 103 {
		t.Errorf("findings across chunks = %d, want the 103 recorded", n)
	}
	if w := sl.got(); !slices.Equal(w, []time.Duration{3 * time.Second, 3 * time.Second, 11 * time.Second}) {
		t.Errorf("waits = %v, want two polls of 3s, then the 11s the 429 asked for", w)
	}
	chunk1 := slices.Index(v.calls, "GET /vulns/export/"+v.uuid+"/chunks/1")
	if chunk1 < 0 || chunk1 > 3 {
		t.Errorf("calls %v: chunk 1 was not downloaded while the export was processing", v.calls)
	}
}

// TestTenableExportFailures: a failed chunk or an errored export fails the
// pull (a partial export must not close findings).
func TestTenableExportFailures(t *testing.T) {
	for _, tc := range []struct{ name, status, want string }{
		{"failed chunk", `"status":"FINISHED","chunks_available":[1],"chunks_failed":[2],"chunks_cancelled":[],"total_chunks":2`, "chunks failed [2]"},
		{"error", `"status":"ERROR","chunks_available":[],"chunks_failed":[],"chunks_cancelled":[]`, "ended ERROR"},
		{"missing chunk", `"status":"FINISHED","chunks_available":[1],"chunks_failed":[],"chunks_cancelled":[],"total_chunks":2`, "1 of 2 chunks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, srv := newTenableVM(t)
			v.chunks[1] = realdata(t, "scanners/tenable/tenable_io_vulns_export_chunk_1.json")
			v.statuses = [][]byte{[]byte(`{"uuid":"` + v.uuid + `",` + tc.status + `}`)}
			s := mustNew(t, tenableConfig(srv.URL), testDeps(&fakeImporter{}, &sleeper{}))
			if _, err := s.puller.pull(t.Context(), t.TempDir()); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("pull: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestTenableRunImports imports the recorded export into a real SQLite store.
func TestTenableRunImports(t *testing.T) {
	if _, err := pickFormat(tenableFormats...); err != nil {
		t.Fatalf("this build must parse Tenable exports: %v", err)
	}
	v, srv := newTenableVM(t)
	v.statuses = [][]byte{realdata(t, "scanners/tenable/tenable_io_vulns_export_status_finished.json")}
	v.chunks[1] = realdata(t, "scanners/tenable/tenable_io_vulns_export_chunk_1.json")
	st := newSQLite(t)
	s := mustNew(t, tenableConfig(srv.URL), testDeps(st, &sleeper{}))
	res, err := s.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Imports) != 1 || len(res.Hosts) != 1 {
		t.Errorf("result = %+v, want one import covering the recorded asset", res)
	}
	fs, err := st.ListFindings(t.Context(), store.FindingFilter{Source: "tenable-vm"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != res.Read || res.Read == 0 {
		t.Errorf("stored %d findings, read %d", len(fs), res.Read)
	}
	for _, f := range fs {
		if f.Scanner != "tenable" || f.Host == "" {
			t.Errorf("finding %+v", f)
		}
	}
}
