"""Store permissions (issue 7, item 3): a local user must not read a container's secrets or
logs, the metadata DB, or execute a setuid-root file of an image layer or of a container's
upper dir; an older store is tightened when opened; non-root container users still work,
whatever the caller's umask.

The unprivileged side runs as nobody through ``setpriv``; the store sits under a directory
nobody can traverse (pytest's own tmp dir is 0700), so only lamina's modes stand between.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest
from conftest import Lamina, mkctx, need_tool
from containers_util import until

NOBODY = ("--reuid=65534", "--regid=65534", "--clear-groups")

# Runs as nobody: tries every path it is given; prints those it could read, list or execute.
PROBE = r"""
import json, os, subprocess, sys
req = json.load(sys.stdin)
got, errors = [], set()
os.listdir(req["parent"])  # the store's parent is open to everyone: only lamina's modes protect it
for kind, p in req["paths"]:
    try:
        if kind == "dir":
            os.listdir(p)
        elif kind == "exec":
            subprocess.run([p, "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            with open(p, "rb") as f:
                f.read(1)
        got.append([kind, p])
    except OSError as e:
        errors.add(e.errno)
print(json.dumps({"got": got, "errors": sorted(errors)}))
"""


@pytest.fixture
def open_store(busybox_tar):
    """A lamina store in a directory every user may traverse (like /var/lib)."""
    parent = tempfile.mkdtemp(prefix="lamina-perm-", dir="/tmp")
    os.chmod(parent, 0o755)
    lam = Lamina(os.path.join(parent, "root"))
    lam("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    yield lam
    ids = lam("ps", "-a", "-q", "--no-trunc", check=False).out.split()
    if ids:
        lam("rm", "-f", *ids, check=False)
    shutil.rmtree(parent, ignore_errors=True)


def _populate(lam: Lamina, tmp_path) -> None:
    """Everything a store holds: an image built with a setuid-root file in a layer (and a
    cache mount and a COPY, so the build cache exists), a running container with a secret in
    its environment that wrote a setuid-root file into its upper dir (log, attach socket,
    config.json), and a named volume."""
    ctx = mkctx(tmp_path, """
        FROM busybox
        COPY f /f
        RUN --mount=type=cache,target=/cache cp /bin/busybox /suid-in-layer && chmod 4755 /suid-in-layer
    """, {"f": "context file\n"})
    lam("build", "-q", "-t", "suid", str(ctx))
    lam("run", "-d", "--name", "secret", "-e", "SECRET=s3cr3t", "-v", "vol1:/data", "suid", "sh", "-c",
        "cp /bin/busybox /suid-in-upper && chmod 4755 /suid-in-upper && echo ready && exec sleep 1000")
    until(lambda: "ready" in lam("logs", "secret").out, timeout=30, what="the container to write its file")


def _walk(root: str) -> list[tuple[str, str, os.stat_result]]:
    out = [("dir", root, os.lstat(root))]
    for d, dirs, files in os.walk(root):
        for n in dirs:
            p = os.path.join(d, n)
            out.append(("dir", p, os.lstat(p)))
        for n in files:
            p = os.path.join(d, n)
            out.append(("file", p, os.lstat(p)))
    return out


def _as_nobody(parent: str, paths: list) -> dict:
    setpriv = need_tool("setpriv")
    p = subprocess.run([setpriv, *NOBODY, sys.executable, "-I", "-c", PROBE],
                       input=json.dumps({"parent": parent, "paths": paths}).encode(),
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)


def _attack(lam: Lamina) -> None:
    """As nobody: read every file, list every directory, run every setuid-root file."""
    entries = _walk(lam.root)
    suid = [p for k, p, st in entries if k == "file" and stat.S_ISREG(st.st_mode)
            and st.st_mode & stat.S_ISUID and st.st_uid == 0]
    where = {os.path.basename(p) for p in suid}
    assert {"suid-in-layer", "suid-in-upper"} <= where, suid  # the setup made both
    paths = [[k, p] for k, p, st in entries if not stat.S_ISLNK(st.st_mode)] + [["exec", p] for p in suid]
    res = _as_nobody(os.path.dirname(lam.root), paths)
    ran = [p for k, p in res["got"] if k == "exec"]
    assert not ran, f"nobody executed setuid-root files: {ran}"
    assert res["got"] == [], f"nobody reached {len(res['got'])} paths, e.g. {res['got'][:5]}"
    assert res["errors"] == [errno.EACCES]


def _check_modes(root: str) -> None:
    """lamina's own files 0600 and directories 0700; what a container sees keeps its mode."""
    bad = []
    for kind, p, st in _walk(root):
        rel = os.path.relpath(p, root)
        parts = rel.split("/")
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            continue
        # image and container content: the image's modes
        if (parts[0] == "snapshots" and len(parts) > 3) or \
           (parts[0] == "containers" and len(parts) > 3 and parts[2] in ("upper", "init", "work")) or \
           (parts[0] == "volumes" and len(parts) > 3) or \
           (parts[:2] == ["build-cache", "mounts"] and len(parts) > 3):
            continue
        if (parts[0] == "snapshots" and len(parts) == 3 and parts[2] == "fs") or \
           (parts[0] == "containers" and len(parts) == 3 and parts[2] in ("upper", "init")) or \
           (parts[0] == "volumes" and len(parts) == 3) or \
           (parts[:2] == ["build-cache", "mounts"] and len(parts) == 3):
            want = 0o755
        elif parts[0] == "containers" and len(parts) == 3 and parts[2] in ("hosts", "hostname", "resolv.conf"):
            want = 0o644
        else:
            want = 0o700 if kind == "dir" else 0o600
        if mode != want or st.st_uid != 0:
            bad.append(f"{oct(mode)} uid {st.st_uid} {rel} (want {oct(want)})")
    assert not bad, "\n".join(bad)


def test_a_local_user_reads_nothing_and_runs_no_setuid_file(open_store, tmp_path):
    _populate(open_store, tmp_path)
    _attack(open_store)
    _check_modes(open_store.root)


def _loosen(root: str) -> None:
    """What lamina before this change left: root 0711, directories 0755, files 0644."""
    os.chmod(root, 0o711)
    for kind, p, st in _walk(root):
        rel = os.path.relpath(p, root).split("/")
        if p == root or stat.S_ISLNK(st.st_mode) or (rel[0] == "snapshots" and len(rel) > 2) or \
           (rel[0] == "containers" and len(rel) > 2 and rel[2] in ("upper", "init", "work")) or \
           (rel[0] == "volumes" and len(rel) > 2) or (rel[:2] == ["build-cache", "mounts"] and len(rel) > 2):
            continue
        os.chmod(p, 0o755 if kind == "dir" else 0o644)


def test_an_older_store_is_tightened_when_opened(open_store, tmp_path):
    _populate(open_store, tmp_path)
    _loosen(open_store.root)
    assert stat.S_IMODE(os.stat(os.path.join(open_store.root, "lamina.db")).st_mode) == 0o644
    assert open_store("ps", "-q").out.strip()  # any command opens the store
    _attack(open_store)
    _check_modes(open_store.root)
    # and the store still works
    assert open_store("exec", "secret", "sh", "-c", "echo $SECRET").out == "s3cr3t\n"


def test_a_store_of_another_user_or_a_foreign_directory_is_refused(tmp_path, busybox_tar):
    other = tmp_path / "other"
    Lamina(str(other))("images", "-q")
    os.chown(other, 65534, 65534)
    r = Lamina(str(other))("images", check=False)
    assert r.rc == 125 and r.err.startswith(f"Error: store {other} belongs to uid 65534"), r.err
    assert len(r.err.strip().splitlines()) == 1
    # --root pointed at a directory that is not a store: neither taken over nor chmod'ed
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o755)
    (foreign / "notes.txt").write_text("mine\n")
    os.chmod(foreign, 0o755)
    r = Lamina(str(foreign))("images", check=False)
    assert r.rc == 125 and "is not a lamina store and is not empty" in r.err, r.err
    assert sorted(os.listdir(foreign)) == ["notes.txt"] and stat.S_IMODE(os.stat(foreign).st_mode) == 0o755


def _umask_077(lam: Lamina, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "lamina", *args], env=lam.env, capture_output=True,
                       timeout=300, preexec_fn=lambda: os.umask(0o077))
    if check:
        assert p.returncode == 0, p.stderr.decode()
    return p


