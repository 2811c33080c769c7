package scan

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	"vulnzero.dev/vulnzero"
)

var trivyParser = parser{
	format: FormatTrivy,
	detect: detectTrivy,
	parse:  parseTrivy,
}

// detectTrivy recognises a Trivy report by the keys Trivy writes first.
// Other JSON scanners (Grype's "matches", OSV's lowercase "results") do not
// use these capitalised names.
func detectTrivy(head []byte) bool {
	b := trimSpace(head)
	if len(b) == 0 {
		return false
	}
	switch b[0] {
	case '{':
		return bytes.Contains(b, []byte(`"SchemaVersion"`)) ||
			bytes.Contains(b, []byte(`"ArtifactName"`)) ||
			bytes.Contains(b, []byte(`"ClusterName"`)) ||
			bytes.Contains(b, []byte(`"Results"`))
	case '[':
		// The legacy format: an array of {Target, Type, Vulnerabilities}.
		return bytes.Contains(b, []byte(`"Target"`)) &&
			(bytes.Contains(b, []byte(`"Vulnerabilities"`)) || bytes.Contains(b, []byte(`"Type"`)))
	}
	return false
}

// trivyVuln is the part of a Trivy vulnerability VulnZero reads. One is
// decoded at a time, so memory stays flat however long the report is.
type trivyVuln struct {
	VulnerabilityID  string
	PkgName          string
	InstalledVersion string
	FixedVersion     string
	Status           string
	Title            string
	Severity         string
	SeveritySource   string
	CVSS             map[string]trivyCVSS
}

type trivyCVSS struct {
	V2Vector, V3Vector, V40Vector string
	V2Score, V3Score, V40Score    float64
}

// trivyWalker walks a Trivy report token by token, decoding only single
// vulnerabilities and small headers.
type trivyWalker struct {
	in   *input
	dec  jsonDecoder
	lt   *lineTracker
	emit func(vulnzero.Finding) error
	path []string // element path, for errors: "Results[2]", "Vulnerabilities[0]"

	atTop bool // between reports: the end of input is clean here, not truncation

	artifact        string // ArtifactName
	osFamily, osVer string // Metadata.OS of the report

	// Vulnerabilities are decoded in batches on the other cores (fd reads
	// them raw, par decodes and hands them back in order); the walker's
	// own emits and coverage go through par too, to stay in order.
	fd  *fastDecoder
	par *ordered

	prevPkg, prevID string // the last vulnerability consumed, for dedupe

	// vulnAt is the index of the vulnerability being decoded, the last
	// step of the path (built only for an error); -1 outside one.
	vulnAt  int
	scratch trivyVuln
}

// trivyScope is what a group of results shares: the host they describe when
// the report says so per resource (Kubernetes).
type trivyScope struct {
	host string
}

// trivyResult is a result's header, read before its vulnerabilities.
type trivyResult struct {
	target, class, typ string
	seen               bool // any of the three was read
}

func parseTrivy(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error {
	var skipped int64
	if b, _ := r.Peek(3); len(b) == 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		r.Discard(3)
		skipped = 3
	}
	lt := newLineTracker(r, skipped)
	dec := newFastDecoder(lt)
	return newTrivyWalker(in, dec, lt, emit).parse()
}

func newTrivyWalker(in *input, dec jsonDecoder, lt *lineTracker, emit func(vulnzero.Finding) error) *trivyWalker {
	w := &trivyWalker{in: in, dec: dec, lt: lt, emit: emit, par: newOrdered(), vulnAt: -1}
	w.fd, _ = dec.(*fastDecoder)
	return w
}

// parse walks the report, then waits for the batches still in flight.
func (w *trivyWalker) parse() error { return w.par.finish(w.run()) }

// cover reports a host as covered, in order with the findings before it.
func (w *trivyWalker) cover(host string) error {
	return w.par.then(func() error {
		w.in.cover(host)
		return nil
	})
}

