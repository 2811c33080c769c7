package source

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/scan"
	"vulnzero.dev/vulnzero/store"
)

// Importer stores one import in one transaction; store.Store satisfies it.
type Importer interface {
	ImportFindings(ctx context.Context, imp vulnzero.Import, findings iter.Seq2[vulnzero.Finding, error]) (vulnzero.ImportResult, error)
}

// Deps are what a Source needs besides its Config.
type Deps struct {
	Store Importer
	// Getenv resolves secrets named by environment variable; main passes
	// os.Getenv.
	Getenv func(string) string
	// HTTPClient overrides the client built from the config (tests pass the
	// httptest server's). Its Timeout should be zero: each call has its own.
	HTTPClient *http.Client
	// TempDir holds each pull's spooled pages while it runs; empty is
	// os.TempDir().
	TempDir string
	Logger  *slog.Logger
	// Now and Sleep are the clock; nil is the real one. Tests pass a Sleep
	// that records the backoff instead of waiting.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, n) for backoff jitter; nil is math/rand.
	Rand func(n int64) int64
	// Inventory returns the fleet that scanned host names are matched
	// against (by name, FQDN or IP: scan.HostMatcher), read at the start of
	// each run so that hosts added since count. Nil keeps every host as the
	// scanner names it; so does an error, which is logged, not fatal.
	Inventory func(ctx context.Context) (vulnzero.Inventory, error)
}

// Source is one configured source, ready to run.
type Source struct {
	cfg    Config
	deps   Deps
	log    *slog.Logger
	now    func() time.Time
	puller puller // nil for a file source
}

// Result is what one run changed. A file source makes one import per file;
// the counts are summed.
type Result struct {
	Imports []vulnzero.ImportResult
	Read    int
	New     int
	Updated int
	Fixed   int
	Hosts   []string // hosts covered, sorted, once each
	// Failed lists the dropped files that did not import (file source):
	// each stays in the drop directory with NAME.error beside it.
	Failed []string
	// Unmatched lists the hosts the run read that are not in the
	// inventory (Deps.Inventory), sorted, once each. Their findings are
	// stored under the scanner's name for them, never dropped.
	Unmatched []string
}

func (r *Result) add(ir vulnzero.ImportResult) {
	r.Imports = append(r.Imports, ir)
	r.Read += ir.Read
	r.New += ir.New
	r.Updated += ir.Updated
	r.Fixed += ir.Fixed
	for _, h := range ir.Hosts {
		if !slices.Contains(r.Hosts, h) {
			r.Hosts = append(r.Hosts, h)
		}
	}
	slices.Sort(r.Hosts)
}

// New builds a source from its config (defaults applied and validated).
func New(cfg Config, deps Deps) (*Source, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("source %s: no store", cfg.Name)
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Sleep == nil {
		deps.Sleep = sleepCtx
	}
	if deps.Rand == nil {
		deps.Rand = randN
	}
	s := &Source{cfg: cfg, deps: deps, log: deps.Logger.With("source", cfg.Name), now: deps.Now}
	if cfg.Type == TypeFile {
		return s, nil
	}
	hc := deps.HTTPClient
	if hc == nil {
		var err error
		if hc, err = newHTTPClient(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("source %s: %w", cfg.Name, err)
		}
	}
	c := &client{
		http: hc, source: cfg.Name, timeout: cfg.Timeout, retries: cfg.Retries,
		minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff, maxWait: cfg.MaxWait,
		sleep: deps.Sleep, now: deps.Now, rand: deps.Rand, log: s.log,
	}
	switch cfg.Type {
	case TypeWazuhAPI:
		s.puller = &wazuhAPI{src: s, c: c, base: cfg.URL, creds: s.credentials}
	case TypeWazuhIndexer:
		w := &wazuhIndexer{src: s, c: c}
		if cfg.ManagerURL != "" {
			w.manager = &wazuhAPI{src: s, c: c, base: cfg.ManagerURL, creds: s.managerCredentials}
		}
		s.puller = w
	case TypeQualys:
		s.puller = &qualys{src: s, c: c}
	case TypeTenable:
		s.puller = &tenable{src: s, c: c}
	}
	return s, nil
}

// newHTTPClient is the client for a real API: the system roots plus caFile.
func newHTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("caFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("caFile %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

// Name is the configured name.
func (s *Source) Name() string { return s.cfg.Name }

// Config is the configuration with defaults applied.
func (s *Source) Config() Config { return s.cfg }

// Run pulls the source once and imports what it got: an API source as one
// import in one transaction (all pages are downloaded first, so a network
// failure stores nothing and holds no transaction open), a file source as
// one import per dropped file. The run is bounded by MaxRunTime.
func (s *Source) Run(ctx context.Context) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.MaxRunTime)
	defer cancel()
	hosts := s.hostMatch(ctx)
	var res Result
	var err error
	if s.cfg.Type == TypeFile {
		res, err = s.runFiles(ctx, hosts)
	} else if res, err = s.runPull(ctx, hosts); err != nil {
		err = fmt.Errorf("run %s: %w", s.cfg.Name, err)
	}
	res.Unmatched = hosts.sorted()
	if len(res.Unmatched) > 0 {
		s.log.Warn("hosts not in the inventory; findings kept under the scanner's names", "hosts", res.Unmatched)
	}
	return res, err
}

// doc is one downloaded report page, spooled to a file, and how to parse it.
type doc struct {
	name   string // what errors call it: source, call and page
	path   string
	format scan.Format
	host   string // scan.Options.Host: the host a report that does not name one is about
}

