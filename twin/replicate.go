package twin

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
)

// This file holds what every SSH-reachable replica (a Docker container, a
// staging host) does to look like its target: read the target's state, then
// bring the replica's apt configuration, packages and services in line.

// HostRunner runs a script on a host; *fleet.Client satisfies it.
type HostRunner interface {
	Run(ctx context.Context, host vulnzero.Host, cmd fleet.Command) (fleet.Result, error)
}

// HostState is what a replica copies from its target host.
type HostState struct {
	// OS is "<ID> <VERSION_ID>" from /etc/os-release, e.g. "debian 12": the
	// key of TwinPolicy.images.
	OS string
	// Packages are the installed packages, binary package name (with an
	// architecture qualifier for foreign ones) → version.
	Packages map[string]string
	// AptConfig is a gzipped tar (paths relative to /) of the target's apt
	// sources, pins and keyrings, so the replica resolves and downloads
	// packages as the target does. Credentials (/etc/apt/auth.conf*) are
	// never read.
	AptConfig []byte
}

// aptConfigPaths are copied from target to replica, when they exist. Pins
// (preferences) matter as much as sources: they decide which version apt
// picks.
var aptConfigPaths = []string{
	"etc/apt/sources.list", "etc/apt/sources.list.d",
	"etc/apt/preferences", "etc/apt/preferences.d",
	"etc/apt/trusted.gpg", "etc/apt/trusted.gpg.d", "etc/apt/keyrings",
	"usr/share/keyrings",
}

// readStateScript prints the sections ReadHostState parses. Only packages
// dpkg reports as installed count: a removed package with its config files
// left is not on the host.
var readStateScript = `set -eu
. /etc/os-release 2>/dev/null || true
echo "@@os ${ID:-unknown} ${VERSION_ID:-}"
echo "@@manifest"
dpkg-query -W -f='${binary:Package}\t${Version}\t${db:Status-Status}\n' | awk -F '\t' '$3 == "installed" { print $1 "\t" $2 }'
echo "@@apt"
cd /
set --
for p in ` + strings.Join(aptConfigPaths, " ") + `; do
	if [ -e "$p" ]; then set -- "$@" "$p"; fi
done
if [ $# -gt 0 ]; then tar -czf - "$@" | base64; fi
echo "@@end"
`

// ReadHostState reads the OS, the installed packages and the apt
// configuration of host h in one session.
func ReadHostState(ctx context.Context, r HostRunner, h vulnzero.Host) (HostState, error) {
	res, err := r.Run(ctx, h, fleet.Command{Script: []byte(readStateScript), Timeout: 2 * time.Minute})
	if err != nil {
		return HostState{}, fmt.Errorf("read state of %s: %w", h.Name, err)
	}
	if res.ExitCode != 0 {
		return HostState{}, fmt.Errorf("read state of %s: exit %d: %s", h.Name, res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	st, err := parseHostState(res.Stdout)
	if err != nil {
		return HostState{}, fmt.Errorf("read state of %s: %w", h.Name, err)
	}
	return st, nil
}

func parseHostState(out string) (HostState, error) {
	st := HostState{Packages: map[string]string{}}
	var section string
	var apt strings.Builder
	ended := false
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "@@"); ok {
			section, _, _ = strings.Cut(rest, " ")
			if section == "os" {
				st.OS = strings.TrimSpace(strings.TrimPrefix(rest, "os"))
			}
			ended = section == "end"
			continue
		}
		switch section {
		case "manifest":
			name, version, ok := strings.Cut(line, "\t")
			if !ok || name == "" || version == "" {
				return st, fmt.Errorf("manifest line %d: %q is not name<TAB>version", n, line)
			}
			st.Packages[name] = version
		case "apt":
			apt.WriteString(line)
		}
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if !ended {
		return st, fmt.Errorf("state output ends early (no @@end marker)")
	}
	if apt.Len() > 0 {
		b, err := base64.StdEncoding.DecodeString(apt.String())
		if err != nil {
			return st, fmt.Errorf("apt configuration: %w", err)
		}
		st.AptConfig = b
	}
	return st, nil
}

// SyncOptions tunes Sync.
type SyncOptions struct {
	// AptSources, when set, replaces the target's apt sources in the
	// replica (a sources.list in one-line format), e.g. a mirror the
	// replica can reach when the target's cannot be.
	AptSources string
	// Services are started (restarted when running) after the packages,
	// in order: TwinPolicy.services.
	Services []string
	// Timeout bounds each step; 5 minutes when zero.
	Timeout time.Duration
}

// Replication says how faithfully a replica copies its target; it heads the
// transcript, so a reviewer knows what the twin did and did not reproduce.
type Replication struct {
	Target    string
	OS        string
	Installed []string // name=version installed to match the target
	Missing   []string // name=version the replica's apt sources do not carry
	Extra     int      // packages the replica has and the target has not (left alone)
	Services  []string // started
	Notes     []string // warnings, e.g. apt-get update trouble
	Duration  time.Duration
}

// String renders the replication for a transcript.
func (r Replication) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replica of %s (%s), provisioned in %s\n", r.Target, r.OS, r.Duration.Round(time.Millisecond))
	list := func(label string, items []string) {
		if len(items) == 0 {
			fmt.Fprintf(&b, "%s: none\n", label)
			return
		}
		fmt.Fprintf(&b, "%s: %s\n", label, strings.Join(items, " "))
	}
	list("installed to match the target", r.Installed)
	list("NOT replicated (not in the replica's apt sources)", r.Missing)
	if r.Extra > 0 {
		fmt.Fprintf(&b, "packages the replica has beyond the target's: %d\n", r.Extra)
	}
	list("services started", r.Services)
	for _, n := range r.Notes {
		b.WriteString("note: " + n + "\n")
	}
	return b.String()
}

