"""The image verbs side by side with dockerd 20.10 (``images``, ``history``, ``inspect``, ``tag``,
``rmi``, ``save``, ``image prune``): same arguments through ``docker`` and through lamina, same
output where it does not depend on dockerd's own IDs and clock.

Both sides start from the test's busybox tarball imported with ``CMD ["sh"]`` under a repository
name of this test run, and the listings are narrowed to that repository, so the other images in
the shared dockerd do not matter. Where the output carries IDs or times, they are replaced by
placeholders of the same shape (``HEX12``, ``AGO``) before comparing; column widths are checked
on tables without a time column.

Found by this sweep (fixed in lamina/cli/images.py unless said otherwise):
- a layer's size counts symlink targets (dockerd sums lstat sizes): busybox was 1876 B short
  (lamina/layer: ingest, extract, writer);
- ``images REPO`` is a reference filter (Go's path.Match, familiar names): ``images 'app/*'``
  failed as a bad reference; ``*`` in a reference filter crossed ``/``;
- ``dangling=`` takes only ``true``/``false``; filter errors in dockerd's words;
- ``--format table`` / ``raw`` are keys picking the -q/--digests template; a custom table gets
  a DIGEST column with --digests; -q does not override a custom format (images and history);
- ``VirtualSize`` is units.HumanSize (4 digits); CREATED counts whole seconds;
- ``history -H=false`` shows ``CREATED AT`` in RFC 3339 (``Z`` for UTC);
- ``{{json .}}`` of a row and ``inspect`` escape ``<``, ``>``, ``&`` as json.Marshal does
  (lamina/cli/table.py);
- ``No such image: x:latest`` names the normalized reference (save: the argument as given);
- build history (``CreatedBy``) is the classic builder's comment (lamina/builder).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid

import pytest
from conftest import need_tool

AGO = re.compile(r"(Less than a second|About an? \w+|\d+ \w+) ago")
STAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d( [+-]\d{4} \w+|Z|[+-]\d\d:\d\d)")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    need_tool("docker")
    p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "DOCKER_BUILDKIT": "0"})
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}):\n{p.stderr}")
    return p


def shape(text: str) -> str:
    """IDs, ages and timestamps replaced by placeholders; runs of spaces (table padding, which
    follows the width of an age) made one width. Widths are compared on tables without ages."""
    text = re.sub(r"(file|dir|multi):[0-9a-f]+", r"\1:HASH", text)  # COPY's source hash, maybe cut
    text = re.sub(r"[0-9a-f]{64}", "HEX64", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "HEX12", text)
    text = STAMP.sub("TIMESTAMP", text)
    return re.sub(r" {2,}", "  ", AGO.sub("AGO", text))


def message(err: str) -> str:
    """An error line without the client's prefix (dockerd's answers come through
    ``Error response from daemon: ``; lamina has no daemon and prints ``Error: ``)."""
    return re.sub(r"^(Error response from daemon: |Error: )", "", err.strip())


@pytest.fixture(scope="module")
def repo(busybox_tar):
    """A repository name of this run in dockerd: ``<repo>:1.0`` and ``<repo>:latest``."""
    name = f"lamina-fid-{uuid.uuid4().hex[:8]}/bb"
    docker("import", "-c", 'CMD ["sh"]', busybox_tar, f"{name}:1.0")
    docker("tag", f"{name}:1.0", f"{name}:latest")
    yield name
    docker("rmi", "-f", f"{name}:1.0", f"{name}:latest", check=False)


@pytest.fixture
def both(lamina, busybox_tar, repo):
    lamina("import", "-c", 'CMD ["sh"]', busybox_tar, f"{repo}:1.0")
    lamina("tag", f"{repo}:1.0", f"{repo}:latest")
    return lamina


def same(lamina, *args: str) -> tuple[str, str]:
    """Run ``args`` through both; assert both succeed; return (docker's, lamina's) stdout."""
    theirs = docker(*args)
    ours = lamina(*args)
    return theirs.stdout, ours.out


PLACEHOLDERS = ("{{.Repository}}|{{.Tag}}|{{.ID}}|{{.Digest}}|{{.CreatedSince}}|{{.CreatedAt}}|"
                "{{.Size}}|{{.Containers}}|{{.SharedSize}}|{{.UniqueSize}}|{{.VirtualSize}}")


def test_images_formats_and_filters_match_docker(both, repo):
    """Every placeholder, the table/raw/json keys with -q and --digests, the REPOSITORY argument
    as a pattern, and reference filters: the same lines as docker's."""
    ref = f"reference={repo.split('/')[0]}/*"
    cases = [
        ("images", repo),
        ("images", f"{repo}:1.*"),
        ("image", "ls", "--filter", ref),
        ("images", "--filter", ref, "--no-trunc"),
        ("images", "--filter", ref, "--digests"),
        ("images", "--filter", ref, "-q"),
        ("images", "--filter", ref, "--format", "table"),
        ("images", "--filter", ref, "--format", "table", "-q"),
        ("images", "--filter", ref, "--format", "table", "--digests"),
        ("images", "--filter", ref, "--format", "raw"),
        ("images", "--filter", ref, "--format", "raw", "--digests"),
        ("images", "--filter", ref, "--format", "raw", "-q"),
        ("images", "--filter", ref, "--format", "json"),
        ("images", "--filter", ref, "--format", "{{json .}}"),
        ("images", "--filter", ref, "--format", PLACEHOLDERS),
        ("images", "--filter", ref, "--format", "table " + PLACEHOLDERS),
        ("images", "--filter", ref, "-q", "--format", "{{.Repository}}:{{.Tag}}"),
        ("images", "--filter", ref, "--digests", "--format", "table {{.Repository}}\t{{.ID}}"),
        ("images", "--filter", ref, "--filter", "dangling=false", "--format", "{{.Tag}}"),
        ("images", "--filter", f"reference={repo}:1.0", "--filter", f"reference={repo}:nope", "--format", "{{.Tag}}"),
        ("images", "--filter", f"reference={repo.split('/')[0]}*", "--format", "{{.Tag}}"),  # * stops at /
        ("images", f"docker.io/{repo}", "--format", "{{.Tag}}"),
        ("images", "BAD", "--format", "{{.Tag}}"),
    ]
    for args in cases:
        theirs, ours = same(both, *args)
        assert shape(ours) == shape(theirs), args
    # column widths, on a table without a time in it
    fmt = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Digest}}\t{{.Size}}\t{{.VirtualSize}}"
    theirs, ours = same(both, "images", "--filter", ref, "--format", fmt)
    assert re.sub(r"[0-9a-f]{12}", "HEX12", ours) == re.sub(r"[0-9a-f]{12}", "HEX12", theirs)


