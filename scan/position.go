package scan

import (
	"bytes"
	"io"
)

// lineTracker sits between a JSON decoder and its input and turns the
// decoder's byte offsets into line and column numbers without keeping the
// whole input: it holds only the bytes the decoder has read but not yet
// consumed (about the decoder's own buffer), and counts the newlines of the
// bytes it lets go.
type lineTracker struct {
	r      io.Reader
	base   int64  // stream offset of buf[0]
	lines  int    // newlines before base
	lastNL int64  // stream offset of the last newline before base; -1 if none
	buf    []byte // bytes from base up to everything read so far

	// view: buf is a batch's copy of part of the stream (see
	// trivyBatch), read by a worker; nothing is ever released.
	view bool

	// A memo of the last position counted, so that asking about offsets
	// in increasing order counts each byte once.
	memoOff    int64
	memoLines  int
	memoLastNL int64
}

func newLineTracker(r io.Reader, offset int64) *lineTracker {
	return &lineTracker{r: r, base: offset, lastNL: -1}
}

func (t *lineTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.buf = append(t.buf, p[:n]...)
	return n, err
}

// end is the stream offset just past everything read.
func (t *lineTracker) end() int64 { return t.base + int64(len(t.buf)) }

// release says the decoder will never ask about offsets before off. The
// buffer is compacted only when the released prefix is large, so each byte
// is counted and copied a bounded number of times.
func (t *lineTracker) release(off int64) {
	if t.view {
		return
	}
	k := int(off - t.base)
	if k < 32<<10 || k < len(t.buf)/2 || k > len(t.buf) {
		return
	}
	prefix := t.buf[:k]
	if n := bytes.Count(prefix, []byte{'\n'}); n > 0 {
		t.lines += n
		t.lastNL = t.base + int64(bytes.LastIndexByte(prefix, '\n'))
	}
	t.buf = append(t.buf[:0], t.buf[k:]...)
	t.base = off
}

// pos returns the 1-based line and column of stream offset off, which must
// not be before the last release.
func (t *lineTracker) pos(off int64) (line, col int) {
	lines, lastNL, at := t.linesBefore(off)
	return lines + 1, int(at - lastNL)
}

// linesBefore counts the newlines before stream offset off (clamped to
// what the tracker holds, returned as at) and finds the last of them.
func (t *lineTracker) linesBefore(off int64) (lines int, lastNL, at int64) {
	k := int(off - t.base)
	k = max(0, min(k, len(t.buf)))
	from, lines, lastNL := 0, t.lines, t.lastNL
	if m := int(t.memoOff - t.base); t.memoOff > 0 && m >= 0 && m <= k {
		from, lines, lastNL = m, t.memoLines, t.memoLastNL
	}
	seg := t.buf[from:k]
	if n := bytes.Count(seg, []byte{'\n'}); n > 0 {
		lines += n
		lastNL = t.base + int64(from+bytes.LastIndexByte(seg, '\n'))
	}
	at = t.base + int64(k)
	t.memoOff, t.memoLines, t.memoLastNL = at, lines, lastNL
	return lines, lastNL, at
}

// skipSeparators returns the offset of the first byte at or after off that
// is not whitespace, a comma or a colon: where the next JSON value starts.
// The decoder's InputOffset points before those separators.
func (t *lineTracker) skipSeparators(off int64) int64 {
	for k := int(off - t.base); k >= 0 && k < len(t.buf); k++ {
		switch t.buf[k] {
		case ' ', '\t', '\r', '\n', ',', ':':
			continue
		}
		return t.base + int64(k)
	}
	return off
}

// afterSeparator returns the offset just after the ',' or ':' that follows
// off (past whitespace), or off when there is none: where the decoder starts
// counting when it decodes the next value.
func (t *lineTracker) afterSeparator(off int64) int64 {
	for k := int(off - t.base); k >= 0 && k < len(t.buf); k++ {
		switch t.buf[k] {
		case ' ', '\t', '\r', '\n':
			continue
		case ',', ':':
			return t.base + int64(k) + 1
		}
		return off
	}
	return off
}
