"""lamina.gotemplate side by side with Docker's CLI: ``docker inspect -f`` over a real image.

Every template of tests/gotemplate/docker_inspect_templates.txt runs twice over one image that
the test imports into dockerd: through ``docker inspect -f`` (the template runs in Docker's
CLI, Go's text/template), and through lamina.gotemplate over the same inspect data, given the
way Docker's CLI holds it: first as its typed value (GoStructs in the Go struct's field order,
typed nils for nil slices and maps), then, if that fails, as the raw JSON with
``missingkey=error`` (docker/cli's TemplateInspector does exactly this). Output, or the error
message, must be the same. The typed value follows the CLI in use: Docker 20.10 (Debian's
docker.io, which scripts/test.sh installs) or 28.x.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

import pytest
from conftest import need_tool

from lamina.gotemplate.template import TemplateError, compile_template
from lamina.gotemplate.values import NIL_MAP, NIL_SLICE, GoStruct

TEMPLATES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gotemplate", "docker_inspect_templates.txt")


def _templates() -> list[tuple[int, tuple[int, int] | None, str]]:
    """(line number, Go version the template needs or None, template) for each fixture line."""
    out = []
    with open(TEMPLATES_FILE, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            m = re.match(r"go(\d+)\.(\d+) ", line)
            out.append((n, (int(m[1]), int(m[2])), line[m.end():]) if m else (n, None, line))
    return out


TEMPLATES = _templates()

# Go types of the fields Docker's CLI decodes `docker inspect` into, in field order. A kind is
# "string", "bool", "int", "[]string", "map" (a map[string]T), "*" (a pointer lamina models as
# None: nil here) or a nested struct (type name, fields).
# container.Config, the same in Docker 20.10 and 28.2 (api/types/container/config.go)
CONTAINER_CONFIG = ("*container.Config", [
    ("Hostname", "string"), ("Domainname", "string"), ("User", "string"), ("AttachStdin", "bool"),
    ("AttachStdout", "bool"), ("AttachStderr", "bool"), ("ExposedPorts", "map"), ("Tty", "bool"),
    ("OpenStdin", "bool"), ("StdinOnce", "bool"), ("Env", "[]string"), ("Cmd", "[]string"),
    ("Healthcheck", "*"), ("ArgsEscaped", "bool"), ("Image", "string"), ("Volumes", "map"),
    ("WorkingDir", "string"), ("Entrypoint", "[]string"), ("NetworkDisabled", "bool"),
    ("MacAddress", "string"), ("OnBuild", "[]string"), ("Labels", "map"), ("StopSignal", "string"),
    ("StopTimeout", "*"), ("Shell", "[]string"),
])
# Docker 20.10: api/types.ImageInspect
INSPECT_20 = ("types.ImageInspect", [
    ("Id", "string"), ("RepoTags", "[]string"), ("RepoDigests", "[]string"), ("Parent", "string"),
    ("Comment", "string"), ("Created", "string"), ("Container", "string"),
    ("ContainerConfig", CONTAINER_CONFIG), ("DockerVersion", "string"), ("Author", "string"),
    ("Config", CONTAINER_CONFIG), ("Architecture", "string"), ("Variant", "string"), ("Os", "string"),
    ("OsVersion", "string"), ("Size", "int"), ("VirtualSize", "int"),
    ("GraphDriver", ("types.GraphDriverData", [("Data", "map"), ("Name", "string")])),
    ("RootFS", ("types.RootFS", [("Type", "string"), ("Layers", "[]string"), ("BaseLayer", "string")])),
    ("Metadata", ("types.ImageMetadata", [("LastTagTime", "string")])),  # a time.Time, as its JSON text
])
# Docker 28.2: api/types/image.InspectResponse; Config is docker-image-spec's
# DockerOCIImageConfig, its embedded ocispec.ImageConfig fields promoted
IMAGE_CONFIG_28 = ("*v1.DockerOCIImageConfig", [
    ("User", "string"), ("ExposedPorts", "map"), ("Env", "[]string"), ("Entrypoint", "[]string"),
    ("Cmd", "[]string"), ("Volumes", "map"), ("WorkingDir", "string"), ("Labels", "map"),
    ("StopSignal", "string"), ("ArgsEscaped", "bool"), ("Healthcheck", "*"), ("OnBuild", "[]string"),
    ("Shell", "[]string"),
])
INSPECT_28 = ("image.InspectResponse", [
    ("Id", "string"), ("RepoTags", "[]string"), ("RepoDigests", "[]string"), ("Parent", "string"),
    ("Comment", "string"), ("Created", "string"), ("Container", "string"),
    ("ContainerConfig", CONTAINER_CONFIG), ("DockerVersion", "string"), ("Author", "string"),
    ("Config", IMAGE_CONFIG_28), ("Architecture", "string"), ("Variant", "string"), ("Os", "string"),
    ("OsVersion", "string"), ("Size", "int"), ("VirtualSize", "int"),
    ("GraphDriver", ("storage.DriverData", [("Data", "map"), ("Name", "string")])),
    ("RootFS", ("image.RootFS", [("Type", "string"), ("Layers", "[]string")])),
    ("Metadata", ("image.Metadata", [("LastTagTime", "string")])),
    ("Descriptor", "*"), ("Manifests", "[]string"),
])
SCHEMAS = {20: INSPECT_20, 28: INSPECT_28}
_ZERO = {"string": "", "bool": False, "int": 0}


def typed(kind, raw):
    """The value Go's json.Unmarshal gives a field of ``kind`` for the JSON value ``raw``."""
    if isinstance(kind, tuple):
        type_name, fields = kind
        if raw is None:
            return None if type_name.startswith("*") else typed(kind, {})
        return GoStruct([(name, typed(k, raw.get(name))) for name, k in fields], type_name=type_name)
    if kind == "[]string":
        return NIL_SLICE if raw is None else list(raw)
    if kind == "map":
        if raw is None:
            return NIL_MAP
        # map[string]struct{} (ExposedPorts, Volumes) holds empty structs; map[string]string strings
        return {k: GoStruct(type_name="struct {}") if isinstance(v, dict) else v for k, v in raw.items()}
    if kind == "*":
        assert raw is None, "a pointer field this model leaves nil has a value: extend the schema"
        return None
    return _ZERO[kind] if raw is None else raw


