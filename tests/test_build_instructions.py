"""Every Dockerfile instruction through the real ``lamina build`` CLI, with Docker's semantics.

Each test builds a small Dockerfile on a busybox base (imported from Debian's busybox-static
with ``lamina import -c 'CMD ["sh"]'``) and checks the result the way a user would: the
image config (``lamina inspect -f '{{json .Config}}'``) and the filesystem (``lamina run --rm``).
The expected values are Docker's (classic builder, checked against dockerd 20.10 here; see
test_build_docker.py for the side-by-side comparison).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import re
import tarfile
import threading

from conftest import mkctx

# --- helpers (kept per file: every test_build_*.py stands alone) ----------------------------




def build(lam, ctx, *args, check=True):
    return lam("build", *args, str(ctx), check=check)


def built_id(r) -> str:
    m = re.search(r"Successfully built ([0-9a-f]{12})", r.out)
    assert m, r.out + r.err
    return m.group(1)


def config(lam, ref) -> dict:
    """The image's Config as ``{{json .Config}}`` prints it (Docker's client leaves empty
    fields out: they read as None here)."""
    import collections
    return collections.defaultdict(lambda: None, json.loads(lam("inspect", "-f", "{{json .Config}}", ref).out))


def sh(lam, ref, script: str) -> str:
    return lam("run", "--rm", ref, "sh", "-c", script).out


# --- FROM --------------------------------------------------------------------------------

def test_from_arg_before_from_alias_previous_stage_platform(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        ARG BASE=busybox
        ARG TAG=latest
        FROM --platform=$BUILDPLATFORM ${BASE}:${TAG} AS first
        RUN echo one > /one
        FROM first AS second
        RUN cat /one > /two
        FROM --platform=linux/amd64 second
        """)
    r = build(bb, ctx, "-t", "f")
    assert "Step 1/5 : FROM --platform=$BUILDPLATFORM ${BASE}:${TAG} AS first" in r.out
    assert sh(bb, "f", "cat /one /two") == "one\none\n"
    # an ARG before FROM is not visible after it unless re-declared
    ctx2 = mkctx(tmp_path, """
        ARG TAG=latest
        FROM busybox:$TAG
        RUN echo "[$TAG]" > /tag
        """, name="ctx2")
    build(bb, ctx2, "-t", "f2")
    assert sh(bb, "f2", "cat /tag") == "[]\n"


def test_from_unknown_platform_and_missing_image(bb, tmp_path):
    # --pull=never: a missing base is an error naming it (by default it would be pulled
    # from Docker Hub; tests talk to loopback registries only)
    r = build(bb, mkctx(tmp_path, "FROM nosuchimage\n"), "--pull=never", check=False)
    assert r.rc != 0 and "nosuchimage" in r.err
    r = build(bb, mkctx(tmp_path, "FROM busybox\nRUN true\n", name="p"), "--platform", "linux/s390x", check=False)
    assert r.rc != 0 and "s390x" in r.err


def test_from_scratch(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM scratch
        COPY hello /hello
        CMD ["/hello"]
        """, {"hello": "hi\n"})
    build(bb, ctx, "-t", "s")
    out = tmp_path / "out"
    build(bb, ctx, "-q", "--output", f"type=local,dest={out}")
    assert sorted(os.listdir(out)) == ["hello"]
    layers = json.loads(bb("inspect", "-f", "{{json .RootFS.Layers}}", "s").out)
    assert len(layers) == 1
    assert config(bb, "s")["Cmd"] == ["/hello"]


# --- RUN ---------------------------------------------------------------------------------

def test_run_shell_exec_heredoc(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        ENV X=fromenv
        RUN echo "shell $X" > /shell
        RUN ["/bin/sh", "-c", "echo exec $X > /exec"]
        RUN ["/bin/echo", "$X"]
        RUN <<EOF
        echo one > /heredoc
        echo two >> /heredoc
        EOF
        RUN <<-'EOT' sh
        	echo "quoted $X" > /heredoc2
        EOT
        RUN <<EOF
        #!/bin/sh -e
        echo "shebang $0" > /heredoc3
        EOF
        RUN cat <<A > /heredoc4 && cat <<B >> /heredoc4
        aa $X
        A
        bb
        B
        """)
    r = build(bb, ctx, "-t", "r")
    # exec form is not expanded by the builder: echo prints $X literally
    assert "\n$X\n" in r.out
    assert sh(bb, "r", "cat /shell /exec /heredoc /heredoc2 /heredoc3 /heredoc4") == \
        "shell fromenv\nexec fromenv\none\ntwo\nquoted fromenv\nshebang /dev/pipes/EOF\naa fromenv\nbb\n"


