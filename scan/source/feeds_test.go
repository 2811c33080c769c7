package source

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"vulnzero.dev/vulnzero"
)

// The layouts of FIRST's epss_scores-current.csv and CISA's
// known_exploited_vulnerabilities.json, first lines as published.
const epssCSV = `#model_version:v2023.03.01,score_date:2025-03-01T00:00:00+0000
cve,epss,percentile
CVE-1999-0001,0.01142,0.77926
CVE-2021-44228,0.97565,0.99998
CVE-2023-4863,0.50917,0.97823
`

const kevJSON = `{
    "title": "CISA Catalog of Known Exploited Vulnerabilities",
    "catalogVersion": "2025.03.01",
    "dateReleased": "2025-03-01T16:01:47.9576Z",
    "count": 2,
    "vulnerabilities": [
        {
            "cveID": "CVE-2021-44228",
            "vendorProject": "Apache",
            "product": "Log4j2",
            "vulnerabilityName": "Apache Log4j2 Remote Code Execution Vulnerability",
            "dateAdded": "2021-12-10",
            "shortDescription": "Apache Log4j2 contains a vulnerability where JNDI features do not protect against attacker-controlled JNDI-related endpoints, allowing for remote code execution.",
            "requiredAction": "For all affected software assets for which updates exist, the only acceptable remediation actions are: 1) Apply updates; OR 2) remove affected assets from agency networks.",
            "dueDate": "2021-12-24",
            "knownRansomwareCampaignUse": "Known",
            "notes": "https://nvd.nist.gov/vuln/detail/CVE-2021-44228",
            "cwes": ["CWE-20", "CWE-400", "CWE-502"]
        },
        {
            "cveID": "CVE-2023-4863",
            "vendorProject": "Google",
            "product": "Chromium WebP",
            "vulnerabilityName": "Google Chromium WebP Heap-Based Buffer Overflow Vulnerability",
            "dateAdded": "2023-09-13",
            "shortDescription": "Google Chromium WebP contains a heap-based buffer overflow vulnerability.",
            "requiredAction": "Apply mitigations per vendor instructions or discontinue use of the product if mitigations are unavailable.",
            "dueDate": "2023-10-04",
            "knownRansomwareCampaignUse": "Unknown",
            "notes": "",
            "cwes": ["CWE-787"]
        }
    ]
}`

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLoadFeeds loads a gzipped EPSS CSV over HTTP (after a 503) and the
// KEV catalog from a file, into the maps remedy.ScoreInput takes.
func TestLoadFeeds(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write(gz(t, []byte(epssCSV)))
	}))
	defer srv.Close()
	kev := filepath.Join(t.TempDir(), "known_exploited_vulnerabilities.json")
	if err := os.WriteFile(kev, []byte(kevJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	sl := &sleeper{}
	f, err := LoadFeeds(t.Context(), FeedsConfig{EPSS: srv.URL + "/epss_scores-current.csv.gz", KEV: kev}, FeedDeps{Sleep: sl.sleep})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.EPSS) != 3 || f.EPSS["CVE-2021-44228"] != 0.97565 || f.EPSS["CVE-1999-0001"] != 0.01142 {
		t.Errorf("EPSS = %v", f.EPSS)
	}
	if len(f.KEV) != 2 || !f.KEV["CVE-2021-44228"] || !f.KEV["CVE-2023-4863"] || f.KEV["CVE-1999-0001"] {
		t.Errorf("KEV = %v", f.KEV)
	}
	if len(sl.got()) != 1 {
		t.Errorf("waits = %v, want one retry of the 503", sl.got())
	}

	none, err := LoadFeeds(t.Context(), FeedsConfig{}, FeedDeps{})
	if err != nil || none.EPSS != nil || none.KEV != nil {
		t.Errorf("no feeds configured = %+v, %v; want empty maps, no error", none, err)
	}
	if _, err := LoadFeeds(t.Context(), FeedsConfig{KEV: kev + ".missing"}, FeedDeps{}); err == nil || !strings.Contains(err.Error(), "KEV") {
		t.Errorf("missing KEV file: %v, want an error naming the feed", err)
	}
}

// TestFeedErrors: bad feed lines fail with file, line and reason.
func TestFeedErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"no header", "#model_version:x\n", "epss.csv:1: no header"},
		{"wrong header", "cve,score\nCVE-2021-1,0.1\n", "epss.csv:1: header \"cve,score\" lacks"},
		{"bad probability", "cve,epss,percentile\nCVE-2021-1,0.1,0.2\nCVE-2021-2,1.7,0.9\n", "epss.csv:3: epss \"1.7\""},
		{"not a cve", "cve,epss,percentile\nGHSA-xxxx,0.1,0.2\n", "epss.csv:2: \"GHSA-xxxx\" is not a CVE id"},
		{"broken quoting", "cve,epss,percentile\n\"CVE-2021-1,0.1,0.2\n", "epss.csv:2"},
	} {
		t.Run("epss "+tc.name, func(t *testing.T) {
			_, err := ReadEPSS("epss.csv", strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, vulnzero.ErrInvalid) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, in, want string
	}{
		{"not an object", `[1,2]`, "kev.json ($ at byte 1)"},
		{"no list", `{"title":"x","count":0}`, `no "vulnerabilities" array`},
		{"bad entry", `{"vulnerabilities":[{"cveID":"CVE-2021-1"},{"cveID":"n/a"}]}`, "$.vulnerabilities[1]"},
		{"truncated", kevJSON[:400], "$.vulnerabilities[0]"},
	} {
		t.Run("kev "+tc.name, func(t *testing.T) {
			_, err := ReadKEV("kev.json", strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, vulnzero.ErrInvalid) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if m, err := ReadEPSS("epss.csv", strings.NewReader("cve,epss,percentile\n")); err != nil || len(m) != 0 {
		t.Errorf("header only: %v, %v; want an empty map", m, err)
	}
}
