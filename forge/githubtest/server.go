package githubtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// App is a GitHub App the server knows: JWTs signed with the private key
// matching PublicKey buy tokens for InstallationID.
type App struct {
	ID             int64
	Slug           string // "vulnzero" when empty
	InstallationID int64
	PublicKey      *rsa.PublicKey
}

// Options configure a Server. Zero values get the defaults in brackets.
type Options struct {
	Owner, Repo   string // ["vulnzero", "remediation"]
	DefaultBranch string // ["main"]
	// Files seed the default branch with one commit (an empty README when
	// nil).
	Files map[string][]byte
	// Token is a personal access token the server accepts for the API and
	// for git; its owner is Login ["vulnzero-bot"].
	Token string
	Login string
	// App, when set, lets a GitHub App authenticate.
	App *App
	// WebhookURL and WebhookSecret: where to deliver signed webhooks; none
	// when the URL is empty (SetWebhook can set them later).
	WebhookURL, WebhookSecret string
	// Now is the server's clock (time.Now): timestamps and rate-limit resets.
	Now func() time.Time
}

// Server is a running GitHub test server. Its methods are safe for
// concurrent use.
type Server struct {
	// URL is the server root (the web and git host).
	URL string
	// APIURL is the REST base URL, ending in /api/v3/.
	APIURL string
	// GitURL is the repository's smart-HTTP clone URL.
	GitURL string
	// BareDir is the bare repository on disk.
	BareDir string

	opts Options
	srv  *httptest.Server
	git  *gitRepo
	hook *deliverer

	mu         sync.Mutex
	pulls      []*pull // PR n is pulls[n-1]
	nextID     int64
	comments   map[int][]*comment
	labels     map[string]int64 // name → id
	statuses   map[string][]*status
	checkRuns  []*checkRun
	instTokens map[string]time.Time // installation token → expiry
	limits     []Limit
	requests   int
	rate       rateWindow
}

