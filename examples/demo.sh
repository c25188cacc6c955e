#!/usr/bin/env bash
# The main job, offline, on a fresh Debian machine (as root): installs lamina into .venv,
# makes a busybox base image from Debian's busybox-static, and walks the image commands
# the tutorial teaches: images, tag, history, inspect, save/load, rmi.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-env.sh
install_apt busybox-static
setup_venv
export PATH="$PWD/.venv/bin:$PATH"
export LAMINA_ROOT=${LAMINA_ROOT:-/var/lib/lamina}
set -x
examples/make-busybox-base.sh busybox:latest
lamina images
lamina tag busybox localhost:5000/me/busybox:v1
lamina images
lamina history busybox
lamina inspect --format '{{.Id}} {{json .Config.Cmd}} {{.RootFS.Layers}}' busybox
lamina save -o /tmp/lamina-busybox.tar busybox
lamina rmi localhost:5000/me/busybox:v1
lamina load -i /tmp/lamina-busybox.tar
lamina system df