// pulled is everything one pull downloaded.
type pulled struct {
	docs []doc
	// hosts the pull covered, reported as covered even when their pages
	// hold no finding (e.g. every Wazuh agent whose list was read).
	hosts []string
	// scanner is recorded as the import's Scanner.
	scanner scan.Format
	// options adjusts the parse options of every doc (Qualys adds its
	// KnowledgeBase). May be nil.
	options func(*scan.Options)
}

// puller downloads one complete pull of an API into dir.
type puller interface {
	// formats lists the scan formats the pull's pages are in, to check
	// that the build parses them before calling the API.
	formats() []scan.Format
	pull(ctx context.Context, dir string) (pulled, error)
}

func (s *Source) runPull(ctx context.Context, hosts *hostMatch) (Result, error) {
	for _, f := range s.puller.formats() {
		if err := requireFormat(f); err != nil {
			return Result{}, err
		}
	}
	dir, err := os.MkdirTemp(s.deps.TempDir, "vulnzero-pull-"+s.cfg.Name+"-")
	if err != nil {
		return Result{}, fmt.Errorf("spool directory: %w", err)
	}
	defer os.RemoveAll(dir)
	started := s.now()
	p, err := s.puller.pull(ctx, dir)
	if err != nil {
		return Result{}, fmt.Errorf("pull: %w", err)
	}
	s.log.Info("pulled", "pages", len(p.docs), "hosts", len(p.hosts), "took", s.now().Sub(started).Round(time.Millisecond))
	now := s.now().UTC()
	imp := vulnzero.Import{Source: s.cfg.Name, Scanner: string(p.scanner), File: RedactURL(s.cfg.URL), Complete: !s.cfg.Partial, At: now}
	ir, err := s.deps.Store.ImportFindings(ctx, imp, hosts.apply(s.findings(p, now)))
	if err != nil {
		return Result{}, fmt.Errorf("import: %w", err)
	}
	var res Result
	res.add(ir)
	return res, nil
}

// findings chains the pages of a pull into one sequence, with a coverage
// marker for every host the pull covered.
func (s *Source) findings(p pulled, now time.Time) iter.Seq2[vulnzero.Finding, error] {
	return func(yield func(vulnzero.Finding, error) bool) {
		for _, h := range p.hosts {
			if !yield(store.CoverageMarker(h), nil) {
				return
			}
		}
		for _, d := range p.docs {
			f, err := os.Open(d.path)
			if err != nil {
				yield(vulnzero.Finding{}, fmt.Errorf("read spooled page %s: %w", d.name, err))
				return
			}
			opts := scan.Options{Source: s.cfg.Name, Now: now, Host: d.host}
			if p.options != nil {
				p.options(&opts)
			}
			stop := false
			for fd, err := range ParseCovered(d.name, f, d.format, opts) {
				if !yield(fd, err) || err != nil {
					stop = true
					break
				}
			}
			f.Close()
			if stop {
				return
			}
		}
	}
}

// ParseCovered is scan.Parse with a coverage marker (store.CoverageMarker)
// before the findings of every host the report covers, including hosts it
// reports clean, so that a complete import closes their findings it no
// longer reports. opts.OnHost, if set, is still called.
func ParseCovered(name string, r io.Reader, format scan.Format, opts scan.Options) iter.Seq2[vulnzero.Finding, error] {
	var covered []string
	next := opts.OnHost
	opts.OnHost = func(h string) {
		covered = append(covered, h)
		if next != nil {
			next(h)
		}
	}
	return WithCoverage(scan.Parse(name, r, format, opts), &covered)
}

// WithCoverage interleaves coverage markers for the hosts a parser reports
// through scan.Options.OnHost (appended to *covered) with its findings.
func WithCoverage(findings iter.Seq2[vulnzero.Finding, error], covered *[]string) iter.Seq2[vulnzero.Finding, error] {
	return func(yield func(vulnzero.Finding, error) bool) {
		flush := func() bool {
			for _, h := range *covered {
				if !yield(store.CoverageMarker(h), nil) {
					return false
				}
			}
			*covered = (*covered)[:0]
			return true
		}
		for f, err := range findings {
			if !flush() || !yield(f, err) {
				return
			}
		}
		flush()
	}
}

// requireFormat fails unless this build parses format.
func requireFormat(f scan.Format) error {
	if slices.Contains(scan.Formats(), f) {
		return nil
	}
	return fmt.Errorf("scan format %q is not available in this build (have %v): %w", f, scan.Formats(), vulnzero.ErrInvalid)
}

// pickFormat returns the first of the candidates this build parses, or an
// error naming the first.
func pickFormat(candidates ...scan.Format) (scan.Format, error) {
	for _, f := range candidates {
		if slices.Contains(scan.Formats(), f) {
			return f, nil
		}
	}
	return "", requireFormat(candidates[0])
}

// spool downloads the answer to req into path (replacing it on a retry)
// and returns its size.
func (c *client) spool(ctx context.Context, req request, path string) (int64, error) {
	var n int64
	err := c.do(ctx, req, func(resp *http.Response) error {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		n, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil && !errors.Is(err, os.ErrClosed) {
			return retryableError{fmt.Errorf("read body after %d bytes: %w", n, err)}
		}
		return err
	})
	return n, err
}

// spoolPath names the n-th spooled page of a kind in dir.
func spoolPath(dir, kind string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("%s-%06d", kind, n))
}
