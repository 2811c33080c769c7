package scan

import (
	"bufio"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"os"

	"vulnzero.dev/vulnzero"
)

// spoolInMemory is how many findings a spool keeps in memory before it
// moves to a temporary file.
const spoolInMemory = 4096

// findingSpool holds findings that cannot be emitted yet because the part
// of the report that names their host comes after them: Grype writes
// "matches" before "source" and "distro", and a key-sorted OSV report has
// a result's "packages" before its "source". A few thousand findings stay
// in memory; beyond that they go to an unlinked temporary file, so memory
// stays flat whatever the size of the report.
type findingSpool struct {
	mem  []vulnzero.Finding
	file *os.File
	bw   *bufio.Writer
	enc  *gob.Encoder
	n    int // findings in the file
}

func (s *findingSpool) len() int { return len(s.mem) + s.n }

func (s *findingSpool) add(f vulnzero.Finding) error {
	if s.file == nil && len(s.mem) < spoolInMemory {
		s.mem = append(s.mem, f)
		return nil
	}
	if s.file == nil {
		file, err := os.CreateTemp("", "vulnzero-spool-*")
		if err != nil {
			return fmt.Errorf("spool findings: %w", err)
		}
		// Unlinked at once: the file goes away with the process, whatever
		// happens to the parse.
		os.Remove(file.Name())
		s.file, s.bw = file, bufio.NewWriterSize(file, 256<<10)
		s.enc = gob.NewEncoder(s.bw)
	}
	if err := s.enc.Encode(&f); err != nil {
		return fmt.Errorf("spool findings: %w", err)
	}
	s.n++
	return nil
}

// drain calls fn with each finding in the order added, then empties the
// spool. fn may change the finding it is given.
func (s *findingSpool) drain(fn func(f *vulnzero.Finding) error) error {
	defer s.close()
	for i := range s.mem {
		if err := fn(&s.mem[i]); err != nil {
			return err
		}
	}
	if s.file == nil {
		return nil
	}
	if err := s.bw.Flush(); err != nil {
		return fmt.Errorf("spool findings: %w", err)
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool findings: %w", err)
	}
	dec := gob.NewDecoder(bufio.NewReaderSize(s.file, 256<<10))
	for range s.n {
		var f vulnzero.Finding
		if err := dec.Decode(&f); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read spooled findings: %w", err)
		}
		if err := fn(&f); err != nil {
			return err
		}
	}
	return nil
}

// close drops what the spool holds; calling it again is a no-op.
func (s *findingSpool) close() {
	s.mem = nil
	if s.file != nil {
		s.file.Close()
		s.file, s.bw, s.enc, s.n = nil, nil, nil, 0
	}
}
