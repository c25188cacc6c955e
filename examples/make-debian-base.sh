#!/usr/bin/env bash
# Makes a Debian bookworm minbase root filesystem with debootstrap (from the configured Debian
# mirror) and imports it as debian:bookworm. Takes a few minutes; the tarball is kept in
# ${DEBIAN_TAR:-/var/tmp/lamina-debian-bookworm.tar} and reused.
#   examples/make-debian-base.sh [IMAGE]       (default debian:bookworm)
set -euo pipefail
image=${1:-debian:bookworm}
lamina=${LAMINA:-lamina}
tarball=${DEBIAN_TAR:-/var/tmp/lamina-debian-bookworm.tar}
if [ ! -f "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap" >&2; exit 1; }
  work=$(mktemp -d /var/tmp/lamina-deb.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase bookworm "$work/rootfs" >/dev/null
  tar -C "$work/rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
fi
$lamina import -c 'CMD ["bash"]' "$tarball" "$image"
