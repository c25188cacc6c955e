"""Helpers for the registry server's tests: a real ``lamina registry serve`` process on a
free loopback port, and a small HTTP client that checks every error envelope."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import select
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections import deque

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"


def digest(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


class Resp:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.header_list = headers
        self.headers = {}
        for k, v in headers:
            k = k.lower()
            self.headers[k] = f"{self.headers[k]}, {v}" if k in self.headers else v
        self.body = body

    def h(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)

    def codes(self) -> list[str]:
        return [e["code"] for e in self.json()["errors"]]

    def __repr__(self) -> str:
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


class Registry:
    """A ``python -m lamina registry serve`` subprocess on 127.0.0.1, started and waited
    for by its readiness line."""

    def __init__(self, root: str, *args: str, port: int = 0, env: dict | None = None) -> None:
        self.root = root
        self.args = args
        self.env = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
        self.lines: deque[str] = deque(maxlen=10000)
        self.start(port)

    def start(self, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lamina", "registry", "serve", "--addr", f"127.0.0.1:{port}",
             "--root", self.root, *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env, cwd=REPO)
        line = self._readline(deadline=time.monotonic() + 120)
        if not line.startswith("lamina registry listening on "):
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
            raise AssertionError(f"registry did not start: {line!r} {err}")
        self.url = line.split()[-1]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.host = f"127.0.0.1:{self.port}"
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _readline(self, deadline: float) -> str:
        buf = b""
        fd = self.proc.stdout.fileno()
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
                break
            r, _, _ = select.select([fd], [], [], left)
            if r:
                b = os.read(fd, 1)
                if not b:
                    break
                buf += b
        return buf.decode(errors="replace").strip()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.decode(errors="replace"))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        return rc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)

    def stderr(self) -> str:
        return self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""

    # -- HTTP ---------------------------------------------------------------------------
    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                *, conn: http.client.HTTPConnection | None = None) -> Resp:
        c = conn or self.conn()
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            resp = Resp(r.status, r.getheaders(), data)
        finally:
            if conn is None:
                c.close()
        check_envelope(resp, method)
        return resp

    # -- pushes (the spec's flows, used as building blocks) -----------------------------
    def push_blob(self, name: str, data: bytes, alg: str = "sha256") -> str:
        dg = digest(data, alg)
        r = self.request("POST", f"/v2/{name}/blobs/uploads/")
        assert r.status == 202, r
        r = self.request("PUT", add_query(r.h("location"), digest=dg), data,
                         {"Content-Type": "application/octet-stream"})
        assert r.status == 201, r
        return dg

    def push_manifest(self, name: str, ref: str, data: bytes, media_type: str = OCI_MANIFEST) -> Resp:
        r = self.request("PUT", f"/v2/{name}/manifests/{ref}", data, {"Content-Type": media_type})
        assert r.status == 201, r
        return r

    def push_image(self, name: str, tag: str | None = None, *, layers: int = 1, alg: str = "sha256",
                   seed: bytes = b"", extra: dict | None = None) -> tuple[str, bytes, list[str]]:
        """An image (config + layers) pushed to ``name``; returns (digest, bytes, blob digests)."""
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed.hex(),
                          "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        blobs = [cfg] + [os.urandom(100) + seed + bytes([i]) for i in range(layers)]
        digs = [self.push_blob(name, b, alg) for b in blobs]
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "digest": digs[0], "size": len(blobs[0])},
             "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": len(b)}
                        for d, b in zip(digs[1:], blobs[1:])]}
        m.update(extra or {})
        data = json.dumps(m).encode()
        dg = digest(data, alg)
        self.push_manifest(name, tag or dg, data)
        return dg, data, digs


def add_query(location: str, **params) -> str:
    from urllib.parse import urlencode, urlsplit

    u = urlsplit(location)
    path = u.path + ("?" + u.query if u.query else "")
    sep = "&" if u.query else "?"
    return path + sep + urlencode(params)


def check_envelope(r: Resp, method: str) -> None:
    """Every 4xx/5xx answer with a body is a spec error envelope (a blob GET's 416 has an
    empty body, as RFC 9110 has it)."""
    if r.status < 400 or method == "HEAD" or not r.body:
        return
    assert (r.h("content-type") or "").startswith("application/json"), r
    doc = json.loads(r.body)
    assert isinstance(doc.get("errors"), list) and doc["errors"], r
    for e in doc["errors"]:
        assert isinstance(e["code"], str) and e["code"].replace("_", "").isupper(), r
        assert isinstance(e.get("message", ""), str), r


def store_files(root: str, sub: str) -> list[str]:
    out = []
    base = os.path.join(root, sub)
    for dp, _dn, fn in os.walk(base):
        for f in fn:
            out.append(os.path.relpath(os.path.join(dp, f), base))
    return sorted(out)


def make_layout(path, layers: list[bytes]) -> None:
    """An OCI image layout with tar layers holding ``layers`` as files."""
    (path / "blobs" / "sha256").mkdir(parents=True)

    def put(b: bytes) -> str:
        h = hashlib.sha256(b).hexdigest()
        (path / "blobs" / "sha256" / h).write_bytes(b)
        return "sha256:" + h
    descs, diffs = [], []
    for i, content in enumerate(layers):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo(f"file{i}")
            ti.size = len(content)
            tf.addfile(ti, io.BytesIO(content))
        t = buf.getvalue()
        d = put(t)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(t)})
        diffs.append(d)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg),
                                 "size": len(cfg)}, "layers": descs}).encode()
    md = put(man)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(man),
         "annotations": {"org.opencontainers.image.ref.name": "x"}}]}))
