"""GC never removes what an in-flight operation or an image needs; leftovers of killed
operations are collected."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

from conftest import wait_blocked_on_flock, wait_for

from lamina.image.gc import reachable


def test_reachable_is_pure_and_follows_chains():
    keep = reachable({"sha256:m": ("sha256:c", ["sha256:l1"], ["sha256:" + "a" * 64])}, {"sha256:x"})
    assert keep.blobs == {"sha256:m", "sha256:c", "sha256:l1"}
    assert keep.chains == {"sha256:" + "a" * 64, "sha256:x"}


def test_prune_waits_for_inflight_import(lamina, busybox_tar):
    """A prune started while an import streams in chooses its victims (none yet), then waits
    for the import to finish before it sweeps: the import's image and its blobs survive."""
    data = open(busybox_tar, "rb").read()
    p = lamina.popen("import", "-", "slow", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(data[:4096])
    p.stdin.flush()
    ingest = os.path.join(lamina.root, "content", "ingest")
    wait_for(lambda: os.path.isdir(ingest) and os.listdir(ingest), what="the import's ingest")
    pr = lamina.popen("image", "prune", "-a", "-f", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_blocked_on_flock(os.path.join(lamina.root, "gc.lock"), pr.pid)
    assert pr.poll() is None, "prune did not wait for the import in flight"
    p.stdin.write(data[4096:])
    p.stdin.close()
    assert p.wait(60) == 0, p.stderr.read()
    out, err = pr.communicate(timeout=60)
    assert pr.returncode == 0, err
    assert b"deleted" not in out.lower(), out
    # no dangling record, no missing blob, no leftover ingest: manifest, config, one layer
    iid = lamina("images", "-q", "--no-trunc", "slow").out.strip()
    blobs = os.listdir(os.path.join(lamina.root, "content", "blobs", "sha256"))
    assert lamina("images", "-a", "-q", "--no-trunc").out.split() == [iid]
    assert len(blobs) == 3 and iid[7:] in blobs
    assert os.listdir(ingest) == []
    lamina("inspect", "slow")  # every blob it names verifies


def test_kill9_mid_load_then_prune(lamina, busybox_tar, tmp_path):
    lamina("import", busybox_tar, "busybox")
    archive = lamina("save", "busybox").outb
    lamina("rmi", "busybox")
    # cut the stream 16 KiB before the end of the layer blob: the load is inside the layer
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        layer = max(tf.getmembers(), key=lambda m: m.size)
    p = lamina.popen("load", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.stdin.write(archive[: layer.offset_data + layer.size - (16 << 10)])
    p.stdin.flush()
    ingest = os.path.join(lamina.root, "content", "ingest")
    # killed while its ingest is on disk: the real mid-load moment
    wait_for(lambda: os.path.isdir(ingest) and os.listdir(ingest), what="the load's ingest")
    p.kill()
    p.wait()
    assert os.listdir(ingest) != []
    assert lamina("images", "-a", "-q").out.strip() == ""
    lamina("image", "prune", "-f")
    assert os.listdir(ingest) == []
    assert os.listdir(os.path.join(lamina.root, "content", "blobs", "sha256")) == []
    assert "Loaded image: busybox:latest" in lamina("load", input=archive).out
