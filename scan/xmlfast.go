package scan

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// xmlTokenizer is what xmlWalker needs from a decoder: *xml.Decoder, or
// fastXML for the reports that are large enough for its speed to matter.
type xmlTokenizer interface {
	Token() (xml.Token, error)
	InputPos() (line, column int)
	Skip() error
}

var (
	_ xmlTokenizer = (*xml.Decoder)(nil)
	_ xmlTokenizer = (*fastXML)(nil)
)

// fastXML is a streaming tokenizer for UTF-8 XML with the tokens, the
// nesting checks and the syntax errors (*xml.SyntaxError with the line) of
// encoding/xml's Decoder.Token, several times faster: encoding/xml reads a
// byte at a time through bufio and a bytes.Buffer, which caps a .nessus
// file at a few tens of MB/s; this one scans its buffer with bytes.IndexByte
// and hands text out without copying when it holds no entity.
//
// It reads what reports contain: elements, attributes, text with the XML
// and HTML entities and character references, CDATA, comments, processing
// instructions and a DOCTYPE, which it skips without reading any DTD.
// Namespace prefixes are split off names but not resolved. Text and
// attribute values must be UTF-8 XML characters; a document declaring
// another encoding is left to encoding/xml (see newXMLWalkerFor).
type fastXML struct {
	r    io.Reader
	buf  []byte
	pos  int // next unread byte of buf
	eof  bool
	rerr error // the reader's failure, returned once the buffer is used up

	base   int64 // stream offset of buf[0]
	line   int   // line of buf[pos], 1-based
	lastNL int64 // stream offset of the last newline before buf[pos]; -1 if none

	skipping bool              // in Skip: text is passed over, not checked or decoded
	stack    []string          // open elements
	endNext  string            // the end of a self-closing element, due as the next token
	scratch  []byte            // text with entities, decoded
	interned map[string]string // element and attribute names, short values
	recent   [256]string       // a direct-mapped cache in front of interned

	// attrs holds the attributes of the last start element: like text,
	// they are valid until the next token (a million ReportItems need not
	// allocate a million attribute lists).
	attrs []xml.Attr

	rawEnd []byte // "</name" of the element rawBody looked for last
}

// maxInterned bounds the intern table: a report repeats a few hundred
// names and values, and a hostile one must not grow it without end.
const maxInterned = 4096

// intern returns b as a string, the same string each time for names and
// short values seen before, so that a file of a million elements does not
// allocate a million copies of "ReportItem".
func (d *fastXML) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	slot := &d.recent[(len(b)*31+int(b[0])*7+int(b[len(b)-1]))&0xff]
	if *slot == string(b) {
		return *slot
	}
	if s, ok := d.interned[string(b)]; ok {
		*slot = s
		return s
	}
	s := string(b)
	if len(b) <= 64 && len(d.interned) < maxInterned {
		d.interned[s] = s
	}
	return s
}

func newFastXML(r io.Reader) *fastXML {
	return &fastXML{r: r, buf: make([]byte, 0, 64<<10), line: 1, lastNL: -1, interned: map[string]string{}}
}

// InputPos is the line and column just after the last token.
func (d *fastXML) InputPos() (line, column int) {
	return d.line, int(d.base + int64(d.pos) - d.lastNL)
}

func (d *fastXML) syntaxError(format string, args ...any) error {
	return &xml.SyntaxError{Msg: fmt.Sprintf(format, args...), Line: d.line}
}