def test_non_root_container_users_work_whatever_the_umask(tmp_path, busybox_tar):
    lam = Lamina(str(tmp_path / "root"))
    _umask_077(lam, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox")
    try:
        # -u 1000: the container's /, /etc, /etc/hosts and /etc/passwd are readable
        p = _umask_077(lam, "run", "--rm", "-u", "1000", "busybox", "sh", "-c",
                       "ls / >/dev/null && cat /etc/hosts /etc/hostname /etc/passwd >/dev/null && id -u")
        assert p.stdout == b"1000\n", p.stderr
        # a build step as USER 1000
        ctx = mkctx(tmp_path, """
            FROM busybox
            USER 1000
            RUN ls / >/dev/null && cat /etc/hosts /etc/passwd >/dev/null && id -u > /tmp/who
            RUN --mount=type=cache,target=/cache ls /cache
        """)
        _umask_077(lam, "build", "-q", "-t", "u1000", str(ctx))
        assert _umask_077(lam, "run", "--rm", "u1000", "cat", "/tmp/who").stdout == b"1000\n"
        # a named volume that root handed to uid 1000 is writable by it
        _umask_077(lam, "run", "--rm", "-v", "vol:/data", "busybox", "chown", "1000", "/data")
        p = _umask_077(lam, "run", "--rm", "-u", "1000", "-v", "vol:/data", "busybox", "sh", "-c",
                       "echo hi > /data/f && cat /data/f")
        assert p.stdout == b"hi\n"
        # exec as a non-root user into a running container
        _umask_077(lam, "run", "-d", "--name", "r", "busybox", "sleep", "1000")
        assert _umask_077(lam, "exec", "-u", "1000", "r", "sh", "-c",
                          "cat /etc/hosts >/dev/null && ls / >/dev/null && id -u").stdout == b"1000\n"
    finally:
        lam("rm", "-f", "r", check=False)


def test_save_and_export_outputs_are_private(bb, tmp_path):
    out = tmp_path / "img.tar"
    bb("save", "-o", str(out), "busybox")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600  # as Docker 20.10's client writes it
    bb("create", "--name", "c", "busybox", "true")
    exp = tmp_path / "fs.tar"
    exp.write_bytes(b"old")
    os.chmod(exp, 0o644)
    bb("export", "-o", str(exp), "c")
    assert stat.S_IMODE(os.stat(exp).st_mode) == 0o600 and exp.stat().st_size > 10240
    assert sorted(os.listdir(tmp_path)) == ["fs.tar", "img.tar", "root"]  # no temp file left
