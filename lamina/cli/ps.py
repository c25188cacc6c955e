"""``ps`` (``container ls``): Docker's container list, from the ps index.

The list comes from the ``ps`` column of the containers table (lamina.runtime.psindex), not
from the records: no JSON, no datetime parsing, nothing of the runtime is loaded unless a
row needs it. A container the index says is running is checked against /proc (its init's,
or its monitor's, pid and start time); one whose processes are gone, or a row without a
usable index, goes through :class:`lamina.runtime.containers.Containers` (which records the
exit), as does a store with container directories but no rows (a crashed ``create``).

Columns and rules are docker/cli's: CREATED is RunningFor (CreatedAt is the timestamp),
STATUS carries the health (``Up 5 seconds (healthy)``), IMAGE is the image's ID once the tag
the container was created from names another image, SIZE (``-s``, or a format that reads
``.Size``) is the container's writable layer and, in parentheses, that plus its image.
"""

from __future__ import annotations

import os
import sys
import time

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
              "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE",
              "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM"}

FILTERS = ("ancestor", "before", "expose", "exited", "health", "id", "is-task", "isolation", "label", "name",
           "network", "publish", "since", "status", "volume")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTHS = ("starting", "healthy", "unhealthy", "none")


def _parser() -> Parser:
    p = Parser("ps", "[OPTIONS]", "List containers")
    p.flag("-a", "--all", help="Show all containers (default shows just running)")
    p.option("-f", "--filter", append=True, metavar="filter", help="Filter output based on conditions provided")
    p.option("--format", help="Pretty-print containers using a Go template")
    p.option("-n", "--last", metavar="int", help="Show n last created containers (includes all states)")
    p.flag("-l", "--latest", help="Show the latest created container (includes all states)")
    p.flag("--no-trunc", help="Don't truncate output")
    p.flag("-q", "--quiet", help="Only display container IDs")
    p.flag("-s", "--size", help="Display total file sizes")
    p.args("args", max=0)
    return p


def entries(store) -> list[dict]:
    """Every container's index entry, true now: rows without a usable index and containers
    whose processes are gone go through the runtime (which records the exit)."""
    from lamina.runtime import psindex
    rows = store.db.query("SELECT id, ps FROM containers")
    out, slow = [], []
    for cid, blob in rows:
        e = psindex.decode(blob)
        if e is None:
            slow.append(cid)
            continue
        active = e["running"] or e["status"] in ("running", "paused", "restarting")
        if active and not (psindex.process_alive(e["pid"], e["pid_start"])
                           or psindex.process_alive(e["monitor_pid"], e["monitor_start"])):
            slow.append(cid)
            continue
        out.append(e)
    try:
        orphans = len(os.listdir(store.containers_dir)) > len(rows)
    except FileNotFoundError:
        orphans = False
    if slow or orphans:
        from lamina.errors import NotFound
        from lamina.runtime.containers import Containers
        cs = Containers(store)
        if orphans:
            cs.gc_orphans()
        stale = []
        for cid in slow:
            try:
                doc = cs.get(cid)  # refreshed: a container whose processes are gone is recorded exited
            except NotFound:
                continue  # removed meanwhile
            out.append(psindex.from_record(doc))
            stale.append(doc)
        _backfill(store, stale)
    return out


def _backfill(store, docs: list[dict]) -> None:
    """Store the index of rows an older lamina wrote without one (once: the record is
    rewritten only if it is still what was read)."""
    import json

    from lamina.runtime import psindex
    missing = {r[0] for r in store.db.query("SELECT id FROM containers WHERE ps IS NULL")}
    todo = [d for d in docs if d["Id"] in missing]
    if not todo:
        return
    with store.db.tx() as c:
        for d in todo:
            row = c.execute("SELECT data FROM containers WHERE id=? AND ps IS NULL", (d["Id"],)).fetchone()
            if row is not None and json.loads(row[0]) == d:
                c.execute("UPDATE containers SET ps=? WHERE id=?", (psindex.encode(d), d["Id"]))


