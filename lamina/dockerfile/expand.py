"""Variable expansion: where Docker applies its shell-word lexer to a parsed instruction.

The lexer itself is :mod:`lamina.dockerfile.shell` (BuildKit's ``shell/lex.go``); this module
sits above the parser (it takes the parser's instructions) and re-exports the lexer's entry
points. Entry points:

- :func:`expand_word` -- one word, quotes removed, spaces kept (``ProcessWord``);
- :func:`expand_words` -- expansion then splitting on unquoted whitespace (``ProcessWords``);
- :func:`expand_instruction` -- an :class:`~lamina.dockerfile.parser.Instruction` with its
  arguments expanded exactly where Docker expands them (ADD COPY ENV EXPOSE FROM LABEL
  STOPSIGNAL USER VOLUME WORKDIR ARG, plus the values of COPY/ADD/FROM flags and RUN --mount
  options); RUN CMD ENTRYPOINT SHELL HEALTHCHECK ONBUILD MAINTAINER are returned unchanged
  (their words are the container shell's business);
- :func:`key_values` -- the typed ``(key, value)`` pairs of ENV, LABEL and ARG.

Errors are :class:`ExpansionError` (an ``InvalidArgument``) with Docker's wording, e.g.
``failed to process "${x:?}": x: is not allowed to be empty``; ``.variable`` names the
variable for the ``?`` modifiers. Pure functions: no I/O, thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping

from lamina import values
from lamina.dockerfile.parser import heredoc_name
from lamina.dockerfile.shell import ExpansionError, expand_word, expand_words

__all__ = [
    "ExpansionError", "expand_word", "expand_words", "expand_instruction", "key_values",
    "EXPANDED_COMMANDS",
]

#: Instructions whose arguments Docker expands (moby's ``replaceEnvAllowed`` plus FROM).
EXPANDED_COMMANDS = frozenset({
    "ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
    "ARG",
})


def key_values(instr) -> tuple[tuple[str, str | None], ...]:
    """The ``(key, value)`` pairs of an ENV, LABEL or ARG instruction.

    ENV and LABEL come out of the parser as alternating key/value arguments (both the
    ``k=v k2=v2`` form and the legacy ``ENV key value words`` form); ARG arguments are
    ``name`` or ``name=default`` and give ``None`` for a missing default. Values are
    returned as they are in ``instr`` (call on an expanded instruction for final values).
    """
    cmd = instr.cmd
    if cmd in ("ENV", "LABEL"):
        a = instr.args
        return tuple((a[i], a[i + 1]) for i in range(0, len(a) - 1, 2))
    if cmd == "ARG":
        out = []
        for arg in instr.args:
            k, sep, v = arg.partition("=")
            out.append((k, v if sep else None))
        return tuple(out)
    raise ValueError(f"key_values: {cmd} has no key/value arguments")


_FLAG_EXPANDED = {
    "ADD": ("chown", "chmod", "checksum"),
    "COPY": ("chown", "chmod", "from"),
    "FROM": ("platform",),
    "RUN": ("mount",),
}


def _expand_mount(value: str, env: Mapping[str, str], escape: str) -> str:
    # BuildKit expands each field of a --mount option separately (csv key=value fields)
    parts = value.split(",")
    return ",".join(expand_word(p, env, escape=escape) for p in parts)


def expand_instruction(instr, env: Mapping[str, str], *, escape: str = "\\"):
    """A copy of ``instr`` with variables expanded where Docker expands them.

    ``env`` is the build environment at this step (ENV values, then ARG values in scope;
    for FROM: the meta ARGs). Instructions outside :data:`EXPANDED_COMMANDS` keep their
    arguments (RUN only has its ``--mount`` option values expanded, as in BuildKit).
    Heredocs of COPY/ADD marked ``expand`` are expanded too. Raises ExpansionError.
    """
    cmd = instr.cmd
    flags = instr.flags
    names = _FLAG_EXPANDED.get(cmd, ())
    if names:
        new_flags = []
        for k, v in flags:
            if k in names and v is not None:
                v = (_expand_mount(v, env, escape) if k == "mount"
                     else expand_word(v, env, escape=escape))
            new_flags.append((k, v))
        flags = tuple(new_flags)
    if cmd not in EXPANDED_COMMANDS:
        return values.replace(instr, flags=flags) if flags != instr.flags else instr

    def w(s: str) -> str:
        return expand_word(s, env, escape=escape)

    args = instr.args
    heredocs = instr.heredocs
    if cmd == "ARG":
        out = []
        for k, v in key_values(instr):
            k = w(k)
            out.append(k if v is None else f"{k}={w(v)}")
        args = tuple(out)
    elif cmd == "EXPOSE":
        args = tuple(p for a in args for p in expand_words(a, env, escape=escape))
    elif cmd in ("ADD", "COPY") and heredocs:
        names_in_args = set()
        new_args = []
        for a in args:
            h = heredoc_name(a)
            if h is not None:
                names_in_args.add(h)
                new_args.append(a)
            else:
                new_args.append(w(a))
        args = tuple(new_args)
        heredocs = tuple(
            values.replace(h, content=w(h.content)) if h.expand else h
            for h in heredocs)
    else:
        args = tuple(w(a) for a in args)
    return values.replace(instr, args=args, flags=flags, heredocs=heredocs)