func (w *trivyWalker) run() error {
	w.atTop = true
	t, start, err := w.token()
	w.atTop = false
	if errors.Is(err, errNoReport) {
		return nil // no report at all: nothing to import
	}
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('{'):
		if err := w.report(); err != nil {
			return err
		}
	case json.Delim('['):
		if err := w.resultList(trivyScope{}, ""); err != nil {
			return err
		}
	default:
		return w.errAt(start, "", "a Trivy report is a JSON object (or, before v0.20, an array); found %s", describe(t))
	}
	w.atTop = true
	_, start, err = w.token()
	switch {
	case errors.Is(err, errNoReport):
		return nil
	case err != nil:
		return err
	}
	return w.errAt(start, "", "unexpected data after the end of the report")
}

// report walks the top-level object. Trivy writes ArtifactName and Metadata
// before Results; when a file puts them after, findings fall back to the
// result's Target for the host and to the result's Type for the OS.
func (w *trivyWalker) report() error {
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "SchemaVersion":
			var v int
			start, err := w.decode(&v, key)
			if err != nil {
				return err
			}
			if v != 2 {
				return w.errAt(start, key, "SchemaVersion %d is not supported (want 2)", v)
			}
		case "ArtifactName":
			if _, err := w.decode(&w.artifact, key); err != nil {
				return err
			}
		case "Metadata":
			var md struct {
				OS *struct{ Family, Name string }
			}
			if _, err := w.decode(&md, key); err != nil {
				return err
			}
			if md.OS != nil {
				w.osFamily, w.osVer = md.OS.Family, md.OS.Name
			}
		case "Results":
			if err := w.resultList(trivyScope{}, key); err != nil {
				return err
			}
		case "Resources", "Vulnerabilities":
			// Kubernetes reports: "Resources" today, "Vulnerabilities" (a
			// list of resources) in older versions.
			if err := w.resources(key); err != nil {
				return err
			}
		default:
			if err := w.skip(); err != nil {
				return err
			}
		}
	}
	if err := w.close(); err != nil { // the closing '}'
		return err
	}
	// A report with no results still covers its host: it is clean.
	return w.cover(firstNonEmpty(w.in.opts.Host, w.artifact))
}

// resources walks a Kubernetes report's resource list. A node is a machine,
// so it is its own host; a workload is named namespace/kind/name.
func (w *trivyWalker) resources(field string) error {
	ok, _, err := w.openArray(field)
	if err != nil || !ok {
		return err
	}
	for i := 0; w.dec.More(); i++ {
		w.push(fmt.Sprintf("%s[%d]", field, i))
		if err := w.openObject(); err != nil {
			return err
		}
		var ns, kind, name string
		for w.dec.More() {
			key, err := w.key()
			if err != nil {
				return err
			}
			switch key {
			case "Namespace":
				_, err = w.decode(&ns, key)
			case "Kind":
				_, err = w.decode(&kind, key)
			case "Name":
				_, err = w.decode(&name, key)
			case "Results":
				if name == "" {
					_, start, err := w.token()
					if err != nil {
						return err
					}
					return w.errAt(start, key, "resource Results come before its Name; a streamed report needs Kind and Name first")
				}
				err = w.resultList(trivyScope{host: k8sHost(ns, kind, name)}, key)
			default:
				err = w.skip()
			}
			if err != nil {
				return err
			}
		}
		if err := w.close(); err != nil {
			return err
		}
		w.pop()
	}
	return w.close()
}

func k8sHost(ns, kind, name string) string {
	if strings.EqualFold(kind, "Node") {
		return name
	}
	return strings.Join(nonEmpty(ns, kind, name), "/")
}

// resultList walks an array of results; field is its key ("" for the
// legacy top-level array, whose opening bracket is already read).
func (w *trivyWalker) resultList(sc trivyScope, field string) error {
	if field != "" {
		ok, _, err := w.openArray(field)
		if err != nil || !ok {
			return err
		}
	}
	for i := 0; w.dec.More(); i++ {
		w.push(fmt.Sprintf("%s[%d]", field, i))
		if err := w.openObject(); err != nil {
			return err
		}
		if err := w.result(sc); err != nil {
			return err
		}
		w.pop()
	}
	return w.close()
}

