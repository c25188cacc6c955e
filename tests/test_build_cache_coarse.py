"""Issue 8, case 8: a filesystem with 1-second timestamps (ext4 with 128-byte inodes, like
FAT and many network filesystems). A same-size edit within the second of the file's last
change keeps its whole stat key (inode, size, mtime, ctime), so neither the context-hash
cache nor the replay of a cached build may trust an entry that recent: the racy window
follows the filesystem's timestamp granularity (git's "racily clean" rule).

The context lives on a real loop-mounted ext4 made with ``mkfs.ext4 -I 128``. Editing "in
the same second" is arranged, not hoped for: each attempt waits for a fresh second on the
clock, and keeps its result only if the edited file's ctime really did not change (else it
tries again, a bounded number of times). The builder's pause points (lamina/testhook.py)
place the edit exactly between two steps of the build.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from conftest import mkctx, need_tool
from test_build_cache_stale import Pause, cat

ATTEMPTS = 12


@pytest.fixture
def coarse_dir(tmp_path):
    need_tool("mkfs.ext4")
    need_tool("mount")
    need_tool("umount")
    img = tmp_path / "coarse.img"
    with open(img, "wb") as f:
        f.truncate(64 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-I", "128", str(img)], check=True, capture_output=True)
    mnt = tmp_path / "coarse"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], check=True, capture_output=True)
    try:
        probe = mnt / "probe"
        probe.write_text("x")
        st = os.stat(probe)
        assert st.st_ctime_ns % 10**9 == 0 and st.st_mtime_ns % 10**9 == 0, "not a 1-second filesystem"
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True, capture_output=True)


def _fresh_second() -> None:
    """Return right after the wall clock entered a new second (a condition on the clock)."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.005)


def _same_second_edit(f, old: str, new: str, run_until_paused, p: Pause) -> bool:
    """Write ``old``, run the build to its pause point, write ``new`` (same size), let it go.
    True when the edit really kept the file's ctime (same second)."""
    assert len(old) == len(new)
    _fresh_second()
    f.write_text(old)
    before = os.stat(f).st_ctime_ns
    run_until_paused()
    f.write_text(new)
    same = os.stat(f).st_ctime_ns == before
    p.resume()
    return same


def test_hash_cache_on_coarse_timestamps(bb, tmp_path, coarse_dir):
    """COPY f hashed and copied, then (paused at the next COPY) f edited in the same second:
    the next build must not take f's digest from the hash cache."""
    ctx = mkctx(coarse_dir, "FROM busybox\nCOPY f /f\nCOPY g /g\n", {"g": "g\n"})
    for attempt in range(ATTEMPTS):
        old, new = f"old-{attempt:03d}\n", f"new-{attempt:03d}\n"
        p = Pause(tmp_path, "copy-hashed", nth=2)
        if _same_second_edit(ctx / "f", old, new, lambda: p.run(bb, "build", "-q", "-t", "coarse", str(ctx)), p):
            break
    else:
        pytest.fail(f"no build reached its pause point within the second of the write in {ATTEMPTS} tries")
    bb("build", "-q", "-t", "coarse", str(ctx))
    assert cat(bb, "coarse", "/f") == new


def test_replay_on_coarse_timestamps(bb, tmp_path, coarse_dir):
    """A fully cached build right after a write records no replay memo for that file: an edit
    in the same second must be seen by the next build."""
    ctx = mkctx(coarse_dir, "FROM busybox\nCOPY f /f\n", {"f": "value-one\n"})
    bb("build", "-q", "-t", "coarse", str(ctx))          # the cache now holds "value-one"
    for attempt in range(ATTEMPTS):
        p = Pause(tmp_path, "build-done")
        if _same_second_edit(ctx / "f", "value-one\n", f"value-{attempt:03d}\n",
                             lambda: p.run(bb, "build", "-q", "-t", "coarse", str(ctx)), p):
            break
    else:
        pytest.fail(f"no build finished within the second of the write in {ATTEMPTS} tries")
    bb("build", "-q", "-t", "coarse", str(ctx))
    assert cat(bb, "coarse", "/f") == f"value-{attempt:03d}\n"
