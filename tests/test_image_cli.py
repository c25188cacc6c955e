"""The image commands through the real CLI: import, images, tag, inspect, history, rmi,
save/load, prune, system df; bad input gives exit 125 and leaves the store unchanged."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile

import pytest
from conftest import tar_bytes


def test_import_file_and_stdin(lamina, busybox_tar):
    r = lamina("import", busybox_tar, "busybox:latest")
    image_id = r.out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    data = open(busybox_tar, "rb").read()
    r2 = lamina("import", "-", "bb2:v1", input=data)
    # same content, different creation time: same layer, different config
    a = json.loads(lamina("inspect", "busybox").out)[0]
    b = json.loads(lamina("inspect", "bb2:v1").out)[0]
    assert a["Id"] == image_id and b["Id"] == r2.out.strip()
    assert a["RootFS"]["Layers"] == b["RootFS"]["Layers"]
    assert a["RootFS"]["Layers"][0] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert a["Comment"] == "Imported from -"
    assert a["RepoTags"] == ["busybox:latest"] and b["RepoTags"] == ["bb2:v1"]
    assert a["Os"] == "linux" and a["Architecture"]
    assert a["Config"]["Cmd"] is None and a["Config"]["Env"] is None
    # the size is the lstat sizes of what the tar unpacks to, like Docker: files and
    # symlink targets (tests/test_image_docker.py compares with dockerd)
    with tarfile.open(busybox_tar) as tf:
        assert a["Size"] == sum(m.size if m.isfile() else len(m.linkname.encode()) if m.issym() else 0
                                for m in tf)


def test_import_compressed_with_changes_and_message(lamina, busybox_tar):
    gz = gzip.compress(open(busybox_tar, "rb").read())
    r = lamina("import", "-c", 'CMD ["/bin/sh","-c","echo hi"]', "--change", "ENV A=1 B=\"two words\"",
               "-c", "EXPOSE 8080", "-c", "WORKDIR /srv", "-c", "LABEL team=core", "-c", "USER nobody",
               "-c", "VOLUME /data", "-m", "my base", "-", "me/base:1", input=gz)
    cfg = json.loads(lamina("inspect", "me/base:1").out)[0]
    assert cfg["Id"] == r.out.strip()
    c = cfg["Config"]
    assert c["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert c["Env"] == ["A=1", "B=two words"]
    assert c["ExposedPorts"] == {"8080/tcp": {}}
    assert c["WorkingDir"] == "/srv" and c["User"] == "nobody"
    assert c["Labels"] == {"team": "core"} and c["Volumes"] == {"/data": {}}
    assert cfg["Comment"] == "my base"
    # the layer's diff ID is the digest of the *uncompressed* tar
    assert cfg["RootFS"]["Layers"][0] == "sha256:" + hashlib.sha256(open(busybox_tar, "rb").read()).hexdigest()
    bad = lamina("import", "-c", "FROM scratch", "-", "x", input=gz, check=False)
    assert bad.rc == 125 and "FROM is not a valid change command" in bad.err


def test_images_table_and_formats(lamina, busybox_tar):
    lamina("import", busybox_tar, "busybox")
    lamina("tag", "busybox", "localhost:5000/me/busybox:v1")
    out = lamina("images").out.splitlines()
    assert out[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    repos = sorted(l.split()[0] for l in out[1:])
    assert repos == ["busybox", "localhost:5000/me/busybox"]
    # columns line up: every row starts its TAG column where the header does
    col = out[0].index("TAG")
    assert all(l[col - 1] == " " and l[col] != " " for l in out[1:])
    assert re.search(r"\s(Less than a second|1 second|\d+ seconds) ago\s", out[1]), out[1]
    q = lamina("images", "-q").out.split()
    assert len(q) == 2 and len(set(q)) == 1 and len(q[0]) == 12
    f = lamina("images", "--format", "{{.Repository}}:{{.Tag}}").out.split()
    assert sorted(f) == ["busybox:latest", "localhost:5000/me/busybox:v1"]
    assert lamina("images", "busybox", "--format", "{{.Repository}}").out.split() == ["busybox"]
    d = lamina("images", "--digests").out.splitlines()[0]
    assert "DIGEST" in d
    full = lamina("images", "--no-trunc", "-q").out.split()[0]
    assert full.startswith("sha256:") and len(full) == 71
    assert lamina("images", "-f", "reference=local*/*/*", "--format", "{{.Repository}}").out.split() == \
        ["localhost:5000/me/busybox"]
    bad = lamina("images", "--bogus", check=False)
    assert bad.rc == 125 and "unknown flag: --bogus" in bad.err


def test_inspect_format_and_missing(lamina, busybox_tar):
    iid = lamina("import", busybox_tar, "busybox").out.strip()
    assert lamina("inspect", "--format", "{{.Id}}", "busybox").out.strip() == iid
    cfg = json.loads(lamina("inspect", "-f", "{{json .Config}}", "busybox").out)
    assert cfg == {}  # an imported image has no config: Docker's client prints {} (omitempty fields)
    assert lamina("inspect", "-f", "{{.Config.Cmd}}|{{json .Config.Cmd}}", "busybox").out == "[]|null\n"
    assert lamina("inspect", "-f", "{{.Os}}/{{.Architecture}}", iid[7:19]).out.strip().startswith("linux/")
    r = lamina("inspect", "nope", check=False)
    assert r.rc != 0 and "No such object: nope" in r.err
    assert json.loads(r.out) == []


def test_history(lamina, busybox_tar):
    iid = lamina("import", "-m", "hello", busybox_tar, "busybox").out.strip()
    lines = lamina("history", "busybox").out.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[1].startswith(iid[7:19]) and lines[1].rstrip().endswith("hello")
    assert len(lines) == 2
    nt = lamina("history", "--no-trunc", "busybox").out.splitlines()[1]
    assert nt.startswith(iid)
    assert lamina("history", "-q", "busybox").out.split() == [iid[7:19]]
    assert lamina("history", "--format", "{{.Comment}}", "busybox").out.strip() == "hello"


def test_tag_and_rmi_outputs(lamina, busybox_tar):
    iid = lamina("import", busybox_tar, "busybox").out.strip()
    lamina("tag", "busybox", "bb:one")
    lamina("tag", iid[7:19], "bb:two")
    # removing one of several tags only untags
    assert lamina("rmi", "bb:one").out.splitlines() == ["Untagged: bb:one"]
    # by ID with several tags: refused without -f
    r = lamina("rmi", iid[7:19], check=False)
    assert r.rc == 1 and "must be forced" in r.err and "multiple repositories" in r.err
    out = lamina("rmi", "-f", iid[7:19]).out.splitlines()
    assert "Untagged: bb:two" in out and "Untagged: busybox:latest" in out
    assert f"Deleted: {iid}" in out
    assert any(l.startswith("Deleted: sha256:") and l != f"Deleted: {iid}" for l in out)
    assert lamina("images", "-q").out.strip() == ""
    # every blob is gone
    blobs = os.listdir(os.path.join(lamina.root, "content", "blobs", "sha256"))
    assert blobs == []
    r = lamina("rmi", "busybox", check=False)
    assert r.rc == 1 and "No such image: busybox" in r.err


def test_retag_leaves_dangling_and_prune(lamina, busybox_tar):
    first = lamina("import", busybox_tar, "app").out.strip()
    second = lamina("import", busybox_tar, "app").out.strip()
    assert first != second
    rows = lamina("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}").out.splitlines()
    assert f"<none> <none> {first[7:19]}" in rows and f"app latest {second[7:19]}" in rows
    assert lamina("images", "-f", "dangling=true", "-q").out.split() == [first[7:19]]
    out = lamina("image", "prune", "-f").out
    assert f"deleted: {first}" in out and "Total reclaimed space:" in out
    assert lamina("images", "-q").out.split() == [second[7:19]]
    # prune -a removes tagged images no container uses
    out = lamina("image", "prune", "-a", "-f").out
    assert "untagged: app:latest" in out
    assert lamina("images", "-q").out.strip() == ""
    assert os.listdir(os.path.join(lamina.root, "content", "blobs", "sha256")) == []


def test_prune_prompt_declined(lamina, busybox_tar):
    lamina("import", busybox_tar, "app")
    lamina("import", busybox_tar, "app")
    r = lamina("image", "prune", input=b"n\n")
    assert "WARNING! This will remove all dangling images." in r.out
    assert len(lamina("images", "-a", "-q").out.split()) == 2


def test_save_load_roundtrip(lamina, busybox_tar, tmp_path):
    iid = lamina("import", busybox_tar, "busybox").out.strip()
    lamina("tag", "busybox", "bb:v2")
    manifest_digest = json.loads(lamina("inspect", "busybox").out)[0]["Descriptor"]["digest"]
    out = str(tmp_path / "bb.tar")
    lamina("save", "-o", out, "busybox", "bb:v2")
    with tarfile.open(out) as tf:
        names = tf.getnames()
        m = json.load(tf.extractfile("manifest.json"))
        idx = json.load(tf.extractfile("index.json"))
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
    assert m[0]["RepoTags"] == ["busybox:latest", "bb:v2"]
    assert m[0]["Config"] == f"blobs/sha256/{iid[7:]}"
    assert {e["digest"] for e in idx["manifests"]} == {manifest_digest}
    # stdout variant is byte-identical
    assert lamina("save", "busybox", "bb:v2").outb == open(out, "rb").read()
    lamina("rmi", "-f", iid)
    r = lamina("load", "-i", out)
    assert sorted(r.out.splitlines()) == ["Loaded image: bb:v2", "Loaded image: busybox:latest"]
    again = json.loads(lamina("inspect", "busybox").out)[0]
    assert again["Id"] == iid and again["Descriptor"]["digest"] == manifest_digest
    # load from stdin, and a gzip-compressed archive
    lamina("rmi", "-f", iid)
    assert "Loaded image: busybox:latest" in lamina("load", input=gzip.compress(open(out, "rb").read())).out


def test_save_by_id_loads_untagged(lamina, busybox_tar, tmp_path):
    iid = lamina("import", busybox_tar, "busybox").out.strip()
    data = lamina("save", iid[7:19]).outb
    lamina("rmi", "busybox")
    assert lamina("load", input=data).out.strip() == f"Loaded image ID: {iid}"
    assert lamina("images", "--format", "{{.Repository}}:{{.Tag}}").out.strip() == "<none>:<none>"


# -- bad input: a one-line error naming the culprit, exit 125, store unchanged ---------------
def _unchanged(lamina, fn, code: int = 125):
    before = lamina.snapshot_of_store()
    r = fn()
    assert r.rc == code, (r.rc, r.err)
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert lamina.snapshot_of_store() == before
    return r.err


@pytest.fixture
def seeded(lamina, busybox_tar):
    lamina("import", busybox_tar, "busybox")
    return lamina


def test_bad_truncated_tar(seeded, busybox_tar):
    data = open(busybox_tar, "rb").read()
    err = _unchanged(seeded, lambda: seeded("import", "-", "x", input=data[:len(data) // 2 + 100], check=False))
    assert re.fullmatch(r"Error: truncated layer tar: the data of entry '\./bin/busybox' is cut short "
                        r"\(\d+ bytes missing\)\n", err), err


def test_bad_gzip_garbage(seeded):
    err = _unchanged(seeded, lambda: seeded("import", "-", "x", input=b"\x1f\x8b\x08\x00" + b"garbage" * 100, check=False))
    assert "gzip" in err


def test_bad_breakout_tar(seeded):
    evil = tar_bytes([("etc/", "dir", None), ("../../evil", "file", "x")])
    err = _unchanged(seeded, lambda: seeded("import", "-", "x", input=evil, check=False))
    assert "../../evil" in err
    evil2 = tar_bytes([("a", "hardlink", "../../../etc/shadow")])
    err = _unchanged(seeded, lambda: seeded("import", "-", "x", input=evil2, check=False))
    assert "../../../etc/shadow" in err


def test_bad_reference(seeded, busybox_tar):
    err = _unchanged(seeded, lambda: seeded("import", busybox_tar, "Upper/Case", check=False))
    assert '"Upper/Case"' in err and "lowercase" in err
    err = _unchanged(seeded, lambda: seeded("tag", "busybox", "a:b:c", check=False))
    assert "a:b:c" in err


def _archive(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_bad_archive_missing_blob(seeded):
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]}}).encode()
    cd = hashlib.sha256(cfg).hexdigest()
    arch = _archive({f"blobs/sha256/{cd}": cfg,
                     "manifest.json": json.dumps([{"Config": f"blobs/sha256/{cd}", "RepoTags": ["x:1"],
                                                   "Layers": ["blobs/sha256/" + "b" * 64]}]).encode()})
    # a blob the archive names but lacks: not found, 1 as `docker load` exits
    err = _unchanged(seeded, lambda: seeded("load", input=arch, check=False), code=1)
    assert "b" * 64 in err


def test_bad_archive_digest_mismatch(seeded, busybox_tar):
    layer = open(busybox_tar, "rb").read()
    wrong = "c" * 64
    cfg = json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
    cd = hashlib.sha256(cfg).hexdigest()
    arch = _archive({f"blobs/sha256/{wrong}": layer, f"blobs/sha256/{cd}": cfg,
                     "manifest.json": json.dumps([{"Config": f"blobs/sha256/{cd}", "RepoTags": ["x:1"],
                                                   "Layers": [f"blobs/sha256/{wrong}"]}]).encode()})
    err = _unchanged(seeded, lambda: seeded("load", input=arch, check=False))
    assert wrong in err and "mismatch" in err
    # a layer whose content does not match the config's diff ID
    other = tar_bytes([("f", "file", "other")])
    od = hashlib.sha256(other).hexdigest()
    arch = _archive({f"blobs/sha256/{od}": other, f"blobs/sha256/{cd}": cfg,
                     "manifest.json": json.dumps([{"Config": f"blobs/sha256/{cd}", "RepoTags": ["x:1"],
                                                   "Layers": [f"blobs/sha256/{od}"]}]).encode()})
    err = _unchanged(seeded, lambda: seeded("load", input=arch, check=False))
    assert od in err and "diff ID" in err


def test_bad_archive_not_a_tar(seeded):
    err = _unchanged(seeded, lambda: seeded("load", input=b"hello world" * 100, check=False))
    assert "archive" in err


def test_kill9_mid_import_leaves_clean_store(lamina, busybox_tar, tmp_path):
    """A SIGKILLed import leaves a store that the next commands open, and prune collects."""
    lamina("import", busybox_tar, "busybox")
    data = open(busybox_tar, "rb").read()
    p = lamina.popen("import", "-", "half", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    p.stdin.write(data[: len(data) // 2])
    p.stdin.flush()
    from conftest import wait_for
    ingest = os.path.join(lamina.root, "content", "ingest")
    wait_for(lambda: os.listdir(ingest), what="the import to start writing")
    p.kill()
    p.wait()
    assert lamina("images", "--format", "{{.Repository}}").out.split() == ["busybox"]
    lamina("import", busybox_tar, "again")
    lamina("image", "prune", "-f")
    assert os.listdir(ingest) == []
    assert sorted(lamina("images", "--format", "{{.Repository}}").out.split()) == ["again", "busybox"]


def test_system_df_and_prune(lamina, busybox_tar):
    lamina("import", busybox_tar, "busybox")
    lines = lamina("system", "df").out.splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert lines[1].split()[:3] == ["Images", "1", "0"]
    out = lamina("system", "prune", "-a", "-f").out
    assert "untagged: busybox:latest" in out
    assert lamina("images", "-q").out.strip() == ""


def test_version_info_help(lamina):
    assert "lamina" in lamina("version").out
    assert lamina("version", "--format", "{{.Client.Version}}").out.strip()
    assert "Storage Driver: overlay" in lamina("info").out
    h = lamina("--help").out
    for verb in ("images", "import", "save", "load", "rmi", "history", "tag", "inspect"):
        assert f"  {verb}" in h
    r = lamina("frobnicate", check=False)
    assert r.rc == 125 and "'frobnicate' is not a lamina command" in r.err


def test_images_filters_label_before_since(lamina, busybox_tar):
    import time
    lamina("import", "-c", "LABEL team=core", busybox_tar, "one")
    time.sleep(0.05)
    lamina("import", "-c", "LABEL team=edge", busybox_tar, "two")
    time.sleep(0.05)
    lamina("import", busybox_tar, "three")
    fmt = ["--format", "{{.Repository}}"]
    assert lamina("images", "-f", "label=team", *fmt).out.split() == ["two", "one"]
    assert lamina("images", "-f", "label=team=core", *fmt).out.split() == ["one"]
    assert lamina("images", "-f", "before=two", *fmt).out.split() == ["one"]
    assert lamina("images", "-f", "since=one", *fmt).out.split() == ["three", "two"]
    r = lamina("images", "-f", "color=red", check=False)
    assert r.rc == 125 and "Invalid filter 'color'" in r.err
