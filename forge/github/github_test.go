package github_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	gh "github.com/google/go-github/v62/github"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/forge/github"
	"vulnzero.dev/vulnzero/gitsource"
)

// TestInventoryAndLabels: VulnZero's PRs carry the vulnzero label (and
// those AddLabels adds); ListPRs returns only the PRs VulnZero owns — a
// patch branch or the label — never a person's unrelated PR.
func TestInventoryAndLabels(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{})
	sha := e.push(t, forge.Branch("p"), "p")
	pr, err := e.client.OpenPR(ctx, forge.NewPR{Branch: forge.Branch("p"), Title: "Patch p", HeadSHA: sha})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.AddLabels(ctx, pr.Number, "severity:critical"); err != nil {
		t.Fatal(err)
	}
	// A person's PRs, made with go-github directly.
	raw := gh.NewClient(nil).WithAuthToken(testToken)
	raw, _ = raw.WithEnterpriseURLs(e.srv.APIURL, e.srv.APIURL)
	var people []int
	for _, b := range []string{"feature/docs", "feature/labeled"} {
		if _, err := e.repo.CommitFiles(ctx, gitsource.CommitRequest{Branch: b, Files: map[string][]byte{"docs/" + filepath.Base(b): []byte(b)}, Message: "Docs"}); err != nil {
			t.Fatal(err)
		}
		p, _, err := raw.PullRequests.Create(ctx, "vulnzero", "remediation", &gh.NewPullRequest{Title: gh.String(b), Head: gh.String(b), Base: gh.String("main")})
		if err != nil {
			t.Fatal(err)
		}
		people = append(people, p.GetNumber())
	}
	if _, _, err := raw.Issues.AddLabelsToIssue(ctx, "vulnzero", "remediation", people[1], []string{github.Label}); err != nil {
		t.Fatal(err)
	}
	got, _, err := raw.PullRequests.Get(ctx, "vulnzero", "remediation", pr.Number)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, l := range got.Labels {
		labels = append(labels, l.GetName())
	}
	if strings.Join(labels, ",") != "vulnzero,severity:critical" {
		t.Errorf("labels = %v", labels)
	}
	prs, err := e.client.ListPRs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, p := range prs {
		nums = append(nums, p.Number)
	}
	if len(prs) != 2 || prs[0].Number != pr.Number || prs[1].Number != people[1] || prs[0].URL == "" {
		t.Errorf("inventory = %v, want #%d and the labeled #%d", nums, pr.Number, people[1])
	}
}

// TestCloseFixed closes the open PRs whose findings are gone, with a
// comment, and keeps the rest.
func TestCloseFixed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{})
	num := map[string]int{}
	for _, id := range []string{"gone", "kept"} {
		sha := e.push(t, forge.Branch(id), id)
		pr, err := e.client.OpenPR(ctx, forge.NewPR{Branch: forge.Branch(id), Title: "Patch " + id, HeadSHA: sha})
		if err != nil {
			t.Fatal(err)
		}
		num[id] = pr.Number
	}
	closed, err := e.client.CloseFixed(ctx, map[string]bool{"kept": true}, "The scanners no longer report these findings.")
	if err != nil || len(closed) != 1 || closed[0] != num["gone"] {
		t.Fatalf("CloseFixed = %v, %v", closed, err)
	}
	if pr, _ := e.client.GetPR(ctx, num["gone"]); pr.State != vulnzero.PRClosed {
		t.Errorf("gone is %s", pr.State)
	}
	if pr, _ := e.client.GetPR(ctx, num["kept"]); pr.State != vulnzero.PROpen {
		t.Errorf("kept is %s", pr.State)
	}
	if cs, _ := e.client.Comments(ctx, num["gone"]); len(cs) != 1 || !strings.Contains(cs[0], "no longer report") {
		t.Errorf("comments = %q", cs)
	}
}