def test_images_filter_errors_match_docker(both, repo):
    for f in ("dangling=TRUE", "dangling=1", "color=red", "reference=["):
        theirs = docker("images", "--filter", f, check=False)
        ours = both("images", "--filter", f, check=False)
        assert theirs.returncode != 0 and ours.rc != 0, f
        assert message(ours.err) == message(theirs.stderr), f
    theirs = docker("image", "prune", "-f", "--filter", "until=soon", check=False)
    ours = both("image", "prune", "-f", "--filter", "until=soon", check=False)
    assert ours.rc != 0 and message(ours.err) == message(theirs.stderr)


def test_size_counts_symlinks_like_docker(both, repo):
    """dockerd's layer size is the lstat sizes of what it unpacks, symlink targets included."""
    theirs, ours = same(both, "image", "inspect", "-f", "{{.Size}} {{.VirtualSize}}", f"{repo}:1.0")
    assert ours == theirs
    theirs, ours = same(both, "history", "-H=false", "--format", "{{.Size}}", f"{repo}:1.0")
    assert ours == theirs


def test_history_of_an_import_matches_docker(both, repo):
    for args in (("history", f"{repo}:1.0"), ("history", "-H=false", f"{repo}:1.0"),
                 ("history", "--no-trunc", "-H=false", f"{repo}:1.0"),
                 ("history", "--format", "table", f"{repo}:1.0"),
                 ("history", "-q", f"{repo}:1.0"), ("history", "-q", "--format", "{{.Size}}", f"{repo}:1.0"),
                 ("history", "--format", "{{json .}}", f"{repo}:1.0"),
                 ("history", "--format", "{{.CreatedAt}}", f"{repo}:1.0")):
        theirs, ours = same(both, *args)
        assert shape(ours) == shape(theirs), args
    theirs, ours = same(both, "history", "--format", "table {{.ID}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
                        f"{repo}:1.0")
    assert re.sub(r"[0-9a-f]{12}", "HEX12", ours) == re.sub(r"[0-9a-f]{12}", "HEX12", theirs)
    # RFC 3339 in this machine's zone, as Go prints it
    theirs, ours = same(both, "history", "--format", "{{.CreatedAt}}", f"{repo}:1.0")
    assert STAMP.fullmatch(ours.strip()) and ours.strip()[19:] == theirs.strip()[19:]


