"""The event journal: what ``lamina events`` reports, kept on disk because lamina has no daemon.

Every lamina process that changes something Docker reports an event for (a container
created, started, dead; an image pulled, tagged, deleted; a network connected ...) appends
one line to the store's journal; ``events`` reads it back, and follows it live::

    <root>/events/            0700
      journal                 0600  append-only, one event a line
      journal.1               0600  the journal before the last rotation
      rotate.lock             0600  flock(2): one rotation at a time

A line is the JSON array ``[time_nano, type, action, actor_id, {attributes}]``.

Contracts:

- :func:`emit` is one ``write(2)`` on an ``O_APPEND`` descriptor: lines of concurrent writers
  never interleave, and a kill -9 leaves whole lines only (a reader skips a line that does
  not end in a newline or does not parse, and a writer that finds the journal not ending in
  a newline starts its line with one, so even a torn write on power loss costs one event).
  It never raises: losing an event must not fail the command that made it.
- Bounded: once ``journal`` passes :data:`LIMIT` bytes the writer that noticed renames it over
  ``journal.1`` (under ``rotate.lock``, after checking nobody rotated first), so the journal
  never holds much more than twice LIMIT. A writer that opened the old file just before the
  rotation lands its line in ``journal.1``, which readers still read.
- Readers (:func:`read`, :func:`follow`) open ``journal`` before ``journal.1`` and skip the
  second when it is the first one rotated meanwhile (same inode); a follower that reaches
  the end of a journal that was rotated away goes on with the new one.

Importing this module is cheap (os and time; json when a line is written or read).
"""

from __future__ import annotations

import os
import time

__all__ = ["LIMIT", "Event", "emit", "container_event", "image_event", "read", "follow", "journal_dir"]

#: Size after which the journal is rotated (bytes). ~250 bytes an event: ~4000 events a file.
LIMIT = 1 << 20

_DIR = "events"
_JOURNAL = "journal"
_OLD = "journal.1"


def journal_dir(root: str) -> str:
    return os.path.join(root, _DIR)


class Event:
    """One event: ``time_nano`` (ns since the epoch), ``type`` (container, image, network,
    volume), ``action`` (create, die, health_status: healthy ...), the actor's ID and its
    attributes (name, image, exitCode ...)."""

    __slots__ = ("time_nano", "type", "action", "actor", "attributes")

    def __init__(self, time_nano: int, type: str, action: str, actor: str, attributes: dict) -> None:
        self.time_nano = time_nano
        self.type = type
        self.action = action
        self.actor = actor
        self.attributes = attributes

    def __repr__(self) -> str:
        return f"Event({self.time_nano}, {self.type!r}, {self.action!r}, {self.actor[:12]!r}, {self.attributes!r})"


