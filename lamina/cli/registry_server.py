"""``registry serve``, ``registry gc``, ``registry htpasswd``, ``registry import``.

Only this module's functions import the server package (and its dependencies: uvloop,
httptools, bcrypt), and only when they run.
"""

from __future__ import annotations

import os
import sys

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument

_LEVELS = ("error", "warn", "info", "debug")


def _default_root(ctx) -> str:
    from lamina.store import default_root
    return os.path.join(ctx.root or default_root(), "registry")


def _duration(text: str, flag: str) -> float:
    """Go-style durations: 90s, 10m, 1h30m, 2h; a bare number is seconds."""
    import re

    t = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", t):
        return float(t)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: want a duration like 90s, 10m, 1h')
    mult = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(a) * mult[b] for a, b in parts)


def _size(text: str, flag: str) -> int:
    import re

    m = re.fullmatch(r"(\d+)\s*([kKmMgG]i?[bB]?|[bB])?", text.strip())
    if not m:
        raise InvalidArgument(f'invalid argument "{text}" for "{flag}" flag: want a size like 4194304 or 4MiB')
    unit = (m.group(2) or "b")[0].lower()
    return int(m.group(1)) * {"b": 1, "k": 1024, "m": 1 << 20, "g": 1 << 30}[unit]


def cmd_registry_serve(argv, ctx) -> int:
    p = Parser("registry serve", "[OPTIONS]",
               "Serve an OCI distribution (Docker registry v2) API from a store directory.\n\n"
               "Prints 'lamina registry listening on http://HOST:PORT' once it accepts\n"
               "connections (--addr 127.0.0.1:0 picks a free port). SIGTERM stops it after\n"
               "the requests in flight.")
    p.option("--addr", default="127.0.0.1:5000", help="Address to listen on (HOST:PORT)")
    p.option("--root", help="Store directory (default: <lamina root>/registry)")
    p.option("--htpasswd", metavar="file", help="Require Basic auth against this htpasswd file (bcrypt)")
    p.option("--auth", metavar="mode",
             help="Auth mode: none, htpasswd or token (token: also issue Bearer tokens at /token)")
    p.option("--acl", metavar="file", help="Access rules: 'USER REPO-GLOB pull,push,delete' per line")
    p.option("--tls-cert", metavar="file", help="Serve HTTPS with this certificate (PEM)")
    p.option("--tls-key", metavar="file", help="Private key of --tls-cert (PEM)")
    p.flag("--read-only", help="Refuse every push and delete (405)")
    p.flag("--no-delete", help="Refuse manifest, tag and blob deletion (405)")
    p.option("--max-manifest-size", default="4MiB", metavar="bytes", help="Largest manifest accepted (413 beyond)")
    p.option("--log-level", default="info", metavar="level", help="error, warn, info (access log) or debug")
    p.option("--workers", default="1", metavar="n", help="Serving processes sharing the port (SO_REUSEPORT)")
    p.option("--gc-interval", default="0", metavar="duration", help="Run online GC this often (0: never)")
    p.option("--gc-grace", default="10m", metavar="duration", help="Online GC keeps anything younger than this")
    a = parse(p, argv)
    if a.log_level not in _LEVELS:
        raise InvalidArgument(f'invalid argument "{a.log_level}" for "--log-level" flag: '
                              f'want one of {", ".join(_LEVELS)}')
    auth = a.auth
    if auth is not None and auth not in ("none", "htpasswd", "token"):
        raise InvalidArgument(f'invalid argument "{auth}" for "--auth" flag: want none, htpasswd or token')
    if auth in ("htpasswd", "token") and not a.htpasswd:
        raise InvalidArgument(f"--auth {auth} needs --htpasswd FILE (the users it checks)")
    if bool(a.tls_cert) != bool(a.tls_key):
        raise InvalidArgument("--tls-cert and --tls-key go together")
    if not a.workers.isdigit() or int(a.workers) < 1:
        raise InvalidArgument(f'invalid argument "{a.workers}" for "--workers" flag: want a number >= 1')
    for f, v in (("--htpasswd", a.htpasswd), ("--acl", a.acl), ("--tls-cert", a.tls_cert), ("--tls-key", a.tls_key)):
        if v and not os.path.isfile(v):
            raise InvalidArgument(f"{f} {v}: no such file")
    from lamina.registry.server.auth import AuthError
    from lamina.registry.server.serve import Config, serve

    cfg = Config(root=a.root or _default_root(ctx), addr=a.addr, htpasswd=a.htpasswd,
                 auth=auth if auth else None, acl=a.acl, tls_cert=a.tls_cert, tls_key=a.tls_key,
                 read_only=a.read_only, no_delete=a.no_delete,
                 max_manifest_size=_size(a.max_manifest_size, "--max-manifest-size"),
                 log_level=a.log_level, workers=int(a.workers),
                 gc_interval=_duration(a.gc_interval, "--gc-interval"),
                 gc_grace=_duration(a.gc_grace, "--gc-grace"))
    try:
        return serve(cfg)
    except AuthError as e:
        raise InvalidArgument(str(e)) from None
    except ValueError as e:
        raise InvalidArgument(str(e)) from None


