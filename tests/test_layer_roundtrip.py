"""write_layer -> apply_layer round trips, overlay upper conversion, whiteouts in both modes.

Runs as root on real files (chown, mknod, security.capability, overlay mounts).
"""

from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import tarfile

import pytest

from lamina.layer.extract import apply_layer
from lamina.layer.writer import write_layer

T0 = 1_600_000_000
# VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, permitted = CAP_NET_BIND_SERVICE (bit 10)
CAP_BLOB = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)


def build_tree(root):
    os.makedirs(root, exist_ok=True)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    os.mkdir(j("bin"), 0o755)
    with open(j("bin", "busybox"), "wb") as f:
        f.write(os.urandom(300_000))
    os.chmod(j("bin", "busybox"), 0o4755)  # setuid
    os.link(j("bin", "busybox"), j("bin", "ls"))  # hardlink
    os.symlink("busybox", j("bin", "sh"))
    os.symlink("/etc/absolute-target", j("bin", "abs"))
    os.mkdir(j("tmp"))
    os.chmod(j("tmp"), 0o1777)  # sticky
    os.mkdir(j("home"))
    os.mkdir(j("home", "user"))
    with open(j("home", "user", "notes"), "w") as f:
        f.write("hello\n")
    os.chown(j("home", "user", "notes"), 1000, 1001)
    os.chown(j("home", "user"), 1000, 1001)
    os.chmod(j("home", "user"), 0o700)
    os.mkfifo(j("home", "fifo"), 0o640)
    os.mkdir(j("dev"))
    os.mknod(j("dev", "null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(j("dev", "loop9"), stat.S_IFBLK | 0o660, os.makedev(7, 9))
    with open(j("bin", "ping"), "wb") as f:
        f.write(b"\x7fELF fake ping")
    os.setxattr(j("bin", "ping"), "security.capability", CAP_BLOB)
    os.setxattr(j("home", "user", "notes"), "user.comment", b"binary\x00\xffvalue")
    long_dir = j("x" * 120)
    os.mkdir(long_dir)
    with open(os.path.join(long_dir, "y" * 120), "w") as f:
        f.write("long")
    with open(j("empty"), "w"):
        pass
    os.chown(j("bin", "sh"), 5, 6, follow_symlinks=False)
    # mtimes last, children first
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), ns=(T0 * 10**9, (T0 + len(n)) * 10**9),
                     follow_symlinks=False)
    os.utime(root, (T0, T0))


def snapshot(root):
    """A comparable description of a tree: everything write_layer promises to keep."""
    out = {}
    inodes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            xattrs = {k: os.getxattr(p, k, follow_symlinks=False)
                      for k in os.listxattr(p, follow_symlinks=False)}
            rec = {"fmt": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
                   "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns // 10**9,
                   "xattrs": xattrs}
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    rec["data"] = f.read()
                rec["inode"] = inodes.setdefault((st.st_dev, st.st_ino), rel)
            elif stat.S_ISLNK(st.st_mode):
                rec["target"] = os.readlink(p)
                rec.pop("mode")
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                rec["rdev"] = st.st_rdev
            out[rel] = rec
    return out


def tar_of(root, **kw) -> bytes:
    buf = io.BytesIO()
    write_layer(str(root), buf, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["overlay", "merge"])
def test_round_trip_preserves_everything(tmp_path, mode):
    src = tmp_path / "src"
    build_tree(str(src))
    data = tar_of(src)
    dst = tmp_path / "dst"
    dst.mkdir()
    res = apply_layer(io.BytesIO(data), str(dst), mode=mode)
    a, b = snapshot(str(src)), snapshot(str(dst))
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], k
    assert b["bin/ls"]["inode"] == "bin/busybox"
    assert b["bin/busybox"]["mode"] == 0o4755
    assert b["tmp"]["mode"] == 0o1777
    assert b["bin/ping"]["xattrs"]["security.capability"] == CAP_BLOB
    # Docker's layer size: regular files once per inode, plus each symlink's target length
    assert res.content_size == sum(len(r["data"]) for k, r in a.items()
                                   if "data" in r and r["inode"] == k) + \
        sum(len(os.fsencode(r["target"])) for r in a.values() if "target" in r)
    assert res.entries == len(a)


def test_tar_shape_is_docker_like_and_deterministic(tmp_path):
    src = tmp_path / "src"
    build_tree(str(src))
    data = tar_of(src)
    assert data == tar_of(src)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    # tarfile strips the trailing "/" of directories: check the raw headers instead
    assert b"bin/\x00" in data[:512 * 4]
    assert names[:6] == ["bin", "bin/abs", "bin/busybox", "bin/ls", "bin/ping", "bin/sh"]
    assert all(not n.startswith(("/", "./")) for n in names)
    # parents before children
    seen = set()
    for n in names:
        parent = n.rpartition("/")[0]
        assert not parent or parent in seen, n
        seen.add(n)
    by = {m.name: m for m in members}
    assert by["bin/ls"].islnk() and by["bin/ls"].linkname == "bin/busybox"
    assert by["bin/ping"].pax_headers["SCHILY.xattr.security.capability"].encode(
        "utf-8", "surrogateescape") == CAP_BLOB
    assert by["dev/null"].ischr() and (by["dev/null"].devmajor, by["dev/null"].devminor) == (1, 3)
    assert all(m.uname == "" and m.gname == "" for m in members)
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0


