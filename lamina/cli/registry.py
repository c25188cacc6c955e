"""Registry verbs: pull, push, login, logout, search (and ``image pull``/``image push``).

Parsing and Docker's output only; the work is in lamina.registry.client, imported inside
each verb (the HTTP stack is never loaded by other verbs). Failures exit 1, as docker's
CLI does for these verbs, with ``Error: <Docker's wording>`` on stderr.
"""

from __future__ import annotations

import sys

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument, LaminaError

SEARCH_TABLE = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
SEARCH_HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
                  "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"}


def _fail(e: LaminaError, ctx) -> int:
    if ctx.debug:
        import traceback
        traceback.print_exc()
    sys.stderr.write(f"Error: {e}\n")
    return 1


# -- pull ------------------------------------------------------------------------------
def cmd_pull(argv, ctx) -> int:
    p = Parser("pull", "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry")
    p.flag("-a", "--all-tags", help="Download all tagged images in the repository")
    p.flag("--disable-content-trust", default=True, help="Skip image verification (default true)")
    p.option("--platform", help="Set platform if server is multi-platform capable")
    p.flag("-q", "--quiet", help="Suppress verbose output")
    p.args("name", min=1, max=1)
    a = parse(p, argv)
    try:
        return pull_image(ctx, a.name, all_tags=a.all_tags, platform=a.platform, quiet=a.quiet)
    except LaminaError as e:
        return _fail(e, ctx)


def pull_image(ctx, name: str, *, all_tags: bool = False, platform: str | None = None,
               quiet: bool = False, out=None) -> int:
    """``pull NAME``, Docker's output on ``out`` (stdout); raises LaminaError on failure."""
    from lamina.progress import Progress
    from lamina.registry.client.pull import pull_reporting
    out = out or sys.stdout
    pull_reporting(ctx.store, name, progress=Progress(out, quiet=quiet), all_tags=all_tags,
                   platform=platform, out=out)
    return 0


# -- push ------------------------------------------------------------------------------
def cmd_push(argv, ctx) -> int:
    p = Parser("push", "[OPTIONS] NAME[:TAG]", "Upload an image to a registry")
    p.flag("-a", "--all-tags", help="Push all tags of an image to the repository")
    p.flag("--disable-content-trust", default=True, help="Skip image signing (default true)")
    p.flag("-q", "--quiet", help="Suppress verbose output")
    p.args("name", min=1, max=1)
    a = parse(p, argv)
    try:
        return _push(ctx, a.name, all_tags=a.all_tags, quiet=a.quiet)
    except LaminaError as e:
        return _fail(e, ctx)


def _push(ctx, name: str, *, all_tags: bool, quiet: bool) -> int:
    from lamina import reference
    from lamina.progress import Progress
    from lamina.registry.client.push import DEFAULT_CONCURRENCY, Pusher
    ref = reference.parse(name, default_tag=False)
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {name}")
    prog = Progress(quiet=quiet)
    if all_tags:
        if ref.tag is not None:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        prefix = ref.name + ":"
        tags = [n for (n,) in ctx.store.db.query("SELECT name FROM tags WHERE name LIKE ? ORDER BY name",
                                                  (prefix.replace("%", r"\%") + "%",)) if n.startswith(prefix)
                and "/" not in n[len(prefix):]]
        if not tags:
            raise InvalidArgument(f"An image does not exist locally with the tag: {ref.familiar_name}")
        refs = [reference.parse(t) for t in tags]
    else:
        if ref.tag is None:
            prog.line(f"Using default tag: {reference.DEFAULT_TAG}")
            ref = ref.with_tag(reference.DEFAULT_TAG)
        refs = [ref]
    from lamina.registry.client.pull import concurrency
    pusher = Pusher(ctx.store, progress=prog,
                    concurrency=concurrency("LAMINA_MAX_CONCURRENT_UPLOADS", DEFAULT_CONCURRENCY))
    for n, r in enumerate(refs):
        res = pusher.push(r, announce=(n == 0))
        prog.line(f"{res.tag}: digest: {res.digest} size: {res.size}")
    if quiet:
        for r in refs:
            print(r.familiar)
    return 0


