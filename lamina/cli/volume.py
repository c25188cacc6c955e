"""``lamina volume`` verbs: create, ls, inspect, rm, prune. Parsing and output only; the
work is in lamina.runtime.volumes."""

from __future__ import annotations

import sys

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument, LaminaError


def _kv(items, what):
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        if not k:
            raise InvalidArgument(f"invalid argument \"{it}\" for \"{what}\" flag: bad format")
        out[k] = v
    return out


def cmd_volume_create(argv, ctx) -> int:
    p = Parser("volume create", "[OPTIONS] [VOLUME]", "Create a volume")
    p.option("-d", "--driver", default="local", help="Specify volume driver name (default \"local\")")
    p.option("--label", append=True, metavar="list", help="Set metadata for a volume")
    p.option("-o", "--opt", append=True, metavar="map", help="Set driver specific options (default map[])")
    p.args("name", max=1)
    a = parse(p, argv)
    from lamina.runtime.volumes import create_volume
    name = a.name or None
    print(create_volume(ctx.store, name, labels=_kv(a.label, "--label"), options=_kv(a.opt, "--opt"),
                        driver=a.driver))
    return 0


def cmd_volume_ls(argv, ctx) -> int:
    p = Parser("volume ls", "[OPTIONS]", "List volumes")
    p.option("-f", "--filter", append=True, metavar="filter", help="Provide filter values (e.g. 'dangling=true')")
    p.option("--format", help="Pretty-print volumes using a Go template")
    p.flag("-q", "--quiet", help="Only display volume names")
    p.args("none", max=0)
    a = parse(p, argv)
    from lamina.runtime.volumes import inspect_volume, volume_names, volume_users
    filters: dict[str, list[str]] = {}
    for f in a.filter:
        k, sep, v = f.partition("=")
        if not sep or k not in ("dangling", "driver", "label", "name"):
            raise InvalidArgument(f"invalid filter '{f}'")
        filters.setdefault(k, []).append(v)
    users = volume_users(ctx.store) if "dangling" in filters else {}
    rows = []
    for name in volume_names(ctx.store):
        doc = inspect_volume(ctx.store, name)
        if "name" in filters and not any(v in name for v in filters["name"]):
            continue
        if "driver" in filters and "local" not in filters["driver"]:
            continue
        if "dangling" in filters and (not users.get(name)) != (filters["dangling"][0] in ("true", "1")):
            continue
        if "label" in filters:
            have = doc["Labels"] or {}
            if not all(k in have and (not sep or have[k] == v)
                       for k, sep, v in (l.partition("=") for l in filters["label"])):
                continue
        rows.append({"Driver": "local", "Name": name, "Mountpoint": doc["Mountpoint"], "Scope": "local",
                     "Labels": ",".join(f"{k}={v}" for k, v in (doc["Labels"] or {}).items()),
                     "CreatedAt": doc["CreatedAt"]})
    if a.quiet:
        sys.stdout.write("".join(r["Name"] + "\n" for r in rows))
        return 0
    from lamina.cli.table import format_table
    sys.stdout.write(format_table(rows, a.format or "table {{.Driver}}\t{{.Name}}",
                                  headers={"Driver": "DRIVER", "Name": "VOLUME NAME", "Mountpoint": "MOUNTPOINT",
                                           "Scope": "SCOPE", "Labels": "LABELS", "CreatedAt": "CREATED AT"}))
    return 0


def cmd_volume_inspect(argv, ctx) -> int:
    p = Parser("volume inspect", "[OPTIONS] VOLUME [VOLUME...]", "Display detailed information on one or more volumes")
    p.option("-f", "--format", help="Format the output using the given Go template")
    p.args("names", min=1)
    a = parse(p, argv)
    from lamina.runtime.volumes import inspect_volume
    out, rc = [], 0
    for name in a.names:
        try:
            out.append(inspect_volume(ctx.store, name))
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1
    from lamina.cli.table import print_documents
    print_documents(out, a.format)
    return rc


def cmd_volume_rm(argv, ctx) -> int:
    p = Parser("volume rm", "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes")
    p.flag("-f", "--force", help="Force the removal of one or more volumes")
    p.args("names", min=1)
    a = parse(p, argv)
    from lamina.runtime.volumes import remove_volume
    rc = 0
    for name in a.names:
        try:
            remove_volume(ctx.store, name, force=a.force)
            print(name)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1
    return rc


def cmd_volume_prune(argv, ctx) -> int:
    p = Parser("volume prune", "[OPTIONS]", "Remove all unused local volumes")
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.option("--filter", append=True, metavar="filter", help="Provide filter values (e.g. 'label=<label>')")
    p.args("none", max=0)
    a = parse(p, argv)
    labels = []
    for f in a.filter:
        k, _, v = f.partition("=")
        if k != "label":
            raise InvalidArgument(f"invalid filter '{f}'")
        labels.append(v)
    if not a.force:
        sys.stdout.write("WARNING! This will remove all local volumes not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    from lamina.cli.units import human_size
    from lamina.runtime.volumes import prune_volumes
    removed, freed = prune_volumes(ctx.store, labels=labels)
    if removed:
        sys.stdout.write("Deleted Volumes:\n" + "".join(f"{n}\n" for n in removed) + "\n")
    print(f"Total reclaimed space: {human_size(freed, 4)}")  # units.HumanSize
    return 0
