package scan

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"vulnzero.dev/vulnzero"
)

// xmlWalker reads an XML report one element at a time with
// encoding/xml's Decoder.Token, so memory stays flat: a walker descends
// into the containers (report, host lists) and decodes or reads only one
// item (a host's properties, one finding) at a time.
//
// It is safe on hostile input: encoding/xml never fetches a DTD or expands
// an external entity (the DOCTYPE … SYSTEM "https://…dtd" Qualys writes is
// read as a directive and ignored), and only the fixed HTML entity table
// is known besides XML's five.
type xmlWalker struct {
	in   *input
	dec  xmlTokenizer
	std  *xml.Decoder // dec when it is encoding/xml's: decode needs it
	fast *fastXML     // dec when it is fastXML's
	src  *readErrs
	path []xmlStep // the open elements below the root, for errors
}

// readErrs remembers the reader's own failure, so that a decoder error can
// be told apart from it: everything else the decoder reports is about the
// input (its syntax errors, and plain errors such as an unsupported XML
// version or encoding).
type readErrs struct {
	r   io.Reader
	err error
}

func (r *readErrs) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}

type xmlStep struct {
	name string
	i    int // index among the preceding siblings of the same name
}

// newXMLWalker reads with encoding/xml, whose DecodeElement the Qualys
// walkers use.
func newXMLWalker(in *input, r *bufio.Reader) *xmlWalker {
	discardBOM(r)
	src := &readErrs{r: r}
	dec := xml.NewDecoder(src)
	dec.Strict = true
	dec.Entity = xml.HTMLEntity
	dec.CharsetReader = charsetReader
	return &xmlWalker{in: in, dec: dec, std: dec, src: src}
}

// newFastXMLWalker reads with fastXML, for .nessus files of hundreds of
// megabytes; it cannot decode into structs. A document that declares an
// encoding other than UTF-8 is read with encoding/xml, which converts it.
func newFastXMLWalker(in *input, r *bufio.Reader) *xmlWalker {
	discardBOM(r)
	head, _ := r.Peek(256)
	if enc := declaredEncoding(head); stdXMLOnly || enc != "" && enc != "utf-8" && enc != "utf8" && enc != "us-ascii" && enc != "ascii" {
		return newXMLWalker(in, r)
	}
	src := &readErrs{r: r}
	fast := newFastXML(src)
	return &xmlWalker{in: in, dec: fast, fast: fast, src: src}
}

// stdXMLOnly makes every walker read with encoding/xml: tests compare the
// two tokenizers through the parsers.
var stdXMLOnly = false

// declaredEncoding is the lowercased encoding of the XML declaration at
// the start of head, "" when there is none.
func declaredEncoding(head []byte) string {
	head = bytes.TrimLeft(head, " \t\r\n")
	if !bytes.HasPrefix(head, []byte("<?xml")) {
		return ""
	}
	decl, _, ok := bytes.Cut(head, []byte("?>"))
	if !ok {
		return ""
	}
	_, after, ok := bytes.Cut(decl, []byte("encoding"))
	if !ok {
		return ""
	}
	after = bytes.TrimLeft(after, " \t\r\n=")
	if len(after) == 0 || after[0] != '"' && after[0] != '\'' {
		return ""
	}
	val, _, _ := bytes.Cut(after[1:], after[:1])
	return strings.ToLower(strings.TrimSpace(string(val)))
}

func (w *xmlWalker) pathString() string {
	var b strings.Builder
	for i, s := range w.path {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(s.name)
		if s.i > 0 {
			b.WriteString("[" + strconv.Itoa(s.i) + "]")
		}
	}
	return b.String()
}

// errf is a position error at the decoder's current position (just after
// the last token read).
func (w *xmlWalker) errf(format string, args ...any) error {
	line, col := w.dec.InputPos()
	return w.errAt(line, col, format, args...)
}