def _status(e: dict, now: float) -> str:
    """docker's State.String() for the STATUS column."""
    from lamina.cli.units import human_duration
    s = e["status"]
    if s == "created":
        return "Created"
    if s == "restarting":
        return f"Restarting ({e['exit_code']}) {human_duration(now - (e['finished'] or now))} ago"
    if e["running"]:
        up = f"Up {human_duration(now - (e['started'] or now))}"
        if e["paused"]:
            return up + " (Paused)"
        h = e.get("health")
        if h:
            return f"{up} ({'health: starting' if h == 'starting' else h})"
        return up
    if s == "exited":
        ago = f" {human_duration(now - e['finished'])} ago" if e["finished"] > 0 else ""
        return f"Exited ({e['exit_code']}){ago}"
    return s


def _command(cmd: str, trunc: bool) -> str:
    if trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    if cmd.isprintable() and '"' not in cmd and "\\" not in cmd:
        return f'"{cmd}"'  # the common case: nothing to escape
    out = ['"']
    for ch in cmd:  # strconv.Quote of what is printable here: \ and " escaped
        out.append("\\" + ch if ch in '\\"' else ch if ch.isprintable() else repr(ch)[1:-1])
    out.append('"')
    return "".join(out)


def display_ports(ports) -> str:
    """ps's PORTS, as docker/cli's DisplayablePorts: runs of unpublished (or published on the
    same port number) ports grouped as ``80-81/tcp``/``0.0.0.0:80-81->80-81/tcp``, in order
    of first appearance, then ``ip:public->private/proto`` for the others."""
    groups: dict[str, list[int]] = {}
    result, mappings = [], []

    def form(key: str, first: int, last: int) -> str:
        ip, _, kind = key.rpartition("/")
        g = str(first) if first == last else f"{first}-{last}"
        return f"{ip}:{g}->{g}/{kind}" if ip else f"{g}/{kind}"
    for private, ip, public, proto in ports:
        key = proto
        if ip:
            if public != private:
                mappings.append(f"{ip}:{public}->{private}/{proto}")
                continue
            key = f"{ip}/{proto}"
        g = groups.get(key)
        if g is None:
            groups[key] = [private, private]
        elif private == g[1] + 1:
            g[1] = private
        else:
            result.append(form(key, *g))
            groups[key] = [private, private]
    result += [form(k, *g) for k, g in groups.items()]
    return ", ".join(result + mappings)


