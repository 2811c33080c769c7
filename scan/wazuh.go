package scan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

// FormatWazuh is Wazuh vulnerability data in any of its three shapes: the
// manager API (≤ 4.7), an indexer search page (4.8+), or
// vulnerability-detector alerts.
const FormatWazuh Format = "wazuh"

var wazuhParser = parser{
	format: FormatWazuh,
	detect: detectWazuh,
	parse:  parseWazuh,
}

// jsonWalker is the token-level JSON walker trivy.go defines; the other
// JSON formats walk with it too.
type jsonWalker = trivyWalker

type wazuhShape int

const (
	wazuhUnknown wazuhShape = iota
	wazuhAPI                // {"data":{"affected_items":[…]}}
	wazuhIndexer            // an OpenSearch _search response
	wazuhAlerts             // a stream of alerts or detector payloads
)

func detectWazuh(head []byte) bool { return wazuhShapeOf(head) != wazuhUnknown }

// wazuhShapeOf tells the three shapes apart by the keys each writes early.
// An OpenSearch search response is taken for Wazuh's: it is the only
// indexer VulnZero reads, and no other scanner writes "_shards".
func wazuhShapeOf(head []byte) wazuhShape {
	b := trimSpace(trimBOM(head))
	if len(b) == 0 || (b[0] != '{' && b[0] != '[') {
		return wazuhUnknown
	}
	switch {
	case b[0] == '{' && bytes.Contains(b, []byte(`"affected_items"`)):
		return wazuhAPI
	case b[0] == '{' && (bytes.Contains(b, []byte(`"_shards"`)) ||
		bytes.Contains(b, []byte(`"hits"`)) && bytes.Contains(b, []byte(`"timed_out"`))):
		return wazuhIndexer
	case firstKeyIs(b, "vulnerability"),
		bytes.Contains(b, []byte(`"vulnerability-detector"`)),
		keyThenKey(b, "data", "vulnerability"),
		// alerts.json starting with other rules' alerts: every alert has
		// these, and the vulnerability alerts may come later.
		firstKeyIs(b, "timestamp") && bytes.Contains(b, []byte(`"rule"`)) && bytes.Contains(b, []byte(`"decoder"`)) && bytes.Contains(b, []byte(`"agent"`)):
		return wazuhAlerts
	}
	return wazuhUnknown
}

// firstKeyIs reports whether the first object in b (after an optional
// opening '[') starts with key: a detector payload, {"vulnerability":{…}}.
func firstKeyIs(b []byte, key string) bool {
	b = bytes.TrimLeft(b, " \t\r\n[")
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	return bytes.HasPrefix(b, []byte(`"`+key+`"`))
}

// keyThenKey reports whether b holds "outer": {"inner" (whitespace
// allowed), as an alert's "data": {"vulnerability": …} does.
func keyThenKey(b []byte, outer, inner string) bool {
	pat := []byte(`"` + outer + `"`)
	for i := bytes.Index(b, pat); i >= 0; {
		rest := bytes.TrimLeft(b[i+len(pat):], " \t\r\n")
		if len(rest) > 0 && rest[0] == ':' {
			rest = bytes.TrimLeft(rest[1:], " \t\r\n")
			if len(rest) > 0 && rest[0] == '{' {
				rest = bytes.TrimLeft(rest[1:], " \t\r\n")
				if bytes.HasPrefix(rest, []byte(`"`+inner+`"`)) {
					return true
				}
			}
		}
		b = b[i+len(pat):]
		i = bytes.Index(b, pat)
	}
	return false
}

func parseWazuh(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	var skipped int64
	if b, _ := r.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		r.Discard(3)
		skipped = 3
	}
	head, _ := r.Peek(HeadSize)
	shape := wazuhShapeOf(head)
	lt := newLineTracker(r, skipped)
	w := &wazuhWalker{jsonWalker: &jsonWalker{in: in, dec: json.NewDecoder(lt), lt: lt, emit: emit}}
	if len(trimSpace(head)) == 0 {
		return nil
	}
	switch shape {
	case wazuhAPI:
		return w.top(w.api)
	case wazuhIndexer:
		return w.top(w.indexer)
	case wazuhAlerts:
		return w.alerts()
	}
	return w.errAt(skipped, "", "not Wazuh vulnerability data: want a manager API response (data.affected_items), an indexer search response (hits.hits) or vulnerability-detector alerts")
}

