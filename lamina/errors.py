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
