"""Which lamina this is: the git commit it was built from (``version``, ``info``).

A wheel or sdist carries the commit in ``lamina/_commit`` (one line: ``<commit> <build
time RFC 3339>``), written by setup.py when the package is built. Run from a git checkout
(or a worktree of one), the commit is read from the checkout's ``.git`` files directly (HEAD,
the ref it names, packed-refs): no ``git`` process. Anything else: ``unknown``.
Only ``version`` and ``info`` import this module.
"""

from __future__ import annotations

import os

_HERE = os.path.dirname(os.path.abspath(__file__))
COMMIT_FILE = os.path.join(_HERE, "_commit")


def build_info() -> tuple[str, str]:
    """(short commit, build time) of this lamina; ("unknown", "") when neither a build
    stamp nor a git checkout tells."""
    try:
        with open(COMMIT_FILE, encoding="utf-8") as f:
            commit, _, built = f.read().strip().partition(" ")
        if commit:
            return commit[:7], built
    except OSError:
        pass
    commit = git_commit(os.path.dirname(_HERE))
    return (commit[:7] if commit else "unknown"), ""


def git_commit(top: str) -> str | None:
    """The full commit HEAD names in the git checkout at ``top`` (a ``.git`` directory or a
    worktree's ``.git`` file), or None. Reads files only; never raises."""
    try:
        gitdir = os.path.join(top, ".git")
        if os.path.isfile(gitdir):
            with open(gitdir, encoding="utf-8") as f:
                line = f.read().strip()
            if not line.startswith("gitdir:"):
                return None
            gitdir = os.path.join(top, line[len("gitdir:"):].strip())
        common = gitdir
        try:
            with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as f:
                common = os.path.join(gitdir, f.read().strip())
        except OSError:
            pass
        with open(os.path.join(gitdir, "HEAD"), encoding="utf-8") as f:
            head = f.read().strip()
        if not head.startswith("ref:"):
            return head if _is_hex(head) else None
        ref = head[4:].strip()
        for d in (gitdir, common):
            try:
                with open(os.path.join(d, ref), encoding="utf-8") as f:
                    value = f.read().strip()
                if _is_hex(value):
                    return value
            except OSError:
                continue
        with open(os.path.join(common, "packed-refs"), encoding="utf-8") as f:
            for line in f:
                value, _, name = line.strip().partition(" ")
                if name == ref and _is_hex(value):
                    return value
    except (OSError, ValueError):
        return None
    return None


def _is_hex(text: str) -> bool:
    return len(text) >= 7 and all(c in "0123456789abcdef" for c in text)
