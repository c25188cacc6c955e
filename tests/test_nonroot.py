"""A user who is not root (issue 13): lists and imports images in a store of their own, and
is told in one line, exit 125, that running containers needs root -- with nothing left
behind (no container record or directory, no cgroup, no image). Another user's store is
refused before it is read, and root's store is closed to others.

The user is nobody, through ``setpriv``; its store lives in a directory under /tmp that
nobody owns (pytest's own tmp dirs are 0700 root)."""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest
from conftest import CGROUP_PARENT, REPO, Lamina, need_tool

NOBODY = ("--reuid=65534", "--regid=65534", "--clear-groups")
NEEDS_ROOT = "needs root: rootless mode is not supported yet; run lamina as root\n"


@pytest.fixture
def home():
    """A directory nobody owns, removed at the end."""
    d = tempfile.mkdtemp(prefix="lamina-nobody-", dir="/tmp")
    os.chmod(d, 0o755)
    os.chown(d, 65534, 65534)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(home: str, *args: str, root: str | None = "store", input: bytes | None = None):
    """``lamina ARGS`` as nobody, with HOME=home and (unless root is None) --root home/root."""
    setpriv = need_tool("setpriv")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "PYTHONPATH": REPO,
           "PYTHONDONTWRITEBYTECODE": "1", "LAMINA_CGROUP_PARENT": CGROUP_PARENT}
    cmd = [setpriv, *NOBODY, sys.executable, "-m", "lamina"]
    if root is not None:
        cmd += ["--root", os.path.join(home, root)]
    return subprocess.run(cmd + list(args), env=env, cwd=REPO, capture_output=True, input=input, timeout=300)


@pytest.fixture
def nobody_store(home, busybox_tar):
    tar = os.path.join(home, "busybox.tar")
    shutil.copy(busybox_tar, tar)
    os.chmod(tar, 0o644)
    r = as_nobody(home, "import", "-c", 'CMD ["sh"]', tar, "busybox")
    assert r.returncode == 0, r.stderr.decode()
    return home


def _cgroups() -> set[str]:
    """The cgroups under this test run's parent (other engines and runs use other parents)."""
    return set(glob.glob(f"/sys/fs/cgroup/*/{CGROUP_PARENT}/*")) | set(glob.glob(f"/sys/fs/cgroup/{CGROUP_PARENT}/*"))


def test_a_user_lists_and_imports_in_their_own_store(nobody_store):
    r = as_nobody(nobody_store, "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert (r.returncode, r.stdout) == (0, b"busybox:latest\n")
    st = os.stat(os.path.join(nobody_store, "store"))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (65534, 0o700)
    r = as_nobody(nobody_store, "save", "busybox")
    assert r.returncode == 0 and r.stdout[257:262] == b"ustar"
    r = as_nobody(nobody_store, "load", input=r.stdout)
    assert r.returncode == 0 and r.stdout == b"Loaded image: busybox:latest\n", r.stderr


@pytest.mark.parametrize("args", [
    ("run", "--rm", "busybox", "true"),
    ("run", "-d", "busybox", "sleep", "100"),
    ("run", "-it", "busybox", "sh"),
    ("create", "--name", "c", "busybox"),
])
def test_running_a_container_says_root_is_needed_and_leaves_nothing(nobody_store, args):
    before = _cgroups()
    r = as_nobody(nobody_store, *args)
    assert r.returncode == 125, r.stderr
    assert r.stderr.decode() == f"Error: lamina {args[0]} {NEEDS_ROOT}"
    assert r.stdout == b""
    assert as_nobody(nobody_store, "ps", "-a", "-q").stdout == b""
    assert os.listdir(os.path.join(nobody_store, "store", "containers")) == []
    assert _cgroups() == before


def test_start_exec_and_restart_say_root_is_needed(nobody_store):
    for verb, extra in (("start", ()), ("restart", ()), ("exec", ("true",))):
        r = as_nobody(nobody_store, verb, "nothing", *extra)
        assert (r.returncode, r.stderr.decode()) == (125, f"Error: lamina {verb} {NEEDS_ROOT}")


@pytest.mark.parametrize("dockerfile", [
    "FROM busybox\nRUN echo hi > /f\n",
    "FROM busybox\nENV A=1\nCOPY f /f\n",
    "FROM busybox AS one\nRUN true\nFROM busybox\nCOPY --from=one /etc/passwd /p\n",
])
def test_a_build_that_makes_layers_says_root_is_needed_and_records_nothing(nobody_store, dockerfile):
    ctx = os.path.join(nobody_store, "ctx")
    os.mkdir(ctx)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    with open(os.path.join(ctx, "f"), "w") as f:
        f.write("file\n")
    subprocess.run(["chmod", "-R", "a+rX", ctx], check=True)
    images = as_nobody(nobody_store, "images", "-a", "-q").stdout
    r = as_nobody(nobody_store, "build", "-t", "x", ctx)
    assert (r.returncode, r.stderr.decode()) == (125, f"Error: lamina build {NEEDS_ROOT}")
    assert r.stdout == b""
    assert as_nobody(nobody_store, "images", "-a", "-q").stdout == images
    assert os.listdir(os.path.join(nobody_store, "store", "containers")) == []
    # a build that only edits the config makes no layer: a user may run it
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write("FROM busybox\nENV A=1\nLABEL x=y\n")
    r = as_nobody(nobody_store, "build", "-q", "-t", "meta", ctx)
    assert r.returncode == 0, r.stderr
    assert as_nobody(nobody_store, "inspect", "-f", "{{.Config.Labels.x}}", "meta").stdout == b"y\n"


def test_another_users_store_is_refused_and_roots_is_closed(home, busybox_tar):
    """root's store (0700) cannot be read by nobody, and lamina as nobody refuses it by
    owner before reading anything; the message says what to do."""
    root_store = os.path.join(home, "roots")
    Lamina(root_store)("import", busybox_tar, "busybox")
    st = os.stat(root_store)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)
    r = as_nobody(home, "images", root="roots")
    assert r.returncode == 125
    assert r.stderr.decode() == (f"Error: store {root_store} belongs to uid 0, not to the current user "
                                 f"(uid 65534): lamina uses only a store its user owns\n")
    probe = subprocess.run([need_tool("setpriv"), *NOBODY, "ls", root_store], capture_output=True)
    assert probe.returncode != 0 and b"Permission denied" in probe.stderr
    # a path inside it, or a default store nobody cannot reach: one line naming the fix
    r = as_nobody(home, "images", root="roots/content")
    assert r.returncode == 125 and r.stderr.decode() == (
        f"Error: cannot use {root_store}/content as the store: Permission denied: {root_store}/content; "
        f"point --root or $LAMINA_ROOT at a directory you own\n")
    r = as_nobody("/root", "images", root=None)  # HOME=/root: its default store is out of reach
    assert r.returncode == 125 and len(r.stderr.splitlines()) == 1
    assert r.stderr.decode().startswith("Error: cannot use /root/.local/share/lamina as the store: Permission denied")


def test_the_default_store_of_a_user_is_under_their_home(home, busybox_tar):
    r = as_nobody(home, "images", "-q", root=None)
    assert r.returncode == 0, r.stderr
    store = os.path.join(home, ".local", "share", "lamina")
    assert os.stat(store).st_uid == 65534 and stat.S_IMODE(os.stat(store).st_mode) == 0o700
