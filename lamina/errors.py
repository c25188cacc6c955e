"""Error classes, named by what the caller should do about them.

Leaf module: imports nothing of lamina. Every error carries a one-line message that
names the culprit (file:line, digest, reference, path) and, where one exists, the fix.
The CLI prints ``Error: <message>`` and exits with ``exit_code`` (125 like Docker's engine
errors unless a subclass says otherwise).
"""

from __future__ import annotations


class LaminaError(Exception):
    """Base class. ``str(err)`` is the one-line message shown to the user."""

    exit_code = 125
    #: what the CLI prints before the message (Docker's client prints some errors bare)
    prefix = "Error: "


class InvalidArgument(LaminaError):
    """The input is malformed (bad reference, bad flag value, bad tar). Fix the input."""


class NotFound(LaminaError):
    """The named thing (image, blob, container, file) does not exist."""


class AlreadyExists(LaminaError):
    """The thing to create exists already (a name in use)."""


class Conflict(LaminaError):
    """The operation conflicts with current state (image in use by a container, ...)."""


class DigestMismatch(InvalidArgument):
    """Content did not hash to the digest it claimed; nothing was stored."""


class Corrupt(LaminaError):
    """Stored data failed validation; the store may need ``lamina system prune`` or repair."""


class Unavailable(LaminaError):
    """A resource or kernel feature is missing or busy; retrying or another setup may help."""


class Unauthorized(LaminaError):
    """A registry refused the credentials (or wants some): log in, or with other ones."""


class Unsupported(LaminaError):
    """A valid request that lamina (or this host) does not support."""


class CannotRun(LaminaError):
    """The container's command could not be run: not found (exit 127) or not executable
    (126), as Docker answers. Fix the command or the image."""


class NeedsRoot(Unsupported):
    """Running containers (run, create, start, exec, build RUN steps) needs root until
    rootless mode exists: run lamina as root. Raised before anything is created."""


def need_root(action: str) -> None:
    """Raise NeedsRoot for a caller that is not root, naming ``action`` ("lamina run")."""
    import os
    if os.geteuid() != 0:
        raise NeedsRoot(f"{action} needs root: rootless mode is not supported yet; run lamina as root")


def describe(exc: BaseException) -> str:
    """The one-line text the user sees for ``exc`` after ``Error: ``, whatever its class.

    A lamina error is its message; an OS error reads like Docker's Go errors, what failed
    and where (``Permission denied: /sys/fs/cgroup/...``, never Python's ``[Errno 13] ...
    '...'``); anything else is an unexpected failure named by its class, on one line. Never
    raises."""
    if isinstance(exc, LaminaError):
        return str(exc)
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc) or type(exc).__name__
        if exc.filename is not None:
            text += f": {_fs_name(exc.filename)}"
            if exc.filename2 is not None:
                text += f" -> {_fs_name(exc.filename2)}"
    else:
        try:
            detail = str(exc)
        except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error
            detail = ""
        text = f"unexpected {type(exc).__name__}" + (f": {detail}" if detail else "")
    return " ".join(text.split("\n")) if "\n" in text else text


def _fs_name(name) -> str:
    if isinstance(name, bytes):
        return name.decode(errors="replace")
    return str(name)
