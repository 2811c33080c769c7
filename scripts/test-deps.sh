#!/usr/bin/env bash
# Installs what the test suite needs on a brand-new Debian 12 machine:
# git, OpenSSH's sshd (fleet tests run against real sshd), PostgreSQL (the
# store conformance suite runs against a real server that the tests start
# themselves), bash and shellcheck (guardrails). Idempotent: does nothing when
# everything is present.
set -euo pipefail

need=()
command -v git >/dev/null || need+=(git)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v runuser >/dev/null || need+=(util-linux)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: missing ${need[*]}; run this script as root (or install them)" >&2
    exit 1
  fi
  echo "test-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Debian's postgresql package starts a cluster of its own; the tests start
# their own throwaway servers, so the packaged one is not needed.
mkdir -p /run/sshd
echo "test-deps: ok (sshd $(/usr/sbin/sshd -V 2>&1 | head -1 || true); $(ls -d /usr/lib/postgresql/*/bin | head -1))"