// aptGet runs apt-get without prompts and keeps the replica's changed
// configuration files, as the patch scripts do.
const aptGet = "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

// Sync makes replica h (reached through r) look like the target whose state
// is st: the target's apt configuration replaces the replica's, every
// installed package of the target that the replica has at another version
// (or not at all) is installed at the target's version when the replica's
// apt sources carry it, and the services are started. Packages the sources
// do not carry are reported in Replication.Missing rather than failing: a
// rehearsal is still useful when an unrelated package differs.
func Sync(ctx context.Context, r HostRunner, h vulnzero.Host, target string, st HostState, opt SyncOptions) (Replication, error) {
	start := time.Now()
	rep := Replication{Target: target, OS: st.OS}
	timeout := orDefault(opt.Timeout, 5*time.Minute)
	run := func(step, script string) (fleet.Result, error) {
		res, err := r.Run(ctx, h, fleet.Command{Script: []byte(script), Timeout: timeout})
		if err != nil {
			return res, fmt.Errorf("%s on replica %s: %w", step, h.Name, err)
		}
		return res, nil
	}

	// 1. apt configuration, package lists, and the replica's own manifest.
	res, err := run("apt configuration", aptConfigScript(st.AptConfig, opt.AptSources))
	if err != nil {
		return rep, err
	}
	if res.ExitCode != 0 {
		return rep, fmt.Errorf("apt configuration on replica %s: exit %d: %s", h.Name, res.ExitCode, tail(output(res), 2000))
	}
	mine, err := parseHostState(res.Stdout)
	if err != nil {
		return rep, fmt.Errorf("apt configuration on replica %s: %w", h.Name, err)
	}
	if strings.Contains(res.Stdout, "@@update-failed") {
		rep.Notes = append(rep.Notes, "apt-get update reported errors; packages were resolved with the lists it could fetch:\n"+tail(res.Stderr, 2000))
	}
	var want []string
	for _, name := range slices.Sorted(maps.Keys(st.Packages)) {
		if v := st.Packages[name]; mine.Packages[name] != v {
			want = append(want, name+"="+v)
		}
	}
	for name := range mine.Packages {
		if _, ok := st.Packages[name]; !ok {
			rep.Extra++
		}
	}

	// 2. which of those the sources carry, then one apt-get install.
	if len(want) > 0 {
		res, err := run("apt-cache madison", "apt-cache madison "+shellWords(names(want))+" 2>/dev/null || true\n")
		if err != nil {
			return rep, err
		}
		avail := parseMadison(res.Stdout)
		for _, spec := range want {
			// madison names foreign-architecture packages without their
			// ":arch" qualifier.
			name, version, _ := strings.Cut(spec, "=")
			base, _, _ := strings.Cut(name, ":")
			if avail[spec] || avail[base+"="+version] {
				rep.Installed = append(rep.Installed, spec)
			} else {
				rep.Missing = append(rep.Missing, spec)
			}
		}
	}
	if len(rep.Installed) > 0 {
		res, err := run("install target packages", aptGet+" install -y --allow-downgrades --no-install-recommends "+shellWords(rep.Installed)+" </dev/null\n")
		if err != nil {
			return rep, err
		}
		if res.ExitCode != 0 {
			return rep, fmt.Errorf("install the target's packages on replica %s (%s): exit %d: %s",
				h.Name, strings.Join(rep.Installed, " "), res.ExitCode, tail(output(res), 2000))
		}
	}

	// 3. services.
	if len(opt.Services) > 0 {
		res, err := run("start services", "set -- "+shellWords(opt.Services)+"\n"+startServicesScript)
		if err != nil {
			return rep, err
		}
		if res.ExitCode != 0 {
			return rep, fmt.Errorf("start services %s on replica %s: exit %d: %s",
				strings.Join(opt.Services, ", "), h.Name, res.ExitCode, tail(output(res), 2000))
		}
		rep.Services = append(rep.Services, opt.Services...)
	}
	rep.Duration = time.Since(start)
	return rep, nil
}