// result walks one result object, whose opening brace is read.
func (w *trivyWalker) result(sc trivyScope) error {
	var res trivyResult
	for w.dec.More() {
		key, err := w.key()
		if err != nil {
			return err
		}
		switch key {
		case "Target":
			_, err = w.decode(&res.target, key)
			res.seen = true
		case "Class":
			_, err = w.decode(&res.class, key)
			res.seen = true
		case "Type":
			_, err = w.decode(&res.typ, key)
			res.seen = true
		case "Vulnerabilities":
			err = w.vulnerabilities(sc, res)
		default:
			err = w.skip()
		}
		if err != nil {
			return err
		}
	}
	if host := w.host(sc, res); res.seen && host != "" {
		if err := w.cover(host); err != nil {
			return err
		}
	}
	return w.close()
}

// kind says whether a result holds OS packages, language packages, or
// something VulnZero does not import (misconfigurations, secrets, licenses).
func (res trivyResult) kind() string {
	switch res.class {
	case "os-pkgs", "lang-pkgs":
		return res.class
	case "":
		// Legacy reports have no Class; an OS name as Type means OS packages.
		if isOSFamily(res.typ) {
			return "os-pkgs"
		}
		return "lang-pkgs"
	}
	return ""
}

func (w *trivyWalker) host(sc trivyScope, res trivyResult) string {
	return firstNonEmpty(w.in.opts.Host, sc.host, w.artifact, targetHost(res.target))
}

func (w *trivyWalker) vulnerabilities(sc trivyScope, res trivyResult) error {
	kind := res.kind()
	if kind == "" {
		return w.skip()
	}
	ok, start, err := w.openArray("Vulnerabilities")
	if err != nil || !ok {
		return err
	}
	if !res.seen {
		return w.errAt(start, "Vulnerabilities", "Vulnerabilities come before the result's Target, Class and Type; a streamed report needs them first")
	}
	host := w.host(sc, res)
	if host == "" {
		return w.errAt(start, "Vulnerabilities", "no host: ArtifactName and Target are empty (configure a host for this source)")
	}
	if err := w.cover(host); err != nil {
		return err
	}

	base := w.in.finding()
	base.Host = host
	base.OSFamily = NormalizeOSFamily(w.osFamily)
	base.OS = osName(w.osFamily, w.osVer)
	if kind == "os-pkgs" {
		// The result's Type is the OS its packages belong to; the Target
		// ends with "(family version)" when Metadata did not say.
		fam, ver := targetOS(res.target)
		if res.typ != "" {
			fam = res.typ
		}
		if base.OS == "" || NormalizeOSFamily(fam) != base.OSFamily {
			base.OS = osName(fam, ver)
		}
		base.OSFamily = NormalizeOSFamily(fam)
		base.Ecosystem = osEcosystem(fam)
	} else {
		base.Ecosystem = strings.ToLower(res.typ)
	}

	if err := w.par.then(func() error {
		w.prevPkg, w.prevID = "", ""
		return nil
	}); err != nil {
		return err
	}
	b := &trivyBatch{base: base, path: slices.Clone(w.path)}
	for i := 0; w.dec.More(); i++ {
		if w.fd != nil && !w.par.inline {
			if start, end, ok := w.fd.rawObject(); ok {
				if len(b.starts) == 0 {
					b.first = i
				}
				b.starts, b.end = append(b.starts, start), end
				if len(b.starts) == batchSize {
					if err := w.submit(b); err != nil {
						return err
					}
					b = &trivyBatch{base: base, path: b.path}
				}
				continue
			}
		}
		// Not a well-formed object: decode it here, after everything before
		// it, so that the decoder names what is wrong with it.
		if err := w.submit(b); err != nil {
			return err
		}
		b = &trivyBatch{base: base, path: b.path}
		if err := w.par.flush(); err != nil {
			return err
		}
		w.vulnAt = i
		f, notAffected, err := w.vuln(base)
		if err != nil {
			return err
		}
		if err := w.emitVuln(f, notAffected); err != nil {
			return err
		}
		w.vulnAt = -1
	}
	if err := w.submit(b); err != nil {
		return err
	}
	return w.close()
}

