"""The build cache, as hit/miss sequences read from the classic output.

Each build's output is reduced to one letter per step: ``F`` for FROM, ``C`` for a step
served from the cache (`` ---> Using cache``), ``R`` for a step that ran. Docker's rules
(classic builder; BuildKit's are the same for these cases):

- a step hits when its parent image and its inputs are unchanged; after the first miss every
  later step misses (their parents are new images);
- COPY/ADD inputs are the sources' contents, modes and ownership -- not their mtimes;
- RUN sees the build args declared so far (a changed --build-arg misses at the first RUN
  after its ARG, not at the ARG and not before), never secret contents;
- every lamina command is its own process, so "the cache survives across processes" is what
  every rebuild here exercises.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import textwrap

from conftest import mkctx


def seq(out: str) -> str:
    """'FCCRR': one letter per step."""
    blocks = re.split(r"^Step \d+/\d+ : ", out, flags=re.M)[1:]
    res = []
    for b in blocks:
        if re.match(r"FROM ", b, re.I):
            res.append("F")
        elif " ---> Using cache" in b:
            res.append("C")
        else:
            res.append("R")
    return "".join(res)


def build(lam, ctx, *args):
    r = lam("build", *args, str(ctx))
    return seq(r.out), r


DF = """
    FROM busybox
    RUN echo one > /one
    COPY a.txt /a.txt
    RUN cat /a.txt > /copy-of-a
    COPY dir /dir/
    LABEL x=y
    RUN ls /dir > /listing
    """
FILES = {"a.txt": "a\n", "dir/f1": "1\n", "dir/sub/f2": "2\n"}


def test_unchanged_touch_edit_chmod(bb, tmp_path):
    ctx = mkctx(tmp_path, DF, FILES)
    assert build(bb, ctx)[0] == "FRRRRRR"
    assert build(bb, ctx)[0] == "FCCCCCC"
    # touch without change: still cached
    os.utime(ctx / "a.txt", (1, 1))
    os.utime(ctx / "dir" / "sub" / "f2")
    os.utime(ctx / "dir")
    assert build(bb, ctx)[0] == "FCCCCCC"
    # edit a COPY'd file: misses from that COPY on
    (ctx / "a.txt").write_text("A\n")
    assert build(bb, ctx)[0] == "FCRRRRR"
    assert build(bb, ctx)[0] == "FCCCCCC"
    # a file deeper in a copied dir
    (ctx / "dir" / "sub" / "f2").write_text("two\n")
    assert build(bb, ctx)[0] == "FCCCRRR"
    # chmod changes it
    os.chmod(ctx / "dir" / "f1", 0o600)
    assert build(bb, ctx)[0] == "FCCCRRR"
    # a new file in a copied dir
    (ctx / "dir" / "new").write_text("n")
    assert build(bb, ctx)[0] == "FCCCRRR"
    # --no-cache runs everything; the run after it hits the fresh entries
    assert build(bb, ctx, "--no-cache")[0] == "FRRRRRR"
    assert build(bb, ctx)[0] == "FCCCCCC"


def test_reorder_and_metadata_edits(bb, tmp_path):
    ctx = mkctx(tmp_path, DF, FILES)
    build(bb, ctx)
    lines = textwrap.dedent(DF).lstrip().splitlines()
    lines[5], lines[6] = lines[6], lines[5]          # RUN ls before LABEL
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    assert build(bb, ctx)[0] == "FCCCCRR"
    (ctx / "Dockerfile").write_text(textwrap.dedent(DF).lstrip().replace("x=y", "x=z"))
    assert build(bb, ctx)[0] == "FCCCCRR"
    # whitespace-only differences in an instruction do not matter to Docker either
    (ctx / "Dockerfile").write_text(textwrap.dedent(DF).lstrip().replace("x=y", "x=z").replace(
        "RUN echo one > /one", "RUN   echo one > /one"))
    seq_, _ = build(bb, ctx)
    assert seq_[1] in "CR"


def test_build_arg_misses_at_first_use(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN echo before > /b
        ARG V=default
        ENV STATIC=1
        RUN echo "$V" > /v
        RUN echo after > /a
        """)
    assert build(bb, ctx)[0] == "FRRRRR"
    s, _ = build(bb, ctx)
    assert s == "FCCCCC"
    s, _ = build(bb, ctx, "--build-arg", "V=other")
    assert s == "FCCCRR"          # RUN echo before, ARG, ENV hit; the RUN after the ARG misses
    s, _ = build(bb, ctx, "--build-arg", "V=other")
    assert s == "FCCCCC"
    # an undeclared proxy arg reaches RUN but is not part of its cache key (Docker's rule)
    s, _ = build(bb, ctx, "--build-arg", "V=other", "--build-arg", "http_proxy=http://p:1")
    assert s == "FCCCCC"
    # giving the default's value explicitly is the same build
    s, _ = build(bb, ctx, "--build-arg", "V=default")
    assert s == "FCCCCC"


