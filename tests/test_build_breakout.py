"""A Dockerfile and its context cannot read or write the host (issue 7, item 1).

Every path the builder resolves in a stage, an image or the context is resolved inside its
own root (the class of CVE-2024-1753). Each test plants a "host" directory with a secret
outside the store and the context, then runs the attack: the secret must not reach the
image, and nothing on the host may change.
"""

from __future__ import annotations

import io
import os
import pathlib
import tarfile

import pytest
from conftest import mkctx


class HostDir(type(pathlib.Path())):
    """A host directory the build must never see: {key: 'HOST-SECRET', victim/}."""

    def listing(self) -> dict:
        got = {}
        for dirpath, dirnames, filenames in os.walk(self):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                got[os.path.relpath(p, self)] = (st.st_mode, open(p, "rb").read() if os.path.isfile(p) else None)
        return got

    def unchanged(self) -> bool:
        return self.listing() == self.before


@pytest.fixture
def host(tmp_path):
    d = HostDir(tmp_path / "hostdir")
    d.mkdir()
    (d / "key").write_text("HOST-SECRET\n")
    (d / "victim").mkdir()
    d.before = d.listing()
    return d


def files_of(lam, image: str, *paths: str) -> str:
    return lam("run", "--rm", image, "sh", "-c", f"cat {' '.join(paths)} 2>&1; true").out


def test_run_mount_from_stage_symlink_stays_in_the_stage(bb, tmp_path, host):
    """source=<symlink to a host dir> in a stage: resolved in the stage's root; rw writes
    are thrown away (BuildKit), never written to the stage copy or the host."""
    ctx = mkctx(tmp_path, f"""
        FROM busybox AS s
        RUN mkdir -p {host} && echo IN-STAGE > {host}/key && ln -s {host} /evil && ln -s {host}/key /evilfile
        FROM busybox
        RUN --mount=type=bind,from=s,source=evil,target=/m,rw cat /m/key > /got-dir && touch /m/created && \\
            echo written > /m/key
        RUN --mount=type=bind,from=s,source=/evilfile,target=/f,rw cat /f > /got-file && echo x >> /f
        RUN --mount=type=bind,from=s,source=evil,target=/m ls /m > /listing
        """)
    bb("build", "-q", "-t", "stage-sym", str(ctx))
    assert files_of(bb, "stage-sym", "/got-dir", "/got-file", "/listing") == "IN-STAGE\nIN-STAGE\nkey\n"
    assert host.unchanged()
    assert not (host / "created").exists()


def test_run_mount_of_a_context_symlink_stays_in_the_context(bb, tmp_path, host):
    ctx = mkctx(tmp_path, """
        FROM busybox
        RUN --mount=type=bind,source=hostdir,target=/m,rw cat /m/key > /got; touch /m/created; true
        RUN --mount=type=bind,source=inside,target=/m cat /m/key >> /got
        """, {f"{host}/key".lstrip("/"): "IN-CONTEXT\n"})
    os.symlink(str(host), ctx / "hostdir")   # absolute: resolves to <context>/<host path>
    os.symlink("../" * 30 + str(host).lstrip("/"), ctx / "inside")  # .. stops at the context root
    bb("build", "-q", "-t", "ctx-sym", str(ctx))
    assert files_of(bb, "ctx-sym", "/got") == "IN-CONTEXT\nIN-CONTEXT\n"
    assert host.unchanged()


def test_run_mount_of_a_missing_in_root_target_is_an_error(bb, tmp_path, host):
    ctx = mkctx(tmp_path, "FROM busybox\nRUN --mount=type=bind,source=hostdir,target=/m cat /m/key\n")
    os.symlink(str(host), ctx / "hostdir")
    r = bb("build", str(ctx), check=False)
    assert r.rc != 0 and "source hostdir not found in the build context" in r.err
    assert "HOST-SECRET" not in r.out + r.err


