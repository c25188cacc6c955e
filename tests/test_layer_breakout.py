"""Safe extraction: tars that try to write outside the root (cases after moby's
pkg/archive and containerd's archive breakout tests).

Every case extracts into ``tmp/root`` next to a sentinel directory ``tmp/victim``; it
asserts the error (or the safe, in-root result) AND that nothing outside ``root`` changed.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from lamina.errors import InvalidArgument
from lamina.layer.extract import apply_layer, check_member
from lamina.safepath import clean_path

REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


def tar(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, typ, payload in members:
            ti = tarfile.TarInfo(name)
            ti.type = typ
            ti.mode = 0o777 if typ == DIR else 0o666
            ti.uid = ti.gid = 4242
            if typ == REG:
                payload = payload or b"pwned"
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
            else:
                if payload is not None:
                    ti.linkname = payload
                tf.addfile(ti)
    return buf.getvalue()


def state(top, skip):
    """Everything under ``top`` except ``skip``: names, types, modes, owners, mtimes, data."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == str(skip) or dirpath.startswith(str(skip) + "/"):
            continue
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if p == str(skip):
                continue
            st = os.lstat(p)
            rec = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink,
                   tuple(sorted(os.listxattr(p, follow_symlinks=False))))
            if stat.S_ISREG(st.st_mode):
                rec += (open(p, "rb").read(),)
            out[p] = rec
    return out


@pytest.fixture
def env(tmp_path):
    root = tmp_path / "root"
    victim = tmp_path / "victim"
    root.mkdir()
    victim.mkdir()
    (victim / "hello").write_text("sentinel\n")
    (victim / "sub").mkdir()
    (victim / "sub" / "keep").write_text("keep\n")
    before = state(tmp_path, root)
    etc_before = os.lstat("/etc/passwd")

    class Env:
        pass

    e = Env()
    e.root, e.victim, e.tmp = root, victim, tmp_path

    def unchanged():
        assert state(tmp_path, root) == before
        after = os.lstat("/etc/passwd")
        assert (after.st_ino, after.st_nlink, after.st_mtime_ns) == (
            etc_before.st_ino, etc_before.st_nlink, etc_before.st_mtime_ns)

    e.unchanged = unchanged
    return e


def apply(env, members, mode="merge"):
    return apply_layer(io.BytesIO(tar(members)), str(env.root), mode=mode)


MODES = ["merge", "overlay"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["../victim/dotdot", "a/../../victim/dotdot", "/../victim/slash-dotdot",
                                  "./../victim/x", "a/b/../../../victim/x"])
def test_dotdot_names_rejected(env, mode, name):
    with pytest.raises(InvalidArgument, match="escapes the root"):
        apply(env, [(name, REG, None)], mode)
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_absolute_names_are_relative(env, mode):
    apply(env, [("/etc/", DIR, None), ("/etc/passwd", REG, b"inside\n")], mode)
    assert (env.root / "etc" / "passwd").read_bytes() == b"inside\n"
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", ["../victim/hello", "../../etc/passwd", "a/../../victim/hello"])
def test_hardlink_escaping_rejected(env, mode, target):
    with pytest.raises(InvalidArgument, match="escapes the root"):
        apply(env, [("dotdot", LNK, target)], mode)
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_absolute_hardlink_target_stays_inside(env, mode):
    with pytest.raises(InvalidArgument, match="does not exist"):
        apply(env, [("hl", LNK, "/etc/passwd")], mode)
    env.unchanged()
    apply(env, [("etc/", DIR, None), ("etc/passwd", REG, b"in-root\n"), ("hl", LNK, "/etc/passwd")], mode)
    assert os.path.samefile(env.root / "hl", env.root / "etc" / "passwd")
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_symlink_to_root_then_write_through_it(env, mode):
    victim_rel = str(env.victim).lstrip("/")
    apply(env, [("a", SYM, "/"), (f"a/{victim_rel}/hello", REG, b"pwned"),
                ("b", SYM, str(env.victim)), ("b/pwned", REG, b"pwned")], mode)
    # both resolved inside root: root/<victim path>/...
    assert (env.root / victim_rel / "hello").read_bytes() == b"pwned"
    assert (env.root / victim_rel / "pwned").read_bytes() == b"pwned"
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_symlink_up_and_out(env, mode):
    apply(env, [("a", SYM, "../../.."), ("a/x", REG, b"x"),
                ("victim", SYM, "../victim"), ("victim2/", DIR, None)], mode)
    assert (env.root / "x").read_bytes() == b"x"  # ../../.. from root is root
    env.unchanged()
    # a dangling symlink used as a parent directory is an error, not a write elsewhere
    with pytest.raises(InvalidArgument, match="loophole"):
        apply(env, [("loophole", SYM, "../victim"), ("loophole/pwned", REG, None)], mode)
    env.unchanged()
    # once the tar itself creates root/victim, writing through the link lands there
    apply(env, [("victim/", DIR, None), ("loophole2", SYM, "../victim"), ("loophole2/hello", REG, b"p")],
          mode)
    assert (env.root / "victim" / "hello").read_bytes() == b"p"
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_symlink_loops(env, mode):
    with pytest.raises(InvalidArgument, match="loop"):
        apply(env, [("loop", SYM, "loop"), ("loop/x", REG, None)], mode)
    with pytest.raises(InvalidArgument):
        apply(env, [("l1", SYM, "l2"), ("l2", SYM, "l1"), ("l1/x", REG, None)], mode)
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_hardlink_to_symlink_pointing_outside(env, mode):
    hello = str(env.victim / "hello")
    apply(env, [("s", SYM, hello), ("h", LNK, "s")], mode)
    st = os.lstat(env.root / "h")
    assert stat.S_ISLNK(st.st_mode) and os.readlink(env.root / "h") == hello
    # replacing / writing over the links never follows them
    apply(env, [("h", REG, b"over h"), ("s", REG, b"over s")], mode)
    assert (env.root / "h").read_bytes() == b"over h"
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_hardlink_through_symlinked_parent(env, mode):
    with pytest.raises(InvalidArgument, match="does not exist"):
        apply(env, [("s", SYM, str(env.victim)), ("h", LNK, "s/hello")], mode)
    with pytest.raises(InvalidArgument, match="does not exist"):
        apply(env, [("up", SYM, "../victim"), ("h2", LNK, "up/hello")], mode)
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_dir_and_metadata_never_follow_symlinks(env, mode):
    # dir entry over a symlink to the victim: the symlink is replaced, victim keeps its mode
    apply(env, [("d", SYM, str(env.victim)), ("d/", DIR, None), ("d/f", REG, None),
                ("s", SYM, str(env.victim / "hello")), ("s", REG, b"replaced")], mode)
    assert (env.root / "d").is_dir() and not (env.root / "d").is_symlink()
    env.unchanged()


