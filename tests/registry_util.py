"""Real registries on loopback for the registry client tests.

- :class:`DockerRegistry`: Debian's ``docker-registry`` (distribution's registry:2) started
  on a free 127.0.0.1 port, with no auth, htpasswd Basic auth, TLS and/or client-cert auth.
- :class:`Front`: a small HTTP server written for the tests that sits in front of a
  registry and forwards every request to it, logging what it saw (method, path, Range),
  optionally as the Bearer-token gate of that registry (with its token issuer at
  ``/token``: Basic credentials in, opaque tokens with scopes out; 401 challenges with
  ``error="insufficient_scope"`` as Docker Hub answers), and able to break blob downloads
  on purpose: cut the connection after N bytes, flip a byte, or hold the body after N
  bytes until released. It also answers the Hub's ``/v1/search`` from a list it is given.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import need_tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url_host: str, port: int, *, tls: bool = False, timeout: float = 30.0,
              proc: subprocess.Popen | None = None) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port (the real condition)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s") from None
            time.sleep(0.02)


class DockerRegistry:
    """registry:2 on 127.0.0.1:<free port>. ``users`` enables htpasswd Basic auth;
    ``tls`` = (cert, key) serves HTTPS; ``client_ca`` requires client certificates."""

    def __init__(self, workdir: str, *, users: dict[str, str] | None = None, tls: tuple[str, str] | None = None,
                 client_ca: str | None = None) -> None:
        need_tool("docker-registry")
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        lines = ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
                 f"    rootdirectory: {workdir}/data", "  delete:", "    enabled: true",
                 "http:", f"  addr: 127.0.0.1:{self.port}"]
        if tls:
            lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
            if client_ca:
                lines += ["    clientcas:", f"      - {client_ca}"]
        if users:
            need_tool("htpasswd")
            htp = os.path.join(workdir, "htpasswd")
            with open(htp, "w") as f:
                for u, pw in users.items():
                    f.write(subprocess.run(["htpasswd", "-Bbn", u, pw], capture_output=True, text=True,
                                           check=True).stdout.strip() + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: basic-realm", f"    path: {htp}"]
        cfg = os.path.join(workdir, "config.yml")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(workdir, "registry.log"), "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        wait_http("127.0.0.1", self.port, proc=self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Front:
    """A forwarding front for a registry (see the module docstring). ``host`` is
    ``127.0.0.1:<port>``; ``log`` lists (method, path, range header) of every request."""

    def __init__(self, upstream_port: int, *, bearer_users: dict[str, str] | None = None,
                 acl: dict[str, set[str]] | None = None, anonymous_pull: set[str] | None = None,
                 search_results: list | None = None) -> None:
        self.upstream = upstream_port
        self.bearer_users = bearer_users
        self.acl = acl or {}
        self.anonymous_pull = anonymous_pull or set()
        self.search_results = search_results
        self.tokens: dict[str, tuple[str, set[str]]] = {}   # token -> (user, granted scopes)
        self.token_requests: list[tuple[str, list[str]]] = []
        self.log: list[tuple[str, str, str | None]] = []
        self.drop_after: dict[str, int] = {}    # blob digest -> cut after this many bytes (once)
        self.corrupt: set[str] = set()          # blob digests served with one byte flipped
        self.hold_after: dict[str, int] = {}    # blob digest -> stop sending after N bytes ...
        self.release = threading.Event()        # ... until this is set
        self.held = threading.Event()           # set when a download is being held
        self.served: dict[str, int] = {}        # blob digest -> body bytes sent in total
        self.manifests: dict[str, tuple[str, bytes]] = {}  # path -> (content type, body) served instead
        self.fail_next: dict[str, int] = {}     # path substring -> answer 503 this many more times
        self.uploads: list[tuple[str, str | None, int]] = []  # (method, Content-Range, body length)
        self.connections = 0                    # TCP connections accepted
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                with front._lock:
                    front.connections += 1
                super().setup()

            def do_GET(self):
                front._handle(self)

            do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    # -- auth -----------------------------------------------------------------------
    def revoke_tokens(self) -> None:
        with self._lock:
            self.tokens.clear()

    def _token(self, h) -> None:
        from urllib.parse import parse_qs, urlsplit
        q = parse_qs(urlsplit(h.path).query)
        scopes = q.get("scope", [])
        user = None
        auth = h.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            u, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            if self.bearer_users.get(u) != pw:
                return self._reply(h, 401, {"errors": [{"code": "UNAUTHORIZED",
                                                         "message": "incorrect username or password"}]})
            user = u
        granted = set()
        for s in scopes:
            parts = s.split(":")
            if len(parts) != 3 or parts[0] != "repository":
                if s == "registry:catalog:*" and user:
                    granted.add(s)
                continue
            repo, actions = parts[1], parts[2].split(",")
            for a in actions:
                allowed = (user is not None and any(re.fullmatch(p, repo) for p in self.acl.get(user, {".*"}))) \
                    or (a == "pull" and any(re.fullmatch(p, repo) for p in self.anonymous_pull))
                if allowed:
                    granted.add(f"repository:{repo}:{a}")
        tok = secrets.token_hex(16)
        with self._lock:
            self.tokens[tok] = (user or "", granted)
            self.token_requests.append((user or "", scopes))
        self._reply(h, 200, {"token": tok, "expires_in": 300})

    def _needed(self, method: str, path: str, query: str) -> list[str]:
        if path == "/v2/":
            return []
        if path.startswith("/v2/_catalog"):
            return ["registry:catalog:*"]
        m = re.match(r"^/v2/(.+?)/(manifests|blobs|tags)/", path)
        if not m:
            return []
        repo = m.group(1)
        need = [f"repository:{repo}:{'pull' if method in ('GET', 'HEAD') else 'push'}"]
        if method == "POST" and "mount=" in query:
            from urllib.parse import parse_qs
            src = parse_qs(query).get("from", [""])[0]
            need.append(f"repository:{src}:pull")
            need = need[:1]  # a mount the caller cannot read falls back to an upload
        return need

    def _gate(self, h, method: str, path: str, query: str) -> bool:
        """True if the request may go on; else a 401 was answered."""
        if self.bearer_users is None:
            return True
        need = self._needed(method, path, query)
        auth = h.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else None
        with self._lock:
            grant = self.tokens.get(tok) if tok else None
        scope = " ".join(need)
        realm = f'Bearer realm="http://{self.host}/token",service="lamina-test"'
        if scope:
            realm += f',scope="{scope}"'
        if grant is None:
            if path == "/v2/" or tok is None or tok not in self.tokens:
                self._reply(h, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                            headers={"WWW-Authenticate": realm})
                return False
        if not set(need) <= grant[1]:
            self._reply(h, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                        headers={"WWW-Authenticate": realm + ',error="insufficient_scope"'})
            return False
        return True

    # -- forwarding -------------------------------------------------------------------
    def _reply(self, h, status: int, doc, headers: dict | None = None) -> None:
        body = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _handle(self, h) -> None:
        from urllib.parse import urlsplit
        u = urlsplit(h.path)
        method = h.command
        with self._lock:
            self.log.append((method, h.path, h.headers.get("Range")))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = _read_chunked(h.rfile)
        if u.path == "/token" and self.bearer_users is not None:
            return self._token(h)
        if u.path == "/v1/search":
            if self.search_results is None:
                return self._reply(h, 404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
            from urllib.parse import parse_qs
            q = parse_qs(u.query)
            term = q.get("q", [""])[0]
            n = int(q.get("n", ["25"])[0])
            res = [r for r in self.search_results if term in r["name"]][:n]
            return self._reply(h, 200, {"num_results": len(res), "query": term, "results": res})
        if not self._gate(h, method, u.path, u.query):
            return
        if method in ("PATCH", "PUT") and "/blobs/uploads/" in u.path:
            with self._lock:
                self.uploads.append((method, h.headers.get("Content-Range"), len(body or b"")))
        for key, n in list(self.fail_next.items()):
            if key in h.path and n > 0:
                self.fail_next[key] = n - 1
                return self._reply(h, 503, {"errors": [{"code": "UNAVAILABLE", "message": "service unavailable"}]})
        if u.path in self.manifests:
            ctype, data = self.manifests[u.path]
            h.send_response(200)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            if method != "HEAD":
                h.wfile.write(data)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "authorization", "connection")}
        if body is not None:
            headers["Content-Length"] = str(len(body))
            headers.pop("Transfer-Encoding", None)
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=120)
        try:
            conn.request(method, h.path, body=body, headers=headers)
            r = conn.getresponse()
            m = re.match(r"^/v2/.+/blobs/(sha256:[0-9a-f]{64})$", u.path)
            digest = m.group(1) if m and method == "GET" else None
            h.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() in ("connection", "transfer-encoding"):
                    continue
                if k.lower() == "location" and v.startswith(f"http://127.0.0.1:{self.upstream}"):
                    v = f"http://{self.host}" + v[len(f"http://127.0.0.1:{self.upstream}"):]
                h.send_header(k, v)
            h.end_headers()
            if method == "HEAD":
                r.read()
                return
            if digest is None or r.status not in (200, 206):
                h.wfile.write(r.read())
                return
            with self._lock:
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            try:
                self._stream_blob(h, r, digest)
            finally:
                with self._lock:
                    self.active -= 1
        finally:
            conn.close()

    def _stream_blob(self, h, r, digest: str) -> None:
        sent = 0
        drop = self.drop_after.pop(digest, None)
        hold = self.hold_after.get(digest)
        flip = digest in self.corrupt
        while True:
            chunk = r.read(64 << 10)
            if not chunk:
                break
            if flip and sent <= 1000 < sent + len(chunk):
                i = 1000 - sent
                chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
            if drop is not None and sent + len(chunk) >= drop:
                chunk = chunk[:max(drop - sent, 0)]
                h.wfile.write(chunk)
                h.wfile.flush()
                self._count(digest, len(chunk))
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
                return
            if hold is not None and sent + len(chunk) >= hold:
                part = chunk[:max(hold - sent, 0)]
                h.wfile.write(part)
                h.wfile.flush()
                self._count(digest, len(part))
                self.held.set()
                self.release.wait(300)
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            try:
                h.wfile.write(chunk)
            except OSError:
                return
            sent += len(chunk)
            self._count(digest, len(chunk))

    def _count(self, digest: str, n: int) -> None:
        with self._lock:
            self.served[digest] = self.served.get(digest, 0) + n


def _read_chunked(f) -> bytes:
    out = []
    while True:
        line = f.readline().strip()
        n = int(line.split(b";")[0], 16)
        if n == 0:
            f.readline()
            break
        out.append(f.read(n))
        f.readline()
    return b"".join(out)


def make_ca(dirpath: str, cn: str = "127.0.0.1") -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate:
    paths by name (ca.crt, server.crt, server.key, client.cert, client.key)."""
    need_tool("openssl")
    os.makedirs(dirpath, exist_ok=True)
    p = lambda n: os.path.join(dirpath, n)  # noqa: E731
    run = lambda *a: subprocess.run(list(a), capture_output=True, check=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lamina test CA",
        "-keyout", p("ca.key"), "-out", p("ca.crt"))
    ext = p("server.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName=IP:{cn}\nextendedKeyUsage=serverAuth\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}", "-keyout", p("server.key"),
        "-out", p("server.csr"))
    run("openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", p("server.crt"))
    cext = p("client.ext")
    with open(cext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\n")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=lamina client", "-keyout",
        p("client.key"), "-out", p("client.csr"))
    run("openssl", "x509", "-req", "-in", p("client.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
        "-CAcreateserial", "-days", "2", "-extfile", cext, "-out", p("client.cert"))
    return {n: p(n) for n in ("ca.crt", "server.crt", "server.key", "client.cert", "client.key")}


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


__all__ = ["DockerRegistry", "Front", "free_port", "make_ca", "wait_http", "kill_group", "shutil"]
