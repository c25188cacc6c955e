"""The registry server beyond the spec's endpoints: kill -9 and resume, SIGTERM with
requests in flight, concurrent pushes of one blob, one upload written twice at once,
HTTP/1.1 details (pipelining, Expect: 100-continue), /metrics, the access log, several
worker processes, TLS, and the readiness line."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time

from conftest import need_tool
from registry_server_util import Registry, add_query, digest, make_layout, store_files


def wait_for(cond, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def upload_size(root: str, loc: str) -> int:
    uid = loc.rstrip("/").rsplit("/", 1)[1]
    try:
        return os.path.getsize(os.path.join(root, "uploads", uid, "data"))
    except FileNotFoundError:
        return -1


def raw(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    return s


def read_response(s: socket.socket) -> tuple[int, dict, bytes, bytes]:
    """One response from a raw socket: (status, headers, body, leftover bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            raise AssertionError(f"connection closed: {buf!r}")
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    return status, headers, rest[:n], rest[n:]


def test_readiness_line_and_free_port(tmp_path):
    reg = Registry(str(tmp_path / "s"))
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", reg.url)
        assert reg.port != 0
        assert reg.request("GET", "/v2/").status == 200
    finally:
        assert reg.stop() == 0


def test_kill_9_during_a_chunk_then_the_upload_resumes(tmp_path):
    root = str(tmp_path / "s")
    reg = Registry(root, "--log-level", "warn")
    data = os.urandom(6 << 20)
    dg = digest(data)
    loc = reg.request("POST", "/v2/crash/app/blobs/uploads/").h("location")
    r = reg.request("PATCH", loc, data[:1 << 20], {"Content-Range": f"0-{(1 << 20) - 1}"})
    assert r.status == 202
    # a second chunk announced whole, of which only part arrives before the server dies
    s = raw(reg.port)
    end = len(data) - 1
    s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data) - (1 << 20)}\r\n"
              f"Content-Range: {1 << 20}-{end}\r\n\r\n".encode())
    s.sendall(data[1 << 20:3 << 20])
    wait_for(lambda: upload_size(root, loc) >= (2 << 20), "part of the chunk to reach the upload")
    reg.kill()
    s.close()
    assert store_files(root, "blobs") == []  # nothing became a blob
    reg.start()
    st = reg.request("GET", loc)
    assert st.status == 204, st
    have = int(st.h("range").split("-")[1]) + 1
    assert (2 << 20) <= have <= (3 << 20)
    assert have == upload_size(root, loc)
    # resuming from the offset the registry reports completes the blob
    r = reg.request("PATCH", st.h("location"), data[have:], {"Content-Range": f"{have}-{end}"})
    assert r.status == 202, r
    r = reg.request("PUT", add_query(r.h("location"), digest=dg))
    assert r.status == 201, r
    assert reg.request("GET", f"/v2/crash/app/blobs/{dg}").body == data
    assert reg.stop() == 0


