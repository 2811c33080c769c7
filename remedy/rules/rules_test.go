package rules_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/rules"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current templates")

func aptRequest() rules.Request {
	return rules.Request{
		PatchID:      "openssl-1-3.0.13-1-deb12u1-debian",
		Package:      "openssl",
		Manager:      vulnzero.APT,
		FixedVersion: "1:3.0.13-1~deb12u1",
		CVEs:         []string{"CVE-2024-0727", "CVE-2023-6129"},
		Hosts:        []string{"web-1", "web-2"},
	}
}

func TestGenerateAptGolden(t *testing.T) {
	p, err := rules.Generate(aptRequest())
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{
		"apt-apply.sh.golden":    p.Scripts.Apply,
		"apt-verify.sh.golden":   p.Scripts.Verify,
		"apt-rollback.sh.golden": p.Scripts.Rollback,
	} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generated script (run go test -update after checking the diff):\n%s", name, got)
		}
	}
}

func TestGenerateAptPatch(t *testing.T) {
	req := aptRequest()
	p, err := rules.Generate(req)
	if err != nil {
		t.Fatal(err)
	}
	if p.APIVersion != vulnzero.APIVersion || p.Kind != vulnzero.KindPatch || p.ID != req.PatchID {
		t.Errorf("header = %q %q %q", p.APIVersion, p.Kind, p.ID)
	}
	if p.Generator != (vulnzero.Generator{Kind: "rules", Provider: "vulnzero-rules"}) {
		t.Errorf("generator = %+v", p.Generator)
	}
	if p.Reboot != vulnzero.RebootIfRequired {
		t.Errorf("reboot = %q", p.Reboot)
	}
	if p.Package != (vulnzero.PackageRef{Name: "openssl", Manager: vulnzero.APT, FixedVersion: "1:3.0.13-1~deb12u1"}) {
		t.Errorf("package = %+v", p.Package)
	}
	if strings.Join(p.Targets.Hosts, ",") != "web-1,web-2" || len(p.Targets.Selector) != 0 {
		t.Errorf("targets = %+v", p.Targets)
	}
	if p.Title != "Upgrade openssl to 1:3.0.13-1~deb12u1 (CVE-2024-0727, CVE-2023-6129)" {
		t.Errorf("title = %q", p.Title)
	}
	req.Title = "Custom title"
	if p, _ := rules.Generate(req); p.Title != "Custom title" {
		t.Errorf("title = %q, want the requested one", p.Title)
	}
	// Deterministic: the same request renders the same bytes.
	again, _ := rules.Generate(aptRequest())
	if !bytes.Equal(again.Scripts.Apply, p.Scripts.Apply) || !bytes.Equal(again.Scripts.Rollback, p.Scripts.Rollback) {
		t.Error("two renders of one request differ")
	}
}

// The fleet runs scripts with dash; the rendered scripts must parse there.
func TestAptScriptsParseUnderDash(t *testing.T) {
	dash, err := exec.LookPath("dash")
	if err != nil {
		t.Skip("dash is not installed: cannot check the scripts with the shell the fleet uses")
	}
	p, err := rules.Generate(aptRequest())
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string][]byte{"apply.sh": p.Scripts.Apply, "verify.sh": p.Scripts.Verify, "rollback.sh": p.Scripts.Rollback} {
		cmd := exec.Command(dash, "-n")
		cmd.Stdin = bytes.NewReader(s)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("dash -n %s: %v\n%s", name, err, out)
		}
	}
}

func TestGenerateRejects(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*rules.Request)
		want   string
	}{
		{"package with shell", func(r *rules.Request) { r.Package = "openssl; rm -rf /" }, "package"},
		{"package with quote", func(r *rules.Request) { r.Package = "openssl'" }, "package"},
		{"package uppercase", func(r *rules.Request) { r.Package = "OpenSSL" }, "package"},
		{"package one char", func(r *rules.Request) { r.Package = "a" }, "package"},
		{"package arch qualifier", func(r *rules.Request) { r.Package = "libc6:amd64" }, "package"},
		{"package leading dash", func(r *rules.Request) { r.Package = "-oAPT::x=1" }, "package"},
		{"version command substitution", func(r *rules.Request) { r.FixedVersion = "1.0$(reboot)" }, "version"},
		{"version newline", func(r *rules.Request) { r.FixedVersion = "1.0\nreboot" }, "version"},
		{"version empty", func(r *rules.Request) { r.FixedVersion = "" }, "version"},
		{"version starts with letter", func(r *rules.Request) { r.FixedVersion = "v1.0" }, "version"},
		{"version bad epoch", func(r *rules.Request) { r.FixedVersion = "a:1.0" }, "version"},
		{"version colon without epoch", func(r *rules.Request) { r.FixedVersion = "1.0-1:2" }, "version"},
		{"version empty revision", func(r *rules.Request) { r.FixedVersion = "1.0-" }, "version"},
		{"version space", func(r *rules.Request) { r.FixedVersion = "1.0 2" }, "version"},
		{"version non-ascii", func(r *rules.Request) { r.FixedVersion = "1.0é" }, "version"},
		{"patch id with slash", func(r *rules.Request) { r.PatchID = "../etc" }, "patch id"},
		{"patch id with quote", func(r *rules.Request) { r.PatchID = "a'b" }, "patch id"},
		{"cve with newline", func(r *rules.Request) { r.CVEs = []string{"CVE-1\nreboot"} }, "cves[0]"},
		{"no hosts", func(r *rules.Request) { r.Hosts = nil }, "hosts"},
		{"host with space", func(r *rules.Request) { r.Hosts = []string{"a b"} }, "hosts[0]"},
		{"title with newline", func(r *rules.Request) { r.Title = "a\nb" }, "title"},
		{"unknown manager", func(r *rules.Request) { r.Manager = "pacman" }, "package manager"},
		{"dnf has no template", func(r *rules.Request) { r.Manager = vulnzero.DNF }, "package manager dnf has no rules template yet"},
		{"apk has no template", func(r *rules.Request) { r.Manager = vulnzero.APK }, "package manager apk has no rules template yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := aptRequest()
			tt.modify(&req)
			_, err := rules.Generate(req)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, vulnzero.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestValidateDebVersionAccepts(t *testing.T) {
	for _, v := range []string{
		"1.0", "1.0.1", "3.0.13-1~deb12u1", "1:2.36-9+deb12u4", "2:9.0.1378-2", "0.5.12-2",
		"1.2.3+dfsg-1", "7.88.1-10+deb12u5", "1.0~rc1", "1:2:3-4", "10", "1.0-1-2",
	} {
		if err := rules.ValidateDebVersion(v); err != nil {
			t.Errorf("ValidateDebVersion(%q) = %v", v, err)
		}
	}
}

func TestValidateDebPackageAccepts(t *testing.T) {
	for _, p := range []string{"openssl", "libssl3", "g++", "libstdc++6", "python3.11", "0ad", "xz-utils"} {
		if err := rules.ValidateDebPackage(p); err != nil {
			t.Errorf("ValidateDebPackage(%q) = %v", p, err)
		}
	}
}

func TestShellQuote(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to check quoting against")
	}
	for _, s := range []string{"", "plain", "it's", "$(reboot)", "`id`", "a\nb", `\'"`, "'''"} {
		out, err := exec.Command(sh, "-c", "printf %s "+rules.ShellQuote(s)).Output()
		if err != nil {
			t.Fatalf("sh with %q: %v", s, err)
		}
		if string(out) != s {
			t.Errorf("ShellQuote(%q) round-trips to %q", s, out)
		}
	}
}