// fill reads more input, keeping buf[pos:]. It reports false at the end of
// input (or on a read error, kept in rerr).
func (d *fastXML) fill() bool {
	if d.eof {
		return false
	}
	if d.pos > 0 && (d.pos >= len(d.buf)/2 || len(d.buf) == cap(d.buf)) {
		n := copy(d.buf, d.buf[d.pos:])
		d.base += int64(d.pos)
		d.buf = d.buf[:n]
		d.pos = 0
	}
	if len(d.buf) == cap(d.buf) {
		nb := make([]byte, len(d.buf), 2*cap(d.buf))
		copy(nb, d.buf)
		d.buf = nb
	}
	for {
		n, err := d.r.Read(d.buf[len(d.buf):cap(d.buf)])
		d.buf = d.buf[:len(d.buf)+n]
		if err != nil {
			d.eof = true
			if !errors.Is(err, io.EOF) {
				d.rerr = err
			}
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
}

// advance consumes n bytes, counting their lines.
func (d *fastXML) advance(n int) {
	seg := d.buf[d.pos : d.pos+n]
	if k := bytes.Count(seg, []byte{'\n'}); k > 0 {
		d.line += k
		d.lastNL = d.base + int64(d.pos+bytes.LastIndexByte(seg, '\n'))
	}
	d.pos += n
}

// index finds b in the unread input from offset from (relative to pos),
// reading more as needed; -1 at the end of input.
func (d *fastXML) index(b byte, from int) int {
	for {
		if i := bytes.IndexByte(d.buf[d.pos+from:], b); i >= 0 {
			return from + i
		}
		from = len(d.buf) - d.pos
		if !d.fill() {
			return -1
		}
	}
}

// indexSeq finds sep in the unread input from offset from; -1 at the end.
func (d *fastXML) indexSeq(sep []byte, from int) int {
	for {
		if i := bytes.Index(d.buf[d.pos+from:], sep); i >= 0 {
			return from + i
		}
		from = max(from, len(d.buf)-d.pos-len(sep)+1)
		if !d.fill() {
			return -1
		}
	}
}

// ensure makes at least n unread bytes available, if the input has them.
func (d *fastXML) ensure(n int) bool {
	for len(d.buf)-d.pos < n {
		if !d.fill() {
			return false
		}
	}
	return true
}

func (d *fastXML) eofError() error {
	if d.rerr != nil {
		return d.rerr
	}
	return d.syntaxError("unexpected EOF")
}

// xmlTok is a token without the interface boxing of xml.Token, which
// allocates for every element and every piece of text: the walkers read
// tokens by kind.
type xmlTok struct {
	kind  xmlKind
	start xml.StartElement // xmlStart; Name alone for xmlEnd
	text  []byte           // xmlText, valid until the next token
	other xml.Token        // xmlOther: a comment, directive or processing instruction
}

type xmlKind uint8

const (
	xmlOther xmlKind = iota
	xmlStart
	xmlEnd
	xmlText
)

// Token returns the next token, as encoding/xml's Decoder.Token does: a
// self-closing element gives a StartElement and an EndElement, and text is
// a CharData valid until the next call.
func (d *fastXML) Token() (xml.Token, error) {
	t, err := d.next()
	if err != nil {
		return nil, err
	}
	switch t.kind {
	case xmlStart:
		return t.start, nil
	case xmlEnd:
		return xml.EndElement{Name: t.start.Name}, nil
	case xmlText:
		return xml.CharData(t.text), nil
	}
	return t.other, nil
}

func (d *fastXML) next() (xmlTok, error) {
	if d.endNext != "" {
		name := d.endNext
		d.endNext = ""
		d.stack = d.stack[:len(d.stack)-1]
		return xmlTok{kind: xmlEnd, start: xml.StartElement{Name: splitName(name)}}, nil
	}
	if !d.ensure(1) {
		if d.rerr != nil {
			return xmlTok{}, d.rerr
		}
		if len(d.stack) > 0 {
			return xmlTok{}, d.syntaxError("unexpected EOF")
		}
		return xmlTok{}, io.EOF
	}
	if d.buf[d.pos] != '<' {
		return d.charData()
	}
	if !d.ensure(2) {
		return xmlTok{}, d.eofError()
	}
	switch d.buf[d.pos+1] {
	case '/':
		return d.endElement()
	case '?':
		t, err := d.procInst()
		return xmlTok{other: t}, err
	case '!':
		return d.bang()
	}
	return d.startElement()
}

// Skip consumes tokens up to the end of the element whose start was the
// last token read.
//
// The text of a skipped element is not checked or decoded (nothing reads
// it; most of a .nessus file is descriptions and policy nobody imports),
// only its markup.
func (d *fastXML) Skip() error {
	d.skipping = true
	defer func() { d.skipping = false }()
	depth := 0
	for {
		t, err := d.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return d.syntaxError("unexpected EOF")
			}
			return err
		}
		switch t.kind {
		case xmlStart:
			depth++
		case xmlEnd:
			if depth == 0 {
				return nil
			}
			depth--
		}
	}
}

func (d *fastXML) charData() (xmlTok, error) {
	n := d.index('<', 0)
	if n < 0 {
		n = len(d.buf) - d.pos // text up to the end of input
	}
	if d.skipping {
		d.advance(n)
		return xmlTok{kind: xmlText}, nil
	}
	raw := d.buf[d.pos : d.pos+n]
	text, err := d.unescape(raw)
	if err != nil {
		return xmlTok{}, err
	}
	d.advance(n)
	return xmlTok{kind: xmlText, text: text}, nil
}