def test_kill_9_during_a_skopeo_push_then_the_push_completes(tmp_path):
    need_tool("skopeo")
    root = str(tmp_path / "s")
    reg = Registry(root, "--log-level", "warn")
    lay = tmp_path / "layout"
    make_layout(lay, [os.urandom(1 << 20), os.urandom(48 << 20)])
    dest = f"docker://localhost:{reg.port}/crash/skopeo:v1"
    push = subprocess.Popen(["skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false",
                             f"oci:{lay}:x", dest], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def uploading():
        for uid in os.listdir(os.path.join(root, "uploads")):
            try:
                if os.path.getsize(os.path.join(root, "uploads", uid, "data")) > (4 << 20):
                    return True
            except FileNotFoundError:
                pass
        return False
    wait_for(uploading, "skopeo to be inside the big layer's upload")
    reg.kill()
    assert push.wait(timeout=120) != 0
    push.stderr.close()
    reg.start(port=reg.port)
    p = subprocess.run(["skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{lay}:x", dest],
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    want = json.loads((lay / "index.json").read_text())["manifests"][0]["digest"]
    r = reg.request("GET", "/v2/crash/skopeo/manifests/v1")
    assert digest(r.body) == want
    for d in json.loads(r.body)["layers"]:
        b = reg.request("GET", f"/v2/crash/skopeo/blobs/{d['digest']}")
        assert b.status == 200 and digest(b.body) == d["digest"]
    reg.stop()


def test_sigterm_finishes_the_request_in_flight(tmp_path):
    root = str(tmp_path / "s")
    reg = Registry(root, "--log-level", "warn")
    idle = raw(reg.port)
    idle.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(idle)[0] == 200
    data = os.urandom(2 << 20)
    loc = reg.request("POST", "/v2/term/app/blobs/uploads/").h("location")
    s = raw(reg.port)
    s.sendall(f"PUT {add_query(loc, digest=digest(data))} HTTP/1.1\r\nHost: x\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode())
    s.sendall(data[:1 << 20])
    wait_for(lambda: upload_size(root, loc) >= 1 << 20, "the first half to arrive")
    reg.proc.send_signal(signal.SIGTERM)
    # the idle keep-alive connection is closed by the server
    idle.settimeout(60)
    assert idle.recv(10) == b""
    s.sendall(data[1 << 20:])
    status, headers, _, _ = read_response(s)
    assert status == 201
    assert headers.get("connection") == "close"
    assert reg.proc.wait(timeout=60) == 0
    reg2 = Registry(root, "--log-level", "warn")
    try:
        assert reg2.request("GET", f"/v2/term/app/blobs/{digest(data)}").body == data
    finally:
        reg2.stop()


def test_concurrent_pushes_of_a_shared_blob(tmp_path):
    root = str(tmp_path / "s")
    reg = Registry(root, "--log-level", "warn")
    shared = os.urandom(3 << 20)
    dg = digest(shared)
    results = []

    def push(i: int):
        name = f"shared/app{i % 4}"
        if i % 2:
            r = reg.request("POST", f"/v2/{name}/blobs/uploads/?digest={dg}", shared)
        else:
            loc = reg.request("POST", f"/v2/{name}/blobs/uploads/").h("location")
            loc = reg.request("PATCH", loc, shared[:1 << 20], {"Content-Range": f"0-{(1 << 20) - 1}"}).h("location")
            r = reg.request("PUT", add_query(loc, digest=dg), shared[1 << 20:],
                            {"Content-Range": f"{1 << 20}-{len(shared) - 1}"})
        results.append(r.status)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [201] * 12
    for i in range(4):
        assert reg.request("GET", f"/v2/shared/app{i}/blobs/{dg}").body == shared
    assert store_files(root, "blobs") == [f"sha256/{dg[7:9]}/{dg[7:]}"]
    assert os.listdir(os.path.join(root, "uploads")) == []
    reg.stop()


def test_one_upload_written_by_two_requests_at_once(tmp_path):
    root = str(tmp_path / "s")
    reg = Registry(root, "--log-level", "warn")
    data = os.urandom(1 << 20)
    loc = reg.request("POST", "/v2/two/app/blobs/uploads/").h("location")
    s = raw(reg.port)
    s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n".encode())
    s.sendall(data[:1000])
    wait_for(lambda: upload_size(root, loc) >= 1000, "the first writer to start")
    r = reg.request("PATCH", loc, b"intruder")
    assert r.status == 416 and r.codes() == ["RANGE_INVALID"], r
    s.sendall(data[1000:])
    status, headers, _, _ = read_response(s)
    assert status == 202 and headers["range"] == f"0-{len(data) - 1}"
    r = reg.request("PUT", add_query(loc, digest=digest(data)))
    assert r.status == 201
    reg.stop()


def test_pipelined_requests_are_answered_in_order(tmp_path):
    reg = Registry(str(tmp_path / "s"), "--log-level", "warn")
    dg, data, _ = reg.push_image("pipe/app", "v1")
    s = raw(reg.port)
    s.sendall(b"GET /v2/pipe/app/manifests/v1 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /v2/pipe/app/tags/list HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /v2/pipe/app/manifests/nope HTTP/1.1\r\nHost: x\r\n\r\n")
    st1, h1, b1, rest = read_response(s)
    assert st1 == 200 and b1 == data
    buf = rest
    # the remaining two responses may already be in 'rest'
    s2 = _Prefixed(s, buf)
    st2, _, b2, rest = read_response(s2)
    assert st2 == 200 and json.loads(b2)["tags"] == ["v1"]
    st3, _, b3, _ = read_response(_Prefixed(s, rest))
    assert st3 == 404 and b"MANIFEST_UNKNOWN" in b3
    reg.stop()


class _Prefixed:
    def __init__(self, s, prefix: bytes) -> None:
        self.s, self.prefix = s, prefix

    def recv(self, n: int) -> bytes:
        if self.prefix:
            b, self.prefix = self.prefix, b""
            return b
        return self.s.recv(n)


def test_expect_100_continue(tmp_path):
    reg = Registry(str(tmp_path / "s"), "--log-level", "warn")
    data = os.urandom(100_000)
    s = raw(reg.port)
    s.sendall(f"POST /v2/exp/app/blobs/uploads/?digest={digest(data)} HTTP/1.1\r\nHost: x\r\n"
              f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n".encode())
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    s.sendall(data)
    assert read_response(s)[0] == 201
    # a request refused before its body: answered at once, no 100
    s = raw(reg.port)
    s.sendall(f"POST /v2/BAD/blobs/uploads/?digest={digest(data)} HTTP/1.1\r\nHost: x\r\n"
              f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n".encode())
    status, headers, body, _ = read_response(s)
    assert status == 400 and b"NAME_INVALID" in body
    reg.stop()


def _metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.fullmatch(r"([a-z_]+)(\{[^}]*\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def test_metrics(tmp_path):
    reg = Registry(str(tmp_path / "s"), "--log-level", "warn")
    try:
        before = reg.request("GET", "/metrics").body.decode()
        for _ in range(7):
            assert reg.request("GET", "/v2/").status == 200
        reg.request("GET", "/v2/m/app/manifests/missing")
        loc = reg.request("POST", "/v2/m/app/blobs/uploads/").h("location")
        reg.request("PATCH", loc, b"x" * 1000)
        text = reg.request("GET", "/metrics").body.decode()
        assert reg.request("GET", "/metrics").h("content-type").startswith("text/plain; version=0.0.4")
        get200 = 'lamina_registry_http_requests_total'
        assert _metric(text, get200, method="GET", code="200") - _metric(before, get200, method="GET", code="200") == 8
        assert _metric(text, get200, method="GET", code="404") == 1
        assert _metric(text, get200, method="PATCH", code="202") == 1
        assert _metric(text, "lamina_registry_uploads_in_progress") == 1
        assert _metric(text, "lamina_registry_http_request_bytes_total") >= 1000
        assert _metric(text, "lamina_registry_http_request_duration_seconds_count", route="base") == 7
        assert _metric(text, "lamina_registry_http_request_duration_seconds_bucket", route="base", le="+Inf") == 7
        assert _metric(text, "lamina_registry_http_response_bytes_total") > 0
    finally:
        reg.stop()


def test_access_log_lines_like_registry2(tmp_path):
    reg = Registry(str(tmp_path / "s"))
    reg.request("GET", "/v2/", headers={"User-Agent": "docker/20.10.24 go/go1.19", "Referer": "r"})
    reg.request("GET", "/v2/log/app/manifests/x")
    assert reg.stop() == 0
    lines = [l for l in reg.lines if '"GET ' in l]
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                        r'"GET /v2/ HTTP/1\.1" 200 2 "r" "docker/20\.10\.24 go/go1\.19"\n', lines[0]), lines
    assert re.search(r'"GET /v2/log/app/manifests/x HTTP/1\.1" 404 \d+ "" ""', lines[1]), lines


def test_several_workers_share_port_and_store(tmp_path):
    reg = Registry(str(tmp_path / "s"), "--workers", "2", "--log-level", "warn")
    try:
        kids = open(f"/proc/{reg.proc.pid}/task/{reg.proc.pid}/children").read().split()
        assert len(kids) == 1
        dg, data, _ = reg.push_image("w/app", "v1")
        n = 60
        for _ in range(n):   # a new connection each time: the kernel spreads them
            assert reg.request("GET", "/v2/w/app/manifests/v1").body == data
        text = reg.request("GET", "/metrics").body.decode()
        assert _metric(text, "lamina_registry_http_request_duration_seconds_count", route="manifest") >= n + 1
    finally:
        assert reg.stop() == 0
    for k in kids:
        assert not os.path.exists(f"/proc/{k}") or open(f"/proc/{k}/stat").read().split()[2] == "Z"


def test_tls(tmp_path):
    need_tool("openssl")
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    reg = Registry(str(tmp_path / "s"), "--tls-cert", cert, "--tls-key", key, "--log-level", "warn")
    try:
        assert reg.url.startswith("https://127.0.0.1:")
        import http.client
        ctx = ssl.create_default_context(cafile=cert)
        data = os.urandom(3 << 20)
        dg = digest(data)
        c = http.client.HTTPSConnection("127.0.0.1", reg.port, context=ctx, timeout=60)
        c.request("POST", f"/v2/tls/app/blobs/uploads/?digest={dg}", data)
        r = c.getresponse()
        r.read()
        assert r.status == 201
        c.request("GET", f"/v2/tls/app/blobs/{dg}")
        r = c.getresponse()
        assert r.status == 200 and r.read() == data
        c.request("GET", f"/v2/tls/app/blobs/{dg}", headers={"Range": "bytes=10-19"})
        r = c.getresponse()
        assert r.status == 206 and r.read() == data[10:20]
        c.close()
        # plain HTTP to a TLS port is not served
        s = raw(reg.port)
        s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" not in s.recv(1000)
    finally:
        reg.stop()


def test_bad_flags_exit_125(tmp_path):
    from conftest import Lamina
    lam = Lamina(str(tmp_path / "root"))
    for args, msg in ((["--addr", "nope"], "invalid --addr"), (["--auth", "token"], "needs --htpasswd"),
                      (["--log-level", "loud"], "--log-level"), (["--tls-cert", "x"], "go together"),
                      (["--htpasswd", str(tmp_path / "missing")], "no such file"),
                      (["--max-manifest-size", "big"], "--max-manifest-size")):
        r = lam("registry", "serve", "--root", str(tmp_path / "s"), *args, check=False)
        assert r.rc == 125, (args, r)
        assert msg in r.err and r.err.count("\n") == 1, r.err
    out = lam("registry", "--help").out
    assert out.startswith("\nUsage:  lamina registry COMMAND\n\nRun and maintain the built-in OCI registry\n\n"
                          "Commands:\n"), out
    listed = out.split("Commands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in listed] == ["gc", "htpasswd", "import", "serve"], out
    assert all(len(line.split()) > 1 for line in listed), out  # each with its description


def test_other_verbs_never_load_the_server():
    import sys as _sys
    code = ("import sys\nfrom lamina.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('MODULES ' + ' '.join(sys.modules) + '\\n')\n")
    from registry_server_util import REPO
    for args in (["--help"], ["images", "--help"], ["registry", "--help"], ["registry", "serve", "--help"],
                 ["registry", "gc", "--help"]):
        p = subprocess.run([_sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=REPO))
        mods = set(p.stderr.rsplit("MODULES ", 1)[1].split())
        heavy = {m for m in mods if m.split(".")[0] in ("uvloop", "httptools", "bcrypt", "asyncio")
                 or m.startswith("lamina.registry")}
        assert heavy == set(), (args, heavy)


def test_symlinks_planted_in_the_store_are_never_followed(tmp_path):
    root = str(tmp_path / "s")
    reg = Registry(root, "--log-level", "warn")
    try:
        dg, data, blobs = reg.push_image("sym/app", "v1", layers=1)
        outside = tmp_path / "outside"
        outside.mkdir()
        secret = outside / "secret"
        secret.write_bytes(b"host secret")
        # a tag that is a symlink to a file holding a real digest
        (outside / "tag").write_text(dg + "\n")
        tag = os.path.join(root, "repositories", "sym/app", "_tags", "v2")
        os.symlink(str(outside / "tag"), tag)
        r = reg.request("GET", "/v2/sym/app/manifests/v2")
        assert r.status == 404 and r.codes() == ["MANIFEST_UNKNOWN"], r
        # a blob file replaced by a symlink to a host file
        layer = blobs[1][7:]
        bpath = os.path.join(root, "blobs", "sha256", layer[:2], layer)
        os.unlink(bpath)
        os.symlink(str(secret), bpath)
        r = reg.request("GET", f"/v2/sym/app/blobs/{blobs[1]}")
        assert r.status == 404 and b"host secret" not in r.body, r
        # a repository directory that is a symlink out of the store
        os.symlink(str(outside), os.path.join(root, "repositories", "evil"))
        r = reg.request("GET", "/v2/evil/tags/list")
        assert r.status == 404, r
        r = reg.request("POST", f"/v2/evil/x/blobs/uploads/?digest={digest(b'payload')}", b"payload")
        assert r.status >= 400, r
        assert sorted(os.listdir(outside)) == ["secret", "tag"]
        assert reg.request("GET", "/v2/sym/app/manifests/v1").body == data
    finally:
        reg.stop()


def test_in_process_server(tmp_path):
    from lamina.registry.server.serve import start_in_thread
    reg = start_in_thread(root=str(tmp_path / "s"))
    try:
        import urllib.request
        with urllib.request.urlopen(reg.url + "/v2/") as r:
            assert r.status == 200 and r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    finally:
        reg.stop()
