"""A container's filesystem through the CLI: commit, diff, cp (both ways, stopped and running,
symlink escapes), export, and volumes (-v bind/named, --mount tmpfs, --tmpfs, --read-only,
image VOLUME + rm -v)."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile

from containers_util import bb, image, mounts_under, until  # noqa: F401  (fixture)


def test_commit_and_run(bb):
    bb("run", "--name", "c", "busybox", "sh", "-c", "echo made > /f; mkdir -p /d/e; rm /bin/vi")
    iid = bb("commit", "-m", "my msg", "-a", "Me <me@x>", "-c", 'CMD ["cat", "/f"]', "-c", "ENV X=1",
             "c", "mine:v1").out.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", iid), iid  # Docker prints the full image ID
    assert bb("inspect", "-f", "{{.Id}}", "mine:v1").out.strip() == iid
    assert bb("run", "--rm", "mine:v1").out == "made\n"
    assert bb("run", "--rm", "mine:v1", "sh", "-c", "echo $X; test -e /bin/vi || echo novi").out == "1\nnovi\n"
    doc = json.loads(bb("inspect", "mine:v1").out)[0]
    assert doc["Author"] == "Me <me@x>" and doc["Config"]["Cmd"] == ["cat", "/f"]
    assert "X=1" in doc["Config"]["Env"] and len(doc["RootFS"]["Layers"]) == 2
    hist = bb("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "mine:v1").out.splitlines()
    assert hist[0].endswith("|my msg") and "echo made" in hist[0]
    # commit of a running container (paused during the commit, running after)
    bb("run", "-d", "--name", "r", "busybox", "sh", "-c", "echo live > /g; exec sleep 100")
    until(lambda: bb("exec", "r", "cat", "/g", check=False).out == "live\n", what="file in running container")
    bb("commit", "r", "live")
    assert bb("inspect", "-f", "{{.State.Status}}", "r").out == "running\n"
    assert bb("run", "--rm", "live", "cat", "/g").out == "live\n"
    bb("rm", "-f", "r")


def test_diff(bb):
    bb("run", "--name", "d", "busybox", "sh", "-c",
       "echo a > /tmp/new; echo x >> /etc/passwd; rm /bin/vi; mkdir /newdir; touch /newdir/f")
    out = bb("diff", "d").out.splitlines()
    assert out == ["C /bin", "D /bin/vi", "C /etc", "C /etc/passwd", "A /newdir", "A /newdir/f",
                   "C /tmp", "A /tmp/new"]
    bb("create", "--name", "fresh", "busybox", "true")
    assert bb("diff", "fresh").out == ""


def test_cp_both_ways_and_escape(bb, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    # stopped container
    bb("create", "--name", "s", "busybox", "true")
    bb("cp", str(host / "in.txt"), "s:/tmp/in.txt")
    bb("cp", "s:/etc/passwd", str(host / "passwd"))
    assert (host / "passwd").read_text().startswith("root:x:0:0")
    bb("start", "-a", "s")
    assert "A /tmp/in.txt" in bb("diff", "s").out
    # running container
    bb("run", "-d", "--name", "r", "busybox", "sh", "-c",
       "mkdir /out; echo ok > /out/x; ln -s / /out/rootlink; ln -s /../../../../../../.. /esc; exec sleep 100")
    until(lambda: bb("exec", "r", "test", "-L", "/esc", check=False).rc == 0, what="symlinks")
    bb("cp", str(host / "in.txt"), "r:/tmp/")
    assert bb("exec", "r", "cat", "/tmp/in.txt").out == "from host\n"
    bb("cp", "r:/out", str(host / "outdir"))
    assert (host / "outdir" / "x").read_text() == "ok\n"
    assert os.readlink(host / "outdir" / "rootlink") == "/"
    # escape attempts: a symlink to / or ../.. in the container resolves inside it
    target = tmp_path / "escaped.txt"
    rel = os.path.relpath(str(target), "/")
    # (the link resolves to / inside the container, where the parent dirs do not exist:
    # dockerd answers exactly so)
    for via in ("/esc", "/out/rootlink"):
        r = bb("cp", str(host / "in.txt"), f"r:{via}/{rel}", check=False)
        assert (r.rc, r.err) == (1, f"Error: Could not find the file {via}/{os.path.dirname(rel)} "
                                    "in container r\n")
    assert not target.exists()
    r = bb("exec", "r", "cat", "/" + rel, check=False)
    assert (r.rc, r.out) == (1, "")
    # tar streams
    r = bb("cp", "r:/out/x", "-")
    with tarfile.open(fileobj=io.BytesIO(r.outb)) as tf:
        assert tf.getnames() == ["x"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("fromtar")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"tar"))
    bb("cp", "-", "r:/tmp", input=buf.getvalue())
    assert bb("exec", "r", "cat", "/tmp/fromtar").out == "tar"
    r = bb("cp", "r:/nope", str(host / "n"), check=False)
    assert (r.rc, r.err) == (1, "Error: Could not find the file /nope in container r\n")
    bb("rm", "-f", "r")
    assert mounts_under(bb.root) == []


def test_export(bb, tmp_path):
    bb("run", "--name", "e", "busybox", "sh", "-c", "echo exported > /marker")
    out = tmp_path / "e.tar"
    bb("export", "-o", str(out), "e")
    with tarfile.open(out) as tf:
        names = set(n.lstrip("./") for n in tf.getnames())
        assert {"bin/busybox", "bin/sh", "etc/passwd", "marker"} <= names
        assert tf.extractfile([m for m in tf.getmembers() if m.name.lstrip("./") == "marker"][0]).read() == b"exported\n"
    r = bb("export", "e")
    assert r.outb == out.read_bytes()  # -o and stdout write the same bytes
    assert mounts_under(bb.root) == []


def test_volumes(lamina, busybox_tar, tmp_path):
    image(lamina, busybox_tar, "volimg", "VOLUME /vol")
    bb = lamina
    image(bb, busybox_tar, "busybox")
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    (hostdir / "pre").write_text("pre\n")
    out = bb("run", "--rm", "-v", f"{hostdir}:/data", "busybox", "sh", "-c", "cat /data/pre; echo w > /data/w").out
    assert out == "pre\n" and (hostdir / "w").read_text() == "w\n"
    r = bb("run", "--rm", "-v", f"{hostdir}:/data:ro", "busybox", "sh", "-c", "echo x > /data/x", check=False)
    assert (r.rc, r.err) == (1, "sh: can't create /data/x: Read-only file system\n")
    # named volume persists across containers
    bb("run", "--rm", "-v", "myvol:/data", "busybox", "sh", "-c", "echo kept > /data/k")
    assert bb("run", "--rm", "-v", "myvol:/other", "busybox", "cat", "/other/k").out == "kept\n"
    assert os.path.exists(os.path.join(bb.root, "volumes", "myvol", "_data", "k"))
    # tmpfs mounts
    out = bb("run", "--rm", "--mount", "type=tmpfs,target=/t", "--tmpfs", "/x", "busybox", "sh", "-c",
             "grep -E ' /(t|x) ' /proc/mounts | cut -d' ' -f1-3").out
    assert sorted(out.splitlines()) == ["tmpfs /t tmpfs", "tmpfs /x tmpfs"]
    # read-only root; volumes and /tmp tmpfs stay writable
    r = bb("run", "--rm", "--read-only", "busybox", "touch", "/file", check=False)
    assert r.rc == 1 and "Read-only file system" in r.err
    assert bb("run", "--rm", "--read-only", "--tmpfs", "/tmp", "-v", "myvol:/data", "busybox", "sh", "-c",
              "touch /tmp/a /data/b && echo ok").out == "ok\n"
    # image VOLUME: an anonymous volume, removed by rm -v
    bb("run", "--name", "v", "volimg", "sh", "-c", "echo anon > /vol/a")
    m = json.loads(bb("inspect", "-f", "{{json .Mounts}}", "v").out)
    assert len(m) == 1 and m[0]["Type"] == "volume" and m[0]["Destination"] == "/vol" and len(m[0]["Name"]) == 64
    src = m[0]["Source"]
    assert open(os.path.join(src, "a")).read() == "anon\n"
    bb("rm", "-v", "v")
    assert not os.path.exists(src)
    bb("run", "--name", "v2", "volimg", "true")
    src2 = json.loads(bb("inspect", "-f", "{{json .Mounts}}", "v2").out)[0]["Source"]
    bb("rm", "v2")  # without -v the anonymous volume stays, as in Docker
    assert os.path.exists(src2)
    # named volumes survive rm -v
    bb("run", "--name", "n", "-v", "myvol:/data", "busybox", "true")
    bb("rm", "-v", "n")
    assert os.path.exists(os.path.join(bb.root, "volumes", "myvol", "_data", "k"))
    assert mounts_under(bb.root) == []
