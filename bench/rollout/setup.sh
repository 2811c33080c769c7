#!/usr/bin/env bash
# setup.sh — installs what `make bench-rollout` compares VulnZero against and
# runs it with: Ansible, parallel-ssh, OpenSSH (client and server), GNU time,
# iproute2 (ss) and python3, from Debian. Idempotent: installs only what is
# missing. Needs root. Not part of the test dependencies: only the benchmark
# uses these.
set -euo pipefail

need=()
command -v ansible >/dev/null || need+=(ansible)
command -v parallel-ssh >/dev/null || need+=(pssh)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null || need+=(openssh-client)
[ -x /usr/bin/time ] || need+=(time)
command -v ss >/dev/null || need+=(iproute2)
command -v python3 >/dev/null || need+=(python3)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench setup: missing ${need[*]}; run as root (or install them)" >&2
    exit 1
  fi
  echo "bench setup: installing ${need[*]}"
  # Keep the packaged sshd (port 22, every address) from starting: the
  # benchmark's hosts are its own sshd processes on loopback.
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } || rc=$?
  [ $made_policy -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc -eq 0 ] || { echo "bench setup: apt-get install ${need[*]} failed ($rc)" >&2; exit $rc; }
fi
mkdir -p /run/sshd
echo "bench setup: ok ($(ansible --version 2>/dev/null | sed -n 1p); pssh $(parallel-ssh --version 2>&1); $(ssh -V 2>&1))"
