#!/usr/bin/env bash
# Builds the twin base image vulnzero/twin-debian:12 without any registry: a
# Debian 12 rootfs made with debootstrap from the build machine's own Debian
# mirror, set up by images/debian-12/setup.sh and imported with
# `docker import`. The image is tagged with a hash of the recipe
# (images/debian-12/* and this script) and rebuilt only when that hash has no
# image yet, so a second run takes a second. Concurrent runs (two test
# packages at once) wait for each other on a lock instead of both building.
#
#   scripts/build-twin-image.sh           build if missing, print the image
#   scripts/build-twin-image.sh --check   exit 0 if the image exists, 1 if not
#   scripts/build-twin-image.sh --mirror  print the Debian mirror it uses
#
# Environment: VZ_DEBIAN_MIRROR overrides the mirror read from
# /etc/apt/sources.list*. Needs root (debootstrap), debootstrap and docker.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
recipe=$root/images/debian-12
# shellcheck source=images/debian-12/recipe.env disable=SC1091
. "$recipe/recipe.env"

# The recipe's identity: this script plus every file of the recipe, by name
# and content (the glob sorts in the C locale, so the order is stable).
hash=$(
	export LC_ALL=C
	{
		cat "$root/scripts/build-twin-image.sh"
		for f in "$recipe"/*; do
			printf '%s\n' "${f##*/}"
			cat "$f"
		done
	} | sha256sum | cut -c1-12
)
ref=$IMAGE:$TAG-$hash

have() { docker image inspect "$1" >/dev/null 2>&1; }

if [ "${1:-}" = --check ]; then
	have "$ref"
	exit
fi

mirror() {
	if [ -n "${VZ_DEBIAN_MIRROR:-}" ]; then
		echo "$VZ_DEBIAN_MIRROR"
		return
	fi
	# The first Debian archive (not the security one) in the apt sources, in
	# either the deb822 or the one-line format.
	local m
	m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }')
	if [ -z "$m" ]; then
		m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*\/debian\/?$/) { print $i; exit } }')
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

if [ "${1:-}" = --mirror ]; then
	mirror
	exit
fi

exec 9>"${TMPDIR:-/tmp}/vulnzero-twin-image.lock"
flock 9

if have "$ref"; then
	docker tag "$ref" "$IMAGE:$TAG"
	echo "$ref"
	exit 0
fi

for tool in debootstrap docker; do
	command -v "$tool" >/dev/null || { echo "build-twin-image: $tool is missing (run scripts/test-deps.sh)" >&2; exit 1; }
done
if [ "$(id -u)" -ne 0 ]; then
	echo "build-twin-image: debootstrap needs root" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vulnzero-twin-image.XXXXXX")
trap 'umount -R "$work/rootfs/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
start=$(date +%s)
m=$(mirror)
echo "build-twin-image: debootstrap $SUITE ($VARIANT, +$INCLUDE) from $m" >&2
debootstrap --variant="$VARIANT" --include="$INCLUDE" "$SUITE" "$work/rootfs" "$m" >"$work/debootstrap.log" 2>&1 || {
	tail -n 30 "$work/debootstrap.log" >&2
	echo "build-twin-image: debootstrap failed (full log above)" >&2
	exit 1
}
install -m 0755 "$recipe/vz-twin-init" "$work/rootfs/usr/local/sbin/vz-twin-init"
install -m 0755 "$recipe/setup.sh" "$work/rootfs/tmp/setup.sh"
chroot "$work/rootfs" /bin/sh /tmp/setup.sh
rm -f "$work/rootfs/tmp/setup.sh"

tar --numeric-owner --xattrs -C "$work/rootfs" -c . |
	docker import \
		--change 'CMD ["/usr/bin/tini", "--", "/usr/local/sbin/vz-twin-init"]' \
		--change "LABEL dev.vulnzero.recipe=$hash" \
		--message "vulnzero twin base: debian $SUITE $VARIANT +$INCLUDE, recipe $hash" \
		- "$ref" >/dev/null
docker tag "$ref" "$IMAGE:$TAG"
# Images of older recipes are garbage now; one still used by a container
# stays until that container is gone.
docker image ls --format '{{.Repository}}:{{.Tag}}' "$IMAGE" |
	grep -E "^$IMAGE:$TAG-[0-9a-f]{12}\$" | grep -vx "$ref" |
	xargs -r docker rmi >/dev/null 2>&1 || true
echo "build-twin-image: built $ref in $(($(date +%s) - start))s" >&2
echo "$ref"
