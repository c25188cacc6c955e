"""Registry client bars (issue 10), side by side in one run against a local registry:2:

    python -m bench --only registry [--runs N]        (or: python -m bench.registry_client)

The image: a Debian rootfs layer (made unique, so no store has seen it), 3 x 64 MB random
files, 3,000 small files (three layers, ~200 MB of new data). Rows:

- pull: ``lamina pull`` into an empty store vs ``skopeo copy docker://... oci:DIR`` (fetch
  and verify, no unpack) vs ``docker pull`` (after ``docker rmi``).
- first run after pull vs a run of the already unpacked image (lamina, both).
- push: ``lamina push`` of the freshly built image (its layers were compressed by the
  build) into an empty registry vs ``docker push`` of the same image (docker load of
  lamina save) vs ``skopeo copy oci:<lamina's layout> docker://...``.
- peak RSS of ``lamina pull`` (max resident set of the process, getrusage).

Each measured push goes to a registry started empty for it; each pull to an empty store
or directory. Registries bind 127.0.0.1 on free ports and are stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

from bench.__main__ import Tools, debian_tar, report, sh, timed, unique_copy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Registry:
    def __init__(self, work: str) -> None:
        self.dir = os.path.join(work, f"reg-{os.urandom(3).hex()}")
        os.makedirs(self.dir)
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        cfg = os.path.join(self.dir, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n"
                    f"http:\n  addr: 127.0.0.1:{self.port}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _build_image(t: Tools, work: str, tar: str, tag: str) -> None:
    base = unique_copy(tar, work, "regbase")
    t.L("import", base, "bench/regbase:latest")
    os.unlink(base)
    ctx = os.path.join(work, "ctx-registry")
    os.makedirs(os.path.join(ctx, "big"), exist_ok=True)
    os.makedirs(os.path.join(ctx, "small"), exist_ok=True)
    for i in range(3):
        with open(os.path.join(ctx, "big", f"blob{i}"), "wb") as f:
            f.write(os.urandom(64 << 20))
    for i in range(3000):
        with open(os.path.join(ctx, "small", f"f{i:04d}"), "w") as f:
            f.write(f"file {i} {os.urandom(8).hex()}\n" * 20)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM bench/regbase:latest\nCOPY big /big\nCOPY small /small\nCMD [\"true\"]\n")
    t.L("build", "-q", "-t", tag, ctx)


def _maxrss(cmd: list[str], env: dict) -> tuple[float, int]:
    """(seconds, peak RSS in KiB) of one command."""
    code = ("import resource, subprocess, sys, time\n"
            "t = time.perf_counter()\n"
            "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
            "d = time.perf_counter() - t\n"
            "assert p.returncode == 0, p.stderr.decode()\n"
            "print(d, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code, *cmd], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    secs, rss = out.stdout.split()
    return float(secs), int(rss)


def run_registry(t: Tools, runs: int, work: str, tar: str | None = None) -> None:
    """Measure and print the registry rows (see the module docstring)."""
    tar = tar or debian_tar(None)
    skopeo = bool(shutil.which("skopeo"))
    tag_local = "bench/regimg:v1"
    _build_image(t, work, tar, tag_local)
    m = json.loads(t.L("inspect", tag_local).stdout)[0]
    size = sum(x["size"] for x in json.loads(open(os.path.join(
        t.env["LAMINA_ROOT"], "content", "blobs", "sha256", m["Descriptor"]["digest"][7:])).read())["layers"])
    print(f"registry image: {len(m['RootFS']['Layers'])} layers, {size / 1e6:.0f} MB compressed; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    archive = None
    if t.docker:
        archive = os.path.join(work, "regimg.tar")
        t.L("save", "-o", archive, tag_local)
    # -- push ------------------------------------------------------------------------
    push: dict[str, list[float]] = {"lamina": [], "docker": [], "skopeo": []}
    src_reg = None
    try:
        for _ in range(runs):
            reg = _Registry(work)
            try:
                name = f"{reg.host}/bench/img:v1"
                t.L("tag", tag_local, name)
                push["lamina"].append(timed(lambda: t.L("push", name)))
                t.L("rmi", name)
            finally:
                reg.stop()
            if t.docker:
                reg = _Registry(work)
                try:
                    dname = f"{reg.host}/bench/img:v1"
                    sh("docker", "load", "-i", archive)
                    sh("docker", "tag", tag_local, dname)
                    push["docker"].append(timed(lambda: sh("docker", "push", dname)))
                    sh("docker", "rmi", dname, tag_local, check=False)
                finally:
                    reg.stop()
            if skopeo:
                reg = _Registry(work)
                try:
                    layout = os.path.join(t.env["LAMINA_ROOT"], "content")
                    ref = "docker.io/bench/regimg:v1"
                    push["skopeo"].append(timed(lambda: sh(
                        "skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:{ref}",
                        f"docker://{reg.host}/bench/img:v1")))
                finally:
                    reg.stop()
        report("push ~200MB fresh image", {k: v for k, v in push.items() if k != "skopeo"})
        report("push, compressed blobs", {"lamina": push["lamina"], "skopeo": push["skopeo"]})
        # -- pull --------------------------------------------------------------------
        src_reg = _Registry(work)
        name = f"{src_reg.host}/bench/img:v1"
        t.L("tag", tag_local, name)
        t.L("push", name)
        pull: dict[str, list[float]] = {"lamina": [], "skopeo": [], "docker": []}
        first: dict[str, list[float]] = {"lamina": [], "warm run": []}
        rss: list[int] = []
        for i in range(runs):
            root = os.path.join(work, f"pullroot{i}")
            env = {**t.env, "LAMINA_ROOT": root}
            secs, peak = _maxrss([*t.lamina, "pull", name], env)
            pull["lamina"].append(secs)
            rss.append(peak)
            first["lamina"].append(timed(lambda: sh(*t.lamina, "run", "--rm", name, "true", env=env)))
            first["warm run"].append(timed(lambda: sh(*t.lamina, "run", "--rm", name, "true", env=env)))
            shutil.rmtree(root, ignore_errors=True)
            if skopeo:
                d = os.path.join(work, f"skopeo{i}")
                pull["skopeo"].append(timed(lambda: sh("skopeo", "copy", "-q", "--src-tls-verify=false",
                                                       f"docker://{name}", f"oci:{d}:img")))
                shutil.rmtree(d, ignore_errors=True)
            if t.docker:
                sh("docker", "rmi", name, check=False)
                pull["docker"].append(timed(lambda: sh("docker", "pull", name)))
                sh("docker", "rmi", name, check=False)
        report("pull ~200MB image", pull)
        report("first run after pull", first)
        print(f"{'peak RSS, lamina pull':<28} {max(rss) / 1024:7.1f} MB (max of {len(rss)} runs; bar: < 150 MB)",
              flush=True)
    finally:
        if src_reg is not None:
            src_reg.stop()


def main() -> int:
    import argparse
    import tempfile
    ap = argparse.ArgumentParser(prog="python -m bench.registry_client")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--debian-tar", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lamina-bench-reg-") as work:
        t = Tools(os.path.join(work, "root"))
        run_registry(t, a.runs, work, debian_tar(a.debian_tar))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
