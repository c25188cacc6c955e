"""Flag parsing with Docker's CLI rules (spf13/pflag as docker/cli configures it).

Why not argparse: Docker's grammar differs (``--flag=false`` for booleans, ``-aq`` clusters,
``-fVALUE``, flags after positionals, ``--`` ends flags, optional stop at the first
positional for ``run``), its error texts and exit codes are what users script against
(unknown flag -> 125, wrong argument count -> 1), and argparse alone costs ~8 ms of every
start-up. This module imports nothing.

    p = Parser("images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images")
    p.flag("-a", "--all", help="Show all images")
    p.option("-f", "--filter", append=True, help="Filter output", metavar="filter")
    p.args("repository", max=1)
    a = p.parse(argv)          # a.all, a.filter, a.repository
"""

from __future__ import annotations

import sys


class Namespace:
    def __init__(self, **kw) -> None:
        self.__dict__.update(kw)

    def __repr__(self) -> str:
        return f"Namespace({self.__dict__})"


class _Flag:
    __slots__ = ("short", "long", "dest", "kind", "default", "help", "metavar")

    def __init__(self, short, long, dest, kind, default, help, metavar):
        self.short, self.long, self.dest, self.kind = short, long, dest, kind
        self.default, self.help, self.metavar = default, help, metavar


class Parser:
    def __init__(self, verb: str, usage: str, description: str = "", *, interspersed: bool = True) -> None:
        self.verb = verb
        self.usage = f"lamina {verb} {usage}".rstrip()
        self.description = description
        self.interspersed = interspersed
        self._flags: list[_Flag] = []
        self._by_name: dict[str, _Flag] = {}
        self._pos_name = "args"
        self._min, self._max = 0, 0

    # -- declaration ------------------------------------------------------------------
    def _add(self, names: tuple[str, ...], kind: str, default, help: str, metavar: str, dest: str | None) -> None:
        short = next((n[1:] for n in names if n.startswith("-") and not n.startswith("--")), None)
        long = next((n[2:] for n in names if n.startswith("--")), None)
        f = _Flag(short, long, dest or (long or short).replace("-", "_"), kind, default, help, metavar)
        self._flags.append(f)
        if short:
            self._by_name["-" + short] = f
        if long:
            self._by_name["--" + long] = f

    def flag(self, *names: str, help: str = "", default: bool = False, dest: str | None = None) -> None:
        """A boolean flag (``--x``, ``--x=false``)."""
        self._add(names, "bool", default, help, "", dest)

    def option(self, *names: str, help: str = "", default=None, append: bool = False,
               metavar: str = "string", dest: str | None = None) -> None:
        """A flag with a value; ``append`` collects repeats into a list."""
        self._add(names, "append" if append else "value", [] if append and default is None else default,
                  help, metavar, dest)

    def args(self, name: str, *, min: int = 0, max: int | None = None) -> None:
        """Positional arguments: ``a.<name>`` is a list, or a value/None when ``max == 1``."""
        self._pos_name, self._min, self._max = name, min, max

    # -- parsing ----------------------------------------------------------------------
    def parse(self, argv: list[str]) -> Namespace:
        if _introspecting:
            raise Declared(self)
        values = {f.dest: (list(f.default) if f.kind == "append" else f.default) for f in self._flags}
        pos: list[str] = []
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                pos.extend(argv[i:])
                break
            if arg == "--help" or (arg == "-h" and "-h" not in self._by_name):
                sys.stdout.write(self.help_text())
                raise SystemExit(0)
            if not arg.startswith("-") or arg == "-":
                pos.append(arg)
                if not self.interspersed:
                    pos.extend(argv[i:])
                    break
                continue
            if arg.startswith("--"):
                name, eq, val = arg.partition("=")
                f = self._by_name.get(name)
                if f is None:
                    self._usage_error(f"unknown flag: {name}")
                if f.kind == "bool":
                    values[f.dest] = self._bool(val, name) if eq else True
                    continue
                if not eq:
                    if i >= len(argv):
                        self._usage_error(f"flag needs an argument: {name}")
                    val = argv[i]
                    i += 1
                self._set(values, f, val)
                continue
            # short flags, possibly clustered: -aq, -fVALUE, -f VALUE
            j = 1
            while j < len(arg):
                c = arg[j]
                f = self._by_name.get("-" + c)
                if f is None:
                    self._usage_error(f"unknown shorthand flag: '{c}' in {arg}")
                if f.kind == "bool":
                    if j + 1 < len(arg) and arg[j + 1] == "=":
                        values[f.dest] = self._bool(arg[j + 2:], "-" + c)
                        break
                    values[f.dest] = True
                    j += 1
                    continue
                rest = arg[j + 1:]
                if rest.startswith("="):
                    rest = rest[1:]
                if not rest:
                    if i >= len(argv):
                        self._usage_error(f"flag needs an argument: '{c}' in -{c}")
                    rest = argv[i]
                    i += 1
                self._set(values, f, rest)
                break
        n = len(pos)
        if n < self._min or (self._max is not None and n > self._max):
            if self._max == 0:
                want = "no arguments"
            elif self._min == self._max:
                want = f"exactly {self._min} argument{'s' if self._min != 1 else ''}"
            elif n < self._min:
                want = f"at least {self._min} argument{'s' if self._min != 1 else ''}"
            else:
                want = f"at most {self._max} argument{'s' if self._max != 1 else ''}"
            sys.stderr.write(f"lamina: 'lamina {self.verb}' requires {want}\n\nUsage:  {self.usage}\n\n"
                             f"See 'lamina {self.verb} --help' for more information\n")
            raise SystemExit(1)
        values[self._pos_name] = (pos[0] if pos else None) if self._max == 1 else pos
        return Namespace(**values)

    def _bool(self, val: str, name: str) -> bool:
        v = val.lower()
        if v in ("1", "t", "true"):
            return True
        if v in ("0", "f", "false"):
            return False
        self._usage_error(f'invalid argument "{val}" for "{name}" flag: '
                          f'strconv.ParseBool: parsing "{val}": invalid syntax')

    def _set(self, values: dict, f: _Flag, val: str) -> None:
        if f.kind == "append":
            values[f.dest].append(val)
        else:
            values[f.dest] = val

    def _usage_error(self, message: str) -> None:
        sys.stderr.write(f"{message}\n\nUsage:  {self.usage}\n\nRun 'lamina {self.verb} --help' for more information\n")
        raise SystemExit(125)

    def help_text(self) -> str:
        lines = [f"\nUsage:  {self.usage}\n"]
        if self.description:
            lines.append(f"{self.description}\n")
        if self._flags:
            lines.append("Options:")
            cells = []
            for f in self._flags:
                s = f"-{f.short}, " if f.short else "    "
                left = f"  {s}--{f.long}" if f.long else f"  -{f.short}"
                if f.kind != "bool":
                    left += f" {f.metavar}"
                cells.append((left, f.help))
            width = max(len(c[0]) for c in cells) + 3
            lines.extend(f"{l:<{width}}{h}".rstrip() for l, h in cells)
        return "\n".join(lines) + "\n"