def test_run_network_none_and_host(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /none
        RUN --network=host tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /host
        """)
    build(bb, ctx, "-t", "n")
    assert sh(bb, "n", "cat /none").split() == ["lo"]
    host_ifaces = set(sh(bb, "n", "cat /host").split())
    with open("/proc/net/dev") as f:
        mine = {ln.split(":")[0].strip() for ln in f.readlines()[2:]}
    # the host's interfaces (veths of other containers come and go meanwhile)
    assert {i for i in host_ifaces if not i.startswith("veth")} == {i for i in mine if not i.startswith("veth")}
    assert len(host_ifaces) > 1


def test_run_mount_cache_persists(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN --mount=type=cache,target=/var/cache/c echo x >> /var/cache/c/count && wc -l < /var/cache/c/count > /n
        """)
    build(bb, ctx, "-t", "c1")
    build(bb, ctx, "-t", "c2", "--no-cache")
    build(bb, ctx, "-t", "c3", "--no-cache")
    assert [sh(bb, t, "cat /n").strip() for t in ("c1", "c2", "c3")] == ["1", "2", "3"]
    # the cache dir itself is not in the image
    # (nor its mount point: the runtime made it, so the runtime removes it)
    assert sh(bb, "c3", "ls -A /var/cache/c 2>&1 || true") == "ls: /var/cache/c: No such file or directory\n"


def test_run_mount_bind_context_readonly_and_from_stage(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox AS tools
        RUN mkdir /out && echo from-stage > /out/s
        FROM busybox
        RUN --mount=type=bind,source=data,target=/mnt cat /mnt/f > /got && ! touch /mnt/new 2>/dev/null && echo ro > /ro
        RUN --mount=type=bind,from=tools,source=/out,target=/m cat /m/s > /got2
        RUN --mount=type=bind,target=/ctx cat /ctx/data/f > /got3
        """, {"data/f": "ctx-data\n"})
    build(bb, ctx, "-t", "b")
    assert sh(bb, "b", "cat /got /ro /got2 /got3") == "ctx-data\nro\nfrom-stage\nctx-data\n"
    assert not (tmp_path / "ctx" / "data" / "new").exists()
    # the mount points the runtime had to create are not in the image
    assert sh(bb, "b", "ls -d /mnt /m /ctx 2>/dev/null; true") == ""


def test_run_mount_values_expanded(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        ARG DATA=data
        ENV MNT=/mnt/in
        RUN --mount=type=bind,source=$DATA,target=${MNT} cat /mnt/in/f > /got
        """, {"data/f": "expanded\n"})
    build(bb, ctx, "-t", "mx")
    assert sh(bb, "mx", "cat /got") == "expanded\n"