// unescape checks raw text and replaces its entities; without entities
// the text is returned as it is.
func (d *fastXML) unescape(raw []byte) ([]byte, error) {
	if err := d.checkChars(raw); err != nil {
		return nil, err
	}
	i := bytes.IndexByte(raw, '&')
	if i < 0 {
		return raw, nil
	}
	out := append(d.scratch[:0], raw[:i]...)
	for i < len(raw) {
		if raw[i] != '&' {
			j := bytes.IndexByte(raw[i:], '&')
			if j < 0 {
				j = len(raw) - i
			}
			out = append(out, raw[i:i+j]...)
			i += j
			continue
		}
		semi := bytes.IndexByte(raw[i:], ';')
		if semi < 0 {
			return nil, d.syntaxError("invalid character entity %s (no semicolon)", truncate(string(raw[i:]), 20))
		}
		name := string(raw[i+1 : i+semi])
		r, ok := entity(name)
		if !ok {
			return nil, d.syntaxError("invalid character entity &%s;", truncate(name, 20))
		}
		out = append(out, r...)
		i += semi + 1
	}
	d.scratch = out
	return out, nil
}

func entity(name string) (string, bool) {
	switch name {
	case "lt":
		return "<", true
	case "gt":
		return ">", true
	case "amp":
		return "&", true
	case "apos":
		return "'", true
	case "quot":
		return `"`, true
	}
	if strings.HasPrefix(name, "#") {
		var n uint64
		var err error
		if strings.HasPrefix(name, "#x") {
			n, err = strconv.ParseUint(name[2:], 16, 32)
		} else {
			n, err = strconv.ParseUint(name[1:], 10, 32)
		}
		if err != nil || n > utf8.MaxRune {
			return "", false
		}
		r := rune(n)
		if !isXMLChar(r) {
			return "", false
		}
		return string(r), true
	}
	s, ok := xml.HTMLEntity[name]
	return s, ok
}

// isXMLChar is the XML 1.0 Char production.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// checkChars rejects control characters and invalid UTF-8: findings go to
// databases that store UTF-8 text.
func (d *fastXML) checkChars(b []byte) error {
	ascii := true
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return d.syntaxError("illegal character code U+%04X", c)
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if ascii {
		return nil
	}
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			return d.syntaxError("invalid UTF-8")
		}
		if !isXMLChar(r) {
			return d.syntaxError("illegal character code %U", r)
		}
		b = b[size:]
	}
	return nil
}

func (d *fastXML) endElement() (xmlTok, error) {
	n := d.index('>', 2)
	if n < 0 {
		return xmlTok{}, d.eofError()
	}
	nb := bytes.TrimRight(d.buf[d.pos+2:d.pos+n], " \t\r\n")
	var name string
	if len(d.stack) > 0 && d.stack[len(d.stack)-1] == string(nb) {
		name = d.stack[len(d.stack)-1] // the usual case, without a lookup
	} else {
		name = d.intern(nb)
	}
	if !isName(name) {
		return xmlTok{}, d.syntaxError("invalid end tag </%s>", truncate(name, 40))
	}
	d.advance(n + 1)
	if len(d.stack) == 0 {
		return xmlTok{}, d.syntaxError("unexpected end element </%s>", name)
	}
	if top := d.stack[len(d.stack)-1]; top != name {
		return xmlTok{}, d.syntaxError("element <%s> closed by </%s>", top, name)
	}
	d.stack = d.stack[:len(d.stack)-1]
	return xmlTok{kind: xmlEnd, start: xml.StartElement{Name: splitName(name)}}, nil
}

func (d *fastXML) procInst() (xml.Token, error) {
	n := d.indexSeq([]byte("?>"), 2)
	if n < 0 {
		return nil, d.eofError()
	}
	body := d.buf[d.pos+2 : d.pos+n]
	k := 0
	for k < len(body) && isNameByte(body[k], k == 0) {
		k++
	}
	target, inst := body[:k], body[k:]
	if len(target) == 0 {
		return nil, d.syntaxError("processing instruction without a target")
	}
	// Like encoding/xml, the instruction's bytes are not checked: no
	// walker reads them, and a check would refuse what encoding/xml takes.
	t := xml.ProcInst{Target: string(target), Inst: bytes.Clone(inst)}
	d.advance(n + 2)
	return t, nil
}

