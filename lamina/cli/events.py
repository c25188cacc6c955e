"""``events`` (and ``system events``): the store's event journal (lamina.events), printed and
filtered as ``docker events`` prints and filters the daemon's events."""

from __future__ import annotations

import sys
import time

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument

#: the filter keys dockerd accepts for events (others: "Invalid filter 'x'")
FILTER_KEYS = ("config", "container", "daemon", "event", "image", "label", "network", "node", "plugin",
               "scope", "secret", "service", "type", "volume")


def get_timestamp(value: str, now_ns: int) -> int:
    """Docker's ``--since``/``--until`` value (``timetypes.GetTimestamp``) in nanoseconds: a Go
    duration before now (truncated to whole seconds, as Docker's client sends it), an RFC 3339
    date or date-time (local time without a zone), or Unix seconds ``1700000000[.123]``."""
    from lamina.duration import parse_go_duration
    d = parse_go_duration(value)
    if d is not None and value != "0":
        return (now_ns - d) // 1_000_000_000 * 1_000_000_000
    import re
    m = re.fullmatch(r"(\d+)(?:\.(\d{1,9}))?", value)
    if m and "-" not in value:
        return int(m.group(1)) * 1_000_000_000 + int((m.group(2) or "0").ljust(9, "0"))
    t = _parse_date(value)
    if t is None:
        raise InvalidArgument(f'failed to parse value as time or duration: "{value}"')
    return t


def _parse_date(value: str) -> int | None:
    import re
    from datetime import UTC, datetime, timedelta, timezone
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
                     r"(Z|z|[+-]\d{2}:\d{2})?", value)
    if not m:
        return None
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None
    if zone in ("Z", "z"):
        dt = dt.replace(tzinfo=UTC)
    elif zone:
        sign = 1 if zone[0] == "+" else -1
        dt = dt.replace(tzinfo=timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))))
    else:
        dt = dt.astimezone()  # local time, as Docker's ParseInLocation
    return int(dt.timestamp()) * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def rfc3339_nano_fixed(ns: int) -> str:
    """Go's ``2006-01-02T15:04:05.000000000Z07:00`` in local time (the events time column)."""
    sec, frac = divmod(ns, 1_000_000_000)
    lt = time.localtime(sec)
    off = lt.tm_gmtoff
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f".{frac:09d}" + zone


def pretty(ev) -> str:
    """One event as ``docker events`` prints it."""
    line = f"{rfc3339_nano_fixed(ev.time_nano)} {ev.type} {ev.action} {ev.actor}"
    if ev.attributes:
        line += " (" + ", ".join(f"{k}={ev.attributes[k]}" for k in sorted(ev.attributes)) + ")"
    return line


def message(ev):
    """The event as Docker's ``events.Message`` for ``--format`` templates (``.Type``,
    ``.Action``, ``.Actor.ID``, ``.Actor.Attributes``, ``.Status``, ``.ID``, ``.From``,
    ``.Scope``, ``.Time``, ``.TimeNano``), JSON-encoded with its json tags."""
    from lamina.gotemplate.values import GoStruct
    legacy = ev.type in ("container", "image")
    fields = [("Status", ev.action if legacy else ""), ("ID", ev.actor if legacy else ""),
              ("From", ev.attributes.get("image", "") if ev.type == "container" else ""),
              ("Type", ev.type), ("Action", ev.action),
              ("Actor", GoStruct([("ID", ev.actor), ("Attributes", dict(ev.attributes))], "events.Actor")),
              ("Scope", "local"), ("Time", ev.time_nano // 1_000_000_000), ("TimeNano", ev.time_nano)]
    return GoStruct(fields, "*events.Message",
                    json_keys={"Status": ("status", True), "ID": ("id", True), "From": ("from", True),
                               "Scope": ("scope", False), "Time": ("time", True), "TimeNano": ("timeNano", True)})


def _strip_tag(ref: str) -> str:
    """moby's stripTag: a reference without its tag (digests are kept)."""
    if "@" in ref:
        return ref
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


class Filters:
    """Docker's event filters (moby daemon/events/filter.go): values of one key are ORed,
    keys ANDed; container, network and volume match the actor's ID or name by prefix, event
    exactly (by prefix when a value is health_status, exec_create or exec_start), image the
    ID or image name with or without its tag, label ``k`` or ``k=v`` the attributes."""

    def __init__(self, specs: list[str]) -> None:
        self.f: dict[str, list[str]] = {}
        for s in specs:
            k, sep, v = s.partition("=")
            if not sep:
                raise InvalidArgument(f"bad format of filter (expected name=value): {s}")
            if k not in FILTER_KEYS:
                raise InvalidArgument(f"Invalid filter '{k}'")
            self.f.setdefault(k, []).append(v)

    def _exact(self, key: str, value: str) -> bool:
        vals = self.f.get(key)
        return vals is None or value in vals

    def _fuzzy(self, key: str, value: str) -> bool:
        vals = self.f.get(key)
        return vals is None or any(value == v or value.startswith(v) for v in vals)

    def _name(self, ev, key: str) -> bool:
        if key not in self.f:
            return True
        return self._fuzzy(key, ev.actor) or self._fuzzy(key, ev.attributes.get("name", ""))

    def include(self, ev) -> bool:
        if "event" in self.f:
            vals = self.f["event"]
            if any(v in ("health_status", "exec_create", "exec_start") for v in vals):
                if not self._fuzzy("event", ev.action):
                    return False
            elif ev.action not in vals:
                return False
        if not self._exact("type", ev.type) or not self._exact("scope", "local"):
            return False
        if not (self._name(ev, "container") and self._name(ev, "network") and self._name(ev, "volume")):
            return False
        if "image" in self.f:
            name = ev.attributes.get("name" if ev.type == "image" else "image", "")
            if not any(self._exact("image", x) for x in (ev.actor, name, _strip_tag(ev.actor), _strip_tag(name))):
                return False
        for key in ("daemon", "plugin", "node", "service", "secret", "config"):
            if key in self.f:
                return False  # lamina has none of these actors
        for spec in self.f.get("label", ()):
            k, sep, v = spec.partition("=")
            if k not in ev.attributes or (sep and ev.attributes[k] != v):
                return False
        return True


def cmd_events(argv, ctx) -> int:
    p = Parser("events", "[OPTIONS]", "Get real time events from the server")
    p.option("-f", "--filter", append=True, metavar="filter", help="Filter output based on conditions provided")
    p.option("--format", metavar="string", help="Format the output using the given Go template")
    p.option("--since", metavar="string", help="Show all events created since timestamp")
    p.option("--until", metavar="string", help="Stream events until this timestamp")
    p.args("args", max=0)
    a = parse(p, argv)
    from lamina import events
    now = time.time_ns()
    since = get_timestamp(a.since, now) if a.since else None
    until = get_timestamp(a.until, now) if a.until else None
    filters = Filters(a.filter)
    tmpl = None
    if a.format:
        from lamina.cli.table import prepare_format
        from lamina.gotemplate.template import compile_template
        tmpl = compile_template(prepare_format(a.format)[1])
    root = ctx.store.root
    out = sys.stdout

    def show(ev) -> None:
        if not filters.include(ev):
            return
        out.write((tmpl.render(message(ev)) if tmpl is not None else pretty(ev)) + "\n")
        out.flush()
    if until is not None and until <= time.time_ns():
        for ev in events.read(root, since=since, until=until):
            show(ev)
        return 0
    if since is None and until is not None:
        since = 0
    for ev in events.follow(root, since=since, until=until):
        show(ev)
    return 0
