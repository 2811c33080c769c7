package source

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
)

// FeedsConfig names the exploitation feeds that enrich scoring: FIRST's
// EPSS scores and CISA's Known Exploited Vulnerabilities catalog. Each is a
// local path or an http(s) URL; empty leaves that feed out (its score part
// is zero and says so).
type FeedsConfig struct {
	// EPSS is the EPSS CSV (e.g. https://epss.cyentia.com/epss_scores-current.csv.gz),
	// plain or gzipped: a "#model_version:…" comment line, then
	// cve,epss,percentile.
	EPSS string `yaml:"epss"`
	// KEV is CISA's known_exploited_vulnerabilities.json.
	KEV string `yaml:"kev"`
	// Timeout bounds each download; Retries as for sources.
	Timeout time.Duration `yaml:"timeout"`
	Retries int           `yaml:"retries"`
}

// WithDefaults fills zero fields.
func (c FeedsConfig) WithDefaults() FeedsConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	return c
}

// Validate checks the config (after WithDefaults).
func (c FeedsConfig) Validate() error {
	var errs []error
	for _, f := range []struct{ field, v string }{{"epss", c.EPSS}, {"kev", c.KEV}} {
		if strings.Contains(f.v, "://") && !strings.HasPrefix(f.v, "http://") && !strings.HasPrefix(f.v, "https://") {
			errs = append(errs, fmt.Errorf("feeds.%s: %q is neither a path nor an http(s) URL", f.field, RedactURL(f.v)))
		}
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("feeds.timeout: must be positive, got %s", c.Timeout))
	}
	if c.Retries < 0 {
		errs = append(errs, fmt.Errorf("feeds.retries: must not be negative, got %d", c.Retries))
	}
	return errors.Join(errs...)
}

// Feeds are the loaded exploitation feeds, in the shape of
// remedy.ScoreInput's EPSS and KEV fields.
type Feeds struct {
	EPSS map[string]float64 // CVE → probability of exploitation, 0–1
	KEV  map[string]bool    // CVE → listed in CISA KEV
}

// FeedDeps are what LoadFeeds needs besides the config.
type FeedDeps struct {
	HTTPClient *http.Client // nil: a default client
	Logger     *slog.Logger
	Sleep      func(ctx context.Context, d time.Duration) error
}

// LoadFeeds reads the configured feeds. A feed that is configured but does
// not load is an error naming it: scoring silently without KEV would rank
// an exploited vulnerability low.
func LoadFeeds(ctx context.Context, cfg FeedsConfig, deps FeedDeps) (Feeds, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Feeds{}, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.HTTPClient == nil {
		deps.HTTPClient = &http.Client{}
	}
	if deps.Sleep == nil {
		deps.Sleep = sleepCtx
	}
	c := &client{
		http: deps.HTTPClient, source: "feeds", timeout: cfg.Timeout, retries: cfg.Retries,
		minBackoff: DefaultMinBackoff, maxBackoff: DefaultMaxBackoff, maxWait: DefaultMaxWait,
		sleep: deps.Sleep, now: time.Now, rand: randN, log: deps.Logger,
	}
	var out Feeds
	if cfg.EPSS != "" {
		err := withFeed(ctx, c, cfg.EPSS, func(name string, r io.Reader) (err error) {
			out.EPSS, err = ReadEPSS(name, r)
			return err
		})
		if err != nil {
			return Feeds{}, fmt.Errorf("load EPSS feed: %w", err)
		}
		deps.Logger.Info("EPSS feed loaded", "from", RedactURL(cfg.EPSS), "cves", len(out.EPSS))
	}
	if cfg.KEV != "" {
		err := withFeed(ctx, c, cfg.KEV, func(name string, r io.Reader) (err error) {
			out.KEV, err = ReadKEV(name, r)
			return err
		})
		if err != nil {
			return Feeds{}, fmt.Errorf("load KEV feed: %w", err)
		}
		deps.Logger.Info("KEV feed loaded", "from", RedactURL(cfg.KEV), "cves", len(out.KEV))
	}
	return out, nil
}

