package scan

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"time"

	"vulnzero.dev/vulnzero"
)

// Format names a scanner output format. It is recorded as Finding.Scanner.
type Format string

const (
	FormatTrivy Format = "trivy" // Trivy JSON: schema 2, the legacy array, and Kubernetes reports
	FormatCSV   Format = "csv"   // CSV: the VulnZero layout or DefectDojo's generic layout
)

// HeadSize is how many leading bytes Detect needs to recognise every format.
const HeadSize = 8 << 10

// ErrEmpty is returned by Detect when the input holds nothing but
// whitespace: there is no format to recognise, and nothing to import.
var ErrEmpty = errors.New("empty input")

// Options are the import-time facts a report does not carry itself.
type Options struct {
	// Source is the configured source name, recorded as Finding.Source.
	// The file name is used when it is empty.
	Source string
	// Now is the import time, used as FirstSeen and LastSeen. Zero means
	// time.Now().
	Now time.Time
	// Host, when set, attributes every finding to this host. It is for
	// reports that do not name the machine, such as `trivy rootfs /`
	// (ArtifactName "/") or a DefectDojo CSV without Url.
	Host string
	// OnHost, when set, is called with every host the report covers, before
	// that host's findings and also when the host has none, so that an
	// importer can close findings a clean rescan no longer reports. A host
	// may be reported more than once.
	OnHost func(host string)
	// QualysKB supplies titles, CVEs and CVSS for Qualys reports that name
	// only QIDs (host list detection output); see LoadQualysKB.
	QualysKB *QualysKB
	// OnPage, when set, is called once a page of a paged API response (a
	// Wazuh indexer search, a Wazuh API list, a Qualys host list) has been
	// read, with what is needed to fetch the next page.
	OnPage func(Page)
}

// parser is one format: how to recognise it and how to read it. A new
// scanner is one file that defines a parser plus one line in formats.
type parser struct {
	format Format
	// detect reports whether head (the first HeadSize bytes at most, with
	// any UTF-8 byte order mark removed) is this format.
	detect func(head []byte) bool
	// parse reads r and calls emit for each finding, stopping at the first
	// error. Errors about the input are *vulnzero.PositionError.
	parse func(in *input, r *bufio.Reader, emit func(vulnzero.Finding) error) error
}

// formats are tried in this order by Detect: structured formats first, CSV
// layouts last because a header line is the weakest signal.
var formats = []parser{
	trivyParser,
	grypeParser,
	osvParser,
	wazuhParser,
	tenableParser,
	qualysParser,
	nessusParser,
	openvasParser,
	csvParser,
}

// Formats lists the formats Parse accepts.
func Formats() []Format {
	out := make([]Format, len(formats))
	for i, p := range formats {
		out[i] = p.format
	}
	return out
}

func lookup(f Format) (parser, bool) {
	for _, p := range formats {
		if p.format == f {
			return p, true
		}
	}
	return parser{}, false
}

// Detect recognises a format from the first bytes of a report (HeadSize is
// enough), by content, never by file name. Input that is only whitespace
// gives ErrEmpty.
func Detect(head []byte) (Format, error) {
	head = trimBOM(head)
	if len(trimSpace(head)) == 0 {
		return "", ErrEmpty
	}
	for _, p := range formats {
		if p.detect(head) {
			return p.format, nil
		}
	}
	return "", fmt.Errorf("detect format: content matches none of %v: %w", Formats(), vulnzero.ErrInvalid)
}

// errStopped is returned by emit when the consumer errStopped ranging; parsers
// pass it up unchanged and Parse swallows it.
var errStopped = errors.New("iteration errStopped")

// Parse reads a report as a stream and yields one finding at a time; memory
// does not grow with the size of the report. The sequence reads r, so it can
// be ranged over once. An empty format is detected from the content.
//
// Bad input ends the sequence with one error, a *vulnzero.PositionError
// naming name and the line (CSV) or line, column and element path (JSON).
// A report with no vulnerabilities yields nothing and no error.
func Parse(name string, r io.Reader, format Format, opts Options) iter.Seq2[vulnzero.Finding, error] {
	return func(yield func(vulnzero.Finding, error) bool) {
		br, ok := r.(*bufio.Reader)
		if !ok || br.Size() < HeadSize {
			br = bufio.NewReaderSize(r, 64<<10)
		}
		if format == "" {
			f, err := detectReader(br)
			if errors.Is(err, ErrEmpty) {
				return
			}
			if err != nil {
				yield(vulnzero.Finding{}, fmt.Errorf("parse %s: %w", name, err))
				return
			}
			format = f
		}
		p, ok := lookup(format)
		if !ok {
			yield(vulnzero.Finding{}, fmt.Errorf("parse %s: unknown format %q (known: %v): %w", name, format, Formats(), vulnzero.ErrInvalid))
			return
		}
		in := newInput(name, format, opts)
		err := p.parse(in, br, func(f vulnzero.Finding) error {
			if !yield(f, nil) {
				return errStopped
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopped) {
			yield(vulnzero.Finding{}, err)
		}
	}
}

func detectReader(br *bufio.Reader) (Format, error) {
	head, err := br.Peek(HeadSize)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("read head: %w", err)
	}
	return Detect(head)
}

// Open opens a report file, detects its format when format is empty, and
// returns the sequence of its findings and the file to close when done. An
// empty file gives format "", an empty sequence and no error.
func Open(path string, format Format, opts Options) (Format, iter.Seq2[vulnzero.Finding, error], io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, nil, fmt.Errorf("open report: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	if format == "" {
		format, err = detectReader(br)
		if errors.Is(err, ErrEmpty) {
			return "", func(func(vulnzero.Finding, error) bool) {}, f, nil
		}
		if err != nil {
			f.Close()
			return "", nil, nil, fmt.Errorf("open report %s: %w", path, err)
		}
	} else if _, ok := lookup(format); !ok {
		f.Close()
		return "", nil, nil, fmt.Errorf("open report %s: unknown format %q (known: %v): %w", path, format, Formats(), vulnzero.ErrInvalid)
	}
	return format, Parse(path, br, format, opts), f, nil
}

// input carries what every parser needs besides the bytes: the file name for
// errors, and the defaults stamped on each finding.
type input struct {
	name     string
	format   Format
	opts     Options
	now      time.Time
	lastHost string // last host passed to OnHost, to avoid repeating it
}

func newInput(name string, format Format, opts Options) *input {
	now := opts.Now
	if now.IsZero() {
		now = time.Now().UTC()
	}
	if opts.Source == "" {
		opts.Source = name
	}
	return &input{name: name, format: format, opts: opts, now: now}
}

// finding returns a finding with the fields every format sets the same way.
func (in *input) finding() vulnzero.Finding {
	return vulnzero.Finding{
		Source:    in.opts.Source,
		Scanner:   string(in.format),
		FirstSeen: in.now,
		LastSeen:  in.now,
		Status:    vulnzero.FindingOpen,
	}
}

// cover reports a host the report covers to Options.OnHost.
func (in *input) cover(host string) {
	if host == "" || host == in.lastHost || in.opts.OnHost == nil {
		return
	}
	in.lastHost = host
	in.opts.OnHost(host)
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return b[3:]
	}
	return b
}

func trimSpace(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
