// Package local provisions twins as sandbox hosts on this machine: a replica
// gets the target's package manifest (read from the target over SSH with
// dpkg-query) and the same package repository, and is then driven over a
// real SSH connection like any host.
//
// It replicates packages, not everything: files the target has beyond its
// packages (local configuration, data) are not copied. That is the fidelity
// the demo needs, and the reason staged rollouts still start with a canary.
// The Docker twin (a container from the target's OS image) is the
// production-grade provisioner.
package local

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
	"vulnzero.dev/vulnzero/sandbox"
	"vulnzero.dev/vulnzero/sandbox/pkgtool"
	"vulnzero.dev/vulnzero/twin"
)

// Runner reads the target's state; *fleet.Client satisfies it.
type Runner interface {
	Run(ctx context.Context, host vulnzero.Host, cmd fleet.Command) (fleet.Result, error)
}

// Provisioner builds sandbox replicas of target hosts.
type Provisioner struct {
	// Targets reaches the real target hosts, to read their manifests.
	Targets Runner
	// Available is the package repository the replica installs from.
	Available map[string][]string
	// ToolPath is the executable serving as the replica's package tool
	// (see sandbox/pkgtool.Provision).
	ToolPath string
	// Dir holds the replicas' directories; os.TempDir() when empty.
	Dir    string
	Logger *slog.Logger
}

var _ twin.Provisioner = (*Provisioner)(nil)

// manifestCmd lists the target's installed packages.
const manifestCmd = "dpkg-query -W -f='${Package}\\t${Version}\\n'\n"

// Provision reads the target's manifest and starts a replica with it.
func (p *Provisioner) Provision(ctx context.Context, target vulnzero.Host) (twin.Replica, error) {
	res, err := p.Targets.Run(ctx, target, fleet.Command{Script: []byte(manifestCmd), Timeout: time.Minute})
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s: %w", target.Name, err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("read manifest of %s: dpkg-query exited %d: %s", target.Name, res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	installed, err := parseManifest(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s: %w", target.Name, err)
	}
	dir, err := os.MkdirTemp(p.Dir, "twin-"+target.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("twin of %s: %w", target.Name, err)
	}
	r := &replica{dir: dir, host: "twin-" + target.Name}
	if err := r.start(ctx, p, target, installed); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("twin of %s: %w", target.Name, err)
	}
	return r, nil
}

func parseManifest(s string) (map[string]string, error) {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, version, ok := strings.Cut(line, "\t")
		if !ok || name == "" || version == "" {
			return nil, fmt.Errorf("manifest line %d: %q is not name<TAB>version", n, line)
		}
		m[name] = version
	}
	return m, sc.Err()
}

type replica struct {
	dir    string
	host   string
	fleet  *sandbox.Fleet
	client *fleet.Client
	target vulnzero.Host
}

func (r *replica) start(ctx context.Context, p *Provisioner, target vulnzero.Host, installed map[string]string) error {
	var err error
	r.fleet, err = sandbox.Start(ctx, sandbox.Config{
		Dir: r.dir, Hosts: []sandbox.HostSpec{{Name: r.host, Labels: target.Labels}}, Logger: p.Logger,
	})
	if err != nil {
		return err
	}
	if err := pkgtool.Provision(r.fleet.Root(r.host), p.ToolPath, installed, p.Available); err != nil {
		return err
	}
	signer, err := fleet.LoadSigner(r.fleet.ClientKeyPath())
	if err != nil {
		return err
	}
	hk, err := fleet.KnownHosts(r.fleet.KnownHostsPath())
	if err != nil {
		return err
	}
	r.client, err = fleet.New(fleet.Config{Signers: []ssh.Signer{signer}, HostKeyCallback: hk, MaxParallel: 1, Logger: p.Logger})
	if err != nil {
		return err
	}
	r.target = r.fleet.Hosts()[0]
	return nil
}

func (r *replica) Run(ctx context.Context, cmd fleet.Command) (fleet.Result, error) {
	return r.client.Run(ctx, r.target, cmd)
}

// Close stops the replica and removes its directory.
func (r *replica) Close() error {
	if r.client != nil {
		_ = r.client.Close()
	}
	var err error
	if r.fleet != nil {
		err = r.fleet.Close()
	}
	if rerr := os.RemoveAll(r.dir); err == nil {
		err = rerr
	}
	return err
}