# -- login / logout ----------------------------------------------------------------------
def _server_key(server: str | None) -> tuple[str, str]:
    """(domain to contact, config key) for a login SERVER argument, Docker's way."""
    from lamina.registry.client import hosts
    if not server or server.rstrip("/") in (hosts.DOCKER_HUB_AUTH_KEY.rstrip("/"), "docker.io",
                                            "index.docker.io", "registry-1.docker.io",
                                            "https://index.docker.io", "https://registry-1.docker.io"):
        return hosts.DOCKER_HUB_DOMAIN, hosts.DOCKER_HUB_AUTH_KEY
    s = server
    for prefix in ("http://", "https://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    s = s.split("/", 1)[0]
    if not s:
        raise InvalidArgument(f"invalid registry address {server!r}")
    return s, s


def cmd_login(argv, ctx) -> int:
    p = Parser("login", "[OPTIONS] [SERVER]",
               "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.")
    p.option("-p", "--password", help="Password or Personal Access Token (PAT)")
    p.flag("--password-stdin", help="Take the Password or Personal Access Token (PAT) from stdin")
    p.option("-u", "--username", help="Username")
    p.args("server", max=1)
    a = parse(p, argv)
    try:
        return _login(a)
    except LaminaError as e:
        return _fail(e, ctx)


def _login(a) -> int:
    from lamina.registry.client import credentials
    from lamina.registry.client.login import login
    if a.password is not None:
        sys.stderr.write("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
        if a.password_stdin:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    password = a.password
    if a.password_stdin:
        if not a.username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\n").rstrip("\r")
    domain, key = _server_key(a.server)
    username = a.username
    if not username or password is None:
        stored = credentials.get(key) if not username else None
        if not sys.stdin.isatty():
            raise InvalidArgument("Cannot perform an interactive login from a non TTY device")
        if not username:
            hint = f" ({stored.username})" if stored and stored.username else ""
            sys.stdout.write(f"Username{hint}: ")
            sys.stdout.flush()
            username = sys.stdin.readline().strip() or (stored.username if stored else "")
            if not username:
                raise InvalidArgument("Username cannot be empty")
        if password is None:
            import getpass
            password = getpass.getpass("Password: ")
            if not password:
                raise InvalidArgument("Password is required")
    where = login(domain, key, username, password)
    if where == credentials.config_path():
        sys.stderr.write(f"\nWARNING! Your credentials are stored unencrypted in '{where}'.\n"
                         "Configure a credential helper to remove this warning. See\n"
                         "https://docs.docker.com/go/credential-store/\n\n")
    print("Login Succeeded")
    return 0


def cmd_logout(argv, ctx) -> int:
    p = Parser("logout", "[SERVER]",
               "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.")
    p.args("server", max=1)
    a = parse(p, argv)
    from lamina.registry.client import credentials
    try:
        _, key = _server_key(a.server)
        if not credentials.erase(key):
            print(f"Not logged in to {key}")
            return 0
    except LaminaError as e:
        return _fail(e, ctx)
    print(f"Removing login credentials for {key}")
    return 0


# -- search ----------------------------------------------------------------------------
def cmd_search(argv, ctx) -> int:
    p = Parser("search", "[OPTIONS] TERM", "Search Docker Hub for images")
    p.option("-f", "--filter", append=True, metavar="filter", help="Filter output based on conditions provided")
    p.option("--format", help="Pretty-print search using a Go template")
    p.option("--limit", metavar="int", help="Max number of search results")
    p.flag("--no-trunc", help="Don't truncate output")
    p.args("term", min=1, max=1)
    a = parse(p, argv)
    try:
        return _search(a)
    except LaminaError as e:
        return _fail(e, ctx)


def _search(a) -> int:
    from lamina.registry.client.search import search
    limit = 25
    if a.limit is not None:
        try:
            limit = int(a.limit)
        except ValueError:
            sys.stderr.write(f'invalid argument "{a.limit}" for "--limit" flag: strconv.ParseInt: '
                             f'parsing "{a.limit}": invalid syntax\n')
            return 125
        if not 1 <= limit <= 100:
            raise InvalidArgument(f"limit {limit} is outside the range of [1, 100]")
    stars, official, automated = 0, None, None
    for f in a.filter:
        k, sep, v = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if k == "stars":
            try:
                stars = int(v)
            except ValueError:
                raise InvalidArgument(f"invalid filter 'stars={v}'") from None
        elif k in ("is-official", "is-automated"):
            if v.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter '{k}={v}'")
            b = v.lower() in ("true", "1")
            if k == "is-official":
                official = b
            else:
                automated = b
        else:
            raise InvalidArgument(f"invalid filter '{k}'")
    results = search(a.term, limit=limit)
    rows = []
    for r in results:
        if r.stars < stars:
            continue
        if official is not None and r.official != official:
            continue
        if automated is not None and r.automated != automated:
            continue
        desc = r.description.replace("\n", " ")
        if not a.no_trunc and len(desc) > 45:
            desc = desc[:44] + "…"
        rows.append({"Name": r.name, "Description": desc, "StarCount": str(r.stars),
                     "IsOfficial": "[OK]" if r.official else "",
                     "IsAutomated": "[OK]" if r.automated else ""})
    from lamina.cli.table import format_table
    text = format_table(rows, a.format or SEARCH_TABLE, headers=SEARCH_HEADERS)
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
