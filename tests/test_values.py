"""lamina.values: value classes that behave like frozen dataclasses, built without code
generation (so without importing dataclasses at all)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from lamina.values import FrozenInstanceError, field, fields, replace, value

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@value(order=True)
class V:
    a: int
    b: str = "x"
    c: tuple = field(default_factory=tuple)
    note: str = field(default="", compare=False, repr=False)


@value(kw_only=True)
class K:
    name: str
    tags: list = field(default_factory=list)


@value
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("negative")
        object.__setattr__(self, "n", int(self.n))


@value(frozen=False)
class M:
    x: int = 0


@dataclasses.dataclass(frozen=True, order=True)
class D:  # the standard library's answer, for comparison
    a: int
    b: str = "x"
    c: tuple = dataclasses.field(default_factory=tuple)
    note: str = dataclasses.field(default="", compare=False, repr=False)


def test_behaves_like_a_frozen_dataclass():
    v = V(1)
    d = D(1)
    assert (v.a, v.b, v.c, v.note) == (d.a, d.b, d.c, d.note)
    assert repr(v) == "V(a=1, b='x', c=())" and repr(d) == "D(a=1, b='x', c=())"
    assert v == V(1, "x", ()) == V(a=1, c=()) and v != V(2) and v != d
    assert V(1, note="other") == v and hash(V(1, note="o")) == hash(v)  # compare=False
    assert hash(v) == hash(V(1)) and len({V(1), V(1), V(2)}) == 2
    assert V(0) < v <= V(1) and V(2) > v and sorted([V(2), V(1, "z"), V(1)]) == [V(1), V(1, "z"), V(2)]
    with pytest.raises(FrozenInstanceError):
        v.a = 2
    with pytest.raises(AttributeError):  # FrozenInstanceError is an AttributeError
        del v.b
    assert K(name="n").tags is not K(name="n").tags


def test_construction_errors_match_dataclasses():
    for bad in (lambda cls: cls(), lambda cls: cls(1, "x", (), "", 5),
                lambda cls: cls(1, a=1), lambda cls: cls(1, nope=2)):
        with pytest.raises(TypeError):
            bad(D)
        with pytest.raises(TypeError):
            bad(V)
    with pytest.raises(TypeError):
        K("positional")
    with pytest.raises(TypeError):
        @value
        class Bad:
            a: int = 1
            b: int


def test_post_init_replace_fields_and_mutable_values():
    with pytest.raises(ValueError):
        Checked(-1)
    c = Checked(True)
    assert type(c.n) is int
    v = replace(V(1, "y"), a=3)
    assert v == V(3, "y") and fields(V) == ("a", "b", "c", "note") == fields(v)
    with pytest.raises(TypeError):
        replace(v, nope=1)
    with pytest.raises(ValueError):
        replace(Checked(1), n=-5)  # __post_init__ runs again
    m = M()
    m.x = 5
    assert m == M(5)
    with pytest.raises(TypeError):
        hash(m)  # mutable and comparable: unhashable, as a dataclass


def test_a_method_the_class_writes_wins():
    @value
    class S:
        a: int

        def __repr__(self) -> str:
            return "mine"

        def __hash__(self) -> int:
            return 7
    assert repr(S(1)) == "mine" and hash(S(1)) == 7 and S(1) == S(1)


def test_run_and_listing_paths_import_no_dataclasses():
    """The reason lamina.values exists: the modules `run` loads import neither
    dataclasses nor inspect (and lamina no longer patches the standard library)."""
    code = ("import sys\n"
            "import lamina.runtime.options, lamina.runtime.spec, lamina.runtime.volumes\n"
            "import lamina.image.service, lamina.oci, lamina.reference, lamina.mount, lamina.snapshot\n"
            "import lamina.network.networks, lamina.layer.extract, lamina.runtime.launcher\n"
            "print(sorted(m for m in ('dataclasses', 'inspect') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.stdout.strip() == "[]"
    assert not os.path.exists(os.path.join(REPO, "lamina", "_dcache.py"))
