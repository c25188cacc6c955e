"""The build-cache tutorial, verbatim, on a real Debian base (marked ``slow``; it runs in the
suite, never skipped).

The base is /var/tmp/peers-bases/debian.tar when the peers' setup made it, else a
``debootstrap --variant=minbase bookworm`` root made once and cached as
/var/tmp/lamina-debian-bookworm.tar. RUN reaches the Debian mirror through the host's network.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from conftest import need_tool

PEERS_TAR = "/var/tmp/peers-bases/debian.tar"
CACHED_TAR = "/var/tmp/lamina-debian-bookworm.tar"


def debian_tar(tmp_path_factory) -> str:
    if os.path.exists(PEERS_TAR):
        return PEERS_TAR
    if os.path.exists(CACHED_TAR):
        return CACHED_TAR
    need_tool("debootstrap")
    root = str(tmp_path_factory.mktemp("debootstrap") / "rootfs")
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", root],
                   check=True, capture_output=True, timeout=1800)
    tmp = CACHED_TAR + f".tmp{os.getpid()}"
    subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", tmp, "."], check=True)
    os.rename(tmp, CACHED_TAR)
    return CACHED_TAR


def seq(out: str) -> str:
    blocks = re.split(r"^Step \d+/\d+ : ", out, flags=re.M)[1:]
    return "".join("F" if b.startswith("FROM ") else "C" if " ---> Using cache" in b else "R" for b in blocks)


@pytest.mark.slow
def test_tutorial_walkthrough_on_debian(lamina, tmp_path, tmp_path_factory):
    lamina("import", debian_tar(tmp_path_factory), "debian", timeout=600)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "testfile").write_text("hello from the context\n")
    (ctx / "Dockerfile").write_text("FROM debian\n"
                                    "RUN apt-get update && apt-get install -y tree\n"
                                    "COPY testfile /\n")
    r = lamina("build", "-t", "debian-tree-testfile", str(ctx), timeout=900)
    assert seq(r.out) == "FRR", r.out
    assert "Setting up tree" in r.out
    image = re.search(r"Successfully built ([0-9a-f]{12})", r.out).group(1)
    assert r.out.rstrip().endswith("Successfully tagged debian-tree-testfile:latest")
    out = lamina("run", "--rm", image, "tree", "--version").out
    assert out.startswith("tree v"), out
    assert lamina("run", "--rm", "debian-tree-testfile", "cat", "/testfile").out == "hello from the context\n"
    # unchanged: everything from the cache
    r = lamina("build", "-t", "debian-tree-testfile", str(ctx))
    assert seq(r.out) == "FCC"
    # an edited testfile: the apt-get step stays cached, the COPY runs
    (ctx / "testfile").write_text("edited\n")
    r = lamina("build", "-t", "debian-tree-testfile", str(ctx))
    assert seq(r.out) == "FCR"
    # the reordered Dockerfile: misses from the COPY on (apt-get runs again)
    (ctx / "Dockerfile").write_text("FROM debian\n"
                                    "COPY testfile /\n"
                                    "RUN apt-get update && apt-get install -y tree\n")
    r = lamina("build", "-t", "debian-tree-testfile", str(ctx), timeout=900)
    assert seq(r.out) == "FRR", r.out
    image = re.search(r"Successfully built ([0-9a-f]{12})", r.out).group(1)
    assert lamina("run", "--rm", image, "tree", "--version").out.startswith("tree v")
    r = lamina("build", "-t", "debian-tree-testfile", str(ctx))
    assert seq(r.out) == "FCC"
