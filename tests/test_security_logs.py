"""Issue 7, item 10: a container's output cannot grow lamina's memory.

A 300 MB line from a ``-m 64m`` container: the json-file log holds it as 16 KiB records
(Docker's partial records), the process that copies it (the monitor, or a foreground
``run``) stays small, and ``logs`` gives the bytes back intact, streaming.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

from conftest import REPO
from containers_util import bb, until  # noqa: F401  (fixture)

SIZE = 300_000_000
LINE = f"head -c {SIZE} /dev/zero | tr '\\0' a; echo; echo done"



def _expected() -> str:
    """sha256 of what the container writes (one 300 MB line, then a short one), hashed in
    pieces: this test process must stay small, its children's peak RSS is measured."""
    h = hashlib.sha256()
    block = b"a" * (1 << 20)
    for _ in range(SIZE >> 20):
        h.update(block)
    h.update(b"a" * (SIZE & ((1 << 20) - 1)) + b"\ndone\n")
    return h.hexdigest()


EXPECTED = _expected()
# a Python process with lamina's modules is ~30-40 MB; one copy of the line alone is 300 MB
RSS_LIMIT_KB = 120 * 1024


def _vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


# Runs a command and reports its peak RSS. ru_maxrss of a child also counts the memory of
# the process it was forked from (the mm it replaced at exec), so a small process forks it.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
os.write(2, b"MAXRSS %d\\n" % usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _hash_stream(cmd: list[str], env: dict) -> tuple[str, int, int]:
    """sha256 of a command's stdout read in chunks; (digest, exit code, peak RSS in KiB)."""
    p = subprocess.Popen([sys.executable, "-c", _MEASURE, *cmd], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, cwd=REPO)
    h = hashlib.sha256()
    while True:
        chunk = p.stdout.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
    err = p.stderr.read().decode(errors="replace")
    code = p.wait()
    assert code == 0, err
    rss = [int(line.split()[1]) for line in err.splitlines() if line.startswith("MAXRSS ")]
    assert len(rss) == 1, err
    return h.hexdigest(), code, rss[0]


def _check_records(path: str) -> None:
    sizes = []
    with open(path, "rb") as f:
        for raw in f:
            sizes.append(len(json.loads(raw)["log"]))
    full, rest = divmod(SIZE, 16384)
    assert sizes[:full] == [16384] * full  # partial records of exactly 16 KiB, no newline
    assert sizes[full:] == [rest + 1, 5], sizes[full:]  # the rest of the line + "\n", "done\n"


def test_300mb_line_through_the_monitor(bb):
    cid = bb("run", "-d", "-m", "64m", "busybox", "sh", "-c", f"{LINE}; exec sleep 1000").out.strip()
    doc = json.loads(bb("inspect", cid).out)[0]
    log = doc["LogPath"]
    monitor = int(bb("inspect", "-f", "{{.State.MonitorPid}}", cid).out)

    def done() -> bool:
        try:
            with open(log, "rb") as f:
                f.seek(max(0, os.path.getsize(log) - 200))
                return b'"log": "done\\n"' in f.read()
        except FileNotFoundError:
            return False

    until(done, timeout=600, what="the 300 MB line and 'done' in the log")
    hwm = _vm_hwm_kb(monitor)
    assert hwm < RSS_LIMIT_KB, f"the monitor grew to {hwm} KiB"
    _check_records(log)
    digest, _, logs_rss = _hash_stream([sys.executable, "-m", "lamina", "logs", cid], bb.env)
    assert digest == EXPECTED
    assert logs_rss < RSS_LIMIT_KB, f"logs grew to {logs_rss} KiB"
    digest, _, _ = _hash_stream([sys.executable, "-m", "lamina", "logs", "--tail", "1", cid], bb.env)
    assert digest == hashlib.sha256(b"done\n").hexdigest()
    bb("rm", "-f", cid)


def test_300mb_line_through_a_foreground_run(bb):
    # the caller copies to its stdout and into the log: neither may hold the line
    t = time.monotonic()
    digest, code, rss = _hash_stream([sys.executable, "-m", "lamina", "run", "--name", "fg", "-m", "64m",
                                      "busybox", "sh", "-c", LINE], bb.env)
    print(f"\n300 MB line through run: {time.monotonic() - t:.1f} s, peak RSS {rss} KiB")
    assert digest == EXPECTED and code == 0
    assert rss < RSS_LIMIT_KB, f"lamina run grew to {rss} KiB"
    _check_records(json.loads(bb("inspect", "fg").out)[0]["LogPath"])
    bb("rm", "-f", "fg")
