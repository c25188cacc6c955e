"""argparse configured the way Docker's CLI behaves: usage errors exit 125 with
``unknown flag`` style messages, ``-h/--help`` prints usage and exits 0, repeated flags
accumulate where Docker's do."""

from __future__ import annotations

import argparse
import sys


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def __init__(self, prog: str, usage: str, description: str = "") -> None:
        super().__init__(prog=f"lamina {prog}", usage=f"lamina {prog} {usage}".rstrip(),
                         description=description, add_help=True,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
        self._verb = prog

    def error(self, message: str) -> None:  # argparse calls this on bad usage
        if message.startswith("unrecognized arguments:"):
            bad = message.split(":", 1)[1].strip().split()[0]
            message = f"unknown flag: {bad}" if bad.startswith("-") else f'"lamina {self._verb}" accepts no argument "{bad}"'
        sys.stderr.write(f"{message}\nSee 'lamina {self._verb} --help'.\n")
        raise SystemExit(125)


def parse(parser: Parser, argv: list[str]) -> argparse.Namespace:
    return parser.parse_args(argv)
