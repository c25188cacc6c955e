"""Networking rows of ``python -m bench`` (``--only network``), bridge against bridge:

- ``run --rm`` on the default bridge network: lamina's ``lamina0`` against docker's
  ``docker0`` (both make a network namespace, a veth pair, an address; bar: <= 0.4x);
- TCP throughput through a published port: a bounded bulk transfer (``NET_BYTES``, 256 MiB)
  from a busybox ``nc`` in the container to a client on the host's loopback, through
  ``-p``: lamina's kernel DNAT against docker's ``-p`` (docker-proxy relays loopback
  clients); lamina's userspace proxy (``LAMINA_USERLAND_PROXY=1``) as an extra row
  (bar: lamina's default >= 0.9x docker's throughput, i.e. time ratio <= 1.11).

Both sides run the same busybox root filesystem (imported into each from one tar) and the
same server script; each sample starts its own container (untimed), waits until the port
answers, then times the transfer. Standalone: ``python -m bench.network [--runs N]``.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import time

NET_BYTES = 256 << 20
PORT_IN = 5000
SCRIPT = (f"printf '#!/bin/sh\\nexec dd if=/dev/zero bs=1M count={NET_BYTES >> 20} 2>/dev/null\\n' > /bulk; "
          f"chmod +x /bulk; exec nc -ll -p {PORT_IN} -e /bulk")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if s.recv(1):  # the server started sending: it is up (this connection is dropped)
                    return
                raise OSError("closed at once (a proxy whose backend is not up yet)")
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answers on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def _pull(port: int) -> float:
    """Seconds to read the whole transfer from 127.0.0.1:port."""
    t0 = time.perf_counter()
    got = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        buf = bytearray(1 << 20)
        while True:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
    dt = time.perf_counter() - t0
    if got != NET_BYTES:
        raise RuntimeError(f"transfer through port {port} ended after {got} of {NET_BYTES} bytes")
    return dt


def _images(t, work: str, docker: str | None) -> dict[str, str]:
    """busybox in lamina's store and in dockerd, from one tar."""
    from bench.__main__ import sh  # the bench's runner (same in every version)
    tar = os.path.join(work, "net-busybox.tar")
    if not os.path.exists(tar):
        rootfs = os.path.join(work, "net-rootfs")
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
        from conftest import make_busybox_rootfs
        make_busybox_rootfs(rootfs)
        sh("tar", "-C", rootfs, "-cf", tar, ".")
    t.L("import", "-c", 'CMD ["sh"]', tar, "bench-net-busybox")
    out = {"lamina": "bench-net-busybox"}
    if docker:
        sh(docker, "import", "-c", 'CMD ["sh"]', tar, "bench-net-busybox:latest")
        out["docker"] = "bench-net-busybox:latest"
    return out


def run_network(t, runs: int, work: str, report, docker: str | None) -> None:
    """Add the networking rows through ``report(name, {tool: [seconds]})``."""
    from bench.__main__ import sh
    img = _images(t, work, docker)
    clis = {"lamina": t.L}
    if docker:
        clis["docker"] = lambda *a, **kw: sh(docker, *a, **kw)
    order = getattr(t, "order", lambda names: list(names))

    # run --rm on the default bridge, both sides
    res: dict[str, list[float]] = {k: [] for k in clis}
    for _ in range(max(runs, 10)):
        for name in order(clis):
            t0 = time.perf_counter()
            clis[name]("run", "--rm", img[name], "true")
            res[name].append(time.perf_counter() - t0)
    report("run --rm busybox true (bridge vs bridge)", res)

    # TCP throughput through a published port
    variants = {"lamina": t.L, **({"docker": clis["docker"]} if docker else {}), "lamina-proxy": t.L}
    res = {k: [] for k in variants}
    for _ in range(runs):
        for name in order(variants):
            cli = variants[name]
            port = _free_port()
            if name == "lamina-proxy":  # the fallback forwarder, for the record
                t.env["LAMINA_USERLAND_PROXY"] = "1"
            try:
                cid = cli("run", "-d", "-p", f"127.0.0.1:{port}:{PORT_IN}", img[name.split("-")[0]],
                          "sh", "-c", SCRIPT).stdout.decode().strip()
            finally:
                t.env.pop("LAMINA_USERLAND_PROXY", None)
            try:
                _wait_port(port)
                res[name].append(_pull(port))
            finally:
                cli("rm", "-f", cid, check=False)
    report(f"TCP {NET_BYTES >> 20} MiB through -p (loopback)", res)
    mbps = {k: f"{NET_BYTES / statistics.median(v) / 1e6:.0f} MB/s" for k, v in res.items() if v}
    print("    throughput (median): " + ", ".join(f"{k} {v}" for k, v in mbps.items()), flush=True)
    t.L("rmi", "bench-net-busybox", check=False)
    if docker:
        sh(docker, "rmi", "bench-net-busybox:latest", check=False)


def main() -> int:
    """``python -m bench.network [--runs N]``: these rows alone, with the bench's runner."""
    import argparse
    import tempfile

    from bench import __main__ as B
    ap = argparse.ArgumentParser(prog="python -m bench.network")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lamina-bench-net-") as work:
        t = B.Tools(os.path.join(work, "root"))
        docker = _docker(B)
        print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        run_network(t, a.runs, work, B.report, docker)
        print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return 0


def _docker(B) -> str | None:
    """The bench's docker client (one for every docker row), if dockerd answers."""
    import shutil
    exe = getattr(B, "DOCKER", None) or shutil.which("docker")
    try:
        return exe if exe and subprocess.run([exe, "version"], capture_output=True).returncode == 0 else None
    except OSError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
