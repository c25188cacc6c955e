"""Dockerfile front end: parse (with line numbers) -> typed instructions -> expansion.

Modules: ``parser`` (bytes -> :class:`Dockerfile` of stages and instructions, located
errors), ``shell`` (Docker's shell-word lexer), ``expand`` (where Docker applies it to an
instruction), ``ignore``
(.dockerignore matching with moby/patternmatcher semantics).
"""

from lamina.dockerfile.expand import (  # noqa: F401
    ExpansionError,
    expand_instruction,
    expand_word,
    expand_words,
    key_values,
)
from lamina.dockerfile.parser import (  # noqa: F401
    Dockerfile,
    DockerfileError,
    Heredoc,
    Instruction,
    Stage,
    format_error,
    parse,
)