def test_run_mount_tmpfs(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN --mount=type=tmpfs,target=/tmp/scratch grep ' /tmp/scratch tmpfs ' /proc/mounts > /mnts && echo x > /tmp/scratch/f
        """)
    build(bb, ctx, "-t", "t")
    assert "tmpfs" in sh(bb, "t", "cat /mnts")
    assert sh(bb, "t", "ls -A /tmp") == ""


def _layer_plaintexts(root: str):
    """Every blob in the store, decompressed when it is a gzip/zstd layer."""
    import zstandard
    d = os.path.join(root, "content", "blobs", "sha256")
    for n in os.listdir(d):
        data = open(os.path.join(d, n), "rb").read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        elif data[:4] == b"\x28\xb5\x2f\xfd":
            data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
        yield n, data


def test_run_mount_secret_not_in_layers_nor_cache_key(bb, tmp_path):
    value = "s3cr3t-" + os.urandom(8).hex()
    secret = tmp_path / "tok.txt"
    secret.write_text(value)
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN --mount=type=secret,id=tok test "$(cat /run/secrets/tok)" = "$(cat /expected 2>/dev/null || cat /run/secrets/tok)" && wc -c < /run/secrets/tok > /len
        RUN --mount=type=secret,id=tok,target=/etc/tok.conf cp /etc/tok.conf /tmp/.x && rm /tmp/.x && echo done > /done
        """)
    r = build(bb, ctx, "-t", "sec", "--secret", f"id=tok,src={secret}")
    assert sh(bb, "sec", "cat /len").strip() == str(len(value))
    # env= form: same key, so a cache hit; its temp file is gone afterwards
    bb.env["TOKVAR"] = value
    before = set(os.listdir("/tmp"))
    r = build(bb, ctx, "-t", "sec", "--secret", "id=tok,env=TOKVAR")
    del bb.env["TOKVAR"]
    assert r.out.count("Using cache") == 2
    assert not [n for n in set(os.listdir("/tmp")) - before if n.startswith("lamina-secret-")]
    assert sh(bb, "sec", "ls /run/secrets /etc/tok.conf 2>&1; true") == (
        "ls: /run/secrets: No such file or directory\nls: /etc/tok.conf: No such file or directory\n")
    # changing the secret does not bust the cache
    secret.write_text("another-value-entirely")
    r = build(bb, ctx, "-t", "sec", "--secret", f"id=tok,src={secret}")
    assert r.out.count("Using cache") == 2, r.out
    for name, data in _layer_plaintexts(bb.root):
        assert value.encode() not in data, f"secret found in blob {name}"
    for dirpath, _, files in os.walk(bb.root):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.isfile(p) and not os.path.islink(p):
                assert value.encode() not in open(p, "rb").read(), f"secret found in {p}"


