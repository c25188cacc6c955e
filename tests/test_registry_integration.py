"""run / create / build pull what is missing from a real registry:2 on loopback, with
Docker's ``--pull always|missing|never`` policies; ``build --pull`` re-resolves its bases
and so never replays a memo."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import Lamina, mkctx
from registry_util import DockerRegistry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    r = DockerRegistry(str(tmp_path_factory.mktemp("reg-integ")))
    yield r
    r.stop()


def _publish(tmp_path, busybox_tar, name: str, msg: str) -> str:
    """Push a busybox image whose /msg holds ``msg`` as ``name`` (from a scratch store)."""
    src = Lamina(str(tmp_path / f"src-{uuid.uuid4().hex[:6]}"))
    src("import", "-c", 'CMD ["cat", "/msg"]', busybox_tar, "srcbase")
    ctx = mkctx(tmp_path, "FROM srcbase\nCOPY msg /msg\n", {"msg": msg + "\n"}, name=f"ctx-{uuid.uuid4().hex[:6]}")
    src("build", "-q", "-t", name, str(ctx))
    src("push", name)
    return json.loads(src("inspect", name).out)[0]["Id"]


def test_run_pulls_a_missing_image(lamina, busybox_tar, registry, tmp_path):
    name = f"{registry.host}/integ/{uuid.uuid4().hex[:8]}:v1"
    iid = _publish(tmp_path, busybox_tar, name, "pulled by run")
    r = lamina("run", "--rm", name)
    assert r.out == "pulled by run\n"
    err = r.err.splitlines()
    assert err[0] == f"Unable to find image '{name}' locally"
    assert err[1] == f"v1: Pulling from {name.split('/', 1)[1].rsplit(':', 1)[0]}"
    assert err[-1] == f"Status: Downloaded newer image for {name}"
    assert json.loads(lamina("inspect", name).out)[0]["Id"] == iid
    # present now: no pull
    r = lamina("run", "--rm", name)
    assert r.out == "pulled by run\n" and r.err == ""


def test_create_pull_policies(lamina, busybox_tar, registry, tmp_path):
    name = f"{registry.host}/integ/{uuid.uuid4().hex[:8]}:v1"
    _publish(tmp_path, busybox_tar, name, "one")
    r = lamina("create", "--pull", "never", name, check=False)
    assert r.rc == 1 and r.err.strip() == f"Error: No such image: {name}"  # docker create: 1
    cid = lamina("create", name).out.strip()
    assert lamina("start", "-a", cid).out == "one\n"
    # the tag moves on the registry: missing keeps the local image, always takes the new one
    _publish(tmp_path, busybox_tar, name, "two")
    assert lamina("run", "--rm", name).out == "one\n"
    r = lamina("run", "--rm", "--pull", "always", name)
    assert r.out == "two\n"
    assert f"Status: Downloaded newer image for {name}" in r.err
    assert "Unable to find image" not in r.err
    r = lamina("run", "--rm", "--pull=always", name)
    assert f"Status: Image is up to date for {name}" in r.err
    r = lamina("run", "--pull", "sometimes", name, check=False)
    assert r.rc == 125
    assert r.err.strip() == "Error: invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or \"never\""


def test_run_of_an_image_that_cannot_be_pulled(lamina, registry):
    name = f"{registry.host}/integ/nosuch:v1"
    r = lamina("run", "--rm", name, check=False)
    assert r.rc == 125
    assert r.err.splitlines()[0] == f"Unable to find image '{name}' locally"
    assert r.err.strip().splitlines()[-1] == \
        f"Error: manifest for {name} not found: manifest unknown: manifest unknown"


def test_build_pulls_bases_for_from_copy_from_and_run_mount(lamina, busybox_tar, registry, tmp_path):
    base = f"{registry.host}/integ/base-{uuid.uuid4().hex[:6]}:v1"
    other = f"{registry.host}/integ/other-{uuid.uuid4().hex[:6]}:v1"
    third = f"{registry.host}/integ/third-{uuid.uuid4().hex[:6]}:v1"
    _publish(tmp_path, busybox_tar, base, "base")
    _publish(tmp_path, busybox_tar, other, "other")
    _publish(tmp_path, busybox_tar, third, "third")
    ctx = mkctx(tmp_path, f"""
        FROM {base}
        COPY --from={other} /msg /other-msg
        RUN --mount=type=bind,from={third},target=/t cp /t/msg /third-msg
        CMD ["cat", "/msg", "/other-msg", "/third-msg"]
        """)
    r = lamina("build", "-t", "built", str(ctx))
    for n in (base, other, third):
        assert f"Status: Downloaded newer image for {n}" in r.out
    assert lamina("run", "--rm", "built").out == "base\nother\nthird\n"
    # --pull=never with a missing base: a clear error, nothing pulled
    fresh = Lamina(str(tmp_path / "fresh"))
    r = fresh("build", "--pull=never", "-t", "x", str(ctx), check=False)
    assert r.rc == 1 and f"No such image: {base}" in r.err
    assert fresh("images", "-q").out == ""


def test_build_pull_re_resolves_and_never_replays(lamina, busybox_tar, registry, tmp_path):
    base = f"{registry.host}/integ/moving-{uuid.uuid4().hex[:6]}:v1"
    _publish(tmp_path, busybox_tar, base, "old")
    ctx = mkctx(tmp_path, f"FROM {base}\nRUN cp /msg /copied\nCMD [\"cat\", \"/copied\"]\n")
    lamina("build", "-q", "-t", "app", str(ctx))
    assert lamina("run", "--rm", "app").out == "old\n"
    _publish(tmp_path, busybox_tar, base, "new")
    # without --pull the local base is used (a fully cached build, replayed)
    r = lamina("build", "-t", "app", str(ctx))
    assert "Pulling from" not in r.out
    assert lamina("run", "--rm", "app").out == "old\n"
    r = lamina("build", "--pull", "-t", "app", str(ctx))
    assert f"Status: Downloaded newer image for {base}" in r.out
    assert "Step 1/3" in r.out  # the builder ran: no replay
    assert lamina("run", "--rm", "app").out == "new\n"
    # and again: up to date, still not replayed
    r = lamina("build", "--pull", "-t", "app", str(ctx))
    assert f"Status: Image is up to date for {base}" in r.out and " ---> Using cache" in r.out