// vuln decodes the vulnerability at the decoder's position into a finding
// on base.
func (w *trivyWalker) vuln(base vulnzero.Finding) (f vulnzero.Finding, notAffected bool, err error) {
	w.scratch = trivyVuln{}
	v := &w.scratch
	start, err := w.decode(v, "")
	if err != nil {
		return f, false, err
	}
	switch {
	case v.VulnerabilityID == "":
		return f, false, w.errAt(start, "", "vulnerability has no VulnerabilityID")
	case v.PkgName == "":
		return f, false, w.errAt(start, "", "vulnerability %s has no PkgName", v.VulnerabilityID)
	}
	f = base
	f.Package = v.PkgName
	f.Installed = v.InstalledVersion
	f.Fixed = pickFixed(v.FixedVersion, v.InstalledVersion)
	f.CVE = v.VulnerabilityID
	f.Title = v.Title
	f.Severity = trivySeverity(v.Severity)
	f.CVSS, f.CVSSVector = trivyScore(v.CVSS, v.SeveritySource)
	return f, v.Status == "not_affected", nil
}

// emitVuln emits a decoded vulnerability, in input order. Trivy sorts by
// package then id, so the same package reported at two paths arrives
// twice in a row: the first is kept.
func (w *trivyWalker) emitVuln(f vulnzero.Finding, notAffected bool) error {
	dup := f.Package == w.prevPkg && f.CVE == w.prevID
	w.prevPkg, w.prevID = f.Package, f.CVE
	if dup || notAffected {
		return nil
	}
	return w.emit(f)
}

// trivyBatch is a run of vulnerabilities of one result, read raw by the
// walker and decoded on a worker.
type trivyBatch struct {
	base   vulnzero.Finding
	path   []string // the walker's path at the Vulnerabilities array
	first  int      // index of the first entry in the array
	starts []int64  // stream offset of each entry
	end    int64    // stream offset just past the last entry
}

// submit hands a batch to a worker: a copy of its stream bytes, and the
// line count before them for errors. The worker decodes each entry with
// the same walker code on a view of the copy, so an error names the same
// line, column and path as it would have here.
func (w *trivyWalker) submit(b *trivyBatch) error {
	if len(b.starts) == 0 {
		return nil
	}
	segStart := b.starts[0]
	seg := getBuffer(int(b.end - segStart))
	copy(seg, w.lt.buf[segStart-w.lt.base:b.end-w.lt.base])
	lines, lastNL, _ := w.lt.linesBefore(segStart)
	w.lt.release(b.end)
	in := w.in
	return w.par.submit(func() func() error {
		d := segmentDecoders.Get().(*fastDecoder)
		defer segmentDecoders.Put(d)
		d.resetSegment(seg, segStart)
		ww := &trivyWalker{in: in, dec: d, lt: &lineTracker{base: segStart, lines: lines, lastNL: lastNL, buf: seg, view: true}, path: b.path}
		out := trivyEntries.Get().(*[]trivyEntry)
		entries := (*out)[:0]
		var err error
		for k, off := range b.starts {
			ww.vulnAt = b.first + k
			d.seek(off)
			f, notAffected, ferr := ww.vuln(b.base)
			if ferr != nil {
				err = ferr
				break
			}
			entries = append(entries, trivyEntry{f, notAffected})
		}
		d.buf = nil // the batch's, not the pool's
		return func() error {
			// Emit copies each finding, and decoded strings never point
			// into seg: both go back to their pools after.
			defer func() {
				*out = entries[:0]
				trivyEntries.Put(out)
				putBuffer(seg)
			}()
			for _, e := range entries {
				if err := w.emitVuln(e.f, e.notAffected); err != nil {
					return err
				}
			}
			return err
		}
	})
}

type trivyEntry struct {
	f           vulnzero.Finding
	notAffected bool
}

var trivyEntries = sync.Pool{New: func() any { return new([]trivyEntry) }}

// trivySeverity maps Trivy's severities; anything else (Trivy writes only
// these five) is unknown.
func trivySeverity(s string) vulnzero.Severity {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "CRITICAL":
		return vulnzero.SeverityCritical
	case "HIGH":
		return vulnzero.SeverityHigh
	case "MEDIUM":
		return vulnzero.SeverityMedium
	case "LOW":
		return vulnzero.SeverityLow
	}
	return vulnzero.SeverityUnknown
}

