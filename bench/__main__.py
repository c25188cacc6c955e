"""Run lamina and each installed reference tool through the same scenarios, in one run, and
print medians and ratios (lamina / peer; below 1.0 means lamina is faster).
``help`` times ``lamina --help`` (start-up; issue 13's bar is 25 ms) next to the peers'.

    python -m bench [--runs N] [--only SCENARIO,...] [--debian-tar PATH] [--json FILE]
                    [--quick] [--seed N]

Every row compares the same work on every side:
- containers run with ``--network none`` everywhere (no bridge set-up on one side only);
- "ready to run" rows time an image's arrival *and* its first ``run``: lamina unpacks layers
  on first use, docker while importing/loading, so import or load alone would flatter lamina;
- "cold" builds start from nothing on every side: the previous result removed, lamina's
  build cache and context hash cache dropped (``builder prune -a``), BuildKit's cache
  dropped (``docker builder prune -af``), and ``--no-cache`` for all;
- within each round the order of the tools is shuffled (``--seed`` repeats an order), so
  page-cache warmth and background load do not always favour the same side;
- every docker row uses the same client (/usr/bin/docker, Debian's 20.10, which has
  BuildKit built in), and the table states the installed versions and the load average.

Scenarios: import, save, load (with "ready to run" rows), images (200 images), run (``run
--rm``), many (50 x ``run -d``, ``ps``, ``rm -f``), commit, lifecycle (``rm -f``, ``stop``
of a TERM-ignoring / trapping / paused container), launcher (``launcher.run`` in-process,
lamina only), build (tutorial, 3x64 MB + 3000 files, two independent 2 s stages).
``--quick`` (smoke use): one round, a busybox rootfs instead of the 200 MB debian one,
20 images, 5 containers, small build contexts. ``--json FILE`` writes every raw sample, the
versions and the load averages, so two runs can be compared.
Peers that are not installed or not running are left out of the table (and said so). The
debian tarball is made with debootstrap if missing (examples/make-debian-base.sh keeps it
in /var/tmp/lamina-debian-bookworm.tar). Run as root on a machine you may load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# one docker client for every docker row: Debian's 20.10 (BuildKit built in); a newer
# client elsewhere on PATH may lack buildx
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")
ROWS: list[dict] = []  # everything report() printed, for --json


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
    """This checkout's lamina: its venv's entry point, else ``python -m lamina`` with the
    checkout on PYTHONPATH (its modules compiled first, as the venv install does: this
    environment may set PYTHONDONTWRITEBYTECODE, and uncompiled imports would slow lamina)."""
    exe = shutil.which("lamina", path=os.path.join(REPO, ".venv", "bin"))
    if exe:
        return [exe]
    import compileall
    compileall.compile_dir(os.path.join(REPO, "lamina"), quiet=1)
    return [sys.executable, "-m", "lamina"]


class Tools:
    def __init__(self, root: str, *, seed: int = 0, quick: bool = False) -> None:
        self.lamina = lamina_cmd()
        self.root = root
        self.env = {**os.environ, "LAMINA_ROOT": root, "PYTHONPATH": REPO}
        self.docker = os.path.exists(DOCKER) and sh(DOCKER, "version", check=False).returncode == 0
        self.podman = bool(shutil.which("podman"))
        self.rng = random.Random(seed)
        self.quick = quick

    def L(self, *args: str, **kw):
        return sh(*self.lamina, *args, env=self.env, **kw)

    def D(self, *args: str, **kw):
        return sh(DOCKER, *args, **kw)

    def order(self, names) -> list[str]:
        """The tools of one round, shuffled."""
        out = list(names)
        self.rng.shuffle(out)
        return out


def rounds(t: Tools, runs: int, samplers: dict) -> dict[str, list[float]]:
    """``runs`` rounds; in each, every tool's sampler once, in a shuffled order. A sampler
    does its own untimed set-up and clean-up and returns the seconds of the timed part."""
    res: dict[str, list[float]] = {k: [] for k in samplers}
    for _ in range(runs):
        for name in t.order(samplers):
            res[name].append(samplers[name]())
    return res


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


# -- import / save / load ----------------------------------------------------------------------
def bench_import(t: Tools, tar: str, runs: int, work: str) -> list[tuple[str, dict]]:
    """``import`` alone, and "ready to run": import + the first ``run --rm`` of the image."""
    def sampler(cli, name, first_run: bool):
        def sample():
            src = unique_copy(tar, work, f"import-{name}")
            tag = f"bench/deb:{name}"
            try:
                def go():
                    cli("import", src, tag)
                    if first_run:
                        cli("run", "--rm", "--network", "none", tag, "true")
                return timed(go)
            finally:
                cli("rmi", tag, check=False)
                os.unlink(src)
        return sample

    peers = {"lamina": t.L}
    if t.docker:
        peers["docker"] = t.D
    if t.podman:
        peers["podman"] = lambda *a, **kw: sh("podman", *(("import", "-q", *a[1:]) if a[0] == "import" else a), **kw)
    imp = rounds(t, runs, {n: sampler(cli, n, False) for n, cli in peers.items()})
    ready = rounds(t, runs, {n: sampler(cli, n, True) for n, cli in peers.items()})
    return [("import rootfs", imp), ("ready: import + first run", ready)]


def bench_save_load(t: Tools, tar: str, runs: int, work: str) -> list[tuple[str, dict]]:
    """``save`` of the image; ``load`` of one ``docker save`` archive into a store that lacks
    the image, alone and with its first run ("ready to run")."""
    tar = unique_copy(tar, work, "saveload")
    tag = "bench/deb:save"
    t.L("import", tar, tag)
    samplers = {}
    out = os.path.join(work, "saved.tar")

    def save_with(cli):
        def sample():
            try:
                return timed(lambda: cli("save", "-o", out, tag))
            finally:
                os.unlink(out)
        return sample
    samplers["lamina"] = save_with(t.L)
    if t.docker:
        t.D("import", tar, tag)
        samplers["docker"] = save_with(t.D)
    rows = [("save image", rounds(t, runs, samplers))]
    if t.docker:
        archive = os.path.join(work, "docker-save.tar")
        t.D("save", "-o", archive, tag)

        def load_with(cli, first_run: bool):
            def sample():
                cli("rmi", tag, check=False)
                try:
                    def go():
                        cli("load", "-i", archive)
                        if first_run:
                            cli("run", "--rm", "--network", "none", tag, "true")
                    return timed(go)
                finally:
                    cli("rmi", tag, check=False)
            return sample
        rows.append(("load docker-save archive",
                     rounds(t, runs, {"lamina": load_with(t.L, False), "docker": load_with(t.D, False)})))
        rows.append(("ready: load + first run",
                     rounds(t, runs, {"lamina": load_with(t.L, True), "docker": load_with(t.D, True)})))
        t.D("rmi", tag, check=False)
    t.L("rmi", tag, check=False)
    return rows


# -- listing -----------------------------------------------------------------------------------
def bench_images(t: Tools, runs: int, work: str, count: int = 200) -> dict[str, list[float]]:
    tiny = os.path.join(work, "tiny")
    os.makedirs(tiny, exist_ok=True)
    for i in range(count):
        with open(os.path.join(tiny, "id"), "w") as f:
            f.write(str(i))
        tar = os.path.join(work, "tiny.tar")
        sh("tar", "-C", tiny, "-cf", tar, ".")
        t.L("import", tar, f"bench/img{i}:v1")
        if t.docker:
            t.D("import", tar, f"bench/img{i}:v1")
        if t.podman:
            sh("podman", "import", "-q", tar, f"bench/img{i}:v1")
    samplers = {"lamina": lambda: timed(lambda: t.L("images"))}
    if t.docker:
        samplers["docker"] = lambda: timed(lambda: t.D("images"))
    if t.podman:
        samplers["podman"] = lambda: timed(lambda: sh("podman", "images"))
    res = rounds(t, max(runs, 5), samplers)
    n = len(t.L("images", "-q").stdout.split())
    assert n >= count, f"lamina images listed {n} images, expected {count}"
    for i in range(count):
        t.L("rmi", f"bench/img{i}:v1", check=False)
        if t.docker:
            t.D("rmi", f"bench/img{i}:v1", check=False)
        if t.podman:
            sh("podman", "rmi", f"bench/img{i}:v1", check=False)
    return res


def bench_help(t: Tools, runs: int) -> dict[str, list[float]]:
    """``--help``: the start-up floor of a command (issue 13's bar: lamina <= 25 ms)."""
    samplers = {"lamina": lambda: timed(lambda: t.L("--help"))}
    if t.docker:
        samplers["docker"] = lambda: timed(lambda: t.D("--help"))
    if t.podman:
        samplers["podman"] = lambda: timed(lambda: sh("podman", "--help"))
    return rounds(t, max(runs, 20), samplers)


# -- containers --------------------------------------------------------------------------------
def _bases(t: Tools, work: str) -> dict[str, str]:
    """The same busybox rootfs as a base image in every tool, ready to run: name per tool."""
    if getattr(t, "_bases", None):
        return t._bases
    tar = "/var/tmp/peers-bases/busybox.tar"
    if not os.path.exists(tar):
        tar = os.path.join(work, "busybox.tar")
        if not os.path.exists(tar):
            _busybox_tar(tar, work)
    out = {"lamina": "bench/busybox"}
    t.L("import", "-c", 'CMD ["sh"]', tar, "bench/busybox")
    t.L("run", "--rm", "--network", "none", "bench/busybox", "true")  # unpacked, as docker's is
    if t.docker:
        if t.D("image", "inspect", "busybox:local", check=False).returncode != 0:
            t.D("import", "-c", 'CMD ["sh"]', tar, "busybox:local")
        out["docker"] = "busybox:local"
    if t.podman:
        if sh("podman", "image", "exists", "localhost/busybox:local", check=False).returncode != 0:
            sh("podman", "import", "-q", "-c", 'CMD ["sh"]', tar, "localhost/busybox:local")
        out["podman"] = "localhost/busybox:local"
    t._bases = out
    return out


def _busybox_tar(tar: str, work: str) -> None:
    """busybox-static + its applet links + /etc/passwd, as examples/make-busybox-base.sh."""
    root = tempfile.mkdtemp(prefix="bb-rootfs-", dir=work)
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


def _clis(t: Tools, *, podman: bool = True) -> dict:
    out = {"lamina": t.L}
    if t.docker:
        out["docker"] = t.D
    if podman and t.podman:
        out["podman"] = lambda *a, **kw: sh("podman", *a, **kw)
    return out


def bench_run(t: Tools, runs: int, work: str) -> dict[str, list[float]]:
    bases = _bases(t, work)
    return rounds(t, max(runs, 10), {
        n: (lambda cli=cli, img=bases[n]: timed(
            lambda: cli("run", "--rm", "--network", "none", img, "true")))
        for n, cli in _clis(t).items()})


def bench_many(t: Tools, runs: int, work: str, n: int = 50) -> list[tuple[str, dict]]:
    bases = _bases(t, work)
    clis = _clis(t, podman=False)
    start = {k: [] for k in clis}
    ps = {k: [] for k in clis}
    rm = {k: [] for k in clis}
    for _ in range(runs):
        for name in t.order(clis):
            cli, ids = clis[name], []
            t0 = time.perf_counter()
            for _ in range(n):
                ids.append(cli("run", "-d", "--network", "none", bases[name], "sleep", "300")
                           .stdout.decode().strip())
            start[name].append(time.perf_counter() - t0)
            ps[name].append(timed(lambda: cli("ps")))
            rm[name].append(timed(lambda: cli("rm", "-f", *ids)))
    return [(f"{n} x run -d", start), (f"ps ({n} running)", ps), (f"rm -f ({n} running)", rm)]


def bench_commit(t: Tools, runs: int, work: str) -> dict[str, list[float]]:
    bases = _bases(t, work)
    write = ["sh", "-c", "dd if=/dev/urandom of=/big bs=1M count=100 2>/dev/null"]

    def sampler(name, cli):
        def sample():
            cname = f"bench-commit-{name}"
            cli("run", "--network", "none", "--name", cname, bases[name], *write)
            try:
                return timed(lambda: cli("commit", cname, "bench/committed:x"))
            finally:
                cli("rm", cname)
                cli("rmi", "bench/committed:x", check=False)
        return sample
    return rounds(t, runs, {n: sampler(n, cli) for n, cli in _clis(t, podman=False).items()})


def bench_lifecycle(t: Tools, runs: int, work: str) -> list[tuple[str, dict]]:
    """What the container tests no longer time: rm -f of a running container, stop of a
    container that ignores SIGTERM (-t 1: one second, then SIGKILL), of one whose trap exits
    on SIGTERM, and of a paused one (-t 1)."""
    bases = _bases(t, work)
    clis = _clis(t, podman=False)
    scripts = {
        "rm -f (1 running)": ("sleep 300", None, ("rm", "-f")),
        "stop -t 1 (TERM ignored)": ("sleep 300", None, ("stop", "-t", "1")),
        "stop (trap exits on TERM)": ("trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done",
                                      "ready", ("stop",)),
        "stop -t 1 (paused)": ("sleep 300", "pause", ("stop", "-t", "1")),
    }
    rows = []
    for label, (script, prep, verb) in scripts.items():
        def sampler(name, cli, script=script, prep=prep, verb=verb):
            def sample():
                cid = cli("run", "-d", "--network", "none", bases[name], "sh", "-c", script).stdout.decode().strip()
                try:
                    if prep == "pause":
                        cli("pause", cid)
                    elif prep:
                        while prep not in cli("logs", cid).stdout.decode():
                            time.sleep(0.01)
                    return timed(lambda: cli(*verb, cid))
                finally:
                    cli("rm", "-f", cid, check=False)
            return sample
        rows.append((label, rounds(t, runs, {n: sampler(n, cli) for n, cli in clis.items()})))
    return rows


def bench_launcher(t: Tools, runs: int, work: str) -> dict[str, list[float]]:
    """lamina's built-in runtime alone (no CLI, no store): launcher.run of ``true`` on a
    busybox rootfs, in this process. No peer runs the same thing."""
    sys.path.insert(0, REPO)
    from lamina.mount import Mount
    from lamina.runtime import launcher
    from lamina.runtime.spec import RunOptions, build_spec
    rootfs = os.path.join(work, "launcher-rootfs")
    if not os.path.isdir(rootfs):
        tar = os.path.join(work, "busybox.tar")
        if not os.path.exists(tar):
            _busybox_tar(tar, work)
        os.makedirs(rootfs)
        sh("tar", "-C", rootfs, "-xf", tar)
    bundle = tempfile.mkdtemp(dir=work)
    os.mkdir(os.path.join(bundle, "rootfs"))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(build_spec(RunOptions(args=("true",), network="none"), root_path="rootfs"), f)

    def sample():
        return timed(lambda: launcher.run(bundle, container_id="bench" + os.urandom(6).hex(),
                                          rootfs_mounts=[Mount("bind", rootfs, ("rbind",))]))
    return rounds(t, max(runs * 5, 10), {"lamina": sample})


# -- build -------------------------------------------------------------------------------------
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

STAGES = """ARG BASE
FROM ${BASE} AS a
RUN sleep 2 && echo built-a > /a
FROM ${BASE} AS b
RUN sleep 2 && echo built-b > /b
FROM ${BASE}
COPY --from=a /a /a
COPY --from=b /b /b
"""


def _make_contexts(work: str, *, quick: bool = False) -> tuple[str, str]:
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
            f.write(os.urandom((2 if quick else 64) << 20))
    for i in range(300 if quick else 3000):
        with open(os.path.join(big, "small", f"f{i:04d}"), "w") as f:
            f.write(f"file {i}\n" * 20)
    with open(os.path.join(big, "edit.txt"), "w") as f:
        f.write("v0\n")
    return tut, big


def bench_build(t: Tools, runs: int, work: str) -> list[tuple[str, dict]]:
    bases = _bases(t, work)
    tut, big = _make_contexts(work, quick=t.quick)
    stages = os.path.join(work, "ctx-stages")
    os.makedirs(stages, exist_ok=True)
    with open(os.path.join(stages, "Dockerfile"), "w") as f:
        f.write(STAGES)

    def docker_build(buildkit: bool):
        env = {**os.environ, "DOCKER_BUILDKIT": "1" if buildkit else "0"}
        return lambda ctx, tag, *extra: t.D("build", "-q", "--build-arg", f"BASE={bases['docker']}",
                                            "-t", tag, *extra, ctx, env=env)
    # (build, untimed reset to "nothing": previous result and every build cache gone)
    tools = {"lamina": (lambda ctx, tag, *extra: t.L("build", "-q", "--build-arg", f"BASE={bases['lamina']}",
                                                     "-t", tag, *extra, ctx),
                        lambda tag: (t.L("rmi", "-f", tag, check=False),
                                     t.L("builder", "prune", "-a", "-f")))}
    if t.docker:
        tools["buildkit"] = (docker_build(True), lambda tag: (t.D("rmi", "-f", tag, check=False),
                                                              t.D("builder", "prune", "-af")))
        tools["classic"] = (docker_build(False), lambda tag: t.D("rmi", "-f", tag, check=False))
    if shutil.which("buildah") and t.podman:
        tools["buildah"] = (lambda ctx, tag, *extra: sh("buildah", "bud", "-q", "--layers", "--build-arg",
                                                        f"BASE={bases['podman']}", "-t", tag, *extra, ctx),
                            lambda tag: sh("buildah", "rmi", "-f", tag, check=False))

    def cold(name, ctx):
        build, reset = tools[name]
        tag = f"bench/build-{name}:x"

        def sample():
            reset(tag)
            return timed(lambda: build(ctx, tag, "--no-cache"))
        return sample

    def cached(name, ctx):
        build, _ = tools[name]
        tag = f"bench/build-{name}:x"

        def sample():
            build(ctx, tag)  # primed: every step is in its cache
            return timed(lambda: build(ctx, tag))
        return sample

    def edited(name, ctx):
        build, _ = tools[name]
        tag = f"bench/build-{name}:x"

        def sample():
            build(ctx, tag)
            with open(os.path.join(ctx, "testfile" if ctx == tut else "edit.txt"), "a") as f:
                f.write(f"{name} {time.time()}\n")
            return timed(lambda: build(ctx, tag))
        return sample

    rows = []
    for label, ctx in (("tutorial example", tut),
                       ("3x2MB+300 files COPY" if t.quick else "3x64MB+3000 files COPY", big)):
        for kind, make in (("cold", cold), ("cached", cached), ("1 file edited", edited)):
            rows.append((f"build {label}, {kind}", rounds(t, runs, {n: make(n, ctx) for n in tools})))
    rows.append(("build 2 independent 2 s stages, cold",
                 rounds(t, runs, {n: cold(n, stages) for n in tools})))
    for name, (_, reset) in tools.items():
        reset(f"bench/build-{name}:x")
    return rows


BIGCTX = """ARG BASE
FROM ${BASE}
COPY big /big
COPY small /small
RUN ls /small | wc -l
CMD ["sh"]
"""


def bench_big_context(t: Tools, runs: int, work: str) -> list[tuple[str, dict]]:
    """Issue 8's scenario: a context of 20,000 small files + 3 x 100 MB; a cold build (from
    nothing: the previous result and every build cache dropped, then --no-cache), a fully cached
    one, and one with a single small file edited (its COPY and the RUN re-run, the 300 MB stay
    cached). lamina against BuildKit, tools shuffled each round, images removed at the end."""
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
    dk = DOCKER
    # (build, untimed reset to "nothing": the previous result and every build cache gone, as
    # bench_build's cold rows; lamina's context hash cache goes with `builder prune -a`)
    tools = {"lamina": (lambda tag, *extra: t.L("build", "-q", "--build-arg", f"BASE={bases['lamina']}", "-t", tag,
                                                *extra, ctx),
                        lambda tag: (t.L("rmi", "-f", tag, check=False), t.L("builder", "prune", "-a", "-f")))}
    if t.docker:
        env = {**os.environ, "DOCKER_BUILDKIT": "1"}
        tools["buildkit"] = (lambda tag, *extra: sh(dk, "build", "-q", "--build-arg", f"BASE={bases['docker']}",
                                                    "-t", tag, *extra, ctx, env=env),
                             lambda tag: (sh(dk, "rmi", "-f", tag, check=False), sh(dk, "builder", "prune", "-af")))
    edit = os.path.join(ctx, "small", "d13", "f06789")

    def cold(name):
        build, reset = tools[name]

        def sample():
            reset(f"bench/bigctx:{name}")
            return timed(lambda: build(f"bench/bigctx:{name}", "--no-cache"))
        return sample

    def cached(name):
        build, _ = tools[name]

        def sample():
            build(f"bench/bigctx:{name}")  # primed
            return timed(lambda: build(f"bench/bigctx:{name}"))
        return sample

    def edited(name):
        build, _ = tools[name]

        def sample():
            build(f"bench/bigctx:{name}")
            with open(edit, "a") as f:
                f.write(f"{name} {time.time()}\n")
            return timed(lambda: build(f"bench/bigctx:{name}"))
        return sample

    cold_res = rounds(t, runs, {name: cold(name) for name in tools})
    cached_res = rounds(t, runs, {name: cached(name) for name in tools})
    edited_res = rounds(t, runs, {name: edited(name) for name in tools})
    for name, (_, reset) in tools.items():
        reset(f"bench/bigctx:{name}")
    cold, cached, edited = cold_res, cached_res, edited_res
    return [("build 20k files+3x100MB, cold", cold), ("build 20k files+3x100MB, cached", cached),
            ("build 20k files+3x100MB, 1 edited", edited)]


# -- report ------------------------------------------------------------------------------------
def report(name: str, res: dict[str, list[float]]) -> None:
    load = os.getloadavg()[0]
    ROWS.append({"scenario": name, "samples": res, "load1": load})
    base = "lamina" if res.get("lamina") else next((k for k, v in res.items() if v), None)
    if base is None:
        return
    lam = statistics.median(res[base])
    cells = [f"{base} {lam:7.3f}s (n={len(res[base])})"]
    for peer, times in res.items():
        if peer == base:
            continue
        if not times:
            cells.append(f"{peer:>7} (not available)")
            continue
        med = statistics.median(times)
        cells.append(f"{peer} {med:7.3f}s  ratio {lam / med:5.2f}x")
    print(f"{name:<38} " + " | ".join(cells) + f" | load {load:4.1f}", flush=True)


def versions(t: Tools) -> dict[str, str]:
    def first_line(*args) -> str:
        p = sh(*args, check=False)
        return (p.stdout or p.stderr).decode(errors="replace").strip().splitlines()[0] if p.returncode == 0 else "n/a"
    rev = first_line("git", "-C", REPO, "describe", "--always", "--dirty")
    out = {"lamina": f"{first_line(*t.lamina, 'version', '--format', '{{.Client.Version}}')} ({rev})",
           "python": platform.python_version(), "kernel": platform.release(), "cpus": str(os.cpu_count())}
    if t.docker:
        out["docker"] = first_line(DOCKER, "version", "--format",
                                   "client {{.Client.Version}}, server {{.Server.Version}}") + f" ({DOCKER})"
    if t.podman:
        out["podman"] = first_line("podman", "--version")
        out["buildah"] = first_line("buildah", "--version") if shutil.which("buildah") else "n/a"
    out["runc"] = first_line("runc", "--version") if shutil.which("runc") else "n/a"
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


ALL = "import,save,load,help,images,run,many,commit,lifecycle,launcher,build,bigctx,network"
OPT_IN = {"registry"}  # --only registry: pull/push rows (bench/registry_client.py)


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--runs", type=int, default=None, help="rounds per row (default 3; 1 with --quick)")
    ap.add_argument("--only", default=ALL)
    ap.add_argument("--debian-tar", default=None)
    ap.add_argument("--json", default=None, metavar="FILE", help="write the raw samples to FILE")
    ap.add_argument("--quick", action="store_true", help="smoke run: small inputs, one round")
    ap.add_argument("--seed", type=int, default=None, help="seed of the tool-order shuffle")
    a = ap.parse_args()
    runs = a.runs or (1 if a.quick else 3)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 30)
    only = set(a.only.split(","))
    if a.quick and a.only == ALL:
        only.discard("bigctx")  # 20,000 files + 300 MB: not a smoke test
    unknown = only - set(ALL.split(",")) - OPT_IN
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))} (known: {ALL})")
    if "registry" in only:   # lamina registry serve vs registry:2 (bench/registry.py)
        from bench.registry import run as bench_registry
        bench_registry(runs=runs)
    with tempfile.TemporaryDirectory(prefix="lamina-bench-") as work:
        t = Tools(os.path.join(work, "root"), seed=seed, quick=a.quick)
        meta = {"versions": versions(t), "runs": runs, "seed": seed, "quick": a.quick,
                "load_start": os.getloadavg()}
        print(f"peers: docker={'yes' if t.docker else 'no'} podman={'yes' if t.podman else 'no'}; "
              f"lamina={' '.join(t.lamina)}; runs={runs}; seed={seed}; medians; "
              f"tool order shuffled per round", flush=True)
        for k, v in meta["versions"].items():
            print(f"  {k}: {v}", flush=True)
        print("  load average at start: " + " ".join(f"{x:.2f}" for x in meta["load_start"]), flush=True)
        tar = None
        if only & {"import", "save", "load"}:
            if a.quick:
                tar = os.path.join(work, "busybox-rootfs.tar")
                _busybox_tar(tar, work)
            else:
                tar = debian_tar(a.debian_tar)
            print(f"rootfs tar: {tar} ({os.path.getsize(tar) / 1e6:.0f} MB)", flush=True)
        if "import" in only:
            for name, res in bench_import(t, tar, runs, work):
                report(name, res)
        if only & {"save", "load"}:
            for name, res in bench_save_load(t, tar, runs, work):
                if ("save" in only and name.startswith("save")) or ("load" in only and not name.startswith("save")):
                    report(name, res)
        if "help" in only:
            report("--help", bench_help(t, runs))
        if "images" in only:
            count = 20 if a.quick else 200
            report(f"images ({count} images)", bench_images(t, runs, work, count=count))
        if "run" in only:
            report("run --rm --network none busybox true", bench_run(t, runs, work))
        if "many" in only:
            for name, res in bench_many(t, runs, work, n=5 if a.quick else 50):
                report(name, res)
        if "commit" in only:
            report("commit 100 MB written", bench_commit(t, runs, work))
        if "lifecycle" in only:
            for name, res in bench_lifecycle(t, runs, work):
                report(name, res)
        if "launcher" in only:
            report("launcher.run(true), in-process", bench_launcher(t, runs, work))
        if "network" in only:  # bridge against bridge: bench/network.py
            from bench.network import _docker, run_network
            run_network(t, runs, work, report, _docker(sys.modules[__name__]) if t.docker else None)
        if "build" in only:
            for name, res in bench_build(t, runs, work):
                report(name, res)
        if "bigctx" in only:
            for name, res in bench_big_context(t, runs, work):
                report(name, res)
        if "registry" in only:  # opt-in (--only registry): pull/push rows, bench/registry_client.py
            from bench.registry_client import run_registry
            run_registry(t, runs, work, debian_tar(a.debian_tar))
        meta["load_end"] = os.getloadavg()
        print("  load average at end: " + " ".join(f"{x:.2f}" for x in meta["load_end"]), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"meta": meta, "rows": ROWS}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
