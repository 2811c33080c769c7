// Command rollout measures VulnZero's rollout path for `make bench-rollout`
// (bench/rollout/run.sh runs everything and prints the tables). Its hosts
// are real sshd processes on loopback started by
// ../shared/bench/fanout/hosts-up.sh; nothing here targets another address.
//
//	rollout stage --hosts hosts.txt --key K --known-hosts KH --concurrency 50 -- 'WORKLOAD'
//
// rolls one patch out to every listed host in one stage (strategy
// all-at-once, maxParallel = concurrency) through the real reconciler:
// SQLite store, every host step recorded before and after it runs, apply.sh =
// WORKLOAD, then verify.sh (`true`) on each host. It exits 0 only if the
// rollout succeeded on every host, so it plugs into the fan-out harness as
// VZB_CUSTOM_CMD and is timed next to Ansible and parallel-ssh in one run.
//
//	rollout latency --hosts hosts.txt --key K --known-hosts KH --merges 100
//
// measures merge-to-first-host latency: a remediation repository (local bare
// git), the local forge, and a running reconciler (Start, poll interval an
// hour, so only the webhook can wake it). For each merge it pushes a patch
// branch, opens a PR, merges it on the forge, posts a GitHub-style push
// webhook (HMAC-SHA256 signed) to a loopback HTTP handler that verifies it
// and calls Reconciler.Trigger, and takes the time until the runner starts
// the first command of that patch on a host. It prints p50/p90/p99/max.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"vulnzero.dev/vulnzero"
	"vulnzero.dev/vulnzero/fleet"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "stage":
		err = stageCmd(ctx, os.Args[2:])
	case "latency":
		err = latencyCmd(ctx, os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rollout:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage:
  rollout stage   --hosts FILE --key FILE --known-hosts FILE [--user root] [--concurrency 50] -- WORKLOAD
  rollout latency --hosts FILE --key FILE --known-hosts FILE [--user root] [--merges 100] [--targets 2]`)
	os.Exit(2)
}

// sshFlags are the flags both subcommands take to reach the hosts.
type sshFlags struct {
	hosts, key, knownHosts, user string
}

func (s *sshFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.hosts, "hosts", "", "file with one address:port per line (the harness's hosts.txt)")
	fs.StringVar(&s.key, "key", "", "private key file")
	fs.StringVar(&s.knownHosts, "known-hosts", "", "known_hosts file the host keys are checked against")
	fs.StringVar(&s.user, "user", "root", "remote user")
}

func (s *sshFlags) check() error {
	if s.hosts == "" || s.key == "" || s.knownHosts == "" {
		return errors.New("--hosts, --key and --known-hosts are required")
	}
	return nil
}

// inventory reads the hosts file into hosts named h001, h002, … in file
// order (the harness's names).
func (s *sshFlags) inventory() (vulnzero.Inventory, error) {
	f, err := os.Open(s.hosts)
	if err != nil {
		return vulnzero.Inventory{}, fmt.Errorf("hosts file: %w", err)
	}
	defer f.Close()
	var inv vulnzero.Inventory
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		host, portStr, err := net.SplitHostPort(line)
		if err != nil {
			return inv, fmt.Errorf("%s:%d: %q is not address:port: %w", s.hosts, n, line, vulnzero.ErrInvalid)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return inv, fmt.Errorf("%s:%d: port %q: %w", s.hosts, n, portStr, vulnzero.ErrInvalid)
		}
		inv.Hosts = append(inv.Hosts, vulnzero.Host{Name: fmt.Sprintf("h%03d", len(inv.Hosts)+1), Address: host, Port: port,
			User: s.user, Labels: map[string]string{"role": "bench"}})
	}
	if err := sc.Err(); err != nil {
		return inv, fmt.Errorf("hosts file: %w", err)
	}
	if len(inv.Hosts) == 0 {
		return inv, fmt.Errorf("%s lists no hosts: %w", s.hosts, vulnzero.ErrInvalid)
	}
	return inv, nil
}

// client is the fleet client the reconciler runs commands with, host keys
// checked.
func (s *sshFlags) client(parallel int) (*fleet.Client, error) {
	signer, err := fleet.LoadSigner(s.key)
	if err != nil {
		return nil, err
	}
	hk, err := fleet.KnownHosts(s.knownHosts)
	if err != nil {
		return nil, err
	}
	return fleet.New(fleet.Config{User: s.user, Signers: []ssh.Signer{signer}, HostKeyCallback: hk,
		ConnectTimeout: 60 * time.Second, MaxParallel: parallel})
}

// benchPatch is a patch whose apply.sh is script, targeting hosts.
func benchPatch(id, title string, script []byte, hosts []string) vulnzero.Patch {
	return vulnzero.Patch{
		APIVersion: vulnzero.APIVersion, Kind: vulnzero.KindPatch, ID: id, Title: title,
		CVEs:      []string{"CVE-2026-0001"},
		Package:   vulnzero.PackageRef{Name: "libbench", Manager: vulnzero.APT, FixedVersion: "1.0.1"},
		Targets:   vulnzero.Targets{Hosts: hosts},
		Generator: vulnzero.Generator{Kind: "rules"},
		Scripts:   vulnzero.Scripts{Apply: script, Verify: []byte("true\n"), Rollback: []byte("true\n")},
	}
}
