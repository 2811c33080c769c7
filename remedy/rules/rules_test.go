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
	"vulnzero.dev/vulnzero/remedy/guardrails"
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

// requests is one realistic request per manager; each has golden scripts
// in testdata/<name>-{apply,verify,rollback}.sh.golden.
func requests() map[string]rules.Request {
	return map[string]rules.Request{
		"apt": aptRequest(),
		"dnf": {
			PatchID: "dnf-openssl-1-3.0.7-27.el9-rhel", Package: "openssl", Manager: vulnzero.DNF,
			FixedVersion: "1:3.0.7-27.el9", CVEs: []string{"CVE-2024-0727"}, Hosts: []string{"db-1"},
		},
		"yum": {
			PatchID: "yum-openssh-7.4p1-23.el7-9-rhel", Package: "openssh", Manager: vulnzero.YUM,
			FixedVersion: "7.4p1-23.el7_9", CVEs: []string{"CVE-2023-38408"}, Hosts: []string{"legacy-1"},
		},
		"zypper": {
			PatchID: "zypper-libopenssl3-3.0.8-150500.5.20.1-suse", Package: "libopenssl3", Manager: vulnzero.Zypper,
			FixedVersion: "3.0.8-150500.5.20.1", CVEs: []string{"CVE-2024-0727"}, Hosts: []string{"sles-1"},
		},
		"apk": {
			PatchID: "apk-busybox-1.36.1-r7-alpine", Package: "busybox", Manager: vulnzero.APK,
			FixedVersion: "1.36.1-r7", CVEs: []string{"CVE-2023-42366"}, Hosts: []string{"edge-1"},
		},
	}
}

func generate(t *testing.T, req rules.Request) map[string][]byte {
	t.Helper()
	p, err := rules.Generate(req)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"apply.sh": p.Scripts.Apply, "verify.sh": p.Scripts.Verify, "rollback.sh": p.Scripts.Rollback}
}