def _ellipsis(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "…"


def _go_time(ts: float) -> str:
    """Go's ``time.Unix(ts, 0).String()`` in local time: ``2026-11-30 10:20:52 +0000 UTC``."""
    t = time.localtime(int(ts))
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", t) + (time.strftime("%Z", t) or "UTC")


def _moved(db, items: list[dict]) -> set[str]:
    """IDs of the containers whose tag now names another image than theirs."""
    refs = {e["ref"] for e in items if e.get("ref")}
    if not refs:
        return set()
    marks = ",".join("?" * len(refs))
    now = dict(db.query("SELECT tags.name, images.config FROM tags JOIN images ON images.manifest = tags.manifest "
                        f"WHERE tags.name IN ({marks})", tuple(refs)))
    return {e["id"] for e in items if e.get("ref") and now.get(e["ref"]) != e["image_id"]}


def _truncate_id(s: str) -> str:
    return s.partition(":")[2][:12] if ":" in s else s[:12]


def _familiar(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _image(e: dict, moved: bool, trunc: bool) -> str:
    """docker/cli's IMAGE: the name the container was created from, in familiar form (a
    digest reference shows its name, or name:tag), or the image's ID once that name finds
    another image (the daemon's rule)."""
    image = e["image_id"] if moved else e["image"]
    if not image:
        return "<no image>"
    if not trunc:
        return image
    if _truncate_id(e["image_id"]) == _truncate_id(image):
        return _truncate_id(e["image_id"])
    return _familiar(image.partition("@")[0])


class _Filters:
    def __init__(self, specs: list[str]) -> None:
        self.f: dict[str, list[str]] = {}
        for spec in specs:
            k, sep, v = spec.partition("=")
            if not sep:
                raise InvalidArgument(f"bad format of filter (expected name=value): {spec}")
            if k not in FILTERS:
                raise InvalidArgument(f"Invalid filter '{k}'")
            self.f.setdefault(k, []).append(v)
        for v in self.f.get("status", ()):
            if v not in STATUSES:
                raise InvalidArgument(f"Invalid filter 'status={v}'")
        for v in self.f.get("health", ()):
            if v not in HEALTHS:
                raise InvalidArgument(f"Unrecognised filter value for health: {v}")
        for v in self.f.get("exited", ()):
            if not v.lstrip("-").isdigit():
                raise InvalidArgument(f"Invalid filter 'exited={v}'")

    def __contains__(self, key: str) -> bool:
        return key in self.f

    def _created_of(self, items: list[dict], key: str) -> float | None:
        vals = self.f.get(key)
        if not vals:
            return None
        for e in items:
            if vals[-1] in (e["id"], e["name"]) or (len(vals[-1]) >= 1 and e["id"].startswith(vals[-1])):
                return e["created"]
        from lamina.errors import NotFound
        raise NotFound(f"No such container: {vals[-1]}")

    def keep(self, items: list[dict], store) -> list[dict]:
        f = self.f
        if not f:
            return items
        before, since = self._created_of(items, "before"), self._created_of(items, "since")
        ancestors = self._ancestor_ids(store) if "ancestor" in f else None
        name_res = None
        if "name" in f:
            import re
            name_res = [re.compile(v) for v in f["name"]]
        out = []
        for e in items:
            word = "paused" if e["paused"] else e["status"]
            if "status" in f and word not in f["status"]:
                continue
            if name_res is not None and not any(r.search(e["name"]) for r in name_res):
                continue
            if "id" in f and not any(e["id"].startswith(v) for v in f["id"]):
                continue
            if "exited" in f and not (e["status"] == "exited" and str(e["exit_code"]) in f["exited"]):
                continue
            if "health" in f and (e.get("health") or "none") not in f["health"]:
                continue
            if ancestors is not None and e["image_id"] not in ancestors:
                continue
            if "label" in f:
                labels = e["labels"]
                if not all(k in labels and (not sep or labels[k] == v)
                           for k, sep, v in (x.partition("=") for x in f["label"])):
                    continue
            if "network" in f and not any(n in f["network"] for n in e["networks"]):
                continue
            if "volume" in f and not any(name in f["volume"] or dest in f["volume"] for name, _, dest in e["mounts"]):
                continue
            if before is not None and not e["created"] < before:
                continue
            if since is not None and not e["created"] > since:
                continue
            if "publish" in f or "expose" in f:
                ok = True
                for key, public in (("publish", True), ("expose", False)):
                    for v in f.get(key, ()):
                        port, _, proto = v.partition("/")
                        ok = ok and any((str(pub if public else priv) == port) and pr == (proto or "tcp")
                                        and (ip or not public) for priv, ip, pub, pr in e["ports"])
                if not ok:
                    continue
            out.append(e)
        return out

    def _ancestor_ids(self, store) -> set[str]:
        """Image IDs (config digests) of each ancestor filter's image and its descendants."""
        from lamina.errors import NotFound
        from lamina.image.service import Images
        images = Images(store)
        ids: set[str] = set()
        for v in self.f["ancestor"]:
            try:
                rec = images.resolve(v)
            except (NotFound, InvalidArgument):
                continue
            ids.add(str(rec.id))
        frontier = set(ids)
        while frontier:  # children by parent ID (built images)
            marks = ",".join("?" * len(frontier))
            rows = store.db.query(f"SELECT config FROM images WHERE parent IN ({marks})", tuple(frontier))
            frontier = {r[0] for r in rows} - ids
            ids |= frontier
        return ids


def _size(store, e: dict, cache: dict) -> str:
    from lamina.cli.units import human_size
    rw = _dir_size(os.path.join(store.containers_dir, e["id"], "upper"))
    if e["image_id"] not in cache:
        row = store.db.one("SELECT size FROM images WHERE config=?", (e["image_id"],))
        cache[e["image_id"]] = row[0] if row else 0
    virtual = cache[e["image_id"]] + rw
    out = human_size(rw, 3)
    return f"{out} (virtual {human_size(virtual, 3)})" if virtual > 0 else out


def _dir_size(path: str) -> int:
    """Bytes of the regular files and symlinks under ``path``, each inode once (moby's
    directory.Size, what Docker's SizeRw is for overlay2)."""
    total, seen = 0, set()
    stack = [path]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for ent in it:
                try:
                    st = ent.stat(follow_symlinks=False)
                except OSError:
                    continue
                if ent.is_dir(follow_symlinks=False):
                    stack.append(ent.path)
                    continue
                if st.st_nlink > 1:
                    if st.st_ino in seen:
                        continue
                    seen.add(st.st_ino)
                total += st.st_size
    return total


def cmd_ps(argv, ctx) -> int:
    a = parse(_parser(), argv)
    from lamina.cli.args import go_int
    last = go_int(a.last, "-n, --last", bits=32) if a.last not in (None, "") else (1 if a.latest else -1)
    show_all = a.all or last > 0
    filters = _Filters(a.filter)
    store = ctx.store
    items = entries(store)
    items.sort(key=lambda e: e["created"], reverse=True)
    if not show_all and "status" not in filters:
        items = [e for e in items if e["running"]]
    items = filters.keep(items, store)
    if last > 0:
        items = items[:last]
    trunc = not a.no_trunc
    if a.quiet:
        sys.stdout.write("".join((e["id"][:12] if trunc else e["id"]) + "\n" for e in items))
        return 0
    fmt = a.format or PS_TABLE
    if fmt == "table":
        fmt = PS_TABLE
    want_size = a.size or ".Size" in fmt or fmt.strip() in ("json", "{{json .}}")
    if a.size and not a.format:
        fmt += "\t{{.Size}}"
    full = bool(a.format)
    moved = _moved(store.db, items)
    now = time.time()
    sizes: dict = {}
    rows = []
    for e in items:
        row = {"ID": e["id"][:12] if trunc else e["id"], "Image": _image(e, e["id"] in moved, trunc),
               "Command": _command(e["command"], trunc), "RunningFor": _ago(e["created"], now),
               "Status": _status(e, now), "Ports": display_ports(e["ports"]), "Names": e["name"]}
        if full:
            row.update(CreatedAt=_go_time(e["created"]), State="paused" if e["paused"] else e["status"],
                       Labels=",".join(f"{k}={v}" for k, v in sorted(e["labels"].items())),
                       Mounts=",".join(_ellipsis(m[0], 15) if trunc else m[0] for m in e["mounts"]),
                       Networks=",".join(e["networks"]),
                       LocalVolumes=str(sum(1 for m in e["mounts"] if m[1] == "local")),
                       Platform=None, Size="0B", Label=_label_method(e["labels"]))
        if want_size:
            row["Size"] = _size(store, e, sizes)
        rows.append(row)
    from lamina.cli.table import format_table
    if fmt.strip() in ("json", "{{json .}}"):
        for r in rows:
            r.pop("Label", None)
    sys.stdout.write(format_table(rows, fmt, headers=PS_HEADERS, type_name="*formatter.ContainerContext"))
    return 0


def _label_method(labels: dict):
    def label(name: str) -> str:
        return labels.get(name, "")
    return label


def _ago(ts: float, now: float) -> str:
    from lamina.cli.units import human_duration
    return human_duration(now - ts) + " ago"
