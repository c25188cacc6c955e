"""Man pages and shell completion, made from the same declarations as ``--help``.

Every verb function declares its flags on a :class:`lamina.cli.args.Parser` before doing
anything; :func:`lamina.cli.args.declared_parser` gets that Parser without running the
verb. From those and the verb table (lamina.cli.main) this module writes

- a man page per verb and sub-verb (``lamina-image-ls.1``, as Docker names its pages), and
  ``lamina.1`` for the global options and the verb list: ``python -m lamina.cli.docs man DIR``
  (scripts/make-man-pages.sh);
- ``lamina completion bash|zsh|fish``: a script completing verbs, sub-verbs, flags, and image
  and container names (asked of lamina itself, with the command line's --root, when the
  completion runs).

Only ``lamina completion`` and the man page script import this module.
"""

from __future__ import annotations

import sys

from lamina.cli.args import Parser, parse


# -- the verbs ----------------------------------------------------------------------------------
def verbs() -> list[tuple[tuple[str, ...], str, str]]:
    """Every command lamina has, in help order: (path, target, summary); path is ("run",)
    or ("image", "ls"); management verbs come with target "" (they have sub-verbs)."""
    from lamina.cli.main import COMMANDS, HIDDEN_ALIASES, sub_summary
    out = []
    for verb, (target, summary) in COMMANDS.items():
        if isinstance(target, dict):
            out.append(((verb,), "", summary))
            for sub in sorted(target):
                if sub not in HIDDEN_ALIASES:
                    out.append(((verb, sub), target[sub], sub_summary(verb, sub)))
        else:
            out.append(((verb,), target, summary))
    return out


def parser_of(target: str) -> Parser:
    from lamina.cli.args import declared_parser
    from lamina.cli.main import _function
    return declared_parser(_function(target))


def usage_of(path: tuple[str, ...], p: Parser) -> list[str]:
    """The usage lines of ``lamina <path>`` (a sub-verb's parser names the top-level verb:
    ``lamina images ...`` is ``lamina image ls ...`` here)."""
    lines = []
    for line in p.usage.split("\n"):
        line = line.strip()
        rest = line[len(f"lamina {p.verb}"):] if line.startswith(f"lamina {p.verb}") else line
        lines.append(f"lamina {' '.join(path)}{rest}")
    return lines


def flags_of(p: Parser) -> list[tuple[str | None, str | None, bool, str, str]]:
    """(short, long, takes a value, metavar, help) of each flag, in declaration order."""
    return [(f.short, f.long, f.kind != "bool", f.metavar, f.help) for f in p._flags]


# -- man pages ------------------------------------------------------------------------------------
def _roff(text: str) -> str:
    out = []
    for line in text.replace("\\", "\\e").split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def _flag_text(short, long, value: bool, metavar: str) -> str:
    names = []
    if short:
        names.append(f"\\fB\\-{short}\\fP")
    if long:
        names.append(f"\\fB\\-\\-{long}\\fP")
    return ", ".join(names) + (f" \\fI{metavar}\\fP" if value else "")


def man_page(path: tuple[str, ...], target: str, summary: str) -> str:
    """The roff text of ``lamina-<path>(1)``."""
    from lamina import __version__
    name = "-".join(("lamina",) + path)
    head = [f'.TH "{name.upper()}" "1" "" "lamina {__version__}" "lamina manual"', ".nh", ".ad l",
            ".SH NAME", f"{name} \\- {_roff(summary)}", ".SH SYNOPSIS"]
    see = []
    if not target:  # a management verb: its sub-verbs
        from lamina.cli.main import COMMANDS, HIDDEN_ALIASES, sub_summary
        head.append(f"\\fBlamina {path[0]} COMMAND\\fP")
        head += [".SH DESCRIPTION", _roff(summary), ".SH COMMANDS"]
        for sub in sorted(COMMANDS[path[0]][0]):
            if sub in HIDDEN_ALIASES:
                continue
            head += [".TP", f"\\fB{sub}\\fP", _roff(sub_summary(path[0], sub))]
            see.append(f"lamina-{path[0]}-{sub}")
    else:
        p = parser_of(target)
        for line in usage_of(path, p):
            head += [f"\\fB{_roff(line)}\\fP", ".br"]
        head += [".SH DESCRIPTION", _roff(p.description or summary)]
        flags = flags_of(p)
        if flags:
            head.append(".SH OPTIONS")
            for short, long, value, metavar, help_text in flags:
                head += [".TP", _flag_text(short, long, value, metavar), _roff(help_text or "")]
        if len(path) > 1:
            see.append(f"lamina-{path[0]}")
    see.insert(0, "lamina")
    head += [".SH SEE ALSO", ", ".join(f"\\fB{s}\\fP(1)" for s in see)]
    return "\n".join(head) + "\n"