// bang reads a comment, a CDATA section or a directive (DOCTYPE).
func (d *fastXML) bang() (xmlTok, error) {
	d.ensure(9)
	rest := d.buf[d.pos:]
	switch {
	case bytes.HasPrefix(rest, []byte("<!--")):
		n := d.indexSeq([]byte("-->"), 4)
		if n < 0 {
			return xmlTok{}, d.eofError()
		}
		c := xml.Comment(bytes.Clone(d.buf[d.pos+4 : d.pos+n]))
		d.advance(n + 3)
		return xmlTok{other: c}, nil
	case bytes.HasPrefix(rest, []byte("<![CDATA[")):
		if len(d.stack) == 0 {
			return xmlTok{}, d.syntaxError("CDATA section outside the root element")
		}
		n := d.indexSeq([]byte("]]>"), 9)
		if n < 0 {
			return xmlTok{}, d.eofError()
		}
		text := d.buf[d.pos+9 : d.pos+n]
		if err := d.checkChars(text); err != nil {
			return xmlTok{}, err
		}
		d.advance(n + 3)
		return xmlTok{kind: xmlText, text: text}, nil
	}
	return d.directive()
}

// directive skips a directive (<!DOCTYPE …>) the way encoding/xml reads
// one, so that both accept the same documents: the byte after "<!" is
// taken as it is, quotes hide '<' and '>', '<' and '>' nest, and a comment
// inside is skipped whole.
func (d *fastXML) directive() (xmlTok, error) {
	i := 3 // past "<!" and the byte after it
	byteAt := func() (byte, bool) {
		if !d.ensure(i + 1) {
			return 0, false
		}
		c := d.buf[d.pos+i]
		i++
		return c, true
	}
	depth, quote := 0, byte(0)
	if !d.ensure(3) {
		return xmlTok{}, d.eofError()
	}
	for {
		c, ok := byteAt()
		if !ok {
			return xmlTok{}, d.eofError()
		}
		if quote == 0 && c == '>' && depth == 0 {
			break
		}
	handle:
		switch {
		case c == quote:
			quote = 0
		case quote != 0:
		case c == '\'' || c == '"':
			quote = c
		case c == '>':
			depth--
		case c == '<':
			for _, want := range []byte("!--") {
				if c, ok = byteAt(); !ok {
					return xmlTok{}, d.eofError()
				}
				if c != want {
					depth++
					goto handle
				}
			}
			var b0, b1 byte
			for {
				if c, ok = byteAt(); !ok {
					return xmlTok{}, d.eofError()
				}
				if b0 == '-' && b1 == '-' {
					if c != '>' {
						return xmlTok{}, d.syntaxError(`invalid sequence "--" not allowed in comments`)
					}
					break
				}
				b0, b1 = b1, c
			}
		}
	}
	dir := xml.Directive(bytes.Clone(d.buf[d.pos+2 : d.pos+i-1]))
	d.advance(i)
	return xmlTok{other: dir}, nil
}

