package scan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"vulnzero.dev/vulnzero"
)

// FormatTenable is a chunk of a Tenable Vulnerability Management
// (Tenable.io) vulnerability export: GET /vulns/export/{uuid}/chunks/{n},
// a JSON array of findings.
const FormatTenable Format = "tenable"

var tenableParser = parser{
	format: FormatTenable,
	detect: detectTenable,
	parse:  parseTenable,
}

// detectTenable recognises an export chunk by the keys of its findings,
// and the export's status document (which holds no findings) by its own.
func detectTenable(head []byte) bool {
	b := trimSpace(head)
	if len(b) == 0 {
		return false
	}
	switch b[0] {
	case '[':
		return bytes.Contains(b, []byte(`"asset"`)) && bytes.Contains(b, []byte(`"plugin"`)) &&
			(bytes.Contains(b, []byte(`"severity_id"`)) || bytes.Contains(b, []byte(`"first_found"`)) || bytes.Contains(b, []byte(`"severity"`)))
	case '{':
		return bytes.Contains(b, []byte(`"chunks_available"`))
	}
	return false
}

// tenableVuln is one finding of an export chunk.
type tenableVuln struct {
	Asset struct {
		UUID            string     `json:"uuid"`
		Hostname        flexString `json:"hostname"`
		FQDN            flexString `json:"fqdn"`
		NetBIOSName     flexString `json:"netbios_name"`
		IPv4            oneOrMany  `json:"ipv4"`
		OperatingSystem oneOrMany  `json:"operating_system"`
	} `json:"asset"`
	Output string `json:"output"`
	Plugin struct {
		ID             flexString    `json:"id"`
		Name           string        `json:"name"`
		CVE            []string      `json:"cve"`
		CVSS3BaseScore flexFloat     `json:"cvss3_base_score"`
		CVSS3Vector    tenableVector `json:"cvss3_vector"`
		CVSS4BaseScore flexFloat     `json:"cvss4_base_score"`
		CVSS4Vector    tenableVector `json:"cvss4_vector"`
		CVSSBaseScore  flexFloat     `json:"cvss_base_score"`
		CVSSVector     tenableVector `json:"cvss_vector"`
		RiskFactor     string        `json:"risk_factor"`
	} `json:"plugin"`
	Severity   string     `json:"severity"`
	SeverityID *int       `json:"severity_id"`
	State      string     `json:"state"`
	FirstFound flexString `json:"first_found"`
	LastFixed  flexString `json:"last_fixed"`
}

// tenableVector is a vector written as a string or as an object with the
// string in "raw" (what the export writes).
type tenableVector string

func (v *tenableVector) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var o struct {
			Raw flexString `json:"raw"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*v = tenableVector(o.Raw)
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*v = tenableVector(s)
	return nil
}

// oneOrMany is a string or an array of strings (asset.ipv4 and
// asset.operating_system are arrays in some API versions, strings in
// others).
type oneOrMany []string

func (o *oneOrMany) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var ss []flexString
		if err := json.Unmarshal(b, &ss); err != nil {
			return err
		}
		*o = (*o)[:0]
		for _, s := range ss {
			*o = append(*o, string(s))
		}
		return nil
	}
	var s flexString
	if err := s.UnmarshalJSON(b); err != nil {
		return err
	}
	*o = oneOrMany{string(s)}
	return nil
}

func parseTenable(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	var skipped int64
	if b, _ := r.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		r.Discard(3)
		skipped = 3
	}
	lt := newLineTracker(r, skipped)
	w := &jsonWalker{in: in, dec: json.NewDecoder(lt), lt: lt, emit: emit}
	w.atTop = true
	t, start, err := w.token()
	w.atTop = false
	if errors.Is(err, errNoReport) {
		return nil
	}
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('['):
	case json.Delim('{'):
		return w.errAt(start, "", "a Tenable export chunk is a JSON array of findings; this object is %s", tenableObjectKind(w))
	default:
		return w.errAt(start, "", "a Tenable export chunk is a JSON array of findings; found %s", describe(t))
	}
	for i := 0; w.dec.More(); i++ {
		w.push(fmt.Sprintf("[%d]", i))
		var v tenableVuln
		start, err := decodeItem(w, &v)
		if err != nil {
			return err
		}
		if err := tenableFinding(w, start, &v); err != nil {
			return err
		}
		w.pop()
	}
	if err := w.close(); err != nil {
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
	return w.errAt(start, "", "unexpected data after the end of the chunk")
}

// tenableObjectKind names what an object given instead of a chunk is, by
// its first key.
func tenableObjectKind(w *jsonWalker) string {
	if w.dec.More() {
		if k, err := w.key(); err == nil {
			switch k {
			case "uuid", "status", "chunks_available":
				return "an export status (GET /vulns/export/{uuid}/status), which holds no findings: fetch its chunks"
			}
			return fmt.Sprintf("something else (first key %q)", k)
		}
	}
	return "empty"
}

func tenableFinding(w *jsonWalker, start int64, v *tenableVuln) error {
	host := firstNonEmpty(w.in.opts.Host, string(v.Asset.FQDN), string(v.Asset.Hostname), string(v.Asset.NetBIOSName), validIP(v.Asset.IPv4), v.Asset.UUID)
	if host == "" {
		return w.errAt(start, "asset", "finding names no asset (fqdn, hostname, netbios_name, ipv4 or uuid)")
	}
	w.in.cover(host)
	sevText := v.Severity
	if sevText == "" && v.SeverityID != nil {
		sevText = strconv.Itoa(*v.SeverityID)
	}
	if sevText == "" {
		sevText = v.Plugin.RiskFactor
	}
	sev, ok, valid := nessusSeverity(sevText)
	if !valid {
		return w.errAt(start, "severity", "severity %q is not info/low/medium/high/critical", sevText)
	}
	if !ok {
		return nil
	}
	if v.Plugin.ID == "" {
		return w.errAt(start, "plugin.id", "finding has no plugin id")
	}
	hit := nessusHit{
		host:     host,
		pluginID: string(v.Plugin.ID),
		name:     v.Plugin.Name,
		severity: sev,
		cves:     v.Plugin.CVE,
		output:   v.Output,
	}
	if len(v.Asset.OperatingSystem) > 0 {
		hit.os = v.Asset.OperatingSystem[0]
	}
	for _, s := range []struct {
		score   flexFloat
		vec     tenableVector
		version int
	}{{v.Plugin.CVSS3BaseScore, v.Plugin.CVSS3Vector, 3}, {v.Plugin.CVSS4BaseScore, v.Plugin.CVSS4Vector, 4}, {v.Plugin.CVSSBaseScore, v.Plugin.CVSSVector, 2}} {
		if s.score < 0 || s.score > 10 {
			return w.errAt(start, "plugin", "CVSS score %v is not from 0 to 10", float64(s.score))
		}
		if s.score > 0 {
			hit.cvss, hit.vector = float64(s.score), nessusVector(string(s.vec), s.version)
			break
		}
	}
	if t, ok := parseTimestamp(string(v.FirstFound)); ok {
		hit.firstSeen = t
	}
	if hit.fixed = strings.EqualFold(v.State, "FIXED"); hit.fixed {
		hit.fixedAt, _ = parseTimestamp(string(v.LastFixed))
	}
	for _, f := range w.in.pluginFindings(hit) {
		if err := w.emit(f); err != nil {
			return err
		}
	}
	return nil
}

// validIP is the first address that parses: recorders replace addresses
// with "[REDACTED]".
func validIP(ss []string) string {
	for _, s := range ss {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			return a.String()
		}
	}
	return ""
}
