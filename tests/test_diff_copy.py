"""lamina.diff.copy: docker cp both ways, the tar forms, export; breakout attempts.

The container is a plain directory ``box/root`` (copy works on any root dir: a merged
overlay or /proc/<pid>/root); ``box/sentinel`` beside it must never change. Rules and
messages were compared with Docker 20.10 (CLI 28.2) on this host, e.g.
``docker cp file c1:/nonexist/`` -> "no such directory", ``docker cp dir c1:/etc/passwd``
-> "cannot copy directory", ``docker cp c1:/nope .`` -> "Could not find the file /nope in
container c1", ``docker cp c1:/etc/passwd ./nonexist/x`` -> 'invalid output path: directory
".../nonexist" does not exist', ``docker cp - c1:/etc/passwd`` -> 'destination
"c1:/etc/passwd" must be a directory', ``docker cp c1:/etc/. -`` -> ``./``, ``./group`` ...,
``docker cp -L c1:/bin/sh -`` -> one entry named after the link target (``busybox``).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from lamina.diff.copy import copy_in, copy_in_tar, copy_out, copy_out_tar, export_tar
from lamina.errors import InvalidArgument, NotFound

T0 = 1_500_000_000


def write(path, content="x", mode=0o644, mtime=T0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(content)
    os.chmod(path, mode)
    os.utime(path, (mtime, mtime))
    return path


def read(path):
    with open(path) as f:
        return f.read()


def snapshot(top):
    """Everything about a tree, to assert it is unchanged."""
    out = {}
    for dp, dns, fns in os.walk(top):
        for n in dns + fns:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                           os.readlink(p) if stat.S_ISLNK(st.st_mode) else None)
    st = os.lstat(top)
    out["."] = (st.st_mode, st.st_mtime_ns)
    return out


@pytest.fixture
def box(tmp_path):
    """(container root, sentinel dir, host work dir)."""
    root = tmp_path / "box" / "root"
    sentinel = tmp_path / "box" / "sentinel"
    host = tmp_path / "host"
    for d in (root, sentinel, host):
        d.mkdir(parents=True)
    r = str(root)
    write(f"{r}/etc/passwd", "root:x:0:0\n")
    write(f"{r}/etc/shadow", "container-shadow\n", 0o640)
    write(f"{r}/bin/busybox", "BB", 0o755)
    os.symlink("busybox", f"{r}/bin/sh")
    write(f"{r}/data/a", "a", 0o600, T0 + 1)
    write(f"{r}/data/sub/b", "b", 0o755, T0 + 2)
    os.symlink("/etc/shadow", f"{r}/data/shadowlink")
    os.utime(f"{r}/data/shadowlink", (T0, T0), follow_symlinks=False)
    os.link(f"{r}/data/a", f"{r}/data/a2")
    os.mkdir(f"{r}/tmp")
    os.symlink("/etc/shadow", f"{r}/shadowlink")
    os.symlink("/etc", f"{r}/etclink")
    os.symlink("/../../../../tmp/outside", f"{r}/evil")
    os.symlink("../sentinel", f"{r}/up")
    os.symlink("../../../../sentinel/x", f"{r}/up2")
    write(str(sentinel / "keep"), "sentinel")
    os.utime(f"{r}/data/sub", (T0 + 3, T0 + 3))
    os.utime(f"{r}/data", (T0 + 4, T0 + 4))
    return r, str(sentinel), str(host)


@pytest.fixture
def sentinel_kept(box):
    _, sentinel, _ = box
    before = snapshot(sentinel)
    outside = os.path.exists("/tmp/outside")
    yield
    assert snapshot(sentinel) == before
    assert os.path.exists("/tmp/outside") == outside


# -- copy_in -----------------------------------------------------------------------------------

def test_copy_in_file_rules(box):
    r, _, h = box
    src = write(f"{h}/file", "hello", 0o640, T0 + 10)
    copy_in(r, src, "/newfile")                      # DEST missing: created as file
    assert read(f"{r}/newfile") == "hello"
    st = os.stat(f"{r}/newfile")
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_mtime == T0 + 10
    copy_in(r, src, "/etc/passwd")                   # DEST a file: overwritten
    assert read(f"{r}/etc/passwd") == "hello"
    copy_in(r, src, "/etc")                          # DEST a dir: copied into it
    assert read(f"{r}/etc/file") == "hello"
    copy_in(r, src, "/etc/")
    assert read(f"{r}/etc/file") == "hello"
    with pytest.raises(InvalidArgument, match="no such directory.*/nonexist/"):
        copy_in(r, src, "/nonexist/")                # DEST/ missing: error
    assert not os.path.exists(f"{r}/nonexist")
    with pytest.raises(InvalidArgument, match="no such directory.*/etc/passwd/"):
        copy_in(r, src, "/etc/passwd/")              # DEST/ is a file: error
    with pytest.raises(NotFound, match="^Could not find the file /nonexist in container$"):
        copy_in(r, src, "/nonexist/x")               # parent missing
    with pytest.raises(NotFound, match=f"lstat {h}/nofile: no such file"):
        copy_in(r, f"{h}/nofile", "/")
    with pytest.raises(InvalidArgument, match="not a directory"):
        copy_in(r, src + "/", "/")                   # SRC/ must be a dir


def test_copy_in_dir_rules(box):
    r, _, h = box
    write(f"{h}/dir/a", "A")
    write(f"{h}/dir/sub/b", "B")
    copy_in(r, f"{h}/dir", "/newdir")                # DEST missing: created with contents
    assert read(f"{r}/newdir/a") == "A" and read(f"{r}/newdir/sub/b") == "B"
    copy_in(r, f"{h}/dir", "/tmp")                   # DEST a dir: copied into it
    assert read(f"{r}/tmp/dir/sub/b") == "B"
    copy_in(r, f"{h}/dir/", "/tmp/")                 # trailing slash on SRC: the same
    assert sorted(os.listdir(f"{r}/tmp")) == ["dir"]
    copy_in(r, f"{h}/dir/.", "/etc")                 # SRC/. : its contents
    assert read(f"{r}/etc/a") == "A" and read(f"{r}/etc/sub/b") == "B"
    assert not os.path.exists(f"{r}/etc/dir")
    copy_in(r, f"{h}/dir", "/new2/")                 # DEST/ missing, SRC dir: created
    assert read(f"{r}/new2/a") == "A"
    with pytest.raises(InvalidArgument, match="cannot copy directory"):
        copy_in(r, f"{h}/dir", "/etc/passwd")        # DEST a file: error
    with pytest.raises(InvalidArgument, match="cannot copy directory"):
        copy_in(r, f"{h}/dir", "/etc/passwd/")
    # a directory never replaces a file inside the tree, nor the other way round
    write(f"{h}/clash/passwd/x", "x")
    with pytest.raises(InvalidArgument, match='non-directory "/etc/passwd" with directory'):
        copy_in(r, f"{h}/clash/.", "/etc")
    write(f"{h}/clash2/sub", "file now")
    with pytest.raises(InvalidArgument, match='directory "/etc/sub" with non-directory'):
        copy_in(r, f"{h}/clash2/.", "/etc")


def test_copy_in_contents_keep_dest_dir_metadata(box):
    r, _, h = box
    os.chmod(f"{r}/tmp", 0o1777)
    write(f"{h}/d/f", "f")
    os.chmod(f"{h}/d", 0o700)
    copy_in(r, f"{h}/d/.", "/tmp")
    assert stat.S_IMODE(os.stat(f"{r}/tmp").st_mode) == 0o1777
    copy_in(r, f"{h}/d", "/tmp")
    assert stat.S_IMODE(os.stat(f"{r}/tmp/d").st_mode) == 0o700


def test_copy_in_ownership(box):
    r, _, h = box
    write(f"{h}/own/f", "f")
    os.chown(f"{h}/own/f", 1234, 5678)
    os.chmod(f"{h}/own/f", 0o4755)  # after chown, which clears setuid
    os.chown(f"{h}/own", 1234, 5678)
    os.symlink("f", f"{h}/own/l")
    os.chown(f"{h}/own/l", 1234, 5678, follow_symlinks=False)
    copy_in(r, f"{h}/own", "/plain")
    copy_in(r, f"{h}/own", "/kept", archive=True)
    for p in ("plain", "plain/f", "plain/l"):
        st = os.lstat(f"{r}/{p}")
        assert (st.st_uid, st.st_gid) == (0, 0), p
    for p in ("kept", "kept/f", "kept/l"):
        st = os.lstat(f"{r}/{p}")
        assert (st.st_uid, st.st_gid) == (1234, 5678), p
    assert stat.S_IMODE(os.stat(f"{r}/kept/f").st_mode) == 0o4755  # setuid survives chown
    assert stat.S_IMODE(os.stat(f"{r}/plain/f").st_mode) == 0o4755


def test_copy_in_follow_link(box):
    r, _, h = box
    write(f"{h}/target", "T")
    os.symlink("target", f"{h}/link")
    copy_in(r, f"{h}/link", "/tmp")
    assert os.readlink(f"{r}/tmp/link") == "target"
    copy_in(r, f"{h}/link", "/etc", follow_link=True)     # the target, under the link's name
    assert read(f"{r}/etc/link") == "T" and not os.path.islink(f"{r}/etc/link")


# -- breakouts -------------------------------------------------------------------------------

def test_copy_in_through_symlinks_stays_inside(box, sentinel_kept):
    r, sentinel, h = box
    src = write(f"{h}/x", "payload")
    copy_in(r, src, "/etclink/x")            # /etclink -> /etc: the container's /etc
    assert read(f"{r}/etc/x") == "payload"
    copy_in(r, src, "/etclink")              # DEST a link to a dir: into the dir
    assert read(f"{r}/etc/x") == "payload"
    with pytest.raises(NotFound, match="/evil"):
        copy_in(r, src, "/evil/x")           # /evil -> /../../../../tmp/outside: not there
    copy_in(r, src, "/evil")                 # a dangling link is followed inside the root
    assert read(f"{r}/tmp/outside") == "payload"
    assert os.path.islink(f"{r}/evil")
    copy_in(r, src, "/up")                   # ../sentinel resolves to the container's /sentinel
    assert read(f"{r}/sentinel") == "payload"
    with pytest.raises(NotFound):
        copy_in(r, src, "/up2/y")
    write(src, "again")
    copy_in(r, src, "/../../../sentinel")    # lexical .. stops at the container's /
    assert read(f"{r}/sentinel") == "again"
    os.mkdir(f"{h}/d")
    write(f"{h}/d/f", "F")
    copy_in(r, f"{h}/d", "/up/../../..//etclink/")
    assert read(f"{r}/etc/d/f") == "F"


def test_copy_in_tar_breakouts(box, sentinel_kept):
    r, sentinel, _ = box

    def tar(*members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
            for name, kind, arg in members:
                ti = tarfile.TarInfo(name)
                if kind == "dir":
                    ti.type = tarfile.DIRTYPE
                    t.addfile(ti)
                elif kind == "sym":
                    ti.type, ti.linkname = tarfile.SYMTYPE, arg
                    t.addfile(ti)
                elif kind == "lnk":
                    ti.type, ti.linkname = tarfile.LNKTYPE, arg
                    t.addfile(ti)
                else:
                    data = arg.encode()
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
        buf.seek(0)
        return buf

    with pytest.raises(InvalidArgument, match="escapes"):
        copy_in_tar(r, tar(("../x", "file", "no")), "/tmp")
    with pytest.raises(InvalidArgument, match="outside"):
        copy_in_tar(r, tar(("h", "lnk", "../../../sentinel/keep")), "/tmp")
    # a symlink made by the tar, then used as a parent: resolves inside /tmp (the dest)
    copy_in_tar(r, tar(("l", "sym", "/"), ("l/etc/x", "file", "in"),
                       ("m", "sym", "../../../.."), ("m/keep", "file", "in2")), "/tmp")
    assert read(f"{r}/tmp/etc/x") == "in"
    assert read(f"{r}/tmp/keep") == "in2"
    with pytest.raises(InvalidArgument, match="dangling symlink"):
        copy_in_tar(r, tar(("n", "sym", "../../../sentinel"), ("n/keep", "file", "x")), "/tmp")
    assert read(f"{r}/etc/passwd") == "root:x:0:0\n"
    # dest through a symlink: the container's /etc; .wh.* is just a name here
    copy_in_tar(r, tar((".wh.passwd", "file", "w")), "/etclink")
    assert read(f"{r}/etc/.wh.passwd") == "w" and os.path.exists(f"{r}/etc/passwd")
    with pytest.raises(InvalidArgument, match='destination "/etc/passwd" must be a directory'):
        copy_in_tar(r, tar(("f", "file", "x")), "/etc/passwd")
    with pytest.raises(InvalidArgument, match='"/nonexist" must be a directory'):
        copy_in_tar(r, tar(("f", "file", "x")), "/nonexist")


def test_copy_out_symlink_resolves_in_container(box, sentinel_kept):
    r, _, h = box
    copy_out(r, "/shadowlink", f"{h}/s1", follow_link=True)
    assert read(f"{h}/s1") == "container-shadow\n"
    copy_out(r, "/shadowlink", f"{h}/s2")              # without -L: the link itself
    assert os.readlink(f"{h}/s2") == "/etc/shadow"
    copy_out(r, "/shadowlink", h, follow_link=True)    # into a dir: the link's name
    assert read(f"{h}/shadowlink") == "container-shadow\n"
    copy_out(r, "/etclink/shadow", f"{h}/s3")          # a link in the middle of SRC
    assert read(f"{h}/s3") == "container-shadow\n"
    copy_out(r, "/data", f"{h}/data")                  # links inside a tree stay links
    assert os.readlink(f"{h}/data/shadowlink") == "/etc/shadow"
    with pytest.raises(NotFound, match="^Could not find the file /up/keep in container$"):
        copy_out(r, "/up/keep", f"{h}/nope")           # ../sentinel is not the host's
    with pytest.raises(NotFound, match="/evil"):
        copy_out(r, "/evil", f"{h}/nope", follow_link=True)
    buf = io.BytesIO()
    copy_out_tar(r, "/../../sentinel/../etc/shadow", buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        assert t.extractfile("shadow").read() == b"container-shadow\n"


# -- copy_out ----------------------------------------------------------------------------------

def test_copy_out_rules(box):
    r, _, h = box
    copy_out(r, "/etc/passwd", f"{h}/p")               # DEST missing: a file
    assert read(f"{h}/p") == "root:x:0:0\n"
    write(f"{h}/existing", "old")
    copy_out(r, "/etc/passwd", f"{h}/existing")        # DEST a file: overwritten
    assert read(f"{h}/existing") == "root:x:0:0\n"
    copy_out(r, "/etc/passwd", h)                      # DEST a dir: into it
    assert read(f"{h}/passwd") == "root:x:0:0\n"
    with pytest.raises(InvalidArgument, match="no such directory"):
        copy_out(r, "/etc/passwd", f"{h}/nonexist/")
    with pytest.raises(NotFound, match='invalid output path: directory ".*/nonexist" does not'):
        copy_out(r, "/etc/passwd", f"{h}/nonexist/x")
    with pytest.raises(InvalidArgument, match="cannot copy directory"):
        copy_out(r, "/etc", f"{h}/p")
    with pytest.raises(NotFound, match="^Could not find the file /nope in container$"):
        copy_out(r, "/nope", h)
    with pytest.raises(InvalidArgument, match="not a directory"):
        copy_out(r, "/etc/passwd/", h)
    copy_out(r, "/data", f"{h}/new")                   # SRC dir, DEST missing: its contents
    assert sorted(os.listdir(f"{h}/new")) == ["a", "a2", "shadowlink", "sub"]
    copy_out(r, "/data", f"{h}/new")                   # DEST a dir now: into it
    assert os.path.isdir(f"{h}/new/data/sub")
    os.mkdir(f"{h}/c")
    copy_out(r, "/data/.", f"{h}/c")                   # SRC/. : contents
    assert sorted(os.listdir(f"{h}/c")) == ["a", "a2", "shadowlink", "sub"]
    copy_out(r, "/", f"{h}/all")                       # the root: its contents
    assert read(f"{h}/all/etc/passwd") == "root:x:0:0\n"


def test_copy_out_keeps_modes_times_links(box):
    r, _, h = box
    copy_out(r, "/data", f"{h}/d")
    st = os.stat(f"{h}/d/a")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_mtime == T0 + 1
    assert stat.S_IMODE(os.stat(f"{h}/d/sub/b").st_mode) == 0o755
    assert os.stat(f"{h}/d/sub").st_mtime == T0 + 3
    assert os.stat(f"{h}/d").st_mtime == T0 + 4
    assert os.path.samestat(os.stat(f"{h}/d/a"), os.stat(f"{h}/d/a2"))  # a hard link


def test_copy_out_ownership(box):
    r, _, h = box
    os.chown(f"{r}/data/a", 1234, 5678)
    copy_out(r, "/data/a", f"{h}/mine")
    st = os.stat(f"{h}/mine")
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    copy_out(r, "/data/a", f"{h}/theirs", archive=True)
    st = os.stat(f"{h}/theirs")
    assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_special_files(box):
    r, _, h = box
    os.mkfifo(f"{r}/tmp/fifo")
    os.mknod(f"{r}/tmp/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(f"{r}/tmp/null", 0o666)
    copy_out(r, "/tmp", f"{h}/t")                      # a fifo is copied, never opened
    assert stat.S_ISFIFO(os.lstat(f"{h}/t/fifo").st_mode)
    st = os.lstat(f"{h}/t/null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666


# -- tar forms ---------------------------------------------------------------------------------

def test_copy_out_tar_names(box):
    r, _, _ = box

    def names(src, **kw):
        buf = io.BytesIO()
        copy_out_tar(r, src, buf, **kw)
        buf.seek(0)
        with tarfile.open(fileobj=buf) as t:
            return [(m.name, m.type) for m in t.getmembers()]

    assert names("/etc/passwd") == [("passwd", tarfile.REGTYPE)]
    assert names("/data") == names("/data/") == [
        ("data", tarfile.DIRTYPE), ("data/a", tarfile.REGTYPE), ("data/a2", tarfile.LNKTYPE),
        ("data/shadowlink", tarfile.SYMTYPE), ("data/sub", tarfile.DIRTYPE),
        ("data/sub/b", tarfile.REGTYPE)]
    assert [n for n, _ in names("/data/.")] == [".", "./a", "./a2", "./shadowlink", "./sub",
                                                "./sub/b"]
    assert names("/bin/sh") == [("sh", tarfile.SYMTYPE)]
    assert names("/bin/sh", follow_link=True) == [("busybox", tarfile.REGTYPE)]  # as Docker
    with pytest.raises(NotFound, match="/nope"):
        names("/nope")


def test_tar_round_trip(box):
    r, _, _ = box
    os.chown(f"{r}/data/sub/b", 1234, 5678)
    buf = io.BytesIO()
    copy_out_tar(r, "/data", buf)
    raw = buf.getvalue()
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        m = t.getmember("data/sub/b")
        assert (m.uid, m.gid, m.mode, m.mtime) == (1234, 5678, 0o755, T0 + 2)
    os.mkdir(f"{r}/restore")
    os.mkdir(f"{r}/restore2")
    copy_in_tar(r, io.BytesIO(raw), "/restore")
    copy_in_tar(r, io.BytesIO(raw), "/restore2", archive=True)
    orig = snapshot(f"{r}/data")
    del orig["."]
    for d in ("restore", "restore2"):
        got = snapshot(f"{r}/{d}/data")
        del got["."]
        assert got == orig
    assert os.stat(f"{r}/restore/data/sub/b").st_uid == 0
    assert os.stat(f"{r}/restore2/data/sub/b").st_uid == 1234
    assert os.stat(f"{r}/restore/data").st_mtime == T0 + 4
    assert os.path.samestat(os.stat(f"{r}/restore/data/a"), os.stat(f"{r}/restore/data/a2"))


def test_export_tar(box):
    r, _, _ = box
    buf = io.BytesIO()
    n = export_tar(r, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        members = {m.name: m for m in t.getmembers()}
    assert n == len(members)
    assert set(members) == {
        "bin", "bin/busybox", "bin/sh", "data", "data/a", "data/a2", "data/shadowlink",
        "data/sub", "data/sub/b", "etc", "etc/passwd", "etc/shadow", "etclink", "evil",
        "shadowlink", "tmp", "up", "up2"}
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["data/a2"].islnk() and members["data/a2"].linkname == "data/a"
    assert members["etc/shadow"].mode == 0o640