def render_like_docker_cli(text: str, schema, raw: dict) -> tuple[bool, str]:
    """(ok, output or error message), as docker/cli's TemplateInspector renders one element."""
    try:
        tmpl = compile_template(text)
    except TemplateError as e:
        return False, str(e)
    try:
        return True, tmpl.render(typed(schema, raw))
    except TemplateError:
        pass
    try:
        return True, tmpl.render(raw, missingkey="error")
    except TemplateError as e:
        return False, str(e)


@pytest.fixture(scope="module")
def docker_cli() -> tuple[dict, tuple[int, int]]:
    """The typed-value schema of the docker CLI in use, and the Go version it was built with."""
    need_tool("docker")
    p = subprocess.run(["docker", "version", "--format", "{{.Client.Version}} {{.Client.GoVersion}} {{.Server.Version}}"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail(f"dockerd is not running (scripts/test.sh starts it): {p.stderr.strip()}")
    version, go, _ = p.stdout.split()
    major = int(version.split(".")[0])
    if major not in SCHEMAS:
        pytest.fail(f"no typed inspect schema for docker CLI {version}: add its Go types to {__file__}")
    m = re.match(r"go(\d+)\.(\d+)", go)
    return SCHEMAS[major], (int(m[1]), int(m[2]))


@pytest.fixture(scope="module")
def probe(docker_cli, busybox_tar):
    """An image in dockerd with a rich config, and its `docker inspect` JSON."""
    name = f"lamina-gotemplate-{uuid.uuid4().hex[:8]}"
    changes = ["ENV A=1", "ENV HTML=<a&b>", 'LABEL maintainer="me <me@example.com>" zeta=last '
               "org.opencontainers.image.version=1.36", "EXPOSE 80/tcp 443/udp", 'CMD ["sh","-c","echo hi"]',
               "USER 1000", "WORKDIR /w", "VOLUME /data", "ONBUILD RUN true"]
    args = ["docker", "import", "-m", "imported <for> gotemplate"]
    for c in changes:
        args += ["--change", c]
    subprocess.run([*args, busybox_tar, f"{name}:1"], check=True, capture_output=True)
    try:
        subprocess.run(["docker", "tag", f"{name}:1", f"{name}:2"], check=True, capture_output=True)
        raw = json.loads(subprocess.run(["docker", "inspect", f"{name}:1"], check=True, capture_output=True,
                                        text=True).stdout)[0]
        yield f"{name}:1", raw
    finally:
        subprocess.run(["docker", "rmi", f"{name}:1", f"{name}:2"], capture_output=True)


def test_the_fixture_has_its_templates():
    assert len(TEMPLATES) >= 104 and len({t for _, _, t in TEMPLATES}) == len(TEMPLATES)


@pytest.mark.parametrize("line,needs_go,text", TEMPLATES, ids=[f"L{n}" for n, _, _ in TEMPLATES])
def test_template_renders_like_docker_inspect(docker_cli, probe, line, needs_go, text):
    schema, cli_go = docker_cli
    image, raw = probe
    p = subprocess.run(["docker", "inspect", "-f", text, image], capture_output=True, text=True)
    ok, ours = render_like_docker_cli(text, schema, raw)
    if needs_go and cli_go < needs_go:
        # a feature of a newer Go's text/template: this CLI refuses it, lamina has it
        assert p.returncode != 0 and ok, (p.stdout, p.stderr, ours)
        return
    if p.returncode == 0:
        assert ok, f"Docker rendered {text!r} as {p.stdout!r}; lamina failed: {ours}"
        assert ours + "\n" == p.stdout
    else:
        assert not ok, f"Docker failed on {text!r} ({p.stderr.strip()}); lamina printed {ours!r}"
        assert ours == p.stderr.strip()