def test_source_date_epoch_clamps(tmp_path):
    src = tmp_path / "src"
    build_tree(str(src))
    with open(src / "new", "w") as f:
        f.write("x")
    with tarfile.open(fileobj=io.BytesIO(tar_of(src, source_date_epoch=T0 + 5))) as tf:
        mt = {m.name: m.mtime for m in tf.getmembers()}
    assert mt["new"] == T0 + 5
    assert mt["bin/sh"] == T0 + 2  # older mtimes stay
    assert max(mt.values()) == T0 + 5


def test_paths_selects_entries(tmp_path):
    src = tmp_path / "src"
    build_tree(str(src))
    with tarfile.open(fileobj=io.BytesIO(tar_of(src, paths=["home/user/notes", "home", "bin/sh"]))) as tf:
        assert tf.getnames() == ["bin/sh", "home", "home/user/notes"]


def _mount_overlay(tmp_path):
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    (lower / "etc").mkdir()
    (lower / "etc" / "passwd").write_text("root\n")
    (lower / "etc" / "shadow").write_text("x\n")
    (lower / "var" / "cache").mkdir(parents=True)
    (lower / "var" / "cache" / "a").write_text("a")
    (lower / "opt" / "old").mkdir(parents=True)
    (lower / "opt" / "old" / "f").write_text("f")
    (lower / "srv").mkdir()
    (lower / "srv" / "keep").write_text("k")
    opts = (f"lowerdir={lower},upperdir={upper},workdir={work},"
            "index=off,redirect_dir=off,metacopy=off")
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"overlay mount failed: {r.stderr.strip()}"
    return lower, upper, merged


def test_overlay_upper_whiteouts(tmp_path):
    lower, upper, merged = _mount_overlay(tmp_path)
    try:
        os.unlink(merged / "etc" / "shadow")            # delete a lower file
        subprocess.run(["rm", "-rf", str(merged / "var" / "cache")], check=True)  # a lower dir
        subprocess.run(["rm", "-rf", str(merged / "opt")], check=True)
        (merged / "opt").mkdir()                        # replace a dir: opaque
        (merged / "opt" / "new").write_text("n")
        (merged / "etc" / "passwd").write_text("root\nuser\n")
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    data = tar_of(upper, overlay_upper=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert members["etc/.wh.shadow"].isreg() and members["etc/.wh.shadow"].size == 0
    assert members["var/.wh.cache"].isreg()
    assert "opt/.wh..wh..opq" in members and members["opt/new"].isreg()
    assert not any(k.startswith("trusted.overlay") for m in members.values()
                   for k in m.pax_headers)
    assert not any(m.ischr() for m in members.values())
    names = list(members)
    assert names.index("opt") < names.index("opt/.wh..wh..opq") < names.index("opt/new")

    # overlay mode turns them back into overlayfs whiteouts: mount lower + unpacked layer
    snap = tmp_path / "snap"
    snap.mkdir()
    apply_layer(io.BytesIO(data), str(snap), mode="overlay")
    st = os.lstat(snap / "etc" / "shadow")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(snap / "opt", "trusted.overlay.opaque") == b"y"
    m2 = tmp_path / "m2"
    m2.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={snap}:{lower}", str(m2)], check=True)
    try:
        assert sorted(os.listdir(m2 / "etc")) == ["passwd"]
        assert (m2 / "etc" / "passwd").read_text() == "root\nuser\n"
        assert os.listdir(m2 / "opt") == ["new"]
        assert os.listdir(m2 / "var") == []
        assert os.listdir(m2 / "srv") == ["keep"]
    finally:
        subprocess.run(["umount", str(m2)], check=True)

    # merge mode applies them to a copy of the lower dir
    merged_copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(lower), str(merged_copy)], check=True)
    apply_layer(io.BytesIO(data), str(merged_copy), mode="merge")
    assert sorted(os.listdir(merged_copy / "etc")) == ["passwd"]
    assert os.listdir(merged_copy / "opt") == ["new"]
    assert os.listdir(merged_copy / "var") == []
    assert os.listdir(merged_copy / "srv") == ["keep"]