def emit(root: str, type: str, action: str, actor: str, attributes: dict | None = None) -> None:
    """Append one event to the journal of the store at ``root`` (see the module contracts)."""
    try:
        import json
        line = json.dumps([time.time_ns(), type, action, actor, attributes or {}],
                          separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        if len(line) > 65536:  # labels can be long: an event stays one small write
            attrs = {k: v for k, v in (attributes or {}).items() if k in ("name", "image", "exitCode", "signal")}
            line = json.dumps([time.time_ns(), type, action, actor, attrs], separators=(",", ":")).encode() + b"\n"
        d = journal_dir(root)
        path = os.path.join(d, _JOURNAL)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            os.mkdir(d, 0o700)
            fd = os.open(path, flags, 0o600)
        try:
            end = os.fstat(fd).st_size
            if end and os.pread(fd, 1, end - 1) != b"\n":
                line = b"\n" + line  # after a torn line (power loss): end it, lose only it
            os.write(fd, line)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if st.st_size > LIMIT:
            _rotate(d, st)
    except (OSError, ValueError, TypeError):
        pass


def _rotate(d: str, mine: os.stat_result) -> None:
    """Rename the journal over journal.1 unless another writer did it first."""
    import fcntl
    fd = os.open(os.path.join(d, "rotate.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            cur = os.stat(os.path.join(d, _JOURNAL))
        except FileNotFoundError:
            return
        if (cur.st_dev, cur.st_ino) == (mine.st_dev, mine.st_ino) and cur.st_size > LIMIT:
            os.rename(os.path.join(d, _JOURNAL), os.path.join(d, _OLD))
    finally:
        os.close(fd)


def container_event(root: str, doc: dict, action: str, **extra: str) -> None:
    """Emit a container event for the record ``doc``: Docker's attributes are the container's
    labels, ``image`` (as the user named it) and ``name``, plus ``extra`` (exitCode, signal,
    execID ...)."""
    cfg = doc.get("Config") or {}
    attrs = dict(cfg.get("Labels") or {})
    attrs["image"] = cfg.get("Image") or doc.get("Image", "")
    attrs["name"] = doc.get("Name", "").lstrip("/")
    attrs.update(extra)
    emit(root, "container", action, doc["Id"], attrs)


def image_event(root: str, image_id: str, action: str, name: str | None = None) -> None:
    """Emit an image event: ``image_id`` (``sha256:...``) as actor, ``name`` (the image ID
    when not given, as dockerd names untag, delete, load, save and import events)."""
    emit(root, "image", action, str(image_id), {"name": str(name if name is not None else image_id)})


def _parse(line: bytes) -> Event | None:
    import json
    try:
        t, typ, action, actor, attrs = json.loads(line)
        if type(t) is not int or not isinstance(attrs, dict):
            return None
        return Event(t, str(typ), str(action), str(actor), attrs)
    except (ValueError, TypeError):
        return None


class _Cursor:
    """Reads whole lines of one journal file from a position; keeps a torn tail for later."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        st = os.fstat(fd)
        self.ident = (st.st_dev, st.st_ino)

    def lines(self):
        while True:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                break
            self.buf += chunk
            *whole, self.buf = self.buf.split(b"\n")
            for line in whole:
                ev = _parse(line)
                if ev is not None:
                    yield ev

    def close(self) -> None:
        os.close(self.fd)


def _open(path: str) -> _Cursor | None:
    try:
        return _Cursor(os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW))
    except FileNotFoundError:
        return None


def _open_both(root: str) -> tuple[_Cursor | None, _Cursor | None]:
    d = journal_dir(root)
    cur = _open(os.path.join(d, _JOURNAL))  # first: what is rotated away meanwhile stays ours
    old = _open(os.path.join(d, _OLD))
    if cur is not None and old is not None and old.ident == cur.ident:
        old.close()
        old = None
    return cur, old


def read(root: str, *, since: int | None = None, until: int | None = None):
    """The journal's events with ``since <= time_nano <= until`` (ns; None: unbounded), oldest
    first, as they are now."""
    cur, old = _open_both(root)
    try:
        for c in (old, cur):
            if c is None:
                continue
            for ev in c.lines():
                if (since is None or ev.time_nano >= since) and (until is None or ev.time_nano <= until):
                    yield ev
    finally:
        for c in (old, cur):
            if c is not None:
                c.close()


def follow(root: str, *, since: int | None = None, until: int | None = None, poll: float = 0.05):
    """Events as they are written: those already in the journal from ``since`` on (none when
    ``since`` is None: only what happens from now), then new ones, until the clock passes
    ``until`` (forever when None). Survives rotations."""
    cur, old = _open_both(root)
    try:
        if old is not None:
            if since is not None:
                for ev in old.lines():
                    if ev.time_nano >= since and (until is None or ev.time_nano <= until):
                        yield ev
            old.close()
            old = None
        if cur is not None and since is None:
            os.lseek(cur.fd, 0, os.SEEK_END)  # only what comes next
        path = os.path.join(journal_dir(root), _JOURNAL)
        while True:
            if cur is not None:
                for ev in cur.lines():
                    if until is not None and ev.time_nano > until:
                        return
                    if since is None or ev.time_nano >= since:
                        yield ev
            if until is not None and time.time_ns() > until:
                return
            # rotated away (or created): finish the old file, then go on with the new one
            try:
                st = os.stat(path)
                ident = (st.st_dev, st.st_ino)
            except FileNotFoundError:
                ident = None
            if ident is not None and (cur is None or ident != cur.ident):
                nxt = _open(path)
                if cur is not None:
                    for ev in cur.lines():
                        if since is None or ev.time_nano >= since:
                            yield ev
                    cur.close()
                cur = nxt
                continue
            time.sleep(poll)
    finally:
        for c in (old, cur):
            if c is not None:
                c.close()
