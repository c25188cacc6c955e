"""The verb table of lamina/cli/main.py: every verb and sub-verb names a function that exists,
every verb function is reachable, group help and errors read like Docker's, and a verb's
module is imported only when the verb runs."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys

import pytest
from conftest import need_tool

from lamina.cli.main import COMMANDS, HIDDEN_ALIASES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VERB_MODULES = ("build", "docs", "containers", "events", "images", "network", "ps", "registry", "registry_server",
                "stats", "system", "volume")


def _targets():
    for verb, (target, _) in COMMANDS.items():
        if isinstance(target, dict):
            for sub, t in target.items():
                yield f"{verb} {sub}", t
        else:
            yield verb, target


@pytest.mark.parametrize("verb,target", list(_targets()))
def test_every_table_entry_names_a_verb_function(verb, target):
    module, name = target.split(":")
    assert module in VERB_MODULES
    fn = getattr(importlib.import_module(f"lamina.cli.{module}"), name)
    assert inspect.isfunction(fn) and list(inspect.signature(fn).parameters) == ["argv", "ctx"]


def test_every_verb_function_is_in_the_table():
    reachable = {t for _, t in _targets()}
    for module in VERB_MODULES:
        mod = importlib.import_module(f"lamina.cli.{module}")
        defined = {f"{module}:{n}" for n, v in vars(mod).items() if n.startswith("cmd_") and inspect.isfunction(v)}
        assert defined - reachable == set(), f"verb functions no verb runs in lamina/cli/{module}.py"


def test_management_verbs_list_their_sub_verbs_without_aliases(lamina):
    assert lamina("builder", "--help").out == (
        "\nUsage:  lamina builder COMMAND\n\nManage builds\n\nCommands:\n"
        "  build       Build an image from a Dockerfile\n  prune       Remove build cache\n\n"
        "Run 'lamina builder COMMAND --help' for more information on a command.\n")
    assert lamina("help", "system").out.startswith(
        "\nUsage:  lamina system COMMAND\n\nManage lamina\n\nCommands:\n  df          Show lamina disk usage\n"
        "  events      Get real time events from the server\n  info        Display system-wide information\n  prune       Remove unused data\n")
    for verb, (table, _) in COMMANDS.items():
        if not isinstance(table, dict):
            continue
        out = lamina(verb, "--help").out
        listed = out.split("Commands:\n")[1].split("\n\n")[0].splitlines()
        names = [line.split()[0] for line in listed]
        assert names == sorted(set(table) - HIDDEN_ALIASES), verb
        for line in listed:  # every sub-verb with its description, in one column
            assert line[2:14].rstrip() == line.split()[0] and len(line) > 16 and line[14] != " ", line


@pytest.mark.parametrize("group", ["image", "container", "builder", "system"])
def test_management_verb_help_says_what_docker_says(lamina, group):
    """Sub-verbs both have read the same as ``docker GROUP --help`` (lamina's are a subset)."""
    need_tool("docker")
    theirs = subprocess.run(["docker", group, "--help"], capture_output=True, text=True).stdout
    docker = dict(line.strip().split(None, 1) for line in theirs.split("Commands:\n")[1].split("\n\n")[0].splitlines())
    ours = dict(line.strip().split(None, 1) for line in lamina(group, "--help").out.split("Commands:\n")[1]
                .split("\n\n")[0].splitlines())
    same = {k: v.replace("Show docker", "Show lamina").replace("Manage Docker", "Manage lamina")
            for k, v in docker.items() if k in ours}
    assert {k: ours[k] for k in same} == same
    assert len(same) >= len(ours) - 1, sorted(set(ours) - set(docker))  # lamina adds little


@pytest.mark.parametrize("args", [("image", "bogus"), ("container", "images"), ("system", "list"), ("builder", "ls")])
def test_unknown_sub_verb_is_an_error_naming_it(lamina, args):
    r = lamina(*args, check=False)
    assert r.rc == 125 and r.out == ""
    assert r.err == f"lamina: '{args[0]} {args[1]}' is not a lamina command.\nSee 'lamina {args[0]} --help'\n"


def test_aliases_and_sub_verbs_run_their_functions(bb):
    cid = bb("create", "--name", "c1", "busybox", "true").out.strip()
    assert bb("image", "list", "-q").out == bb("images", "-q").out == bb("image", "ls", "-q").out
    assert bb("container", "list", "-aq").out == bb("ps", "-aq").out == cid[:12] + "\n"
    assert bb("container", "inspect", "-f", "{{.Name}}", "c1").out == "/c1\n"
    r = bb("container", "inspect", "busybox", check=False)  # an image is not a container
    assert r.rc == 1 and "No such container: busybox" in r.err
    assert bb("container", "remove", "c1").out == "c1\n"
    assert bb("ps", "-aq").out == ""


def _lamina_modules(*args: str) -> set[str]:
    """The lamina modules loaded by running ``lamina ARGS`` (in a fresh interpreter)."""
    code = ("import sys\nfrom lamina.cli.main import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write('MODULES ' + ' '.join(m for m in sys.modules if m.startswith('lamina')) + '\\n')\n")
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=REPO))
    return set(p.stderr.rsplit("MODULES ", 1)[1].split())


def test_a_verb_imports_only_its_own_module():
    assert _lamina_modules("--help") == {"lamina", "lamina.cli", "lamina.cli.main"}
    mods = _lamina_modules("image", "--help")
    assert not {f"lamina.cli.{m}" for m in VERB_MODULES} & mods
    mods = _lamina_modules("system", "info", "--help")
    assert "lamina.cli.system" in mods and not {"lamina.cli.images", "lamina.cli.containers", "lamina.cli.build"} & mods
