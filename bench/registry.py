"""Registry scenario: ``lamina registry serve`` against Debian's docker-registry (registry:2),
started side by side on free loopback ports by this script, in one run.

    python -m bench.registry [--runs N] [--duration S] [--workers N] [--json FILE]
    python -m bench --only registry          (the same, from the bench driver)

Rows (the bars of issue 11):
  manifest GET, 16 connections     wrk requests/s (lamina / registry:2 >= 1.5) and p99 latency (<= 1.0)
  64 MB blob GET, 8 connections    wrk bytes/s (>= 1.0)
  skopeo push of ~200 MB           seconds, median of --runs, a new repository each run (<= 1.0)
  RSS after 1,000 / 100,000 req    of lamina's serving process (100k within 20% of 1k)

The load average is printed with every row: figures from a busy machine are comparable
only with each other.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCEPT = ("application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
          "application/vnd.docker.distribution.manifest.v2+json")
EXIT_AFTER = """
local n = 0
local limit = tonumber(os.getenv("WRK_EXIT_AFTER"))
function response(status, headers, body)
  if status ~= 200 then io.stderr:write("status " .. status .. "\\n"); os.exit(2) end
  n = n + 1
  if n >= limit then os.exit(0) end
end
"""

def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.05)


class Server:
    def __init__(self, name: str, proc: subprocess.Popen, port: int) -> None:
        self.name, self.proc, self.port = name, proc, port

    def rss_kb(self) -> int:
        """Resident set of the serving process(es): the process and its children."""
        pids = [self.proc.pid]
        try:
            pids += [int(p) for p in open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read().split()]
        except OSError:
            pass
        total = 0
        for pid in pids:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_lamina(work: str, workers: int) -> Server:
    env = {**os.environ, "PYTHONPATH": REPO}
    p = subprocess.Popen([sys.executable, "-m", "lamina", "registry", "serve", "--addr", "127.0.0.1:0",
                          "--root", os.path.join(work, "lamina-store"), "--workers", str(workers)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    line = p.stdout.readline().decode()
    if "listening on" not in line:
        raise RuntimeError(f"lamina registry did not start: {line!r}")
    port = int(line.strip().rsplit(":", 1)[1])
    # the access log (stdout) goes on being read, as a log collector would
    drain = subprocess.Popen(["cat"], stdin=p.stdout, stdout=subprocess.DEVNULL)
    p.stdout.close()
    s = Server("lamina", p, port)
    s._drain = drain
    return s


def start_registry2(work: str) -> Server | None:
    exe = shutil.which("docker-registry")
    if not exe:
        return None
    port = free_port()
    cfg = os.path.join(work, "registry2.yml")
    with open(cfg, "w") as f:
        f.write("version: 0.1\nlog: {level: error}\n"
                f"storage: {{filesystem: {{rootdirectory: {work}/registry2-store}}, delete: {{enabled: true}}}}\n"
                f"http: {{addr: \"127.0.0.1:{port}\"}}\n")
    p = subprocess.Popen([exe, "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p, "docker-registry")
    return Server("registry:2", p, port)


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("Location"), data


def push_blob(port: int, name: str, data: bytes) -> str:
    dg = "sha256:" + hashlib.sha256(data).hexdigest()
    st, loc, _ = request(port, "POST", f"/v2/{name}/blobs/uploads/")
    assert st == 202, st
    if loc.startswith("http"):
        loc = "/" + loc.split("/", 3)[3]
    sep = "&" if "?" in loc else "?"
    st, _, body = request(port, "PUT", f"{loc}{sep}digest={dg}", data, {"Content-Type": "application/octet-stream"})
    assert st == 201, (st, body)
    return dg


def seed(port: int, layer: bytes) -> tuple[str, str]:
    """A tagged image with one 64 MB layer; returns (manifest path, blob path)."""
    cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    c = push_blob(port, "bench/app", cfg)
    l = push_blob(port, "bench/app", layer)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": len(cfg)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l,
                                "size": len(layer)}]}).encode()
    st, _, body = request(port, "PUT", "/v2/bench/app/manifests/v1", m,
                          {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert st == 201, (st, body)
    return "/v2/bench/app/manifests/v1", f"/v2/bench/app/blobs/{l}"


def _unit(v: str) -> float:
    m = re.fullmatch(r"([\d.]+)([a-zA-Z]*)", v)
    n, u = float(m.group(1)), m.group(2)
    return n * {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1, "KB": 1024, "MB": 1 << 20, "GB": 1 << 30,
                "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[u]


def wrk(port: int, path: str, conns: int, duration: float, *, accept: bool = False) -> dict:
    args = ["wrk", "-t2", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency"]
    if accept:
        args += ["-H", f"Accept: {ACCEPT}"]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         check=True).stdout
    res = {"rps": _unit(re.search(r"Requests/sec:\s+(\S+)", out).group(1)),
           "bytes_per_s": _unit(re.search(r"Transfer/sec:\s+(\S+)", out).group(1)),
           "p99": _unit(re.search(r"99%\s+(\S+)", out).group(1)),
           "requests": int(re.search(r"(\d+) requests in", out).group(1))}
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errs:
        raise RuntimeError(f"wrk saw {errs.group(1)} error responses from port {port}")
    return res


def wrk_count(port: int, path: str, count: int, script_dir: str) -> None:
    """Exactly ``count`` answered requests (16 connections, one wrk thread that exits when
    its count is reached; ``thread:stop()`` would leave wrk running to its duration)."""
    sp = os.path.join(script_dir, "exit-after.lua")
    with open(sp, "w") as f:
        f.write(EXIT_AFTER)
    subprocess.run(["wrk", "-t1", "-c16", "-d3600s", "-s", sp, "-H", f"Accept: {ACCEPT}",
                    f"http://127.0.0.1:{port}{path}"], capture_output=True, check=True,
                   env={**os.environ, "WRK_EXIT_AFTER": str(count)})


def make_layout(path: str, total: int) -> str:
    """An OCI layout of ~``total`` bytes in 4 uncompressed tar layers (random data)."""
    blobs = os.path.join(path, "blobs", "sha256")
    os.makedirs(blobs)

    def put(b: bytes) -> str:
        h = hashlib.sha256(b).hexdigest()
        with open(os.path.join(blobs, h), "wb") as f:
            f.write(b)
        return "sha256:" + h
    descs, diffs = [], []
    for i in range(4):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            data = os.urandom(total // 4)
            ti = tarfile.TarInfo(f"layer{i}.bin")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        t = buf.getvalue()
        d = put(t)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": len(t)})
        diffs.append(d)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg),
                                 "size": len(cfg)}, "layers": descs}).encode()
    md = put(man)
    with open(os.path.join(path, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(os.path.join(path, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": md, "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "x"}}]}, f)
    return f"oci:{path}:x"


def skopeo_push(src: str, port: int, repo: str) -> float:
    t = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false", src,
                    f"docker://localhost:{port}/{repo}:v1"], check=True, capture_output=True)
    return time.perf_counter() - t


def row(name: str, lam: float, peer: float | None, unit: str, bar: str, higher_better: bool) -> dict:
    ratio = lam / peer if peer else None
    ok = None
    if ratio is not None:
        limit = float(bar.split()[-1])
        ok = ratio >= limit if higher_better else ratio <= limit
    peer_s = f"{peer:12.1f} {unit}" if peer is not None else "   (n/a)"
    ratio_s = f"{ratio:6.2f}x" if ratio is not None else "   -  "
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"{name:<34} lamina {lam:12.1f} {unit} | registry:2 {peer_s} | ratio {ratio_s} "
          f"(bar {bar}) {verdict}  [load {load()}]", flush=True)
    return {"name": name, "lamina": lam, "registry2": peer, "unit": unit, "ratio": ratio, "bar": bar, "ok": ok}


def run(*, runs: int = 3, duration: float = 10.0, workers: int = 1, push_mb: int = 200,
        out_json: str | None = None) -> int:
    for tool in ("wrk", "skopeo"):
        if not shutil.which(tool):
            print(f"registry bench needs {tool}", file=sys.stderr)
            return 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="lamina-bench-registry-") as work:
        lam = start_lamina(work, workers)
        r2 = start_registry2(work)
        servers = [s for s in (lam, r2) if s]
        print(f"registry bench: lamina (workers={workers}) on :{lam.port}, "
              f"registry:2 {'on :%d' % r2.port if r2 else 'not installed'}; load {load()}; "
              f"runs={runs}, wrk {duration:.0f}s", flush=True)
        try:
            layer = os.urandom(64 << 20)
            paths = {s.name: seed(s.port, layer) for s in servers}
            for s in servers:     # warm up: caches, first connections
                wrk(s.port, paths[s.name][0], 16, 2, accept=True)
            # RSS of lamina's server after 1,000 requests, then after 100,000 (registry:2's
            # after 1,000 only, for scale: 100,000 of its requests take minutes here)
            rss = {}
            for s in servers:
                wrk_count(s.port, paths[s.name][0], 1000, work)
                rss[s.name] = (s.rss_kb(), None)
            wrk_count(lam.port, paths["lamina"][0], 99000, work)
            rss["lamina"] = (rss["lamina"][0], lam.rss_kb())
            mget = {s.name: [wrk(s.port, paths[s.name][0], 16, duration, accept=True) for _ in range(runs)]
                    for s in servers}
            bget = {s.name: [wrk(s.port, paths[s.name][1], 8, duration) for _ in range(runs)] for s in servers}
            # new content for every push: skopeo remembers where it saw a blob (its blob info
            # cache) and would mount it instead of uploading it again
            push = {s.name: [] for s in servers}
            for i in range(runs):
                for s in servers:
                    lay = os.path.join(work, f"layout-{s.name}-{i}".replace(":", ""))
                    src = make_layout(lay, push_mb << 20)
                    push[s.name].append(skopeo_push(src, s.port, f"bench/push{i}"))
                    shutil.rmtree(lay)

            def med(d, name, key=None):
                if name not in d:
                    return None
                v = d[name]
                return statistics.median([x[key] for x in v] if key else v)
            rows.append(row("manifest GET, 16 conns (req/s)", med(mget, "lamina", "rps"),
                            med(mget, "registry:2", "rps"), "req/s", ">= 1.5", True))
            rows.append(row("manifest GET p99 latency (ms)", 1000 * med(mget, "lamina", "p99"),
                            1000 * med(mget, "registry:2", "p99") if r2 else None, "ms", "<= 1.0", False))
            rows.append(row("64 MB blob GET, 8 conns (MB/s)", med(bget, "lamina", "bytes_per_s") / (1 << 20),
                            med(bget, "registry:2", "bytes_per_s") / (1 << 20) if r2 else None, "MB/s",
                            ">= 1.0", True))
            rows.append(row(f"skopeo push ~{push_mb} MB (s)", med(push, "lamina"), med(push, "registry:2"),
                            "s", "<= 1.0", False))
            r1, r100 = rss["lamina"]
            print(f"{'RSS after 1k / 100k requests':<34} lamina {r1 / 1024:.1f} / {r100 / 1024:.1f} MiB "
                  f"(x{r100 / r1:.2f}, bar <= 1.20) {'ok' if r100 <= 1.2 * r1 else 'MISSED'}"
                  + (f" | registry:2 {rss['registry:2'][0] / 1024:.1f} MiB after 1k" if r2 else "")
                  + f"  [load {load()}]", flush=True)
            rows.append({"name": "rss", "lamina_kb": rss["lamina"], "registry2_kb": rss.get("registry:2")})
        finally:
            for s in servers:
                s.stop()
            if getattr(lam, "_drain", None):
                lam._drain.wait(timeout=30)
    if out_json:
        with open(out_json, "w") as f:
            json.dump({"load": load(), "rows": rows}, f, indent=1)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.registry")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    ap.add_argument("--workers", type=int, default=1, help="lamina registry serve --workers")
    ap.add_argument("--push-mb", type=int, default=200)
    ap.add_argument("--json", default=None, help="write the figures here too")
    a = ap.parse_args(argv)
    return run(runs=a.runs, duration=a.duration, workers=a.workers, push_mb=a.push_mb, out_json=a.json)


if __name__ == "__main__":
    raise SystemExit(main())