// New starts a server with a fresh repository; it stops when t ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Start(opts, t.TempDir())
	if err != nil {
		t.Fatalf("githubtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server whose repository lives under dir. Close stops it.
func Start(opts Options, dir string) (*Server, error) {
	if opts.Owner == "" {
		opts.Owner = "vulnzero"
	}
	if opts.Repo == "" {
		opts.Repo = "remediation"
	}
	if opts.DefaultBranch == "" {
		opts.DefaultBranch = "main"
	}
	if opts.Login == "" {
		opts.Login = "vulnzero-bot"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.App != nil && opts.App.Slug == "" {
		opts.App.Slug = "vulnzero"
	}
	files := opts.Files
	if files == nil {
		files = map[string][]byte{"README.md": []byte("# remediation\n")}
	}
	bare := filepath.Join(dir, opts.Owner, opts.Repo+".git")
	if err := seed(bare, filepath.Join(dir, "seed"), opts.DefaultBranch, files); err != nil {
		return nil, err
	}
	g, err := newGitRepo(dir, bare)
	if err != nil {
		return nil, err
	}
	s := &Server{
		BareDir: bare, opts: opts, git: g, nextID: 1000,
		comments: map[int][]*comment{}, labels: map[string]int64{}, statuses: map[string][]*status{},
		instTokens: map[string]time.Time{},
	}
	s.hook = newDeliverer(opts.WebhookURL, opts.WebhookSecret)
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL
	s.APIURL = s.URL + "/api/v3/"
	s.GitURL = s.URL + "/" + opts.Owner + "/" + opts.Repo + ".git"
	return s, nil
}

// Close stops delivering webhooks and serving.
func (s *Server) Close() {
	s.hook.close()
	s.srv.Close()
}

// SetWebhook points webhook deliveries at url, signed with secret.
func (s *Server) SetWebhook(url, secret string) { s.hook.set(url, secret) }

// Deliveries returns the webhooks delivered so far, after waiting for the
// ones queued to be sent.
func (s *Server) Deliveries() []Delivery {
	s.hook.flush()
	return s.hook.list()
}

// Requests is how many API requests the server has answered.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Server) now() time.Time { return s.opts.Now().UTC().Truncate(time.Second) }

func (s *Server) id() int64 {
	s.nextID++
	return s.nextID
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// routes is the API under /api/v3/ and git smart HTTP at /{owner}/{repo}.git.
func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	repo := "/api/v3/repos/{owner}/{repo}"
	api.HandleFunc("GET "+repo, s.repoOnly(s.getRepo))
	api.HandleFunc("GET "+repo+"/git/ref/{ref...}", s.repoOnly(s.getRef))
	api.HandleFunc("GET "+repo+"/pulls", s.repoOnly(s.listPulls))
	api.HandleFunc("POST "+repo+"/pulls", s.repoOnly(s.createPull))
	api.HandleFunc("GET "+repo+"/pulls/{n}", s.repoOnly(s.getPull))
	api.HandleFunc("PATCH "+repo+"/pulls/{n}", s.repoOnly(s.updatePull))
	api.HandleFunc("PUT "+repo+"/pulls/{n}/merge", s.repoOnly(s.mergePull))
	api.HandleFunc("GET "+repo+"/pulls/{n}/merge", s.repoOnly(s.isMerged))
	api.HandleFunc("POST "+repo+"/issues/{n}/labels", s.repoOnly(s.addLabels))
	api.HandleFunc("POST "+repo+"/issues/{n}/comments", s.repoOnly(s.createComment))
	api.HandleFunc("GET "+repo+"/issues/{n}/comments", s.repoOnly(s.listComments))
	api.HandleFunc("POST "+repo+"/statuses/{sha}", s.repoOnly(s.createStatus))
	api.HandleFunc("GET "+repo+"/commits/{ref}/status", s.repoOnly(s.combinedStatus))
	api.HandleFunc("GET "+repo+"/commits/{ref}/statuses", s.repoOnly(s.listStatuses))
	api.HandleFunc("POST "+repo+"/check-runs", s.repoOnly(s.createCheckRun))
	api.HandleFunc("PATCH "+repo+"/check-runs/{id}", s.repoOnly(s.updateCheckRun))
	api.HandleFunc("GET "+repo+"/commits/{ref}/check-runs", s.repoOnly(s.listCheckRuns))

	gitPrefix := "/" + s.opts.Owner + "/" + s.opts.Repo + ".git/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, gitPrefix):
			s.serveGit(w, r)
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/api/v3/app/installations/"):
			s.serveAPI(w, r, nil, s.accessToken)
		case strings.HasPrefix(r.URL.Path, "/api/v3/"):
			s.serveAPI(w, r, api, nil)
		default:
			http.NotFound(w, r)
		}
	})
}

// caller is who an API request authenticated as.
type caller struct {
	login string
	app   bool // an installation token
}

type callerKey struct{}

func callerOf(r *http.Request) caller {
	c, _ := r.Context().Value(callerKey{}).(caller)
	return c
}

// serveAPI counts the request, applies injected rate limits, sets the
// rate-limit headers GitHub sends, authenticates and dispatches.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request, mux *http.ServeMux, h http.HandlerFunc) {
	s.mu.Lock()
	s.requests++
	now := s.opts.Now()
	var lim *Limit
	if len(s.limits) > 0 {
		l := s.limits[0]
		s.limits = s.limits[1:]
		lim = &l
	}
	remaining, reset := s.rate.take(now)
	s.mu.Unlock()

	hdr := w.Header()
	hdr.Set("X-GitHub-Media-Type", "github.v3; format=json")
	hdr.Set("X-GitHub-Request-Id", strings.ToUpper(randomHex(8)))
	hdr.Set("X-RateLimit-Limit", strconv.Itoa(rateLimit))
	hdr.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	hdr.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	hdr.Set("X-RateLimit-Used", strconv.Itoa(rateLimit-remaining))
	hdr.Set("X-RateLimit-Resource", "core")
	if lim != nil {
		lim.write(w, now)
		return
	}
	if h != nil { // the token exchange authenticates with a JWT itself
		h(w, r)
		return
	}
	c, ok := s.authenticate(r.Header.Get("Authorization"))
	if !ok {
		writeError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
}

