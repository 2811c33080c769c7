package llm_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge/forgetest"
	"vulnzero.dev/vulnzero/policies"
	"vulnzero.dev/vulnzero/remedy"
	"vulnzero.dev/vulnzero/remedy/guardrails"
	"vulnzero.dev/vulnzero/remedy/llm"
)

// commits records what the proposer commits instead of pushing it.
type commits struct {
	mu      sync.Mutex
	fake    *forgetest.Fake
	patches []vulnzero.Patch
}

func (c *commits) CommitPatch(_ context.Context, branch, _ string, p vulnzero.Patch, _ string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.patches = append(c.patches, p)
	return c.fake.Push(branch), nil
}

// revision stands in for gitsource's tree hash: it changes with the scripts.
func revision(p vulnzero.Patch) (vulnzero.Revision, error) {
	h := sha256.New()
	for _, s := range [][]byte{p.Scripts.Apply, p.Scripts.Verify, p.Scripts.Rollback} {
		h.Write(s)
		h.Write([]byte{0})
	}
	return vulnzero.Revision(hex.EncodeToString(h.Sum(nil))), nil
}

// A rolled-back revision is never proposed again: with an Alternator, the
// proposer asks the LLM (a local server speaking OpenAI's API) for another
// patch, giving it the failed scripts and the failure transcript, and
// proposes that instead, on the same branch.
func TestQuarantinedRevisionGetsAnLLMAlternative(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	fs := []vulnzero.Finding{{Host: "web-1", OS: "debian 12", OSFamily: "debian", Package: "openssl", Ecosystem: "deb",
		Installed: "3.0.11-1~deb12u2", Fixed: "3.0.13-1~deb12u1", CVE: "CVE-2024-0727", Severity: vulnzero.SeverityHigh,
		CVSS: 7.5, Status: vulnzero.FindingOpen, FirstSeen: now.Add(-72 * time.Hour)}}
	groups, _ := remedy.GroupFindings(fs, remedy.ScoreInput{Now: now})
	if len(groups) != 1 {
		t.Fatalf("%d groups", len(groups))
	}

	fake := forgetest.NewFake()
	w := &commits{fake: fake}
	inv := vulnzero.Inventory{Hosts: []vulnzero.Host{{Name: "web-1", Address: "10.0.0.1"}}}
	newProposer := func() *remedy.Proposer {
		return &remedy.Proposer{Writer: w, Forge: fake, Revision: revision, Base: "main", Policies: policies.Defaults(),
			Inventory: inv, Guardrails: guardrails.Defaults(), Now: func() time.Time { return now }}
	}

	// First run: the rules patch is proposed; it then fails in production.
	props, err := newProposer().Propose(ctx, groups)
	if err != nil || len(props) != 1 || props[0].Skipped != "" {
		t.Fatalf("first proposal: %+v, %v", props, err)
	}
	failed := props[0].Patch
	rev, _ := revision(failed)
	q := vulnzero.Quarantine{PatchID: failed.ID, Revision: rev, Reason: "health check nginx failed on web-1 after apply", At: now}

	// Without an Alternator the quarantined revision is skipped, not re-proposed.
	p := newProposer()
	p.Quarantined = []vulnzero.Quarantine{q}
	props, err = p.Propose(ctx, groups)
	if err != nil || !strings.Contains(props[0].Skipped, "is quarantined") || len(w.patches) != 1 {
		t.Fatalf("quarantined revision: %+v, %v, %d commits", props, err, len(w.patches))
	}

	// With one, the LLM is asked for an alternative with the transcript.
	s := newServer(t, "/v1/chat/completions", openAIReply(js(unsafeAnswer)), openAIReply(js(goodAnswer)))
	gen, _ := generator(t, newOpenAI(t, s), nil)
	var asked []vulnzero.Quarantine
	p = newProposer()
	p.Quarantined = []vulnzero.Quarantine{q}
	p.Alternatives = &llm.Alternator{Generator: gen, Transcript: func(_ context.Context, q vulnzero.Quarantine) (string, error) {
		asked = append(asked, q)
		return "web-1 apply: Setting up openssl (3.0.13-1~deb12u1) ...\nweb-1 health nginx: curl: (7) Failed to connect to 127.0.0.1 port 80", nil
	}}
	props, err = p.Propose(ctx, groups)
	if err != nil {
		t.Fatal(err)
	}
	prop := props[0]
	if prop.Skipped != "" || prop.PR.Number == 0 {
		t.Fatalf("alternative not proposed: %+v", prop)
	}
	if len(asked) != 1 || asked[0].Revision != rev {
		t.Errorf("transcript asked for %v", asked)
	}
	alt := w.patches[len(w.patches)-1]
	if alt.ID != failed.ID || alt.Generator.Kind != "llm" || alt.Generator.Model != "gpt-test" || alt.Generator.PromptSHA256 == "" {
		t.Errorf("committed %s by %+v", alt.ID, alt.Generator)
	}
	if altRev, _ := revision(alt); altRev == rev || string(alt.Scripts.Apply) != goodAnswer.Apply {
		t.Error("the quarantined scripts were committed again")
	}
	if strings.Join(alt.Targets.Hosts, ",") != "web-1" || alt.Package.Name != "openssl" || alt.Package.FixedVersion != "3.0.13-1~deb12u1" {
		t.Errorf("alternative lost the group: %+v", alt)
	}
	prompt := js(s.requests()[0])
	for _, want := range []string{"ALTERNATIVE", "health check nginx failed on web-1", "Failed to connect to 127.0.0.1 port 80",
		"apt-get -o DPkg::Lock::Timeout", rev.Short(), "3.0.11-1~deb12u2"} {
		if !strings.Contains(prompt, want) {
			t.Errorf("the LLM was not told %q", want)
		}
	}
	if len(s.requests()) != 2 {
		t.Errorf("%d LLM requests: the unsafe first answer should be retried once", len(s.requests()))
	}

	// An alternative that is itself quarantined is not proposed either.
	altRev, _ := revision(alt)
	p.Quarantined = append(p.Quarantined, vulnzero.Quarantine{PatchID: alt.ID, Revision: altRev, Reason: "verify failed"})
	before := len(w.patches)
	props, err = p.Propose(ctx, groups)
	if err != nil || !strings.Contains(props[0].Skipped, "quarantined too") || len(w.patches) != before {
		t.Errorf("quarantined alternative: %+v, %v", props[0].Skipped, err)
	}
}
