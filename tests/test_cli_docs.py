"""Man pages and shell completion (issue 13), made from the verbs' own flag declarations:
a page per verb and sub-verb that man renders; bash, zsh and fish completing verbs,
sub-verbs, flags and the image and container names of the store on the command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO, need_tool
from containers_util import bb  # noqa: F401  (fixture)

from lamina.cli.main import COMMANDS, HIDDEN_ALIASES


def _all_commands() -> list[tuple[str, ...]]:
    out = []
    for verb, (table, _) in COMMANDS.items():
        out.append((verb,))
        if isinstance(table, dict):
            out += [(verb, sub) for sub in table if sub not in HIDDEN_ALIASES]
    return out


def _man(man: str, page) -> subprocess.CompletedProcess:
    """``man -l page`` rendered as plain text (overstrike bold and underline removed)."""
    import re
    r = subprocess.run([man, "--warnings=w", "-l", str(page)], capture_output=True, text=True,
                       env={**os.environ, "MANWIDTH": "200"})
    r.stdout = re.sub(".\x08", "", r.stdout)
    return r


def test_every_verb_and_sub_verb_has_a_man_page_man_renders(tmp_path):
    man = need_tool("man")
    out = tmp_path / "man1"
    p = subprocess.run([sys.executable, "-m", "lamina.cli.docs", "man", str(out)], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    want = {"lamina.1"} | {"-".join(("lamina",) + c) + ".1" for c in _all_commands()}
    assert set(os.listdir(out)) == want
    for name in sorted(want):
        r = _man(man, out / name)
        assert r.returncode == 0 and r.stderr == "", (name, r.stderr)
        assert "NAME" in r.stdout and "SYNOPSIS" in r.stdout, name
    # a page says what --help says: usage, description, every flag with its help
    page = _man(man, out / "lamina-image-ls.1").stdout
    help_text = subprocess.run([sys.executable, "-m", "lamina", "image", "ls", "--help"], cwd=REPO,
                               env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True).stdout
    assert "lamina image ls [OPTIONS] [REPOSITORY[:TAG]]" in page
    for line in help_text.split("Options:\n")[1].splitlines():
        flag, helptext = line.strip().split("   ", 1)
        assert flag.strip().replace(" string", "") in page.replace(" string", ""), flag
        assert helptext.strip() in page, helptext
    group = _man(man, out / "lamina-image.1").stdout
    assert "ls" in group and "List images" in group and "lamina-image-ls(1)" in group


@pytest.fixture
def shell_env(bb, busybox_tar, tmp_path):
    """PATH with a ``lamina`` of this checkout; a store with images and a container, and a
    second store (only reachable with --root) with an image of its own."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "lamina"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m lamina \"$@\"\n")
    wrapper.chmod(0o755)
    bb("tag", "busybox", "busybox:v2")
    bb("create", "--name", "webserver", "busybox", "true")
    other = tmp_path / "other"
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "LAMINA_ROOT": bb.root}
    subprocess.run([str(wrapper), "--root", str(other), "import", busybox_tar, "otherimage"], env=env,
                   capture_output=True, check=True)
    return env, str(other)


