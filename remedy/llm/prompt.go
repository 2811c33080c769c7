package llm

import (
	"fmt"
	"slices"
	"strings"

	"vulnzero.dev/vulnzero"
)

// systemPrompt is the patch contract every answer must follow. It is the
// same for every request, so the prompt hash changes only with the request.
const systemPrompt = `You write remediation patches for VulnZero, which runs them on production Linux hosts.
A patch is three POSIX sh scripts. The contract:
- Each script runs as root with /bin/sh -s (dash on Debian, bash on RHEL and SUSE, busybox ash on Alpine):
  the script arrives on stdin, so commands must not read stdin (redirect </dev/null) and bashisms are errors.
- The environment holds VZ_PATCH_ID (the patch id), VZ_HOST (the host name) and VZ_PHASE (apply, verify or rollback).
  Keep state for rollback under ${VZ_STATE_DIR:-/var/lib/vulnzero}/$VZ_PATCH_ID.
- apply: makes the change. It must be idempotent: a second run on a fixed host is a no-op that exits 0.
  Before changing anything it saves what rollback needs (old packages, the package manager's transaction id,
  backups of files it edits). It waits a bounded time for the package manager's lock and fails with a clear
  message if the lock stays held. It never reboots: it prints VZ_REBOOT_REQUIRED=1 when a reboot is needed.
- verify: changes nothing. Exit 0 if and only if the vulnerability is remediated on this host, 1 if it is not.
- rollback: restores the state from before apply using what apply saved, checks that it did, and is a no-op
  (exit 0) when apply never ran or the rollback already happened.
- Use only the host's configured, signed package repositories. Never download and run code, disable signature
  checks, weaken the firewall, SELinux, AppArmor or auditing, add users or keys, or use eval.
Answer with the structured format you are given: apply, verify and rollback (complete scripts starting with
#!/bin/sh) and a short rationale saying why they fix the findings and what the rollback restores.`

// maxTranscript bounds the failure transcript in a prompt; the end of a run
// (the error, the rollback) matters most, so the start is cut.
const maxTranscript = 16 << 10

// BuildPrompt renders the first prompt for req. It is deterministic: the
// same request gives the same prompt, and so the same hash.
func BuildPrompt(req Request) Prompt {
	var b strings.Builder
	if req.Failure != nil {
		b.WriteString("Write an ALTERNATIVE patch: the previous revision of this patch failed in production, was rolled back and is quarantined, so it will never be proposed again. Do not repeat it; avoid what made it fail.\n\n")
	} else {
		b.WriteString("Write a patch that remediates these findings.\n\n")
	}
	fmt.Fprintf(&b, "Patch id: %s\n", req.PatchID)
	if req.OS != "" {
		fmt.Fprintf(&b, "Host OS: %s\n", req.OS)
	}
	if req.Manager != "" {
		fmt.Fprintf(&b, "Package manager: %s\n", req.Manager)
	}
	if req.Package != "" {
		fmt.Fprintf(&b, "Package: %s\n", req.Package)
	}
	if req.FixedVersion != "" {
		fmt.Fprintf(&b, "Fixed version: %s (upgrade only this package, to at least this version)\n", req.FixedVersion)
	} else if req.Package != "" {
		b.WriteString("Fixed version: none is available; mitigate without a package upgrade\n")
	}
	hosts := slices.Clone(req.Hosts)
	slices.Sort(hosts)
	fmt.Fprintf(&b, "Target hosts (%d): %s\n", len(hosts), strings.Join(hosts, ", "))

	if len(req.Findings) > 0 {
		fs := slices.Clone(req.Findings)
		slices.SortFunc(fs, func(a, b vulnzero.Finding) int { return strings.Compare(a.Host+"\x00"+a.CVE, b.Host+"\x00"+b.CVE) })
		b.WriteString("\nFindings (host | os | package | installed | fixed | CVE | severity | CVSS | title):\n")
		for _, f := range fs {
			fmt.Fprintf(&b, "%s | %s | %s | %s | %s | %s | %s | %.1f | %s\n",
				f.Host, f.OS, f.Package, f.Installed, orNone(f.Fixed), f.CVE, f.Severity, f.CVSS, oneLine(f.Title))
		}
	}
	if s := strings.TrimSpace(req.PackageState); s != "" {
		fmt.Fprintf(&b, "\nPackage state reported by the hosts:\n%s\n", s)
	}
	if f := req.Failure; f != nil {
		fmt.Fprintf(&b, "\nThe quarantined revision %s failed: %s\n", f.Revision.Short(), oneLine(f.Reason))
		for _, s := range []struct {
			name string
			body []byte
		}{{vulnzero.ApplyFile, f.Scripts.Apply}, {vulnzero.VerifyFile, f.Scripts.Verify}, {vulnzero.RollbackFile, f.Scripts.Rollback}} {
			if len(s.body) > 0 {
				fmt.Fprintf(&b, "\nIts %s:\n```sh\n%s\n```\n", s.name, strings.TrimRight(string(s.body), "\n"))
			}
		}
		if t := strings.TrimSpace(f.Transcript); t != "" {
			if len(t) > maxTranscript {
				t = "[… start of the transcript cut …]\n" + t[len(t)-maxTranscript:]
			}
			fmt.Fprintf(&b, "\nTranscript of the failed run:\n```\n%s\n```\n", t)
		}
	}
	return Prompt{System: systemPrompt, Messages: []Message{{Role: RoleUser, Content: b.String()}}}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// oneLine keeps a scanner's free text on one line of the findings table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func sortStrings(s []string) { slices.Sort(s) }
