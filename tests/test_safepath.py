"""lamina.safepath: the one safe-path primitive. Real directories, real symlinks, real
openat2(2): every escape a hostile tree can try stays inside its root."""

from __future__ import annotations

import ast
import errno
import os

import pytest

from lamina import safepath as sp
from lamina.errors import InvalidArgument

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def tree(tmp_path):
    """root/ with a real file, a real dir, and symlinks that try to leave it; outside/ holds
    the secret every escape would reach."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host secret")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("in root")
    (root / "secret").write_text("root's own secret")
    os.symlink(str(outside), root / "abs")                 # absolute, to the host
    os.symlink("../../outside", root / "etc" / "rel")      # relative, climbing out
    os.symlink("/etc/passwd", root / "pw")                 # absolute, meant in-root
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return str(root), str(outside)


def read(fd: int) -> str:
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


def test_clean_path():
    assert sp.clean_path("/a//b/./c/") == "a/b/c"
    assert sp.clean_path("a/b/../c") == "a/c"
    assert sp.clean_path("") == "." and sp.clean_path("/") == "." and sp.clean_path("a/..") == "."
    assert sp.clean_path("..") is None and sp.clean_path("a/../../b") is None
    assert sp.clean_path("/../x") is None


def test_in_root_symlinks_and_dotdot_stay_inside(tree):
    root, _ = tree
    rfd = sp.open_root(root)
    try:
        # an absolute symlink to the host resolves under the root: root/abs -> root/<outside path>
        with pytest.raises(FileNotFoundError):
            sp.open_in_root(rfd, "abs/secret", os.O_RDONLY)
        # a relative one that climbs stops at the root: ../../outside/secret is /outside/secret
        with pytest.raises(FileNotFoundError):
            sp.open_in_root(rfd, "etc/rel/secret", os.O_RDONLY)
        # .. above the root is the root
        assert read(sp.open_in_root(rfd, "../../../secret", os.O_RDONLY)) == "root's own secret"
        # an absolute symlink meant for the image reaches the image's file
        assert read(sp.open_in_root(rfd, "/pw", os.O_RDONLY)) == "in root"
        # /proc/self/fd/0 named from inside the root is the root's own proc/ (absent)
        with pytest.raises(FileNotFoundError):
            sp.open_in_root(rfd, "/proc/self/fd/0", os.O_RDONLY)
        with pytest.raises(OSError) as e:
            sp.open_in_root(rfd, "loop1", os.O_RDONLY)
        assert e.value.errno == errno.ELOOP
        assert os.path.samestat(os.fstat(fd := sp.open_in_root(rfd, "/", os.O_PATH)), os.stat(root))
        os.close(fd)
    finally:
        os.close(rfd)


def test_magic_links_are_never_followed():
    """With the real /proc as the root, fd/0 is a magic link: refused by both kinds."""
    rfd = sp.open_root(f"/proc/{os.getpid()}")
    try:
        for fn in (sp.open_in_root, sp.open_physical):
            with pytest.raises(OSError) as e:
                fn(rfd, "fd/0", os.O_RDONLY)
            assert e.value.errno in (errno.ELOOP, errno.EXDEV), fn
    finally:
        os.close(rfd)


def test_physical_paths_refuse_every_symlink(tree):
    root, _ = tree
    rfd = sp.open_root(root)
    try:
        assert read(sp.open_physical(rfd, "etc/passwd", os.O_RDONLY)) == "in root"
        for rel in ("pw", "abs/secret", "etc/rel/secret", "../outside/secret"):
            with pytest.raises(OSError) as e:
                sp.open_physical(rfd, rel, os.O_RDONLY)
            assert e.value.errno in (errno.ELOOP, errno.EXDEV), rel
        assert sp.lstat_physical(rfd, "pw").st_size == len("/etc/passwd")   # the link itself
        assert sp.lstat_physical(rfd, "abs/secret") is None                 # parent is a symlink
        assert sp.lstat_physical(rfd, "etc/passwd/x") is None               # parent not a dir
        assert sp.lstat_physical(rfd, "nope") is None
        assert sp.readlink_physical(rfd, "etc/rel") == "../../outside"
    finally:
        os.close(rfd)


def test_open_root_does_not_follow_its_last_component(tree, tmp_path):
    root, outside = tree
    link = tmp_path / "rootlink"
    os.symlink(root, link)
    with pytest.raises(OSError) as e:
        sp.open_root(str(link))
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)


def test_resolve_in_root(tree):
    root, _ = tree
    fd, rel = sp.resolve_in_root(root, "/pw")
    try:
        assert rel == "etc/passwd" and sp.path_of(fd) == os.path.join(root, "etc/passwd")
    finally:
        os.close(fd)
    fd, rel = sp.resolve_in_root(root, "../..")
    os.close(fd)
    assert rel == ""
    with pytest.raises(InvalidArgument, match="abs/secret"):
        sp.resolve_in_root(root, "abs/secret")


def test_a_symlink_swapped_in_after_the_check_is_not_followed(tree):
    """What a walker relies on: it lstat'ed a directory, then the directory became a symlink
    to the host; the physical open fails instead of reading the host file."""
    root, outside = tree
    rfd = sp.open_root(root)
    try:
        os.mkdir(os.path.join(root, "d"))
        assert sp.lstat_physical(rfd, "d") is not None
        os.rmdir(os.path.join(root, "d"))
        os.symlink(outside, os.path.join(root, "d"))
        with pytest.raises(OSError) as e:
            sp.open_physical(rfd, "d/secret", os.O_RDONLY)
        assert e.value.errno == errno.ELOOP
    finally:
        os.close(rfd)


def test_only_safepath_calls_openat2_and_everyone_imports_it_from_there():
    """One primitive: no other module binds the syscall, and nothing imports the resolution
    helpers from their old homes (layer.extract, inroot)."""
    offenders = []
    for dirpath, _, files in os.walk(os.path.join(REPO, "lamina")):
        for f in files:
            if not f.endswith(".py"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, REPO)
            src = open(path).read()
            for node in ast.walk(ast.parse(src)):
                if rel != "lamina/safepath.py" and (
                        isinstance(node, ast.FunctionDef) and node.name == "openat2"
                        or isinstance(node, ast.Name) and node.id == "SYS_OPENAT2"
                        and isinstance(node.ctx, ast.Store)):
                    offenders.append(f"{rel}: binds openat2 itself")
                if isinstance(node, ast.ImportFrom) and node.module in ("lamina.layer.extract",
                                                                        "lamina.inroot"):
                    names = {a.name for a in node.names}
                    bad = names & {"openat2", "clean_path", "open_root", "open_physical",
                                   "open_in_root", "resolve_in_root", "PHYSICAL", "IN_ROOT"} \
                        or {n for n in names if n.startswith("RESOLVE_")}
                    if bad or node.module == "lamina.inroot":
                        offenders.append(f"{rel}: imports {sorted(names)} from {node.module}")
    assert not offenders, offenders
    assert not os.path.exists(os.path.join(REPO, "lamina", "inroot.py"))


def test_importing_safepath_loads_no_ctypes():
    import subprocess
    import sys
    code = "import sys, lamina.safepath; print('ctypes' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.stdout.strip() == "False"