def _bash_complete(env: dict, words: list[str]) -> list[str]:
    script = ("source <(lamina completion bash)\n"
              "COMP_WORDS=(\"$@\"); COMP_CWORD=$(( $# - 1 ))\n"
              "_lamina\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n")
    p = subprocess.run(["bash", "-c", script, "bash", *words], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return sorted(x for x in p.stdout.splitlines() if x)  # (the shell sorts what it shows)


def test_bash_completes_verbs_flags_and_names(shell_env, busybox_tar, tmp_path):
    env, other = shell_env
    assert _bash_complete(env, ["lamina", "ima"]) == ["image", "images"]
    assert _bash_complete(env, ["lamina", "--root", other, "ima"]) == ["image", "images"]
    assert _bash_complete(env, ["lamina", "image", "l"]) == ["load", "ls"]
    assert set(_bash_complete(env, ["lamina", "container", ""])) >= {"ls", "rm", "run", "inspect", "--help"}
    run_flags = _bash_complete(env, ["lamina", "run", "--r"])
    assert {"--rm", "--restart", "--read-only"} <= set(run_flags)
    assert _bash_complete(env, ["lamina", "images", "--dig"]) == ["--digests"]
    assert _bash_complete(env, ["lamina", "image", "ls", "--dig"]) == ["--digests"]
    # names from the store: images for image verbs, containers for container verbs
    assert _bash_complete(env, ["lamina", "run", "busy"]) == ["busybox:latest", "busybox:v2"]
    assert _bash_complete(env, ["lamina", "rmi", "busybox:v"]) == ["busybox:v2"]
    assert _bash_complete(env, ["lamina", "rm", "web"]) == ["webserver"]
    assert _bash_complete(env, ["lamina", "container", "start", "w"]) == ["webserver"]
    assert set(_bash_complete(env, ["lamina", "inspect", ""])) >= {"webserver", "busybox:latest"}
    # --root on the command line: that store's names
    assert _bash_complete(env, ["lamina", "--root", other, "rm", "web"]) == []
    assert _bash_complete(env, ["lamina", "--root", other, "run", "o"]) == ["otherimage:latest"]
    assert _bash_complete(env, ["lamina", "run", "o"]) == []
    # a flag that takes a value completes files
    (tmp_path / "Dockerfile.dev").write_text("FROM busybox\n")
    assert _bash_complete(env, ["lamina", "build", "-f", str(tmp_path / "Dockerfile.d")]) == \
        [str(tmp_path / "Dockerfile.dev")]


def test_zsh_completes_through_bashcompinit(shell_env):
    """zsh runs the bash function through bashcompinit; its compgen leaves the filtering by
    prefix to zsh's completion widget, so the candidates here are unfiltered."""
    need_tool("zsh")
    env, _ = shell_env
    script = ("source <(lamina completion zsh)\n"
              "setopt ksharrays\n"  # what bashcompinit's caller sets around a bash function
              "COMP_WORDS=(\"$@\"); COMP_CWORD=$(( $# - 1 ))\n"
              "_lamina\nprint -l -- \"${COMPREPLY[@]}\"\n")

    def candidates(*words: str) -> set[str]:
        p = subprocess.run(["zsh", "-f", "-c", script, "zsh", *words], env=env, capture_output=True, text=True)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        return set(p.stdout.split())
    assert {"image", "images", "run", "completion"} <= candidates("lamina", "ima")
    assert candidates("lamina", "image", "") >= {"ls", "load", "prune"} and "run" not in candidates("lamina", "image", "")
    assert "--digests" in candidates("lamina", "images", "--")
    assert candidates("lamina", "rm", "") == {"webserver"}
    assert candidates("lamina", "rmi", "") == {"busybox:latest", "busybox:v2"}


def test_fish_completes_verbs_flags_and_names(shell_env):
    need_tool("fish")
    env, _ = shell_env

    def complete(line: str) -> list[str]:
        p = subprocess.run(["fish", "--no-config", "-c", f"lamina completion fish | source; complete -C {line!r}"],
                           env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        return sorted(x.split("\t")[0] for x in p.stdout.splitlines())
    assert complete("lamina ima") == ["image", "images"]
    assert {"load", "ls", "prune"} <= set(complete("lamina image "))
    assert "--digests" in complete("lamina images --dig")
    assert "busybox:v2" in complete("lamina run busybox:")
    assert complete("lamina rm web") == ["webserver"]


def test_completion_needs_a_known_shell(bb):
    r = bb("completion", "tcsh", check=False)
    assert r.rc == 125 and r.err == "Error: unsupported shell 'tcsh': want bash, zsh or fish\n"
