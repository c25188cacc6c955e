"""The tutorial's registry end to end (issue 12): examples/registry/run.sh builds a registry
image with lamina (Debian + Python + lamina), runs it with ``-p PORT:5000 -v DIR:/var/lib/registry``,
pushes, removes, pulls, replaces the registry container by a new one on the same directory
and pulls again. Marked slow (a Debian build); it runs in CI, never skipped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from conftest import REPO, need_tool
from containers_util import bb  # noqa: F401 - fixture
from network_util import net, traces  # noqa: F401 - fixture
from test_build_debian import debian_tar

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("net")]


def test_tutorial_registry_keeps_its_data_across_containers(net, tmp_path, tmp_path_factory):
    need_tool("debootstrap")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path / "myregistry"
    env = {**net.env, "LAMINA": f"{sys.executable} -m lamina", "PORT": str(port), "DATA": str(data),
           "DEBIAN_TAR": debian_tar(tmp_path_factory), "PYTHON": sys.executable}
    p = subprocess.run(["bash", os.path.join(REPO, "examples", "registry", "run.sh")], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-4000:] + p.stdout[-2000:]
    ref = f"localhost:{port}/tutorial/hello:v1"
    assert p.stdout.count("hello from the tutorial's registry\n") == 2  # run after each pull
    image_id = net("image", "inspect", "-f", "{{.Id}}", ref).out.strip()
    assert f"nothing lost: {ref} is {image_id}" in p.stderr
    # the registry's data is on the host directory, and no registry container is left
    assert any(os.scandir(data))
    assert net("ps", "-a", "-q", "-f", "name=lamina-registry").out == ""
    # the registry image was built by lamina and serves lamina: its entrypoint says so
    cfg = json.loads(net("image", "inspect", "lamina-registry").out)[0]["Config"]
    assert cfg["Entrypoint"][:3] == ["/opt/lamina/bin/lamina", "registry", "serve"]
    assert cfg["ExposedPorts"] == {"5000/tcp": {}} and cfg["Volumes"] == {"/var/lib/registry": {}}
    with socket.socket() as s:  # the port is free again
        s.bind(("0.0.0.0", port))
