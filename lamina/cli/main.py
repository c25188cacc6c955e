"""lamina's command line: global options, verb dispatch, error -> exit code.

Every verb and sub-verb is a row of the verb table below (``COMMANDS`` and the management
verbs' sub-verb tables), naming the function that runs it. Start-up is kept small: this
module imports only the stdlib pieces it needs; a verb's module is imported when that verb
runs. ``lamina --help`` imports nothing beyond this file.
"""

from __future__ import annotations

import os
import sys

# The verb table. A verb runs the function "module:function" under lamina.cli (imported only
# when the verb runs; grep a function's name to find its verb); a management verb (image,
# container, builder, network, registry, volume, system) has a table of its sub-verbs instead.
# Each function takes (argv, ctx) and returns the exit code.

IMAGE_VERBS: dict[str, str] = {
    "build": "build:cmd_build",
    "history": "images:cmd_history",
    "import": "images:cmd_import",
    "inspect": "images:cmd_inspect",
    "load": "images:cmd_load",
    "ls": "images:cmd_images",
    "list": "images:cmd_images",
    "prune": "images:cmd_prune",
    "pull": "registry:cmd_pull",
    "push": "registry:cmd_push",
    "rm": "images:cmd_rmi",
    "remove": "images:cmd_rmi",
    "save": "images:cmd_save",
    "tag": "images:cmd_tag",
}

CONTAINER_VERBS: dict[str, str] = {
    "attach": "containers:cmd_attach",
    "commit": "containers:cmd_commit",
    "cp": "containers:cmd_cp",
    "create": "containers:cmd_create",
    "diff": "containers:cmd_diff",
    "exec": "containers:cmd_exec",
    "export": "containers:cmd_export",
    "inspect": "containers:cmd_container_inspect",
    "kill": "containers:cmd_kill",
    "logs": "containers:cmd_logs",
    "ls": "ps:cmd_ps",
    "list": "ps:cmd_ps",
    "ps": "ps:cmd_ps",
    "pause": "containers:cmd_pause",
    "port": "containers:cmd_port",
    "prune": "containers:cmd_prune",
    "rename": "containers:cmd_rename",
    "restart": "containers:cmd_restart",
    "rm": "containers:cmd_rm",
    "remove": "containers:cmd_rm",
    "run": "containers:cmd_run",
    "start": "containers:cmd_start",
    "stats": "stats:cmd_stats",
    "stop": "containers:cmd_stop",
    "top": "containers:cmd_top",
    "unpause": "containers:cmd_unpause",
    "update": "stats:cmd_update",
    "wait": "containers:cmd_wait",
}

BUILDER_VERBS: dict[str, str] = {
    "build": "build:cmd_build",
    "prune": "build:cmd_builder_prune",
}

NETWORK_VERBS: dict[str, str] = {
    "connect": "network:cmd_network_connect",
    "create": "network:cmd_network_create",
    "disconnect": "network:cmd_network_disconnect",
    "inspect": "network:cmd_network_inspect",
    "ls": "network:cmd_network_ls",
    "list": "network:cmd_network_ls",
    "prune": "network:cmd_network_prune",
    "rm": "network:cmd_network_rm",
    "remove": "network:cmd_network_rm",
}

VOLUME_VERBS: dict[str, str] = {
    "create": "volume:cmd_volume_create",
    "inspect": "volume:cmd_volume_inspect",
    "ls": "volume:cmd_volume_ls",
    "list": "volume:cmd_volume_ls",
    "prune": "volume:cmd_volume_prune",
    "rm": "volume:cmd_volume_rm",
    "remove": "volume:cmd_volume_rm",
}

REGISTRY_VERBS: dict[str, str] = {
    "gc": "registry_server:cmd_registry_gc",
    "htpasswd": "registry_server:cmd_registry_htpasswd",
    "import": "registry_server:cmd_registry_import",
    "serve": "registry_server:cmd_registry_serve",
}

SYSTEM_VERBS: dict[str, str] = {
    "df": "system:cmd_df",
    "events": "events:cmd_events",
    "info": "system:cmd_info",
    "prune": "system:cmd_prune",
}

