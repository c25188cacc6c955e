"""Two ``lamina registry serve`` instances sharing one store behind nginx (Debian's
nginx-light), round-robin per request: an upload's POST, PATCH and PUT land on different
instances. Pushes (skopeo, docker, several at once sharing a layer) and pulls go through
the proxy; nothing is lost or corrupted."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import threading
import time

import pytest
from conftest import need_tool
from registry_server_util import Registry, make_layout, store_files


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def pair(tmp_path):
    nginx = need_tool("nginx")
    root = str(tmp_path / "store")
    a = Registry(root)
    b = Registry(root)
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
user root;
worker_processes 1;
error_log {tmp_path}/nginx-error.log warn;
pid {tmp_path}/nginx.pid;
events {{ worker_connections 512; }}
http {{
  access_log off;
  client_body_temp_path {tmp_path}/body;
  proxy_temp_path {tmp_path}/proxy;
  upstream registry {{ server 127.0.0.1:{a.port}; server 127.0.0.1:{b.port}; }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{
      proxy_pass http://registry;
      proxy_set_header Host $http_host;
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_read_timeout 600s;
    }}
  }}
}}
""")
    p = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(conf), "-g", "daemon off;"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert p.poll() is None and time.monotonic() < deadline, p.stderr.read()
            time.sleep(0.05)
    yield f"localhost:{port}", a, b, root
    p.terminate()
    p.wait(timeout=30)
    a.stop()
    b.stop()


def run(*args, check=True):
    p = subprocess.run(list(args), capture_output=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {p.stderr.decode(errors='replace')}")
    return p


def served_by(reg: Registry, method: str) -> int:
    return sum(1 for l in reg.lines if f'"{method} ' in l)


def test_two_instances_behind_nginx(pair, tmp_path, busybox_tar):
    need_tool("skopeo")
    host, a, b, root = pair
    shared = os.urandom(4 << 20)
    layouts = []
    for i in range(3):
        lay = tmp_path / f"img{i}"
        make_layout(lay, [shared, os.urandom((1 + i) << 20)])
        layouts.append(lay)
    errors = []

    def push(i):
        p = run("skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{layouts[i]}:x",
                f"docker://{host}/lb/img{i}:v1", check=False)
        if p.returncode:
            errors.append(p.stderr.decode(errors="replace"))
    threads = [threading.Thread(target=push, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # docker through the proxy as well
    need_tool("docker")
    ref = f"{host}/lb/docker:1"
    run("docker", "import", busybox_tar, ref)
    try:
        run("docker", "push", ref)
        run("docker", "rmi", ref)
        run("docker", "pull", ref)
    finally:
        run("docker", "rmi", "-f", ref, check=False)
    # both instances took part in the uploads
    for reg in (a, b):
        wait_lines = time.monotonic() + 10
        while served_by(reg, "PUT") == 0 and time.monotonic() < wait_lines:   # access log flushes each second
            time.sleep(0.05)
        assert served_by(reg, "POST") > 0 and served_by(reg, "PUT") > 0, list(reg.lines)[-20:]
    # pull every image back through the proxy: layers and manifests as pushed
    for i in range(3):
        out = tmp_path / f"pulled{i}"
        run("skopeo", "copy", "--preserve-digests", "--dest-oci-accept-uncompressed-layers",
            "--src-tls-verify=false", f"docker://{host}/lb/img{i}:v1", f"oci:{out}:x")
        src_idx = json.loads((layouts[i] / "index.json").read_text())
        got_idx = json.loads((out / "index.json").read_text())
        assert got_idx["manifests"][0]["digest"] == src_idx["manifests"][0]["digest"]
        assert sorted(os.listdir(out / "blobs" / "sha256")) == sorted(os.listdir(layouts[i] / "blobs" / "sha256"))
    # nothing corrupted: every blob in the shared store hashes to its name; no upload left
    for f in store_files(root, "blobs"):
        alg, _, h = f.split("/")
        assert hashlib.new(alg, open(os.path.join(root, "blobs", f), "rb").read()).hexdigest() == h
    assert os.listdir(os.path.join(root, "uploads")) == []
