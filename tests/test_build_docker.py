"""lamina build side by side with the real ``docker build`` (dockerd 20.10, classic builder).

Both builders start from the same base: the test's busybox tarball imported with
``CMD ["sh"]`` into each (``docker import`` / ``lamina import``). For each Dockerfile we
compare the image config fields users script against -- Cmd, Entrypoint, Env, WorkingDir,
User, ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, Shell, OnBuild -- and the layer
count (``RootFS.Layers``), plus a listing of files made by COPY/RUN (names, modes, owners).

Found while writing these (all fixed in lamina/builder/builder.py unless said otherwise):
- Docker adds the default PATH to Env at FROM when the base has none (moby's
  ``dispatchState.setDefaultPath``); lamina did not.
- ``--label`` is one trailing ``LABEL k=v`` step per label, sorted (Step M/M counts them).
- ARG is a step with its own (empty-layer) image in the classic builder; cached like LABEL.
- A failed RUN: the classic CLI exits with the command's code and prints the joined argv
  (``The command 'sh -c exit 7' ...`` for the exec form too); other build errors exit 1.
- Same layer counts for RUN/COPY/ADD; WORKDIR/ENV/LABEL/... add no layer in either.

BuildKit (DOCKER_BUILDKIT=1) cannot be compared here: Debian bookworm's docker.io 20.10 has no
buildx plugin ("BuildKit is enabled but the buildx component is missing"), and no package in
the reachable registries provides it. The BuildKit-only features (RUN --mount, heredocs,
--output, COPY --chmod, ADD --checksum) are checked against BuildKit's documented behaviour in
the other test_build_*.py files instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest
from conftest import need_tool

FIELDS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
          "StopSignal", "Healthcheck", "Shell", "OnBuild")


def docker(*args, env=None, input=None, check=True):
    e = {**os.environ, "DOCKER_BUILDKIT": "0", **(env or {})}
    p = subprocess.run(["docker", *args], capture_output=True, env=e, input=input, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({p.returncode}):\n{p.stderr.decode()}")
    return p


@pytest.fixture(scope="module")
def docker_base(busybox_tar):
    need_tool("docker")
    name = f"lamina-test-busybox-{os.getpid()}:cmp"
    docker("import", "-c", 'CMD ["sh"]', busybox_tar, name)
    yield name
    docker("rmi", "-f", name, check=False)


@pytest.fixture
def both(lamina, busybox_tar, docker_base, tmp_path):
    lamina("import", "-c", 'CMD ["sh"]', busybox_tar, docker_base)
    made = []

    def build(dockerfile: str, files: dict | None = None, *extra):
        ctx = tmp_path / f"ctx{len(made)}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(textwrap.dedent(dockerfile).lstrip().replace("BASE", docker_base))
        for rel, data in (files or {}).items():
            p = ctx / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data if isinstance(data, bytes) else data.encode())
        tag = f"lamina-test-cmp-{os.getpid()}-{len(made)}"
        made.append(tag)
        docker("build", "-q", "-t", tag, *extra, str(ctx))
        lamina("build", "-q", "-t", tag, *extra, str(ctx))
        return tag
    yield build
    for t in made:
        docker("rmi", "-f", t, check=False)


def norm(cfg: dict) -> dict:
    return {k: (cfg.get(k) or None) for k in FIELDS}


def compare(lamina, tag):
    d = json.loads(docker("inspect", tag).stdout)[0]
    ours = json.loads(lamina("inspect", tag).out)[0]
    assert norm(ours["Config"]) == norm(d["Config"])
    assert len(ours["RootFS"]["Layers"]) == len(d["RootFS"]["Layers"])
    return d, ours


def test_config_fields_match_docker(lamina, both):
    tag = both("""
        ARG V=1
        FROM BASE
        ARG V
        ENV A=1 B="two words"
        ENV C 3 4
        ENV A=2 D=$A E=${A}x
        LABEL version="1.0" description="a thing" from.arg=$V
        EXPOSE 80 443/udp 8080/tcp
        VOLUME /data
        VOLUME ["/cache", "/logs"]
        WORKDIR /a
        WORKDIR b
        USER nobody
        STOPSIGNAL SIGUSR1
        HEALTHCHECK --interval=5s --timeout=3s --retries=2 CMD test -f /ok || exit 1
        ONBUILD RUN echo child
        SHELL ["/bin/sh", "-ec"]
        ENTRYPOINT echo
        """, None, "--label", "z=cli", "--build-arg", "V=7")
    d, ours = compare(lamina, tag)
    assert ours["Config"]["Cmd"] is None                       # ENTRYPOINT reset the base's CMD
    assert ours["Config"]["Healthcheck"]["Interval"] == 5_000_000_000
    assert ours["Config"]["Labels"]["z"] == "cli"


def test_cmd_entrypoint_orders_match_docker(lamina, both):
    for df in ('FROM BASE\nCMD ["a"]\nENTRYPOINT ["b"]\n',
               'FROM BASE\nENTRYPOINT ["b"]\nCMD c d\n',
               'FROM BASE\nENTRYPOINT []\n',
               'FROM BASE\nCMD []\n'):
        compare(lamina, both(df))


def test_layers_and_files_match_docker(lamina, both):
    tag = both("""
        FROM BASE AS b
        RUN mkdir -p /out/d && echo built > /out/d/f && chmod 0750 /out/d
        FROM BASE
        RUN mkdir -p /srv/owned && chown 7:8 /srv/owned && chmod 0710 /srv/owned
        COPY --from=b /out /from-stage/
        COPY dir /contents
        COPY --chown=nobody:nogroup f /owned
        COPY f /tmp/
        COPY f /srv/owned/deeper/f
        WORKDIR /app
        COPY f rel/
        ADD a.tar /x/
        RUN find /from-stage /contents /owned /tmp /srv /app /x | sort | xargs stat -c '%n %a %u:%g %F' > /listing
        """, {"f": "f\n", "dir/x": "x\n", "dir/sub/y": "y\n"} | _tar_file())
    d, ours = compare(lamina, tag)
    want = docker("run", "--rm", tag, "cat", "/listing").stdout.decode()
    got = lamina("run", "--rm", tag, "cat", "/listing").out
    assert got == want


def _tar_file() -> dict:
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("t/in-tar")
        data = b"tar\n"
        ti.size, ti.mode, ti.uid, ti.gid = len(data), 0o640, 3, 4
        tf.addfile(ti, io.BytesIO(data))
    return {"a.tar": buf.getvalue()}


def test_failure_exit_codes_match_docker(lamina, both, docker_base, tmp_path):
    for df in ("FROM BASE\nRUN exit 3\n", 'FROM BASE\nRUN ["sh", "-c", "exit 7"]\n',
               "FROM BASE\nFOO bar\n", "FROM BASE\nCOPY missing /\n"):
        ctx = tmp_path / f"f{abs(hash(df))}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(df.replace("BASE", docker_base))
        d = docker("build", str(ctx), check=False)
        ours = lamina("build", str(ctx), check=False)
        assert ours.rc == d.returncode, (df, d.stderr, ours.err)
        last = d.stderr.decode().strip().splitlines()[-1]
        if "returned a non-zero code" in last:
            assert last in ours.err


# -- issue 8: fidelity items, each side by side with dockerd's classic builder ------------------

def listing(tool, tag: str, path: str = "/listing") -> str:
    if tool == "docker":
        return docker("run", "--rm", tag, "cat", path).stdout.decode()
    return tool("run", "--rm", tag, "cat", path).out


def test_copy_destination_symlinks_match_docker(lamina, both):
    """The destination is resolved inside the image's root, symlinks included: into the
    directory a symlink names, through a symlink to a file, to the path a dangling one names;
    a new destination dir of a directory copy is 0755 even from a 0700 source."""
    tag = both("""
        FROM BASE
        RUN mkdir -p /real /real2 && ln -s /real /l && echo old > /real/f && ln -s /real/f /flink && \\
            ln -s ../real2 /rel && ln -s /nonexist /dangling && ln -s /tmp /t
        COPY tool /l
        COPY tool /flink
        COPY dir /rel
        COPY tool /dangling
        COPY tool /t/
        COPY dir /newd
        COPY dir/sub /i
        RUN find /real /real2 /newd /i /nonexist /tmp /l /flink /rel /dangling /t | sort | \\
            xargs stat -c '%n %a %u:%g %F' > /listing && cat /real/f /nonexist >> /listing
        """, {"tool": "tool\n", "dir/x": "x\n", "dir/sub/s": "s\n"}, "--build-arg", "UNUSED=1")
    compare(lamina, tag)
    assert listing(lamina, tag) == listing("docker", tag)


def test_copy_into_a_merged_usr_base_matches_docker(lamina, busybox_tar, tmp_path):
    """`COPY tool /bin/` on a base where /bin -> usr/bin (Debian's merged /usr): the symlink
    stays and the next RUN still finds /bin/sh."""
    import shutil
    import tarfile
    need_tool("docker")
    root = tmp_path / "usrmerge"
    (root / "usr").mkdir(parents=True)
    with tarfile.open(busybox_tar) as tf:
        tf.extractall(root)
    shutil.move(str(root / "bin"), str(root / "usr" / "bin"))
    os.symlink("usr/bin", root / "bin")
    tar = tmp_path / "usrmerge.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
    base = f"lamina-test-usrmerge-{os.getpid()}:cmp"
    docker("import", "-c", 'CMD ["sh"]', str(tar), base)
    lamina("import", "-c", 'CMD ["sh"]', str(tar), base)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "tool").write_text("#!/bin/sh\necho tool ran\n")
    os.chmod(ctx / "tool", 0o755)
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY tool /bin/\n"
                                    "RUN tool > /listing && stat -c '%n %F' /bin /usr/bin/tool >> /listing\n")
    tag = f"lamina-test-usrmerge-out-{os.getpid()}"
    try:
        docker("build", "-q", "-t", tag, str(ctx))
        lamina("build", "-q", "-t", tag, str(ctx))
        assert listing(lamina, tag) == listing("docker", tag) == \
            "tool ran\n/bin symbolic link\n/usr/bin/tool regular file\n"
    finally:
        docker("rmi", "-f", tag, base, check=False)


def test_sources_args_and_ports_match_docker(lamina, both, monkeypatch):
    """A wildcard matching nothing beside other sources; ADD of a .gz that is not a tar
    (copied as is) and of a .tar.gz (unpacked); EXPOSE ranges; `--build-arg FOO` with FOO
    unset keeps `ARG FOO=default`."""
    import gzip
    import io
    import tarfile
    monkeypatch.delenv("FOO", raising=False)
    lamina.env.pop("FOO", None)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        ti = tarfile.TarInfo("in-tar")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"t!\n"))
    tag = both("""
        FROM BASE
        ARG FOO=default
        RUN echo "FOO=$FOO" > /foo
        COPY package.json package-lock.json* /app/
        ADD single.txt.gz real.tar.gz /opt/
        EXPOSE 8000-8002 9000/udp 7-8/sctp
        RUN find /app /opt | sort | xargs stat -c '%n %a %F %s' > /listing && cat /foo >> /listing
        """, {"package.json": "{}\n", "single.txt.gz": gzip.compress(b"not a tar\n"),
              "real.tar.gz": buf.getvalue()}, "--build-arg", "FOO")
    d, ours = compare(lamina, tag)
    assert sorted(ours["Config"]["ExposedPorts"]) == sorted(["7/sctp", "8/sctp", "8000/tcp", "8001/tcp",
                                                             "8002/tcp", "9000/udp"])
    assert listing(lamina, tag) == listing("docker", tag)
    assert "FOO=default" in listing(lamina, tag)


GROUPS = ("RUN echo 'g1:x:300:u1500,other' >> /etc/group && echo 'g2:x:301:u1500' >> /etc/group && "
          "echo 'u1500:x:1500:1500::/home/u:/bin/sh' >> /etc/passwd")


def test_user_groups_match_docker(lamina, both):
    """USER uid:gid gives only that group; USER uid / name adds every group of /etc/group that
    names the user -- in RUN steps and in `run -u`."""
    tag = both(f"""
        FROM BASE
        {GROUPS}
        USER 1234:5678
        RUN id > /tmp/id1
        USER 1500
        RUN id > /tmp/id2
        USER u1500
        RUN id > /tmp/id3
        USER 1500:301
        RUN id > /tmp/id4
        USER 0
        RUN cat /tmp/id1 /tmp/id2 /tmp/id3 /tmp/id4 > /listing
        """)
    assert listing(lamina, tag) == listing("docker", tag)
    for user in ("1234:5678", "1500", "u1500", "1500:301", "0", "1234", "u1500:g1"):
        want = docker("run", "--rm", "-u", user, tag, "id").stdout.decode()
        assert lamina("run", "--rm", "-u", user, tag, "id").out == want, user


def test_prune_and_dangling_listings_match_docker(lamina, busybox_tar, docker_base, tmp_path):
    """A rebuild moves the tag: the superseded image is dangling (listed as <none> by
    `images`, and by `images -f dangling=true`), the shared intermediate step is not (it has a
    child: -a only). `image prune` removes dangling images only -- never the parents of a
    tagged image (its history keeps every step)."""
    lamina("import", "-c", 'CMD ["sh"]', busybox_tar, docker_base)
    label = f"lamina.test.prune={os.getpid()}"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    tag = f"lamina-test-prune-{os.getpid()}"
    roles: dict[str, dict[str, str]] = {"docker": {}, "lamina": {}}

    def run(tool, *args) -> list[str]:
        if tool == "docker":
            return docker(*args).stdout.decode().split()
        return lamina(*args).out.split()

    try:
        for version in ("2", "3"):
            (ctx / "Dockerfile").write_text(f"FROM {docker_base}\nLABEL {label}\nRUN echo 1 > /a\n"
                                            f"RUN echo {version} > /b\n")
            for tool in roles:
                run(tool, "build", "-q", "-t", tag, str(ctx))
                chain = run(tool, "history", "-q", tag)
                roles[tool][chain[0]] = f"final-v{version}"
                for i, role in zip(chain[1:], ("step-a", "label", "base")):  # shared by both builds
                    roles[tool].setdefault(i, role)
        listings = {}
        for tool, names in roles.items():
            def seen(*args):
                return sorted(names[i] for i in run(tool, *args) if i in names)
            listings[tool] = {
                "images": seen("images", "-q"),
                "images -a": seen("images", "-a", "-q"),
                "dangling": seen("images", "-q", "-f", "dangling=true"),
                "dangling -a": seen("images", "-a", "-q", "-f", "dangling=true"),
            }
            run(tool, "image", "prune", "-f", "--filter", f"label={label}")
            listings[tool]["after prune -a"] = seen("images", "-a", "-q")
            listings[tool]["history"] = [names.get(i, i) for i in run(tool, "history", "-q", tag)]
        assert listings["lamina"] == listings["docker"]
        assert listings["lamina"]["images"] == ["base", "final-v2", "final-v3"]
        assert listings["lamina"]["dangling"] == ["final-v2"]
        assert listings["lamina"]["after prune -a"] == ["base", "final-v3", "label", "step-a"]
        assert listings["lamina"]["history"] == ["final-v3", "step-a", "label", "base"]
    finally:
        docker("rmi", "-f", tag, check=False)
        for i, role in roles["docker"].items():
            if role == "final-v2":
                docker("rmi", "-f", i, check=False)


def test_podman_oci_archive_loads_as_one_image(lamina, busybox_tar, tmp_path):
    """The same image saved by podman as a docker-archive and as an oci-archive (two
    manifests of one config) is one image: one row in `images`, and `rmi <id>` needs no -f."""
    need_tool("podman")
    name = f"localhost/lamina-test-podman-{os.getpid()}:v1"
    subprocess.run(["podman", "import", "-q", busybox_tar, name], check=True, capture_output=True)
    try:
        for fmt in ("docker-archive", "oci-archive"):
            out = tmp_path / f"{fmt}.tar"
            subprocess.run(["podman", "save", "--format", fmt, "-o", str(out), name], check=True,
                           capture_output=True)
            lamina("load", "-i", str(out))
    finally:
        subprocess.run(["podman", "rmi", "-f", name], capture_output=True)
    rows = lamina("images", "-a", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").out.splitlines()
    assert len(rows) == 1 and rows[0].startswith(name + " "), rows
    image_id = rows[0].split()[1]
    lamina("rmi", image_id)
    assert lamina("images", "-a", "-q").out == ""


def test_classic_output_matches_docker(lamina, busybox_tar, docker_base, tmp_path):
    """The classic builder's stdout, step by step, cold and then from the cache (IDs
    normalized; dockerd's "Sending build context" line has no counterpart: nothing is sent)."""
    import re
    lamina("import", "-c", 'CMD ["sh"]', busybox_tar, docker_base)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {docker_base}\nCOPY f /f\nRUN echo hi\nENV A=1\nWORKDIR /w\n"
                                    'LABEL k="v"\nCMD ["cat", "/f"]\n')
    (ctx / "f").write_text("data\n")
    tag = f"lamina-test-out-{os.getpid()}"

    def norm(text: str) -> list[str]:
        return [re.sub(r"\b[0-9a-f]{12}\b", "ID", line) for line in text.replace("\r\r\n", "\n").splitlines()
                if not line.startswith("Sending build context")]
    try:
        for _ in range(2):  # cold, then every step from the cache
            want = docker("build", "-t", tag, str(ctx)).stdout.decode()
            got = lamina("build", "-t", tag, str(ctx)).out
            assert norm(got) == norm(want)
    finally:
        docker("rmi", "-f", tag, check=False)
