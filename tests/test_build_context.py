"""Build context: source resolution, checksum semantics, the persistent hash cache."""

import os

import pytest

from lamina.builder.context import Context
from lamina.dockerfile.ignore import Matcher
from lamina.errors import InvalidArgument


@pytest.fixture
def ctxdir(tmp_path):
    root = tmp_path / "ctx"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "main.py").write_text("print('hi')\n")
    (root / "src" / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "README.md").write_text("readme\n")
    (root / "a.txt").write_text("a\n")
    (root / "b.txt").write_text("b\n")
    (root / ".hidden.txt").write_text("h\n")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_bytes(b"\0" * 10)
    (root / "build" / "keep.txt").write_text("keep\n")
    os.symlink("src/main.py", root / "link.py")
    os.symlink("../../etc/passwd", root / "escape")
    return root


def make(root, tmp_path, ignore=None, **kw):
    return Context(str(root), ignore=ignore, cache_path=str(tmp_path / "cache" / "hash.db"),
                   racy_window_ns=0, **kw)


def checksum(ctx, *srcs):
    return ctx.checksum(ctx.resolve(list(srcs)))


def test_touch_keeps_edit_changes(ctxdir, tmp_path):
    ctx = make(ctxdir, tmp_path)
    c0 = checksum(ctx, ".")
    st = os.stat(ctxdir / "a.txt")
    os.utime(ctxdir / "a.txt", ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))
    assert checksum(make(ctxdir, tmp_path), ".") == c0
    (ctxdir / "a.txt").write_text("A\n")  # same size, one byte differs
    assert checksum(make(ctxdir, tmp_path), ".") != c0


def test_chmod_symlink_and_structure_change_it(ctxdir, tmp_path):
    c0 = checksum(make(ctxdir, tmp_path), ".")
    os.chmod(ctxdir / "b.txt", 0o755)
    c1 = checksum(make(ctxdir, tmp_path), ".")
    assert c1 != c0
    os.remove(ctxdir / "link.py")
    os.symlink("src/pkg/mod.py", ctxdir / "link.py")
    c2 = checksum(make(ctxdir, tmp_path), ".")
    assert c2 != c1
    (ctxdir / "emptydir").mkdir()
    c3 = checksum(make(ctxdir, tmp_path), ".")
    assert c3 != c2
    # ownership is not copied (COPY and ADD reset it), so it is not in the key: Docker hits
    os.chown(ctxdir / "a.txt", 1234, 1234)
    assert checksum(make(ctxdir, tmp_path), ".") == c3


def test_ignored_file_changes_nothing(ctxdir, tmp_path):
    ign = Matcher.from_lines(["build", "!build/keep.txt", "*.md"])
    c0 = checksum(make(ctxdir, tmp_path, ign), ".")
    (ctxdir / "build" / "out.o").write_bytes(b"changed")
    (ctxdir / "README.md").write_text("other\n")
    (ctxdir / "new.md").write_text("new\n")
    assert checksum(make(ctxdir, tmp_path, ign), ".") == c0
    (ctxdir / "build" / "keep.txt").write_text("changed\n")
    assert checksum(make(ctxdir, tmp_path, ign), ".") != c0


def test_excluded_sources_are_invisible(ctxdir, tmp_path):
    ctx = make(ctxdir, tmp_path, Matcher.from_lines(["*.md", "build", "!build/keep.txt"]))
    with pytest.raises(InvalidArgument, match=r'failed to compute cache key: "/README.md" not found'):
        ctx.resolve(["README.md"])
    assert [s.name for s in ctx.resolve(["*"])] == [
        ".hidden.txt", "a.txt", "b.txt", "build", "link.py", "src"]  # dangling "escape" too
    m = ctx.manifest(ctx.resolve(["build"]))
    assert sorted(m) == ["build", "build/keep.txt"]


