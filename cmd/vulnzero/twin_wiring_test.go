package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/forge"
	"vulnzero.dev/vulnzero/gitsource"
	"vulnzero.dev/vulnzero/remedy/rules"
)

// resolveTwin reads the patch at the PR's head and picks the first
// inventory host it targets as the host to replicate.
func TestResolveTwin(t *testing.T) {
	ctx := context.Background()
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	inv := "hosts:\n  - name: db-1\n    address: 10.0.0.2\n  - name: web-1\n    address: 10.0.0.1\n"
	if _, err := gitsource.InitBare(ctx, cfg.repoURL(), "main", map[string][]byte{"inventory/hosts.yaml": []byte(inv)}, "init", "t", "t@example.test"); err != nil {
		t.Fatal(err)
	}
	a, err := openApp(ctx, cfg, newLogger(&strings.Builder{}, cfg.Log))
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	p, err := rules.Generate(rules.Request{PatchID: "apt-libfoo-1.0.1", Package: "libfoo", Manager: vulnzero.APT, FixedVersion: "1.0.1", Hosts: []string{"web-1", "web-9"}})
	if err != nil {
		t.Fatal(err)
	}
	branch := forge.Branch(p.ID)
	sha, err := a.repo.CommitPatch(ctx, branch, "main", p, "add")
	if err != nil {
		t.Fatal(err)
	}
	pr, err := a.forge.OpenPR(ctx, forge.NewPR{Branch: branch, Title: p.Title, HeadSHA: sha})
	if err != nil {
		t.Fatal(err)
	}
	got, target, err := a.resolveTwin(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != p.ID || string(got.Scripts.Apply) != string(p.Scripts.Apply) || target.Name != "web-1" || target.Address != "10.0.0.1" {
		t.Errorf("resolved %s on %+v", got.ID, target)
	}
	pr.PatchID = "other"
	if _, _, err := a.resolveTwin(ctx, pr); !errors.Is(err, vulnzero.ErrNotFound) {
		t.Errorf("a PR whose patch is not on its head: %v", err)
	}
	var nobody *runningTwins
	if nobody.twinRun(a) != nil {
		t.Error("twins off must give the webhook no twin hook")
	}
}

func TestTwinConfigValidation(t *testing.T) {
	getenv := func(k string) string {
		return map[string]string{"VZ_TWIN_PROVISIONER": "vagrant"}[k]
	}
	if _, err := loadConfig("", getenv); err == nil || !strings.Contains(err.Error(), `twin.provisioner: "vagrant"`) {
		t.Errorf("bad provisioner: %v", err)
	}
	c, err := loadConfig("", func(string) string { return "" })
	if err != nil || c.Twin.Provisioner != twinNone {
		t.Errorf("default twin config %+v, %v", c.Twin, err)
	}
}
