#!/usr/bin/env bash
# The tutorial's private registry, with lamina's own image and runtime:
#
#   docker run -d -p 5000:5000 -v /myregistry:/var/lib/registry registry:2
#
# builds the registry image (examples/registry/Dockerfile: a Debian base, Python, lamina),
# runs it with the port published and its data on a host directory, pushes an image to
# localhost:PORT, removes it locally and pulls it back, then replaces the registry
# container by a new one on the same directory and pulls again: nothing is lost.
#
#   examples/registry/run.sh            PORT=5000 DATA=/myregistry by default
#
# Environment: LAMINA (the lamina command), PORT, DATA, KEEP=1 (leave the last registry
# running). Needs the debian base (examples/make-debian-base.sh makes it) and busybox
# (examples/make-busybox-base.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
lamina=${LAMINA:-lamina}
port=${PORT:-5000}
data=${DATA:-/myregistry}
python=${PYTHON:-python3}
say() { printf '\n== %s\n' "$*" >&2; }

$lamina image inspect debian:bookworm >/dev/null 2>&1 || LAMINA="$lamina" "$repo/examples/make-debian-base.sh"
$lamina image inspect busybox >/dev/null 2>&1 || LAMINA="$lamina" "$repo/examples/make-busybox-base.sh" busybox

say "the registry image: Debian + Python + lamina (wheels made on the host)"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$here/Dockerfile" "$ctx/"
"$python" -m pip wheel -q --wheel-dir "$ctx/wheels" "$repo" >&2
$lamina build -q -t lamina-registry "$ctx"

say "run it: -p $port:5000 -v $data:/var/lib/registry"
mkdir -p "$data"
start() {
  $lamina run -d --name lamina-registry -p "$port:5000" -v "$data:/var/lib/registry" lamina-registry >/dev/null
  for _ in $(seq 300); do
    "$python" - "$port" <<'PY' && return 0
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v2/", timeout=2)
except Exception:
    sys.exit(1)
PY
    sleep 0.1
  done
  echo "the registry did not answer on port $port" >&2
  $lamina logs lamina-registry >&2
  return 1
}
start

ref="localhost:$port/tutorial/hello:v1"
say "tag and push $ref"
$lamina build -q -t "$ref" - <<'DOCKERFILE'
FROM busybox
RUN echo "hello from the tutorial's registry" > /hello
CMD ["cat", "/hello"]
DOCKERFILE
id=$($lamina image inspect -f '{{.Id}}' "$ref")
$lamina push "$ref"

say "remove it locally, pull it back"
$lamina rmi "$ref" >/dev/null
$lamina pull "$ref"
[ "$($lamina image inspect -f '{{.Id}}' "$ref")" = "$id" ]
$lamina run --rm "$ref"

say "a new registry container on the same data"
$lamina rm -f lamina-registry >/dev/null
start
$lamina rmi "$ref" >/dev/null
$lamina pull "$ref"
[ "$($lamina image inspect -f '{{.Id}}' "$ref")" = "$id" ]
$lamina run --rm "$ref"
if [ -z "${KEEP:-}" ]; then
  $lamina rm -f lamina-registry >/dev/null
fi
say "nothing lost: $ref is $id"