type wazuhWalker struct {
	*jsonWalker
}

// top reads one top-level object with body and then expects the end of
// input.
func (w *wazuhWalker) top(body func() error) error {
	w.atTop = true
	t, start, err := w.token()
	w.atTop = false
	if errors.Is(err, errNoReport) {
		return nil
	}
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return w.errAt(start, "", "a Wazuh response is a JSON object; found %s", describe(t))
	}
	if err := body(); err != nil {
		return err
	}
	w.atTop = true
	_, start, err = w.token()
	switch {
	case errors.Is(err, errNoReport):
		return nil
	case err != nil:
		return err
	}
	return w.errAt(start, "", "unexpected data after the end of the response")
}

// --- manager API ≤ 4.7 ------------------------------------------------------

// wazuhAPIItem is one element of data.affected_items of
// GET /vulnerability/{agent_id}.
type wazuhAPIItem struct {
	Name          string    `json:"name"`
	Version       string    `json:"version"`
	Condition     string    `json:"condition"`
	CVE           string    `json:"cve"`
	Title         string    `json:"title"`
	Severity      string    `json:"severity"`
	CVSS2Score    flexFloat `json:"cvss2_score"`
	CVSS3Score    flexFloat `json:"cvss3_score"`
	DetectionTime string    `json:"detection_time"`
	// Not in the API itself; some exporters add them per item.
	AgentName string `json:"agent_name"`
	AgentIP   string `json:"agent_ip"`
}

// api walks {"data":{"affected_items":[…],"total_affected_items":N,
// "failed_items":[…]},"error":0,"message":…}, whose '{' is read.
func (w *wazuhWalker) api() error {
	page := Page{Total: -1}
	var detail string
	sawData := false
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "data":
			sawData = true
			if err := w.apiData(&page); err != nil {
				return err
			}
		case "detail", "message":
			var s flexString
			if _, err := w.decode(&s, key); err != nil {
				return err
			}
			if key == "detail" || detail == "" {
				detail = string(s)
			}
		default:
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
	if !sawData {
		return w.errAt(w.lt.end(), "", "the API response has no data: %s", firstNonEmpty(detail, "no affected_items"))
	}
	// An agent with no vulnerabilities is a clean host.
	w.in.cover(w.in.opts.Host)
	if w.in.opts.OnPage != nil {
		w.in.opts.OnPage(page)
	}
	return w.close()
}

func (w *wazuhWalker) apiData(page *Page) error {
	if err := w.openObject(); err != nil {
		return err
	}
	w.push("data")
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "affected_items":
			ok, _, err := w.openArray(key)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			for i := 0; w.dec.More(); i++ {
				w.push(fmt.Sprintf("affected_items[%d]", i))
				var it wazuhAPIItem
				start, err := decodeItem(w.jsonWalker, &it)
				if err != nil {
					return err
				}
				page.Count++
				if err := w.apiItem(start, it); err != nil {
					return err
				}
				w.pop()
			}
			if err := w.close(); err != nil {
				return err
			}
		case "total_affected_items":
			var n int64
			if _, err := w.decode(&n, key); err != nil {
				return err
			}
			page.Total = n
		case "failed_items":
			var failed []struct {
				Error struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
				ID []json.RawMessage `json:"id"`
			}
			start, err := w.decode(&failed, key)
			if err != nil {
				return err
			}
			if len(failed) > 0 {
				// Part of the request failed: the items are not the agent's
				// whole state, and importing them as a complete scan would
				// close findings that are still there.
				return w.errAt(start, key, "the API reports %d failed item(s): %s (code %d)", len(failed), failed[0].Error.Message, failed[0].Error.Code)
			}
		default:
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
	w.pop()
	return w.close()
}

