"""The ps index: what ``ps`` shows of a container, kept beside its record.

``ps`` is the command users run most, and the one they time: reading every container's
whole inspect record (JSON) and parsing its timestamps costs more than the listing itself
(importing json alone pulls in re and enum). So every write of a record
(:meth:`lamina.runtime.containers.Containers.update` and ``create``) stores, in the same
transaction, the ``ps`` column of its row: :func:`encode` of the record, a small dict of the
fields ``ps`` prints and filters on, serialised with :mod:`marshal` (built into the
interpreter: decoding costs no import).

Contract: the index is a pure function of the record, written atomically with it, so it
is never newer or older than the record. A reader that finds it missing (a row an older
lamina wrote), from another format :data:`VERSION`, or undecodable, derives it from the
record instead (:func:`decode` returns None: call :func:`from_record`). Liveness (is the
recorded process still the one running?) is not in the index: ``ps`` checks it each time.
"""

from __future__ import annotations

import marshal

from lamina.procs import pid_start

#: bumped whenever the fields below change: an index of another version is ignored
VERSION = 2


def process_alive(pid: int | None, start: str | None) -> bool:
    """True if ``pid`` runs and is the same process (same start time) that was recorded."""
    return bool(pid) and start is not None and pid_start(pid) == start


def _epoch(text: str | None) -> float:
    if not text or text.startswith("0001-"):
        return 0.0
    from lamina.timefmt import parse_time
    return parse_time(text) or 0.0


def port_list(doc: dict) -> list[tuple[int, str, int, str]]:
    """(private port, host IP, public port, proto) of a container, as the API's Port list."""
    out = []
    for key, binds in ((doc.get("NetworkSettings") or {}).get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if binds:
            out += [(int(port), b["HostIp"], int(b["HostPort"] or 0), proto) for b in binds]
        else:
            out.append((int(port), "", 0, proto))
    return sorted(out)


def from_record(doc: dict) -> dict:
    """The index entry of record ``doc``."""
    st = doc.get("State") or {}
    cfg = doc.get("Config") or {}
    health = st.get("Health") or None
    return {
        "v": VERSION,
        "id": doc["Id"], "name": doc.get("Name", "").lstrip("/"), "created": _epoch(doc.get("Created")),
        "image": cfg.get("Image") or "", "ref": (doc.get("Lamina") or {}).get("ImageRef"),
        "image_id": doc.get("Image") or "",
        "command": " ".join([doc.get("Path") or "", *(f"'{a}'" if " " in a else a for a in doc.get("Args") or ())]),
        "status": st.get("Status") or "", "running": bool(st.get("Running")), "paused": bool(st.get("Paused")),
        "exit_code": int(st.get("ExitCode") or 0), "started": _epoch(st.get("StartedAt")),
        "finished": _epoch(st.get("FinishedAt")), "pid": int(st.get("Pid") or 0), "pid_start": st.get("PidStart"),
        "monitor_pid": int(st.get("MonitorPid") or 0), "monitor_start": st.get("MonitorStart"),
        "health": health.get("Status") if isinstance(health, dict) else None,
        "ports": port_list(doc),
        "labels": dict(cfg.get("Labels") or {}),
        "mounts": [(m.get("Name") or m.get("Source") or "", m.get("Driver") or "", m.get("Destination") or "")
                   for m in doc.get("Mounts") or ()],
        "networks": sorted((doc.get("NetworkSettings") or {}).get("Networks") or ()),
        "network_mode": (doc.get("HostConfig") or {}).get("NetworkMode") or "",
    }


def encode(doc: dict) -> bytes:
    """The ``ps`` column for record ``doc``."""
    return marshal.dumps(from_record(doc))


def decode(blob) -> dict | None:
    """The index entry stored in a ``ps`` column, or None when there is none usable."""
    if not blob:
        return None
    try:
        entry = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return None
    if type(entry) is not dict or entry.get("v") != VERSION:
        return None
    return entry
