"""Multi-stage builds and the ways a build gets its inputs and hands over its result:
``--target``, ``-f`` (elsewhere, or ``-``), a context tar on stdin, ``.dockerignore`` (and
``<Dockerfile>.dockerignore``), ``--iidfile``, ``-q``, ``--label``, ``--output``.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile

from conftest import mkctx


def sh(lam, ref, script: str) -> str:
    return lam("run", "--rm", ref, "sh", "-c", script).out


MULTI = """
    FROM busybox AS base
    RUN echo base > /base
    FROM base AS broken
    RUN exit 1
    FROM busybox AS other
    RUN echo other > /other
    FROM base AS app
    COPY --from=other /other /other
    RUN cat /base /other > /app
    FROM broken AS final
    """


def test_target_runs_only_needed_stages(bb, tmp_path):
    ctx = mkctx(tmp_path, MULTI)
    r = bb("build", "--target", "app", "-t", "app", str(ctx))
    assert "exit 1" not in r.out
    steps = re.findall(r"^Step \d+/(\d+) : (.*)$", r.out, re.M)
    assert [s for _, s in steps] == ["FROM busybox AS base", "RUN echo base > /base", "FROM busybox AS other",
                                     "RUN echo other > /other", "FROM base AS app",
                                     "COPY --from=other /other /other", "RUN cat /base /other > /app"]
    assert {n for n, _ in steps} == {"7"}
    assert sh(bb, "app", "cat /app") == "base\nother\n"
    # the target by name is case-insensitive; a stage in the middle is a fine target
    r = bb("build", "--target", "BASE", "-q", str(ctx))
    assert sh(bb, r.out.strip(), "cat /base") == "base\n"
    # the whole file needs the broken stage
    r = bb("build", str(ctx), check=False)
    assert r.rc == 1 and "returned a non-zero code: 1" in r.err
    r = bb("build", "--target", "nope", str(ctx), check=False)
    assert r.rc == 1 and "nope" in r.err


def test_dockerfile_elsewhere_and_from_stdin(bb, tmp_path):
    ctx = mkctx(tmp_path, None, {"f": "ctx-file\n"})
    elsewhere = tmp_path / "defs" / "my.Dockerfile"
    elsewhere.parent.mkdir()
    elsewhere.write_text("FROM busybox\nCOPY f /f\n")
    bb("build", "-f", str(elsewhere), "-t", "e1", str(ctx))
    assert sh(bb, "e1", "cat /f") == "ctx-file\n"
    # -f relative to the context
    (ctx / "sub").mkdir()
    (ctx / "sub" / "Df").write_text("FROM busybox\nCOPY f /g\n")
    bb("build", "-f", "sub/Df", "-t", "e2", str(ctx))
    assert sh(bb, "e2", "cat /g") == "ctx-file\n"
    # -f - : the Dockerfile on stdin, the context from the directory
    bb("build", "-f", "-", "-t", "e3", str(ctx), input=b"FROM busybox\nCOPY f /h\n")
    assert sh(bb, "e3", "cat /h") == "ctx-file\n"
    # missing Dockerfile
    r = bb("build", str(tmp_path / "defs"), check=False)
    assert r.rc == 1 and "Dockerfile" in r.err


def _tar(files: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            data = data.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_context_tar_on_stdin(bb, tmp_path):
    tar = _tar({"Dockerfile": "FROM busybox\nCOPY a /a\nCOPY sub/b /b\n", "a": "A\n", "sub/b": "B\n"})
    bb("build", "-t", "st", "-", input=tar)
    assert sh(bb, "st", "cat /a /b") == "A\nB\n"
    import gzip
    r = bb("build", "-", input=gzip.compress(tar))
    assert r.out.count("Using cache") == 2
    # a plain Dockerfile on stdin: no context
    bb("build", "-t", "st2", "-", input=b"FROM busybox\nRUN echo x > /x\n")
    assert sh(bb, "st2", "cat /x") == "x\n"
    r = bb("build", "-f", "-", "-", input=b"", check=False)
    assert r.rc != 0


def test_dockerignore(bb, tmp_path):
    files = {"keep.txt": "k", "secret.env": "s", "logs/a.log": "a", "logs/keep.log": "k",
             "deep/x/y/z.tmp": "t", "deep/x/y/ok.txt": "o", "node_modules/m/index.js": "m"}
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY . /app/\n", files)
    (ctx / ".dockerignore").write_text("# comment\n*.env\nlogs/*.log\n!logs/keep.log\n**/*.tmp\nnode_modules\n")
    bb("build", "-t", "ign", str(ctx))
    out = sh(bb, "ign", "cd /app && find . -type f | sort")
    assert out.split() == ["./.dockerignore", "./Dockerfile", "./deep/x/y/ok.txt", "./keep.txt", "./logs/keep.log"]
    # an ignored file does not bust the cache
    (ctx / "secret.env").write_text("changed")
    r = bb("build", str(ctx))
    assert r.out.count("Using cache") == 1
    # naming an excluded file is an error
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY secret.env /\n")
    r = bb("build", str(ctx), check=False)
    assert r.rc == 1 and "secret.env" in r.err
    # <Dockerfile>.dockerignore next to the Dockerfile wins over .dockerignore
    df = ctx / "build.Dockerfile"
    df.write_text("FROM busybox\nCOPY . /app/\n")
    (ctx / "build.Dockerfile.dockerignore").write_text("keep.txt\ndeep\n")
    bb("build", "-f", str(df), "-t", "ign2", str(ctx))
    out = sh(bb, "ign2", "cd /app && find . -type f | sort").split()
    assert "./keep.txt" not in out and "./secret.env" in out and "./logs/a.log" in out
    assert not any(p.startswith("./deep") for p in out)


def test_quiet_iidfile_label(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nLABEL a=from-file\nRUN echo x > /x\n")
    iid = tmp_path / "iid.txt"
    r = bb("build", "-q", "--iidfile", str(iid), "--label", "a=cli", "--label", "b=2", "-t", "lab", str(ctx))
    full = iid.read_text()
    assert r.out == full + "\n" and r.err == ""
    labels = json.loads(bb("inspect", "-f", "{{json .Config.Labels}}", "lab").out)
    assert labels == {"a": "cli", "b": "2"}
    assert bb("inspect", "-f", "{{.Id}}", "lab").out.strip() == full


def test_outputs(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox AS b
        RUN mkdir /out && echo made > /out/made
        FROM scratch
        COPY --from=b /out /
        COPY f /f
        """, {"f": "F\n"})
    dest = tmp_path / "local"
    bb("build", "-q", "--output", f"type=local,dest={dest}", str(ctx))
    assert sorted(os.listdir(dest)) == ["f", "made"]
    assert (dest / "made").read_text() == "made\n"
    dest2 = tmp_path / "plain"
    bb("build", "-q", "-o", str(dest2), str(ctx))
    assert sorted(os.listdir(dest2)) == ["f", "made"]
    tarpath = tmp_path / "out.tar"
    bb("build", "-q", "--output", f"type=tar,dest={tarpath}", str(ctx))
    with tarfile.open(tarpath) as tf:
        names = {n.lstrip("./") for n in tf.getnames()} - {""}
    assert names == {"f", "made"}
    arch = tmp_path / "img.tar"
    bb("build", "-q", "-t", "exported", "--output", f"type=docker,dest={arch}", str(ctx))
    # a docker-archive (docker save format, with the OCI layout BuildKit's exporter adds):
    # exactly what `save` writes of the tagged image
    assert arch.read_bytes() == bb("save", "exported").outb
    with tarfile.open(arch) as tf:
        names = set(tf.getnames())
        manifest = json.load(tf.extractfile("manifest.json"))
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= names
    assert [m["RepoTags"] for m in manifest] == [["exported:latest"]]
    # the archive loads into another store
    from conftest import Lamina
    other = Lamina(str(tmp_path / "root2"))
    other("load", "-i", str(arch))
    assert "exported" in other("images").out


