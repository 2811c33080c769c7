package fleet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"sync"
)

// pidTagPrefix starts the stderr line in which the remote login shell
// reports its pid; a random part per run keeps script output from forging it.
const pidTagPrefix = "vulnzero-pid-"

func newPIDTag() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pid tag: %w", err)
	}
	return pidTagPrefix + hex.EncodeToString(b) + ":", nil
}

// maxPIDLookahead bounds how much stderr is held back while looking for the
// pid line (login scripts may print before it); past it, the search stops.
const maxPIDLookahead = 64 << 10

// pidFilter passes stderr through to out, minus the one line carrying the
// tag and the remote pid, which it records.
type pidFilter struct {
	tag []byte
	out io.Writer

	mu      sync.Mutex
	pending []byte
	done    bool
	pid     int
}

func (f *pidFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return f.out.Write(p)
	}
	f.pending = append(f.pending, p...)
	if i := bytes.Index(f.pending, f.tag); i >= 0 {
		if n := bytes.IndexByte(f.pending[i:], '\n'); n >= 0 {
			f.pid, _ = strconv.Atoi(string(f.pending[i+len(f.tag) : i+n]))
			rest := f.pending[i+n+1:]
			f.pending = f.pending[:i]
			f.pending = append(f.pending, rest...)
			f.flushLocked()
			return len(p), nil
		}
	}
	if len(f.pending) > maxPIDLookahead {
		f.flushLocked()
	}
	return len(p), nil
}

// PID is the remote pid, 0 until reported.
func (f *pidFilter) PID() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pid
}

// flush writes out whatever is held back; call it when the session is over.
func (f *pidFilter) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushLocked()
}

func (f *pidFilter) flushLocked() {
	if len(f.pending) > 0 {
		_, _ = f.out.Write(f.pending)
	}
	f.pending, f.done = nil, true
}
