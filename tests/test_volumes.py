"""Volumes (issue 12): the volume verbs, Docker's copy-up resolved inside the image, anonymous
volumes of VOLUME, bind mounts with ro/rw and propagation, --mount types, system df/prune."""

from __future__ import annotations

import json
import os
import subprocess

from conftest import mkctx
from containers_util import bb, until  # noqa: F401 - fixtures


def vols(lamina) -> list[str]:
    return lamina("volume", "ls", "-q").out.split()


def test_volume_verbs(bb):
    assert bb("volume", "create", "v1").out == "v1\n"
    assert bb("volume", "create", "--label", "team=a", "v2").out == "v2\n"
    anon = bb("volume", "create").out.strip()
    assert len(anon) == 64 and all(c in "0123456789abcdef" for c in anon)
    assert bb("volume", "ls").out.splitlines() == ["DRIVER    VOLUME NAME", *sorted(
        f"local     {n}" for n in ("v1", "v2", anon))]
    doc = json.loads(bb("volume", "inspect", "v2").out)[0]
    assert sorted(doc) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert doc["Labels"] == {"team": "a"} and doc["Options"] is None and doc["Driver"] == "local"
    assert doc["Mountpoint"] == os.path.join(bb.root, "volumes", "v2", "_data")
    assert json.loads(bb("volume", "inspect", "v1").out)[0]["Labels"] is None
    assert bb("volume", "ls", "-q", "-f", "label=team=a").out == "v2\n"
    r = bb("volume", "inspect", "nosuch", check=False)
    assert r.rc == 1 and "Error: get nosuch: no such volume" in r.err
    cid = bb("create", "-v", "v1:/data", "busybox", "true").out.strip()
    r = bb("volume", "rm", "v1", check=False)
    assert r.rc == 1 and r.err == f"Error: remove v1: volume is in use - [{cid}]\n"
    assert bb("volume", "ls", "-q", "-f", "dangling=true").out.split() == sorted(["v2", anon])
    assert bb("volume", "rm", "v2").out == "v2\n"
    r = bb("volume", "rm", "v2", check=False)
    assert r.rc == 1 and "no such volume" in r.err
    assert bb("volume", "rm", "-f", "v2").out == "v2\n"
    out = bb("volume", "prune", "-f").out
    assert out.startswith(f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space:")
    assert vols(bb) == ["v1"]  # in use
    bb("rm", cid)
    assert vols(bb) == ["v1"]  # a named volume outlives its container
    r = bb("volume", "create", "../x", check=False)
    assert r.rc == 125 and "includes invalid characters for a local volume name" in r.err


def test_volume_inspect_matches_docker(bb):
    need = subprocess.run(["docker", "version"], capture_output=True)
    assert need.returncode == 0, "dockerd is needed"
    name = f"lamina-test-vol-{os.getpid()}"
    subprocess.run(["docker", "volume", "create", "--label", "k=v", name], check=True, capture_output=True)
    try:
        theirs = json.loads(subprocess.run(["docker", "volume", "inspect", name], check=True,
                                           capture_output=True, text=True).stdout)[0]
    finally:
        subprocess.run(["docker", "volume", "rm", name], capture_output=True)
    bb("volume", "create", "--label", "k=v", name)
    mine = json.loads(bb("volume", "inspect", name).out)[0]
    assert sorted(mine) == sorted(theirs)
    for k in ("Driver", "Labels", "Options", "Scope", "Name"):
        assert mine[k] == theirs[k], k
    assert len(mine["CreatedAt"]) == len(theirs["CreatedAt"]) and mine["CreatedAt"].endswith("Z")


VOLIMG = """
    FROM busybox
    RUN mkdir -p /data/sub && echo hello > /data/sub/f && ln -s /etc/shadow-of-host /data/link \\
        && chown -R 65534:65534 /data/sub && chmod 0750 /data && ln -s /etc /etcvol
    VOLUME /data
    """


def test_named_volume_is_filled_from_the_image_on_first_use(bb, tmp_path):
    bb("build", "-q", "-t", "volimg", str(mkctx(tmp_path, VOLIMG)))
    bb("run", "--name", "w", "-v", "named:/data", "volimg", "sh", "-c", "echo written > /data/new")
    d = os.path.join(bb.root, "volumes", "named", "_data")
    st = os.stat(d)
    assert oct(st.st_mode & 0o7777) == "0o750" and (st.st_uid, st.st_gid) == (0, 0)
    sub = os.stat(os.path.join(d, "sub", "f"))
    assert (sub.st_uid, sub.st_gid) == (65534, 65534)
    assert open(os.path.join(d, "sub", "f")).read() == "hello\n"
    assert os.readlink(os.path.join(d, "link")) == "/etc/shadow-of-host"  # copied as a link, not followed
    bb("rm", "w")
    # data outlives the container; a non-empty volume is not filled again
    out = bb("run", "--rm", "-v", "named:/data", "volimg", "sh", "-c", "cat /data/new; ls /data").out
    assert out == "written\nlink\nnew\nsub\n"
    # nocopy: an empty volume stays empty
    assert bb("run", "--rm", "-v", "empty:/data:nocopy", "volimg", "ls", "-A", "/data").out == ""
    assert bb("run", "--rm", "--mount", "type=volume,src=empty2,dst=/data,volume-nocopy", "volimg",
              "ls", "-A", "/data").out == ""


def test_copy_up_through_a_symlink_reads_the_image_not_the_host(bb, tmp_path):
    """VOLUME over a path that is a symlink to /etc: the image's /etc fills the volume; the
    host's /etc is never read (resolution stays inside the image root)."""
    bb("build", "-q", "-t", "volimg", str(mkctx(tmp_path, VOLIMG)))
    bb("run", "--name", "e", "-v", "etcv:/etcvol", "volimg", "true")
    d = os.path.join(bb.root, "volumes", "etcv", "_data")
    image_passwd = bb("run", "--rm", "--entrypoint", "cat", "volimg", "/etc/passwd").out
    assert open(os.path.join(d, "passwd")).read() == image_passwd
    assert image_passwd != open("/etc/passwd").read()
    assert os.path.exists("/etc/os-release") and not os.path.exists(os.path.join(d, "os-release"))


def test_anonymous_volumes_go_with_rm_v_and_run_rm(bb, tmp_path):
    bb("build", "-q", "-t", "volimg", str(mkctx(tmp_path, VOLIMG)))
    bb("run", "--name", "a", "volimg", "cat", "/data/sub/f")
    anon = vols(bb)
    assert len(anon) == 1 and len(anon[0]) == 64
    assert open(os.path.join(bb.root, "volumes", anon[0], "_data", "sub", "f")).read() == "hello\n"
    bb("rm", "a")
    assert vols(bb) == anon  # rm without -v keeps it, as Docker
    bb("volume", "rm", anon[0])
    bb("run", "--name", "b", "volimg", "true")
    assert len(vols(bb)) == 1
    bb("rm", "-v", "b")
    assert vols(bb) == []
    assert bb("run", "--rm", "volimg", "cat", "/data/sub/f").out == "hello\n"
    assert vols(bb) == []
    bb("run", "--rm", "-v", "keep:/data", "volimg", "true")
    assert vols(bb) == ["keep"]  # --rm removes anonymous volumes only


def test_bind_mounts_ro_rw_and_mount_types(bb, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("host\n")
    assert bb("run", "--rm", "-v", f"{src}:/m:ro", "busybox", "sh", "-c",
              "cat /m/f; echo x > /m/g 2>/dev/null || echo readonly").out == "host\nreadonly\n"
    bb("run", "--rm", "-v", f"{src}:/m", "busybox", "sh", "-c", "echo rw > /m/g")
    assert (src / "g").read_text() == "rw\n"
    out = bb("run", "--rm", "--mount", f"type=bind,src={src},dst=/b,readonly",
             "--mount", "type=volume,src=mv,dst=/v", "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m",
             "busybox", "sh", "-c", "cat /b/f; touch /v/x && echo vol-ok; grep ' /t ' /proc/mounts").out.splitlines()
    assert out[0] == "host" and out[1] == "vol-ok" and out[2].startswith("tmpfs /t tmpfs") and "size=1024k" in out[2]
    doc = json.loads(bb("inspect", bb("create", "-v", f"{src}:/m:ro,rslave", "busybox", "true").out.strip()).out)[0]
    assert doc["Mounts"][0]["Propagation"] == "rslave" and doc["Mounts"][0]["RW"] is False
    r = bb("run", "--rm", "-v", f"{src}:/m:rshared", "busybox", "true", check=False)
    assert r.rc == 125 and "bind propagation rshared is not supported" in r.err
    r = bb("run", "--rm", "--mount", f"type=bind,src={src},dst=/m,bind-propagation=bogus", "busybox", "true",
           check=False)
    assert r.rc == 125 and "invalid propagation mode 'bogus'" in r.err


def test_bind_propagation_rslave_follows_host_mounts(bb, tmp_path):
    """With rslave a mount made on the host under the source appears in the running
    container; with the default rprivate it does not."""
    src = tmp_path / "prop"
    src.mkdir()
    subprocess.run(["mount", "--bind", str(src), str(src)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(src)], check=True)
        for name, mode in (("slave", ":rslave"), ("private", "")):
            bb("run", "-d", "--name", name, "-v", f"{src}:/m{mode}", "busybox", "sleep", "300")
        (src / "sub").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "lamina-prop-test", str(src / "sub")], check=True)
        try:
            (src / "sub" / "f").write_text("from the host's new mount\n")
            assert bb("exec", "slave", "cat", "/m/sub/f").out == "from the host's new mount\n"
            r = bb("exec", "private", "cat", "/m/sub/f", check=False)
            assert r.rc == 1 and "No such file" in r.err
        finally:
            bb("rm", "-f", "slave", "private")
            subprocess.run(["umount", str(src / "sub")], check=True)
    finally:
        subprocess.run(["umount", str(src)], check=True)
    with open("/proc/self/mountinfo") as f:
        assert str(src) not in f.read()