def cmd_registry_gc(argv, ctx) -> int:
    p = Parser("registry gc", "[OPTIONS]",
               "Remove blobs no manifest references (safe while servers run: anything younger\n"
               "than --grace is kept)")
    p.option("--root", help="Store directory (default: <lamina root>/registry)")
    p.flag("--dry-run", help="Only report what would be removed")
    p.flag("-m", "--delete-untagged", help="Also remove manifests no tag reaches")
    p.option("--grace", default="10m", metavar="duration", help="Keep anything younger than this")
    a = parse(p, argv)
    from lamina.registry.server.gc import collect
    from lamina.registry.server.storage import FORMAT_FILE, Storage

    root = a.root or _default_root(ctx)
    if not os.path.isfile(os.path.join(root, FORMAT_FILE)):
        raise InvalidArgument(f"{root}: not a lamina registry store (no {FORMAT_FILE} file)")
    store = Storage(root, create=False)
    try:
        r = collect(store, grace=_duration(a.grace, "--grace"), delete_untagged=a.delete_untagged,
                    dry_run=a.dry_run, log=print)
    finally:
        store.close()
    verb = "eligible for deletion" if a.dry_run else "deleted"
    print(f"{r.marked} blobs marked, {len(r.blobs_removed)} blobs and {len(r.manifests_removed)} "
          f"manifests {verb} ({r.bytes_freed} bytes), {r.links_removed} dangling links, "
          f"{r.uploads_removed} expired uploads")
    return 0


def cmd_registry_htpasswd(argv, ctx) -> int:
    p = Parser("registry htpasswd", "[OPTIONS] USER",
               "Print a bcrypt htpasswd line for USER (the format registry:2 reads), or add it\n"
               "to --file. The password is read from stdin (or prompted for on a terminal).")
    p.option("-f", "--file", metavar="file", help="Add or replace USER's line in this htpasswd file")
    p.flag("--password-stdin", help="Read the password from stdin (the default when stdin is not a terminal)")
    p.option("--cost", default="10", metavar="n", help="bcrypt cost (4-31)")
    p.args("user", min=1, max=1)
    a = parse(p, argv)
    user = a.user
    if not user or ":" in user or any(c.isspace() for c in user):
        raise InvalidArgument(f"invalid user name {user!r}: no ':' or spaces")
    if not a.cost.isdigit() or not 4 <= int(a.cost) <= 31:
        raise InvalidArgument(f'invalid argument "{a.cost}" for "--cost" flag: want 4-31')
    if a.password_stdin or not sys.stdin.isatty():
        pw = sys.stdin.readline().rstrip("\r\n")
    else:
        import getpass
        pw = getpass.getpass("New password: ")
        if getpass.getpass("Re-type new password: ") != pw:
            raise InvalidArgument("passwords do not match")
    if not pw:
        raise InvalidArgument("empty password")
    from lamina.registry.server.auth import bcrypt_hash

    line = f"{user}:{bcrypt_hash(pw, rounds=int(a.cost))}"
    if not a.file:
        print(line)
        return 0
    lines = []
    if os.path.exists(a.file):
        with open(a.file, encoding="utf-8") as f:
            lines = [l.rstrip("\n") for l in f if l.strip() and l.split(":", 1)[0] != user]
    lines.append(line)
    tmp = f"{a.file}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, a.file)
    return 0


def cmd_registry_import(argv, ctx) -> int:
    p = Parser("registry import", "[OPTIONS] REGISTRY2-ROOT",
               "Import a registry:2 filesystem storage directory (its rootdirectory) into the\n"
               "store; every blob is verified against its digest")
    p.option("--root", help="Store directory (default: <lamina root>/registry)")
    p.args("source", min=1, max=1)
    a = parse(p, argv)
    if not os.path.isdir(a.source):
        raise InvalidArgument(f"{a.source}: not a directory")
    from lamina.registry.server.importer import import_registry2
    from lamina.registry.server.storage import Storage

    store = Storage(a.root or _default_root(ctx))
    try:
        r = import_registry2(a.source, store, log=print)
    finally:
        store.close()
    for prob in r.problems:
        sys.stderr.write(f"warning: {prob}\n")
    print(f"imported {r.blobs} blobs, {r.repositories} repositories, {r.manifests} manifests, {r.tags} tags")
    return 0