DOCKERFILE = """\
FROM BASE
ARG A=1
ARG B
ENV Y="a b" Z=2
LABEL k="v w" k2=v2 amp="a<b>&c"
EXPOSE 80 90/udp
VOLUME /data /v2
VOLUME ["/j"]
USER nobody
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --retries=3 CMD true
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo x
USER root
RUN echo $A
RUN ["echo", "exec"]
WORKDIR rel
ENTRYPOINT ["/bin/echo", "e"]
ENTRYPOINT echo shell
CMD ["x", "y"]
ADD f /added
COPY --chown=1:1 f g /dir/
MAINTAINER me
"""


@pytest.fixture
def built(both, repo, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE.replace("BASE", f"{repo}:1.0"))
    (ctx / "f").write_text("f\n")
    (ctx / "g").write_text("gg\n")
    tag = f"{repo.split('/')[0]}/built:{uuid.uuid4().hex[:6]}"
    docker("build", "-q", "-t", tag, str(ctx))
    try:
        both("build", "-q", "-t", tag, str(ctx))
        yield tag
    finally:
        docker("rmi", "-f", tag, check=False)


def test_build_history_is_the_classic_builders(both, built):
    """CreatedBy of every step as `docker build` (classic builder) records it: the stage's
    shell, #(nop) and moby's formatting of what the step set."""
    theirs, ours = same(both, "history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}|{{.Comment}}", built)
    assert shape(ours) == shape(theirs)
    theirs, ours = same(both, "history", built)
    assert shape(ours) == shape(theirs)


def test_json_escapes_html_where_docker_does(both, built, repo):
    """dockerd writes inspect JSON unescaped, and so does the template's json function; a
    docker/cli row context (``images --format json``) is json.Marshal'd: \\u003cnone\\u003e."""
    theirs, ours = same(both, "image", "inspect", built)
    line = [x.strip() for x in theirs.splitlines() if '"amp"' in x]
    assert line and line[0] == '"amp": "a<b>&c",'
    assert line[0] in [x.strip() for x in ours.splitlines()]
    theirs, ours = same(both, "images", "--format", "json", built)
    assert '"Digest":"\\u003cnone\\u003e"' in theirs and shape(ours) == shape(theirs)
    theirs, ours = same(both, "image", "inspect", "-f", "{{json .Config.Labels}}", built)
    assert ours == theirs


def test_no_such_image_names_what_was_looked_up(both):
    for args in (("tag", "lamina-nosuch", "x"), ("history", "lamina-nosuch"), ("rmi", "lamina-nosuch"),
                 ("rmi", "lamina-nosuch:v1"), ("save", "lamina-nosuch"),
                 ("history", "sha256:abc")):
        theirs = docker(*args, check=False)
        ours = both(*args, check=False)
        assert theirs.returncode != 0 and ours.rc != 0, args
        assert message(ours.err) == message(theirs.stderr), args


def test_save_checks_the_output_path_first_like_docker(both, repo, tmp_path):
    """``save -o`` refuses a device, a directory or a missing directory before anything else,
    in docker/cli's words; the device is left as it was (lamina renamed its archive over it)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dev = out_dir / "null"
    os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))
    for out, image in ((str(dev), f"{repo}:1.0"), (str(out_dir), "lamina-nosuch"),
                       (str(out_dir / "no" / "x.tar"), f"{repo}:1.0")):
        theirs = docker("save", "-o", out, image, check=False)
        ours = both("save", "-o", out, image, check=False)
        assert theirs.returncode != 0 and ours.rc != 0, out
        assert ours.err == theirs.stderr, out
    assert os.path.exists(dev) and os.stat(dev).st_rdev == os.makedev(1, 3)
    assert os.listdir(out_dir) == ["null"]


def test_search_of_a_registry_that_is_not_there_fails_like_dockerd(lamina):
    """dockerd pings ``/v1/_ping`` over HTTPS, then HTTP for an insecure (loopback) registry,
    and names both failures, with the address it dialed (``localhost`` -> ``127.0.0.1``)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    for host in ("localhost", "127.0.0.1"):
        theirs = docker("search", f"{host}:{port}/app", check=False)
        ours = lamina("search", f"{host}:{port}/app", check=False)
        assert theirs.returncode != 0 and ours.rc != 0
        assert message(ours.err) == message(theirs.stderr)


