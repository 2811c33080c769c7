package gitsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"vulnzero.dev/vulnzero"
)

// remoteName is the only remote a Repo has.
const remoteName = "origin"

// DefaultBranch is the branch that holds the desired state when Config.Branch
// is empty.
const DefaultBranch = "main"

// Config says which remote to follow and where to keep the local clone.
type Config struct {
	// URL is the remote: a local bare repository path or an http(s)/ssh URL.
	URL string
	// Dir is the local (bare) clone; created on first Open.
	Dir string
	// Branch holds the desired state; DefaultBranch when empty.
	Branch string
	// Auth authenticates fetch and push; nil for none.
	Auth transport.AuthMethod
	// Author and Email sign the commits VulnZero writes.
	Author, Email string
	// Logger receives fetch and push events; slog.Default() when nil.
	Logger *slog.Logger
	// Now stamps commits; time.Now when nil.
	Now func() time.Time
}

// Validate checks the required fields and fills defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url required"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("dir required"))
	}
	if c.Branch == "" {
		c.Branch = DefaultBranch
	}
	if c.Author == "" {
		c.Author = "VulnZero"
	}
	if c.Email == "" {
		c.Email = "vulnzero@localhost"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("git source config: %w: %w", vulnzero.ErrInvalid, err)
	}
	return nil
}

// Repo is a bare local clone of the remediation repository. Its methods are
// safe for concurrent use; they are serialized, since go-git's object store
// is not meant for concurrent writers.
type Repo struct {
	cfg  Config
	repo *git.Repository
	url  string // the remote URL without credentials, for errors and logs
	log  *slog.Logger

	mu sync.Mutex
}

// Open clones the remote into cfg.Dir if it holds no repository (an empty or
// missing directory), or opens the clone there, and then fetches.
func Open(ctx context.Context, cfg Config) (*Repo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	redacted := RedactURL(cfg.URL)
	repo, err := git.PlainOpen(cfg.Dir)
	switch {
	case errors.Is(err, git.ErrRepositoryNotExists):
		if err := requireEmptyDir(cfg.Dir); err != nil {
			return nil, fmt.Errorf("clone %s into %s: %w", redacted, cfg.Dir, err)
		}
		// A bare init plus a remote is a clone without a checkout; the fetch
		// below brings the objects.
		repo, err = git.PlainInit(cfg.Dir, true)
		if err != nil {
			return nil, fmt.Errorf("clone %s into %s: %w", redacted, cfg.Dir, err)
		}
		if _, err := repo.CreateRemote(remoteConfig(cfg.URL)); err != nil {
			return nil, fmt.Errorf("clone %s into %s: add remote: %w", redacted, cfg.Dir, err)
		}
	case err != nil:
		return nil, fmt.Errorf("open clone %s: %w", cfg.Dir, err)
	default:
		if err := setRemote(repo, cfg.URL); err != nil {
			return nil, fmt.Errorf("open clone %s: %w", cfg.Dir, err)
		}
	}
	r := &Repo{cfg: cfg, repo: repo, url: redacted, log: cfg.Logger.With("remote", redacted)}
	if err := r.Fetch(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func remoteConfig(u string) *config.RemoteConfig {
	return &config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{u},
		Fetch: []config.RefSpec{config.RefSpec("+refs/heads/*:refs/remotes/" + remoteName + "/*")},
	}
}

// setRemote points origin at u, so a clone follows a changed configuration.
func setRemote(repo *git.Repository, u string) error {
	c, err := repo.Config()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	rc := c.Remotes[remoteName]
	if rc != nil && len(rc.URLs) == 1 && rc.URLs[0] == u {
		return nil
	}
	c.Remotes[remoteName] = remoteConfig(u)
	if err := repo.SetConfig(c); err != nil {
		return fmt.Errorf("set remote: %w", err)
	}
	return nil
}

func requireEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty and holds no git repository", dir)
	}
	return nil
}

// Branch is the branch that holds the desired state.
func (r *Repo) Branch() string { return r.cfg.Branch }

// URL is the remote's URL without credentials.
func (r *Repo) URL() string { return r.url }

// Fetch brings the remote's branches into the clone. A remote with nothing new
// is not an error; branches deleted on the remote are pruned.
func (r *Repo) Fetch(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fetch(ctx)
}

