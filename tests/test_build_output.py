"""The classic builder's output and what it promises: every step is a runnable image, the
intermediate images are hidden but listed by ``images -a`` and collected by ``image prune``,
failures name the command, the step and the last good image, and exit codes follow
``docker build`` (checked here against dockerd 20.10's classic builder, DOCKER_BUILDKIT=0):

- a failed RUN exits with the command's own code (``RUN exit 3`` -> 3; the classic docker CLI
  does exactly this, BuildKit's would say 1) and prints
  ``The command '/bin/sh -c exit 3' returned a non-zero code: 3``;
- every other build error (Dockerfile syntax, a missing COPY source, a bad base image) exits 1,
  as ``docker build`` does; a bad flag stays 125 like every lamina verb.
"""

from __future__ import annotations

import re

import pytest
from conftest import mkctx

TREE = """
    FROM busybox
    RUN mkdir -p /opt/tree && touch /opt/tree/a
    ENV STEP=2
    RUN touch /opt/tree/b
    COPY c /opt/tree/
    CMD ["ls", "/opt/tree"]
    """


def test_classic_output_and_every_step_runs(bb, tmp_path):
    ctx = mkctx(tmp_path, TREE, {"c": "c\n"})
    r = bb("build", "-t", "tree", str(ctx))
    lines = r.out.splitlines()
    steps = [ln for ln in lines if ln.startswith("Step ")]
    assert steps == ["Step 1/6 : FROM busybox", "Step 2/6 : RUN mkdir -p /opt/tree && touch /opt/tree/a",
                     "Step 3/6 : ENV STEP=2", "Step 4/6 : RUN touch /opt/tree/b", "Step 5/6 : COPY c /opt/tree/",
                     'Step 6/6 : CMD ["ls", "/opt/tree"]']
    running = [ln for ln in lines if ln.startswith(" ---> Running in ")]
    assert len(running) == 4 and all(re.fullmatch(r" ---> Running in [0-9a-f]{12}", ln) for ln in running)
    ids = [ln[6:] for ln in lines if re.fullmatch(r" ---> [0-9a-f]{12}", ln)]
    assert len(ids) == 6  # FROM's base, then one per step
    assert lines[-2] == f"Successfully built {ids[-1]}"
    assert lines[-1] == "Successfully tagged tree:latest"
    # each step's image can be run: the tree grows step by step
    counts = [bb("run", "--rm", i, "sh", "-c", "ls /opt/tree 2>/dev/null | wc -l").out.strip() for i in ids]
    assert counts == ["0", "1", "1", "2", "3", "3"]
    # a rebuild: the same ids, all from the cache
    r2 = bb("build", "-t", "tree", str(ctx))
    assert r2.out.count(" ---> Using cache") == 5
    assert [ln[6:] for ln in r2.out.splitlines() if re.fullmatch(r" ---> [0-9a-f]{12}", ln)] == ids
    assert "Running in" not in r2.out


def test_intermediate_images_listing_and_prune(bb, tmp_path):
    ctx = mkctx(tmp_path, TREE, {"c": "c\n"})
    r = bb("build", "-t", "tree", str(ctx))
    ids = [ln[6:] for ln in r.out.splitlines() if re.fullmatch(r" ---> [0-9a-f]{12}", ln)]
    shown = bb("images", "-q").out.split()
    shown_all = bb("images", "-a", "-q").out.split()
    assert set(shown) == {ids[0], ids[-1]}
    assert set(ids) <= set(shown_all)
    assert bb("images", "-a").out.count("<none>") == 2 * 4  # the four untagged step images
    # a second build whose last steps differ leaves the first final image dangling
    (ctx / "c").write_text("changed\n")
    r = bb("build", "-t", "tree", str(ctx))
    ids2 = [ln[6:] for ln in r.out.splitlines() if re.fullmatch(r" ---> [0-9a-f]{12}", ln)]
    assert ids2[:4] == ids[:4] and ids2[4:] != ids[4:]
    out = bb("image", "prune", "-f").out
    left = set(bb("images", "-a", "-q").out.split())
    assert not (set(ids[4:]) & left), out          # the old COPY and CMD steps are collected
    assert set(ids2) <= left                        # what the tagged image refers to stays
    # builder prune empties the cache: the next build runs every step again
    bb("builder", "prune", "-f")
    r = bb("build", "-t", "tree", str(ctx))
    assert "Using cache" not in r.out


