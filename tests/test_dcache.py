"""lamina._dcache: the stdlib dataclasses, with generated method code compiled once."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_values_behave_like_dataclasses():
    from lamina._dcache import dataclass, field, replace

    @dataclass(frozen=True, order=True)
    class V:
        a: int
        b: str = "x"
        c: tuple = field(default_factory=tuple)

    v = V(1)
    assert v == V(1, "x", ()) and hash(v) == hash(V(1)) and V(0) < v
    assert replace(v, b="y").b == "y" and repr(v).endswith("V(a=1, b='x', c=())")
    try:
        v.a = 2
    except AttributeError:
        pass
    else:
        raise AssertionError("frozen dataclass accepted an assignment")


def test_cache_written_then_used(tmp_path):
    """A second process compiles no dataclass method: every one comes from the cache."""
    code = ("import sys; import lamina._dcache as d, dataclasses as dc, builtins; "
            "n = [0]; orig = builtins.compile\n"
            "def counting(*a, **k):\n"
            "    if isinstance(a[0], str) and a[0].startswith('def __create_fn__'):\n"
            "        n[0] += 1  # a dataclass method; module sources may compile too (stale .pyc)\n"
            "    return orig(*a, **k)\n"
            "builtins.compile = counting\n"
            "import lamina.oci, lamina.runtime.spec, lamina.dockerfile.parser\n"
            "print(n[0])")
    env = {**os.environ, "PYTHONPATH": REPO}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    if sys.version_info[:2] == (3, 11):
        assert int(second.stdout) == 0, (first.stdout, second.stdout)
