package scan

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// spoolMemory is how many pending detections a spool keeps in memory
// before it moves them to a temporary file (a variable so tests can make
// the file path run).
var spoolMemory = 8192

// qualysSpool holds detections of an ASSET_DATA_REPORT until its glossary
// has been read: in memory up to spoolMemory, then in a temporary file of
// JSON lines, so a report of millions of detections does not grow memory.
type qualysSpool struct {
	mem  []qualysPending
	file *os.File
	w    *bufio.Writer
	enc  *json.Encoder
}

func (s *qualysSpool) add(p qualysPending) error {
	if s.file == nil && len(s.mem) < spoolMemory {
		s.mem = append(s.mem, p)
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp("", "vulnzero-qualys-*.jsonl")
		if err != nil {
			return fmt.Errorf("spool qualys detections: %w", err)
		}
		s.file = f
		s.w = bufio.NewWriterSize(f, 64<<10)
		s.enc = json.NewEncoder(s.w)
		for _, m := range s.mem {
			if err := s.enc.Encode(m); err != nil {
				return fmt.Errorf("spool qualys detections: %w", err)
			}
		}
		s.mem = nil
	}
	if err := s.enc.Encode(p); err != nil {
		return fmt.Errorf("spool qualys detections: %w", err)
	}
	return nil
}

// replay calls fn with every detection in the order they were added.
func (s *qualysSpool) replay(fn func(qualysPending) error) error {
	if s.file == nil {
		for _, p := range s.mem {
			if err := fn(p); err != nil {
				return err
			}
		}
		s.mem = nil
		return nil
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spool qualys detections: %w", err)
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool qualys detections: %w", err)
	}
	dec := json.NewDecoder(bufio.NewReaderSize(s.file, 64<<10))
	for {
		var p qualysPending
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read spooled qualys detections: %w", err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
}

func (s *qualysSpool) close() {
	if s.file != nil {
		name := s.file.Name()
		s.file.Close()
		_ = os.Remove(name) // best effort: it is a temporary file

		s.file = nil
	}
}