func (w *wazuhWalker) apiItem(start int64, it wazuhAPIItem) error {
	it.CVE, it.Name = strings.TrimSpace(it.CVE), strings.TrimSpace(it.Name)
	host := firstNonEmpty(w.in.opts.Host, it.AgentName, it.AgentIP)
	switch {
	case host == "":
		return w.errAt(start, "", "no host: the manager API response does not name the agent (configure the source's host as the agent of the request)")
	case it.CVE == "":
		return w.errAt(start, "", "item has no cve")
	case it.Name == "":
		return w.errAt(start, "", "item %s has no package name", it.CVE)
	}
	for _, sc := range []struct {
		name string
		v    flexFloat
	}{{"cvss3_score", it.CVSS3Score}, {"cvss2_score", it.CVSS2Score}} {
		if sc.v < 0 || sc.v > 10 {
			return w.errAt(start, sc.name, "CVSS score %v is not from 0 to 10", float64(sc.v))
		}
	}
	w.in.cover(host)
	f := w.in.finding()
	f.Host = host
	f.Package = it.Name
	f.Installed = it.Version
	f.Fixed = wazuhFixed(it.Condition, it.Version)
	f.CVE = it.CVE
	f.Title = it.Title
	f.Severity = wazuhSeverity(it.Severity)
	// 0 means unknown here, not a score of zero.
	f.CVSS = float64(it.CVSS3Score)
	if f.CVSS == 0 {
		f.CVSS = float64(it.CVSS2Score)
	}
	if t, ok := parseTimestamp(it.DetectionTime); ok {
		f.FirstSeen = t
	}
	return w.emit(f)
}

// --- indexer 4.8+ ----------------------------------------------------------

// wazuhHit is one element of hits.hits. Its _source is either a document
// of wazuh-states-vulnerabilities-* or an alert of wazuh-alerts-*.
type wazuhHit struct {
	ID     string          `json:"_id"`
	Source *wazuhDoc       `json:"_source"`
	Sort   json.RawMessage `json:"sort"`
}

type wazuhDoc struct {
	Agent wazuhAgent `json:"agent"`
	Host  struct {
		OS struct {
			Full     string `json:"full"`
			Name     string `json:"name"`
			Platform string `json:"platform"`
			Version  string `json:"version"`
		} `json:"os"`
	} `json:"host"`
	Package       wazuhPackage `json:"package"`
	Vulnerability *struct {
		ID         string     `json:"id"`
		Severity   string     `json:"severity"`
		Score      wazuhScore `json:"score"`
		DetectedAt string     `json:"detected_at"`
		Scanner    struct {
			Condition string `json:"condition"`
		} `json:"scanner"`
		Description string `json:"description"`
	} `json:"vulnerability"`
	// Alerts (wazuh-alerts-*) carry the detector's payload under data.
	Timestamp string `json:"timestamp"`
	Data      *struct {
		Vulnerability *wazuhAlertVuln `json:"vulnerability"`
	} `json:"data"`
}

type wazuhAgent struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	IP   string `json:"ip"`
}

type wazuhPackage struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Type         string `json:"type"`
	Architecture string `json:"architecture"`
	Condition    string `json:"condition"` // alerts only
	Source       string `json:"source"`    // alerts only
}

type wazuhScore struct {
	Base    flexFloat  `json:"base"`
	Version flexString `json:"version"`
}

// indexer walks an OpenSearch _search response whose '{' is read.
func (w *wazuhWalker) indexer() error {
	page := Page{Total: -1}
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "hits":
			if err := w.hits(&page); err != nil {
				return err
			}
		case "timed_out":
			var b bool
			start, err := w.decode(&b, key)
			if err != nil {
				return err
			}
			if b {
				// A timed-out search returns whatever the shards had: not
				// the whole state.
				return w.errAt(start, key, "the search timed out: the page is partial")
			}
		case "_shards":
			var sh struct {
				Failed int `json:"failed"`
			}
			start, err := w.decode(&sh, key)
			if err != nil {
				return err
			}
			if sh.Failed > 0 {
				return w.errAt(start, key, "%d shard(s) failed: the page is partial", sh.Failed)
			}
		case "_scroll_id":
			if _, err := w.decode(&page.ScrollID, key); err != nil {
				return err
			}
		case "pit_id":
			if _, err := w.decode(&page.PITID, key); err != nil {
				return err
			}
		case "error":
			var e json.RawMessage
			start, err := w.decode(&e, key)
			if err != nil {
				return err
			}
			return w.errAt(start, key, "the indexer returned an error: %s", truncate(string(e), 300))
		default:
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
	if w.in.opts.OnPage != nil {
		w.in.opts.OnPage(page)
	}
	return w.close()
}