func (d *fastXML) startElement() (xmlTok, error) {
	n := d.tagEnd()
	if n < 0 {
		return xmlTok{}, d.eofError()
	}
	tag := d.buf[d.pos+1 : d.pos+n] // between '<' and '>'
	selfClosing := len(tag) > 0 && tag[len(tag)-1] == '/'
	if selfClosing {
		tag = tag[:len(tag)-1]
	}
	i := 0
	for i < len(tag) && !isSpace(tag[i]) {
		i++
	}
	name := d.intern(tag[:i])
	if !isName(name) {
		return xmlTok{}, d.syntaxError("invalid element name %q", truncate(name, 40))
	}
	se := xml.StartElement{Name: splitName(name)}
	if bytes.IndexByte(tag[i:], '=') >= 0 {
		se.Attr = d.attrs[:0]
	}
	for {
		for i < len(tag) && isSpace(tag[i]) {
			i++
		}
		if i == len(tag) {
			break
		}
		j := i
		for j < len(tag) && tag[j] != '=' && !isSpace(tag[j]) {
			j++
		}
		aname := d.intern(tag[i:j])
		if !isName(aname) {
			return xmlTok{}, d.syntaxError("invalid attribute name %q in <%s>", truncate(aname, 40), name)
		}
		for j < len(tag) && isSpace(tag[j]) {
			j++
		}
		if j == len(tag) || tag[j] != '=' {
			return xmlTok{}, d.syntaxError("attribute %s in <%s> has no value", aname, name)
		}
		j++
		for j < len(tag) && isSpace(tag[j]) {
			j++
		}
		if j == len(tag) || tag[j] != '"' && tag[j] != '\'' {
			return xmlTok{}, d.syntaxError("unquoted value of attribute %s in <%s>", aname, name)
		}
		q := tag[j]
		k := bytes.IndexByte(tag[j+1:], q)
		if k < 0 {
			return xmlTok{}, d.syntaxError("unterminated value of attribute %s in <%s>", aname, name)
		}
		raw := tag[j+1 : j+1+k]
		if bytes.IndexByte(raw, '<') >= 0 {
			return xmlTok{}, d.syntaxError("unescaped < inside quoted string")
		}
		val, err := d.unescape(raw)
		if err != nil {
			return xmlTok{}, err
		}
		se.Attr = append(se.Attr, xml.Attr{Name: splitName(aname), Value: d.intern(val)})
		i = j + 1 + k + 1
		if i < len(tag) && !isSpace(tag[i]) {
			return xmlTok{}, d.syntaxError("attributes of <%s> are not separated by space", name)
		}
	}
	if se.Attr != nil {
		d.attrs = se.Attr[:0]
	}
	d.advance(n + 1)
	d.stack = append(d.stack, name)
	if selfClosing {
		d.endNext = name
	}
	return xmlTok{kind: xmlStart, start: se}, nil
}

// tagEnd finds the '>' that ends the start tag at pos, past quoted
// attribute values (which may hold '>').
func (d *fastXML) tagEnd() int {
	quote := byte(0)
	for i := 1; ; {
		if d.pos+i >= len(d.buf) && !d.ensure(i+1) {
			return -1
		}
		chunk := d.buf[d.pos+i:]
		for k, c := range chunk {
			switch {
			case quote != 0:
				if c == quote {
					quote = 0
				}
			case c == '"' || c == '\'':
				quote = c
			case c == '>':
				return i + k
			}
		}
		i += len(chunk)
	}
}

// isName accepts the names reports use: a letter, '_' or ':' (or any
// non-ASCII) first, then letters, digits, '-', '.', '_' and ':'.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i], i == 0) {
			return false
		}
	}
	return utf8.ValidString(s)
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':', c >= utf8.RuneSelf:
		return true
	case !first && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		return true
	}
	return false
}

func splitName(s string) xml.Name {
	if i := strings.IndexByte(s, ':'); i > 0 && i < len(s)-1 {
		return xml.Name{Space: s[:i], Local: s[i+1:]}
	}
	return xml.Name{Local: s}
}

// rawBody returns the rest of the element whose start tag was just read,
// up to and including its end tag, without reading it token by token: for
// a parser that hands the element to another goroutine (see nessusBatch).
// It does so only when the first "</name" ends the element for certain:
// the body holds no comment, CDATA section, processing instruction or
// directive (which may hide markup) and no element of the same name.
// Anything else, and the end of input, gives ok false and leaves the
// decoder as it was. The bytes are valid until the next read; the
// position (base, line, lastNL) is where they start, for errors.
func (d *fastXML) rawBody() (body []byte, base int64, line int, lastNL int64, ok bool) {
	if d.endNext != "" || len(d.stack) == 0 {
		return nil, 0, 0, 0, false
	}
	name := d.stack[len(d.stack)-1]
	if d.rawEnd == nil || string(d.rawEnd[2:]) != name {
		d.rawEnd = []byte("</" + name)
	}
	end := d.indexSeq(d.rawEnd, 0)
	if end < 0 {
		return nil, 0, 0, 0, false
	}
	n := end + 2 + len(name)
	for d.ensure(n+1) && isSpace(d.buf[d.pos+n]) {
		n++
	}
	if !d.ensure(n+1) || d.buf[d.pos+n] != '>' {
		return nil, 0, 0, 0, false
	}
	if hidesMarkup(d.buf[d.pos:d.pos+end], name) {
		return nil, 0, 0, 0, false
	}
	body = d.buf[d.pos : d.pos+n+1]
	base, line, lastNL = d.base+int64(d.pos), d.line, d.lastNL
	d.advance(n + 1)
	d.stack = d.stack[:len(d.stack)-1]
	return body, base, line, lastNL, true
}

