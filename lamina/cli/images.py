"""Image verbs: images, import, inspect, history, tag, rmi, save, load, image prune (and the
``image`` group). Parsing and output formatting only; the work is in lamina.image."""

from __future__ import annotations

import sys
import time

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument

IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_TABLE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "Digest": "DIGEST",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                  "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
                  "VirtualSize": "SIZE"}  # docker/cli titles VirtualSize SIZE too
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_TABLE_NOT_HUMAN = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}

def _images(ctx):
    from lamina.image.service import Images
    return Images(ctx.store)


def _render(rows: list[dict], fmt: str, headers: dict[str, str]) -> None:
    from lamina.cli.table import format_table
    out = format_table(rows, fmt, headers=headers)
    if out:
        sys.stdout.write(out if out.endswith("\n") else out + "\n")


# -- images --------------------------------------------------------------------------
def cmd_images(argv, ctx) -> int:
    """Hot path: reads the DB only (no reference parsing, no dataclass modules)."""
    p = Parser("images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images")
    p.flag("-a", "--all", help="Show all images (default hides intermediate images)")
    p.flag("--digests", help="Show digests")
    p.option("-f", "--filter", append=True, help="Filter output based on conditions provided")
    p.option("--format", help="Format output using a custom template")
    p.flag("--no-trunc", help="Don't truncate output")
    p.flag("-q", "--quiet", help="Only show image IDs")
    p.args("repository", max=1)
    a = parse(p, argv)
    from lamina.cli.units import ago, human_size
    from lamina.refname import split_canonical
    db = ctx.store.db
    rows = db.query("SELECT manifest, config, size, created, added FROM images")
    tags: dict[str, list[str]] = {}
    for name, m in db.query("SELECT name, manifest FROM tags"):
        tags.setdefault(m, []).append(name)
    rdigests: dict[str, dict[str, str]] = {}  # manifest -> {repository name: its digest there}
    for name, d, m in db.query("SELECT name, digest, manifest FROM repo_digests ORDER BY digest"):
        rdigests.setdefault(m, {}).setdefault(name, d)
    parents = {r[0] for r in db.query("SELECT parent FROM images WHERE parent IS NOT NULL")}
    filters = _parse_filters(a.filter, ("dangling", "reference", "label", "before", "since"))
    if a.repository:  # docker/cli sends the argument as one more reference filter
        filters.setdefault("reference", []).append(a.repository)
    dangling_only = None
    if "dangling" in filters:  # dockerd takes exactly "true" or "false"
        if "true" in filters["dangling"]:
            dangling_only = True
        elif "false" in filters["dangling"]:
            dangling_only = False
        else:
            raise InvalidArgument(f"Invalid filter 'dangling=[{' '.join(filters['dangling'])}]'")
    ref_patterns = [_go_path_pattern(f) for f in filters.get("reference", [])]
    before = since_t = None
    if "before" in filters or "since" in filters:
        from lamina.image.service import Images
        imgs = Images(ctx.store)
        if "before" in filters:
            r = imgs.resolve(filters["before"][-1])
            before = r.created or r.added
        if "since" in filters:
            r = imgs.resolve(filters["since"][-1])
            since_t = r.created or r.added
    now = time.time()
    out = []
    tagged_configs = {config for manifest, config, *_ in rows if manifest in tags or manifest in rdigests}
    for manifest, config, size, created, added in sorted(rows, key=lambda r: -(r[3] or r[4])):
        names = sorted(tags.get(manifest, []))
        named = bool(names) or manifest in rdigests
        if not names and named:  # pulled by digest only: "name <none>", as Docker
            names = [f"{n}:<none>" for n in sorted(rdigests[manifest])]
        # Docker: an untagged image with children is an intermediate one (shown by -a only);
        # one without children is dangling (a superseded build result, a failed build's last
        # step ...), listed like any image and by -f dangling=true (with -a too)
        intermediate = not named and config in parents
        if not named and config in tagged_configs:
            continue  # another manifest of this very image is tagged: Docker has one image per ID
        if dangling_only is not None:
            want = dangling_only
            if want != (not named) or (want and intermediate):
                continue
        elif intermediate and not a.all:
            continue
        t = created or added
        created = int(created) if created else created  # Docker's image list carries whole seconds
        if (before is not None and t >= before) or (since_t is not None and t <= since_t):
            continue
        if "label" in filters and not _labels_match(ctx, config, filters["label"]):
            continue
        short = config if a.no_trunc else config[7:19]
        size_text = human_size(size)
        since = ago(created, now) if created else "N/A"
        for name in names or [None]:
            repo, tag = split_canonical(name.removesuffix(":<none>")) if name else ("<none>", "<none>")
            tag = tag or "<none>"
            if ref_patterns and (name is None or not any(_ref_match(f, repo, tag) for f in ref_patterns)):
                continue
            digest = "<none>"
            if name:
                base = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
                digest = rdigests.get(manifest, {}).get(base, "<none>")
            out.append({"Repository": repo, "Tag": tag, "ID": short, "Digest": digest,
                        "CreatedSince": since, "CreatedAt": _local_time(created or int(added)), "Size": size_text,
                        "Containers": "N/A", "SharedSize": "N/A", "UniqueSize": "N/A",
                        "VirtualSize": human_size(size, 4)})
    fmt = _image_format(a.format or "table", quiet=a.quiet, digests=a.digests)
    if fmt == "{{.ID}}":  # -q: one ID per row, repeated for each tag, like Docker
        sys.stdout.write("".join(f"{r['ID']}\n" for r in out))
        return 0
    _render(out, fmt, IMAGES_HEADERS)
    return 0