func (w *wazuhWalker) hits(page *Page) error {
	if err := w.openObject(); err != nil {
		return err
	}
	w.push("hits")
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "total":
			// {"value":125,"relation":"eq"}, or a bare number with
			// rest_total_hits_as_int.
			var raw json.RawMessage
			start, err := w.decode(&raw, key)
			if err != nil {
				return err
			}
			var tot struct {
				Value    int64  `json:"value"`
				Relation string `json:"relation"`
			}
			if err := json.Unmarshal(raw, &tot.Value); err != nil {
				if err := json.Unmarshal(raw, &tot); err != nil {
					return w.errAt(start, key, "hits.total is neither a number nor {value, relation}")
				}
			}
			page.Total, page.TotalRelation = tot.Value, tot.Relation
		case "hits":
			ok, _, err := w.openArray(key)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			for i := 0; w.dec.More(); i++ {
				w.push(fmt.Sprintf("hits[%d]", i))
				var h wazuhHit
				start, err := decodeItem(w.jsonWalker, &h)
				if err != nil {
					return err
				}
				page.Count++
				if len(h.Sort) > 0 && string(h.Sort) != "null" {
					page.SearchAfter = append(page.SearchAfter[:0], h.Sort...)
				}
				if err := w.hit(start, h); err != nil {
					return err
				}
				w.pop()
			}
			if err := w.close(); err != nil {
				return err
			}
		default:
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
	w.pop()
	return w.close()
}

func (w *wazuhWalker) hit(start int64, h wazuhHit) error {
	d := h.Source
	if d == nil {
		return w.errAt(start, "", "hit %q has no _source (was the search run with _source disabled?)", h.ID)
	}
	if d.Data != nil && d.Data.Vulnerability != nil {
		// A wazuh-alerts-* document: an alert with the detector payload.
		return w.alertFinding(start, d.Agent, d.Timestamp, d.Data.Vulnerability)
	}
	v := d.Vulnerability
	if v == nil {
		return w.errAt(start, "_source", "document has neither vulnerability nor data.vulnerability: not a vulnerability state or alert")
	}
	v.ID, d.Package.Name = strings.TrimSpace(v.ID), strings.TrimSpace(d.Package.Name)
	host := firstNonEmpty(w.in.opts.Host, d.Agent.Name, d.Agent.ID)
	switch {
	case host == "":
		return w.errAt(start, "_source.agent", "document names no agent")
	case v.ID == "":
		return w.errAt(start, "_source.vulnerability.id", "document has no vulnerability id")
	case d.Package.Name == "":
		return w.errAt(start, "_source.package.name", "document %s has no package name", v.ID)
	case v.Score.Base < 0 || v.Score.Base > 10:
		return w.errAt(start, "_source.vulnerability.score.base", "CVSS score %v is not from 0 to 10", float64(v.Score.Base))
	}
	w.in.cover(host)
	f := w.in.finding()
	f.Host = host
	fam := firstNonEmpty(d.Host.OS.Platform, d.Host.OS.Name)
	f.OS = osName(fam, d.Host.OS.Version)
	f.OSFamily = NormalizeOSFamily(fam)
	f.Ecosystem = firstNonEmpty(strings.ToLower(d.Package.Type), osEcosystem(fam))
	f.Package = d.Package.Name
	f.Installed = d.Package.Version
	f.Fixed = wazuhFixed(v.Scanner.Condition, d.Package.Version)
	f.CVE = v.ID
	f.Title = v.ID + " affects " + d.Package.Name
	f.Severity = wazuhSeverity(v.Severity)
	f.CVSS = float64(v.Score.Base)
	if t, ok := parseTimestamp(v.DetectedAt); ok {
		f.FirstSeen = t
	}
	return w.emit(f)
}