def test_merge_whiteouts_through_symlinks(env):
    """Whiteouts under a symlinked parent resolve inside root, like every other path: they
    delete the in-root targets, never the host's."""
    victim_rel = str(env.victim).lstrip("/")
    # the in-root copies of the paths the links point at
    apply(env, [(f"{victim_rel}/", DIR, None), (f"{victim_rel}/hello", REG, b"1"),
                (f"{victim_rel}/other", REG, b"2"), (f"{victim_rel}/third", REG, b"3"),
                ("victim/", DIR, None), ("victim/sub/", DIR, None), ("victim/sub/keep", REG, b"k"),
                ("victim/stays", REG, b"s")], "merge")
    inroot = env.root / victim_rel
    apply(env, [("s", SYM, str(env.victim)), ("s/.wh.hello", REG, b"")], "merge")
    assert sorted(os.listdir(inroot)) == ["other", "third"]
    apply(env, [("t", SYM, "/"), (f"t/{victim_rel}/.wh.other", REG, b"")], "merge")
    assert sorted(os.listdir(inroot)) == ["third"]
    apply(env, [("v", SYM, "../victim"), ("v/.wh.sub", REG, b"")], "merge")
    assert sorted(os.listdir(env.root / "victim")) == ["stays"]
    apply(env, [("u", SYM, str(env.victim)), ("u/.wh..wh..opq", REG, b"")], "merge")
    assert os.listdir(inroot) == [] and inroot.is_dir()
    assert not any(n.startswith(".wh.") for _, ds, fs in os.walk(env.root) for n in ds + fs)
    env.unchanged()


def test_overlay_opaque_through_symlink(env):
    # the link's target does not exist inside root: an error, nothing written anywhere
    with pytest.raises(InvalidArgument, match="dangling"):
        apply(env, [("u", SYM, str(env.victim)), ("u/.wh..wh..opq", REG, b"")], "overlay")
    env.unchanged()
    victim_rel = str(env.victim).lstrip("/")
    apply(env, [(f"{victim_rel}/", DIR, None), ("u", SYM, str(env.victim)),
                ("u/.wh..wh..opq", REG, b""), ("w", SYM, "/"),
                (f"w/{victim_rel}/.wh.hello", REG, b"")], "overlay")
    env.unchanged()
    # the marks landed inside root
    assert os.getxattr(env.root / victim_rel, "trusted.overlay.opaque") == b"y"
    assert stat.S_ISCHR(os.lstat(env.root / victim_rel / "hello").st_mode)
    assert "trusted.overlay.opaque" not in os.listxattr(env.victim)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,needle", [
    ("a/.wh..wh.plnk", "whiteout"), (".wh..", "whiteout"), ("a/.wh...", "whiteout"),
    ("a/.wh.", "whiteout"), (".wh.dir/x", "whiteout"),
])
def test_bad_whiteouts_rejected(env, mode, name, needle):
    with pytest.raises(InvalidArgument, match=needle):
        apply(env, [(name, REG, b"")], mode)
    env.unchanged()


@pytest.mark.parametrize("mode", MODES)
def test_file_named_as_root_rejected(env, mode):
    with pytest.raises(InvalidArgument, match="root"):
        apply(env, [("./", REG, b"x")], mode)
    env.unchanged()


def test_check_member_unit():
    assert check_member("/abs/x", "", b"0") == "abs/x"
    assert check_member("./a/./b/", "", b"5") == "a/b"
    assert check_member("a/../b", "", b"0") == "b"
    assert check_member("./", "", b"5") == "."
    assert check_member("a/.wh..wh..opq", "", b"0") == "a/.wh..wh..opq"
    assert check_member("l", "/anywhere/../../at/all", b"2") == "l"  # symlinks: any target
    assert check_member("h", "/etc/passwd", b"1") == "h"
    for name, link, typ in [("", "", b"0"), ("a\x00b", "", b"0"), ("h", "a\x00", b"1"),
                            ("../x", "", b"0"), ("h", "", b"1"), ("h", "/", b"1"),
                            ("h", "../../x", b"1"), ("s", "", b"2"), (".", "", b"0")]:
        with pytest.raises(InvalidArgument):
            check_member(name, link, typ)
    assert clean_path("a/b/../../..") is None


def test_error_message_names_entry(env):
    with pytest.raises(InvalidArgument) as ei:
        apply(env, [("ok", REG, None), ("x/../../escape-me", REG, None)])
    assert "x/../../escape-me" in str(ei.value) and "\n" not in str(ei.value)
