"""lamina.diff.changes on real overlay mounts (root + overlayfs, which CI has:
tests/test_ci_environment.py checks; elsewhere they fail, never skip).

Expected lists were compared with Docker 20.10.24 (overlay2, this host) running the same
operations in a busybox container, e.g.::

    docker run --name t busybox:local sh -c 'echo x > /etc/new; rm /bin/ls; mkdir -p /a/b'
    docker diff t      ->  A /a, A /a/b, C /bin, D /bin/ls, C /etc, A /etc/new

    # image with /d1/f and /d1/sub/g:
    docker run --name t4 base sh -c 'rm -r /d1; mkdir /d1; echo n > /d1/new; chmod 700 /root;
        echo q > /tmp/q; rm /tmp/q; echo m >> /etc/passwd; mkdir -p /etc/deep/er; rm -r /bin'
    docker diff t4     ->  C /d1, A /d1/new, D /d1/f, D /d1/sub, C /etc, A /etc/deep,
                           A /etc/deep/er, C /etc/passwd, C /root, D /bin

So: a replaced (opaque) directory is C and its hidden old children are D (only the top
ones, not /d1/sub/g); a deleted directory is one D; chmod alone is C; a file created and
removed again leaves nothing, not even ``C /tmp`` (directory mtimes are ignored); every
directory of the image with a change below is C. Docker prints in Go map order (it varies
between runs); lamina sorts by path.
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from lamina.diff.changes import Change, changes, format_changes
from lamina.errors import InvalidArgument, NotFound

T0 = 1_600_000_000


def mk(root, rel, content: str | None = "x", *, mode=0o644):
    """File ``rel`` under ``root``; ``None`` makes a whiteout; rel ending in / a dir."""
    p = os.path.join(root, rel.strip("/"))
    if rel.endswith("/"):
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode if mode != 0o644 else 0o755)
        return p
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if content is None:
        os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(0, 0))
    else:
        with open(p, "w") as f:
            f.write(content)
        os.chmod(p, mode)
        os.utime(p, (T0, T0))
    return p


def opaque(path):
    os.setxattr(path, "trusted.overlay.opaque", b"y")


@pytest.fixture
def ovl(tmp_path):
    """(mount, upper, [L2, L1]) with L1 below L2; unmounted afterwards."""
    l1, l2 = tmp_path / "l1", tmp_path / "l2"
    up, work, m = tmp_path / "u", tmp_path / "w", tmp_path / "m"
    for d in (l1, l2, up, work, m):
        d.mkdir()
    for d in ("etc/", "bin/", "tmp/", "d1/", "d1/sub/", "gone/", "gone/deep/", "keep/", "op/",
              "usr/"):
        mk(l1, d)
    for f in ("etc/passwd", "etc/group", "bin/ls", "bin/sh", "bin/old", "d1/f", "d1/sub/g",
              "gone/x", "gone/deep/y", "keep/a", "m", "op/hidden", "usr/lib"):
        mk(l1, f)
    # L2: deletes /bin/old, makes /op opaque (hiding /op/hidden), adds /op/new2, /usr/x
    mk(l2, "bin/")
    mk(l2, "bin/old", None)
    opaque(mk(l2, "op/"))
    mk(l2, "op/new2")
    mk(l2, "usr/")
    mk(l2, "usr/x")
    os.chmod(l2, 0o755)
    os.chmod(l1, 0o755)
    lowers = [str(l2), str(l1)]
    opts = (f"lowerdir={l2}:{l1},upperdir={up},workdir={work},"
            "index=off,redirect_dir=off,metacopy=off")
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(m)], check=True)
    try:
        yield str(m), str(up), lowers
    finally:
        subprocess.run(["umount", "-l", str(m)], check=False)


def test_no_changes(ovl):
    m, up, lowers = ovl
    assert changes(up, lowers) == []
    os.listdir(os.path.join(m, "etc"))  # reading copies nothing up
    with open(os.path.join(m, "etc/passwd")) as f:
        f.read()
    assert changes(up, lowers) == []


def test_docker_scenario(ovl):
    m, up, lowers = ovl
    M = lambda rel: os.path.join(m, rel)  # noqa: E731
    with open(M("etc/new"), "w") as f:          # add
        f.write("x\n")
    with open(M("etc/passwd"), "a") as f:       # modify: copy-up
        f.write("m\n")
    os.unlink(M("bin/ls"))                       # delete a lower file
    subprocess.run(["rm", "-r", M("gone")], check=True)   # delete a lower dir
    subprocess.run(["rm", "-r", M("d1")], check=True)     # replace a dir -> opaque
    os.mkdir(M("d1"))
    os.chmod(M("d1"), 0o755)
    with open(M("d1/new"), "w") as f:
        f.write("n")
    os.chmod(M("m"), 0o700)                      # chmod only
    with open(M("tmp/q"), "w") as f:             # create then delete
        f.write("q")
    os.unlink(M("tmp/q"))
    os.makedirs(M("a/b"))                        # new dirs
    with open(M("bin/old"), "w") as f:           # re-create what L2 deleted: an add
        f.write("again")
    with open(M("op/hidden"), "w") as f:         # hidden by L2's opaque dir: an add
        f.write("h")

    # The upper dir really is what the docstring of lamina.mount says it is.
    assert stat.S_ISCHR(os.lstat(os.path.join(up, "bin/ls")).st_mode)
    assert os.getxattr(os.path.join(up, "d1"), "trusted.overlay.opaque") == b"y"
    assert os.path.isdir(os.path.join(up, "tmp"))

    got = changes(up, lowers)
    assert [str(c) for c in got] == [
        "A /a",
        "A /a/b",
        "C /bin",
        "D /bin/ls",
        "A /bin/old",
        "C /d1",
        "D /d1/f",
        "A /d1/new",
        "D /d1/sub",
        "C /etc",
        "A /etc/new",
        "C /etc/passwd",
        "D /gone",
        "C /m",
        "C /op",
        "A /op/hidden",
    ]
    assert format_changes(got[:2]) == "A /a\nA /a/b\n"
    assert all(isinstance(c, Change) for c in got)


def test_parent_dirs_and_type_changes(ovl):
    m, up, lowers = ovl
    M = lambda rel: os.path.join(m, rel)  # noqa: E731
    os.makedirs(M("usr/share/doc"))              # /usr exists in both lowers
    os.unlink(M("keep/a"))                       # dir replaced by file: one C, no D below
    os.rmdir(M("keep"))
    with open(M("keep"), "w") as f:
        f.write("file now")
    os.unlink(M("bin/sh"))                       # file replaced by a dir
    os.mkdir(M("bin/sh"))
    with open(M("bin/sh/inner"), "w") as f:
        f.write("i")
    os.symlink("/etc", M("lnk"))                 # new symlink
    got = [str(c) for c in changes(up, lowers)]
    assert got == [
        "C /bin",
        "C /bin/sh",
        "A /bin/sh/inner",
        "C /keep",
        "A /lnk",
        "C /usr",
        "A /usr/share",
        "A /usr/share/doc",
    ]


def test_opaque_dir_over_opaque_lower_and_touch(ovl):
    m, up, lowers = ovl
    M = lambda rel: os.path.join(m, rel)  # noqa: E731
    subprocess.run(["rm", "-r", M("op")], check=True)   # only /op/new2 is visible below
    os.mkdir(M("op"))
    os.chmod(M("op"), 0o755)
    os.utime(M("etc/group"), (T0 + 5, T0 + 5))          # mtime only: C
    os.utime(M("usr/lib"), (T0, T0))                     # copy-up, nothing differs: nothing
    os.chown(M("etc"), 0, 0)                             # copy-up of a dir, same owner: C /etc
    got = [str(c) for c in changes(up, lowers)]           # only because of /etc/group
    assert got == ["C /etc", "C /etc/group", "C /op", "D /op/new2"]


def test_capability_change_is_a_change(ovl):
    m, up, lowers = ovl
    p = os.path.join(m, "bin/ls")
    st = os.stat(p)
    # a valid v2 capability blob (cap_net_raw permitted+effective)
    cap = bytes.fromhex("0100000200200000000000000000000000000000")
    os.setxattr(p, "security.capability", cap)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert [str(c) for c in changes(up, lowers)] == ["C /bin", "C /bin/ls"]


def test_plain_dirs_without_mount(tmp_path):
    """No mount needed: an upper dir and lowers built by hand (whiteout needs root)."""
    low, up = tmp_path / "low", tmp_path / "up"
    mk(low, "a/")
    mk(low, "a/one")
    mk(low, "b")
    mk(up, "a/")
    mk(up, "a/two")
    mk(up, "c/")
    assert [str(c) for c in changes(str(up), [str(low)])] == ["C /a", "A /a/two", "A /c"]
    assert [str(c) for c in changes(str(up), [])] == ["A /a", "A /a/two", "A /c"]
    if os.geteuid() == 0:
        mk(up, "b", None)
        assert "D /b" in [str(c) for c in changes(str(up), [str(low)])]


def test_errors(tmp_path):
    with pytest.raises(NotFound, match="nope"):
        changes(str(tmp_path / "nope"), [])
    with pytest.raises(InvalidArgument):
        changes(str(tmp_path), "abc")
    with pytest.raises(InvalidArgument):
        Change("X", "/a")
    with pytest.raises(InvalidArgument):
        Change("A", "rel")


def _run(*args: str) -> str:
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"{' '.join(args)} failed: {p.stderr}"
    return p.stdout


def test_same_as_docker_diff_on_dockers_own_dirs(busybox_tar):
    """Run a container in dockerd, then compare ``docker diff`` (sorted) with changes() of
    that container's overlay2 UpperDir over its LowerDir list (incl. the -init layer)."""
    import uuid

    from tests.conftest import need_tool

    need_tool("docker")
    p = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"dockerd is not running (scripts/test.sh starts it): {p.stderr.strip()}")
    tag = f"lamina-diff-{uuid.uuid4().hex[:8]}"
    names = [f"{tag}-a", f"{tag}-b"]
    try:
        _run("docker", "import", busybox_tar, f"{tag}:base")
        _run("docker", "run", "--network", "none", "--name", names[0], f"{tag}:base", "sh", "-c",
             "mkdir -p /d1/sub /x && echo a > /d1/f && echo b > /d1/sub/g && echo 1 > /x/one")
        _run("docker", "commit", names[0], f"{tag}:two")
        _run("docker", "run", "--network", "none", "--name", names[1], f"{tag}:two", "sh", "-c",
             "rm -r /d1; mkdir /d1; echo n > /d1/new; chmod 700 /x; echo q > /tmp/q; "
             "rm /tmp/q; echo m >> /etc/passwd; mkdir -p /etc/deep/er; rm /x/one; "
             "touch /x/two; ln -s /etc /lnk; rm -r /bin")
        driver = _run("docker", "inspect", "-f", "{{.GraphDriver.Name}}", names[1]).strip()
        if driver != "overlay2":
            pytest.fail(f"dockerd uses the {driver} storage driver; this test needs overlay2")
        upper = _run("docker", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", names[1]).strip()
        lower = _run("docker", "inspect", "-f", "{{.GraphDriver.Data.LowerDir}}", names[1]).strip()
        want = sorted(_run("docker", "diff", names[1]).splitlines(),
                      key=lambda line: line[2:].encode())
        got = format_changes(changes(upper, lower.split(":"))).splitlines()
        assert got == want
        assert "D /bin" in got and "D /d1/sub" in got and "C /x" in got
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", f"{tag}:base", f"{tag}:two"], capture_output=True)
