"""GC never removes what an in-flight operation or an image needs; leftovers of killed
operations are collected."""

from __future__ import annotations

import os
import subprocess
import time

from lamina.image.gc import reachable


def test_reachable_is_pure_and_follows_chains():
    keep = reachable({"sha256:m": ("sha256:c", ["sha256:l1"], ["sha256:" + "a" * 64])}, {"sha256:x"})
    assert keep.blobs == {"sha256:m", "sha256:c", "sha256:l1"}
    assert keep.chains == {"sha256:" + "a" * 64, "sha256:x"}


def test_prune_waits_for_inflight_import(lamina, busybox_tar):
    """A prune started while an import streams in waits; the import's blobs survive."""
    data = open(busybox_tar, "rb").read()
    p = lamina.popen("import", "-", "slow", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(data[:4096])
    p.stdin.flush()
    ingest = os.path.join(lamina.root, "content", "ingest")
    deadline = time.time() + 10
    while time.time() < deadline and not (os.path.isdir(ingest) and os.listdir(ingest)):
        time.sleep(0.02)
    pr = lamina.popen("image", "prune", "-a", "-f", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    assert pr.poll() is None, "prune did not wait for the import in flight"
    p.stdin.write(data[4096:])
    p.stdin.close()
    assert p.wait(30) == 0, p.stderr.read()
    assert pr.wait(30) == 0
    # prune -a ran after the import finished, so it removed the (unused) image cleanly;
    # what matters: no dangling record, no missing blob, no leftover ingest
    recs = lamina("images", "-a", "-q").out.split()
    blobs = os.listdir(os.path.join(lamina.root, "content", "blobs", "sha256"))
    assert (recs == [] and blobs == []) or (len(recs) == 1 and len(blobs) == 3)
    assert os.listdir(ingest) == []


def test_kill9_mid_load_then_prune(lamina, busybox_tar, tmp_path):
    lamina("import", busybox_tar, "busybox")
    archive = lamina("save", "busybox").outb
    lamina("rmi", "busybox")
    p = lamina.popen("load", stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.stdin.write(archive[: len(archive) // 2])
    p.stdin.flush()
    time.sleep(0.3)
    p.kill()
    p.wait()
    assert lamina("images", "-a", "-q").out.strip() == ""
    lamina("image", "prune", "-f")
    assert os.listdir(os.path.join(lamina.root, "content", "ingest")) == []
    assert os.listdir(os.path.join(lamina.root, "content", "blobs", "sha256")) == []
    assert "Loaded image: busybox:latest" in lamina("load", input=archive).out