func (r *Repo) fetch(ctx context.Context) error {
	start := r.cfg.Now()
	err := r.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		Auth:       r.cfg.Auth,
		Force:      true,
		Prune:      true,
	})
	switch {
	case errors.Is(err, git.NoErrAlreadyUpToDate):
		return nil
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		// A new remote with no branch yet: nothing to read, nothing wrong.
		return nil
	case err != nil:
		return fmt.Errorf("fetch %s: %w", r.url, r.scrub(err))
	}
	r.log.Debug("fetched", "took", r.cfg.Now().Sub(start))
	return nil
}

// Head is the head of branch on the remote as of the last fetch or push.
// A branch the remote does not have is ErrNotFound.
func (r *Repo) Head(ctx context.Context, branch string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.head(branch)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

func (r *Repo) head(branch string) (plumbing.Hash, error) {
	ref, err := r.repo.Reference(trackingRef(branch), true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, fmt.Errorf("branch %s of %s: %w", branch, r.url, vulnzero.ErrNotFound)
	}
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("branch %s of %s: %w", branch, r.url, err)
	}
	return ref.Hash(), nil
}

func trackingRef(branch string) plumbing.ReferenceName {
	return plumbing.NewRemoteReferenceName(remoteName, branch)
}

// commit resolves a commit by full or abbreviated hash, or by a revision git
// understands (e.g. "origin/main").
func (r *Repo) commit(rev string) (*object.Commit, error) {
	h, err := r.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", rev, vulnzero.ErrNotFound)
	}
	c, err := r.repo.CommitObject(*h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("commit %s: %w", rev, vulnzero.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", rev, err)
	}
	return c, nil
}

// scrub removes the remote URL's credentials from an error's text:
// transport errors sometimes quote the URL, or the endpoint they built from
// it, credentials included.
func (r *Repo) scrub(err error) error {
	msg := err.Error()
	clean := strings.ReplaceAll(msg, r.cfg.URL, r.url)
	for _, secret := range urlSecrets(r.cfg.URL) {
		clean = strings.ReplaceAll(clean, secret, "***")
	}
	if clean == msg {
		return err
	}
	return &scrubbedError{msg: clean, err: err}
}

// urlSecrets are the parts of a URL's user info that may be secret: the
// password, and for http(s) a lone user name (tokens are often passed so).
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return nil
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return []string{p}
	}
	if (u.Scheme == "http" || u.Scheme == "https") && len(u.User.Username()) >= 8 {
		return []string{u.User.Username()}
	}
	return nil
}

// scrubbedError keeps the wrapped error for errors.Is while showing a text
// without credentials.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// RedactURL removes credentials from a remote URL so it can be logged or shown
// in an error, a status or a PR comment. Paths and scp-like ssh addresses
// ("git@host:repo") are returned unchanged.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.User == nil {
		return raw
	}
	if _, hasPassword := u.User.Password(); !hasPassword && u.Scheme == "ssh" {
		return raw // ssh://git@host/repo: a user name is not a secret
	}
	u.User = nil
	return u.String()
}

// InitBare creates a bare repository at path whose branch holds one commit
// with files (path → content; *.sh files are executable), and returns that
// commit's hash. The demo and tests seed remediation repositories with it.
func InitBare(ctx context.Context, path, branch string, files map[string][]byte, message, author, email string) (string, error) {
	if branch == "" {
		branch = DefaultBranch
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	repo, err := git.PlainInitWithOptions(path, &git.PlainInitOptions{
		Bare:        true,
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)},
	})
	if err != nil {
		return "", fmt.Errorf("init bare repository %s: %w", path, err)
	}
	changes, err := toChanges(repo.Storer, files, nil, nil, nil)
	if err != nil {
		return "", fmt.Errorf("init bare repository %s: %w", path, err)
	}
	tree, err := editTree(repo.Storer, nil, changes)
	if err != nil {
		return "", fmt.Errorf("init bare repository %s: %w", path, err)
	}
	sig := object.Signature{Name: author, Email: email, When: time.Now()}
	h, err := writeCommit(repo.Storer, tree, nil, sig, message)
	if err != nil {
		return "", fmt.Errorf("init bare repository %s: %w", path, err)
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(branch), h)); err != nil {
		return "", fmt.Errorf("init bare repository %s: set %s: %w", path, branch, err)
	}
	return h.String(), nil
}
