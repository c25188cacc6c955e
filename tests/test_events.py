"""``events``: the store's event journal (lamina/events.py) through the real CLI, side by side
with ``docker events`` for the same commands; --since/--until/--filter/--format, following
live, the journal's mode, rotation and torn lines."""

from __future__ import annotations

import os
import re
import select
import stat
import subprocess
import time
import uuid

import pytest
from conftest import need_tool
from containers_util import bb, until  # noqa: F401  (fixture)

from lamina import events

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

FMT = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"


def _now() -> str:
    return f"{time.time():.9f}"


def _sequence(cli, image: str, name: str) -> None:
    """The same commands for lamina and docker (``cli(*args)``)."""
    cli("create", "--name", name, "-l", "k=v", image, "sh", "-c", "trap 'exit 0' TERM; sleep 100 & wait")
    cli("start", name)
    cli("pause", name)
    cli("unpause", name)
    cli("exec", name, "true")
    cli("rename", name, name + "2")
    cli("stop", name + "2")
    cli("commit", name + "2", name + "-img:v1")
    cli("tag", name + "-img:v1", name + "-img:v2")
    cli("rmi", name + "-img:v2")
    cli("rm", name + "2")


def test_events_match_docker_for_the_same_commands(bb, busybox_tar):
    docker = need_tool("docker")
    tag = f"lamina-ev-{uuid.uuid4().hex[:8]}"
    subprocess.run([docker, "import", busybox_tar, tag], check=True, capture_output=True)

    def dk(*args):
        return subprocess.run([docker, *args], check=True, capture_output=True, text=True)
    since = _now()
    try:
        _sequence(dk, tag, tag + "-c")
        dend = _now()
        _sequence(bb, "busybox", tag + "-c")
        lend = _now()

        def keep(out: str) -> list[str]:
            # the container's and its committed image's events (not the import's, nor other users')
            return [l for l in out.splitlines() if tag in l and not l.startswith("image import")
                    and not l.startswith("network ")]
        dout = keep(dk("events", "--since", since, "--until", dend, "--format", FMT).stdout)
        lout = keep(bb("events", "--since", since, "--until", lend, "--format", FMT).out)
        assert lout == dout
        assert len(lout) >= 15
        assert [l.split()[1] for l in lout][:5] == ["create", "start", "pause", "unpause", "exec_create:"]
        # filters and the default line
        dflt = bb("events", "--since", since, "--until", lend, "--filter", "event=rename").out.splitlines()
        assert len(dflt) == 1 and " container rename " in dflt[0] and f"oldName=/{tag}-c" in dflt[0]
        assert f"name={tag}-c2" in dflt[0] and "k=v" in dflt[0]
        assert bb("events", "--since", since, "--until", lend, "--filter", "type=image", "--filter",
                  "event=tag", "--format", "{{.Actor.Attributes.name}}").out == f"{tag}-c-img:v1\n{tag}-c-img:v2\n"
        lab = bb("events", "--since", since, "--until", lend, "--filter", "label=k=v", "--format",
                 "{{.Action}}").out.split()
        assert lab[:2] == ["create", "start"] and "destroy" in lab
        r = bb("events", "--filter", "nope=1", "--until", "0s", check=False)
        assert r.rc == 125 and "Invalid filter 'nope'" in r.err
        r = bb("events", "--since", "yesterday", "--until", "0s", check=False)
        assert r.rc == 125 and 'failed to parse value as time or duration: "yesterday"' in r.err
    finally:
        for c in (tag + "-c", tag + "-c2"):
            subprocess.run([docker, "rm", "-f", c], capture_output=True)
        subprocess.run([docker, "rmi", tag + "-c-img:v1", tag + "-c-img:v2", tag], capture_output=True)


def test_events_follow_live_and_journal_is_private(bb):
    p = bb.popen("events", "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}",
                 stdout=subprocess.PIPE)
    try:
        # the follower is reading once the journal exists and it printed nothing of the past
        root = bb.root
        bb("create", "--name", "live", "busybox", "true")
        buf = b""
        deadline = time.monotonic() + 20
        while b"create live\n" not in buf:
            r, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert r, f"no live event; got {buf!r}"
            buf += os.read(p.stdout.fileno(), 4096)
        assert buf.startswith(b"create live\n") or b"create live\n" in buf
    finally:
        p.terminate()
        p.wait(timeout=10)
    d = os.path.join(root, "events")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(d, "journal")).st_mode) == 0o600
    # --until in the future: follows, then stops by itself at that time
    t = f"{time.time() + 1.5:.9f}"
    r = bb("events", "--until", t, "--format", "{{.Action}}", timeout=30)
    assert r.rc == 0


def test_journal_rotation_bounds_size_and_skips_torn_lines(tmp_path, monkeypatch):
    root = str(tmp_path)
    monkeypatch.setattr(events, "LIMIT", 4096)
    for i in range(300):
        events.emit(root, "container", "start", f"{i:064x}", {"name": f"c{i}"})
    d = events.journal_dir(root)
    sizes = {n: os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.startswith("journal")}
    assert "journal.1" in sizes and set(sizes) <= {"journal", "journal.1"} and all(s <= 4096 + 200 for s in sizes.values())
    got = [int(e.actor, 16) for e in events.read(root)]
    assert got == list(range(got[0], 300)) and len(got) > 20  # the newest, in order, none twice
    # a torn last line (power loss mid-write) costs that line only
    with open(os.path.join(d, "journal"), "ab") as f:
        f.write(b'[1,"container","st')
    events.emit(root, "container", "die", "f" * 64, {"name": "after"})
    assert [e.attributes["name"] for e in events.read(root)][-2:] == ["c299", "after"]


def test_volume_and_network_events_match_docker(bb):
    docker = need_tool("docker")
    name = f"lamina-evn-{uuid.uuid4().hex[:8]}"
    # a volume's actor is its name; a network's its ID, with its name as attribute
    fmt = "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.driver}}"

    def dk(*args):
        return subprocess.run([docker, *args], check=True, capture_output=True, text=True)

    def steps(cli):
        cli("volume", "create", name)
        cli("volume", "rm", name)
        cli("network", "create", name)
        cli("network", "rm", name)

    def keep(out: str) -> list[str]:
        return [re.sub(r"\b[0-9a-f]{64}\b", "ID", l) for l in out.splitlines() if name in l]
    since = _now()
    try:
        steps(dk)
        dend = _now()
        steps(bb)
        lend = _now()
        dout = keep(dk("events", "--since", since, "--until", dend, "--format", fmt).stdout)
        lout = keep(bb("events", "--since", since, "--until", lend, "--format", fmt).out)
        assert lout == dout
        assert [l.split()[:2] for l in lout] == [["volume", "create"], ["volume", "destroy"],
                                                 ["network", "create"], ["network", "destroy"]]
    finally:
        subprocess.run([docker, "volume", "rm", name], capture_output=True)
        subprocess.run([docker, "network", "rm", name], capture_output=True)