// --- vulnerability-detector alerts -------------------------------------------

// wazuhAlert is one alert (alerts.json line) or one bare detector payload
// ({"vulnerability":{…}}, what the detector sends to analysisd).
type wazuhAlert struct {
	Timestamp string     `json:"timestamp"`
	Agent     wazuhAgent `json:"agent"`
	Data      *struct {
		Vulnerability *wazuhAlertVuln `json:"vulnerability"`
	} `json:"data"`
	Vulnerability *wazuhAlertVuln `json:"vulnerability"`
}

type wazuhAlertVuln struct {
	CVE      string       `json:"cve"`
	Title    string       `json:"title"`
	Severity string       `json:"severity"`
	Status   string       `json:"status"`
	Package  wazuhPackage `json:"package"`
	Score    wazuhScore   `json:"score"`
	CVSS     struct {
		CVSS2 *wazuhCVSS `json:"cvss2"`
		CVSS3 *wazuhCVSS `json:"cvss3"`
	} `json:"cvss"`
}

type wazuhCVSS struct {
	BaseScore flexFloat             `json:"base_score"`
	Vector    map[string]flexString `json:"vector"`
}

// alerts reads a stream of JSON values (NDJSON, concatenated objects, or
// one array of them), each an alert or a bare payload. Alerts of other
// rules (no vulnerability) are skipped, so a whole alerts.json can be fed.
func (w *wazuhWalker) alerts() error {
	w.atTop = true
	for i := 0; ; i++ {
		off := w.dec.InputOffset()
		if !w.dec.More() {
			// More reports false at the end of input and on a stray ']'.
			_, start, err := w.token()
			if errors.Is(err, errNoReport) {
				return nil
			}
			if err != nil {
				return err
			}
			return w.errAt(start, "", "unexpected ']'")
		}
		// A top-level array of alerts: walk its elements.
		if b := w.peekByte(off); b == '[' {
			w.atTop = false
			if _, _, err := w.openArray(""); err != nil {
				return err
			}
			for j := 0; w.dec.More(); j++ {
				w.push(fmt.Sprintf("[%d]", j))
				if err := w.alert(); err != nil {
					return err
				}
				w.pop()
			}
			if err := w.close(); err != nil {
				return err
			}
			w.atTop = true
			continue
		}
		w.atTop = false
		w.push(fmt.Sprintf("alert %d", i+1))
		if err := w.alert(); err != nil {
			return err
		}
		w.pop()
		w.atTop = true
	}
}

// decodeItem decodes one array element or stream value. A value that
// rejects its own content (flexFloat, tenableVector) cannot tell the
// decoder where it is, so such an error is placed at the item's start
// instead of before it.
func decodeItem(w *jsonWalker, v any) (int64, error) {
	start, err := w.decode(v, "")
	var pe *vulnzero.PositionError
	if errors.As(err, &pe) {
		if line, col := w.lt.pos(start); pe.Line < line || pe.Line == line && pe.Column < col {
			pe.Line, pe.Column = line, col
		}
	}
	return start, err
}

// peekByte returns the first byte at or after off that is not whitespace.
func (w *wazuhWalker) peekByte(off int64) byte {
	for k := int(off - w.lt.base); k >= 0 && k < len(w.lt.buf); k++ {
		if !isSpace(w.lt.buf[k]) {
			return w.lt.buf[k]
		}
	}
	return 0
}

func (w *wazuhWalker) alert() error {
	var a wazuhAlert
	start, err := decodeItem(w.jsonWalker, &a)
	if err != nil {
		return err
	}
	v := a.Vulnerability
	if a.Data != nil && a.Data.Vulnerability != nil {
		v = a.Data.Vulnerability
	}
	if v == nil {
		return nil // another rule's alert
	}
	return w.alertFinding(start, a.Agent, a.Timestamp, v)
}

