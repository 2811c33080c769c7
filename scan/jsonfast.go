package scan

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math/bits"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonDecoder is the part of *json.Decoder the JSON walkers use. A walker
// runs on the standard decoder or on fastDecoder, which reads the same
// input into the same tokens, values and errors, several times faster.
type jsonDecoder interface {
	Token() (json.Token, error)
	More() bool
	InputOffset() int64
	Decode(v any) error
}

var (
	_ jsonDecoder = (*json.Decoder)(nil)
	_ jsonDecoder = (*fastDecoder)(nil)
)

// fastDecodable is a value that decodes itself from the stream: the hot
// path of a parser (one vulnerability entry) without reflection. The
// method must behave as json.Unmarshal into the same type would: same
// values, same first type error (offsets from base, the offset just after
// the separator before the value), and every other value skipped.
type fastDecodable interface {
	decodeFast(d *fastDecoder, base int64) error
}

// fastDecoder is a streaming JSON decoder with the semantics of
// *json.Decoder's Token, More, InputOffset and Decode (the same tokens,
// the same syntax error messages and InputOffset after them, the same
// type errors with the same Offset and Field), built for the one thing
// scanner reports need: walking a large document and decoding small values
// of it. encoding/json scans each value twice (once to find its end, once
// to decode it) one byte at a time through a state machine; this decoder
// scans once, skips string bodies in a tight loop, and lets a type decode
// itself (fastDecodable) instead of going through reflection.
type fastDecoder struct {
	r       io.Reader
	buf     []byte
	scanp   int   // next unread byte in buf
	scanned int64 // stream offset of buf[0]
	keep    int   // buf index fill must not discard from; -1 for none
	rerr    error // read error to report once buf is used up
	err     error // sticky error from a malformed value

	tokenState int
	tokenStack []int

	depth int    // nesting inside the value being scanned
	key   []byte // the member name object passes to its callback
	// nonASCII says the last string scanned has a byte above 0x7f (and so
	// may need its UTF-8 checked).
	nonASCII bool

	// trusted: buf holds whole values whose syntax rawObject checked, so
	// skipping one need not check it again (a batch decoder).
	trusted bool

	cvss     map[string]trivyCVSS // reused by trivyVuln.decodeFast
	interned map[string]string
	str      []byte // scratch for unescaping strings
}

// The token states of encoding/json's Decoder.Token.
const (
	tokenTopValue = iota
	tokenArrayStart
	tokenArrayValue
	tokenArrayComma
	tokenObjectStart
	tokenObjectKey
	tokenObjectColon
	tokenObjectValue
	tokenObjectComma
)

// maxNestingDepth is encoding/json's limit on nested arrays and objects
// within one value.
const maxNestingDepth = 10000

func newFastDecoder(r io.Reader) *fastDecoder {
	return &fastDecoder{r: r, buf: make([]byte, 0, 64<<10), keep: -1}
}

// InputOffset is the stream offset just past the last token or value read.
func (d *fastDecoder) InputOffset() int64 { return d.scanned + int64(d.scanp) }