def main_page() -> str:
    from lamina import __version__
    from lamina.cli.main import COMMANDS
    lines = ['.TH "LAMINA" "1" "" "lamina %s" "lamina manual"' % __version__, ".nh", ".ad l",
             ".SH NAME", "lamina \\- a daemonless, Docker-compatible container image engine",
             ".SH SYNOPSIS", "\\fBlamina [OPTIONS] COMMAND [ARG...]\\fP", ".SH DESCRIPTION",
             "Type lamina where you typed docker: the same verbs, flags, table columns, "
             "\\-\\-format templates and exit codes, with no daemon.",
             ".SH OPTIONS",
             ".TP", "\\fB\\-\\-root\\fP \\fIstring\\fP",
             "Root of the lamina store (default $LAMINA_ROOT, else /var/lib/lamina for root, "
             "else $XDG_DATA_HOME/lamina)",
             ".TP", "\\fB\\-D\\fP, \\fB\\-\\-debug\\fP", "Enable debug mode (show tracebacks)",
             ".TP", "\\fB\\-v\\fP, \\fB\\-\\-version\\fP", "Print version information and quit",
             ".TP", "\\fB\\-h\\fP, \\fB\\-\\-help\\fP", "Print usage",
             ".SH COMMANDS"]
    for verb, (_, summary) in COMMANDS.items():
        lines += [".TP", f"\\fBlamina\\-{verb}\\fP(1)", _roff(summary)]
    return "\n".join(lines) + "\n"


