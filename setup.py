"""Build hook only (the project is described in pyproject.toml): every wheel and sdist
carries the git commit it was built from in ``lamina/_commit`` (``lamina version`` shows it;
see lamina/buildinfo.py)."""

import os
import time

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))


def _stamp() -> str | None:
    """``<commit> <build time>``: from the checkout, else from an sdist's own stamp."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_lamina_buildinfo", os.path.join(HERE, "lamina", "buildinfo.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    commit = mod.git_commit(HERE)
    if commit:
        return f"{commit} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
    try:
        with open(os.path.join(HERE, "lamina", "_commit"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


class BuildPy(build_py):
    def run(self):
        super().run()
        stamp = _stamp()
        if stamp and not self.dry_run:
            with open(os.path.join(self.build_lib, "lamina", "_commit"), "w", encoding="utf-8") as f:
                f.write(stamp)


class Sdist(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        stamp = _stamp()
        if stamp and not self.dry_run:
            with open(os.path.join(base_dir, "lamina", "_commit"), "w", encoding="utf-8") as f:
                f.write(stamp)


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
