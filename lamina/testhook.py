"""Pause points, so tests can make races deterministic (a file edited between the moment the
builder hashed it and the moment it copied it, ...). Never used outside tests.

``LAMINA_TEST_PAUSE=<point>[#<n>]=<dir>`` makes the process stop the ``n``-th time (default:
the first) it reaches ``pause("<point>")``: it writes the point's name into the FIFO
``<dir>/reached`` (blocking until the test opens it) and then waits until the test has opened
and closed the FIFO ``<dir>/resume``. The test creates both FIFOs, reads ``reached`` (so it
knows the builder is there), does what it wants, and opens ``resume`` for writing to let it
go: no sleeps, no timing. Without the variable a pause point costs one dict lookup.

Points: ``copy-hashed`` (a COPY/ADD step computed its sources' checksum, before the cache
lookup and the copy), ``build-done`` (a full build finished, its replay memo recorded or
dropped, before the process exits), ``refresh-active`` (``Containers.refresh`` holds a record
it read as running, before it checks whether the process and its monitor are alive).
"""

from __future__ import annotations

import os

_count: dict[str, int] = {}


def pause(point: str) -> None:
    spec = os.environ.get("LAMINA_TEST_PAUSE")
    if not spec:
        return
    name, _, where = spec.partition("=")
    name, _, nth = name.partition("#")
    if name != point:
        return
    _count[point] = _count.get(point, 0) + 1
    if _count[point] != int(nth or 1):
        return
    with open(os.path.join(where, "reached"), "w") as f:
        f.write(point + "\n")
    with open(os.path.join(where, "resume")) as f:
        f.read()
