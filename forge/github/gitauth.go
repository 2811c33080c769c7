package github

import (
	"net/http"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// GitUser is the user name GitHub expects with a token over HTTPS.
const GitUser = "x-access-token"

// GitAuth authenticates go-git over HTTPS with the client's token: the
// personal access token, or for a GitHub App a fresh installation token on
// every request (they expire after an hour). Set it as gitsource's
// Config.Auth; push and fetch then use the same identity as the API.
func (c *Client) GitAuth() transport.AuthMethod { return &tokenAuth{c: c} }

// tokenAuth is a go-git HTTP AuthMethod whose password is fetched per
// request.
type tokenAuth struct{ c *Client }

var _ githttp.AuthMethod = (*tokenAuth)(nil)

func (a *tokenAuth) Name() string { return "http-basic-auth" }

// String never shows the token.
func (a *tokenAuth) String() string { return "http-basic-auth - " + GitUser + ":<token>" }

// SetAuth sets basic auth on r. When no token can be had the request goes
// without, and the server's 401 names the problem; the reason is logged.
func (a *tokenAuth) SetAuth(r *http.Request) {
	tok, err := a.c.Token(r.Context())
	if err != nil {
		a.c.log.Error("git auth: no token", "err", err)
		return
	}
	r.SetBasicAuth(GitUser, tok)
}
