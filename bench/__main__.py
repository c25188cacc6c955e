"""Run lamina and each installed reference tool through the same scenarios, in one run, and
print medians and ratios (lamina / peer; below 1.0 means lamina is faster).
``help`` times ``lamina --help`` (start-up; issue 13's bar is 25 ms) next to the peers'.

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
        for _ in range(runs):
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


def bench_help(t: Tools, runs: int) -> dict[str, list[float]]:
    """``--help``: the start-up floor of a command (issue 13's bar: lamina <= 25 ms)."""
    res: dict[str, list[float]] = {"lamina": [], "docker": [], "podman": []}
    for _ in range(max(runs, 20)):
        res["lamina"].append(timed(lambda: t.L("--help")))
        if t.docker:
            res["docker"].append(timed(lambda: sh("docker", "--help")))
        if t.podman:
            res["podman"].append(timed(lambda: sh("podman", "--help")))
    return res


def _bases(t: Tools, work: str) -> dict[str, str]:
    """The same busybox rootfs as a base image in every tool: name per tool."""
    tar = "/var/tmp/peers-bases/busybox.tar"
    if not os.path.exists(tar):
        tar = os.path.join(work, "busybox.tar")
        if not os.path.exists(tar):
            _busybox_tar(tar, work)
    out = {"lamina": "bench/busybox"}
    if getattr(t, "_based", False):
        return {**out, **({"docker": "busybox:local"} if t.docker else {}),
                **({"podman": "localhost/busybox:local"} if t.podman else {})}
    t._based = True
    t.L("import", "-c", 'CMD ["sh"]', tar, "bench/busybox")
    if t.docker:
        if sh("docker", "image", "inspect", "busybox:local", check=False).returncode != 0:
            sh("docker", "import", "-c", 'CMD ["sh"]', tar, "busybox:local")
        out["docker"] = "busybox:local"
    if t.podman:
        if sh("podman", "image", "exists", "localhost/busybox:local", check=False).returncode != 0:
            sh("podman", "import", "-q", "-c", 'CMD ["sh"]', tar, "localhost/busybox:local")
        out["podman"] = "localhost/busybox:local"
    return out


def _busybox_tar(tar: str, work: str) -> None:
    """busybox-static + its applet links + /etc/passwd, as examples/make-busybox-base.sh."""
    root = os.path.join(work, "bb-rootfs")
    for d in ("bin", "etc", "tmp", "root", "proc", "sys", "dev"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    bb = os.path.realpath(shutil.which("busybox") or "/bin/busybox")
    shutil.copy2(bb, os.path.join(root, "bin", "busybox"))
    for name in sh(bb, "--list").stdout.decode().split():
        if name != "busybox":
            os.symlink("busybox", os.path.join(root, "bin", name))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    sh("tar", "-C", root, "-cf", tar, ".")


def bench_run(t: Tools, runs: int, work: str) -> dict[str, list[float]]:
    bases = _bases(t, work)
    res: dict[str, list[float]] = {"lamina": [], "docker": [], "podman": []}
    for _ in range(max(runs, 10)):
        res["lamina"].append(timed(lambda: t.L("run", "--rm", bases["lamina"], "true")))
        if t.docker:
            res["docker"].append(timed(lambda: sh("docker", "run", "--rm", bases["docker"], "true")))
        if t.podman:
            res["podman"].append(timed(lambda: sh("podman", "run", "--rm", bases["podman"], "true")))
    return res


def bench_many(t: Tools, work: str, n: int = 50) -> tuple[dict, dict, dict]:
    bases = _bases(t, work)
    start: dict[str, list[float]] = {"lamina": [], "docker": []}
    ps: dict[str, list[float]] = {"lamina": [], "docker": []}
    rm: dict[str, list[float]] = {"lamina": [], "docker": []}

    def phases(run, list_, remove, key):
        ids = []
        t0 = time.perf_counter()
        for i in range(n):
            ids.append(run(i))
        start[key].append(time.perf_counter() - t0)
        ps[key].append(timed(list_))
        rm[key].append(timed(lambda: remove(ids)))

    phases(lambda i: t.L("run", "-d", bases["lamina"], "sleep", "300").stdout.decode().strip(),
           lambda: t.L("ps"), lambda ids: t.L("rm", "-f", *ids), "lamina")
    if t.docker:
        phases(lambda i: sh("docker", "run", "-d", bases["docker"], "sleep", "300").stdout.decode().strip(),
               lambda: sh("docker", "ps"), lambda ids: sh("docker", "rm", "-f", *ids), "docker")
    return start, ps, rm


def bench_commit(t: Tools, runs: int, work: str) -> dict[str, list[float]]:
    bases = _bases(t, work)
    res: dict[str, list[float]] = {"lamina": [], "docker": []}
    write = ["sh", "-c", "dd if=/dev/urandom of=/big bs=1M count=100 2>/dev/null"]
    for i in range(runs):
        t.L("run", "--name", f"bench-commit-{i}", bases["lamina"], *write)
        res["lamina"].append(timed(lambda: t.L("commit", f"bench-commit-{i}", f"bench/committed:{i}")))
        t.L("rm", f"bench-commit-{i}")
        t.L("rmi", f"bench/committed:{i}")
        if t.docker:
            sh("docker", "run", "--name", f"bench-commit-{i}", bases["docker"], *write)
            res["docker"].append(timed(lambda: sh("docker", "commit", f"bench-commit-{i}", f"bench/committed:{i}")))
            sh("docker", "rm", f"bench-commit-{i}")
            sh("docker", "rmi", f"bench/committed:{i}")
    return res


TUTORIAL = """ARG BASE
FROM ${BASE}
RUN mkdir -p /opt/tree && for i in $(seq 1 2000); do echo $i > /opt/tree/f$i; done
ENV APP_MODE=prod
COPY testfile /
CMD ["/bin/sh","-c","cat /testfile"]
"""

BIGCOPY = """ARG BASE
FROM ${BASE}
COPY big /big
COPY small /small
RUN ls /small | wc -l
COPY edit.txt /edit.txt
CMD ["sh"]
"""


def _make_contexts(work: str) -> tuple[str, str]:
    tut = os.path.join(work, "ctx-tutorial")
    os.makedirs(tut, exist_ok=True)
    with open(os.path.join(tut, "Dockerfile"), "w") as f:
        f.write(TUTORIAL)
    with open(os.path.join(tut, "testfile"), "w") as f:
        f.write("hello testfile\n")
    big = os.path.join(work, "ctx-big")
    os.makedirs(os.path.join(big, "big"), exist_ok=True)
    os.makedirs(os.path.join(big, "small"), exist_ok=True)
    with open(os.path.join(big, "Dockerfile"), "w") as f:
        f.write(BIGCOPY)
    for i in range(3):
        with open(os.path.join(big, "big", f"blob{i}"), "wb") as f:
            f.write(os.urandom(64 << 20))
    for i in range(3000):
        with open(os.path.join(big, "small", f"f{i:04d}"), "w") as f:
            f.write(f"file {i}\n" * 20)
    with open(os.path.join(big, "edit.txt"), "w") as f:
        f.write("v0\n")
    return tut, big


def bench_build(t: Tools, runs: int, work: str) -> list[tuple[str, dict]]:
    bases = _bases(t, work)
    tut, big = _make_contexts(work)
    buildah = bool(shutil.which("buildah"))
    # Debian's docker.io client (20.10) has BuildKit built in; a newer client may lack buildx
    dk = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    tools = {"lamina": lambda ctx, tag, *extra: t.L("build", "-q", "--build-arg", f"BASE={bases['lamina']}",
                                                    "-t", tag, *extra, ctx)}
    if t.docker:
        tools["buildkit"] = lambda ctx, tag, *extra: sh(dk, "build", "-q", "--build-arg", f"BASE={bases['docker']}",
                                                        "-t", tag, *extra, ctx,
                                                        env={**os.environ, "DOCKER_BUILDKIT": "1"})
        tools["classic"] = lambda ctx, tag, *extra: sh(dk, "build", "-q", "--build-arg", f"BASE={bases['docker']}",
                                                       "-t", tag, *extra, ctx,
                                                       env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if buildah and t.podman:
        tools["buildah"] = lambda ctx, tag, *extra: sh("buildah", "bud", "-q", "--layers", "--build-arg",
                                                       f"BASE={bases['podman']}", "-t", tag, *extra, ctx)
    rows = []
    for label, ctx in (("tutorial example", tut), ("3x64MB+3000 files COPY", big)):
        cold = {k: [] for k in tools}
        cached = {k: [] for k in tools}
        edited = {k: [] for k in tools}
        for i in range(runs):
            for name, fn in tools.items():
                cold[name].append(timed(lambda: fn(ctx, f"bench/build:{name}", "--no-cache")))
                fn(ctx, f"bench/build:{name}")  # prime
                cached[name].append(timed(lambda: fn(ctx, f"bench/build:{name}")))
                edit = os.path.join(ctx, "testfile" if ctx == tut else "edit.txt")
                with open(edit, "a") as f:
                    f.write(f"{name} {i} {time.time()}\n")
                edited[name].append(timed(lambda: fn(ctx, f"bench/build:{name}")))
        rows += [(f"build {label}, cold", cold), (f"build {label}, cached", cached),
                 (f"build {label}, 1 file edited", edited)]
    return rows


BIGCTX = """ARG BASE
FROM ${BASE}
COPY big /big
COPY small /small
RUN ls /small | wc -l
CMD ["sh"]
"""


def bench_big_context(t: Tools, runs: int, work: str) -> list[tuple[str, dict]]:
    """Issue 8's scenario: a context of 20,000 small files + 3 x 100 MB; a cold build (--no-cache),
    a fully cached one, and one with a single small file edited (its COPY and the RUN re-run,
    the 300 MB stay cached). Same tools as bench_build; each build tool is primed first."""
    bases = _bases(t, work)
    ctx = os.path.join(work, "ctx-bigctx")
    os.makedirs(os.path.join(ctx, "big"), exist_ok=True)
    os.makedirs(os.path.join(ctx, "small"), exist_ok=True)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(BIGCTX)
    for i in range(3):
        with open(os.path.join(ctx, "big", f"blob{i}"), "wb") as f:
            for _ in range(100):
                f.write(os.urandom(1 << 20))
    for i in range(20000):
        d = os.path.join(ctx, "small", f"d{i // 500:02d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:05d}"), "w") as f:
            f.write(f"small file {i}\n" * (i % 7 + 1))
    dk = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
    tools = {"lamina": lambda tag, *extra: t.L("build", "-q", "--build-arg", f"BASE={bases['lamina']}", "-t", tag,
                                               *extra, ctx)}
    if t.docker:
        tools["buildkit"] = lambda tag, *extra: sh(dk, "build", "-q", "--build-arg", f"BASE={bases['docker']}",
                                                   "-t", tag, *extra, ctx, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    cold = {k: [] for k in tools}
    cached = {k: [] for k in tools}
    edited = {k: [] for k in tools}
    edit = os.path.join(ctx, "small", "d13", "f06789")
    for i in range(runs):
        for name, fn in tools.items():
            cold[name].append(timed(lambda: fn(f"bench/bigctx:{name}", "--no-cache")))
            fn(f"bench/bigctx:{name}")  # prime
            cached[name].append(timed(lambda: fn(f"bench/bigctx:{name}")))
            with open(edit, "a") as f:
                f.write(f"{name} {i} {time.time()}\n")
            edited[name].append(timed(lambda: fn(f"bench/bigctx:{name}")))
    return [("build 20k files+3x100MB, cold", cold), ("build 20k files+3x100MB, cached", cached),
            ("build 20k files+3x100MB, 1 edited", edited)]


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
    ap.add_argument("--only", default="import,save,load,help,images,run,many,commit,build,bigctx,network")
    ap.add_argument("--debian-tar", default=None)
    a = ap.parse_args()
    only = set(a.only.split(","))
    if "registry" in only:   # lamina registry serve vs registry:2 (bench/registry.py)
        from bench.registry import run as bench_registry
        bench_registry(runs=a.runs)
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
        if "help" in only:
            print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
            report("--help", bench_help(t, a.runs))
        if "images" in only:
            report("images (200 images)", bench_images(t, a.runs, work))
            print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
        if "run" in only:
            report("run --rm busybox true", bench_run(t, a.runs, work))
        if "many" in only:
            start, ps, rm = bench_many(t, work)
            report("50 x run -d", start)
            report("ps (50 running)", ps)
            report("rm -f (50 running)", rm)
        if "commit" in only:
            report("commit 100 MB written", bench_commit(t, a.runs, work))
        if "network" in only:  # bridge against bridge: bench/network.py
            from bench.network import _docker, run_network
            run_network(t, a.runs, work, report, _docker(sys.modules[__name__]) if t.docker else None)
        if "build" in only:
            for name, res in bench_build(t, a.runs, work):
                report(name, res)
        if "bigctx" in only:
            print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
            for name, res in bench_big_context(t, a.runs, work):
                report(name, res)
        if "registry" in only:  # opt-in (--only registry): pull/push rows, bench/registry_client.py
            from bench.registry_client import run_registry
            run_registry(t, a.runs, work, debian_tar(a.debian_tar))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