func (w *wazuhWalker) alertFinding(start int64, agent wazuhAgent, ts string, v *wazuhAlertVuln) error {
	v.CVE, v.Package.Name = strings.TrimSpace(v.CVE), strings.TrimSpace(v.Package.Name)
	host := firstNonEmpty(w.in.opts.Host, agent.Name, agent.ID, agent.IP)
	switch {
	case host == "":
		return w.errAt(start, "", "no host: a detector payload without its alert does not name the agent (configure the source's host)")
	case v.CVE == "":
		return w.errAt(start, "vulnerability.cve", "vulnerability has no cve")
	case v.Package.Name == "":
		return w.errAt(start, "vulnerability.package.name", "vulnerability %s has no package name", v.CVE)
	}
	// Alerts are events, not a snapshot of the agent: they never cover a
	// host, so an alert file cannot close findings by omission. A "Solved"
	// alert is not imported: the store keeps findings open, and VulnZero
	// must not propose a patch for a vulnerability the agent no longer has.
	if strings.EqualFold(v.Status, "Solved") {
		return nil
	}
	f := w.in.finding()
	f.Host = host
	f.Package = v.Package.Name
	f.Installed = v.Package.Version
	f.Fixed = wazuhFixed(v.Package.Condition, v.Package.Version)
	f.CVE = v.CVE
	f.Title = v.Title
	f.Severity = wazuhSeverity(v.Severity)
	f.CVSS, f.CVSSVector = wazuhAlertScore(v)
	if f.CVSS < 0 || f.CVSS > 10 {
		return w.errAt(start, "vulnerability.score", "CVSS score %v is not from 0 to 10", f.CVSS)
	}
	if t, ok := parseTimestamp(ts); ok {
		f.FirstSeen = t
	}
	return w.emit(f)
}

// wazuhAlertScore takes score.base, else the cvss3 then cvss2 base score.
// The vector is rebuilt from cvss.cvssN.vector only when every base metric
// is there; the 4.8+ detector leaves attack complexity out, and a partial
// vector would be wrong.
func wazuhAlertScore(v *wazuhAlertVuln) (float64, string) {
	score := float64(v.Score.Base)
	ver := string(v.Score.Version)
	var vec string
	if c := v.CVSS.CVSS3; c != nil {
		if score == 0 {
			score = float64(c.BaseScore)
		}
		if !strings.HasPrefix(ver, "3.") {
			ver = "3.1" // the detector has scored CVSS 3.1 since 4.8
		}
		vec = cvss3Vector(c.Vector, ver)
	}
	if c := v.CVSS.CVSS2; c != nil {
		if score == 0 {
			score = float64(c.BaseScore)
		}
		if vec == "" {
			vec = cvss2Vector(c.Vector)
		}
	}
	return score, vec
}

var cvss3Metrics = []struct {
	abbr  string
	keys  []string
	value map[string]string
}{
	{"AV", []string{"attack_vector"}, map[string]string{"network": "N", "adjacent_network": "A", "adjacent": "A", "local": "L", "physical": "P"}},
	{"AC", []string{"attack_complexity", "access_complexity"}, map[string]string{"low": "L", "high": "H"}},
	{"PR", []string{"privileges_required"}, map[string]string{"none": "N", "low": "L", "high": "H"}},
	{"UI", []string{"user_interaction"}, map[string]string{"none": "N", "required": "R"}},
	{"S", []string{"scope"}, map[string]string{"unchanged": "U", "changed": "C"}},
	{"C", []string{"confidentiality_impact"}, map[string]string{"none": "N", "low": "L", "high": "H"}},
	{"I", []string{"integrity_impact"}, map[string]string{"none": "N", "low": "L", "high": "H"}},
	{"A", []string{"availability", "availability_impact"}, map[string]string{"none": "N", "low": "L", "high": "H"}},
}

var cvss2Metrics = []struct {
	abbr  string
	keys  []string
	value map[string]string
}{
	{"AV", []string{"access_vector", "attack_vector"}, map[string]string{"network": "N", "adjacent_network": "A", "local": "L"}},
	{"AC", []string{"access_complexity"}, map[string]string{"low": "L", "medium": "M", "high": "H"}},
	{"Au", []string{"authentication"}, map[string]string{"none": "N", "single": "S", "single_instance": "S", "multiple": "M", "multiple_instances": "M"}},
	{"C", []string{"confidentiality_impact"}, map[string]string{"none": "N", "partial": "P", "complete": "C"}},
	{"I", []string{"integrity_impact"}, map[string]string{"none": "N", "partial": "P", "complete": "C"}},
	{"A", []string{"availability", "availability_impact"}, map[string]string{"none": "N", "partial": "P", "complete": "C"}},
}

