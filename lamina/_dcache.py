"""``dataclasses``, with the code it generates compiled once per installation.

Every frozen dataclass costs ~1 ms at import: the stdlib builds each method (``__init__``,
``__eq__``, ``__hash__``, ``__setattr__`` ...) as source text and compiles it. lamina
defines ~25 value classes, so that alone was ~20 ms of every ``lamina run``. This module
re-exports the stdlib API unchanged and, on CPython 3.11 only (whose private
``dataclasses._create_fn`` it wraps, after checking its signature), caches the compiled code
objects keyed by their exact source text in ``lamina/__pycache__`` (the same trust as the
.pyc files beside it). A missing, stale or unwritable cache only means compiling again.

Modules of lamina import ``dataclass``/``field``/``replace`` from here, not from
``dataclasses``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import MISSING, dataclass, field, fields, replace  # noqa: F401 - re-exported

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__",
                     f"dataclass-methods.{sys.implementation.cache_tag}.marshal")
_cache: dict[str, bytes] = {}   # method source text -> marshal.dumps(code), unmarshalled on use
_new: dict[str, bytes] = {}


def _install() -> None:
    if sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11):
        return
    orig = getattr(dataclasses, "_create_fn", None)
    if orig is None:
        return
    import inspect
    params = list(inspect.signature(orig).parameters)
    if params != ["name", "args", "body", "globals", "locals", "return_type"]:
        return
    import marshal
    try:
        with open(_PATH, "rb") as f:
            loaded = marshal.load(f)
        if isinstance(loaded, dict):
            _cache.update((k, v) for k, v in loaded.items() if isinstance(v, bytes))
    except (OSError, EOFError, ValueError, TypeError):
        pass

    def _create_fn(name, args, body, *, globals=None, locals=None, return_type=MISSING):
        # the stdlib's text, byte for byte (CPython 3.11 Lib/dataclasses.py), compiled once
        if locals is None:
            locals = {}
        return_annotation = ""
        if return_type is not MISSING:
            locals["_return_type"] = return_type
            return_annotation = "->_return_type"
        args = ",".join(args)
        body = "\n".join(f"  {b}" for b in body)
        txt = f" def {name}({args}){return_annotation}:\n{body}"
        local_vars = ", ".join(locals.keys())
        txt = f"def __create_fn__({local_vars}):\n{txt}\n return {name}"
        data = _cache.get(txt)
        code = marshal.loads(data) if data is not None else None
        if code is None:
            code = compile(txt, "<string>", "exec")
            _cache[txt] = _new[txt] = marshal.dumps(code)
        ns: dict = {}
        exec(code, globals, ns)
        return ns["__create_fn__"](**locals)

    dataclasses._create_fn = _create_fn
    import atexit
    atexit.register(_save)


def _save() -> None:
    if not _new:
        return
    import marshal
    tmp = f"{_PATH}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(_PATH), exist_ok=True)
        with open(tmp, "wb") as f:
            marshal.dump(_cache, f)
        os.rename(tmp, _PATH)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


_install()
