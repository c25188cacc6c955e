"""``rmi`` of an image that a container uses, side by side with dockerd (20.10).

Every case runs the same steps in lamina and in dockerd: an image with one tag, one
container of it (created, exited or running), then ``rmi [-f] NAME|ID``. The two outputs,
with IDs and names replaced by placeholders, must be equal, and each is also held to the
exact lines Docker's daemon produces (moby daemon/images/image_delete.go):

- by name, no ``-f``, any container: ``conflict: unable to remove repository reference
  "N" (must force) - container C is using its referenced image I``; exit 1.
- by ID, no ``-f``: ``conflict: unable to delete I (must be forced) - image is being used
  by stopped container C``, or ``(cannot be forced) ... by running container C``; exit 1.
- ``-f`` with a running container: by name the tag goes and the image stays (dangling); by
  ID the running-container conflict (it cannot be forced).
- ``-f`` with a stopped container: the tag goes and the image is deleted; the container
  keeps its filesystem and still starts.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest
from conftest import need_tool


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


@pytest.fixture(scope="module")
def dockerd():
    need_tool("docker")
    p = _docker("version", "--format", "{{.Server.Version}}", check=False)
    if p.returncode != 0:
        pytest.fail(f"dockerd is not running (scripts/test.sh starts it): {p.stderr.strip()}")
    return p.stdout.strip()


class Side:
    """One engine (lamina or dockerd) through its CLI: rc, stdout lines, stderr message."""

    def __init__(self, name: str, run) -> None:
        self.name, self.run = name, run
        self.made_images: list[str] = []
        self.made_containers: list[str] = []

    def __call__(self, *args: str, check: bool = True):
        rc, out, err = self.run(*args)
        if check and rc != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} failed ({rc}): {err}")
        return rc, out, err


def _lamina_side(lamina) -> Side:
    def run(*args):
        r = lamina(*args, check=False)
        return r.rc, r.out, r.err
    return Side("lamina", run)


def _docker_side() -> Side:
    def run(*args):
        p = _docker(*args, check=False)
        return p.returncode, p.stdout, p.stderr
    return Side("docker", run)


def _message(err: str) -> str:
    """The error text without the client's prefix (docker: "Error response from daemon: ",
    lamina: "Error: ")."""
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    return re.sub(r"^(Error response from daemon: |Error: )", "", lines[0])


def _setup(side: Side, tar: str, name: str, container: str) -> tuple[str, str]:
    """Import ``tar`` as ``name``; make one container of it in state ``container``
    (created | exited | running). Returns (image ID, container ID)."""
    rc, out, _ = side("import", tar, name)
    iid = out.strip()
    side.made_images.append(iid)
    if container == "running":
        cid = side("run", "-d", "--network", "none", name, "sleep", "300")[1].strip()
    elif container == "exited":
        cid = side("create", "--network", "none", name, "true")[1].strip()
        side("start", "-a", cid)
    else:
        cid = side("create", "--network", "none", name, "true")[1].strip()
    side.made_containers.append(cid)
    status = side("inspect", "-f", "{{.State.Status}}", cid)[1].strip()
    assert status == container, (side.name, status)
    return iid, cid


def _normal(text: str, iid: str, cid: str, name: str) -> str:
    text = text.replace(iid, "sha256:<IMG>").replace(iid[7:19], "<IMG>")
    text = text.replace(cid, "<C>").replace(cid[:12], "<C>")
    return text.replace(name, "<NAME>")


STOPPED = "image is being used by stopped container <C>"
RUNNING = "image is being used by running container <C>"
BY_NAME = ('conflict: unable to remove repository reference "<NAME>" (must force) - container <C> '
           'is using its referenced image <IMG>')
CASES = [
    # (container state, -f, by, rc, stdout lines, error message, image kept, tag kept)
    ("created", False, "name", 1, [], BY_NAME, True, True),
    ("exited", False, "name", 1, [], BY_NAME, True, True),
    ("running", False, "name", 1, [], BY_NAME, True, True),
    ("created", False, "id", 1, [], f"conflict: unable to delete <IMG> (must be forced) - {STOPPED}",
     True, True),
    ("exited", False, "id", 1, [], f"conflict: unable to delete <IMG> (must be forced) - {STOPPED}",
     True, True),
    ("running", False, "id", 1, [], f"conflict: unable to delete <IMG> (cannot be forced) - {RUNNING}",
     True, True),
    ("running", True, "id", 1, [], f"conflict: unable to delete <IMG> (cannot be forced) - {RUNNING}",
     True, True),
    ("running", True, "name", 0, ["Untagged: <NAME>"], None, True, False),
    ("exited", True, "name", 0, ["Untagged: <NAME>", "Deleted: sha256:<IMG>"], None, False, False),
    ("created", True, "id", 0, ["Untagged: <NAME>", "Deleted: sha256:<IMG>"], None, False, False),
    ("exited", True, "id", 0, ["Untagged: <NAME>", "Deleted: sha256:<IMG>"], None, False, False),
]


@pytest.mark.parametrize("state,force,by,rc,lines,message,kept,tagged", CASES,
                         ids=[f"{s}-{'f' if f else 'nof'}-by{b}" for s, f, b, *_ in CASES])
def test_rmi_of_an_image_in_use_matches_dockerd(dockerd, lamina, busybox_tar, tmp_path, state,
                                                force, by, rc, lines, message, kept, tagged):
    # a tar no other image has, so dockerd's layer is this test's alone
    tar = str(tmp_path / "img.tar")
    with open(busybox_tar, "rb") as src, open(tar, "wb") as dst:
        dst.write(src.read())
    marker = tmp_path / "marker"
    marker.write_text(uuid.uuid4().hex)
    subprocess.run(["tar", "-rf", tar, "-C", str(tmp_path), "marker"], check=True)
    name = f"lamina-test-rmi-{uuid.uuid4().hex[:10]}:v1"
    results = {}
    sides = [_lamina_side(lamina), _docker_side()]
    try:
        for side in sides:
            iid, cid = _setup(side, tar, name, state)
            target = name if by == "name" else iid[7:19]
            got_rc, out, err = side("rmi", *(["-f"] if force else []), target, check=False)
            got = (got_rc, _normal(out, iid, cid, name).splitlines(),
                   _normal(_message(err), iid, cid, name) if err.strip() else None)
            assert got == (rc, lines, message), (side.name, got)
            # what is left afterwards: the container (unchanged) and the image (if kept)
            assert side("inspect", "-f", "{{.State.Status}}", cid)[1].strip() == state
            left = (side("image", "inspect", "-f", "{{.Id}}", iid, check=False)[0] == 0,
                    side("image", "inspect", "-f", "{{.Id}}", name, check=False)[0] == 0)
            assert left == (kept, tagged), (side.name, left)
            results[side.name] = (got, left)
            if not kept:
                # the image is gone, the container is not: it still runs from its layers
                assert side("start", "-a", cid)[0] == 0
            side("rm", "-f", cid)
            if kept:
                side("rmi", iid)
    finally:
        for side in sides:
            for cid in side.made_containers:
                side("rm", "-f", cid, check=False)
            for iid in side.made_images:
                side("rmi", "-f", iid, check=False)
    assert results["lamina"] == results["docker"]


def test_rmi_f_of_an_image_a_stopped_container_uses_keeps_the_container_whole(lamina, busybox_tar):
    """After Docker's ``rmi -f`` deleted the image, the stopped container still starts,
    commits and exports; GC (image prune) keeps what it needs, and frees it after ``rm``."""
    lamina("import", busybox_tar, "base:v1")
    lamina("run", "--name", "c", "--network", "none", "base:v1", "sh", "-c", "echo kept > /kept")
    assert lamina("rmi", "-f", "base:v1").out.splitlines()[0] == "Untagged: base:v1"
    assert lamina("images", "-a", "-q").out == ""
    lamina("image", "prune", "-a", "-f")
    assert lamina("start", "-a", "c").rc == 0
    assert lamina("run", "--rm", "--network", "none", lamina("commit", "c").out.strip(),
                  "cat", "/kept", "/bin/busybox").out.startswith("kept\n")
    out = lamina("export", "c").outb
    assert b"bin/busybox" in out and b"kept\n" in out
    # the container's ps row shows the image's ID now that its name is gone, like Docker
    image_id = lamina("inspect", "-f", "{{.Image}}", "c").out.strip()
    assert lamina("ps", "-a", "--format", "{{.Image}}").out == image_id[7:19] + "\n"
    lamina("rm", "c")
    for iid in lamina("images", "-a", "-q").out.split():
        lamina("rmi", "-f", iid)
    lamina("image", "prune", "-a", "-f")
    blobs = os.listdir(os.path.join(lamina.root, "content", "blobs", "sha256"))
    assert blobs == []
    assert [n for n in os.listdir(os.path.join(lamina.root, "snapshots")) if not n.startswith(".")] == []
