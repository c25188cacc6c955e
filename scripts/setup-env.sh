# Shared by scripts/*.sh: idempotent set-up steps. Source it; needs root for apt-get.

install_apt() {
  local missing=""
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    apt-get update -qq
    # packages with services (nginx-light, docker-registry) must not start them: they would
    # listen on every address; the tests start their own on loopback
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    [ -z "$policy" ] || rm -f /usr/sbin/policy-rc.d
  fi
}

# setup_venv [extra]: .venv with lamina installed (editable) plus the named extra
setup_venv() {
  local extra=${1:-}
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv 2>/dev/null || { install_apt python3-venv; python3 -m venv .venv; }
  fi
  local spec="."
  [ -n "$extra" ] && spec=".[$extra]"
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "$spec" && .venv/bin/python -m pip install -q "$spec"
  # PYTHONDONTWRITEBYTECODE may be set: compile once so every start-up reads .pyc files
  .venv/bin/python -m compileall -q lamina .venv/lib >/dev/null
}

start_dockerd() {
  if ! docker version >/dev/null 2>&1; then
    setsid dockerd --host unix:///var/run/docker.sock --storage-driver overlay2 \
      >/tmp/lamina-test-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
    docker version >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/lamina-test-dockerd.log" >&2; exit 1; }
  fi
}