def _image_format(source: str, *, quiet: bool, digests: bool) -> str:
    """docker/cli's NewImageFormat: ``table`` and ``raw`` are keys that -q and --digests pick
    a template for; any other format is used as given (-q is then ignored), and a table
    without ``{{.Digest}}`` gets a DIGEST column appended when --digests is set."""
    if source == "table":
        return "{{.ID}}" if quiet else (IMAGES_TABLE_DIGESTS if digests else IMAGES_TABLE)
    if source == "raw":
        if quiet:
            return "image_id: {{.ID}}"
        if digests:
            return ("repository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\nimage_id: {{.ID}}\n"
                    "created_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n")
        return ("repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\n"
                "created_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n")
    if source.startswith("table") and digests and "{{.Digest}}" not in source:
        return source + "\t{{.Digest}}"
    return source


def _labels_match(ctx, config: str, wanted: list[str]) -> bool:
    """``label=key`` or ``label=key=value`` against an image's config labels (all must hold)."""
    import json

    from lamina.digest import Digest
    doc = json.loads(ctx.store.content.read(Digest.parse(config), verify=False))
    labels = (doc.get("config") or {}).get("Labels") or {}
    for w in wanted:
        k, sep, v = w.partition("=")
        if k not in labels or (sep and labels[k] != v):
            return False
    return True


def _ref_match(pattern, repo: str, tag: str) -> bool:
    """distribution's FamiliarMatch: the pattern against ``name:tag``, then against the name."""
    return bool(pattern.fullmatch(f"{repo}:{tag}") or pattern.fullmatch(repo))