def test_failed_run_reports_command_step_last_good(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN echo before > /b
        RUN exit 3
        RUN echo never
        """)
    r = bb("build", "-t", "fail", str(ctx), check=False)
    assert r.rc == 3
    text = r.out + r.err
    assert "The command '/bin/sh -c exit 3' returned a non-zero code: 3" in text
    assert "Step 3/4 : RUN exit 3" in r.out and "Step 4/4" not in r.out
    good = [ln[6:] for ln in r.out.splitlines() if re.fullmatch(r" ---> [0-9a-f]{12}", ln)][-1]
    assert good in r.err and "Dockerfile:3" in r.err
    assert bb("run", "--rm", good, "cat", "/b").out == "before\n"
    assert "fail" not in bb("images").out
    # exec form
    ctx2 = mkctx(tmp_path, 'FROM busybox\nRUN ["sh", "-c", "exit 7"]\n', name="c2")
    r = bb("build", str(ctx2), check=False)
    assert r.rc == 7 and "The command 'sh -c exit 7' returned a non-zero code: 7" in r.err  # as dockerd says
    # -q: the failing command's output is still shown
    ctx3 = mkctx(tmp_path, 'FROM busybox\nRUN echo loud-failure >&2; exit 2\n', name="c3")
    r = bb("build", "-q", str(ctx3), check=False)
    assert r.rc == 2 and "returned a non-zero code: 2" in r.err


@pytest.mark.parametrize("dockerfile,line,needle", [
    ("FROM busybox\nRUN true\nFOO bar\n", 3, "unknown instruction: FOO"),
    ("FROM busybox\nCOPY nothere /x\n", 2, '"/nothere" not found'),
    ("FROM busybox\nEXPOSE 80/sctpx\n", 2, "80/sctpx"),
    ("FROM busybox\nCOPY a b /notdir\n", 2, "must be a directory and end with a /"),
    ("RUN true\n", 1, "no build stage in current context"),
])
def test_dockerfile_errors_located(bb, tmp_path, dockerfile, line, needle):
    ctx = mkctx(tmp_path, dockerfile, {"a": "a", "b": "b"})
    r = bb("build", str(ctx), check=False)
    assert r.rc == 1, (r.rc, r.err)
    assert f"Dockerfile:{line}" in r.err and needle in r.err, r.err
    src = dockerfile.splitlines()[line - 1]
    err_lines = r.err.splitlines()
    assert src in err_lines, r.err
    assert err_lines[err_lines.index(src) + 1].strip() == "^"


def test_dockerfile_elsewhere_error_names_it(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\n")
    df = tmp_path / "other.Dockerfile"
    df.write_text("FROM busybox\nBOGUS x\n")
    r = bb("build", "-f", str(df), str(ctx), check=False)
    assert r.rc == 1 and "other.Dockerfile:2" in r.err
    r = bb("build", "--no-such-flag", str(ctx), check=False)
    assert r.rc == 125


def test_quiet_and_iidfile(bb, tmp_path):
    ctx = mkctx(tmp_path, TREE, {"c": "c\n"})
    r = bb("build", "-q", "--iidfile", str(tmp_path / "iid"), str(ctx))
    full = (tmp_path / "iid").read_text()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", full)
    assert r.out.strip() == full and r.err == ""
    assert bb("inspect", "-f", "{{.Id}}", full[7:19]).out.strip() == full


def test_rmi_of_a_parent_by_name_only_untags(bb, tmp_path):
    """Like dockerd: `rmi base` of an image other images were built on removes the name and
    keeps the image (their parent); by ID it is a conflict."""
    bb("tag", "busybox", "solo:v1")
    bb("rmi", "busybox")
    ctx = mkctx(tmp_path, """
        FROM solo:v1
        RUN echo hi > /x
        """)
    bb("build", "-t", "child", str(ctx))
    pid = bb("inspect", "-f", "{{.Id}}", "solo:v1").out.strip()
    assert bb("rmi", "solo:v1").out.splitlines() == ["Untagged: solo:v1"]
    assert bb("run", "--rm", "child", "cat", "/x").out == "hi\n"
    r = bb("rmi", pid[7:19], check=False)
    assert (r.rc, r.err) == (1, f"Error: conflict: unable to delete {pid[7:19]} (cannot be forced) - "
                                "image has dependent child images\n")