def _tar(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, typ, payload in members:
            ti = tarfile.TarInfo(name)
            ti.type = typ
            ti.mode = 0o755 if typ == tarfile.DIRTYPE else 0o644
            if typ == tarfile.REGTYPE:
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
            else:
                if payload is not None:
                    ti.linkname = payload
                tf.addfile(ti)
    return buf.getvalue()


def test_merge_whiteouts_and_opaque(tmp_path):
    root = tmp_path / "root"
    apply_layer(io.BytesIO(_tar([
        ("a/", tarfile.DIRTYPE, None), ("a/x", tarfile.REGTYPE, b"x"), ("a/y", tarfile.REGTYPE, b"y"),
        ("a/sub/", tarfile.DIRTYPE, None), ("a/sub/z", tarfile.REGTYPE, b"z"),
        ("b/", tarfile.DIRTYPE, None), ("b/gone", tarfile.REGTYPE, b"g"), ("b/stay", tarfile.REGTYPE, b"s"),
        ("c", tarfile.REGTYPE, b"c")])), str(_mk(root)), mode="merge")
    apply_layer(io.BytesIO(_tar([
        ("a/", tarfile.DIRTYPE, None),
        ("a/y", tarfile.REGTYPE, b"new y"),        # before the marker: must survive it
        ("a/.wh..wh..opq", tarfile.REGTYPE, b""),
        ("a/sub/", tarfile.DIRTYPE, None),         # kept dir, but its old children go
        ("a/sub/w", tarfile.REGTYPE, b"w"),
        ("b/.wh.gone", tarfile.REGTYPE, b""),
        (".wh.c", tarfile.REGTYPE, b""),
        (".wh.never-existed", tarfile.REGTYPE, b""),
        ("d", tarfile.REGTYPE, b"d"),
        (".wh.d", tarfile.REGTYPE, b""),           # a whiteout never hides its own layer
    ])), str(root), mode="merge")
    assert sorted(os.listdir(root / "a")) == ["sub", "y"]
    assert (root / "a" / "y").read_bytes() == b"new y"
    assert os.listdir(root / "a" / "sub") == ["w"]
    assert os.listdir(root / "b") == ["stay"]
    assert sorted(os.listdir(root)) == ["a", "b", "d"]


def test_overlay_mode_whiteouts(tmp_path):
    root = _mk(tmp_path / "snap")
    apply_layer(io.BytesIO(_tar([
        ("etc/.wh.shadow", tarfile.REGTYPE, b""),
        ("opt/", tarfile.DIRTYPE, None), ("opt/.wh..wh..opq", tarfile.REGTYPE, b""),
        ("opt/n", tarfile.REGTYPE, b"n")])), str(root), mode="overlay")
    st = os.lstat(root / "etc" / "shadow")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (root / "etc" / ".wh.shadow").exists()
    assert os.getxattr(root / "opt", "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(root / "opt" / ".wh..wh..opq")
    assert os.listdir(root / "opt") == ["n"]


def test_replacement_rules(tmp_path):
    root = _mk(tmp_path / "r")
    apply_layer(io.BytesIO(_tar([
        ("d/", tarfile.DIRTYPE, None), ("d/f", tarfile.REGTYPE, b"1"),
        ("f", tarfile.REGTYPE, b"file"), ("s", tarfile.SYMTYPE, "d")])), str(root), mode="merge")
    ti_dir_mode = 0o700
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("d")
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, ti_dir_mode, 12345
        tf.addfile(ti)                                    # dir over dir: kept, metadata updated
        for name, typ in (("f", tarfile.DIRTYPE), ("s", tarfile.REGTYPE)):
            ti = tarfile.TarInfo(name)
            ti.type = typ
            tf.addfile(ti)                                # non-dir over symlink, dir over file
    apply_layer(io.BytesIO(buf.getvalue()), str(root), mode="merge")
    assert (root / "d" / "f").read_bytes() == b"1"
    assert stat.S_IMODE(os.stat(root / "d").st_mode) == ti_dir_mode
    assert os.stat(root / "d").st_mtime == 12345           # set after its children
    assert (root / "f").is_dir()
    assert not (root / "s").is_symlink() and (root / "s").is_file()


def test_missing_parents_are_created(tmp_path):
    root = _mk(tmp_path / "r")
    apply_layer(io.BytesIO(_tar([("a/b/c/file", tarfile.REGTYPE, b"deep")])), str(root), mode="overlay")
    assert (root / "a" / "b" / "c" / "file").read_bytes() == b"deep"
    assert stat.S_IMODE(os.stat(root / "a").st_mode) == 0o755


def test_check_only_touches_nothing(tmp_path):
    res = apply_layer(io.BytesIO(_tar([("a/", tarfile.DIRTYPE, None), ("a/f", tarfile.REGTYPE, b"123")])),
                      str(tmp_path / "does-not-exist"), mode="merge", check_only=True)
    assert (res.entries, res.content_size) == (2, 3)
    assert not (tmp_path / "does-not-exist").exists()


def _mk(p):
    p.mkdir(parents=True, exist_ok=True)
    return p
