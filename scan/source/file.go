package source

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/scan"
)

// Names inside a drop directory.
const (
	// DoneDir is where imported files are moved.
	DoneDir = "done"
	// ErrorSuffix names the report written beside a file that failed:
	// NAME.error holds the time and the error (file, position, reason).
	ErrorSuffix = ".error"
)

// dropped is a file waiting in the drop directory.
type dropped struct {
	name string
	mod  time.Time
}

// runFiles imports every settled file in the drop directory, oldest first
// (so a newer scan of a host is applied after an older one), each in its
// own transaction. A file that imports moves to done/; one that fails stays
// with NAME.error beside it and the run reports it, but the other files
// still import.
func (s *Source) runFiles(ctx context.Context, hosts *hostMatch) (Result, error) {
	files, err := s.pending()
	if err != nil {
		return Result{}, fmt.Errorf("run %s: %w", s.cfg.Name, err)
	}
	var res Result
	var errs []error
	for _, d := range files {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		path := filepath.Join(s.cfg.Path, d.name)
		ir, err := s.importFile(ctx, path, hosts)
		if err != nil && ctx.Err() != nil {
			// Stopped, not bad: no report, so the next run tries it again.
			errs = append(errs, err)
			break
		}
		if err != nil {
			res.Failed = append(res.Failed, d.name)
			errs = append(errs, err)
			s.log.Error("dropped file not imported; left in place", "file", path, "err", err)
			if werr := writeErrorReport(path, s.now(), err); werr != nil {
				errs = append(errs, werr)
			}
			continue
		}
		res.add(ir)
		moved, err := moveDone(s.cfg.Path, d.name, s.now())
		if err != nil {
			// Imported but not moved: the next run imports it again, which
			// is harmless (same keys, same complete scan).
			errs = append(errs, fmt.Errorf("imported %s but could not move it to %s: %w", path, DoneDir, err))
			continue
		}
		_ = os.Remove(path + ErrorSuffix)
		s.log.Info("imported dropped file", "file", path, "moved_to", moved, "read", ir.Read, "new", ir.New, "fixed", ir.Fixed)
	}
	if err := errors.Join(errs...); err != nil {
		if len(res.Failed) == 0 {
			return res, fmt.Errorf("run %s: %w", s.cfg.Name, err)
		}
		return res, fmt.Errorf("run %s: %d of %d files failed: %w", s.cfg.Name, len(res.Failed), len(files), err)
	}
	return res, nil
}

// pending lists the files to import: regular, not hidden, not a partial
// download (.part, .tmp) or an error report, unmodified for Settle, and not
// already reported bad and unchanged since (its NAME.error is newer).
func (s *Source) pending() ([]dropped, error) {
	entries, err := os.ReadDir(s.cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("read drop directory: %w", err)
	}
	reports := map[string]time.Time{}
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ErrorSuffix); ok {
			if fi, err := e.Info(); err == nil {
				reports[name] = fi.ModTime()
			}
		}
	}
	now := s.now()
	var out []dropped
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ErrorSuffix) ||
			strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".tmp") {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // moved away meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", name, err)
		}
		if now.Sub(fi.ModTime()) < s.cfg.Settle {
			continue // still being written, perhaps
		}
		if rep, ok := reports[name]; ok && !rep.Before(fi.ModTime()) {
			continue // reported bad and not changed since
		}
		out = append(out, dropped{name: name, mod: fi.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].mod.Equal(out[j].mod) {
			return out[i].mod.Before(out[j].mod)
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// importFile imports one report in one transaction.
func (s *Source) importFile(ctx context.Context, path string, hosts *hostMatch) (vulnzero.ImportResult, error) {
	now := s.now().UTC()
	f, err := os.Open(path)
	if err != nil {
		return vulnzero.ImportResult{}, fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	format := scan.Format(s.cfg.Format)
	if format == "" {
		head := make([]byte, scan.HeadSize)
		n, _ := f.ReadAt(head, 0)
		format, err = scan.Detect(head[:n])
		if errors.Is(err, scan.ErrEmpty) {
			format = ""
		} else if err != nil {
			return vulnzero.ImportResult{}, fmt.Errorf("import %s: %w", path, err)
		}
	}
	opts := scan.Options{Source: s.cfg.Name, Now: now}
	var findings = ParseCovered(path, f, format, opts)
	if format == "" { // empty report: nothing to read, an import of 0 findings
		findings = func(func(vulnzero.Finding, error) bool) {}
	}
	imp := vulnzero.Import{Source: s.cfg.Name, Scanner: string(format), File: path, Complete: !s.cfg.Partial, At: now}
	ir, err := s.deps.Store.ImportFindings(ctx, imp, hosts.apply(findings))
	if err != nil {
		return vulnzero.ImportResult{}, fmt.Errorf("import %s: %w", path, err)
	}
	return ir, nil
}

// writeErrorReport leaves NAME.error beside a file that did not import.
func writeErrorReport(path string, now time.Time, cause error) error {
	body := fmt.Sprintf("%s\n%s\n", now.UTC().Format(time.RFC3339), cause)
	if err := os.WriteFile(path+ErrorSuffix, []byte(body), 0o600); err != nil {
		return fmt.Errorf("write error report for %s: %w", path, err)
	}
	return nil
}

// moveDone moves an imported file into dir/done, keeping an earlier file of
// the same name by adding the import time to the new one's name.
func moveDone(dir, name string, now time.Time) (string, error) {
	done := filepath.Join(dir, DoneDir)
	if err := os.MkdirAll(done, 0o700); err != nil {
		return "", err
	}
	dst := filepath.Join(done, name)
	if _, err := os.Lstat(dst); err == nil {
		ext := filepath.Ext(name)
		dst = filepath.Join(done, strings.TrimSuffix(name, ext)+"."+now.UTC().Format("20060102T150405.000000000Z")+ext)
	}
	if err := os.Rename(filepath.Join(dir, name), dst); err != nil {
		return "", err
	}
	return dst, nil
}
