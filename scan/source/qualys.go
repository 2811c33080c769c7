package source

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"

	"vulnzero.dev/vulnzero/scan"
)

// formatQualys is the scan format of Qualys XML (host detections joined
// with the KnowledgeBase, and the report layouts).
const formatQualys scan.Format = "qualys"

// Qualys API paths.
const (
	qualysDetectionPath = "/api/2.0/fo/asset/host/vm/detection/"
	qualysKBPath        = "/api/2.0/fo/knowledge_base/vuln/"
)

// qualysKBBatch is how many QIDs one KnowledgeBase call asks for.
const qualysKBBatch = 500

// qualys pulls VMDR host detections page by page, following the truncation
// warning's URL, then the KnowledgeBase entries of the QIDs seen, since a
// detection carries only a QID: CVEs, title and CVSS come from the KB.
type qualys struct {
	src *Source
	c   *client
}

func (q *qualys) formats() []scan.Format { return []scan.Format{formatQualys} }

func (q *qualys) pull(ctx context.Context, dir string) (pulled, error) {
	user, pass, err := q.src.credentials()
	if err != nil {
		return pulled{}, err
	}
	header := http.Header{
		"Authorization":    {basicAuth(user, pass)},
		"X-Requested-With": {"VulnZero"},
		"Content-Type":     {"application/x-www-form-urlencoded"},
	}
	base, err := url.Parse(q.src.cfg.URL)
	if err != nil {
		return pulled{}, err
	}
	first, err := joinURL(q.src.cfg.URL, qualysDetectionPath, nil)
	if err != nil {
		return pulled{}, err
	}
	form := url.Values{
		"action":           {"list"},
		"truncation_limit": {strconv.Itoa(q.src.cfg.PageSize)},
		"status":           {"New,Active,Re-Opened"},
		"show_igs":         {"0"},
		"output_format":    {"XML"},
	}
	p := pulled{scanner: formatQualys}
	qids := map[string]bool{}
	next, body := first, []byte(form.Encode())
	seen := map[string]bool{}
	for page := range maxPages {
		path := spoolPath(dir, "qualys-detection", page)
		req := request{method: http.MethodPost, url: next, header: header, body: body}
		if _, err := q.c.spool(ctx, req, path); err != nil {
			return pulled{}, fmt.Errorf("host detections page %d: %w", page+1, err)
		}
		info, err := readQualysPage(path, "HOST_LIST_VM_DETECTION_OUTPUT")
		if err != nil {
			return pulled{}, fmt.Errorf("host detections page %d: %w", page+1, err)
		}
		for _, id := range info.qids {
			qids[id] = true
		}
		p.docs = append(p.docs, doc{
			name:   fmt.Sprintf("%s: POST %s page %d", q.src.cfg.Name, qualysDetectionPath, page+1),
			path:   path,
			format: formatQualys,
		})
		if info.next == "" {
			break
		}
		if err := sameAPI(base, info.next); err != nil {
			return pulled{}, fmt.Errorf("host detections page %d: %w", page+1, err)
		}
		if seen[info.next] {
			return pulled{}, fmt.Errorf("host detections page %d: truncation URL %s repeats an earlier page", page+1, RedactURL(info.next))
		}
		seen[info.next] = true
		// The truncation URL carries every parameter (id_min included).
		next, body = info.next, nil
	}

	kbURL, err := joinURL(q.src.cfg.URL, qualysKBPath, nil)
	if err != nil {
		return pulled{}, err
	}
	ids := make([]int, 0, len(qids))
	for id := range qids {
		n, err := strconv.Atoi(id)
		if err != nil {
			return pulled{}, fmt.Errorf("host detections: QID %q is not a number", id)
		}
		ids = append(ids, n)
	}
	slices.Sort(ids)
	var kb []string
	for i := 0; i < len(ids); i += qualysKBBatch {
		batch := ids[i:min(i+qualysKBBatch, len(ids))]
		strs := make([]string, len(batch))
		for j, n := range batch {
			strs[j] = strconv.Itoa(n)
		}
		form := url.Values{"action": {"list"}, "details": {"All"}, "ids": {strings.Join(strs, ",")}}
		what := fmt.Sprintf("knowledge base (QIDs %d–%d)", batch[0], batch[len(batch)-1])
		next, body := kbURL, []byte(form.Encode())
		for page := range maxPages {
			path := spoolPath(dir, "qualys-kb", len(kb))
			req := request{method: http.MethodPost, url: next, header: header, body: body}
			if _, err := q.c.spool(ctx, req, path); err != nil {
				return pulled{}, fmt.Errorf("%s page %d: %w", what, page+1, err)
			}
			info, err := readQualysPage(path, "KNOWLEDGE_BASE_VULN_LIST_OUTPUT")
			if err != nil {
				return pulled{}, fmt.Errorf("%s page %d: %w", what, page+1, err)
			}
			kb = append(kb, path)
			if info.next == "" {
				break
			}
			if err := sameAPI(base, info.next); err != nil {
				return pulled{}, fmt.Errorf("%s page %d: %w", what, page+1, err)
			}
			next, body = info.next, nil
		}
	}
	opts, err := qualysKnowledgeBase(kb)
	if err != nil {
		return pulled{}, fmt.Errorf("knowledge base: %w", err)
	}
	p.options = opts
	return p, nil
}

// sameAPI checks that a next-page URL the server gave is on the API the
// source is configured with: credentials go nowhere else.
func sameAPI(base *url.URL, next string) error {
	nu, err := url.Parse(next)
	if err != nil || nu.Scheme != base.Scheme || nu.Host != base.Host {
		return fmt.Errorf("truncation URL %s is not on %s://%s", RedactURL(next), base.Scheme, base.Host)
	}
	return nil
}

// qualysPage is what the puller needs from one Qualys answer.
type qualysPage struct {
	next string   // RESPONSE/WARNING/URL: the next page, when truncated
	qids []string // DETECTION/QID values, in order
}

// readQualysPage walks a Qualys XML answer as tokens (constant memory; the
// DOCTYPE's DTD is never fetched). An answer whose root is not want — a
// SIMPLE_RETURN error, say — is an error with its code and text.
func readQualysPage(path, want string) (qualysPage, error) {
	f, err := os.Open(path)
	if err != nil {
		return qualysPage{}, err
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	var (
		out        qualysPage
		stack      []string
		text       strings.Builder
		root       string
		code, msg  string
		warningURL string
	)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line, _ := dec.InputPos()
			return qualysPage{}, fmt.Errorf("line %d: %w", line, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = t.Name.Local
			}
			stack = append(stack, t.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			switch pathOf(stack) {
			case root + "/RESPONSE/WARNING/URL":
				warningURL = v
			case root + "/RESPONSE/HOST_LIST/HOST/DETECTION_LIST/DETECTION/QID":
				out.qids = append(out.qids, v)
			case root + "/RESPONSE/CODE":
				code = v
			case root + "/RESPONSE/TEXT":
				msg = v
			}
			stack = stack[:len(stack)-1]
			text.Reset()
		}
	}
	if root != want {
		if code != "" || msg != "" {
			return qualysPage{}, fmt.Errorf("qualys answered %s code %s: %s", root, code, msg)
		}
		return qualysPage{}, fmt.Errorf("answer root is <%s>, want <%s>", root, want)
	}
	out.next = warningURL
	return out, nil
}

func pathOf(stack []string) string { return strings.Join(stack, "/") }
