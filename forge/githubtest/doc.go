// Package githubtest is a GitHub server for tests: the REST calls
// forge/github makes, served by go-github-compatible JSON, on top of a real
// bare git repository that clients push to and fetch from over git's smart
// HTTP protocol (git http-backend). It is what "GitHub" means in VulnZero's
// tests, since no GitHub is reachable from them.
//
// What it holds to GitHub's behaviour, because forge/github depends on it:
//   - the API lives under /api/v3/ (the GitHub Enterprise layout), so the
//     configurable base URL is exercised on every call;
//   - personal access tokens and GitHub App auth: a JWT signed with the
//     App's key (RS256, iss = App id) buys an installation token at
//     POST /app/installations/{id}/access_tokens; check runs can only be
//     written with an installation token, as on GitHub;
//   - pull requests are numbered with issues, opened from branches that
//     exist in the git repository, and their head follows the branch while
//     open; merging writes a real merge (or squash) commit onto the base
//     branch of the bare repository with git itself;
//   - every API response carries X-RateLimit-* headers, and InjectLimit
//     makes the next requests fail with a primary (403, Remaining 0,
//     Reset) or secondary (403/429, Retry-After) rate limit;
//   - webhooks are delivered like GitHub's: JSON bodies signed with
//     X-Hub-Signature-256 (and the legacy X-Hub-Signature), X-GitHub-Event
//     and a unique X-GitHub-Delivery, for pushes (also those made over git),
//     pull requests opened/synchronize/closed/reopened, and merges.
//
// Response bodies carry the fields of GitHub's recorded payloads
// (shared/realdata/github/rest); fields_test.go checks that.
package githubtest
