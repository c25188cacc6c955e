#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian machine (as root) and runs it:
# apt packages (peers for interop tests: skopeo, umoci, docker.io, podman, containerd (ctr),
# docker-registry (registry:2), nginx-light (two registry instances behind a proxy); zsh, fish and
# man-db for the completion and man page tests;
# busybox-static for base images), a virtualenv with lamina and its test and lint extras, the
# linters (ruff, then mypy: either failing stops CI before any test runs), a dockerd on a unix
# socket, then pytest.
#
#   scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-env.sh
pkgs="busybox-static e2fsprogs mount debootstrap procps skopeo umoci podman docker.io containerd runc iptables file zstd xz-utils bzip2 tini golang-github-docker-docker-dev linux-libc-dev libseccomp2 iproute2 gcc libc6-dev docker-registry apache2-utils nginx-light openssl curl zsh fish man-db"
install_apt $pkgs
setup_venv test,lint
echo "ruff check" >&2
.venv/bin/ruff check --no-cache lamina tests bench
echo "mypy (packages listed in pyproject.toml)" >&2
.venv/bin/mypy --cache-dir=/dev/null
start_dockerd
exec .venv/bin/python -m pytest -q "$@"
