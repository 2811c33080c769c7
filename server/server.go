// Package server is VulnZero's HTTP surface: /healthz, /metrics (Prometheus,
// on the registry main builds), a read-only JSON API over the store, and a
// minimal status page. Webhooks and the live dashboard build on this mux.
package server

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/store"
)

// Config wires the server.
type Config struct {
	Store    store.Store
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Version is shown on the status page and /healthz.
	Version string
}

// Server serves VulnZero's HTTP endpoints.
type Server struct {
	cfg  Config
	mux  *http.ServeMux
	page *template.Template
}

//go:embed templates/*.html
var templates embed.FS

// New builds the server's routes.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: a store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	page, err := template.New("status.html").Funcs(template.FuncMap{
		"ago": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return time.Since(t).Round(time.Second).String() + " ago"
		},
	}).ParseFS(templates, "templates/status.html")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), page: page}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /api/v1/findings", s.findings)
	s.mux.HandleFunc("GET /api/v1/pulls", s.pulls)
	s.mux.HandleFunc("GET /api/v1/rollouts", s.rollouts)
	s.mux.HandleFunc("GET /api/v1/rollouts/{id}", s.rollout)
	s.mux.HandleFunc("GET /api/v1/ledger", s.ledger)
	s.mux.HandleFunc("GET /transcripts/{id}", s.transcript)
	s.mux.HandleFunc("GET /{$}", s.status)
	return s, nil
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Handle adds a route (e.g. webhooks wired by main).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ListenAndServe serves on addr until ctx ends, then shuts down gracefully.
// ready, when not nil, receives the bound address (useful with port 0).
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(ln.Addr())
	}
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shut)
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.cfg.Store.ListQuarantined(ctx); err != nil {
		s.cfg.Logger.Warn("healthz: store unavailable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "store unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": s.cfg.Version})
}

func (s *Server) findings(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	fs, err := s.cfg.Store.ListFindings(r.Context(), store.FindingFilter{
		Host: q.Get("host"), Source: q.Get("source"), Status: vulnzero.FindingStatus(q.Get("status")),
	})
	s.reply(w, fs, err)
}

func (s *Server) pulls(w http.ResponseWriter, r *http.Request) {
	var states []vulnzero.PRState
	if st := r.URL.Query().Get("state"); st != "" {
		states = append(states, vulnzero.PRState(st))
	}
	prs, err := s.cfg.Store.ListPRs(r.Context(), states...)
	s.reply(w, prs, err)
}

func (s *Server) rollouts(w http.ResponseWriter, r *http.Request) {
	rs, err := s.cfg.Store.ListRollouts(r.Context(), store.RolloutFilter{PatchID: r.URL.Query().Get("patch")})
	s.reply(w, rs, err)
}

// rolloutDetail is a rollout with its host steps.
type rolloutDetail struct {
	vulnzero.Rollout
	Steps []vulnzero.HostStep `json:"steps"`
}

func (s *Server) rollout(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "rollout id must be a number"})
		return
	}
	ro, err := s.cfg.Store.GetRollout(r.Context(), id)
	if err != nil {
		s.reply(w, nil, err)
		return
	}
	steps, err := s.cfg.Store.ListHostSteps(r.Context(), id)
	s.reply(w, rolloutDetail{Rollout: ro, Steps: steps}, err)
}

func (s *Server) ledger(w http.ResponseWriter, r *http.Request) {
	l, err := s.cfg.Store.ListLedger(r.Context())
	s.reply(w, l, err)
}

func (s *Server) transcript(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "transcript id must be a number", http.StatusBadRequest)
		return
	}
	t, err := s.cfg.Store.GetTranscript(r.Context(), id)
	if errors.Is(err, vulnzero.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.cfg.Logger.Error("transcript", "id", id, "err", err)
		http.Error(w, "store error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(t.Body))
}

// statusData is what the status page shows.
type statusData struct {
	Version    string
	Open       int
	Fixed      int
	PRs        []vulnzero.PullRequest
	Rollouts   []vulnzero.Rollout
	Ledger     []vulnzero.LedgerEntry
	Quarantine []vulnzero.Quarantine
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var d statusData
	d.Version = s.cfg.Version
	fs, err := s.cfg.Store.ListFindings(ctx, store.FindingFilter{})
	if err == nil {
		for _, f := range fs {
			if f.Status == vulnzero.FindingOpen {
				d.Open++
			} else {
				d.Fixed++
			}
		}
		d.PRs, err = s.cfg.Store.ListPRs(ctx)
	}
	if err == nil {
		d.Rollouts, err = s.cfg.Store.ListRollouts(ctx, store.RolloutFilter{})
	}
	if err == nil {
		d.Ledger, err = s.cfg.Store.ListLedger(ctx)
	}
	if err == nil {
		d.Quarantine, err = s.cfg.Store.ListQuarantined(ctx)
	}
	if err != nil {
		s.cfg.Logger.Error("status page", "err", err)
		http.Error(w, "store error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.page.Execute(w, d); err != nil {
		s.cfg.Logger.Error("status page render", "err", err)
	}
}

func (s *Server) reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, vulnzero.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case err != nil:
		s.cfg.Logger.Error("api", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "store error"})
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
