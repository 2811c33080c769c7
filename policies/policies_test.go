package policies

import (
	"errors"
	"strings"
	"testing"
	"time"

	"vulnzero.dev/vulnzero"
)

const goodPatch = `apiVersion: vulnzero.dev/v1
kind: Patch
id: apt-libfoo-1.0.1
title: Upgrade libfoo to 1.0.1
cves: [CVE-2026-10001]
package:
  name: libfoo
  manager: apt
  fixedVersion: 1.0.1
targets:
  hosts: [web-1, web-2]
generator:
  kind: rules
reboot: if-required
timeouts:
  apply: 5m
`

func TestParsePatch(t *testing.T) {
	p, err := ParsePatch("patches/apt-libfoo-1.0.1/patch.yaml", "apt-libfoo-1.0.1", []byte(goodPatch))
	if err != nil {
		t.Fatal(err)
	}
	if p.Package.Manager != vulnzero.APT || p.Timeouts.Apply != 5*time.Minute || len(p.Targets.Hosts) != 2 {
		t.Fatalf("decoded %+v", p)
	}
	out, err := MarshalPatch(p)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParsePatch("again", "apt-libfoo-1.0.1", out)
	if err != nil {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
	if again.Timeouts.Apply != p.Timeouts.Apply || again.Title != p.Title {
		t.Fatalf("round trip changed the patch: %+v", again)
	}
}

func TestParsePatchErrorsNameFileAndLine(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown field", strings.Replace(goodPatch, "reboot:", "rebooot:", 1), "p.yaml:14: field rebooot not found"},
		{"bad manager", strings.Replace(goodPatch, "manager: apt", "manager: brew", 1), `p.yaml:8: package.manager: "brew" is not one of`},
		{"missing title", strings.Replace(goodPatch, "title: Upgrade libfoo to 1.0.1\n", "", 1), "title: required"},
		{"id mismatch", goodPatch, `does not match its directory patches/other`},
		{"bad cve", strings.Replace(goodPatch, "CVE-2026-10001", "not a cve", 1), `p.yaml:5: cves: entry 1 "not a cve"`},
		{"bad yaml", "id: [", "p.yaml:1:"},
		{"bad stage", goodPatch + "rollout:\n  stages:\n    - hosts: lots\n", `p.yaml:19: rollout.stages: stage 1 hosts: "lots" is not a count`},
		{"bad duration", strings.Replace(goodPatch, "apply: 5m", "apply: soon", 1), "p.yaml:16: cannot unmarshal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := "apt-libfoo-1.0.1"
			if c.name == "id mismatch" {
				dir = "other"
			}
			_, err := ParsePatch("p.yaml", dir, []byte(c.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, vulnzero.ErrInvalid) {
				t.Errorf("error is not ErrInvalid: %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s := Defaults()
	if len(s.Rollouts) != 1 || s.Rollouts[0].Strategy != StrategyCanary || len(s.Rollouts[0].Stages) != 4 {
		t.Fatalf("default rollout: %+v", s.Rollouts)
	}
	if s.Rollouts[0].Stages[0].Soak != 10*time.Minute {
		t.Errorf("canary soak %v", s.Rollouts[0].Stages[0].Soak)
	}
	if s.Remediation.MinSeverity != vulnzero.SeverityMedium || s.Remediation.MaxOpenPRs != 10 {
		t.Errorf("remediation %+v", s.Remediation)
	}
	if s.Guardrail.MaxScriptBytes != 65536 || len(s.Guardrail.RequiredScripts) != 3 {
		t.Errorf("guardrail %+v", s.Guardrail)
	}
}

func TestParsePolicies(t *testing.T) {
	files := map[string][]byte{
		"policies/db.yaml": []byte(`apiVersion: vulnzero.dev/v1
kind: RolloutPolicy
name: databases
spec:
  selector: {role: db}
  strategy: all-at-once
  revert: pull-request
`),
	}
	s, err := Parse(files)
	if err != nil {
		t.Fatal(err)
	}
	db := []vulnzero.Host{{Name: "db-1", Labels: map[string]string{"role": "db"}}}
	web := []vulnzero.Host{{Name: "web-1", Labels: map[string]string{"role": "web"}}}
	spec, pol := s.RolloutFor(vulnzero.Patch{}, db)
	if spec.Strategy != StrategyAllAtOnce || pol.Revert != RevertPullRequest {
		t.Errorf("db hosts got %+v %+v", spec, pol)
	}
	spec, pol = s.RolloutFor(vulnzero.Patch{Rollout: &vulnzero.RolloutSpec{MaxParallel: 3}}, web)
	if spec.Strategy != StrategyCanary || pol.Name != "default" || spec.MaxParallel != 3 {
		t.Errorf("web hosts got %+v %+v", spec, pol)
	}

	bad := map[string][]byte{
		"policies/x.yaml": []byte("apiVersion: vulnzero.dev/v1\nkind: RolloutPolicy\nname: x\nspec:\n  strategy: yolo\n"),
		"policies/y.yaml": []byte("apiVersion: vulnzero.dev/v1\nkind: Mystery\nname: y\n"),
		"policies/z.yaml": []byte("apiVersion: vulnzero.dev/v1\nkind: GuardrailPolicy\nname: z\nspec:\n  maxScriptByte: 3\n"),
	}
	_, err = Parse(bad)
	for _, want := range []string{`policies/x.yaml:5: spec.strategy: "yolo" is not`, `policies/y.yaml:2: kind: "Mystery"`, `policies/z.yaml:5: field maxScriptByte not found`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

func TestParseInventory(t *testing.T) {
	inv, err := ParseInventory("hosts.yaml", []byte(`hosts:
  - name: web-1
    address: 10.0.0.1
    labels: {role: web}
  - name: db-1
    address: 10.0.0.2
    port: 2222
groups:
  web: [web-1]
`))
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := inv.Host("db-1"); !ok || h.Port != 2222 {
		t.Fatalf("db-1: %+v", h)
	}
	_, err = ParseInventory("hosts.yaml", []byte("hosts:\n  - name: a\n    address: x\n  - name: a\ngroups:\n  g: [b]\n"))
	for _, want := range []string{`"a" is listed twice`, `host 2 (a): address required`, `hosts.yaml:6: groups.g: member "b"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}