// fill reads more input and reports whether there is any. Bytes before
// scanp (or before keep, when set) are discarded to make room.
func (d *fastDecoder) fill() bool {
	if d.rerr != nil {
		return false
	}
	from := d.scanp
	if d.keep >= 0 && d.keep < from {
		from = d.keep
	}
	if from > 0 {
		d.scanned += int64(from)
		n := copy(d.buf, d.buf[from:])
		d.buf = d.buf[:n]
		d.scanp -= from
		if d.keep >= 0 {
			d.keep -= from
		}
	}
	if cap(d.buf)-len(d.buf) < 4096 {
		nb := make([]byte, len(d.buf), 2*cap(d.buf)+4096)
		copy(nb, d.buf)
		d.buf = nb
	}
	for {
		n, err := d.r.Read(d.buf[len(d.buf):cap(d.buf)])
		d.buf = d.buf[:len(d.buf)+n]
		if err != nil {
			d.rerr = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
}

// eofErr is the error for input that ends inside a value.
func (d *fastDecoder) eofErr() error {
	if d.rerr != nil && !errors.Is(d.rerr, io.EOF) {
		return d.rerr
	}
	return io.ErrUnexpectedEOF
}

// peek skips whitespace and returns the next byte without consuming it.
// Like *json.Decoder, it leaves scanp before the whitespace until it finds
// a byte, so InputOffset does not move at the end of input.
func (d *fastDecoder) peek() (byte, error) {
	n := 0 // whitespace bytes after scanp
	for {
		buf := d.buf
		i := d.scanp + n
		if i = skipSpace(buf, i); i < len(buf) {
			d.scanp = i
			return buf[i], nil
		}
		n = len(d.buf) - d.scanp
		if !d.fill() {
			return 0, d.rerr
		}
	}
}

// More reports whether there is another element in the current array or
// object.
func (d *fastDecoder) More() bool {
	c, err := d.peek()
	return err == nil && c != ']' && c != '}'
}

func (d *fastDecoder) tokenValueAllowed() bool {
	switch d.tokenState {
	case tokenTopValue, tokenArrayStart, tokenArrayValue, tokenObjectValue:
		return true
	}
	return false
}

func (d *fastDecoder) tokenValueEnd() {
	switch d.tokenState {
	case tokenArrayStart, tokenArrayValue:
		d.tokenState = tokenArrayComma
	case tokenObjectValue:
		d.tokenState = tokenObjectComma
	}
}

func (d *fastDecoder) tokenError(c byte) (json.Token, error) {
	var context string
	switch d.tokenState {
	case tokenTopValue, tokenArrayStart, tokenArrayValue, tokenObjectValue:
		context = "looking for beginning of value"
	case tokenArrayComma:
		context = "after array element"
	case tokenObjectKey:
		context = "looking for beginning of object key string"
	case tokenObjectColon:
		context = "after object key"
	case tokenObjectComma:
		context = "after object key:value pair"
	}
	return nil, syntaxError(c, context, d.InputOffset())
}

// Token returns the next token as *json.Decoder.Token does: Delim for
// brackets and braces, string, float64, bool or nil for values.
func (d *fastDecoder) Token() (json.Token, error) {
	for {
		c, err := d.peek()
		if err != nil {
			return nil, err
		}
		switch c {
		case '[', '{':
			if !d.tokenValueAllowed() {
				return d.tokenError(c)
			}
			d.scanp++
			d.tokenStack = append(d.tokenStack, d.tokenState)
			if c == '[' {
				d.tokenState = tokenArrayStart
			} else {
				d.tokenState = tokenObjectStart
			}
			return json.Delim(c), nil
		case ']':
			if d.tokenState != tokenArrayStart && d.tokenState != tokenArrayComma {
				return d.tokenError(c)
			}
			d.scanp++
			d.tokenState = d.tokenStack[len(d.tokenStack)-1]
			d.tokenStack = d.tokenStack[:len(d.tokenStack)-1]
			d.tokenValueEnd()
			return json.Delim(']'), nil
		case '}':
			if d.tokenState != tokenObjectStart && d.tokenState != tokenObjectComma {
				return d.tokenError(c)
			}
			d.scanp++
			d.tokenState = d.tokenStack[len(d.tokenStack)-1]
			d.tokenStack = d.tokenStack[:len(d.tokenStack)-1]
			d.tokenValueEnd()
			return json.Delim('}'), nil
		case ':':
			if d.tokenState != tokenObjectColon {
				return d.tokenError(c)
			}
			d.scanp++
			d.tokenState = tokenObjectValue
			continue
		case ',':
			switch d.tokenState {
			case tokenArrayComma:
				d.scanp++
				d.tokenState = tokenArrayValue
				continue
			case tokenObjectComma:
				d.scanp++
				d.tokenState = tokenObjectKey
				continue
			}
			return d.tokenError(c)
		case '"':
			if d.tokenState == tokenObjectStart || d.tokenState == tokenObjectKey {
				s, err := d.scalarToken(true)
				if err != nil {
					return nil, err
				}
				d.tokenState = tokenObjectColon
				return s, nil
			}
		}
		if !d.tokenValueAllowed() {
			return d.tokenError(c)
		}
		t, err := d.scalarToken(false)
		d.tokenValueEnd()
		return t, err
	}
}

// scalarToken reads the value at scanp (an object key when key is set) as
// Token does through Decode into an any.
func (d *fastDecoder) scalarToken(key bool) (json.Token, error) {
	if d.err != nil {
		return nil, d.err
	}
	start := d.InputOffset()
	d.keep = d.scanp
	defer func() { d.keep = -1 }()
	c := d.buf[d.scanp]
	switch {
	case c == '"':
		s, err := d.readString()
		if err != nil {
			return nil, d.malformed(err, start)
		}
		return s, nil
	case key:
		return nil, nil // unreachable: keys start with '"'
	case c == '{' || c == '[':
		// Token returns delimiters for these; a value here is only
		// reached through Decode.
		if err := d.skipValue(); err != nil {
			return nil, d.malformed(err, start)
		}
		return nil, nil
	}
	lit, err := d.readLiteral()
	if err != nil {
		return nil, d.malformed(err, start)
	}
	switch lit[0] {
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return nil, &json.UnmarshalTypeError{Value: "number " + string(lit), Type: reflect.TypeFor[float64](), Offset: d.InputOffset() - start + 1}
	}
	return f, nil
}

// malformed records a syntax or end-of-input error inside a value: like
// *json.Decoder, the decoder stays at the value's start and keeps failing.
func (d *fastDecoder) malformed(err error, start int64) error {
	d.scanp = int(start - d.scanned)
	d.err = err
	return err
}

// toValue consumes the ',' or ':' that comes before a value in the current
// token state, as *json.Decoder.Decode does, and checks that a value may
// come next.
func (d *fastDecoder) toValue() error {
	switch d.tokenState {
	case tokenArrayComma:
		c, err := d.peek()
		if err != nil {
			return err
		}
		if c != ',' {
			return decoderError("expected comma after array element", d.InputOffset())
		}
		d.scanp++
		d.tokenState = tokenArrayValue
	case tokenObjectColon:
		c, err := d.peek()
		if err != nil {
			return err
		}
		if c != ':' {
			return decoderError("expected colon after object key", d.InputOffset())
		}
		d.scanp++
		d.tokenState = tokenObjectValue
	}
	if !d.tokenValueAllowed() {
		return decoderError("not at beginning of value", d.InputOffset())
	}
	return nil
}

// Decode reads the next value into v, as *json.Decoder.Decode does.
func (d *fastDecoder) Decode(v any) error {
	if d.err != nil {
		return d.err
	}
	if err := d.toValue(); err != nil {
		return err
	}
	start := d.InputOffset()
	d.keep = d.scanp
	defer func() { d.keep = -1 }()

	var err error
	if fd, ok := v.(fastDecodable); ok {
		err = fd.decodeFast(d, start)
	} else {
		err = d.decodeReflect(v)
	}
	var te *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &te) {
		return d.malformed(err, start)
	}
	d.tokenValueEnd()
	return err
}

// decodeReflect scans one value and hands its bytes to json.Unmarshal:
// small values (headers, metadata) are not worth a hand decoder.
func (d *fastDecoder) decodeReflect(v any) error {
	start := d.InputOffset()
	if err := d.skipValue(); err != nil {
		return err
	}
	// The value was scanned whole, so Unmarshal can only fail on types;
	// its offsets count from start, as the standard Decoder's do.
	return json.Unmarshal(d.bytesAt(start, d.InputOffset()), v)
}

// --- scanning --------------------------------------------------------------
//
// The scanning functions consume from scanp. A local buf index never
// survives a fill (which moves the buffer down); positions that must are
// kept as stream offsets. Callers set keep to the value's start, so bytes
// of the value stay in buf until the value is done.

// next returns the next non-space byte inside a value, or the error for
// input that ends there.
func (d *fastDecoder) next() (byte, error) {
	c, err := d.peek()
	if err != nil {
		return 0, d.eofErr()
	}
	return c, nil
}

// ensure makes buf hold at least n bytes from scanp; false at end of input.
func (d *fastDecoder) ensure(n int) bool {
	for len(d.buf)-d.scanp < n {
		if !d.fill() {
			return false
		}
	}
	return true
}

// offsetOf is the stream offset of buf index i.
func (d *fastDecoder) offsetOf(i int) int64 { return d.scanned + int64(i) }

// bytesAt returns the bytes between two stream offsets, which must still
// be in buf.
func (d *fastDecoder) bytesAt(from, to int64) []byte {
	return d.buf[from-d.scanned : to-d.scanned]
}

// skipValue consumes one value, checking its syntax as encoding/json's
// scanner does.
func (d *fastDecoder) skipValue() error {
	c, err := d.next()
	if err != nil {
		return err
	}
	if d.trusted {
		d.scanp = skipTrusted(d.buf, d.scanp)
		return nil
	}
	switch c {
	case '"':
		_, _, _, err := d.scanString()
		return err
	case '{', '[':
		if d.skipCompositeFast() {
			return nil
		}
		if c == '{' {
			return d.skipObject()
		}
		return d.skipArray()
	}
	_, err = d.readLiteral()
	return err
}

// The fast skipper's states.
const (
	skipValue = iota
	skipValueOrEnd
	skipKey
	skipKeyOrEnd
	skipColon
	skipAfter
)

// skipCompositeFast consumes the object or array at scanp in one loop when
// it is well formed and nests less than 64 deep, and reports whether it
// did. Anything else (a syntax error, the end of input, deep nesting)
// leaves scanp where it was, for skipObject and skipArray, which find the
// error and name it. Skipping large members (descriptions, reference lists,
// package metadata) is most of a parse.
func (d *fastDecoder) skipCompositeFast() bool {
	start := d.InputOffset()
	if d.keep < 0 {
		d.keep = d.scanp
		defer func() { d.keep = -1 }()
	}
	fail := func() bool {
		d.scanp = int(start - d.scanned)
		return false
	}
	var stack [64]byte
	var ok bool
	depth := 0
	state := skipValue
	buf, i := d.buf, d.scanp
	for {
		// Keep a token's worth of bytes ahead, so that short tokens need
		// no refill in the middle; longer ones refill as they go.
		if len(buf)-i < 64 && d.rerr == nil {
			d.scanp = i
			d.fill()
			buf, i = d.buf, d.scanp
		}
		if i = skipSpace(buf, i); i >= len(buf) {
			if d.rerr != nil {
				return fail()
			}
			continue
		}
		c := buf[i]
		switch state {
		case skipValueOrEnd:
			if c == ']' {
				i++
				depth--
				state = skipAfter
				break
			}
			state = skipValue //nolint:ineffassign // the state the next byte is read in, should skipValue's case change
			fallthrough
		case skipValue:
			switch {
			case c == '{' || c == '[':
				if depth == len(stack) || d.depth+depth >= maxNestingDepth {
					return fail()
				}
				stack[depth] = c
				depth++
				i++
				state = skipKeyOrEnd
				if c == '[' {
					state = skipValueOrEnd
				}
			case c == '"':
				if i, ok = d.skipString(i); !ok {
					return fail()
				}
				buf = d.buf
				state = skipAfter
			case c == 't' || c == 'f' || c == 'n':
				word := "true"
				if c == 'f' {
					word = "false"
				} else if c == 'n' {
					word = "null"
				}
				if len(buf)-i < len(word) || string(buf[i:i+len(word)]) != word {
					return fail()
				}
				i += len(word)
				state = skipAfter
			default:
				n := numberLen(buf[i:])
				if n <= 0 || i+n == len(buf) {
					// Not a number, or one that may go on past the buffer.
					return fail()
				}
				i += n
				state = skipAfter
			}
		case skipKeyOrEnd, skipKey:
			if c == '}' && state == skipKeyOrEnd {
				i++
				depth--
				state = skipAfter
				break
			}
			if c != '"' {
				return fail()
			}
			if i, ok = d.skipString(i); !ok {
				return fail()
			}
			buf = d.buf
			state = skipColon
		case skipColon:
			if c != ':' {
				return fail()
			}
			i++
			state = skipValue
		case skipAfter:
			top := stack[depth-1] //nolint:gosec // G602: skipAfter is entered only inside a container (depth ≥ 1)
			switch {
			case c == ',':
				i++
				state = skipValue
				if top == '{' {
					state = skipKey
				}
			case c == '}' && top == '{', c == ']' && top == '[':
				i++
				depth--
			default:
				return fail()
			}
		}
		if depth == 0 && state == skipAfter {
			d.scanp = i
			return true
		}
	}
}

// skipString passes the string whose opening quote is at buf index i and
// returns the index just past its closing quote, checking it as
// scanString does; ok is false for a malformed string. A string whole in
// the buffer is passed in one tight loop (no offsets, no UTF-8 bookkeeping:
// a skipped string is not read); one that runs past it is left to
// scanString, which reads on. buf may move: callers reload d.buf.
func (d *fastDecoder) skipString(i int) (int, bool) {
	buf := d.buf
	for j := i + 1; ; {
		for ; j+8 <= len(buf); j += 8 {
			if strStopIn(binary.LittleEndian.Uint64(buf[j:])) {
				break
			}
		}
		for j < len(buf) && !strStop[buf[j]] {
			j++
		}
		if j+6 > len(buf) {
			break // near the end of what is read: scanString reads on
		}
		switch c := buf[j]; {
		case c == '"':
			return j + 1, true
		case c == '\\':
			switch buf[j+1] {
			case 'b', 'f', 'n', 'r', 't', '\\', '/', '"':
				j += 2
			case 'u':
				if !isHex(buf[j+2]) || !isHex(buf[j+3]) || !isHex(buf[j+4]) || !isHex(buf[j+5]) {
					return 0, false
				}
				j += 6
			default:
				return 0, false
			}
		default:
			return 0, false // a control character
		}
	}
	d.scanp = i
	if _, _, _, err := d.scanString(); err != nil {
		return 0, false
	}
	return d.scanp, true
}

// numberLen returns the length of the JSON number b starts with, or 0 when
// b does not start with one.
func numberLen(b []byte) int {
	i := 0
	digits := func() int {
		k := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i - k
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	return i
}

func (d *fastDecoder) push(c byte) error {
	d.depth++
	if d.depth > maxNestingDepth {
		return syntaxError(c, "exceeded max depth", d.InputOffset())
	}
	return nil
}

func (d *fastDecoder) skipObject() error {
	err := d.object(func() error { return d.skipValue() })
	return err
}

// object reads an object whose '{' is at scanp, calling value with scanp at
// each member's value (the key is in d.key). It checks the syntax between
// members.
func (d *fastDecoder) object(value func() error) error {
	if err := d.push('{'); err != nil {
		return err
	}
	d.scanp++ // '{'
	c, err := d.next()
	if err != nil {
		return err
	}
	if c == '}' {
		d.scanp++
		d.depth--
		return nil
	}
	for {
		if c != '"' {
			return syntaxError(c, "looking for beginning of object key string", d.InputOffset())
		}
		key, err := d.readStringBytes()
		if err != nil {
			return err
		}
		d.key = append(d.key[:0], key...)
		if c, err = d.next(); err != nil {
			return err
		}
		if c != ':' {
			return syntaxError(c, "after object key", d.InputOffset())
		}
		d.scanp++
		if _, err := d.next(); err != nil {
			return err
		}
		if err := value(); err != nil {
			return err
		}
		if c, err = d.next(); err != nil {
			return err
		}
		switch c {
		case ',':
			d.scanp++
			if c, err = d.next(); err != nil {
				return err
			}
			continue
		case '}':
			d.scanp++
			d.depth--
			return nil
		}
		return syntaxError(c, "after object key:value pair", d.InputOffset())
	}
}

func (d *fastDecoder) skipArray() error {
	if err := d.push('['); err != nil {
		return err
	}
	d.scanp++ // '['
	c, err := d.next()
	if err != nil {
		return err
	}
	if c == ']' {
		d.scanp++
		d.depth--
		return nil
	}
	for {
		if err := d.skipValue(); err != nil {
			return err
		}
		if c, err = d.next(); err != nil {
			return err
		}
		switch c {
		case ',':
			d.scanp++
			continue
		case ']':
			d.scanp++
			d.depth--
			return nil
		}
		return syntaxError(c, "after array element", d.InputOffset())
	}
}

// jsonSpace marks JSON's whitespace bytes.
var jsonSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// skipSpace returns the index of the first byte at or after i that is not
// whitespace, len(buf) when there is none. Pretty-printed reports indent
// each line with a run of spaces after the newline: eight at a time.
func skipSpace(buf []byte, i int) int {
	// Most calls are at a token already (every whitespace byte is ≤ ' '):
	// small enough to inline, with the loop out of line.
	if i < len(buf) && buf[i] > ' ' {
		return i
	}
	return skipSpaceRun(buf, i)
}

//go:noinline
func skipSpaceRun(buf []byte, i int) int {
	for i+8 <= len(buf) {
		// The low zero bytes of w are the spaces before the first other
		// byte, which is read from w rather than loaded again.
		w := binary.LittleEndian.Uint64(buf[i:]) ^ 0x2020202020202020
		n := bits.TrailingZeros64(w) / 8
		i += n
		if n == 8 {
			continue
		}
		if c := byte(w>>(8*n)) ^ ' '; c != '\n' && c != '\t' && c != '\r' { //nolint:gosec // G115: taking the low byte is the point
			return i
		}
		i++
	}
	for i < len(buf) && jsonSpace[buf[i]] {
		i++
	}
	return i
}

// strStop marks the bytes that end the fast part of a string scan: the
// closing quote, a backslash, and control characters (invalid in JSON
// strings).
var strStop = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// scanString consumes the string whose opening quote is at scanp and
// returns the stream offsets of its body and whether it holds escapes.
func (d *fastDecoder) scanString() (from, to int64, escaped bool, err error) {
	d.scanp++
	from = d.InputOffset()
	d.nonASCII = false
	var high uint64 // the high bits of every byte passed, to tell ASCII
	for {
		buf, i := d.buf, d.scanp
		// Eight bytes at a time while none of them is a quote, a
		// backslash or a control character, then byte by byte.
		for ; i+8 <= len(buf); i += 8 {
			w := binary.LittleEndian.Uint64(buf[i:])
			if strStopIn(w) {
				break
			}
			high |= w
		}
		for i < len(buf) && !strStop[buf[i]] {
			high |= uint64(buf[i])
			i++
		}
		if high&0x8080808080808080 != 0 {
			d.nonASCII = true
		}
		d.scanp = i
		if i == len(buf) {
			if !d.fill() {
				return 0, 0, false, d.eofErr()
			}
			continue
		}
		switch c := buf[i]; {
		case c == '"':
			d.scanp = i + 1
			return from, d.offsetOf(i), escaped, nil
		case c == '\\':
			escaped = true
			if err := d.skipEscape(); err != nil {
				return 0, 0, false, err
			}
		default:
			return 0, 0, false, syntaxError(c, "in string literal", d.offsetOf(i))
		}
	}
}

// skipEscape consumes the escape whose backslash is at scanp.
func (d *fastDecoder) skipEscape() error {
	if !d.ensure(2) {
		return d.eofErr()
	}
	switch c := d.buf[d.scanp+1]; c {
	case 'b', 'f', 'n', 'r', 't', '\\', '/', '"':
		d.scanp += 2
		return nil
	case 'u':
		for k := 2; k < 6; k++ {
			if !d.ensure(k + 1) {
				return d.eofErr()
			}
			if c := d.buf[d.scanp+k]; !isHex(c) {
				return syntaxError(c, "in \\u hexadecimal character escape", d.offsetOf(d.scanp+k))
			}
		}
		d.scanp += 6
		return nil
	default:
		return syntaxError(c, "in string escape code", d.offsetOf(d.scanp+1))
	}
}

// strStopIn reports whether any byte of w (eight string bytes) is '"',
// '\\' or below 0x20, with the usual SWAR tricks: x-0x01…&^x&0x80… is
// non-zero when a byte of x is zero.
func strStopIn(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote := w ^ (ones * '"')
	slash := w ^ (ones * '\\')
	hasZero := func(x uint64) uint64 { return (x - ones) &^ x & highs }
	// Bytes below 0x20: x - 0x20 borrows into the high bit.
	below := (w - ones*0x20) &^ w & highs
	return hasZero(quote)|hasZero(slash)|below != 0
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// readString consumes a string value and returns it unescaped, invalid
// UTF-8 replaced, as encoding/json does.
func (d *fastDecoder) readString() (string, error) {
	b, err := d.readStringBytes()
	return string(b), err
}

// readStringBytes is readString into memory valid until the next read.
func (d *fastDecoder) readStringBytes() ([]byte, error) {
	from, to, escaped, err := d.scanString()
	if err != nil {
		return nil, err
	}
	body := d.bytesAt(from, to)
	if !escaped && (!d.nonASCII || utf8.Valid(body)) {
		return body, nil
	}
	d.str = unescapeJSON(d.str[:0], body)
	return d.str, nil
}

// unescapeJSON appends the string body b (syntax already checked) with its
// escapes resolved and invalid UTF-8 replaced by U+FFFD, as encoding/json's
// unquote does.
func unescapeJSON(out, b []byte) []byte {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			switch b[i+1] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if r2 := utf16.DecodeRune(r, hex4(b[i+2:i+6])); r2 != utf8.RuneError {
							out = utf8.AppendRune(out, r2)
							i += 6
							continue
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default: // '\\', '/', '"'
				out = append(out, b[i+1])
			}
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			out = utf8.AppendRune(out, r) // RuneError for an invalid byte
			i += size
		}
	}
	return out
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// readLiteral consumes a number, true, false or null at scanp and returns
// its bytes (valid until the next read). A number ends at the first byte
// that cannot continue it; what that byte may be is the container's
// business.
func (d *fastDecoder) readLiteral() ([]byte, error) {
	switch c := d.buf[d.scanp]; c {
	case 't':
		return d.readWord("true", "in literal true (expecting '%c')")
	case 'f':
		return d.readWord("false", "in literal false (expecting '%c')")
	case 'n':
		return d.readWord("null", "in literal null (expecting '%c')")
	default:
		if c != '-' && (c < '0' || c > '9') {
			return nil, syntaxError(c, "looking for beginning of value", d.InputOffset())
		}
	}
	return d.readNumber()
}

func (d *fastDecoder) readWord(word, context string) ([]byte, error) {
	for k := 1; k < len(word); k++ {
		if !d.ensure(k + 1) {
			return nil, d.eofErr()
		}
		if c := d.buf[d.scanp+k]; c != word[k] {
			return nil, syntaxError(c, strings.Replace(context, "%c", word[k:k+1], 1), d.offsetOf(d.scanp+k))
		}
	}
	d.scanp += len(word)
	return d.buf[d.scanp-len(word) : d.scanp], nil
}

// readNumber follows encoding/json's number states from scanp.
func (d *fastDecoder) readNumber() ([]byte, error) {
	n := 0 // bytes of the number so far
	// at returns the byte n bytes past scanp; ok is false at end of input.
	at := func(n int) (byte, bool) {
		if !d.ensure(n + 1) {
			return 0, false
		}
		return d.buf[d.scanp+n], true
	}
	done := func() ([]byte, error) {
		d.scanp += n
		return d.buf[d.scanp-n : d.scanp], nil
	}
	digit := func(c byte) bool { return '0' <= c && c <= '9' }
	c, _ := at(0)
	if c == '-' {
		n++
		var ok bool
		if c, ok = at(n); !ok {
			return nil, d.eofErr()
		}
		if !digit(c) {
			return nil, syntaxError(c, "in numeric literal", d.offsetOf(d.scanp+n))
		}
	}
	n++ // the first digit
	if c != '0' {
		for {
			c, ok := at(n)
			if !ok {
				return done()
			}
			if !digit(c) {
				break
			}
			n++
		}
	}
	c, ok := at(n)
	if !ok {
		return done()
	}
	if c == '.' {
		n++
		if c, ok = at(n); !ok {
			return nil, d.eofErr()
		}
		if !digit(c) {
			return nil, syntaxError(c, "after decimal point in numeric literal", d.offsetOf(d.scanp+n))
		}
		for digit(c) {
			n++
			if c, ok = at(n); !ok {
				return done()
			}
		}
	}
	if c == 'e' || c == 'E' {
		n++
		if c, ok = at(n); !ok {
			return nil, d.eofErr()
		}
		if c == '+' || c == '-' {
			n++
			if c, ok = at(n); !ok {
				return nil, d.eofErr()
			}
		}
		if !digit(c) {
			return nil, syntaxError(c, "in exponent of numeric literal", d.offsetOf(d.scanp+n))
		}
		for digit(c) {
			n++
			if c, ok = at(n); !ok {
				return done()
			}
		}
	}
	return done()
}

// --- errors ------------------------------------------------------------------

// syntaxError returns the *json.SyntaxError encoding/json gives for byte c
// in context ("invalid character 'x' after array element") at offset.
// SyntaxError's message is unexported, so the error is made by having
// encoding/json itself fail on c in the same context.
func syntaxError(c byte, context string, offset int64) error {
	var snippet []byte
	switch {
	case context == "looking for beginning of value":
		snippet = []byte{'[', 'n', 'u', 'l', 'l', ',', c}
	case context == "looking for beginning of object key string":
		snippet = []byte(`{"k":null,` + string([]byte{c}))
	case context == "after object key":
		snippet = []byte(`{"k"` + string([]byte{c}))
	case context == "after object key:value pair":
		snippet = []byte(`{"k":null` + string([]byte{c}))
	case context == "after array element":
		snippet = []byte(`[null` + string([]byte{c}))
	case context == "in string literal":
		snippet = []byte{'"', c}
	case context == "in string escape code":
		snippet = []byte{'"', '\\', c}
	case context == "in \\u hexadecimal character escape":
		snippet = []byte{'"', '\\', 'u', c}
	case context == "in numeric literal":
		snippet = []byte{'-', c}
	case context == "after decimal point in numeric literal":
		snippet = []byte{'0', '.', c}
	case context == "in exponent of numeric literal":
		snippet = []byte{'0', 'e', c}
		if c == '+' || c == '-' { // a second sign: the first was allowed
			snippet = []byte{'0', 'e', '+', c}
		}
	case context == "exceeded max depth":
		snippet = []byte(strings.Repeat("[", maxNestingDepth+1))
	case strings.HasPrefix(context, "in literal "):
		// "in literal true (expecting 'u')": the word up to the expected letter.
		word := strings.Fields(context)[2]
		want := context[len(context)-3]
		snippet = append([]byte(word[:strings.IndexByte(word, want)]), c)
	}
	var err error
	if context == "" {
		// Token's error for a byte that cannot follow '{' ("invalid
		// character ':'", no context): only a Decoder in that state says it.
		dec := json.NewDecoder(bytes.NewReader([]byte{'{', c}))
		_, _ = dec.Token()
		_, err = dec.Token()
	} else {
		err = json.Unmarshal(snippet, new(any))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		se.Offset = offset
		return se
	}
	panic("scan: no syntax error for context " + context) // a bug: every context above fails
}

// decoderError returns one of the *json.Decoder's own syntax errors
// ("expected comma after array element", "not at beginning of value"), made
// by a standard Decoder in the same state.
func decoderError(msg string, offset int64) error {
	var input string
	var steps func(dec *json.Decoder) error
	switch msg {
	case "expected comma after array element":
		input = "[1 2]"
		steps = func(dec *json.Decoder) error { _, _ = dec.Token(); _, _ = dec.Token(); return dec.Decode(new(any)) }
	case "expected colon after object key":
		input = `{"k" 1}`
		steps = func(dec *json.Decoder) error { _, _ = dec.Token(); _, _ = dec.Token(); return dec.Decode(new(any)) }
	default: // "not at beginning of value"
		input = `{`
		steps = func(dec *json.Decoder) error { _, _ = dec.Token(); return dec.Decode(new(any)) }
	}
	var se *json.SyntaxError
	if err := steps(json.NewDecoder(strings.NewReader(input))); errors.As(err, &se) && se.Error() == msg {
		se.Offset = offset
		return se
	}
	panic("scan: no decoder error " + msg)
}

// rawObject consumes the next value when it is a well-formed object (as
// Decode would read it, past the comma or colon before it) and returns the
// stream offsets of its first byte and just past its last. The bytes stay
// in whatever the decoder reads through (a lineTracker) until released.
// Anything else (another type, a syntax error, the end of input, deep
// nesting) gives ok false and leaves the decoder as it was, for Decode to
// read and, when it is bad, to name the problem.
func (d *fastDecoder) rawObject() (start, end int64, ok bool) {
	if d.err != nil {
		return 0, 0, false
	}
	state, from := d.tokenState, d.InputOffset()
	d.keep = d.scanp
	defer func() { d.keep = -1 }()
	restore := func() (int64, int64, bool) {
		d.tokenState, d.scanp = state, int(from-d.scanned)
		return 0, 0, false
	}
	if d.toValue() != nil {
		return restore()
	}
	if c, err := d.peek(); err != nil || c != '{' {
		return restore()
	}
	start = d.InputOffset()
	if !d.skipCompositeFast() {
		return restore()
	}
	d.tokenValueEnd()
	return start, d.InputOffset(), true
}

// segmentDecoders decode batches on worker goroutines (see trivyBatch),
// each over a copy of part of the stream.
var segmentDecoders = sync.Pool{New: func() any { return &fastDecoder{keep: -1} }}

// resetSegment makes d read seg, the stream bytes from offset base on, and
// nothing after them.
func (d *fastDecoder) resetSegment(seg []byte, base int64) {
	d.r, d.buf, d.scanned, d.scanp, d.keep = nil, seg, base, 0, -1
	d.rerr, d.err, d.trusted = io.EOF, nil, true
	d.tokenState, d.tokenStack, d.depth = tokenTopValue, d.tokenStack[:0], 0
}

// seek puts d at stream offset off, before a top-level value.
func (d *fastDecoder) seek(off int64) {
	d.scanp, d.keep, d.err = int(off-d.scanned), -1, nil
	d.tokenState, d.tokenStack = tokenTopValue, d.tokenStack[:0]
}

// skipTrusted returns the index just past the value that starts at buf[i],
// which must be well formed and whole in buf: it only matches quotes and
// brackets, with no checking, a few times faster than skipping with checks.
func skipTrusted(buf []byte, i int) int {
	depth := 0
	for i < len(buf) {
		switch jsonClass[buf[i]] {
		case classQuote:
			i = stringEnd(buf, i+1)
			if depth == 0 {
				return i
			}
			continue
		case classOpen:
			depth++
		case classClose:
			depth--
			if depth == 0 {
				return i + 1
			}
		case classSpace:
			i = skipSpace(buf, i+1)
			continue
		case classOther:
			if depth == 0 { // a number or literal
				for i < len(buf) && jsonClass[buf[i]] == classOther {
					i++
				}
				return i
			}
		}
		i++
	}
	return i
}

// stringEnd returns the index just past the closing quote of the string
// whose body starts at buf[i]; the string must be well formed.
func stringEnd(buf []byte, i int) int {
	for {
		k := bytes.IndexByte(buf[i:], '"')
		if k < 0 {
			return len(buf)
		}
		j := i + k
		n := 0 // backslashes right before the quote: odd escapes it
		for buf[j-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return j + 1
		}
		i = j + 1
	}
}

// The byte classes skipTrusted tells apart; ',' and ':' are spaces to it.
const (
	classOther = iota
	classQuote
	classOpen
	classClose
	classSpace
)

var jsonClass = func() (t [256]uint8) {
	t['"'] = classQuote
	t['{'], t['['] = classOpen, classOpen
	t['}'], t[']'] = classClose, classClose
	for _, c := range []byte(" \t\r\n,:") {
		t[c] = classSpace
	}
	return t
}()