# aliases that run a sub-verb but are not listed by 'lamina image --help' and the like
HIDDEN_ALIASES = frozenset({"list", "remove"})

# what 'lamina image --help' and the like say of a sub-verb, where it is not the summary of
# the top-level verb of the same name (Docker's wording); any other sub-verb is described
# by its own parser's description
SUB_SUMMARIES: dict[str, str] = {
    "image inspect": "Display detailed information on one or more images",
    "image ls": "List images",
    "image prune": "Remove unused images",
    "image rm": "Remove one or more images",
    "container inspect": "Display detailed information on one or more containers",
    "container ls": "List containers",
    "container prune": "Remove all stopped containers",
    "builder prune": "Remove build cache",
    "system df": "Show lamina disk usage",
    "system prune": "Remove unused data",
    "registry gc": "Remove blobs no manifest references (safe while servers run)",
    "registry htpasswd": "Print or add a bcrypt htpasswd line (registry:2's format)",
    "registry import": "Import a registry:2 storage directory into a registry store",
    "registry serve": "Serve the OCI distribution (Docker registry v2) API from a store",
}

# verb -> (function or sub-verb table, one-line summary). Order is the help order.
COMMANDS: dict[str, tuple[str | dict[str, str], str]] = {
    "run": ("containers:cmd_run", "Create and run a new container from an image"),
    "exec": ("containers:cmd_exec", "Execute a command in a running container"),
    "ps": ("ps:cmd_ps", "List containers"),
    "build": ("build:cmd_build", "Build an image from a Dockerfile"),
    "pull": ("registry:cmd_pull", "Download an image from a registry"),
    "push": ("registry:cmd_push", "Upload an image to a registry"),
    "images": ("images:cmd_images", "List images"),
    "login": ("registry:cmd_login", "Log in to a registry"),
    "logout": ("registry:cmd_logout", "Log out from a registry"),
    "search": ("registry:cmd_search", "Search Docker Hub for images"),
    "import": ("images:cmd_import", "Import the contents from a tarball to create a filesystem image"),
    "inspect": ("images:cmd_inspect", "Return low-level information on lamina objects"),
    "history": ("images:cmd_history", "Show the history of an image"),
    "tag": ("images:cmd_tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("images:cmd_rmi", "Remove one or more images"),
    "save": ("images:cmd_save", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "load": ("images:cmd_load", "Load an image from a tar archive or STDIN"),
    "image": (IMAGE_VERBS, "Manage images"),
    "container": (CONTAINER_VERBS, "Manage containers"),
    "create": ("containers:cmd_create", "Create a new container"),
    "start": ("containers:cmd_start", "Start one or more stopped containers"),
    "stop": ("containers:cmd_stop", "Stop one or more running containers"),
    "restart": ("containers:cmd_restart", "Restart one or more containers"),
    "kill": ("containers:cmd_kill", "Kill one or more running containers"),
    "rm": ("containers:cmd_rm", "Remove one or more containers"),
    "wait": ("containers:cmd_wait", "Block until one or more containers stop, then print their exit codes"),
    "rename": ("containers:cmd_rename", "Rename a container"),
    "pause": ("containers:cmd_pause", "Pause all processes within one or more containers"),
    "unpause": ("containers:cmd_unpause", "Unpause all processes within one or more containers"),
    "logs": ("containers:cmd_logs", "Fetch the logs of a container"),
    "attach": ("containers:cmd_attach",
               "Attach local standard input, output, and error streams to a running container"),
    "top": ("containers:cmd_top", "Display the running processes of a container"),
    "stats": ("stats:cmd_stats", "Display a live stream of container(s) resource usage statistics"),
    "update": ("stats:cmd_update", "Update configuration of one or more containers"),
    "port": ("containers:cmd_port", "List port mappings or a specific mapping for the container"),
    "commit": ("containers:cmd_commit", "Create a new image from a container's changes"),
    "diff": ("containers:cmd_diff", "Inspect changes to files or directories on a container's filesystem"),
    "cp": ("containers:cmd_cp", "Copy files/folders between a container and the local filesystem"),
    "export": ("containers:cmd_export", "Export a container's filesystem as a tar archive"),
    "builder": (BUILDER_VERBS, "Manage builds"),
    "registry": (REGISTRY_VERBS, "Run and maintain the built-in OCI registry"),
    "network": (NETWORK_VERBS, "Manage networks"),
    "volume": (VOLUME_VERBS, "Manage volumes"),
    "system": (SYSTEM_VERBS, "Manage lamina"),
    "events": ("events:cmd_events", "Get real time events from the server"),
    "info": ("system:cmd_info", "Display system-wide information"),
    "version": ("system:cmd_version", "Show the lamina version information"),
    "completion": ("docs:cmd_completion", "Generate the autocompletion script for the specified shell"),
}

USAGE = """
Usage:  lamina [OPTIONS] COMMAND

A daemonless, Docker-compatible container image engine

Options:
      --root string     Root of the lamina store (default $LAMINA_ROOT, else /var/lib/lamina)
  -D, --debug           Enable debug mode (show tracebacks)
  -v, --version         Print version information and quit
  -h, --help            Print usage

Commands:
{commands}

Run 'lamina COMMAND --help' for more information on a command.
"""


class Context:
    """What every verb gets: global options and a lazily opened store."""

    def __init__(self, root: str | None, debug: bool) -> None:
        self.root = root
        self.debug = debug
        self._store = None

    @property
    def store(self):
        if self._store is None:
            from lamina.store import Store
            self._store = Store(self.root)
        return self._store


def _usage() -> str:
    width = max(len(n) for n in COMMANDS) + 2
    lines = [f"  {name:<{width}}{summary}" for name, (_, summary) in COMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def sub_summary(verb: str, sub: str) -> str:
    """The one-line description of sub-verb ``verb sub`` (see SUB_SUMMARIES)."""
    text = SUB_SUMMARIES.get(f"{verb} {sub}")
    if text:
        return text
    target = COMMANDS[verb][0][sub]
    top = COMMANDS.get(sub)
    if top is not None and top[0] == target:
        return top[1]
    from lamina.cli.args import declared_parser
    return declared_parser(_function(target)).description.split("\n")[0]


def _group_usage(verb: str) -> str:
    table, summary = COMMANDS[verb]
    names = [sub for sub in sorted(table) if sub not in HIDDEN_ALIASES]
    width = max(12, max(len(n) for n in names) + 2)
    subs = "".join(f"  {sub:<{width}}{sub_summary(verb, sub)}\n" for sub in names)
    return (f"\nUsage:  lamina {verb} COMMAND\n\n{summary}\n\nCommands:\n{subs}\n"
            f"Run 'lamina {verb} COMMAND --help' for more information on a command.\n")


def _function(target: str):
    """The verb function a table entry names ("module:function"), importing its module now."""
    module, name = target.split(":")
    full = f"lamina.cli.{module}"
    __import__(full)
    return getattr(sys.modules[full], name)


#: Verbs whose process may end without the interpreter's teardown (see :func:`entry`): their
#: code closes every file it writes and leaves nothing to finalizers.
_QUICK_EXIT_VERBS = frozenset({"run"})
_quick_exit_ctx: Context | None = None


def entry() -> None:
    """The ``lamina`` command (bin/lamina and ``python -m lamina``): run :func:`main` and end
    the process with its exit code.

    After a verb of ``_QUICK_EXIT_VERBS`` this ends with ``os._exit`` instead of the
    interpreter's teardown (freeing every module and object, 10-20 ms of a ``run --rm``),
    once nothing is left that the teardown would do: no other thread alive, no ``atexit``
    callback registered, the store's database closed (SQLite checkpoints its WAL as it would
    when the connection is freed) and stdout/stderr flushed. If any of that does not hold, or
    a flush fails, it raises SystemExit as a plain exit does, with the same outcome."""
    code = main()
    ctx = _quick_exit_ctx
    if ctx is not None and _quiescent():
        try:
            if ctx._store is not None:
                ctx._store.close_db()
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 -- the plain exit reports it (e.g. EPIPE: 120)
            raise SystemExit(code) from None
        os._exit(code)
    raise SystemExit(code)


def _quiescent() -> bool:
    """Nothing runs or is registered that the interpreter's teardown would wait for or run."""
    import atexit
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return False
    ncallbacks = getattr(atexit, "_ncallbacks", None)  # CPython; elsewhere assume some
    return ncallbacks is not None and ncallbacks() == 0


#: Allocations between two young-generation collections for the verbs above (CPython's
#: default is 700): importing the ``run`` path and starting a container leaves ~12,000 more
#: tracked objects than it frees, so the default collects ~17 times (4-10 ms, some of them
#: full collections of the freshly imported modules) to free a few hundred cycles.
_YOUNG_THRESHOLD = 50_000


def _fewer_collections() -> None:
    """Collect cyclic garbage less often from here on (see ``_YOUNG_THRESHOLD``). Collections
    still happen: a long-running process (a foreground container's runner, the monitor a
    ``run -d`` forks) frees its cycles as before, in bigger batches."""
    import gc
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, _YOUNG_THRESHOLD), older, oldest)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root, debug = None, bool(os.environ.get("LAMINA_DEBUG"))
    while argv and argv[0].startswith("-"):
        a = argv.pop(0)
        if a in ("-h", "--help"):
            sys.stdout.write(_usage())
            return 0
        if a in ("-v", "--version"):
            from lamina import __version__
            print(f"lamina version {__version__}")
            return 0
        if a in ("-D", "--debug"):
            debug = True
        elif a == "--root" and argv:
            root = argv.pop(0)
        elif a.startswith("--root="):
            root = a.split("=", 1)[1]
        else:
            sys.stderr.write(f"unknown flag: {a}\nSee 'lamina --help'.\n")
            return 125
    if not argv:
        sys.stdout.write(_usage())
        return 0
    verb = argv.pop(0)
    if verb == "help":
        if not argv:
            sys.stdout.write(_usage())
            return 0
        verb, argv = argv[0], ["--help"]
    if verb not in COMMANDS:
        sys.stderr.write(f"lamina: '{verb}' is not a lamina command.\nSee 'lamina --help'\n")
        return 125
    target = COMMANDS[verb][0]
    if isinstance(target, dict):  # a management verb: its sub-verb picks the function
        if not argv or argv[0] in ("-h", "--help"):
            sys.stdout.write(_group_usage(verb))
            return 0
        sub = argv.pop(0)
        if sub not in target:
            sys.stderr.write(f"lamina: '{verb} {sub}' is not a lamina command.\nSee 'lamina {verb} --help'\n")
            return 125
        target = target[sub]
    if verb in _QUICK_EXIT_VERBS:
        _fewer_collections()
    ctx = Context(root, debug)
    if verb in _QUICK_EXIT_VERBS:
        global _quick_exit_ctx
        _quick_exit_ctx = ctx
    try:
        return _function(target)(argv, ctx) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - every failure reaches the user as one line
        code = report(e, debug=debug)
        from lamina.errors import Conflict, NotFound
        if code == 125 and target != "containers:cmd_run" and isinstance(e, (NotFound, Conflict)):
            # Docker's client exits 1 when the engine refuses (no such object, in use); only
            # `docker run` answers 125 for those
            return 1
        return code


def report(exc: BaseException, *, debug: bool) -> int:
    """Print ``Error: <one line>`` for any exception (lamina's own, an OS error, a bug) on
    stderr, the traceback before it only with --debug; returns the exit code (the error's,
    else 125 like Docker's engine errors)."""
    from lamina.errors import LaminaError, describe
    if debug:
        import traceback
        traceback.print_exception(exc)
    text = describe(exc)
    if not isinstance(exc, (LaminaError, OSError)) and not debug:
        text += " (run with --debug for the traceback)"
    prefix = exc.prefix if isinstance(exc, LaminaError) else "Error: "
    try:
        sys.stderr.write(f"{prefix}{text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return exc.exit_code if isinstance(exc, LaminaError) else 125


if __name__ == "__main__":
    raise SystemExit(main())