def _go_path_pattern(pattern: str):
    """Go's path.Match pattern as a compiled regex: ``*`` and ``?`` never match ``/``,
    ``[...]`` / ``[^...]`` classes with ranges, ``\\`` escapes. A malformed pattern raises
    InvalidArgument with Go's message, as dockerd answers a bad reference filter."""
    import re
    out = []
    i, n = 0, len(pattern)
    bad = InvalidArgument("syntax error in pattern")
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise bad
            out.append(re.escape(pattern[i]))
        elif c == "[":
            i += 1
            neg = i < n and pattern[i] == "^"
            if neg:
                i += 1
            items = []
            first = True
            while True:
                if i >= n:
                    raise bad
                if pattern[i] == "]" and not first:
                    break
                first = False
                lo, i = _class_char(pattern, i, bad)
                hi = lo
                if i < n and pattern[i] == "-":
                    hi, i = _class_char(pattern, i + 1, bad)
                    if hi < lo:
                        raise bad
                items.append(re.escape(lo) + ("-" + re.escape(hi) if hi != lo else ""))
            out.append("[" + ("^" if neg else "") + "".join(items) + "]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.S)


def _class_char(pattern: str, i: int, bad: Exception) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise bad
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise bad
    return pattern[i], i + 1


def _parse_filters(items: list[str], allowed: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in items:
        k, sep, v = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if k not in allowed:
            raise InvalidArgument(f"Invalid filter '{k}'")
        out.setdefault(k, []).append(v)
    return out


def _local_time(ts: float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(ts))


# -- import --------------------------------------------------------------------------
def cmd_import(argv, ctx) -> int:
    p = Parser("import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
               "Import the contents from a tarball to create a filesystem image")
    p.option("-c", "--change", append=True, help="Apply Dockerfile instruction to the created image")
    p.option("-m", "--message", help="Set commit message for imported image")
    p.option("--platform", help="Set platform if server is multi-platform capable")
    p.args("args", min=1, max=2)
    a = parse(p, argv)
    a.source, a.repository = a.args[0], (a.args[1] if len(a.args) > 1 else None)
    from lamina import oci, reference
    from lamina.image.importer import import_tar
    tags = [reference.parse_tag(a.repository)] if a.repository else []
    plat = None
    if a.platform:
        parts = a.platform.split("/")
        if len(parts) < 2 or parts[0] != "linux":
            raise InvalidArgument(f"invalid platform {a.platform!r}: want linux/<arch>[/<variant>]")
        plat = oci.Platform(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
    if "://" in a.source:
        raise InvalidArgument(f"importing from a URL is not supported: {a.source}; download it and import the file")
    progress = _terminal_progress(sys.stdout)
    if a.source == "-":
        rec = import_tar(_images(ctx), _counting(sys.stdin.buffer, progress, "Importing"), tags=tags,
                         changes=a.change, message=a.message, platform=plat)
    else:
        try:
            f = open(a.source, "rb")
        except FileNotFoundError:
            raise InvalidArgument(f"open {a.source}: no such file or directory") from None
        with f:
            rec = import_tar(_images(ctx), _counting(f, progress, "Importing"), tags=tags, changes=a.change,
                             message=a.message, platform=plat)
    if progress is not None:
        progress.done()
    print(rec.id)
    return 0


def _counting(f, progress, text: str):
    """``f`` itself, or (on a terminal) ``f`` reporting the bytes read as ``text  n/total``
    (the total is the file's size when it is a regular file)."""
    if progress is None:
        return f
    import os
    import stat

    from lamina.progress import Reader
    try:
        st = os.fstat(f.fileno())
        total = st.st_size if stat.S_ISREG(st.st_mode) else 0
    except (OSError, AttributeError, ValueError):
        total = 0
    return Reader(f, lambda n: progress.counter(text, n, total))


# -- tag -----------------------------------------------------------------------------
def cmd_tag(argv, ctx) -> int:
    p = Parser("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
               "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.args("args", min=2, max=2)
    a = parse(p, argv)
    a.source, a.target = a.args
    from lamina import reference
    imgs = _images(ctx)
    target = reference.parse_tag(a.target)
    imgs.tag(imgs.resolve(a.source), target)
    return 0


# -- rmi -----------------------------------------------------------------------------
def cmd_rmi(argv, ctx) -> int:
    p = Parser("rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images")
    p.flag("-f", "--force", help="Force removal of the image")
    p.flag("--no-prune", help="Do not delete untagged parents")
    p.args("images", min=1)
    a = parse(p, argv)
    from lamina.errors import LaminaError
    imgs = _images(ctx)
    rc = 0
    for name in a.images:
        try:
            for line in imgs.remove(name, force=a.force, prune_children=not a.no_prune):
                print(line)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1  # as `docker rmi`: any image it could not remove makes it exit 1
    return rc


# -- inspect -------------------------------------------------------------------------
def cmd_inspect(argv, ctx) -> int:
    p = Parser("inspect", "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on lamina objects")
    p.option("-f", "--format", help="Format output using a custom template")
    p.flag("-s", "--size", help="Display total file sizes")
    p.option("--type", help="Return JSON for specified type")
    p.args("names", min=1)
    a = parse(p, argv)
    from lamina.errors import LaminaError, NotFound
    from lamina.image.inspect import inspect_image
    if a.type not in (None, "image", "container"):
        raise InvalidArgument(f'"{a.type}" is not a valid value for --type')
    imgs = _images(ctx)
    results, errors = [], []  # [(kind, Docker-shaped dict)], [message]
    for name in a.names:
        try:
            if a.type in (None, "container"):
                from lamina.runtime.containers import Containers
                try:
                    results.append(("container", Containers(ctx.store).get(name)))
                    continue
                except NotFound:
                    if a.type == "container":
                        raise
            results.append(("image", inspect_image(imgs, imgs.resolve(name))))
        except NotFound:
            errors.append(f"Error: No such {a.type or 'object'}: {name}")
        except LaminaError as e:
            errors.append(f"{e.prefix}{e}")
    errors += _print_inspect(results, a.format)
    if errors:
        sys.stdout.flush()
        sys.stderr.write("\n".join(errors) + "\n")
        return 1
    return 0


def _print_inspect(results: list[tuple[str, dict]], fmt: str | None) -> list[str]:
    """Print what docker/cli's inspectors print: each object the template renders (an
    object it fails on contributes nothing, its error is returned), a lone newline when
    none did; without a template, the JSON array."""
    if fmt:
        from lamina.cli.inspectfmt import render
        from lamina.gotemplate.template import TemplateError
        out, errors = [], []
        for kind, r in results:
            try:
                out.append(render(fmt, r, kind=kind) + "\n")
            except TemplateError as e:
                errors.append(f"{e.prefix}{e}")
        sys.stdout.write("".join(out) or "\n")
        return errors
    import json

    from lamina.runtime.record import inspect_view
    docs = [inspect_view(r) if kind == "container" else r for kind, r in results]
    # as dockerd writes it (json.Encoder with SetEscapeHTML(false)): <, >, & stay as they are
    sys.stdout.write(json.dumps(docs, indent=4, ensure_ascii=False) + "\n")
    return []


# -- history -------------------------------------------------------------------------
def cmd_history(argv, ctx) -> int:
    p = Parser("history", "[OPTIONS] IMAGE", "Show the history of an image")
    p.option("--format", help="Pretty-print images using a Go template")
    p.flag("-H", "--human", default=True, help="Print sizes and dates in human readable format (default true)")
    p.flag("--no-trunc", help="Don't truncate output")
    p.flag("-q", "--quiet", help="Only show image IDs")
    p.args("image", min=1, max=1)
    a = parse(p, argv)
    from lamina.cli.units import ago, human_size
    from lamina.image.inspect import history_rows
    imgs = _images(ctx)
    human = a.human
    now = time.time()
    rows = []
    for r in history_rows(imgs, imgs.resolve(a.image)):
        created = int(r["created"]) if r["created"] else None  # Docker's history has whole seconds
        ident = r["id"] or "<missing>"
        if r["id"] and not a.no_trunc:
            ident = r["id"].split(":", 1)[1][:12]
        created_by = r["created_by"]
        if not a.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({"ID": ident,
                     "CreatedSince": ((ago(created, now) if human else _iso(created))
                                      if created else "N/A"),
                     "CreatedAt": _iso(created) if created else "",
                     "CreatedBy": created_by,
                     "Size": human_size(r["size"]) if human else str(r["size"]),
                     "Comment": r["comment"]})
    # docker/cli's NewHistoryFormat: -q and -H pick the template only for the "table" key
    fmt = a.format or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if a.quiet else (HISTORY_TABLE if human else HISTORY_TABLE_NOT_HUMAN)
    if fmt == "{{.ID}}":
        sys.stdout.write("".join(f"{r['ID']}\n" for r in rows))
        return 0
    _render(rows, fmt, HISTORY_HEADERS)
    return 0


def _iso(ts: float | None) -> str:
    """Go's time.RFC3339 in local time: ``Z`` for a zero offset, else ``+hh:mm``."""
    if not ts:
        return ""
    zone = time.strftime("%z", time.localtime(ts))
    if zone in ("+0000", "-0000"):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.localtime(ts))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ts)) + zone[:3] + ":" + zone[3:]


# -- save / load ---------------------------------------------------------------------
def cmd_save(argv, ctx) -> int:
    p = Parser("save", "[OPTIONS] IMAGE [IMAGE...]",
               "Save one or more images to a tar archive (streamed to STDOUT by default)")
    p.option("-o", "--output", help="Write to a file, instead of STDOUT")
    p.args("images", min=1)
    a = parse(p, argv)
    import os

    from lamina.image.archive import save
    imgs = _images(ctx)
    from lamina.errors import NotFound
    if a.output is not None:  # checked first, as docker/cli does, in its words
        from lamina.perms import check_output_path
        try:
            check_output_path(a.output)
        except InvalidArgument as e:
            err = InvalidArgument(f"failed to save image: {e}")
            err.prefix = ""
            raise err from None
    for name in a.images:
        try:
            imgs.resolve(name)  # fail before creating the output file
        except NotFound:  # dockerd's save names the argument as given (no :latest added)
            raise NotFound(f"No such image: {name}") from None
    if a.output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        save(imgs, a.images, sys.stdout.buffer, progress=side_progress(to_stdout=True))
        return 0
    from lamina.perms import open_output
    f, tmp = open_output(a.output)  # 0600, as Docker's client writes it
    try:
        with f:
            save(imgs, a.images, f, progress=side_progress(to_stdout=False))
        os.rename(tmp, a.output)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return 0


def side_progress(*, to_stdout: bool):
    """Where a verb that writes an archive (save, export) shows its progress: on stdout when
    the archive goes to a file (-o) and stdout is a terminal, on stderr when the archive is
    stdout and stderr is a terminal (as podman does; Docker shows none), else nowhere."""
    return _terminal_progress(sys.stderr if to_stdout else sys.stdout)


def cmd_load(argv, ctx) -> int:
    p = Parser("load", "[OPTIONS]", "Load an image from a tar archive or STDIN")
    p.option("-i", "--input", help="Read from tar archive file, instead of STDIN")
    p.flag("-q", "--quiet", help="Suppress the load output")
    a = parse(p, argv)
    from lamina.image.archive import load
    imgs = _images(ctx)
    # Docker's client: layer bars on a terminal, only the "Loaded image" lines elsewhere
    progress = None if a.quiet else _terminal_progress(sys.stdout)
    if a.input is None:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        lines = load(imgs, sys.stdin.buffer, progress=progress)
    else:
        try:
            f = open(a.input, "rb")
        except FileNotFoundError:
            raise InvalidArgument(f"open {a.input}: no such file or directory") from None
        with f:
            lines = load(imgs, f, progress=progress)
    for line in lines:
        print(line)
    return 0


def _terminal_progress(stream):
    """A lamina.progress.Progress on ``stream`` if it is a terminal, else None (and the
    progress module is not even imported)."""
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    from lamina.progress import Progress
    return Progress(stream, tty=True)


# -- prune ---------------------------------------------------------------------------
def cmd_prune(argv, ctx) -> int:
    p = Parser("image prune", "[OPTIONS]", "Remove unused images")
    p.flag("-a", "--all", help="Remove all unused images, not just dangling ones")
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.option("--filter", append=True, help="Provide filter values (e.g. 'until=<timestamp>')")
    a = parse(p, argv)
    from lamina.cli.units import human_size
    from lamina.image.prune import prune_images
    if not a.force:
        warn = ("WARNING! This will remove all images without at least one container associated to them."
                if a.all else "WARNING! This will remove all dangling images.")
        if not _confirm(warn):
            return 0
    lines, freed = prune_images(_images(ctx), all_unused=a.all, filters=_parse_filters(a.filter, ("until", "label")))
    print_pruned("Deleted Images:", lines)
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def print_pruned(title: str, lines: list[str]) -> None:
    """Docker's prune report: a titled block of what went, then a blank line."""
    if lines:
        print(title)
        for line in lines:
            print(line)
        print()


def _confirm(warning: str) -> bool:
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")
