#!/usr/bin/env bash
# Makes a busybox root filesystem from Debian's busybox-static and imports it as busybox:latest.
#   examples/make-busybox-base.sh [IMAGE]      (default busybox:latest)
set -euo pipefail
image=${1:-busybox:latest}
lamina=${LAMINA:-lamina}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bb=$(command -v busybox) || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/tmp" "$work/rootfs/root" \
         "$work/rootfs/proc" "$work/rootfs/sys" "$work/rootfs/dev"
chmod 1777 "$work/rootfs/tmp"
cp "$(readlink -f "$bb")" "$work/rootfs/bin/busybox"
for x in $("$work/rootfs/bin/busybox" --list); do
  [ "$x" = busybox ] || ln -s busybox "$work/rootfs/bin/$x"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/rootfs/etc/group"
tar -C "$work/rootfs" -c . | $lamina import -c 'CMD ["sh"]' - "$image"