def test_base_image_change_misses_everything(bb, tmp_path, busybox_tar):
    ctx = mkctx(tmp_path, DF, FILES)
    build(bb, ctx)
    bb("import", "-c", 'CMD ["sh"]', "-c", "ENV REIMPORTED=1", busybox_tar, "busybox")
    assert build(bb, ctx)[0] == "FRRRRRR"
    assert build(bb, ctx)[0] == "FCCCCCC"


def test_plain_progress_explains_a_miss(bb, tmp_path):
    ctx = mkctx(tmp_path, DF, FILES)
    build(bb, ctx)
    (ctx / "dir" / "sub" / "f2").write_text("changed\n")
    s, r = build(bb, ctx, "--progress=plain")
    assert s == "FCCCRRR"
    miss = [ln for ln in r.out.splitlines() if "miss" in ln.lower()]
    later = (" ---> Cache miss: no earlier build ran a step on this parent image (first build, or an "
             "earlier step changed)")
    assert miss == [" ---> Cache miss: source files changed: dir/sub/f2", later, later], r.out
    (ctx / "Dockerfile").write_text(textwrap.dedent(DF).lstrip().replace("echo one", "echo uno"))
    s, r = build(bb, ctx, "--progress=plain")
    assert s == "FRRRRRR"
    miss = [ln for ln in r.out.splitlines() if "miss" in ln.lower()]
    assert miss == [" ---> Cache miss: the instruction changed (last time after this parent: "
                    "'/bin/sh -c echo one > /one')"] + [later] * 5, r.out


def test_heredoc_and_copy_from_stage_inputs(bb, tmp_path):
    df = """
        FROM busybox AS gen
        COPY src /src
        RUN cat /src > /gen
        FROM busybox
        RUN <<EOF
        echo heredoc-v1 > /h
        EOF
        COPY --from=gen /gen /gen
        """
    ctx = mkctx(tmp_path, df, {"src": "v1\n"})
    assert build(bb, ctx)[0] == "FRRFRR"
    assert build(bb, ctx)[0] == "FCCFCC"
    (ctx / "Dockerfile").write_text(textwrap.dedent(df).lstrip().replace("heredoc-v1", "heredoc-v2"))
    assert build(bb, ctx)[0] == "FCCFRR"
    (ctx / "src").write_text("v2\n")
    assert build(bb, ctx)[0] == "FRRFCR"
    assert bb("run", "--rm", seq_id(bb, ctx), "cat", "/h", "/gen").out == "heredoc-v2\nv2\n"


def seq_id(lam, ctx) -> str:
    r = lam("build", "-q", str(ctx))
    return r.out.strip()


def _manifest_digest(lam, tag: str) -> str:
    idx = json.load(open(os.path.join(lam.root, "content", "index.json")))
    for m in idx["manifests"]:
        if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name", "").endswith(f"/{tag}:latest"):
            return m["digest"]
    raise AssertionError(idx)