// withFeed opens a feed (a path, or a URL downloaded to a temporary file so
// a retry starts clean), gunzips it if it is gzipped, and hands it to read.
func withFeed(ctx context.Context, c *client, loc string, read func(name string, r io.Reader) error) error {
	name := loc
	var f *os.File
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		name = RedactURL(loc)
		dir, err := os.MkdirTemp("", "vulnzero-feed-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "feed")
		if _, err := c.spool(ctx, request{method: http.MethodGet, url: loc}, path); err != nil {
			return err
		}
		if f, err = os.Open(path); err != nil {
			return err
		}
	} else {
		var err error
		if f, err = os.Open(loc); err != nil {
			return err
		}
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer func() { _ = zr.Close() }()
		r = zr
	}
	return read(name, r)
}

// ReadEPSS reads FIRST's EPSS CSV: optional "#…" comment lines (the model
// version and score date), a header naming at least the cve and epss
// columns, then one row per CVE. Errors name the file and line.
func ReadEPSS(name string, r io.Reader) (map[string]float64, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, &vulnzero.PositionError{File: name, Line: 1, Err: errors.New("no header: want cve,epss,percentile")}
	}
	if err != nil {
		return nil, csvPosition(name, err)
	}
	cveCol, epssCol := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF"))) {
		case "cve":
			cveCol = i
		case "epss":
			epssCol = i
		}
	}
	if cveCol < 0 || epssCol < 0 {
		line, _ := cr.FieldPos(0)
		return nil, &vulnzero.PositionError{File: name, Line: line, Err: fmt.Errorf("header %q lacks a cve or an epss column", strings.Join(header, ","))}
	}
	out := map[string]float64{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, csvPosition(name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) <= max(cveCol, epssCol) {
			if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
				continue
			}
			return nil, &vulnzero.PositionError{File: name, Line: line, Err: fmt.Errorf("%d fields, want at least %d", len(rec), max(cveCol, epssCol)+1)}
		}
		cve := strings.ToUpper(strings.TrimSpace(rec[cveCol]))
		if !strings.HasPrefix(cve, "CVE-") {
			return nil, &vulnzero.PositionError{File: name, Line: line, Err: fmt.Errorf("%q is not a CVE id", rec[cveCol])}
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(rec[epssCol]), 64)
		if err != nil || p < 0 || p > 1 {
			return nil, &vulnzero.PositionError{File: name, Line: line, Err: fmt.Errorf("epss %q is not a probability between 0 and 1", rec[epssCol])}
		}
		out[cve] = p
	}
}

func csvPosition(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &vulnzero.PositionError{File: name, Line: pe.Line, Column: pe.Column, Err: pe.Err}
	}
	return fmt.Errorf("%s: %w", name, err)
}

// ReadKEV reads CISA's KEV catalog ({"vulnerabilities":[{"cveID":…},…]})
// as a stream: one entry is decoded at a time. Errors name the file and the
// byte offset or the entry.
func ReadKEV(name string, r io.Reader) (map[string]bool, error) {
	dec := json.NewDecoder(r)
	bad := func(path string, err error) error {
		return &vulnzero.PositionError{File: name, Path: fmt.Sprintf("%s at byte %d", path, dec.InputOffset()), Err: err}
	}
	if tok, err := dec.Token(); err != nil {
		return nil, bad("$", err)
	} else if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, bad("$", fmt.Errorf("want a JSON object, got %v", tok))
	}
	out := map[string]bool{}
	found := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad("$", err)
		}
		key, _ := tok.(string)
		if key != "vulnerabilities" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, bad("$."+key, err)
			}
			continue
		}
		found = true
		if tok, err := dec.Token(); err != nil {
			return nil, bad("$.vulnerabilities", err)
		} else if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, bad("$.vulnerabilities", fmt.Errorf("want an array, got %v", tok))
		}
		for i := 0; dec.More(); i++ {
			var v struct {
				CveID string `json:"cveID"`
			}
			path := fmt.Sprintf("$.vulnerabilities[%d]", i)
			if err := dec.Decode(&v); err != nil {
				return nil, bad(path, err)
			}
			cve := strings.ToUpper(strings.TrimSpace(v.CveID))
			if !strings.HasPrefix(cve, "CVE-") {
				return nil, bad(path, fmt.Errorf("cveID %q is not a CVE id", v.CveID))
			}
			out[cve] = true
		}
		if _, err := dec.Token(); err != nil {
			return nil, bad("$.vulnerabilities", err)
		}
	}
	if !found {
		return nil, bad("$", errors.New(`no "vulnerabilities" array: not a KEV catalog`))
	}
	return out, nil
}