def test_run_secret_missing_required(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n")
    r = build(bb, ctx, check=False)
    assert r.rc != 0 and "nope" in r.err


# --- metadata ------------------------------------------------------------------------------

def test_cmd_label_maintainer_expose_env_stopsignal_volume(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        MAINTAINER Jane Doe <jane@example.com>
        ENV A=1 B="two words"
        ENV C 3 4
        ENV A=2 D=$A E=${A}x
        ENV F=$A
        LABEL version="1.0" description="a thing" multi.part=yes
        LABEL from.env=$B
        EXPOSE 80 443/udp 8080/tcp
        STOPSIGNAL SIGUSR1
        VOLUME /data
        VOLUME ["/cache", "/logs"]
        CMD echo $A
        """)
    build(bb, ctx, "-t", "m")
    c = config(bb, "m")
    assert c["Cmd"] == ["/bin/sh", "-c", "echo $A"]
    assert c["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        "A=2", "B=two words", "C=3 4", "D=1", "E=1x", "F=2"]
    assert c["Labels"] == {"version": "1.0", "description": "a thing", "multi.part": "yes",
                           "from.env": "two words"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "443/udp": {}, "8080/tcp": {}}
    assert c["StopSignal"] == "SIGUSR1"
    assert c["Volumes"] == {"/data": {}, "/cache": {}, "/logs": {}}
    assert bb("inspect", "-f", "{{.Author}}", "m").out.strip() == "Jane Doe <jane@example.com>"
    assert bb("run", "--rm", "m").out == "2\n"


def test_entrypoint_resets_inherited_cmd(bb, tmp_path):
    build(bb, mkctx(tmp_path, 'FROM busybox\nENTRYPOINT ["echo", "hi"]\n'), "-t", "e1")
    c = config(bb, "e1")
    assert c["Entrypoint"] == ["echo", "hi"] and c["Cmd"] is None
    assert bb("run", "--rm", "e1").out == "hi\n"
    # a CMD set in the same stage is kept
    build(bb, mkctx(tmp_path, 'FROM busybox\nCMD ["x"]\nENTRYPOINT echo\n', name="c2"), "-t", "e2")
    c = config(bb, "e2")
    assert c["Entrypoint"] == ["/bin/sh", "-c", "echo"] and c["Cmd"] == ["x"]


def test_healthcheck(bb, tmp_path):
    build(bb, mkctx(tmp_path, """
        FROM busybox
        HEALTHCHECK --interval=5s --timeout=3s --start-period=1m30s --retries=2 CMD test -f /ok || exit 1
        """), "-t", "h")
    hc = config(bb, "h")["Healthcheck"]
    assert hc["Test"] == ["CMD-SHELL", "test -f /ok || exit 1"]
    assert hc["Interval"] == 5_000_000_000 and hc["Timeout"] == 3_000_000_000
    assert hc["StartPeriod"] == 90_000_000_000 and hc["Retries"] == 2
    build(bb, mkctx(tmp_path, 'FROM h\nHEALTHCHECK NONE\n', name="n"), "-t", "h2")
    assert config(bb, "h2")["Healthcheck"]["Test"] == ["NONE"]


def test_user_workdir(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        WORKDIR /a
        WORKDIR b
        WORKDIR c
        RUN pwd > /tmp/pwd
        USER nobody
        RUN id -u > /tmp/uid && id -g >> /tmp/uid
        USER 1234:5678
        RUN id -u > /tmp/uid2 && id -g >> /tmp/uid2
        WORKDIR /never/used
        """)
    build(bb, ctx, "-t", "u")
    c = config(bb, "u")
    assert c["User"] == "1234:5678" and c["WorkingDir"] == "/never/used"
    assert sh(bb, "u", "cat /tmp/pwd /tmp/uid /tmp/uid2") == "/a/b/c\n65534\n65534\n1234\n5678\n"
    assert bb("run", "--rm", "u", "pwd").out == "/never/used\n"
    # files made by a RUN as nobody belong to nobody
    assert sh(bb, "u", "stat -c %u /tmp/uid").strip() == "65534"


def test_shell_changes_shell_form(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN false; echo survived > /default
        SHELL ["/bin/sh", "-ec"]
        CMD echo hi
        RUN echo ok > /ec
        """)
    build(bb, ctx, "-t", "sh1")
    assert config(bb, "sh1")["Cmd"] == ["/bin/sh", "-ec", "echo hi"]
    assert config(bb, "sh1")["Shell"] == ["/bin/sh", "-ec"]
    ctx2 = mkctx(tmp_path, 'FROM busybox\nSHELL ["/bin/sh", "-ec"]\nRUN false; echo no > /x\n', name="c2")
    r = build(bb, ctx2, check=False)
    assert r.rc == 1 and "returned a non-zero code: 1" in r.err + r.out


def test_onbuild_triggers_run_in_child(bb, tmp_path):
    build(bb, mkctx(tmp_path, """
        FROM busybox
        ONBUILD COPY f /from-child
        ONBUILD RUN echo triggered > /trig
        """), "-t", "parent")
    assert config(bb, "parent")["OnBuild"] == ["COPY f /from-child", "RUN echo triggered > /trig"]
    r = build(bb, mkctx(tmp_path, "FROM parent\nRUN cat /trig /from-child > /both\n",
                        {"f": "child-file\n"}, name="child"), "-t", "child")
    assert r.out.count("# Executing 2 build triggers") == 1, r.out
    assert sh(bb, "child", "cat /both") == "triggered\nchild-file\n"
    assert not config(bb, "child").get("OnBuild")


def test_arg_scopes_defaults_build_args_warning(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        ARG G=global
        FROM busybox
        RUN echo "[$G]" > /g1
        ARG G
        RUN echo "[$G]" > /g2
        ARG S=stage
        ARG EMPTY
        RUN echo "$S [$EMPTY]" > /s
        ENV S=env-wins
        RUN echo "$S" > /s2
        ARG TARGETPLATFORM
        ARG BUILDARCH
        ARG TARGETOS
        RUN echo "$TARGETPLATFORM $BUILDARCH $TARGETOS" > /plat
        RUN echo "[$HTTP_PROXY]" > /proxy
        """)
    r = build(bb, ctx, "-t", "a1")
    assert sh(bb, "a1", "cat /g1 /g2 /s /s2 /proxy") == "[]\n[global]\nstage []\nenv-wins\n[]\n"
    assert sh(bb, "a1", "cat /plat") == "linux/amd64 amd64 linux\n"
    assert "not consumed" not in r.out + r.err
    # ARG values are not in the image config
    assert not any(e.startswith(("G=", "S=stage")) for e in config(bb, "a1")["Env"])
    r = build(bb, ctx, "-t", "a2", "--build-arg", "G=cli", "--build-arg", "S=over",
              "--build-arg", "UNUSED=1", "--build-arg", "HTTP_PROXY=http://proxy:3128")
    assert sh(bb, "a2", "cat /g1 /g2 /s /proxy") == "[]\n[cli]\nover []\n[http://proxy:3128]\n"
    warn = r.out + r.err
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in warn
    assert not [ln for ln in warn.splitlines() if "Warning" in ln and "HTTP_PROXY" in ln]


def test_stopsignal_invalid(bb, tmp_path):
    r = build(bb, mkctx(tmp_path, "FROM busybox\nSTOPSIGNAL SIGNOPE\n"), check=False)
    assert r.rc != 0 and "SIGNOPE" in r.err


# --- ADD ---------------------------------------------------------------------------------

def _tar(fmt: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("top/a.txt", b"A\n"), ("top/sub/b.txt", b"B\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o640
            ti.uid = ti.gid = 42
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    if fmt == "tar":
        return raw
    if fmt == "gz":
        return gzip.compress(raw)
    if fmt == "bz2":
        import bz2
        return bz2.compress(raw)
    if fmt == "xz":
        import lzma
        return lzma.compress(raw)
    import zstandard
    return zstandard.ZstdCompressor().compress(raw)


def test_add_local_archives_extracted(bb, tmp_path):
    files = {f"a.{f}": _tar(f) for f in ("tar", "gz", "bz2", "xz", "zst")}
    files["plain.txt"] = "not an archive\n"
    ctx = mkctx(tmp_path, """
        FROM busybox
        ADD a.tar /x/tar/
        ADD a.gz /x/gz/
        ADD a.bz2 /x/bz2
        ADD a.xz /x/xz/
        ADD a.zst /x/zst/
        ADD plain.txt /x/
        ADD --chown=nobody:nogroup --chmod=0600 plain.txt /x/owned
        """, files)
    build(bb, ctx, "-t", "add")
    out = sh(bb, "add", "cd /x && for f in tar gz bz2 xz zst; do cat $f/top/a.txt $f/top/sub/b.txt; "
                        "stat -c '%a %u' $f/top/a.txt; done; cat plain.txt; stat -c '%a %u:%g' owned")
    assert out == "A\nB\n640 42\n" * 5 + "not an archive\n600 65534:65534\n"


class _Serve:
    def __init__(self, files: dict) -> None:
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_add_url_checksum_and_errors(bb, tmp_path):
    body = b"remote content\n"
    tgz = _tar("gz")
    srv = _Serve({"/file.txt": body, "/a.tar.gz": tgz})
    try:
        good = "sha256:" + hashlib.sha256(body).hexdigest()
        base = f"http://127.0.0.1:{srv.port}"
        ctx = mkctx(tmp_path, f"""
            FROM busybox
            ADD {base}/file.txt /dl/
            ADD --checksum={good} {base}/file.txt /dl/checked
            ADD {base}/a.tar.gz /dl/
            """)
        build(bb, ctx, "-t", "url")
        # a remote archive is not extracted (Docker: only local archives are)
        assert sh(bb, "url", "cat /dl/file.txt /dl/checked; stat -c %a /dl/file.txt; ls /dl") == \
            "remote content\nremote content\n600\na.tar.gz\nchecked\nfile.txt\n"
        bad = "sha256:" + "0" * 64
        r = build(bb, mkctx(tmp_path, f"FROM busybox\nADD --checksum={bad} {base}/file.txt /x\n", name="bad"),
                  check=False)
        assert r.rc != 0 and "checksum" in r.err and bad in r.err, r.err
        r = build(bb, mkctx(tmp_path, f"FROM busybox\nADD {base}/missing.txt /x\n", name="404"), check=False)
        assert r.rc != 0 and f"{base}/missing.txt" in r.err
    finally:
        srv.close()
    r = build(bb, mkctx(tmp_path, "FROM busybox\nADD http://127.0.0.1:9/nothing.tgz /x\n", name="down"), check=False)
    assert r.rc != 0 and "http://127.0.0.1:9/nothing.tgz" in r.err and "Dockerfile:2" in r.err, r.err


# --- COPY --------------------------------------------------------------------------------

def test_copy_from_stage_index_image(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox AS builder
        RUN mkdir -p /out/d && echo built > /out/d/f
        FROM busybox
        COPY --from=builder /out/d /by-name/
        COPY --from=0 /out/d/f /by-index
        COPY --from=busybox /etc/passwd /by-image
        """)
    build(bb, ctx, "-t", "cf")
    assert sh(bb, "cf", "cat /by-name/f /by-index; head -1 /by-image") == "built\nbuilt\nroot:x:0:0:root:/root:/bin/sh\n"
    r = build(bb, mkctx(tmp_path, "FROM busybox\nCOPY --from=nowhere /x /x\n", name="bad"), "--pull=never",
              check=False)  # never: no Docker Hub (tests reach loopback registries only)
    assert r.rc != 0 and "nowhere" in r.err


def test_copy_chown_chmod(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        COPY --chown=nobody f /n1
        COPY --chown=nobody:root f /n2
        COPY --chown=10:20 f /n3
        COPY --chmod=0640 f /m1
        COPY --chown=nobody --chmod=700 d /dd/
        """, {"f": "x\n", "d/inner": "y\n"})
    build(bb, ctx, "-t", "co")
    out = sh(bb, "co", "stat -c '%n %u:%g %a' /n1 /n2 /n3 /m1 /dd /dd/inner")
    assert out.splitlines() == ["/n1 65534:65534 644", "/n2 65534:0 644", "/n3 10:20 644",
                                "/m1 0:0 640", "/dd 65534:65534 700", "/dd/inner 65534:65534 700"]
    r = build(bb, mkctx(tmp_path, "FROM busybox\nCOPY --chown=nosuchuser f /f\n", {"f": "x"}, name="bad"),
              check=False)
    assert r.rc != 0 and "nosuchuser" in r.err


def test_copy_paths_wildcards_dirs_workdir(bb, tmp_path):
    files = {"a.txt": "a", "b.txt": "b", "c.md": "c", "dir/x": "x", "dir/sub/y": "y", "one": "1"}
    ctx = mkctx(tmp_path, """
        FROM busybox
        COPY *.txt /wild/
        COPY a.txt c.md /multi/
        COPY dir /contents
        COPY dir/ /contents2/
        COPY one /newdir/
        COPY one /renamed
        COPY one /tmp
        WORKDIR /app
        COPY one rel/
        COPY one .
        """, files)
    build(bb, ctx, "-t", "cp")
    out = sh(bb, "cp", "cd / && ls wild multi contents contents2 newdir; cat renamed; echo; "
                       "ls tmp; stat -c %a /tmp; ls /app /app/rel")
    assert out == ("contents:\nsub\nx\n\ncontents2:\nsub\nx\n\nmulti:\na.txt\nc.md\n\n"
                   "newdir:\none\n\nwild:\na.txt\nb.txt\n1\none\n1777\n/app:\none\nrel\n\n/app/rel:\none\n")
    # several sources need a directory destination ending in /
    r = build(bb, mkctx(tmp_path, "FROM busybox\nCOPY a.txt b.txt /multi\n", files, name="bad"), check=False)
    assert r.rc != 0
    assert "When using COPY with more than one source file, the destination must be a directory and end with a /" in r.err
    r = build(bb, mkctx(tmp_path, "FROM busybox\nCOPY nothere /x\n", name="missing"), check=False)
    assert r.rc != 0 and "nothere" in r.err and "Dockerfile:2" in r.err


def test_copy_keeps_existing_parent_metadata(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN mkdir -p /srv/owned && chown 7:8 /srv/owned && chmod 0710 /srv/owned
        COPY f /tmp/f
        COPY f /srv/owned/deeper/f
        """, {"f": "x"})
    build(bb, ctx, "-t", "par")
    assert sh(bb, "par", "stat -c '%n %a %u:%g' /tmp /srv/owned /srv/owned/deeper").splitlines() == \
        ["/tmp 1777 0:0", "/srv/owned 710 7:8", "/srv/owned/deeper 755 0:0"]


# --- parser directives and expansion ----------------------------------------------------------

def test_escape_syntax_continuations_comments(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        # syntax=docker/dockerfile:1
        # escape=`
        FROM busybox
        RUN echo one `
        # a comment inside a continuation is dropped
            two `

            three > /esc
        COPY dir\\f /back
        """, {"dir\\f": "backslash-name\n"})
    build(bb, ctx, "-t", "esc")
    assert sh(bb, "esc", "cat /esc /back") == "one two three\nbackslash-name\n"
    ctx2 = mkctx(tmp_path, """
        FROM busybox
        RUN echo a \\
        # comment
          b \\
          c > /cont
        """, name="c2")
    build(bb, ctx2, "-t", "cont")
    assert sh(bb, "cont", "cat /cont") == "a b c\n"


def test_expansion_only_where_docker_does(bb, tmp_path):
    ctx = mkctx(tmp_path, """
        FROM busybox
        ARG DIR=opt
        ENV X=val PORT=8080 U=nobody
        WORKDIR /$DIR/${X}
        COPY f ${NOPE:-fallback}/
        LABEL l1=${NOPE:-def} l2=${X:+alt} l3=${X#v} l4=\\$X l5='$X'
        EXPOSE ${PORT}
        VOLUME /vol/$X
        USER ${U}
        CMD echo $X
        ENTRYPOINT ["echo", "$X"]
        STOPSIGNAL ${SIG:-SIGINT}
        """, {"f": "f"})
    build(bb, ctx, "-t", "x")
    c = config(bb, "x")
    assert c["WorkingDir"] == "/opt/val"
    assert c["Labels"] == {"l1": "def", "l2": "alt", "l3": "al", "l4": "$X", "l5": "$X"}
    assert c["ExposedPorts"] == {"8080/tcp": {}}
    assert c["Volumes"] == {"/vol/val": {}}
    assert c["User"] == "nobody"
    assert c["Cmd"] == ["/bin/sh", "-c", "echo $X"]
    assert c["Entrypoint"] == ["echo", "$X"]
    assert c["StopSignal"] == "SIGINT"
    assert bb("run", "--rm", "--entrypoint", "ls", "x", "/opt/val/fallback").out == "f\n"