def test_a_run_that_changes_nothing_adds_no_layer(both, repo, tmp_path):
    """dockerd commits a RUN whose diff is empty as an empty_layer step (no RootFS layer), so
    ``rmi`` deletes one ``Deleted:`` line fewer per such step; lamina added an empty layer."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {repo}:1.0\nRUN true\nRUN true\nRUN echo > /f\n")
    tag = f"{repo.split('/')[0]}/empty-run:{uuid.uuid4().hex[:6]}"
    docker("build", "-q", "-t", tag, str(ctx))
    try:
        both("build", "-q", "-t", tag, str(ctx))
        theirs, ours = same(both, "image", "inspect", "-f", "{{len .RootFS.Layers}}", tag)
        assert ours == theirs == "2\n"
        theirs, ours = same(both, "history", "--format", "{{.CreatedBy}}|{{.Size}}", tag)
        assert ours == theirs
        theirs, ours = same(both, "rmi", tag)
        assert shape(ours) == shape(theirs)
    finally:
        docker("rmi", "-f", tag, check=False)


def _skeleton(v, key: str = ""):
    """The JSON with IDs, times and driver paths made placeholders: its keys, their order,
    null vs [] vs {} and every other value kept."""
    if isinstance(v, dict):
        return [(k, _skeleton(x, k)) for k, x in v.items()]
    if isinstance(v, list):
        return [_skeleton(x) for x in v]
    if isinstance(v, str):
        if key in ("LowerDir", "MergedDir", "UpperDir", "WorkDir"):
            return "PATH"
        if key in ("Created", "LastTagTime"):
            return "TIME" if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", v) else v
        return shape(v)
    return v


def test_inspect_of_a_built_image_has_dockers_shape(both, built):
    """The whole ``image inspect`` JSON of a classic build, key by key: Config.Image names the
    parent, Container and ContainerConfig (Hostname, the step's #(nop) Cmd) are the last
    step's, GraphDriver is overlay2's (LowerDir, MergedDir, UpperDir, WorkDir). Left out:
    DockerVersion (lamina is not dockerd) and Descriptor (newer Docker's field, kept)."""
    both("run", "--rm", built, "true")  # unpacks the layers: GraphDriver.Data names their dirs
    theirs, ours = same(both, "image", "inspect", built)
    t, o = json.loads(theirs)[0], json.loads(ours)[0]
    t["DockerVersion"] = ""
    o.pop("Descriptor", None)
    assert _skeleton(o) == _skeleton(t)
    for fmt in ("{{json .ContainerConfig.Cmd}}", "{{.Config.Image | len}}", "{{.Container | len}}"):
        theirs, ours = same(both, "image", "inspect", "-f", fmt, built)
        assert shape(ours) == shape(theirs), fmt


def test_run_after_volume_sees_an_empty_throwaway_mount_like_docker(both, repo, tmp_path):
    """The classic builder runs RUN with the image's VOLUMEs mounted: writing there works
    (lamina failed: /data did not exist), is thrown away, and the mount point stays in the
    step's layer."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {repo}:1.0\nVOLUME /data /v/sub\nRUN echo x > /data/f && ls /v/sub\n"
                                    "RUN ls -A /data\n")
    tag = f"{repo.split('/')[0]}/vol:{uuid.uuid4().hex[:6]}"
    docker("build", "-q", "-t", tag, str(ctx))
    try:
        both("build", "-q", "-t", tag, str(ctx))
        theirs, ours = same(both, "image", "inspect", "-f", "{{len .RootFS.Layers}}", tag)
        assert ours == theirs == "2\n"
        theirs, ours = same(both, "run", "--rm", "--entrypoint", "ls", tag, "-A", "/data", "/v")
        assert ours == theirs
    finally:
        docker("rmi", "-f", tag, check=False)