// resetSegment makes d read seg, stream bytes from offset base (on line
// line, after the newline at lastNL) that are the body of an element
// named open whose start tag was read elsewhere, and nothing after them.
func (d *fastXML) resetSegment(seg []byte, base int64, line int, lastNL int64, open string) {
	d.r, d.buf, d.pos, d.eof, d.rerr = nil, seg, 0, true, nil
	d.base, d.line, d.lastNL = base, line, lastNL
	d.skipping, d.endNext = false, ""
	d.stack = append(d.stack[:0], open)
}

// hidesMarkup reports whether "</name" right after inner might not be
// the end tag it looks like: inner holds a comment, CDATA section,
// directive or processing instruction (whose text may look like markup), an
// element of the same name, or a tag left open (with "</name" inside one of
// its quoted values, which only a malformed report has). It passes over
// inner tag by tag, quotes and all, as the tokenizer would.
func hidesMarkup(inner []byte, name string) bool {
	for i := 0; ; {
		k := bytes.IndexByte(inner[i:], '<')
		if k < 0 {
			return false
		}
		j := i + k + 1 // just past '<'
		if j == len(inner) {
			return true
		}
		switch c := inner[j]; {
		case c == '!', c == '?':
			return true
		case len(inner)-j >= len(name) && string(inner[j:j+len(name)]) == name:
			return true
		}
		// Most tags hold no quoted value: their end is the next '>'.
		if gt := bytes.IndexByte(inner[j:], '>'); gt >= 0 && bytes.IndexByte(inner[j:j+gt], '"') < 0 && bytes.IndexByte(inner[j:j+gt], '\'') < 0 {
			i = j + gt + 1
			continue
		}
		quote := byte(0)
		for ; j < len(inner); j++ {
			c := inner[j]
			if quote != 0 {
				if c == quote {
					quote = 0
				}
				continue
			}
			if c == '"' || c == '\'' {
				quote = c
			} else if c == '>' {
				break
			}
		}
		if j == len(inner) {
			return true // still inside a tag where "</name" begins
		}
		i = j + 1
	}
}

// leaf finds the end tag of the element whose start tag was just read when
// the element holds nothing but text (most elements of a report do): the
// index of the end tag from pos and its length. ok is false when there is
// markup first, or anything the token path must read (a self-closing tag,
// an end tag with spaces or of another name, the end of input).
func (d *fastXML) leaf() (k, n int, ok bool) {
	if d.endNext != "" || len(d.stack) == 0 {
		return 0, 0, false
	}
	name := d.stack[len(d.stack)-1]
	if k = d.index('<', 0); k < 0 {
		return 0, 0, false
	}
	n = len(name) + 3 // </name>
	if !d.ensure(k + n) {
		return 0, 0, false
	}
	e := d.buf[d.pos+k : d.pos+k+n]
	if e[1] != '/' || e[n-1] != '>' || string(e[2:n-1]) != name {
		return 0, 0, false
	}
	return k, n, true
}

// skipLeaf is Skip for an element of text only, in one step; false (and
// nothing read) for any other.
func (d *fastXML) skipLeaf() bool {
	k, n, ok := d.leaf()
	if !ok {
		return false
	}
	d.advance(k + n)
	d.stack = d.stack[:len(d.stack)-1]
	return true
}

// leafText reads an element of text only up to and including its end tag
// and returns its text (valid until the next read), checked and unescaped
// as the token path would; ok false (and nothing read) for any other.
func (d *fastXML) leafText() (text []byte, ok bool, err error) {
	k, n, ok := d.leaf()
	if !ok {
		return nil, false, nil
	}
	if text, err = d.unescape(d.buf[d.pos : d.pos+k]); err != nil {
		return nil, true, err
	}
	d.advance(k + n)
	d.stack = d.stack[:len(d.stack)-1]
	return text, true, nil
}

// skipSpaceText passes over text of whitespace alone when markup follows
// it, the indentation between elements, which a walker looking for the
// next element ignores: the text token it would have been is
// well formed, and only its lines count.
func (d *fastXML) skipSpaceText() {
	if d.endNext != "" {
		return
	}
	i := d.pos
	for i < len(d.buf) && isSpace(d.buf[i]) {
		i++
	}
	if i > d.pos && i < len(d.buf) && d.buf[i] == '<' {
		d.advance(i - d.pos)
	}
}