func TestGenerateGolden(t *testing.T) {
	for name, req := range requests() {
		for script, got := range generate(t, req) {
			path := filepath.Join("testdata", name+"-"+strings.TrimSuffix(script, ".sh")+".sh.golden")
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
				t.Errorf("%s differs from the generated script (run go test -update after checking the diff):\n%s", path, got)
			}
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

// The fleet runs scripts with /bin/sh: dash on Debian, bash on RHEL and
// SUSE, busybox ash on Alpine. Every rendered script must parse under each
// that is installed here (bash in POSIX mode stands for RHEL's /bin/sh).
func TestScriptsParseUnderEveryShell(t *testing.T) {
	shells := map[string][]string{
		"dash":    {"dash", "-n"},
		"bash":    {"bash", "-n"},
		"sh":      {"bash", "--posix", "-n"},
		"busybox": {"busybox", "sh", "-n"},
	}
	ran := 0
	for shell, argv := range shells {
		bin, err := exec.LookPath(argv[0])
		if err != nil {
			t.Logf("%s is not installed: scripts not checked with it", argv[0])
			continue
		}
		ran++
		for name, req := range requests() {
			for script, s := range generate(t, req) {
				cmd := exec.Command(bin, argv[1:]...)
				cmd.Stdin = bytes.NewReader(s)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s: %s %s: %v\n%s", shell, name, script, err, out)
				}
			}
		}
	}
	if ran == 0 {
		t.Skip("neither dash, bash nor busybox is installed: cannot check the scripts with a real shell")
	}
}

// Every rendered script, whatever the manager, passes the built-in
// guardrails (and shellcheck, when installed) before it can reach a branch.
func TestScriptsPassGuardrails(t *testing.T) {
	for name, req := range requests() {
		p, err := rules.Generate(req)
		if err != nil {
			t.Fatal(err)
		}
		if vs := guardrails.CheckPatch(guardrails.Defaults(), p); len(vs) > 0 {
			t.Errorf("%s: guardrails reject the rules patch:\n%s", name, guardrails.Err(vs))
		}
	}
}

// Each manager's scripts use that manager's tools, its lock handling and its
// version ordering, and nothing of another manager's.
func TestScriptsUseTheirManager(t *testing.T) {
	want := map[string][]string{
		"apt":    {"DPkg::Lock::Timeout=\"$LOCK_WAIT\"", "LOCK_WAIT=${VZ_LOCK_WAIT:-60}", "dpkg --compare-versions", "apt-get download", "--allow-downgrades", "reboot-required"},
		"dnf":    {"LOCK_WAIT=${VZ_LOCK_WAIT:-30}", "exit_on_lock=True", "rpm.vercmp", "dnf -q history list", "pm history undo", "pm download --destdir", "needs-restarting -r", "lock held for ${LOCK_WAIT}s"},
		"yum":    {"LOCK_WAIT=${VZ_LOCK_WAIT:-30}", "/var/run/yum.pid", "exit_on_lock=True", "rpm.vercmp", "yum -q history list", "yumdownloader", "needs-restarting -r"},
		"zypper": {"LOCK_WAIT=${VZ_LOCK_WAIT:-30}", "ZYPP_LOCK_TIMEOUT", "rpm.vercmp", "zz download", "--oldpackage", "zypper needs-rebooting"},
		"apk":    {"LOCK_WAIT=${VZ_LOCK_WAIT:-30}", "--wait", "apk version -t", "ak fetch", "/etc/apk/cache", "/etc/apk/world"},
	}
	notWant := map[string][]string{
		"apt": {"rpm", "zypper"}, "dnf": {"apt-get", "yum", "zypper"}, "yum": {"apt-get", "dnf ", "zypper"},
		"zypper": {"apt-get", "dnf", "yum"}, "apk": {"apt-get", "rpm", "dnf"},
	}
	for name, req := range requests() {
		scripts := generate(t, req)
		all := string(scripts["apply.sh"]) + string(scripts["verify.sh"]) + string(scripts["rollback.sh"])
		for _, w := range want[name] {
			if !strings.Contains(all, w) {
				t.Errorf("%s scripts lack %q", name, w)
			}
		}
		for _, w := range notWant[name] {
			if strings.Contains(all, w) {
				t.Errorf("%s scripts mention %q", name, w)
			}
		}
		for script, s := range scripts {
			if !bytes.HasPrefix(s, []byte("#!/bin/sh\n")) || !bytes.HasSuffix(s, []byte("main \"$@\" </dev/null\n")) {
				t.Errorf("%s %s does not start with #!/bin/sh or end by calling main", name, script)
			}
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
		{"rpm version with two dashes", func(r *rules.Request) { r.Manager, r.FixedVersion = vulnzero.DNF, "1.0-1-2" }, "version"},
		{"rpm version with quote", func(r *rules.Request) { r.Manager, r.FixedVersion = vulnzero.DNF, "1.0'-1" }, "version"},
		{"rpm version with macro", func(r *rules.Request) { r.Manager, r.FixedVersion = vulnzero.YUM, "%{lua:x}" }, "version"},
		{"rpm version bad epoch", func(r *rules.Request) { r.Manager, r.FixedVersion = vulnzero.Zypper, "x:1.0-1" }, "version"},
		{"rpm package leading dash", func(r *rules.Request) { r.Manager, r.FixedVersion, r.Package = vulnzero.DNF, "1.0-1", "-y" }, "package"},
		{"rpm package with space", func(r *rules.Request) { r.Manager, r.FixedVersion, r.Package = vulnzero.DNF, "1.0-1", "a b" }, "package"},
		{"rpm package glob", func(r *rules.Request) { r.Manager, r.FixedVersion, r.Package = vulnzero.Zypper, "1.0-1", "open*" }, "package"},
		{"apk version without revision grammar", func(r *rules.Request) { r.Manager, r.FixedVersion = vulnzero.APK, "1.0-rx" }, "version"},
		{"apk version with substitution", func(r *rules.Request) { r.Manager, r.FixedVersion = vulnzero.APK, "1.0$(id)" }, "version"},
		{"apk package with equals", func(r *rules.Request) { r.Manager, r.FixedVersion, r.Package = vulnzero.APK, "1.0-r0", "busybox=1.0" }, "package"},
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

func TestValidateRPMAndAPKAccept(t *testing.T) {
	for _, v := range []string{"3.0.7-27.el9", "1:3.0.7-27.el9_5", "7.4p1-23.el7_9", "1.0~rc1-1", "1.0^git1-1.fc40", "3.0.8-150500.5.20.1", "2.0"} {
		if err := rules.ValidateRPMVersion(v); err != nil {
			t.Errorf("ValidateRPMVersion(%q) = %v", v, err)
		}
	}
	for _, p := range []string{"openssl", "openssl-libs", "NetworkManager", "perl-IO-Socket-SSL", "libstdc++", "python3.11", "kernel_rt"} {
		if err := rules.ValidateRPMPackage(p); err != nil {
			t.Errorf("ValidateRPMPackage(%q) = %v", p, err)
		}
	}
	for _, v := range []string{"1.36.1-r7", "3.1.4-r5", "1.0_rc1-r0", "2.4.58-r0", "1.2.3_git20240101-r1", "1.0"} {
		if err := rules.ValidateAPKVersion(v); err != nil {
			t.Errorf("ValidateAPKVersion(%q) = %v", v, err)
		}
	}
	for _, p := range []string{"busybox", "libcrypto3", "py3-pip", "linux-lts", "gtk+3.0"} {
		if err := rules.ValidateAPKPackage(p); err != nil {
			t.Errorf("ValidateAPKPackage(%q) = %v", p, err)
		}
	}
}
