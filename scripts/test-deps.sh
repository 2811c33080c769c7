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
# rpm: remedy/version checks its RPM ordering against rpm's own vercmp.
command -v rpm >/dev/null || need+=(rpm)
command -v runuser >/dev/null || need+=(util-linux)
# twin tests: the twin image is a debootstrap rootfs; fixture .debs are
# indexed with dpkg-scanpackages.
[ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)

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
# The twin tests need the twin base image; building it takes about a minute
# the first time (debootstrap), a fraction of a second when it is cached.
# The dnf and zypper script tests (remedy/rules) need the rpm-tools images
# built on it: about another minute the first time.
if docker info >/dev/null 2>&1; then
  bash "$(dirname "$0")/build-twin-image.sh" >/dev/null
  bash "$(dirname "$0")/build-rpm-image.sh" >/dev/null
else
  echo "test-deps: warning: docker is not reachable; the twin tests (twin/docker, twin/ssh) will fail" >&2
fi
echo "test-deps: ok (sshd $(/usr/sbin/sshd -V 2>&1 | head -1 || true); $(ls -d /usr/lib/postgresql/*/bin | head -1))"
