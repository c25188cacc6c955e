"""``--change`` instructions (import, commit): Dockerfile lines applied to an image config.

Accepts what Docker accepts there: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER,
VOLUME, WORKDIR (and STOPSIGNAL, HEALTHCHECK is not supported here). Values are not
variable-expanded (Docker does not expand them either) but quotes are processed.
"""

from __future__ import annotations

from lamina.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL")
DEFAULT_SHELL = ["/bin/sh", "-c"]


def unquote(word: str) -> str:
    """Remove shell-style quoting from one word: "a b" -> a b, 'x' -> x, \\" -> "."""
    out = []
    i = 0
    quote = None
    while i < len(word):
        ch = word[i]
        if quote is None:
            if ch in "\"'":
                quote = ch
            elif ch == "\\" and i + 1 < len(word):
                i += 1
                out.append(word[i])
            else:
                out.append(ch)
        elif ch == quote:
            quote = None
        elif ch == "\\" and quote == '"' and i + 1 < len(word) and word[i + 1] in '"\\$`':
            i += 1
            out.append(word[i])
        else:
            out.append(ch)
        i += 1
    if quote is not None:
        raise InvalidArgument(f"unmatched {quote} in {word!r}")
    return "".join(out)


def expose_ports(p: str) -> list[str]:
    """The ExposedPorts keys of one EXPOSE word, as Docker's ``nat.ParsePortSpecs``: ``80``
    -> ``["80/tcp"]``, a range ``8000-8002/udp`` -> one key per port."""
    p = p.strip()
    if not p:
        raise InvalidArgument("empty port in EXPOSE")
    port, _, proto = p.partition("/")
    proto = (proto or "tcp").lower()
    lo, sep, hi = port.partition("-")
    if not lo.isdigit() or (sep and not hi.isdigit()) or not 0 < int(lo) < 65536:
        raise InvalidArgument(f"invalid containerPort: {port}")
    if sep and not int(lo) <= int(hi) < 65536:
        raise InvalidArgument(f"invalid containerPort: {port}")
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid proto: {proto}")
    return [f"{n}/{proto}" for n in range(int(lo), int(hi or lo) + 1)]


def set_env(env: list[str], key: str, value: str) -> list[str]:
    """Set ``key`` in a Docker Env list, in place of an existing entry (order kept)."""
    for i, e in enumerate(env):
        if e.split("=", 1)[0] == key:
            new = list(env)
            new[i] = f"{key}={value}"
            return new
    return env + [f"{key}={value}"]


def apply_changes(config: dict, changes: list[str], *, what: str = "--change") -> dict:
    """Return a copy of the container ``config`` with each change applied in order."""
    cfg = dict(config)
    if not any(line.strip() for line in changes):
        return cfg
    import dockerfile
    for _n, line in enumerate(changes, 1):
        line = line.strip()
        if not line:
            continue
        # argv holds undecodable bytes as surrogates, which the Go parser's bridge cannot
        # encode (it aborted the process): they read as U+FFFD, as Docker stores them
        line = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace") \
            if any("\ud800" <= c <= "\udfff" for c in line) else line
        try:
            cmds = dockerfile.parse_string(line + "\n")
        except dockerfile.GoParseError as e:
            raise InvalidArgument(f"{what} {line!r}: {e}") from None
        for cmd in cmds:
            name = cmd.cmd.upper()
            if name not in ALLOWED:
                raise InvalidArgument(f"{what} {line!r}: {name} is not a valid change command")
            vals = list(cmd.value)
            if name in ("CMD", "ENTRYPOINT"):
                argv = vals if cmd.json else DEFAULT_SHELL + [" ".join(vals)]
                cfg["Cmd" if name == "CMD" else "Entrypoint"] = argv
            elif name in ("ENV", "LABEL"):
                if len(vals) % 2:
                    raise InvalidArgument(f"{what} {line!r}: {name} needs key=value pairs")
                for qk, qv in zip(vals[::2], vals[1::2]):
                    k, v = unquote(qk), unquote(qv)
                    if not k:
                        raise InvalidArgument(f"{what} {line!r}: {name} names cannot be empty")
                    if name == "ENV":
                        cfg["Env"] = set_env(list(cfg.get("Env") or []), k, v)
                    else:
                        cfg["Labels"] = {**(cfg.get("Labels") or {}), k: v}
            elif name == "EXPOSE":
                ports = dict(cfg.get("ExposedPorts") or {})
                for p in vals:
                    for q in unquote(p).split():
                        ports.update({k: {} for k in expose_ports(q)})
                cfg["ExposedPorts"] = ports
            elif name == "VOLUME":
                vols = dict(cfg.get("Volumes") or {})
                for v in vals:
                    for q in (unquote(v).split() if not cmd.json else [v]):
                        if not q:
                            raise InvalidArgument(f"{what} {line!r}: VOLUME specified can not be an empty string")
                        vols[q] = {}
                cfg["Volumes"] = vols
            elif name == "USER":
                cfg["User"] = unquote(vals[0]) if vals else ""
            elif name == "WORKDIR":
                wd = unquote(vals[0]) if vals else ""
                import posixpath
                cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", wd))
            elif name == "STOPSIGNAL":
                cfg["StopSignal"] = unquote(vals[0]) if vals else ""
            elif name == "ONBUILD":
                trigger = cmd.original.split(None, 1)[1] if " " in cmd.original else ""
                cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [trigger]
    return cfg