def write_man_pages(directory: str) -> list[str]:
    """Write lamina.1 and one page per verb and sub-verb into ``directory`` (created);
    returns the file names. Each file is replaced atomically."""
    import os
    os.makedirs(directory, exist_ok=True)
    pages = {"lamina.1": main_page()}
    for path, target, summary in verbs():
        pages["-".join(("lamina",) + path) + ".1"] = man_page(path, target, summary)
    for name, text in pages.items():
        tmp = os.path.join(directory, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.rename(tmp, os.path.join(directory, name))
    return sorted(pages)


# -- completion -------------------------------------------------------------------------------------
def _table() -> list[tuple[str, str, str, str]]:
    """(command path as words, flags taking no value, flags taking one, what its arguments
    name: images, containers, both or files) for every verb and sub-verb."""
    rows = []
    for path, target, _ in verbs():
        if not target:
            continue
        p = parser_of(target)
        bools, values = [], []
        for short, long, value, _, _ in flags_of(p):
            for n in ((f"-{short}",) if short else ()) + ((f"--{long}",) if long else ()):
                (values if value else bools).append(n)
        usage = p.usage
        if "CONTAINER" in usage and ("IMAGE" in usage or "NAME|ID" in usage):
            kind = "both"
        elif "CONTAINER" in usage:
            kind = "containers"
        elif "IMAGE" in usage or "NAME|ID" in usage or "NAME[:TAG" in usage:
            kind = "images"
        else:
            kind = "files"
        if path[-1] in ("inspect",):
            kind = "both" if path[0] == "inspect" else ("containers" if path[0] == "container" else "images")
        rows.append((" ".join(path), " ".join(bools + ["--help"]), " ".join(values), kind))
    return rows


def bash_script() -> str:
    from lamina.cli.main import COMMANDS, HIDDEN_ALIASES
    top = " ".join(COMMANDS)
    groups = {v: " ".join(sorted(set(t) - HIDDEN_ALIASES)) for v, (t, _) in COMMANDS.items() if isinstance(t, dict)}
    cases_flags, cases_values, cases_kind = [], [], []
    for path, bools, values, kind in _table():
        cases_flags.append(f'        "{path}") echo "{bools} {values}" ;;')
        cases_values.append(f'        "{path}") echo "{values}" ;;')
        cases_kind.append(f'        "{path}") echo {kind} ;;')
    group_cases = "\n".join(f'        {v}) echo "{subs}" ;;' for v, subs in groups.items())
    nl = "\n"
    return f'''# bash completion for lamina (made by `lamina completion bash`; do not edit)
# Load it with:  source <(lamina completion bash)
# or install it: lamina completion bash > /etc/bash_completion.d/lamina

__lamina_flags() {{
    case "$1" in
{nl.join(cases_flags)}
    esac
}}

__lamina_value_flags() {{
    case "$1" in
{nl.join(cases_values)}
    esac
}}

__lamina_kind() {{
    case "$1" in
{nl.join(cases_kind)}
    esac
}}

__lamina_subverbs() {{
    case "$1" in
{group_cases}
    esac
}}

# image and container names, from the store the command line names (--root)
__lamina_names() {{
    local cmd=(lamina "${{__lamina_global[@]}}")
    case "$1" in
        images|both) "${{cmd[@]}}" images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' 2>/dev/null | grep -v '<none>' ;;
    esac
    case "$1" in
        containers|both) "${{cmd[@]}}" ps -a --format '{{{{.Names}}}}' 2>/dev/null ;;
    esac
}}

_lamina() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    local i=1 word verb="" cmdpath=""  # (not "path": zsh ties it to $PATH)
    __lamina_global=()
    while [ $i -lt $COMP_CWORD ]; do
        word=${{COMP_WORDS[i]}}
        case "$word" in
            --root) __lamina_global+=(--root "${{COMP_WORDS[i+1]}}"); i=$((i + 2)); continue ;;
            --root=*) __lamina_global+=("$word") ;;
            -*) ;;
            *)
                if [ -z "$verb" ]; then
                    verb=$word; cmdpath=$word
                elif [ -n "$(__lamina_subverbs "$verb")" ] && [ "$cmdpath" = "$verb" ]; then
                    cmdpath="$verb $word"
                fi ;;
        esac
        i=$((i + 1))
    done
    if [ "$prev" = "--root" ]; then
        COMPREPLY=($(compgen -d -- "$cur")); return
    fi
    if [ -z "$verb" ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--root --debug --version --help -D -v -h" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "{top}" -- "$cur"))
        fi
        return
    fi
    local subs
    subs=$(__lamina_subverbs "$verb")
    if [ -n "$subs" ] && [ "$cmdpath" = "$verb" ]; then
        COMPREPLY=($(compgen -W "$subs --help" -- "$cur")); return
    fi
    local v
    for v in $(__lamina_value_flags "$cmdpath"); do
        if [ "$prev" = "$v" ]; then
            COMPREPLY=($(compgen -f -- "$cur")); return
        fi
    done
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(__lamina_flags "$cmdpath")" -- "$cur")); return
    fi
    local kind
    kind=$(__lamina_kind "$cmdpath")
    if [ "$kind" = files ]; then
        COMPREPLY=($(compgen -f -- "$cur"))
    else
        local IFS=$'\\n'
        COMPREPLY=($(compgen -W "$(__lamina_names "$kind")" -- "$cur"))
    fi
}}

complete -F _lamina lamina
'''


def zsh_script() -> str:
    """zsh runs the bash completion through bashcompinit (zsh's own emulation of it)."""
    return ("#compdef lamina\n# zsh completion for lamina (made by `lamina completion zsh`; do not edit)\n"
            "# Load it with:  source <(lamina completion zsh)\n"
            "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -i; }\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash_script().split("\n", 3)[3])


def fish_script() -> str:
    from lamina.cli.main import COMMANDS

    def q(s: str) -> str:
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"
    lines = ["# fish completion for lamina (made by `lamina completion fish`; do not edit)",
             "# Load it with:  lamina completion fish | source",
             "function __lamina_root",
             "    set -l words (commandline -opc)",
             "    set -l i (contains -i -- --root $words)",
             "    and echo --root $words[(math $i + 1)]",
             "end",
             "function __lamina_images",
             "    lamina (__lamina_root) images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null"
             " | string match -v '*<none>*'",
             "end",
             "function __lamina_containers",
             "    lamina (__lamina_root) ps -a --format '{{.Names}}' 2>/dev/null",
             "end",
             "complete -c lamina -f",
             "complete -c lamina -n __fish_use_subcommand -l root -r -d 'Root of the lamina store'",
             "complete -c lamina -n __fish_use_subcommand -s D -l debug -d 'Enable debug mode'",
             "complete -c lamina -n __fish_use_subcommand -s v -l version -d 'Print version information and quit'"]
    for verb, (_, summary) in COMMANDS.items():
        lines.append(f"complete -c lamina -n __fish_use_subcommand -a {verb} -d {q(summary)}")
    groups = {v: t for v, (t, _) in COMMANDS.items() if isinstance(t, dict)}
    for verb, table in groups.items():
        from lamina.cli.main import HIDDEN_ALIASES, sub_summary
        subs = " ".join(s for s in sorted(table) if s not in HIDDEN_ALIASES)
        for sub in subs.split():
            lines.append(f"complete -c lamina -n '__fish_seen_subcommand_from {verb}; and not "
                         f"__fish_seen_subcommand_from {subs}' -a {sub} -d {q(sub_summary(verb, sub))}")
    for path, target, _ in verbs():
        if not target:
            continue
        p = parser_of(target)
        if len(path) == 1:
            cond = f"__fish_seen_subcommand_from {path[0]}"
            if path[0] in groups:
                continue
        else:
            cond = f"__fish_seen_subcommand_from {path[0]}; and __fish_seen_subcommand_from {path[1]}"
        for short, long, value, _, help_text in flags_of(p):
            opt = (f" -s {short}" if short else "") + (f" -l {long}" if long else "")
            lines.append(f"complete -c lamina -n {q(cond)}{opt}{' -r' if value else ''} -d {q(help_text or '')}")
    for path, _, _, kind in _table():
        if len(path.split()) == 1 and path in groups:
            continue
        words = path.split()
        cond = " ; and ".join(f"__fish_seen_subcommand_from {w}" for w in words)
        if kind in ("images", "both"):
            lines.append(f"complete -c lamina -n {q(cond)} -a '(__lamina_images)'")
        if kind in ("containers", "both"):
            lines.append(f"complete -c lamina -n {q(cond)} -a '(__lamina_containers)'")
        if kind == "files":
            lines.append(f"complete -c lamina -n {q(cond)} -F")
    return "\n".join(lines) + "\n"


# -- the verbs that show them --------------------------------------------------------------------------
def cmd_completion(argv, ctx) -> int:
    p = Parser("completion", "bash|zsh|fish", "Generate the autocompletion script for the specified shell")
    p.args("shell", min=1, max=1)
    a = parse(p, argv)
    scripts = {"bash": bash_script, "zsh": zsh_script, "fish": fish_script}
    if a.shell not in scripts:
        from lamina.errors import InvalidArgument
        raise InvalidArgument(f"unsupported shell {a.shell!r}: want bash, zsh or fish")
    sys.stdout.write(scripts[a.shell]())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m lamina.cli.docs man DIR``: write the man pages into DIR."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] != "man":
        sys.stderr.write("usage: python -m lamina.cli.docs man DIR\n")
        return 2
    for name in write_man_pages(argv[1]):
        print(f"{argv[1].rstrip('/')}/{name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
