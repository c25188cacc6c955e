"""No stale cache hit, ever (issue 8): each class of stale hit found against lamina, reproduced.

Every test builds, changes the context the way a user would, builds again and asserts that
the image holds what the context holds (Docker gets all of them right). Most go through the
replay of fully cached builds (builder/fastpath.py); the races use the builder's pause points
(lamina/testhook.py) instead of timing: the test edits a file exactly between two steps of
the builder.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import threading

from conftest import mkctx


def cat(lam, image: str, *paths: str) -> str:
    return lam("run", "--rm", image, "cat", *paths).out


def build_id(lam, ctx, *args) -> str:
    return lam("build", "-q", *args, str(ctx)).out.strip()


class Pause:
    """One pause point of a lamina process (see lamina/testhook.py)."""

    def __init__(self, tmp_path, point: str, nth: int = 1) -> None:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"pause-{point}-{nth}-", dir=tmp_path))
        os.mkfifo(self.dir / "reached")
        os.mkfifo(self.dir / "resume")
        self.spec = f"{point}#{nth}={self.dir}"

    def run(self, lam, *args: str):
        """Start ``lamina *args`` and return once it stopped at the point."""
        env = {**lam.env, "LAMINA_TEST_PAUSE": self.spec}
        self.proc = subprocess.Popen([*_cli(), *args], env=env, cwd=lam.env["PYTHONPATH"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.append(open(self.dir / "reached").read()))
        reader.start()
        while reader.is_alive():
            reader.join(0.2)
            if self.proc.poll() is not None and reader.is_alive():
                open(self.dir / "reached", "w").close()  # unblock the reader: it never came
                reader.join()
                out, err = self.proc.communicate()
                raise AssertionError(f"lamina {' '.join(args)} exited ({self.proc.returncode}) "
                                     f"before the pause point:\n{err.decode()}\n{out.decode()}")
        assert got and got[0].strip(), got

    def resume(self) -> str:
        open(self.dir / "resume", "w").close()
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, err.decode()
        return out.decode()


def _cli() -> list[str]:
    return [sys.executable, "-m", "lamina"]


# -- 1. the context path is a symlink that is re-pointed ----------------------------------------

def test_context_symlink_repointed(bb, tmp_path):
    df = "FROM busybox\nCOPY f /f\n"
    (tmp_path / "r").mkdir()
    mkctx(tmp_path / "r", df, {"f": "one\n"}, name="v1")
    mkctx(tmp_path / "r", df, {"f": "two\n"}, name="v2")
    cur = tmp_path / "current"
    os.symlink("r/v1", cur)
    for _ in range(2):  # the second one is replayed
        bb("build", "-q", "-t", "sym", str(cur))
    assert cat(bb, "sym", "/f") == "one\n"
    os.unlink(cur)
    os.symlink("r/v2", cur)
    bb("build", "-q", "-t", "sym", str(cur))
    assert cat(bb, "sym", "/f") == "two\n"


# -- 2. a wildcard in a middle path component ----------------------------------------------------

def test_wildcard_middle_component_new_match(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY src/*/x.* /dst/\n", {"src/a/x.1": "1\n", "src/b/other": "o\n"})
    for _ in range(2):
        bb("build", "-q", "-t", "wild", str(ctx))
    (ctx / "src" / "b" / "x.2").write_text("2\n")
    bb("build", "-q", "-t", "wild", str(ctx))
    assert bb("run", "--rm", "wild", "ls", "/dst").out.split() == ["x.1", "x.2"]


# -- 3. a symlink chain through a directory nothing else reads ----------------------------------

def test_symlink_chain_retargeted(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY l1 /f\n", {"f1": "one\n", "f2": "two\n"})
    (ctx / "sub").mkdir()
    os.symlink("sub/l2", ctx / "l1")
    os.symlink("../f1", ctx / "sub" / "l2")
    for _ in range(2):
        bb("build", "-q", "-t", "chain", str(ctx))
    assert cat(bb, "chain", "/f") == "one\n"
    os.unlink(ctx / "sub" / "l2")
    os.symlink("../f2", ctx / "sub" / "l2")
    bb("build", "-q", "-t", "chain", str(ctx))
    assert cat(bb, "chain", "/f") == "two\n"


# -- 4. a .dockerignore exception whose file appears later --------------------------------------

def test_dockerignore_exception_file_appears(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY . /app\n",
                {".dockerignore": "Dockerfile\nbuild\n!build/keep*\n", "build/other": "x\n", "a": "a\n"})
    for _ in range(2):
        bb("build", "-q", "-t", "ign", str(ctx))
    assert bb("run", "--rm", "ign", "find", "/app").out.split() == ["/app", "/app/.dockerignore", "/app/a"]
    (ctx / "build" / "keep2").write_text("k\n")
    bb("build", "-q", "-t", "ign", str(ctx))
    assert cat(bb, "ign", "/app/build/keep2") == "k\n"


# -- 5. a file edited while a fully cached build runs -------------------------------------------

def test_file_edited_during_a_cached_build(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n", {"f": "one\n"})
    bb("build", "-q", "-t", "mid", str(ctx))
    p = Pause(tmp_path, "copy-hashed")
    p.run(bb, "build", "-q", "-t", "mid", str(ctx))   # every step hits; f was just checked
    (ctx / "f").write_text("two\n")
    p.resume()
    for _ in range(2):  # neither this build nor a replay of it may serve "one"
        bb("build", "-q", "-t", "mid", str(ctx))
        assert cat(bb, "mid", "/f", "/g") == "two\ntwo\n"


# -- 6. cache poisoning: edited between hashing and copying --------------------------------------

def test_edit_between_hash_and_copy_does_not_poison(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY f /f\n", {"f": "one\n"})
    p = Pause(tmp_path, "copy-hashed")
    p.run(bb, "build", "-q", "-t", "poison", str(ctx))  # cold: f hashed as "one", not yet copied
    (ctx / "f").write_text("two\n")
    p.resume()
    assert cat(bb, "poison", "/f") == "two\n"         # what was copied (the build saw "two")
    (ctx / "f").write_text("one\n")
    bb("build", "-q", "-t", "other", str(ctx))
    assert cat(bb, "other", "/f") == "one\n"          # not the layer of "two" under "one"'s key


# -- 7. --no-cache / builder prune, then a plain build ------------------------------------------

def test_plain_build_after_no_cache_keeps_the_newest(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nRUN date +%s%N > /stamp\n")
    first = build_id(bb, ctx, "-t", "nc")
    assert build_id(bb, ctx, "-t", "nc") == first     # replayed
    fresh = build_id(bb, ctx, "--no-cache", "-t", "nc")
    assert fresh != first
    assert build_id(bb, ctx, "-t", "nc") == fresh     # the full builder would hit the fresh rows
    assert bb("images", "-q", "--no-trunc", "nc").out.strip() == fresh


def test_plain_build_after_builder_prune(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nRUN date +%s%N > /stamp\n")
    first = build_id(bb, ctx, "-t", "bp")
    build_id(bb, ctx, "-t", "bp")
    bb("builder", "prune", "-f")
    second = build_id(bb, ctx, "-t", "bp")
    assert build_id(bb, ctx, "-t", "bp") == second
    assert second != first or bb("history", "-q", "bp").out  # (a re-run RUN makes a new image)


# -- wrong misses --------------------------------------------------------------------------------

def test_chown_only_change_hits(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY f /f\nRUN stat -c %u:%g /f > /owner\n", {"f": "x\n"})
    bb("build", "-q", "-t", "own", str(ctx))
    os.chown(ctx / "f", 1234, 4321)
    r = bb("build", "--progress=plain", "-t", "own", str(ctx))
    assert r.out.count(" ---> Using cache") == 2, r.out
    assert cat(bb, "own", "/owner") == "0:0\n"


def test_unused_secret_keeps_run_steps_cached(bb, tmp_path):
    secret = tmp_path / "s.txt"
    secret.write_text("s3cret")
    ctx = mkctx(tmp_path, "FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n")
    bb("build", "-q", "-t", "sec", str(ctx))
    r = bb("build", "--progress=plain", "--secret", f"id=unused,src={secret}", "-t", "sec", str(ctx))
    assert r.out.count(" ---> Using cache") == 2, r.out