// TestTokensStayOutOfErrors: a rejected token is an error that does not
// contain it, over the API and over git.
func TestTokensStayOutOfErrors(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{})
	const wrong = "ghp_WRONGtokenNEVERshowMe0123456789"
	bad, err := github.New(github.Config{BaseURL: e.srv.APIURL, Owner: "vulnzero", Repo: "remediation", Token: wrong})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.GetPR(ctx, 1)
	if err == nil || strings.Contains(err.Error(), wrong) {
		t.Fatalf("GetPR with a wrong token: %v", err)
	}
	if s := bad.GitAuth().String(); strings.Contains(s, wrong) {
		t.Errorf("GitAuth().String() = %s", s)
	}
	_, err = gitsource.Open(ctx, gitsource.Config{URL: e.srv.GitURL, Dir: filepath.Join(t.TempDir(), "c"), Auth: bad.GitAuth(), Logger: testLogger()})
	if err == nil || strings.Contains(err.Error(), wrong) {
		t.Errorf("git with a wrong token: %v", err)
	}
}

// TestAppAuthPushesWithInstallationToken: as a GitHub App, the API and
// git both use an installation token bought with the App's JWT.
func TestAppAuthPushesWithInstallationToken(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{app: true})
	tok, err := e.client.Token(ctx)
	if err != nil || !strings.HasPrefix(tok, "ghs_") {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	sha := e.push(t, forge.Branch("p"), "p") // over git, with that token
	pr, err := e.client.OpenPR(ctx, forge.NewPR{Branch: forge.Branch("p"), Title: "Patch p", HeadSHA: sha})
	if err != nil || pr.HeadSHA != sha {
		t.Fatalf("OpenPR as the App = %+v, %v", pr, err)
	}
}

// TestEnterpriseBaseURL: a GitHub Enterprise host given without a path
// gets api/v3/ appended, as go-github does.
func TestEnterpriseBaseURL(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, envOpts{})
	sha := e.push(t, forge.Branch("p"), "p")
	c, err := github.New(github.Config{BaseURL: e.srv.URL, Owner: "vulnzero", Repo: "remediation", Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.OpenPR(ctx, forge.NewPR{Branch: forge.Branch("p"), Title: "Patch p", HeadSHA: sha})
	if err != nil || pr.Base != "main" {
		t.Fatalf("OpenPR via %s = %+v, %v", e.srv.URL, pr, err)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]github.Config{
		"no auth":           {Owner: "o", Repo: "r"},
		"both auths":        {Owner: "o", Repo: "r", Token: "t", App: &github.AppAuth{ID: 1, InstallationID: 2, PrivateKey: appKeyPEM()}},
		"no repo":           {Token: "t"},
		"check runs by PAT": {Owner: "o", Repo: "r", Token: "t", CheckRuns: true},
		"bad merge method":  {Owner: "o", Repo: "r", Token: "t", MergeMethod: "rebase"},
		"bad url":           {Owner: "o", Repo: "r", Token: "t", BaseURL: "ftp://x"},
		"app without key":   {Owner: "o", Repo: "r", App: &github.AppAuth{ID: 1, InstallationID: 2}},
	} {
		if _, err := github.New(cfg); !errors.Is(err, vulnzero.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	_, err := github.New(github.Config{Owner: "o", Repo: "r", App: &github.AppAuth{ID: 1, InstallationID: 2, PrivateKey: []byte("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n")}})
	if !errors.Is(err, vulnzero.ErrInvalid) || strings.Contains(err.Error(), "not a key") {
		t.Errorf("bad key: %v", err)
	}
}

// TestRevertBranchNames: revert PRs belong to their patch.
func TestRevertBranchNames(t *testing.T) {
	b := github.RevertBranch("apt-libfoo-1.0.1-0a1b2c3d", vulnzero.Revision("57f19787c63f0000000000000000000000000000"))
	if b != "vulnzero/revert/apt-libfoo-1.0.1-0a1b2c3d/57f19787c63f" || !github.IsRevertBranch(b) || github.IsRevertBranch(forge.Branch("x")) {
		t.Errorf("RevertBranch = %s", b)
	}
}
