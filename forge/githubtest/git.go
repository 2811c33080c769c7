package githubtest

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/cgi" //nolint:gosec // G504: serves git-http-backend to tests; Go has long fixed httpoxy
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// gitRepo is the bare repository, driven with the git CLI: git itself
// serves it (http-backend) and writes merges (merge-tree, commit-tree), so
// what clients see is what a real git server holds.
type gitRepo struct {
	bare    string
	backend *cgi.Handler
	// mu serializes writes (pushes and merges), so a ref snapshot taken
	// around a push sees only that push.
	mu sync.Mutex
}

func newGitRepo(root, bare string) (*gitRepo, error) {
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		return nil, fmt.Errorf("git --exec-path: %w (is git installed?)", err)
	}
	g := &gitRepo{bare: bare}
	if _, err := g.run(nil, "config", "http.receivepack", "true"); err != nil {
		return nil, err
	}
	g.backend = &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null"},
	}
	return g, nil
}

// seed creates the bare repository with one commit of files on branch,
// made in a scratch working copy by git itself.
func seed(bare, work, branch string, files map[string][]byte) error {
	gitIn := func(dir string, args ...string) error {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Seed", "-c", "user.email=seed@example.test"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("seed repository: git %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := os.MkdirAll(work, 0o750); err != nil {
		return err
	}
	if err := gitIn(work, "init", "-q", "-b", branch); err != nil {
		return err
	}
	for p, b := range files {
		full := filepath.Join(work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(full, b, mode); err != nil {
			return err
		}
	}
	if err := gitIn(work, "add", "-A"); err != nil {
		return err
	}
	if err := gitIn(work, "commit", "-q", "-m", "Initial commit"); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(bare), 0o750); err != nil {
		return err
	}
	if err := gitIn(filepath.Dir(bare), "clone", "-q", "--bare", work, bare); err != nil {
		return err
	}
	return os.RemoveAll(work)
}

// run runs git in the bare repository with env added.
func (g *gitRepo) run(env []string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", g.bare}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(out.String()), fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// refs maps every branch to its head.
func (g *gitRepo) refs() (map[string]string, error) {
	out, err := g.run(nil, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if ref, sha, ok := strings.Cut(line, " "); ok {
			m[strings.TrimPrefix(ref, "refs/heads/")] = sha
		}
	}
	return m, nil
}

// head is branch's head; "" when there is no such branch.
func (g *gitRepo) head(branch string) string {
	out, err := g.run(nil, "rev-parse", "--verify", "-q", "refs/heads/"+branch+"^{commit}")
	if err != nil {
		return ""
	}
	return out
}

// commitExists reports whether sha names a commit.
func (g *gitRepo) commitExists(sha string) bool {
	_, err := g.run(nil, "cat-file", "-e", sha+"^{commit}")
	return err == nil
}

// errConflict is a merge git cannot do without a person.
var errConflict = errors.New("merge conflict")

// merge writes a commit onto base combining head: a two-parent merge
// commit, or with squash one commit with base's head as only parent and
// the merged tree. It moves base only if it is still at the head it read.
func (g *gitRepo) merge(base, head, message string, squash bool, who signature, at time.Time) (string, error) {
	baseSHA := g.head(base)
	if baseSHA == "" {
		return "", fmt.Errorf("base branch %s does not exist", base)
	}
	tree, err := g.run(nil, "merge-tree", "--write-tree", "--no-messages", baseSHA, head)
	if err != nil {
		return "", errConflict
	}
	tree, _, _ = strings.Cut(tree, "\n")
	parents := []string{"-p", baseSHA}
	if !squash {
		parents = append(parents, "-p", head)
	}
	date := at.Format(time.RFC3339)
	env := []string{
		"GIT_AUTHOR_NAME=" + who.name, "GIT_AUTHOR_EMAIL=" + who.email, "GIT_AUTHOR_DATE=" + date,
		"GIT_COMMITTER_NAME=GitHub", "GIT_COMMITTER_EMAIL=noreply@github.com", "GIT_COMMITTER_DATE=" + date,
	}
	sha, err := g.run(env, append(append([]string{"commit-tree", tree}, parents...), "-m", message)...)
	if err != nil {
		return "", err
	}
	if _, err := g.run(nil, "update-ref", "refs/heads/"+base, sha, baseSHA); err != nil {
		return "", err
	}
	return sha, nil
}

type signature struct{ name, email string }

// commitInfo is what a webhook tells about a commit.
type commitInfo struct {
	SHA, Tree, Message    string
	Author, Committer     signature
	When                  time.Time
	Added, Removed, Modif []string
}

func (g *gitRepo) commit(sha string) (commitInfo, error) {
	out, err := g.run(nil, "show", "-s", "--format=%H%n%T%n%an%n%ae%n%cn%n%ce%n%cI%n%B", sha)
	if err != nil {
		return commitInfo{}, err
	}
	f := strings.SplitN(out, "\n", 8)
	if len(f) < 7 {
		return commitInfo{}, fmt.Errorf("git show %s: unexpected output", sha)
	}
	c := commitInfo{SHA: f[0], Tree: f[1], Author: signature{f[2], f[3]}, Committer: signature{f[4], f[5]}}
	c.When, _ = time.Parse(time.RFC3339, f[6])
	if len(f) == 8 {
		c.Message = strings.TrimSpace(f[7])
	}
	// Changed paths against the first parent (none for a root commit).
	if diff, err := g.run(nil, "diff-tree", "-r", "--no-commit-id", "--name-status", "--root", "-m", "--first-parent", sha); err == nil {
		for _, line := range strings.Split(diff, "\n") {
			st, path, ok := strings.Cut(line, "\t")
			if !ok {
				continue
			}
			switch st[:1] {
			case "A":
				c.Added = append(c.Added, path)
			case "D":
				c.Removed = append(c.Removed, path)
			default:
				c.Modif = append(c.Modif, path)
			}
		}
	}
	return c, nil
}

// between lists the commits in after but not before, oldest first, at
// most 20 (GitHub's push payload limit); before may be empty.
func (g *gitRepo) between(before, after string) []string {
	args := []string{"rev-list", "--reverse", "--max-count=20", after}
	if before != "" {
		args = append(args, "^"+before)
	}
	out, err := g.run(nil, args...)
	if err != nil || out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// serveGit is smart HTTP for the repository: fetches and pushes go through
// git http-backend, authenticated with HTTP basic auth whose password is a
// token (any user name; git clients send "x-access-token"). A push is
// followed by the events GitHub sends for it.
func (s *Server) serveGit(w http.ResponseWriter, r *http.Request) {
	_, pass, ok := r.BasicAuth()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	c, ok := s.authenticate("token " + pass)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="GitHub"`)
		http.Error(w, "invalid credentials", http.StatusUnauthorized)
		return
	}
	r.Header.Set("Remote-User", c.login)
	if !(r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack")) {
		s.git.backend.ServeHTTP(w, r)
		return
	}
	s.git.mu.Lock()
	defer s.git.mu.Unlock()
	before, err := s.git.refs()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.git.backend.ServeHTTP(w, r)
	after, err := s.git.refs()
	if err != nil {
		return
	}
	s.pushed(before, after, c)
}
