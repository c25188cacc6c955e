"""lamina's command line: global options, verb dispatch, error -> exit code.

Start-up is kept small: this module imports only the stdlib pieces it needs; each verb's
module (and argparse) is imported when that verb runs. ``lamina --help`` imports nothing
beyond this file.
"""

from __future__ import annotations

import os
import sys

# verb -> (module under lamina.cli, one-line summary). Order is the help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("containers", "Create and run a new container from an image"),
    "exec": ("containers", "Execute a command in a running container"),
    "ps": ("containers", "List containers"),
    "build": ("build", "Build an image from a Dockerfile"),
    "images": ("images", "List images"),
    "import": ("images", "Import the contents from a tarball to create a filesystem image"),
    "inspect": ("images", "Return low-level information on lamina objects"),
    "history": ("images", "Show the history of an image"),
    "tag": ("images", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("images", "Remove one or more images"),
    "save": ("images", "Save one or more images to a tar archive (streamed to STDOUT by default)"),
    "load": ("images", "Load an image from a tar archive or STDIN"),
    "image": ("images", "Manage images"),
    "container": ("containers", "Manage containers"),
    "create": ("containers", "Create a new container"),
    "start": ("containers", "Start one or more stopped containers"),
    "stop": ("containers", "Stop one or more running containers"),
    "restart": ("containers", "Restart one or more containers"),
    "kill": ("containers", "Kill one or more running containers"),
    "rm": ("containers", "Remove one or more containers"),
    "wait": ("containers", "Block until one or more containers stop, then print their exit codes"),
    "rename": ("containers", "Rename a container"),
    "pause": ("containers", "Pause all processes within one or more containers"),
    "unpause": ("containers", "Unpause all processes within one or more containers"),
    "logs": ("containers", "Fetch the logs of a container"),
    "attach": ("containers", "Attach local standard input, output, and error streams to a running container"),
    "top": ("containers", "Display the running processes of a container"),
    "port": ("containers", "List port mappings or a specific mapping for the container"),
    "commit": ("containers", "Create a new image from a container's changes"),
    "diff": ("containers", "Inspect changes to files or directories on a container's filesystem"),
    "cp": ("containers", "Copy files/folders between a container and the local filesystem"),
    "export": ("containers", "Export a container's filesystem as a tar archive"),
    "builder": ("build", "Manage builds"),
    "system": ("system", "Manage lamina"),
    "info": ("system", "Display system-wide information"),
    "version": ("system", "Show the lamina version information"),
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
    import importlib
    mod = importlib.import_module(f"lamina.cli.{COMMANDS[verb][0]}")
    ctx = Context(root, debug)
    from lamina.errors import LaminaError
    try:
        return mod.run(verb, argv, ctx) or 0
    except LaminaError as e:
        if debug:
            import traceback
            traceback.print_exc()
        sys.stderr.write(f"Error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        if debug:
            import traceback
            traceback.print_exc()
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        sys.stderr.write(f"Error: {e.strerror or e}{where}\n")
        return 125


if __name__ == "__main__":
    raise SystemExit(main())