// trivyScore picks one score and vector: CVSS v3 before v4 before v2 (v3 is
// what most policies and EPSS-era tooling are calibrated on), and within a
// version nvd first, then the source Trivy took the severity from, then the
// other vendors in name order so the choice is stable.
func trivyScore(m map[string]trivyCVSS, severitySource string) (float64, string) {
	if len(m) == 0 {
		return 0, ""
	}
	var arr [8]string
	order := append(arr[:0], "nvd", severitySource)
	for src := range m {
		if src != "nvd" && src != severitySource {
			order = append(order, src)
		}
	}
	slices.Sort(order[2:])
	for version := range 3 { // v3, then v4.0, then v2
		for _, src := range order {
			c, ok := m[src]
			if !ok {
				continue
			}
			score, vec := c.V3Score, c.V3Vector
			switch version {
			case 1:
				score, vec = c.V40Score, c.V40Vector
			case 2:
				score, vec = c.V2Score, c.V2Vector
			}
			if score > 0 {
				return score, vec
			}
		}
	}
	return 0, ""
}

// targetHost is a result Target without the "(family version)" suffix Trivy
// appends for OS results: "example-app:main-159 (debian 10.13)".
func targetHost(target string) string {
	if i := strings.LastIndex(target, " ("); i > 0 && strings.HasSuffix(target, ")") {
		return strings.TrimSpace(target[:i])
	}
	return strings.TrimSpace(target)
}

// targetOS reads the "(family version)" suffix of an OS result's Target.
func targetOS(target string) (family, version string) {
	i := strings.LastIndex(target, " (")
	if i < 0 || !strings.HasSuffix(target, ")") {
		return "", ""
	}
	fam, ver, _ := strings.Cut(target[i+2:len(target)-1], " ")
	return fam, ver
}

// --- token-level helpers -------------------------------------------------

func (w *trivyWalker) push(s string) { w.path = append(w.path, s) }
func (w *trivyWalker) pop()          { w.path = w.path[:len(w.path)-1] }

func (w *trivyWalker) pathString(field string) string {
	var b strings.Builder
	path := w.path
	if w.vulnAt >= 0 {
		path = append(slices.Clip(path), "Vulnerabilities["+strconv.Itoa(w.vulnAt)+"]")
	}
	for _, p := range path {
		if b.Len() > 0 && !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	if field != "" {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(field)
	}
	return b.String()
}

func (w *trivyWalker) errAt(off int64, field, format string, args ...any) error {
	line, col := w.lt.pos(off)
	return &vulnzero.PositionError{
		File:   w.in.name,
		Line:   line,
		Column: col,
		Path:   w.pathString(field),
		Err:    fmt.Errorf(format, args...),
	}
}

// fail turns a decoder error into a position error. The decoder cannot go
// on after one, and neither do we.
func (w *trivyWalker) fail(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return w.errAt(w.lt.end(), "", "unexpected end of input: the report is truncated")
	case errors.As(err, &se):
		return w.errAt(w.dec.InputOffset(), "", "%s", se.Error())
	case errors.As(err, &te):
		// Token decodes numbers as float64; 1e700 does not fit.
		return w.errAt(w.dec.InputOffset(), "", "cannot use JSON %s as %s", te.Value, te.Type)
	}
	// Anything else is the reader failing, not bad input.
	return fmt.Errorf("read %s: %w", w.in.name, err)
}

// errNoReport is the clean end of input where a report (or the end of the
// file) is expected.
var errNoReport = errors.New("end of input")

// token reads the next token and returns where it starts. The line tracker
// may forget what comes before that start, never the token itself, so an
// error about it can still name its line.
func (w *trivyWalker) token() (json.Token, int64, error) {
	off := w.dec.InputOffset()
	t, err := w.dec.Token()
	if errors.Is(err, io.EOF) && w.atTop {
		return nil, off, errNoReport
	}
	if err != nil {
		return nil, off, w.fail(err)
	}
	start := w.lt.skipSeparators(off)
	w.lt.release(start)
	return t, start, nil
}