def test_copy_sources_resolve_inside_the_context(bb, tmp_path, host):
    ctx = mkctx(tmp_path, """
        FROM busybox
        COPY hostdir/ /a/
        COPY link-to-key /b
        COPY chain /c
        """, {f"{host}/key".lstrip("/"): "IN-CONTEXT\n"})
    os.symlink(str(host), ctx / "hostdir")
    os.symlink(str(host / "key"), ctx / "link-to-key")
    (ctx / "sub").mkdir()
    os.symlink("../link-to-key", ctx / "sub" / "l2")
    os.symlink("sub/l2", ctx / "chain")
    bb("build", "-q", "-t", "copy-sym", str(ctx))
    assert files_of(bb, "copy-sym", "/a/key", "/b", "/c") == "IN-CONTEXT\n" * 3
    assert host.unchanged()


def test_copy_from_stage_symlink_stays_in_the_stage(bb, tmp_path, host):
    ctx = mkctx(tmp_path, f"""
        FROM busybox AS s
        RUN ln -s {host} /evil && ln -s {host}/key /evilkey
        FROM busybox
        COPY --from=s /evil/key /k
        """)
    r = bb("build", str(ctx), check=False)
    assert r.rc != 0 and "not found" in r.err
    ctx2 = mkctx(tmp_path, f"""
        FROM busybox AS s
        RUN mkdir -p {host} && echo IN-STAGE > {host}/key && ln -s {host} /evil
        FROM busybox
        COPY --from=s /evil/key /k
        """, name="ctx2")
    bb("build", "-q", "-t", "from-sym", str(ctx2))
    assert files_of(bb, "from-sym", "/k") == "IN-STAGE\n"
    assert host.unchanged()


def test_copy_staging_never_follows_a_copied_symlink(bb, tmp_path, host):
    """Two sources into one destination: the first copies a symlink `x -> <host dir>`, the
    second a directory `x/` with a file. The staging dir must replace the symlink (as Docker's
    untar does), not write through it to the host."""
    ctx = mkctx(tmp_path, """
        FROM busybox
        COPY a b /dst/
        """, {"b/x/key": "PWNED\n", "b/x/victim/new": "PWNED\n"})
    (ctx / "a").mkdir()
    os.symlink(str(host), ctx / "a" / "x")
    bb("build", "-q", "-t", "staging", str(ctx))
    assert host.unchanged()
    assert files_of(bb, "staging", "/dst/x/key") == "PWNED\n"
    assert bb("run", "--rm", "staging", "stat", "-c", "%F", "/dst/x").out.strip() == "directory"


def test_add_never_follows_an_unpacked_symlink(bb, tmp_path, host):
    """ADD of an archive holding `x -> <host dir>` and of a directory holding `x/planted`:
    the copy replaces the unpacked symlink instead of writing through it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("x")
        ti.type, ti.linkname = tarfile.SYMTYPE, str(host)
        tf.addfile(ti)
    ctx = mkctx(tmp_path, """
        FROM busybox
        ADD evil.tar b /dst/
        """, {"evil.tar": buf.getvalue(), "b/x/planted": "PWNED\n"})
    bb("build", "-q", "-t", "add-sym", str(ctx))
    assert host.unchanged()
    assert files_of(bb, "add-sym", "/dst/x/planted") == "PWNED\n"


def test_copy_destination_through_an_image_symlink_stays_in_the_image(bb, tmp_path, host):
    """An absolute symlink in the image names a path *in the image*, never the host's."""
    ctx = mkctx(tmp_path, f"""
        FROM busybox
        RUN ln -s {host} /l && ln -s {host}/victim /v
        COPY f /l/
        COPY f /v/sub/
        WORKDIR /v/wd
        """, {"f": "PWNED\n"})
    bb("build", "-q", "-t", "dest-sym", str(ctx))
    assert host.unchanged()
    out = bb("run", "--rm", "dest-sym", "sh", "-c", f"cat {host}/f {host}/victim/sub/f; ls -d {host}/victim/wd").out
    assert out == f"PWNED\nPWNED\n{host}/victim/wd\n"


def test_run_mount_stub_removal_stays_in_the_layer(bb, tmp_path, host):
    """After a RUN, the mount points the runtime created are removed from its layer. The
    container may have replaced a parent of one with a symlink to a host path: the removal
    must not follow it (an empty host directory named like the mount point survives)."""
    ctx = mkctx(tmp_path, f"""
        FROM busybox
        RUN --mount=type=tmpfs,target=/a/victim mv /a /moved && ln -s {host} /a
        """)
    bb("build", "-q", "-t", "stub", str(ctx))
    assert (host / "victim").is_dir()
    assert host.unchanged()