def test_system_df_and_prune_count_volumes(bb, tmp_path):
    bb("volume", "create", "big")
    bb("run", "--rm", "-v", "big:/d", "busybox", "dd", "if=/dev/zero", "of=/d/z", "bs=1024", "count=2048")
    bb("run", "--rm", "-v", "small:/d", "busybox", "dd", "if=/dev/zero", "of=/d/z", "bs=1024", "count=100")
    bb("run", "-d", "--name", "user", "-v", "small:/d", "busybox", "sleep", "300")
    row = [l for l in bb("system", "df").out.splitlines() if l.startswith("Local Volumes")][0].split()
    assert row[2:4] == ["2", "1"]  # total, active (used by the running container)
    assert row[4] == "2.2MB" and row[5:] == ["2.097MB", "(95%)"]  # Docker's units.HumanSize
    out = bb("system", "prune", "-f", "--volumes").out
    assert out == "Deleted Volumes:\nbig\n\nTotal reclaimed space: 2.097MB\n"
    assert vols(bb) == ["small"]
    assert "Deleted Volumes" not in bb("system", "prune", "-f").out  # only with --volumes
    bb("rm", "-f", "user")
    out = bb("system", "prune", "-f", "--volumes").out
    assert out == "Deleted Volumes:\nsmall\n\nTotal reclaimed space: 102.4kB\n"