func (w *xmlWalker) errAt(line, col int, format string, args ...any) error {
	return &vulnzero.PositionError{File: w.in.name, Line: line, Column: col, Path: w.pathString(), Err: fmt.Errorf(format, args...)}
}

// fail turns a decoder error into a position error; the decoder cannot go
// on after one.
func (w *xmlWalker) fail(err error) error {
	var se *xml.SyntaxError
	switch {
	case errors.As(err, &se):
		msg := se.Msg
		if msg == "unexpected EOF" {
			msg = "unexpected end of input: the report is truncated"
		}
		_, col := w.dec.InputPos()
		line := se.Line
		if l, _ := w.dec.InputPos(); l != line {
			col = 0
		}
		return &vulnzero.PositionError{File: w.in.name, Line: line, Column: col, Path: w.pathString(), Err: errors.New(msg)}
	case w.src.err != nil && errors.Is(err, w.src.err):
		return fmt.Errorf("read %s: %w", w.in.name, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return w.errf("unexpected end of input: the report is truncated")
	}
	line, _ := w.dec.InputPos()
	return &vulnzero.PositionError{File: w.in.name, Line: line, Path: w.pathString(), Err: errors.New(strings.TrimPrefix(err.Error(), "xml: "))}
}

func (w *xmlWalker) token() (xml.Token, error) {
	t, err := w.dec.Token()
	if errors.Is(err, io.EOF) {
		// Token returns a bare EOF only between top-level constructs; inside
		// an element it reports a syntax error instead.
		return nil, io.EOF
	}
	if err != nil {
		return nil, w.fail(err)
	}
	return t, nil
}

// next is token without the allocation of an xml.Token on the fast path.
// A bare io.EOF is the end of input between top-level constructs.
func (w *xmlWalker) next() (xmlTok, error) {
	if w.fast != nil {
		t, err := w.fast.next()
		if errors.Is(err, io.EOF) {
			return t, io.EOF
		}
		if err != nil {
			return t, w.fail(err)
		}
		return t, nil
	}
	tok, err := w.token()
	if err != nil {
		return xmlTok{}, err
	}
	switch t := tok.(type) {
	case xml.StartElement:
		return xmlTok{kind: xmlStart, start: t}, nil
	case xml.EndElement:
		return xmlTok{kind: xmlEnd, start: xml.StartElement{Name: t.Name}}, nil
	case xml.CharData:
		return xmlTok{kind: xmlText, text: t}, nil
	}
	return xmlTok{other: tok}, nil
}

// root reads up to the root element, past the XML declaration, DOCTYPE and
// comments. Input with no element at all gives errNoReport.
func (w *xmlWalker) root() (xml.StartElement, error) {
	for {
		t, err := w.token()
		if errors.Is(err, io.EOF) {
			return xml.StartElement{}, errNoReport
		}
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(trimSpace(t)) > 0 {
				return xml.StartElement{}, w.errf("text before the root element: not XML")
			}
		}
	}
}

// end checks that only comments and whitespace follow the root element;
// Qualys writes a copyright comment after it.
func (w *xmlWalker) end() error {
	for {
		t, err := w.token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			return w.errf("a second root element <%s> after the end of the report", t.Name.Local)
		case xml.CharData:
			if len(trimSpace(t)) > 0 {
				return w.errf("text after the end of the report")
			}
		}
	}
}

// each calls fn for every child element of the element whose start tag was
// just read, until its end tag. fn must consume the child (decode, read,
// skip or walk it). Text between children is ignored.
func (w *xmlWalker) each(fn func(se xml.StartElement) error) error {
	var arr [8]xmlStep
	seen := arr[:0] // names of the children so far, with counts
	for {
		if w.fast != nil {
			w.fast.skipSpaceText()
		}
		t, err := w.next()
		if errors.Is(err, io.EOF) {
			return w.errf("unexpected end of input: the report is truncated")
		}
		if err != nil {
			return err
		}
		switch t.kind {
		case xmlStart:
			name := t.start.Name.Local
			n := 0
			for k := range seen {
				if seen[k].name == name {
					n = seen[k].i
					seen[k].i++
					goto found
				}
			}
			seen = append(seen, xmlStep{name: name, i: 1})
		found:
			w.path = append(w.path, xmlStep{name: name, i: n})
			if err := fn(t.start); err != nil {
				return err
			}
			w.path = w.path[:len(w.path)-1]
		case xmlEnd:
			return nil
		}
	}
}