def parse(parser: Parser, argv: list[str]) -> Namespace:
    return parser.parse(argv)


# -- introspection: a verb's Parser without running the verb ------------------------------
# (man pages, shell completion and management-verb help are made from the same declarations
# as --help; see lamina/cli/docs.py)

_introspecting = False


class Declared(Exception):
    """Raised by :meth:`Parser.parse` while :func:`declared_parser` runs a verb."""

    def __init__(self, parser: Parser) -> None:
        super().__init__(parser.verb)
        self.parser = parser


class _NoContext:
    """The context a verb gets while introspected: touching it (opening the store) before
    parsing its flags is a bug in the verb, reported as such."""

    def __getattr__(self, name):
        raise RuntimeError(f"a verb used its context ({name}) before parsing its flags")


def declared_parser(fn) -> Parser:
    """The Parser that verb function ``fn`` (argv, ctx) declares: ``fn`` runs until its
    first parse(), which hands the parser back instead of parsing. Nothing else runs."""
    global _introspecting
    _introspecting = True
    try:
        fn([], _NoContext())
    except Declared as d:
        return d.parser
    finally:
        _introspecting = False
    raise RuntimeError(f"{fn.__module__}.{fn.__name__} returned without parsing its flags")


# -- numeric flag values, parsed as Docker's CLI parses them ----------------------------------
# (a value error raises InvalidArgument: "Error: invalid argument ...", exit 125)

def go_int(value: str, flag: str, *, bits: int = 64) -> int:
    """An int flag (pflag: ``strconv.ParseInt(value, 0, bits)``): decimal, or 0x/0o/0b/0
    prefixed; no spaces, no floats, within the signed range."""
    import re

    from lamina.errors import InvalidArgument
    v = value
    m = re.fullmatch(r"([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)", v)
    n = None
    if m and "__" not in v and not v.endswith("_"):
        body = m.group(2)
        try:
            n = int(body, 8 if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB" else 0)
        except ValueError:
            n = None
        if n is not None and m.group(1) == "-":
            n = -n
    if n is None:
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseInt: '
                              f'parsing "{value}": invalid syntax')
    if not -(1 << (bits - 1)) <= n < 1 << (bits - 1):
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseInt: '
                              f'parsing "{value}": value out of range')
    return n


def nano_cpus(value: str, flag: str = "--cpus") -> int:
    """``--cpus`` as Docker reads it: a rational number (``1.5``, ``3/2``, ``1e0``) times 10^9,
    which must be whole; 0 means unset. NaN, infinities and spaces are not numbers; more CPUs
    than this host has (or fewer than none) is Docker's range error."""
    import re

    from lamina.errors import InvalidArgument
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(/\d+)?", value):
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: failed to parse {value} '
                              f'as a rational number')
    from fractions import Fraction
    num, _, den = value.partition("/")
    if den and int(den) == 0:
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: failed to parse {value} '
                              f'as a rational number')
    exp = re.search(r"[eE]([+-]?\d+)$", num)
    if exp and abs(int(exp.group(1))) > 400:  # 1e999999999 must not build a huge integer
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: value is too precise'
                              if int(exp.group(1)) < 0 else
                              f"Range of CPUs is from 0.01 to {_ncpu()}.00, as there are only "
                              f"{_ncpu()} CPUs available")
    nano = Fraction(num) / Fraction(int(den) if den else 1) * 10 ** 9
    if nano.denominator != 1:
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: value is too precise')
    n = int(nano)
    if n < 0 or n > _ncpu() * 10 ** 9:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {_ncpu()}.00, as there are only "
                              f"{_ncpu()} CPUs available")
    return n


def _ncpu() -> int:
    import os
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1



def go_duration(value: str, flag: str) -> int:
    """A duration flag (pflag's ``time.ParseDuration``), in nanoseconds."""
    from lamina.duration import duration_error, parse_go_duration
    n = parse_go_duration(value)
    if n is None:
        from lamina.errors import InvalidArgument
        raise InvalidArgument(f'invalid argument "{value}" for "{flag}" flag: {duration_error(value)}')
    return n