def test_wildcards_follow_go_match(ctxdir, tmp_path):
    ctx = make(ctxdir, tmp_path)
    names = [s.name for s in ctx.resolve(["*.txt"])]
    assert names == [".hidden.txt", "a.txt", "b.txt"]  # Go's * matches a leading dot
    assert [s.name for s in ctx.resolve(["[ab].txt"])] == ["a.txt", "b.txt"]
    assert [s.name for s in ctx.resolve(["[^a].txt"])] == ["b.txt"]
    assert [s.name for s in ctx.resolve(["?.txt"])] == ["a.txt", "b.txt"]
    assert [s.name for s in ctx.resolve(["src/*/mod.py"])] == ["src/pkg/mod.py"]
    with pytest.raises(InvalidArgument, match=r'"/\*.nothing" not found'):
        ctx.resolve(["*.nothing"])


def test_directory_sources_cover_contents(ctxdir, tmp_path):
    ctx = make(ctxdir, tmp_path)
    m = ctx.manifest(ctx.resolve(["src"]))
    assert sorted(m) == ["src", "src/main.py", "src/pkg", "src/pkg/mod.py"]
    assert m["src/pkg"].startswith("dir ") and m["src/main.py"].startswith("file 644 ")
    c0 = ctx.checksum(ctx.resolve(["src"]))
    (ctxdir / "a.txt").write_text("outside the source\n")
    assert make(ctxdir, tmp_path).checksum(ctx.resolve(["src"])) == c0


def test_escape_attempts_rejected_or_clamped(ctxdir, tmp_path):
    ctx = make(ctxdir, tmp_path)
    for bad in ("../x", "src/../../x", ".."):
        with pytest.raises(InvalidArgument, match="outside the build context: " + bad.replace(".", r"\.")):
            ctx.resolve([bad])
    # an absolute source is relative to the context; a symlink pointing out stays inside
    assert ctx.resolve(["/a.txt"])[0].relpath == "a.txt"
    with pytest.raises(InvalidArgument, match='"/escape" not found'):
        ctx.resolve(["escape"])  # -> <ctx>/etc/passwd, which does not exist
    src = ctx.resolve(["link.py"])[0]
    assert src.relpath == "src/main.py" and src.name == "link.py"


def test_warm_checksum_reads_no_content(ctxdir, tmp_path):
    ctx = make(ctxdir, tmp_path)
    c0 = checksum(ctx, ".")
    assert ctx.stats.files_hashed > 0
    ctx.close()
    ctx2 = make(ctxdir, tmp_path)
    c1, old = ctx2.checksum_with_manifest(ctx2.resolve(["."]))
    assert c1 == c0
    assert ctx2.stats.files_hashed == 0 and ctx2.stats.bytes_hashed == 0
    assert ctx2.stats.cache_hits == ctx.stats.files_hashed
    (ctxdir / "src" / "main.py").write_text("print('changed')\n")
    ctx3 = make(ctxdir, tmp_path)
    new = ctx3.manifest(ctx3.resolve(["."]))
    assert ctx3.stats.files_hashed == 1
    assert Context.explain(old, new) == ["changed: src/main.py (content)"]


def test_racy_files_are_not_cached(ctxdir, tmp_path):
    ctx = Context(str(ctxdir), ignore=None, cache_path=str(tmp_path / "c.db"),
                  racy_window_ns=3600 * 10**9)
    checksum(ctx, ".")
    ctx2 = Context(str(ctxdir), ignore=None, cache_path=str(tmp_path / "c.db"))
    checksum(ctx2, ".")
    assert ctx2.stats.cache_hits == 0


def test_explain_reports_add_remove_mode():
    old = {"a": "file 644 sha256:1", "b": "file 644 sha256:2", "l": "symlink -> x"}
    new = {"a": "file 755 sha256:1", "c": "dir 755", "l": "symlink -> y"}
    assert Context.explain(old, new) == [
        "changed: a (mode)", "removed: b", "added: c", "changed: l (target)"]


def test_no_cache_path_still_works(ctxdir):
    ctx = Context(str(ctxdir), ignore=None, cache_path=None)
    assert len(checksum(ctx, ".")) == 64
