// Package twintest sets up what the twin tests need from the real world:
// the locally built twin image (built by scripts/build-twin-image.sh when
// missing, so `go test` works on a fresh machine, slowly the first time),
// local apt repositories of the fixture packages (fixtures/debs), and a
// "production" target host — a container with the vulnerable library and
// the demo service running — reached over real SSH.
package twintest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fixtures/debs"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/twin/docker"
)

// RepoMount is where hosts see the fixture apt repository, and Sources the
// apt line that names it.
const (
	RepoMount = "/srv/vz-apt"
	Sources   = "deb [trusted=yes] file:" + RepoMount + " ./"
)

// Service is the demo service the twin starts (TwinPolicy.services) and
// HealthCheck its health check (TwinPolicy.healthChecks).
var (
	Service     = "vz-demo-web"
	HealthCheck = vulnzero.HealthCheck{Name: "vz-demo-web", Command: "busybox wget -q -O - http://127.0.0.1:8080/cgi-bin/health"}
)

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// EnsureImage returns the twin base image, building it with
// scripts/build-twin-image.sh when it is missing (debootstrap: about a
// minute with a fast mirror; needs root, debootstrap and docker).
func EnsureImage(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(Root(), "scripts", "build-twin-image.sh"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build twin image (scripts/build-twin-image.sh; run scripts/test-deps.sh first): %w\n%s", err, stderr.String())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 {
		return "", fmt.Errorf("build twin image: the script printed no image name\n%s", stderr.String())
	}
	return lines[len(lines)-1], nil
}

// Repos are two local apt repositories of the fixture packages: Stable
// carries libfoo 1.0.0 and the fix 1.0.1; Next also carries 1.0.2, the
// release that breaks the demo service — the mirror a week later.
type Repos struct {
	Stable string
	Next   string
}

// BuildRepos builds both repositories under dir.
func BuildRepos(ctx context.Context, dir string) (Repos, error) {
	r := Repos{Stable: filepath.Join(dir, "stable"), Next: filepath.Join(dir, "next")}
	base := []debs.Package{debs.LibfooVulnerable, debs.LibfooFixed, debs.Web, debs.Tool}
	if err := debs.Repo(ctx, r.Stable, base...); err != nil {
		return r, err
	}
	if err := debs.Repo(ctx, r.Next, append(base, debs.LibfooBreaking)...); err != nil {
		return r, err
	}
	return r, nil
}

// Bind mounts repo where Sources expects it.
func Bind(repo string) string { return repo + ":" + RepoMount + ":ro" }

// Target is a running "production" host.
type Target struct {
	*docker.Host
	Client *fleet.Client
}

// Close disconnects; the engine removes the container.
func (t *Target) Close() error { return t.Client.Close() }

// setupTarget makes a fresh container a production host running the
// vulnerable libfoo under the demo service.
var setupTarget = `set -eu
echo '` + Sources + `' >/etc/apt/sources.list.d/vz-fixtures.list
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq </dev/null
apt-get install -y -qq --no-install-recommends ` + debs.LibfooVulnerable.String() + ` ` + debs.Web.String() + ` </dev/null >/dev/null
/etc/init.d/vz-demo-web start
for i in 1 2 3 4 5 6 7 8 9 10; do
	if ` + HealthCheck.Command + `; then exit 0; fi
	sleep 0.2
done
exit 1
`

// StartTarget starts a target host from image with repo mounted: libfoo
// 1.0.0 (vulnerable) and the demo service installed from repo, the service
// running and healthy.
func StartTarget(ctx context.Context, e *docker.Engine, image, repo, name string) (*Target, error) {
	h, err := e.StartHost(ctx, docker.HostSpec{Image: image, Name: name, Binds: []string{Bind(repo)}})
	if err != nil {
		return nil, err
	}
	c, err := fleet.New(h.FleetConfig(nil))
	if err != nil {
		_ = e.Remove(h)
		return nil, err
	}
	t := &Target{Host: h, Client: c}
	res, err := c.Run(ctx, h.Host, fleet.Command{Script: []byte(setupTarget), Timeout: 2 * time.Minute})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit %d\n%s\n%s", res.ExitCode, res.Stdout, res.Stderr)
	}
	if err != nil {
		_ = t.Close()
		_ = e.Remove(h)
		return nil, fmt.Errorf("set up target %s: %w", name, err)
	}
	return t, nil
}

// Installed returns the version of pkg on host h ("" when not installed).
func Installed(ctx context.Context, r interface {
	Run(context.Context, vulnzero.Host, fleet.Command) (fleet.Result, error)
}, h vulnzero.Host, pkg string) (string, error) {
	res, err := r.Run(ctx, h, fleet.Command{
		Script: []byte("dpkg-query -W -f='${Version}' " + pkg + " 2>/dev/null || true\n"), Timeout: time.Minute,
	})
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(res.Stdout), nil
}

// SetRyukDisabled turns off testcontainers' reaper for this test process:
// its image cannot be pulled here, and twin/docker removes its containers
// itself. Call it from TestMain before anything touches testcontainers.
func SetRyukDisabled() {
	_ = os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
}