func cvss3Vector(m map[string]flexString, version string) string {
	parts := vectorParts(m, cvss3Metrics)
	if parts == nil {
		return ""
	}
	return "CVSS:" + version + "/" + strings.Join(parts, "/")
}

func cvss2Vector(m map[string]flexString) string {
	return strings.Join(vectorParts(m, cvss2Metrics), "/")
}

func vectorParts(m map[string]flexString, metrics []struct {
	abbr  string
	keys  []string
	value map[string]string
}) []string {
	if len(m) == 0 {
		return nil
	}
	parts := make([]string, 0, len(metrics))
	for _, mt := range metrics {
		var v string
		for _, k := range mt.keys {
			if s, ok := m[k]; ok {
				v = mt.value[strings.ToLower(strings.TrimSpace(string(s)))]
				break
			}
		}
		if v == "" {
			return nil
		}
		parts = append(parts, mt.abbr+":"+v)
	}
	return parts
}

// --- shared ---------------------------------------------------------------

// wazuhFixed reads the fixed version out of a Wazuh condition. Only "Package
// less than X" names a fix (X). "… less than or equal to X" and "… equal
// to X" name a vulnerable version, and "Package unfixed" / "Package default
// status" say the vendor has no fix yet: no fix is known for those. An X
// that is not one word (the anonymized "lorem impsumversion") is not a
// version. Wazuh writes an epoch "0:" in conditions even when the installed
// version has none; it is dropped then, so the fix reads like the package
// manager's version and like other scanners' (epoch 0 is no epoch).
func wazuhFixed(condition, installed string) string {
	c := strings.TrimSpace(condition)
	lc := strings.ToLower(c)
	if strings.Contains(lc, "less than or equal") || strings.Contains(lc, "less or equal") {
		return ""
	}
	i := strings.LastIndex(lc, "less than ")
	if i < 0 {
		return ""
	}
	v := strings.TrimSpace(c[i+len("less than "):])
	if v == "" || strings.ContainsAny(v, " \t") {
		return ""
	}
	if strings.HasPrefix(v, "0:") && !strings.HasPrefix(installed, "0:") {
		v = v[2:]
	}
	return v
}

// wazuhSeverity maps Wazuh's severities; "Untriaged", "-" and anything else
// are unknown.
func wazuhSeverity(s string) vulnzero.Severity {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return vulnzero.SeverityCritical
	case "high":
		return vulnzero.SeverityHigh
	case "medium", "moderate":
		return vulnzero.SeverityMedium
	case "low":
		return vulnzero.SeverityLow
	}
	return vulnzero.SeverityUnknown
}

// parseTimestamp reads the timestamps scanners write: RFC 3339 (with or
// without fraction, with "Z" or an offset), Wazuh's alert format
// (2024-01-10T10:00:00.000+0000) and a bare date. The zero time and
// unparseable text give ok false: a finding then keeps the import time.
func parseTimestamp(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05-0700", "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() <= 1970 {
				return time.Time{}, false
			}
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// flexFloat decodes a number written as a JSON number or a string
// ("9.300000" in older Wazuh alerts); "", "-" and null are 0.
type flexFloat float64

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*f = 0
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		s = strings.TrimSpace(str)
		switch strings.ToLower(s) {
		case "", "-", "n/a", "null", "none":
			*f = 0
			return nil
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "value " + truncate(string(b), 40), Type: reflect.TypeFor[float64]()}
	}
	*f = flexFloat(v)
	return nil
}

// flexString decodes a string, a number or a boolean as text, and null as "".
type flexString string

func (s *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*s = ""
	case b[0] == '"':
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		*s = flexString(str)
	case b[0] == '{' || b[0] == '[':
		return &json.UnmarshalTypeError{Value: "object or array", Type: reflect.TypeFor[string]()}
	default:
		*s = flexString(b)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
