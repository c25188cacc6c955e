"""Shared fixtures: a fresh store per test, a CLI runner, and locally made base tarballs.

Integration tests drive the real ``lamina`` CLI in a subprocess (``python -m lamina``), with
``LAMINA_ROOT`` pointing at a per-test store.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from dataclasses import dataclass

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every container of this test run (CLI, builds, the launcher called directly) lives under a
# cgroup parent of its own, so two runs on one machine never meet in /sys/fs/cgroup; a child
# pytest run keeps its parent's. ``cgroup_dir(ctl, cid)`` is where a container's cgroup is.
os.environ.setdefault("LAMINA_CGROUP_PARENT", f"lamina-test/{os.getpid()}")
CGROUP_PARENT = os.environ["LAMINA_CGROUP_PARENT"]


def cgroup_dir(controller: str, cid: str = "") -> str:
    return os.path.join("/sys/fs/cgroup", controller, CGROUP_PARENT, cid).rstrip("/")


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's (empty) parent cgroups; a run started by another pytest keeps them."""
    if CGROUP_PARENT != f"lamina-test/{os.getpid()}" or not os.path.isdir("/sys/fs/cgroup"):
        return
    for ctl in os.listdir("/sys/fs/cgroup"):
        for d in (cgroup_dir(ctl), os.path.dirname(cgroup_dir(ctl))):
            try:
                os.rmdir(d)  # fails (and stays) if anything still runs there, or another run's
            except OSError:
                pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """No test may skip: a skip (pytest.skip, a skipif marker, a plugin's) becomes a failure,
    so a broken or incomplete machine cannot pass as green."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = (f"skipped ({reason}): this suite never skips; install what is missing "
                        "(.ci/run does) or run it as root")


def need_tool(name: str) -> str:
    """The path of an external tool the test needs; fails (never skips) if it is missing."""
    path = shutil.which(name)
    if not path:
        pytest.fail(f"required tool {name!r} is not installed (run .ci/run, which installs it)")
    return path


def wait_blocked_on_flock(path: str, pid: int, timeout: float = 60) -> None:
    """Wait until process ``pid`` is blocked in flock(2) on ``path`` (a ``->`` waiter line in
    /proc/locks for the file's inode): the real condition "it reached the lock and waits"."""
    import time
    ino = os.stat(path).st_ino
    deadline = time.monotonic() + timeout
    while True:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 6 and fields[1] == "->" and fields[2] == "FLOCK" \
                        and fields[5] == str(pid) and fields[6].rsplit(":", 1)[-1] == str(ino):
                    return
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} never blocked on the lock {path}")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise AssertionError(f"process {pid} exited before it blocked on {path}") from None
        time.sleep(0.01)


def wait_for(fn, timeout: float = 60, what: str = "condition", interval: float = 0.02):
    """Poll ``fn`` until it returns a true value (returned); fail after ``timeout`` seconds
    (a generous bound for a loaded machine: the test waits on the condition, not the clock)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@dataclass
class Result:
    rc: int
    out: str
    err: str
    outb: bytes = b""


class Lamina:
    """Runs the lamina CLI against one store."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.env = {**os.environ, "LAMINA_ROOT": root, "PYTHONPATH": REPO}

    def __call__(self, *args: str, input: bytes | None = None, check: bool = True,
                 timeout: float = 120) -> Result:
        p = subprocess.run([sys.executable, "-m", "lamina", *args], input=input, env=self.env,
                           capture_output=True, timeout=timeout, cwd=REPO)
        r = Result(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), p.stdout)
        if check and p.returncode != 0:
            raise AssertionError(f"lamina {' '.join(args)} failed ({p.returncode}):\n{r.err}\n{r.out}")
        return r

    def popen(self, *args: str, **kw) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "lamina", *args], env=self.env, cwd=REPO, **kw)

    def snapshot_of_store(self) -> dict:
        """Everything persistent about the store, to assert 'unchanged'."""
        out = {}
        blobs = os.path.join(self.root, "content", "blobs", "sha256")
        out["blobs"] = sorted(os.listdir(blobs)) if os.path.isdir(blobs) else []
        idx = os.path.join(self.root, "content", "index.json")
        out["index"] = open(idx).read() if os.path.exists(idx) else ""
        ingest = os.path.join(self.root, "content", "ingest")
        out["ingest"] = sorted(os.listdir(ingest)) if os.path.isdir(ingest) else []
        snaps = os.path.join(self.root, "snapshots")
        out["snapshots"] = sorted(os.listdir(snaps)) if os.path.isdir(snaps) else []
        return out


@pytest.fixture
def lamina(tmp_path) -> Lamina:
    root = tmp_path / "root"
    return Lamina(str(root))


def make_busybox_rootfs(dest: str) -> str:
    """A busybox root filesystem from Debian's busybox-static (as examples/make-busybox-base.sh)."""
    bb = need_tool("busybox")
    real = os.path.realpath(bb)
    os.makedirs(os.path.join(dest, "bin"), exist_ok=True)
    for d in ("etc", "tmp", "root", "proc", "sys", "dev"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    shutil.copy2(real, os.path.join(dest, "bin", "busybox"))
    names = subprocess.run([real, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for n in names:
        if n != "busybox":
            os.symlink("busybox", os.path.join(dest, "bin", n))
    with open(os.path.join(dest, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(dest, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return dest


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("bb")
    rootfs = make_busybox_rootfs(str(d / "rootfs"))
    tar = str(d / "busybox.tar")
    subprocess.run(["tar", "-C", rootfs, "-cf", tar, "."], check=True)
    return tar


def tar_bytes(entries: list[tuple]) -> bytes:
    """Build a tar in memory. entries: (name, kind, data_or_target[, mode]) with kind in
    file|dir|symlink|hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            name, kind, payload = e[0], e[1], e[2]
            ti = tarfile.TarInfo(name)
            ti.mode = e[3] if len(e) > 3 else (0o755 if kind == "dir" else 0o644)
            ti.mtime = 1700000000
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = payload
                tf.addfile(ti)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = payload
                tf.addfile(ti)
    return buf.getvalue()


@pytest.fixture
def bb(lamina, busybox_tar):
    """A store with the busybox base imported as ``busybox`` (CMD sh)."""
    lamina("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    return lamina


def mkctx(tmp_path, dockerfile: str | None, files: dict | None = None, name: str = "ctx"):
    """A build context dir: the (dedented) Dockerfile, if any, plus ``files`` {relpath: data}."""
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    if dockerfile is not None:
        (d / "Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip())
    for rel, data in (files or {}).items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return d
