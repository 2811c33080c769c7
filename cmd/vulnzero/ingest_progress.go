package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/scan"
)

// progressMinSize is the report size from which ingest shows a progress
// line: smaller files are read before anyone would look at it.
const progressMinSize = 8 << 20

// progressEvery is how often the progress line is redrawn.
const progressEvery = 250 * time.Millisecond

// reportFile is an opened report that counts what the parser has read of
// it and the findings it has yielded, for the progress line.
type reportFile struct {
	f        *os.File
	name     string
	size     int64
	read     atomic.Int64
	findings atomic.Int64
}

func (r *reportFile) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.read.Add(int64(n))
	return n, err
}

func (r *reportFile) Close() error { return r.f.Close() }

// openReport opens a report as scan.Open does (format detected by content
// unless given; an empty file is an empty report), reading it through a
// counter so that progress can be shown.
func openReport(path string, format scan.Format, opts scan.Options) (scan.Format, iter.Seq2[vulnzero.Finding, error], *reportFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, nil, fmt.Errorf("open report: %w", err)
	}
	rf := &reportFile{f: f, name: path}
	if fi, err := f.Stat(); err == nil {
		rf.size = fi.Size()
	}
	br := bufio.NewReaderSize(rf, 64<<10)
	if format == "" {
		head, err := br.Peek(scan.HeadSize)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			f.Close()
			return "", nil, nil, fmt.Errorf("open report %s: read head: %w", path, err)
		}
		format, err = scan.Detect(head)
		if errors.Is(err, scan.ErrEmpty) {
			return "", func(func(vulnzero.Finding, error) bool) {}, rf, nil
		}
		if err != nil {
			f.Close()
			return "", nil, nil, fmt.Errorf("open report %s: %w", path, err)
		}
	} else if !slices.Contains(scan.Formats(), format) {
		f.Close()
		return "", nil, nil, fmt.Errorf("open report %s: unknown format %q (known: %v): %w", path, format, scan.Formats(), vulnzero.ErrInvalid)
	}
	seq := scan.Parse(path, br, format, opts)
	return format, func(yield func(vulnzero.Finding, error) bool) {
		for fd, err := range seq {
			if err == nil {
				rf.findings.Add(1)
			}
			if !yield(fd, err) {
				return
			}
		}
	}, rf, nil
}

// isTerminal reports whether w is a terminal: a progress line is for a
// person watching, and would litter a pipe or a log file.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// showProgress draws the progress of the import of r on w until the
// returned stop is called, which clears the line. It draws nothing (and
// stop does nothing) when w is not a terminal or the report is small.
func (r *reportFile) showProgress(w io.Writer) (stop func()) {
	if w == nil || r.size < progressMinSize || !isTerminal(w) {
		return func() {}
	}
	return r.drawProgress(w, time.Now)
}

// drawProgress redraws the line every progressEvery until stop.
func (r *reportFile) drawProgress(w io.Writer, now func() time.Time) (stop func()) {
	start := now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-t.C:
				fmt.Fprint(w, "\r\x1b[K"+r.progressLine(now().Sub(start), 80))
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// progressLine is one line, at most width columns: a bar of the bytes
// read, the findings so far and the read rate. Once the whole file is read
// the store is still merging it: the line says so.
func (r *reportFile) progressLine(elapsed time.Duration, width int) string {
	read, size := r.read.Load(), r.size
	frac := 1.0
	if size > 0 {
		frac = min(float64(read)/float64(size), 1)
	}
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(read) / 1e6 / s
	}
	state := fmt.Sprintf("%3.0f%% %s/%s MB %s findings %.0f MB/s", frac*100, mb(read), mb(size), count(r.findings.Load()), rate)
	if read >= size {
		state = fmt.Sprintf("100%% %s findings read, storing…", count(r.findings.Load()))
	}
	name := r.name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	barWidth := width - len([]rune(state)) - len([]rune(name)) - 5
	if barWidth > 40 {
		barWidth = 40
	}
	if barWidth < 10 {
		return truncate(name+" "+state, width)
	}
	filled := int(frac * float64(barWidth))
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", barWidth-filled)
	if filled > 0 && filled < barWidth {
		bar = strings.Repeat("=", filled-1) + ">" + strings.Repeat(" ", barWidth-filled)
	}
	return truncate(name+" ["+bar+"] "+state, width)
}

func mb(n int64) string { return fmt.Sprintf("%.1f", float64(n)/1e6) }

// count writes n with thousands separators: 1,234,567.
func count(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func truncate(s string, width int) string {
	if r := []rune(s); len(r) > width {
		return string(r[:width])
	}
	return s
}
