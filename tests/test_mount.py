"""Tests for lamina.mount: real mounts, so they need root (CI runs as root:
tests/test_ci_environment.py checks; elsewhere they fail, never skip).

Every test that mounts uses the ``target`` fixture, which unmounts everything stacked on
the target afterwards (lazily, so a failing test cannot leave a busy mount behind).
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import threading

import pytest

from lamina import mount as M
from lamina.errors import InvalidArgument, Unavailable


@pytest.fixture
def target(tmp_path):
    t = tmp_path / "mnt"
    t.mkdir()
    try:
        yield str(t)
    finally:
        M.unmount_all(str(t), detach=True)
        assert not M.is_mountpoint(str(t))


def make_layer(path, files: dict[str, str | None] | None = None) -> str:
    """Create a layer dir; value None makes a whiteout (0:0 char device) for that name."""
    os.makedirs(path, exist_ok=True)
    for name, content in (files or {}).items():
        p = os.path.join(path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if content is None:
            os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        else:
            with open(p, "w") as f:
                f.write(content)
    return str(path)


def read(path) -> str:
    with open(path) as f:
        return f.read()


def is_whiteout(path) -> bool:
    st = os.lstat(path)
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def mountinfo_line(target: str) -> str:
    with open("/proc/self/mountinfo") as f:
        lines = [ln for ln in f if ln.split()[4] == target]
    assert lines, f"{target} not in mountinfo"
    return lines[-1]


def writable_overlay(tmp_path, lowers):
    up, wk = tmp_path / "upper", tmp_path / "work"
    up.mkdir()
    wk.mkdir()
    return M.overlay(lowers, upper=str(up), work=str(wk)), str(up)


# ---------------------------------------------------------------------------------------------
# Values (no root needed)


def test_overlay_value_has_diff_options_and_order():
    m = M.overlay(["/a/top", "/a/mid", "/a/bottom"], upper="/u", work="/w")
    assert m.type == "overlay" and m.source == "overlay"
    assert m.options[:3] == ("index=off", "redirect_dir=off", "metacopy=off")
    assert "lowerdir=/a/top:/a/mid:/a/bottom" in m.options
    assert "upperdir=/u" in m.options and "workdir=/w" in m.options
    assert not m.readonly
    assert M.overlay(["/a", "/b"], readonly=True).readonly


def test_overlay_value_escapes_and_round_trips():
    m = M.overlay(["/x/a:b", "/x/c,d", "/x/e\\f"])
    (lower,) = [o for o in m.options if o.startswith("lowerdir=")]
    assert lower == "lowerdir=/x/a\\:b:/x/c\\,d:/x/e\\\\f"
    assert M._parse_overlay(m).lowers == ("/x/a:b", "/x/c,d", "/x/e\\f")


def test_overlay_relative_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = M.overlay(["a", "b"], upper="u", work="w")
    spec = M._parse_overlay(m)
    assert spec.lowers == (str(tmp_path / "a"), str(tmp_path / "b"))
    assert spec.upper == str(tmp_path / "u") and spec.work == str(tmp_path / "w")


def test_single_lower_readonly_is_a_ro_bind():
    assert M.overlay(["/only"]) == M.Mount("bind", "/only", ("ro", "rbind"))


def test_overlay_value_rejects_bad_input():
    with pytest.raises(InvalidArgument, match="at least one"):
        M.overlay([])
    with pytest.raises(InvalidArgument, match="500"):
        M.overlay([f"/l/{i}" for i in range(M.OVL_MAX_STACK + 1)])
    M.overlay([f"/l/{i}" for i in range(M.OVL_MAX_STACK)])  # the limit itself is fine
    with pytest.raises(InvalidArgument, match="together"):
        M.overlay(["/a", "/b"], upper="/u")
    with pytest.raises(InvalidArgument, match="sequence"):
        M.overlay("/a:/b")
    with pytest.raises(InvalidArgument, match="NUL"):
        M.overlay(["/a\0", "/b"])


def test_mount_value_is_frozen_and_options_become_tuple():
    m = M.Mount("tmpfs", "tmpfs", ["size=1m", "mode=755"])
    assert m.options == ("size=1m", "mode=755")
    with pytest.raises(AttributeError):
        m.type = "proc"  # type: ignore[misc]
    with pytest.raises(InvalidArgument):
        M.Mount("tmpfs", "tmpfs", ("",))
    assert hash(m) == hash(M.Mount("tmpfs", "tmpfs", ("size=1m", "mode=755")))


def test_import_is_cheap():
    code = ("import sys, lamina.mount; "
            "print(any(m in sys.modules for m in ('ctypes', 'platform')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# Overlay semantics


def test_new_mount_api_is_used_on_this_kernel():
    # Linux >= 6.8 has fsconfig "lowerdir+"; record which mechanism this host gets.
    release = tuple(int(x) for x in os.uname().release.split(".")[:2] if x.isdigit())
    if release >= (6, 8):
        assert M._new_api_supported()


def test_three_layers_top_wins_and_whiteout_hides(tmp_path, target):
    top = make_layer(tmp_path / "top", {"f": "top", "only-top": "t"})
    mid = make_layer(tmp_path / "mid", {"f": "mid", "gone": None, "m": "m"})
    bottom = make_layer(tmp_path / "bottom", {"f": "bottom", "gone": "bottom", "keep": "b"})
    M.mount_all([M.overlay([top, mid, bottom])], target)
    assert M.is_mountpoint(target)
    assert read(os.path.join(target, "f")) == "top"
    assert not os.path.lexists(os.path.join(target, "gone"))
    assert sorted(os.listdir(target)) == ["f", "keep", "m", "only-top"]
    super_options = mountinfo_line(target).split(" - ")[1].split()[2].split(",")
    assert "ro" in super_options  # no upper dir: the overlay superblock is read-only


def test_upper_is_a_plain_diff(tmp_path, target):
    lower1 = make_layer(tmp_path / "l1", {"a": "1", "dir/x": "x"})
    lower2 = make_layer(tmp_path / "l2", {"b": "2", "c": "3", "old/y": "y"})
    m, upper = writable_overlay(tmp_path, [lower1, lower2])
    M.mount_all([m], target)

    with open(os.path.join(target, "new"), "w") as f:
        f.write("new")
    os.remove(os.path.join(target, "b"))                  # delete a lower file
    with open(os.path.join(target, "c"), "a") as f:       # modify a lower file
        f.write("+")
    os.remove(os.path.join(target, "dir", "x"))           # delete inside a lower dir
    # redirect_dir=off: renaming a lower dir is refused (EXDEV), so no redirect xattr appears
    with pytest.raises(OSError) as exc:
        os.rename(os.path.join(target, "old"), os.path.join(target, "renamed"))
    assert exc.value.errno == errno.EXDEV

    assert read(os.path.join(upper, "new")) == "new"
    assert is_whiteout(os.path.join(upper, "b"))
    assert is_whiteout(os.path.join(upper, "dir", "x"))
    # metacopy=off: a modified file is copied up whole, without a metacopy xattr
    assert read(os.path.join(upper, "c")) == "3+"
    assert read(os.path.join(lower2, "c")) == "3"
    for root, dirs, files in os.walk(upper):
        for name in dirs + files:
            names = os.listxattr(os.path.join(root, name), follow_symlinks=False)
            # trusted.overlay.origin/impure/uuid do appear (inode-number bookkeeping, even
            # with index=off); a diff must skip every trusted.overlay.* but opaque.
            assert not [n for n in names if n in ("trusted.overlay.redirect",
                                                  "trusted.overlay.metacopy")], (name, names)
    assert "index=on" not in mountinfo_line(target)
    assert "metacopy=on" not in mountinfo_line(target)


def test_opaque_dir_hides_lower_contents(tmp_path, target):
    top = make_layer(tmp_path / "top", {"d/new": "n"})
    os.setxattr(os.path.join(top, "d"), "trusted.overlay.opaque", b"y")
    bottom = make_layer(tmp_path / "bottom", {"d/old": "o", "d/sub/deep": "s"})
    M.mount_all([M.overlay([top, bottom])], target)
    assert os.listdir(os.path.join(target, "d")) == ["new"]


def test_replacing_a_lower_dir_makes_an_opaque_dir_in_upper(tmp_path, target):
    lower = make_layer(tmp_path / "l", {"d/old": "o"})
    m, upper = writable_overlay(tmp_path, [lower])
    M.mount_all([m], target)
    d = os.path.join(target, "d")
    os.remove(os.path.join(d, "old"))
    os.rmdir(d)
    os.mkdir(d)
    assert os.listdir(d) == []
    assert os.getxattr(os.path.join(upper, "d"), "trusted.overlay.opaque") == b"y"


def test_200_layers_with_long_paths(tmp_path, target):
    base = tmp_path / ("long-directory-name-" * 4)
    lowers = []
    for i in range(200):
        d = base / f"snapshot-{i:03d}-{'x' * 40}" / "fs"
        lowers.append(make_layer(d, {f"file-{i}": str(i), "shared": str(i)}))
    assert all(len(p) > 60 for p in lowers)
    assert len(":".join(lowers)) > 4 * 4096
    m = M.overlay(lowers)
    M.mount_all([m], target)
    names = os.listdir(target)
    assert len(names) == 201
    for i in range(200):
        assert read(os.path.join(target, f"file-{i}")) == str(i)
    assert read(os.path.join(target, "shared")) == "0"  # lowers[0] is on top


def test_layer_path_longer_than_fsconfig_string_limit(tmp_path, target):
    # fsconfig copies at most 255 bytes of a string; longer paths go in as O_PATH fds.
    deep = tmp_path
    for i in range(6):
        deep = deep / (f"{i}" + "d" * 60)
    top = make_layer(deep, {"f": "deep"})
    assert len(top.encode()) > 255
    bottom = make_layer(tmp_path / "b", {"g": "g"})
    m, upper = writable_overlay(tmp_path, [top, bottom])
    M.mount_all([m], target)
    assert read(os.path.join(target, "f")) == "deep"
    assert read(os.path.join(target, "g")) == "g"


def test_path_with_colon_and_comma(tmp_path, target):
    top = make_layer(tmp_path / "a:b,c", {"f": "top"})
    bottom = make_layer(tmp_path / "plain", {"f": "bottom", "g": "g"})
    M.mount_all([M.overlay([top, bottom])], target)
    assert read(os.path.join(target, "f")) == "top"


def test_read_only_mounts_reject_writes(tmp_path, target):
    a = make_layer(tmp_path / "a", {"f": "a"})
    b = make_layer(tmp_path / "b", {"g": "b"})

    def assert_erofs():
        with pytest.raises(OSError) as exc:
            open(os.path.join(target, "new"), "w").close()
        assert exc.value.errno == errno.EROFS

    M.mount_all([M.overlay([a, b], readonly=True)], target)
    assert_erofs()
    M.unmount(target)

    M.mount_all([M.overlay([a])], target)  # single lower: ro bind mount
    assert read(os.path.join(target, "f")) == "a"
    assert_erofs()
    M.unmount(target)
    with open(os.path.join(a, "still-writable"), "w"):
        pass  # the bind's source is untouched

    m, _ = writable_overlay(tmp_path, [a, b])
    M.mount_all([M.Mount(m.type, m.source, m.options + ("ro",))], target)
    assert_erofs()


# ---------------------------------------------------------------------------------------------
# The classic mount(2) fallback


def test_classic_mount_with_short_relative_paths(tmp_path, target):
    make_layer(tmp_path / "layers" / "1", {"f": "one"})
    make_layer(tmp_path / "layers" / "2", {"f": "two", "g": "g"})
    cwd = os.getcwd()
    seen = []

    def watch():  # another thread's cwd must not move while the mount chdirs
        seen.append(os.getcwd())

    M._mount2("overlay", target, "overlay", 0, "lowerdir=1:2", cwd=str(tmp_path / "layers"))
    t = threading.Thread(target=watch)
    t.start()
    t.join()
    assert os.getcwd() == cwd and seen == [cwd]
    assert read(os.path.join(target, "f")) == "one"
    assert "lowerdir=1:2" in mountinfo_line(target)


def test_classic_overlay_fallback_makes_paths_relative(tmp_path, target):
    base = tmp_path / ("long-directory-name-" * 4) / "snapshots"
    lowers = [make_layer(base / str(i) / "fs", {f"f{i}": str(i)}) for i in range(200)]
    up, wk = tmp_path / "up", tmp_path / "wk"
    up.mkdir()
    wk.mkdir()
    m = M.overlay(lowers, upper=str(up), work=str(wk))
    assert len(",".join(m.options)) > 4096
    M._mount_overlay_classic(M._parse_overlay(m), m.source, target)
    assert "lowerdir=0/fs:1/fs:2/fs" in mountinfo_line(target)
    for i in range(200):
        assert read(os.path.join(target, f"f{i}")) == str(i)
    os.remove(os.path.join(target, "f7"))
    assert is_whiteout(os.path.join(up, "f7"))


def test_mount_all_falls_back_to_classic_without_new_api(tmp_path, target, monkeypatch):
    monkeypatch.setattr(M, "_new_api", False)  # as on a kernel < 6.8
    lower = make_layer(tmp_path / "only", {"f": "x"})
    m, upper = writable_overlay(tmp_path, [lower])  # one lower: relative path is "."
    M.mount_all([m], target)
    assert "lowerdir=.," in mountinfo_line(target)
    os.remove(os.path.join(target, "f"))
    assert is_whiteout(os.path.join(upper, "f"))


def test_classic_fallback_refuses_more_than_a_page(tmp_path, target):
    lowers = [make_layer(tmp_path / f"{i}-{'y' * 60}" / "fs") for i in range(100)]
    spec = M._parse_overlay(M.overlay(lowers))
    with pytest.raises(Unavailable, match="one-page limit"):
        M._mount_overlay_classic(spec, "overlay", target)
    assert not M.is_mountpoint(target)
    M.mount_all([M.overlay(lowers)], target)  # the new API has no such limit
    assert M.is_mountpoint(target)


def test_classic_fallback_names_missing_dir(tmp_path, target):
    a = make_layer(tmp_path / "a")
    spec = M._parse_overlay(M.overlay([a, str(tmp_path / "missing")]))
    with pytest.raises(InvalidArgument, match=r"missing directory .*/missing.*No such file"):
        M._mount_overlay_classic(spec, "overlay", target)


# ---------------------------------------------------------------------------------------------
# Errors


def test_missing_lower_dir_names_the_path(tmp_path, target):
    a = make_layer(tmp_path / "a")
    missing = str(tmp_path / "no-such-layer")
    with pytest.raises(InvalidArgument) as exc:
        M.mount_all([M.overlay([a, missing])], target)
    msg = str(exc.value)
    assert f"overlay mount on {target} failed" in msg
    assert missing in msg and "No such file or directory" in msg
    assert isinstance(exc.value.__cause__, OSError)
    assert exc.value.__cause__.errno == errno.ENOENT
    assert not M.is_mountpoint(target)


def test_missing_upper_dir_and_unknown_option(tmp_path, target):
    a, b = make_layer(tmp_path / "a"), make_layer(tmp_path / "b")
    (tmp_path / "w").mkdir()
    with pytest.raises(InvalidArgument, match="upperdir .*/nope"):
        M.mount_all([M.overlay([a, b], upper=str(tmp_path / "nope"), work=str(tmp_path / "w"))],
                    target)
    bogus = M.Mount("overlay", "overlay", (f"lowerdir={a}:{b}", "bogus=1"))
    with pytest.raises(InvalidArgument, match="bogus"):
        M.mount_all([bogus], target)
    assert not M.is_mountpoint(target)


def test_too_many_layers_in_a_hand_made_mount(tmp_path):
    lowers = ":".join(f"/l/{i}" for i in range(501))
    with pytest.raises(InvalidArgument, match="at most 500"):
        M.mount_all([M.Mount("overlay", "overlay", (f"lowerdir={lowers}",))], str(tmp_path))


def test_mount_all_rolls_back_on_failure(tmp_path, target):
    good = M.Mount("tmpfs", "tmpfs", ("size=1m",))
    bad = M.Mount("bind", str(tmp_path / "missing-source"), ("rbind",))
    with pytest.raises(InvalidArgument, match="missing-source"):
        M.mount_all([good, bad], target)
    assert not M.is_mountpoint(target)


# ---------------------------------------------------------------------------------------------
# Other mount types, unmount, is_mountpoint


def test_tmpfs_and_stacking(tmp_path, target):
    M.mount_all([M.Mount("tmpfs", "tmpfs", ("size=1m", "mode=700", "nosuid")),
                 M.Mount("tmpfs", "tmpfs", ("size=2m",))], target)
    assert "size=2048k" in mountinfo_line(target)
    M.unmount(target)
    line = mountinfo_line(target)
    assert "size=1024k" in line and "mode=700" in line and "nosuid" in line
    M.unmount(target)
    assert not M.is_mountpoint(target)


def test_ro_bind_mount_and_is_mountpoint_within_one_fs(tmp_path, target):
    src = make_layer(tmp_path / "src", {"f": "x"})
    assert not M.is_mountpoint(target)
    M.mount_all([M.Mount("bind", src, ("rbind", "ro"))], target)
    assert M.is_mountpoint(target)  # same st_dev as its parent, still seen
    assert read(os.path.join(target, "f")) == "x"
    with pytest.raises(OSError) as exc:
        open(os.path.join(target, "g"), "w").close()
    assert exc.value.errno == errno.EROFS
    open(os.path.join(src, "g"), "w").close()  # the source stays writable


def test_unmount_errors_and_flags(tmp_path, target):
    with pytest.raises(InvalidArgument, match=f"unmount of {target} failed: umount2"):
        M.unmount(target)
    M.unmount(target, ignore_not_mounted=True)
    M.unmount(str(tmp_path / "nowhere"), ignore_not_mounted=True)

    M.mount_all([M.Mount("tmpfs", "tmpfs", ())], target)
    fd = os.open(os.path.join(target, "busy"), os.O_CREAT | os.O_WRONLY)
    try:
        with pytest.raises(Unavailable, match="busy"):
            M.unmount(target)
        M.unmount(target, detach=True)
        assert not M.is_mountpoint(target)
        os.write(fd, b"still works after a lazy unmount")
    finally:
        os.close(fd)


def test_is_mountpoint_basics(tmp_path):
    assert M.is_mountpoint("/")
    assert os.path.isdir("/proc") and M.is_mountpoint("/proc")
    assert not M.is_mountpoint(str(tmp_path))
    assert not M.is_mountpoint(str(tmp_path / "missing"))
    os.symlink("/proc", tmp_path / "link")
    assert not M.is_mountpoint(str(tmp_path / "link"))  # symlinks are not followed
