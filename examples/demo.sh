#!/usr/bin/env bash
# The main job, offline, on a fresh Debian machine (as root): installs lamina into .venv,
# makes a busybox base image from Debian's busybox-static, builds the tutorial's example
# (examples/hello) on it, runs it, rebuilds it from the cache, and walks the image and
# container commands the tutorial teaches.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-env.sh
install_apt busybox-static
setup_venv
export PATH="$PWD/.venv/bin:$PATH"
export LAMINA_ROOT=${LAMINA_ROOT:-/var/lib/lamina}
set -x
examples/make-busybox-base.sh busybox:latest
lamina build -t hello examples/hello
lamina run --rm hello
lamina build -t hello examples/hello          # every step: ---> Using cache
lamina run --name demo busybox sh -c 'echo changed > /etc/motd; rm /bin/ls'
lamina diff demo
lamina commit -m "demo change" demo hello:changed
lamina rm demo
lamina history hello
lamina images
lamina tag busybox localhost:5000/me/busybox:v1
lamina images
lamina history busybox
lamina inspect --format '{{.Id}} {{json .Config.Cmd}} {{.RootFS.Layers}}' busybox
lamina save -o /tmp/lamina-busybox.tar busybox
lamina rmi localhost:5000/me/busybox:v1
lamina load -i /tmp/lamina-busybox.tar
lamina system df