// skip consumes the rest of the element whose start tag was just read.
func (w *xmlWalker) skip() error {
	if w.fast != nil && w.fast.skipLeaf() {
		return nil
	}
	if err := w.dec.Skip(); err != nil {
		if errors.Is(err, io.EOF) {
			return w.errf("unexpected end of input: the report is truncated")
		}
		return w.fail(err)
	}
	return nil
}

// text reads the character data of the element whose start tag was just
// read, up to its end tag, trimmed. Text inside child elements is included
// (Qualys and Nessus put HTML-ish markup in a few fields).
func (w *xmlWalker) text() (string, error) {
	if w.fast != nil {
		text, ok, err := w.fast.leafText()
		if err != nil {
			return "", w.fail(err)
		}
		if ok {
			return string(bytes.TrimSpace(text)), nil
		}
	}
	var s string // the text while it is one piece, the common case
	var b []byte // the text once a second piece came
	depth := 0
	for {
		t, err := w.next()
		if errors.Is(err, io.EOF) {
			return "", w.errf("unexpected end of input: the report is truncated")
		}
		if err != nil {
			return "", err
		}
		switch t.kind {
		case xmlText:
			switch {
			case b != nil:
				b = append(b, t.text...)
			case s == "":
				s = string(t.text)
			default:
				b = append(append(make([]byte, 0, len(s)+len(t.text)), s...), t.text...)
			}
		case xmlStart:
			depth++
		case xmlEnd:
			if depth > 0 {
				depth--
				continue
			}
			if b != nil {
				s = string(b)
			}
			return strings.TrimSpace(s), nil
		}
	}
}

// decode decodes the element whose start tag was just read into v.
func (w *xmlWalker) decode(v any, se *xml.StartElement) error {
	if w.std == nil {
		panic("scan: xmlWalker.decode needs encoding/xml (newXMLWalker)")
	}
	if err := w.std.DecodeElement(v, se); err != nil {
		if errors.Is(err, io.EOF) {
			return w.errf("unexpected end of input: the report is truncated")
		}
		return w.fail(err)
	}
	return nil
}

func attr(se xml.StartElement, name string) string {
	for _, a := range se.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// charsetReader lets reports declare a Latin-1 family encoding; everything
// else must be UTF-8 (or ASCII).
func charsetReader(charset string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(charset)) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return r, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "windows-1252", "cp1252":
		return &latin1Reader{r: bufio.NewReader(r)}, nil
	}
	return nil, &charsetError{charset}
}

type charsetError struct{ charset string }

func (e *charsetError) Error() string {
	return fmt.Sprintf("encoding %q is not supported (use UTF-8 or ISO-8859-1)", e.charset)
}

// latin1Reader converts ISO-8859-1 to UTF-8; Windows-1252's extra
// characters in 0x80–0x9F are read as their Latin-1 code points, which
// only changes punctuation.
type latin1Reader struct {
	r   *bufio.Reader
	out []byte
}

func (l *latin1Reader) Read(p []byte) (int, error) {
	for len(l.out) < len(p) {
		c, err := l.r.ReadByte()
		if err != nil {
			if len(l.out) > 0 {
				break
			}
			return 0, err
		}
		if c < utf8.RuneSelf {
			l.out = append(l.out, c)
		} else {
			l.out = utf8.AppendRune(l.out, rune(c))
		}
	}
	n := copy(p, l.out)
	l.out = l.out[n:]
	return n, nil
}