def test_independent_stages_build_concurrently(bb, tmp_path):
    """Two stages that do not depend on each other run at the same time; the log still
    reads stage by stage, and a failure in one is reported like a sequential build's.
    Each stage's RUN waits for the other's mark on a shared cache mount: a serial build
    cannot finish them (the first gives up with exit 3)."""
    wait = ("touch /sync/{me}; i=0; until [ -e /sync/{other} ]; do i=$((i+1)); "
            "[ $i -lt 3000 ] || exit 3; sleep 0.02; done; echo built-{me} > /{me}")
    ctx = mkctx(tmp_path, f"""
        FROM busybox AS a
        RUN --mount=type=cache,target=/sync {wait.format(me="a", other="b")}
        FROM busybox AS b
        RUN --mount=type=cache,target=/sync {wait.format(me="b", other="a")}
        FROM busybox
        COPY --from=a /a /a
        COPY --from=b /b /b
        CMD ["cat", "/a", "/b"]
        """)
    out = bb("build", "-t", "par", str(ctx)).out
    steps = [l for l in out.splitlines() if l.startswith("Step ")]
    assert [s.split(" : ")[0] for s in steps] == [f"Step {i}/8" for i in range(1, 9)]
    assert out.index("Step 2/8") < out.index("Step 3/8") < out.index("Step 5/8")
    assert bb("run", "--rm", "par").out == "built-a\nbuilt-b\n"
    bad = mkctx(tmp_path, """
        FROM busybox AS a
        RUN sleep 0.3 && exit 7
        FROM busybox AS b
        RUN echo fine
        FROM busybox
        COPY --from=a / /x
        COPY --from=b / /y
        """, name="bad")
    r = bb("build", str(bad), check=False)
    assert r.rc == 7 and "returned a non-zero code: 7" in r.out + r.err


def test_replay_notices_a_file_copied_by_a_concurrent_stage(bb, tmp_path):
    """The replay memo must cover context files read by stages built in forked children."""
    ctx = mkctx(tmp_path, """
        FROM busybox AS a
        COPY one.txt /one.txt
        FROM busybox AS b
        COPY two.txt /two.txt
        FROM busybox
        COPY --from=a /one.txt /one.txt
        COPY --from=b /two.txt /two.txt
        CMD ["cat", "/one.txt", "/two.txt"]
        """, files={"one.txt": "1\n", "two.txt": "2\n"})
    for _ in range(3):  # cold, cached (records the memo), replayed
        bb("build", "-q", "-t", "memo", str(ctx))
    assert bb("run", "--rm", "memo").out == "1\n2\n"
    (ctx / "two.txt").write_text("22\n")
    bb("build", "-q", "-t", "memo", str(ctx))
    assert bb("run", "--rm", "memo").out == "1\n22\n"