// authenticate accepts "token X" and "Bearer X" with the PAT or a live
// installation token.
func (s *Server) authenticate(h string) (caller, bool) {
	_, tok, ok := strings.Cut(h, " ")
	if !ok || tok == "" {
		return caller{}, false
	}
	if s.opts.Token != "" && tok == s.opts.Token {
		return caller{login: s.opts.Login}, true
	}
	s.mu.Lock()
	exp, found := s.instTokens[tok]
	s.mu.Unlock()
	if found && s.opts.Now().Before(exp) && s.opts.App != nil {
		return caller{login: s.opts.App.Slug + "[bot]", app: true}, true
	}
	return caller{}, false
}

// accessToken is POST /app/installations/{id}/access_tokens: a JWT signed
// by the App buys an installation token valid for an hour.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	app := s.opts.App
	if app == nil {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	want := fmt.Sprintf("/api/v3/app/installations/%d/access_tokens", app.InstallationID)
	if r.URL.Path != want {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	claims := &jwt.RegisteredClaims{}
	// GitHub checks iat/exp against its own clock, with leeway for drift.
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithoutClaimsValidation())
	_, err := parser.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return app.PublicKey, nil })
	if err != nil {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
		return
	}
	if claims.Issuer != strconv.FormatInt(app.ID, 10) || claims.ExpiresAt == nil || claims.IssuedAt == nil ||
		claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute {
		writeError(w, http.StatusUnauthorized, "'Issuer' claim ('iss') must be the App id and 'Expiration time' at most 10 minutes after 'Issued at'")
		return
	}
	// The JWT is signed with the wall clock (ghinstallation uses time.Now),
	// so it is checked against the wall clock, not the server's Now.
	if claims.ExpiresAt.Before(time.Now()) {
		writeError(w, http.StatusUnauthorized, "'Expiration time' claim ('exp') is too far in the past")
		return
	}
	now := s.opts.Now()
	tok := "ghs_" + randomHex(18)
	exp := now.Add(time.Hour).UTC().Truncate(time.Second)
	s.mu.Lock()
	s.instTokens[tok] = exp
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{
		"token": tok, "expires_at": exp.Format(time.RFC3339),
		"permissions":          map[string]string{"checks": "write", "contents": "write", "pull_requests": "write", "statuses": "write", "issues": "write"},
		"repository_selection": "selected",
	})
}

// repoOnly answers 404 for any repository but the one served.
func (s *Server) repoOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("owner") != s.opts.Owner || r.PathValue("repo") != s.opts.Repo {
			writeError(w, http.StatusNotFound, "Not Found")
			return
		}
		h(w, r)
	}
}

const docsURL = "https://docs.github.com/rest"

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"message": msg, "documentation_url": docsURL})
}

// writeValidation is GitHub's 422 shape.
func writeValidation(w http.ResponseWriter, resource, field, code, msg string) {
	e := map[string]any{"resource": resource, "code": code}
	if field != "" {
		e["field"] = field
	}
	if msg != "" {
		e["message"] = msg
	}
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message": "Validation Failed", "errors": []any{e}, "documentation_url": docsURL,
	})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil && len(bytes.TrimSpace(body)) == 0 {
		return true // GitHub takes no body as no parameters
	}
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return false
	}
	return true
}

// page cuts a list for ?page=&per_page= and sets GitHub's Link header.
func page[T any](w http.ResponseWriter, r *http.Request, items []T) []T {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	n, _ := strconv.Atoi(q.Get("page"))
	n = max(n, 1)
	last := max((len(items)+per-1)/per, 1)
	link := func(p int, rel string) string {
		u := *r.URL
		v := u.Query()
		v.Set("page", strconv.Itoa(p))
		v.Set("per_page", strconv.Itoa(per))
		u.RawQuery = v.Encode()
		return fmt.Sprintf(`<http://%s%s>; rel="%s"`, r.Host, u.String(), rel)
	}
	var links []string
	if n < last {
		links = append(links, link(n+1, "next"), link(last, "last"))
	}
	if n > 1 {
		links = append(links, link(1, "first"), link(n-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from := min((n-1)*per, len(items))
	to := min(from+per, len(items))
	return items[from:to]
}