def test_source_date_epoch_reproducible(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN echo made > /made && mkdir -p /var/x && touch /var/x/y
        COPY a.txt dir /in/
        ENV A=1
        """, FILES)
    bb.env["SOURCE_DATE_EPOCH"] = "1700000000"
    r1 = bb("build", "--no-cache", "-t", "one", str(ctx))
    r2 = bb("build", "--no-cache", "-t", "two", str(ctx))
    id1 = re.search(r"Successfully built (\w+)", r1.out).group(1)
    id2 = re.search(r"Successfully built (\w+)", r2.out).group(1)
    assert id1 == id2
    assert _manifest_digest(bb, "one") == _manifest_digest(bb, "two")
    assert bb("inspect", "-f", "{{.Created}}", "one").out.strip().startswith("2023-11-14T22:13:20")
    # without it, two builds differ (their creation times do)
    del bb.env["SOURCE_DATE_EPOCH"]
    r3 = bb("build", "--no-cache", str(ctx))
    assert re.search(r"Successfully built (\w+)", r3.out).group(1) != id1


def test_replay_sees_build_arg_values_from_the_environment(bb, tmp_path):
    """`--build-arg FOO` takes FOO from the environment: a replayed build must notice a new value."""
    ctx = mkctx(tmp_path, """
        FROM busybox
        ARG FOO
        RUN echo "foo=$FOO" > /foo
        """)
    old = bb.env.get("FOO")
    try:
        for value in ("1", "1", "2"):
            bb.env["FOO"] = value
            bb("build", "-q", "--build-arg", "FOO", "-t", "envarg", str(ctx))
            assert bb("run", "--rm", "envarg", "cat", "/foo").out == f"foo={value}\n"
    finally:
        bb.env.pop("FOO", None) if old is None else bb.env.__setitem__("FOO", old)


def test_ps_during_a_build_leaves_the_run_step_alone(bb, tmp_path):
    """A RUN step's throwaway container has no record; `ps` (which sweeps orphan dirs) must
    not take its directory away mid-step. The step waits (on a cache mount the test can
    reach) until ps and container prune have run."""
    import glob
    import subprocess

    from conftest import wait_for
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN --mount=type=cache,target=/sync echo hello > /a && touch /sync/started && \\
            until [ -e /sync/go ]; do sleep 0.02; done && echo world > /b
        """)
    p = bb.popen("build", "-q", "-t", "pscheck", str(ctx), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        started = wait_for(lambda: glob.glob(os.path.join(bb.root, "build-cache", "mounts", "*", "started")),
                           what="the RUN step to start")
        bb("ps", "-a")
        bb("container", "prune", "-f")
        assert p.poll() is None  # still mid-step
        open(os.path.join(os.path.dirname(started[0]), "go"), "w").close()
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert bb("run", "--rm", "pscheck", "cat", "/a", "/b").out == "hello\nworld\n"


def _copy_layer(lam, tag: str) -> str:
    return json.loads(lam("inspect", tag).out)[0]["RootFS"]["Layers"][-1]


def _snapshot_of(lam, diff_chain_top: str) -> str:
    import sqlite3
    with sqlite3.connect(os.path.join(lam.root, "lamina.db")) as db:
        row = db.execute("SELECT dir FROM snapshots WHERE diff_id=? ORDER BY created DESC LIMIT 1",
                         (diff_chain_top,)).fetchone()
    return os.path.join(lam.root, "snapshots", row[0], "fs")


def test_copy_miss_reuses_unchanged_files_as_a_fresh_copy_would(bb, tmp_path):
    """A COPY of a directory that misses because one file changed links the unchanged files
    from the previous result's snapshot instead of copying them (issue 8's speed bar) -- and
    the layer is byte for byte the one a --no-cache copy writes."""
    files = {f"dir/d{i % 3}/f{i}": f"file {i}\n" for i in range(30)}
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY dir /dir\n", files)
    bb("build", "-q", "-t", "reuse", str(ctx))
    (ctx / "dir" / "d1" / "f4").write_text("edited\n")
    os.utime(ctx / "dir" / "d2" / "f5", ns=(1, 1_000_000_000))   # metadata a fresh copy would change
    bb("build", "-q", "-t", "reuse", str(ctx))
    layer = _copy_layer(bb, "reuse")
    snap = _snapshot_of(bb, layer)
    nlinks = {p.name: p.stat().st_nlink for p in (pathlib.Path(snap) / "dir").rglob("f*")}
    assert nlinks["f4"] == 1 and nlinks["f5"] == 1                  # copied
    assert sum(1 for n in nlinks.values() if n == 2) == 28, nlinks   # linked from the first result
    assert bb("run", "--rm", "reuse", "cat", "/dir/d1/f4").out == "edited\n"
    bb("build", "-q", "--no-cache", "-t", "fresh", str(ctx))
    assert _copy_layer(bb, "fresh") == layer