// aptConfigScript replaces the replica's apt configuration with the
// target's (or with sources), refreshes the package lists and prints the
// replica's manifest in readStateScript's format.
func aptConfigScript(config []byte, sources string) string {
	var b strings.Builder
	b.WriteString(`set -eu
rm -rf /etc/apt/sources.list.d /etc/apt/preferences.d /etc/apt/trusted.gpg.d /etc/apt/keyrings
rm -f /etc/apt/preferences /etc/apt/trusted.gpg
mkdir -p /etc/apt/sources.list.d /etc/apt/preferences.d /etc/apt/trusted.gpg.d
: >/etc/apt/sources.list
`)
	if len(config) > 0 {
		b.WriteString("base64 -d <<'VZ_APT_CONFIG' | tar -xzf - -C /\n")
		enc := base64.StdEncoding.EncodeToString(config)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\nVZ_APT_CONFIG\n")
	}
	if sources != "" {
		b.WriteString("rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources\n")
		b.WriteString("cat >/etc/apt/sources.list <<'VZ_APT_SOURCES'\n" + strings.TrimRight(sources, "\n") + "\nVZ_APT_SOURCES\n")
	}
	b.WriteString(`if ! ` + aptGet + ` update -qq </dev/null >/dev/null; then echo "@@update-failed"; fi
echo "@@manifest"
dpkg-query -W -f='${binary:Package}\t${Version}\t${db:Status-Status}\n' | awk -F '\t' '$3 == "installed" { print $1 "\t" $2 }'
echo "@@end"
`)
	return b.String()
}

// startServicesScript (re)starts each service in "$@" the way the host
// would: systemd when it runs, else the SysV init script, else the unit's
// ExecStart in the background under start-stop-daemon (a container has no
// init system; tini reaps what is started). It then checks the service runs.
const startServicesScript = `fail=0
for s in "$@"; do
	if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
		if ! systemctl restart "$s" || ! systemctl is-active --quiet "$s"; then
			echo "service $s did not start:" >&2
			systemctl status --no-pager "$s" >&2 || true
			fail=1
		fi
	elif [ -x "/etc/init.d/$s" ]; then
		if ! "/etc/init.d/$s" restart </dev/null || ! "/etc/init.d/$s" status >/dev/null </dev/null; then
			echo "service $s did not start (/etc/init.d/$s)" >&2
			fail=1
		fi
	else
		unit=
		for u in "/etc/systemd/system/$s.service" "/lib/systemd/system/$s.service" "/usr/lib/systemd/system/$s.service"; do
			if [ -f "$u" ]; then unit=$u; break; fi
		done
		if [ -z "$unit" ]; then
			echo "service $s: no init script and no systemd unit on this host" >&2
			fail=1
			continue
		fi
		cmd=$(sed -n 's/^ExecStart=[-@+!:]*//p' "$unit" | head -n 1)
		pid=/run/vz-twin-$s.pid
		start-stop-daemon --stop --quiet --oknodo --retry 5 --remove-pidfile --pidfile "$pid"
		if ! start-stop-daemon --start --background --make-pidfile --pidfile "$pid" --startas /bin/sh -- -c "exec $cmd" ||
			! { sleep 0.2; start-stop-daemon --status --pidfile "$pid"; }; then
			echo "service $s did not start (ExecStart of $unit: $cmd)" >&2
			fail=1
		fi
	fi
	[ "$fail" -ne 0 ] || echo "started $s"
done
exit "$fail"
`

// parseMadison reads `apt-cache madison` output ("name | version | source")
// into the set of name=version the sources carry.
func parseMadison(out string) map[string]bool {
	m := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "|")
		if len(f) < 3 {
			continue
		}
		m[strings.TrimSpace(f[0])+"="+strings.TrimSpace(f[1])] = true
	}
	return m
}

// names strips the versions from name=version specs.
func names(specs []string) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i], _, _ = strings.Cut(s, "=")
	}
	return out
}

// shellWords single-quotes each word for a POSIX shell.
func shellWords(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// tail keeps the last n bytes of s, where errors usually are.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
