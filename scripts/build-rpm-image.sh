#!/usr/bin/env bash
# Builds vulnzero/rpm-tools:dnf-12 and :zypper-12 (images/rpm-tools/
# Dockerfile): the twin base image plus Debian's rpm, createrepo-c and dnf
# or zypper (which conflict in Debian), for running the dnf and zypper patch
# scripts against the real package managers. Like the twin image they need
# no registry: the base is built locally first, and the packages come from
# the build machine's Debian mirror. Each image is tagged with a hash of the
# recipe and the base, and rebuilt only when that changes.
#
#   scripts/build-rpm-image.sh           build what is missing, print the images
#
# Needs root (the base image's debootstrap) and docker.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
image=vulnzero/rpm-tools
base=$(bash "$root/scripts/build-twin-image.sh")

exec 9>"${TMPDIR:-/tmp}/vulnzero-rpm-image.lock"
flock 9

build() { # build TAG PACKAGES...
	local tag=$1
	shift
	local hash ref start mirror log
	hash=$(cat "$root/scripts/build-rpm-image.sh" "$root/images/rpm-tools/Dockerfile" <(echo "$base $*") | sha256sum | cut -c1-12)
	ref=$image:$tag-$hash
	if ! docker image inspect "$ref" >/dev/null 2>&1; then
		start=$(date +%s)
		mirror=$(bash "$root/scripts/build-twin-image.sh" --mirror)
		log=$(mktemp)
		if ! docker build --build-arg "BASE=$base" --build-arg "MIRROR=$mirror" --build-arg "PACKAGES=$*" \
			--label "dev.vulnzero.recipe=$hash" -t "$ref" "$root/images/rpm-tools" >"$log" 2>&1; then
			tail -n 30 "$log" >&2
			rm -f "$log"
			echo "build-rpm-image: docker build of $tag failed (log above)" >&2
			exit 1
		fi
		rm -f "$log"
		docker image ls --format '{{.Repository}}:{{.Tag}}' "$image" |
			grep -E "^$image:$tag-[0-9a-f]{12}\$" | grep -vx "$ref" |
			xargs -r docker rmi >/dev/null 2>&1 || true
		echo "build-rpm-image: built $ref in $(($(date +%s) - start))s" >&2
	fi
	docker tag "$ref" "$image:$tag"
	echo "$ref"
}

build dnf-12 dnf dnf-plugins-core
build zypper-12 zypper
