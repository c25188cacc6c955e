"""Volume names (issue 7, item 9): ``--mount type=volume,src=...`` and ``-v name:/dst`` take
only names of Docker's grammar (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``): a path or ``..`` is refused
with the daemon's words and exit 125, and nothing is created outside the store (or in it)."""

from __future__ import annotations

import os

import pytest
from conftest import REPO
from containers_util import bb  # noqa: F401  (fixture)

INVALID = ('includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
           'allowed. If you intended to pass a host directory, use absolute path')


def _tree(path: str) -> set[str]:
    out = set()
    for d, dirs, files in os.walk(path):
        out.update(os.path.relpath(os.path.join(d, n), path) for n in dirs + files)
    return out


@pytest.mark.parametrize("spec, shown", [
    ("type=volume,src=/tmp/{tag}/v,dst=/x", "/tmp/{tag}/v"),
    ("type=volume,src=../../../../../../../tmp/{tag}/new,dst=/x", "/tmp/{tag}/new"),
    ("type=volume,source=a/b,target=/x", "a/b"),
    ("type=volume,src=x y,dst=/x", "x y"),
    ("type=volume,src=-ab,dst=/x", "-ab"),
])
def test_mount_volume_source_must_be_a_name(bb, tmp_path, spec, shown):
    tag = os.path.basename(tmp_path)
    spec, shown = spec.format(tag=tag), shown.format(tag=tag)
    before = _tree(bb.root)
    r = bb("run", "--rm", "--mount", spec, "busybox", "true", check=False)
    assert r.rc == 125
    assert r.err == f'Error: create {shown}: "{shown}" {INVALID}\n'
    assert not os.path.exists(f"/tmp/{tag}")      # nothing outside the store
    assert _tree(bb.root) == before                # nor in it
    assert bb("ps", "-aq").out == ""


def test_dot_dot_and_one_letter_names(bb):
    # Docker's client makes a source starting with "." absolute (the CLI runs in REPO)
    up = os.path.dirname(REPO)
    r = bb("run", "--rm", "--mount", "type=volume,src=..,dst=/x", "busybox", "true", check=False)
    assert (r.rc, r.err) == (125, f'Error: create {up}: "{up}" {INVALID}\n')
    r = bb("run", "--rm", "--mount", "type=volume,src=a,dst=/x", "busybox", "true", check=False)
    assert (r.rc, r.err) == (125, "Error: create a: volume name is too short, names should be at least "
                                  "two alphanumeric characters\n")
    r = bb("run", "--rm", "-v", "a/b:/x", "busybox", "true", check=False)
    assert (r.rc, r.err) == (125, f'Error: create a/b: "a/b" {INVALID}\n')
    r = bb("run", "--rm", "-v", "x$y:/x", "busybox", "true", check=False)
    assert (r.rc, r.err) == (125, f'Error: create x$y: "x$y" {INVALID}\n')
    assert not os.path.exists(os.path.join(bb.root, "volumes")) or os.listdir(os.path.join(bb.root, "volumes")) == []


def test_a_bad_spec_creates_no_volume_before_it(bb):
    """-v /anon and a good name before a bad one: no volume is made at all."""
    r = bb("run", "--rm", "-v", "/anon", "-v", "good:/g", "--mount", "type=volume,src=../x,dst=/x",
           "busybox", "true", check=False)
    assert r.rc == 125 and INVALID in r.err
    vols = os.path.join(bb.root, "volumes")
    assert not os.path.exists(vols) or os.listdir(vols) == []


def test_valid_names_still_work(bb):
    bb("run", "--rm", "-v", "a..b:/d", "busybox", "sh", "-c", "echo 1 > /d/f")
    bb("run", "--rm", "--mount", "type=volume,src=a..b,dst=/e", "busybox", "cat", "/e/f")
    assert os.path.isdir(os.path.join(bb.root, "volumes", "a..b", "_data"))
    assert sorted(os.listdir(os.path.join(bb.root, "volumes"))) == ["a..b"]