func (w *trivyWalker) key() (string, error) {
	t, start, err := w.token()
	if err != nil {
		return "", err
	}
	k, ok := t.(string)
	if !ok {
		return "", w.errAt(start, "", "expected an object key, found %s", describe(t))
	}
	return k, nil
}

// close reads the '}' or ']' that ends the value being walked.
func (w *trivyWalker) close() error {
	_, _, err := w.token()
	return err
}

// openObject reads the '{' that starts an array element.
func (w *trivyWalker) openObject() error {
	t, start, err := w.token()
	if err != nil {
		return err
	}
	if t != json.Delim('{') {
		return w.errAt(start, "", "expected an object, found %s", describe(t))
	}
	return nil
}

// openArray reads the '[' that starts field's value and returns where it
// starts; a null value is an empty list (ok false).
func (w *trivyWalker) openArray(field string) (ok bool, start int64, err error) {
	t, start, err := w.token()
	if err != nil {
		return false, start, err
	}
	switch t {
	case json.Delim('['):
		return true, start, nil
	case nil:
		return false, start, nil
	}
	if d, isDelim := t.(json.Delim); isDelim && d == '{' {
		return false, start, w.errAt(start, field, "expected a list, found an object")
	}
	return false, start, w.errAt(start, field, "expected a list, found %s", describe(t))
}

// decode decodes one whole value and returns where it starts; field names
// it in errors.
func (w *trivyWalker) decode(v any, field string) (int64, error) {
	off := w.dec.InputOffset()
	err := w.dec.Decode(v)
	// The value's bytes are in the tracker now, so its start can be found.
	start := w.lt.skipSeparators(off)
	if err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			// te.Offset counts from just after the ',' or ':' before the
			// value and points just past the offending value.
			f := strings.Join(nonEmpty(field, te.Field), ".")
			return start, w.errAt(w.lastByteBefore(w.lt.afterSeparator(off)+te.Offset), f, "cannot use JSON %s as %s", te.Value, te.Type)
		case errors.As(err, &se) && beforeValue[se.Error()]:
			// The separator before the value is wrong: the value's first
			// byte is where the decoder stopped.
			return start, w.errAt(start, field, "%s", se.Error())
		case errors.As(err, &se):
			// The decoder's offset here is not an input position; rescan the
			// value from its start to find the bad byte.
			return start, w.errAt(w.syntaxOffset(start), field, "%s", se.Error())
		}
		return start, w.fail(err)
	}
	w.lt.release(start)
	return start, nil
}

// lastByteBefore steps back from off over whitespace to the last byte of
// the value before it: the decoder reports type errors just past the value,
// so errors point at the value's last byte ('7' in "PkgName": 7).
func (w *trivyWalker) lastByteBefore(off int64) int64 {
	for k := int(off-w.lt.base) - 1; k >= 0 && k < len(w.lt.buf); k-- {
		if !isSpace(w.lt.buf[k]) {
			return w.lt.base + int64(k)
		}
	}
	return off
}

// beforeValue are the syntax errors Decode (encoding/json's and
// fastDecoder's alike) reports about what precedes a value, not the value.
var beforeValue = map[string]bool{
	"expected colon after object key":    true,
	"expected comma after array element": true,
	"not at beginning of value":          true,
}

// syntaxOffset finds the offending byte of a value that failed to decode,
// from the bytes the tracker still holds.
func (w *trivyWalker) syntaxOffset(start int64) int64 {
	k := int(start - w.lt.base)
	if k < 0 || k > len(w.lt.buf) {
		return start
	}
	var raw json.RawMessage
	err := json.NewDecoder(bytes.NewReader(w.lt.buf[k:])).Decode(&raw)
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset > 0 {
		return start + se.Offset - 1
	}
	return start
}

// skip consumes one value token by token, so skipping a large block
// (ImageConfig, Packages, Misconfigurations) costs no memory.
func (w *trivyWalker) skip() error {
	depth := 0
	for {
		t, _, err := w.token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

func describe(t json.Token) string {
	switch v := t.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(v)
	case json.Delim:
		return "'" + v.String() + "'"
	}
	return fmt.Sprintf("%v", t)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
