"""Installing without a clone (README, issue 13): the wheel pip builds from this checkout,
installed into a fresh virtualenv, is a working lamina on its own -- ``--help``, an import
and a run, its commit stamped in -- with nothing of the checkout on its path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs(tmp_path, busybox_tar):
    wheels = tmp_path / "wheels"
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", REPO, "--no-deps", "-q", "-w", str(wheels)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (wheel,) = wheels.iterdir()
    assert wheel.name.startswith("lamina-") and wheel.suffix == ".whl"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    p = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LAMINA_ROOT", "VIRTUAL_ENV")}
    env["LAMINA_ROOT"] = str(tmp_path / "store")
    lamina = str(venv / "bin" / "lamina")

    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([lamina, *args], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                              timeout=300, **kw)
    r = run("--help")
    assert r.returncode == 0 and r.stdout.startswith("\nUsage:  lamina [OPTIONS] COMMAND\n")
    # the installed command imports nothing it does not need (pip's generated wrappers import re)
    r = subprocess.run([str(venv / "bin" / "python"), "-X", "importtime", lamina, "--help"], env=env,
                       cwd=str(tmp_path), capture_output=True, text=True)
    modules = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "re" not in modules and {m for m in modules if m.startswith("lamina")} == \
        {"lamina", "lamina.cli", "lamina.cli.main"}, sorted(modules)
    r = run("version", "--format", "{{.Client.GitCommit}}")
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    assert r.returncode == 0 and r.stdout.strip() == head, r.stderr
    r = run("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    assert r.returncode == 0, r.stderr
    r = run("run", "--rm", "busybox", "sh", "-c", "echo hello from the wheel")
    assert (r.returncode, r.stdout) == (0, "hello from the wheel\n"), r.stderr
    # what ran is the installed package, not this checkout
    r = subprocess.run([str(venv / "bin" / "python"), "-c", "import lamina; print(lamina.__file__)"], env=env,
                       cwd=str(tmp_path), capture_output=True, text=True)
    assert r.stdout.startswith(str(venv)), r.stdout
