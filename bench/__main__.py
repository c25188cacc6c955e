"""Run lamina and each installed reference tool through the same scenarios, in one run, and
print medians and ratios (lamina / peer; below 1.0 means lamina is faster).

    python -m bench [--runs N] [--only SCENARIO,...] [--debian-tar PATH]

Scenarios (issue 2): import of a ~200 MB debootstrap rootfs tar (docker import, podman
import), save and load of that image (docker save/load), ``images`` with 200 images
(docker images, podman images). Peers that are not installed or not running are left out
of the table (and said so). The debian tarball is made with debootstrap if missing
(examples/make-debian-base.sh keeps it in /var/tmp/lamina-debian-bookworm.tar).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(list(args), capture_output=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {p.stderr.decode(errors='replace')}")
    return p


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def lamina_cmd() -> list[str]:
    exe = shutil.which("lamina", path=os.path.join(REPO, ".venv", "bin")) or shutil.which("lamina")
    return [exe] if exe else [sys.executable, "-m", "lamina"]


class Tools:
    def __init__(self, root: str) -> None:
        self.lamina = lamina_cmd()
        self.env = {**os.environ, "LAMINA_ROOT": root}
        self.docker = shutil.which("docker") and sh("docker", "version", check=False).returncode == 0
        self.podman = bool(shutil.which("podman"))

    def L(self, *args: str, **kw):
        return sh(*self.lamina, *args, env=self.env, **kw)


def bench_import(t: Tools, tar: str, runs: int, work: str) -> dict[str, list[float]]:
    res: dict[str, list[float]] = {"lamina": [], "docker": [], "podman": []}
    for i in range(runs):
        src = unique_copy(tar, work, f"import{i}")
        res["lamina"].append(timed(lambda: t.L("import", src, f"bench/deb:{i}")))
        t.L("rmi", f"bench/deb:{i}")
        if t.docker:
            res["docker"].append(timed(lambda: sh("docker", "import", src, f"bench/deb:{i}")))
            sh("docker", "rmi", f"bench/deb:{i}")
        if t.podman:
            res["podman"].append(timed(lambda: sh("podman", "import", "-q", src, f"bench/deb:{i}")))
            sh("podman", "rmi", f"bench/deb:{i}")
        os.unlink(src)
    return res


def bench_save_load(t: Tools, tar: str, runs: int, work: str) -> tuple[dict, dict]:
    save: dict[str, list[float]] = {"lamina": [], "docker": []}
    load: dict[str, list[float]] = {"lamina": [], "docker": []}
    tar = unique_copy(tar, work, "saveload")
    t.L("import", tar, "bench/deb:save")
    if t.docker:
        sh("docker", "import", tar, "bench/deb:save")
    dsave = os.path.join(work, "docker-save.tar")
    for i in range(runs):
        out = os.path.join(work, f"l{i}.tar")
        save["lamina"].append(timed(lambda: t.L("save", "-o", out, "bench/deb:save")))
        os.unlink(out)
        if t.docker:
            save["docker"].append(timed(lambda: sh("docker", "save", "-o", dsave, "bench/deb:save")))
    if t.docker:
        # both load the same `docker save` archive into a store that lacks the image
        for i in range(runs):
            t.L("rmi", "bench/deb:save", check=False)
            load["lamina"].append(timed(lambda: t.L("load", "-i", dsave)))
            sh("docker", "rmi", "bench/deb:save")
            load["docker"].append(timed(lambda: sh("docker", "load", "-i", dsave)))
        sh("docker", "rmi", "bench/deb:save", check=False)
    t.L("rmi", "bench/deb:save", check=False)
    return save, load


def bench_images(t: Tools, runs: int, work: str, count: int = 200) -> dict[str, list[float]]:
    tiny = os.path.join(work, "tiny")
    os.makedirs(tiny, exist_ok=True)
    res: dict[str, list[float]] = {"lamina": [], "docker": [], "podman": []}
    for i in range(count):
        with open(os.path.join(tiny, "id"), "w") as f:
            f.write(str(i))
        tar = os.path.join(work, "tiny.tar")
        sh("tar", "-C", tiny, "-cf", tar, ".")
        t.L("import", tar, f"bench/img{i}:v1")
        if t.docker:
            sh("docker", "import", tar, f"bench/img{i}:v1")
        if t.podman:
            sh("podman", "import", "-q", tar, f"bench/img{i}:v1")
    for _ in range(max(runs, 5)):
        res["lamina"].append(timed(lambda: t.L("images")))
        if t.docker:
            res["docker"].append(timed(lambda: sh("docker", "images")))
        if t.podman:
            res["podman"].append(timed(lambda: sh("podman", "images")))
    n = len(t.L("images", "-q").stdout.split())
    assert n >= count, f"lamina images listed {n} images, expected {count}"
    for i in range(count):
        if t.docker:
            sh("docker", "rmi", f"bench/img{i}:v1", check=False)
        if t.podman:
            sh("podman", "rmi", f"bench/img{i}:v1", check=False)
    return res


def report(name: str, res: dict[str, list[float]]) -> None:
    lam = statistics.median(res["lamina"])
    cells = [f"lamina {lam:7.3f}s"]
    for peer, times in res.items():
        if peer == "lamina":
            continue
        if not times:
            cells.append(f"{peer:>7} (not available)")
            continue
        med = statistics.median(times)
        cells.append(f"{peer} {med:7.3f}s  ratio {lam / med:5.2f}x")
    print(f"{name:<28} " + " | ".join(cells), flush=True)


def unique_copy(tar: str, work: str, tag: str) -> str:
    """A copy of ``tar`` with one extra file, so no tool already holds its layer."""
    out = os.path.join(work, f"rootfs-{tag}.tar")
    shutil.copyfile(tar, out)
    d = os.path.join(work, f"u-{tag}")
    os.makedirs(d, exist_ok=True)
    name = f"bench-{tag}-{os.urandom(8).hex()}"
    with open(os.path.join(d, name), "w") as f:
        f.write(tag)
    sh("tar", "-rf", out, "-C", d, name)
    return out


def debian_tar(path: str | None) -> str:
    for p in (path, os.environ.get("DEBIAN_TAR"), "/var/tmp/lamina-debian-bookworm.tar"):
        if p and os.path.exists(p):
            return p
    target = "/var/tmp/lamina-debian-bookworm.tar"
    print(f"making {target} with debootstrap (minutes) ...", file=sys.stderr)
    env = {**os.environ, "DEBIAN_TAR": target, "LAMINA": " ".join(lamina_cmd())}
    with tempfile.TemporaryDirectory() as root:
        env["LAMINA_ROOT"] = root
        sh("bash", os.path.join(REPO, "examples", "make-debian-base.sh"), "bench/debootstrap", env=env)
    return target


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", default="import,save,load,images")
    ap.add_argument("--debian-tar", default=None)
    a = ap.parse_args()
    only = set(a.only.split(","))
    with tempfile.TemporaryDirectory(prefix="lamina-bench-") as work:
        t = Tools(os.path.join(work, "root"))
        print(f"peers: docker={'yes' if t.docker else 'no'} podman={'yes' if t.podman else 'no'}; "
              f"lamina={' '.join(t.lamina)}; runs={a.runs}; medians", flush=True)
        tar = debian_tar(a.debian_tar) if only & {"import", "save", "load"} else None
        if tar:
            print(f"rootfs tar: {tar} ({os.path.getsize(tar) / 1e6:.0f} MB)", flush=True)
        if "import" in only:
            report("import ~200MB rootfs", bench_import(t, tar, a.runs, work))
        if only & {"save", "load"}:
            save, load = bench_save_load(t, tar, a.runs, work)
            if "save" in only:
                report("save ~200MB image", save)
            if "load" in only and load["lamina"]:
                report("load docker-save archive", load)
        if "images" in only:
            report("images (200 images)", bench_images(t, a.runs, work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
