"""Import a registry:2 (distribution) filesystem storage directory into a lamina store.

registry:2 keeps, under ``<rootdirectory>/docker/registry/v2``::

    blobs/sha256/<hex[:2]>/<hex>/data                       every blob and manifest
    repositories/<name>/_layers/sha256/<hex>/link            "sha256:<hex>": blob in repo
    repositories/<name>/_manifests/revisions/sha256/<hex>/link   manifest in repo
    repositories/<name>/_manifests/tags/<tag>/current/link   the tag's manifest digest
    repositories/<name>/_uploads/...                        uploads in progress (skipped)

Every path in the source is resolved with ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)``
under the source directory: a symlink in it is refused, never followed. Every blob is
copied in the kernel (``copy_file_range``: a reflink where the filesystem can) to a temporary
file, and that copy is hashed and renamed into place only if it matches its digest, so a
corrupt source blob is reported and left out, never stored. Manifests are checked like a push (schema 1 manifests, which
lamina does not serve, are reported and skipped); repositories and tags whose names break
the grammar are reported and skipped. Importing twice is harmless.
"""

from __future__ import annotations

import hashlib
import os
import stat as _stat
from typing import NamedTuple

from lamina.registry.server import manifests as mf
from lamina.registry.server import names
from lamina.registry.server.storage import Storage, blob_rel
from lamina.safepath import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, openat2

_SRC = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS


class ImportResult(NamedTuple):
    blobs: int
    repositories: int
    manifests: int
    tags: int
    problems: list[str]


class _Src:
    def __init__(self, path: str) -> None:
        base = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = openat2(base, "docker/registry/v2", os.O_PATH | os.O_DIRECTORY, _SRC)
        except FileNotFoundError:
            fd = os.dup(base)
        finally:
            os.close(base)
        self.fd = fd

    def listdir(self, rel: str) -> list[tuple[str, bool]]:
        try:
            fd = openat2(self.fd, rel, os.O_RDONLY | os.O_DIRECTORY, _SRC)
        except (FileNotFoundError, NotADirectoryError):
            return []
        try:
            out = []
            for n in os.listdir(fd):
                st = os.stat(n, dir_fd=fd, follow_symlinks=False)
                out.append((n, _stat.S_ISDIR(st.st_mode)))
            return out
        finally:
            os.close(fd)

    def read(self, rel: str, limit: int = 4096) -> bytes | None:
        try:
            fd = openat2(self.fd, rel, os.O_RDONLY, _SRC)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return os.read(fd, limit)
        finally:
            os.close(fd)

    def open(self, rel: str) -> int:
        return openat2(self.fd, rel, os.O_RDONLY, _SRC)


def _link_digest(b: bytes | None) -> tuple[str, str] | None:
    if b is None:
        return None
    return names.parse_digest(b.decode("ascii", "replace").strip())


def import_registry2(src_path: str, store: Storage, *, log=None) -> ImportResult:
    """Copy every verified blob, repository, manifest and tag of a registry:2 storage
    directory (its ``rootdirectory``, or the ``docker/registry/v2`` directory itself)."""
    log = log or (lambda s: None)
    src = _Src(src_path)
    problems: list[str] = []
    nblobs = 0
    ok_blobs: set[str] = set()
    try:
        for alg, is_dir in src.listdir("blobs"):
            if not is_dir or alg not in names.ALGORITHMS:
                continue
            for pre, _ in src.listdir(f"blobs/{alg}"):
                for h, _ in src.listdir(f"blobs/{alg}/{pre}"):
                    dg = f"{alg}:{h}"
                    if names.parse_digest(dg) is None:
                        problems.append(f"blobs/{alg}/{pre}/{h}: not a {alg} digest, skipped")
                        continue
                    if store.blob_size(alg, h) is not None:
                        ok_blobs.add(dg)
                        continue
                    try:
                        _copy_blob(src, f"blobs/{alg}/{pre}/{h}/data", store, alg, h)
                    except ValueError as e:
                        problems.append(str(e))
                        continue
                    except FileNotFoundError:
                        continue
                    except OSError as e:   # ELOOP: a symlink, refused, never followed
                        problems.append(f"blobs/{alg}/{pre}/{h}/data: {e.strerror}, skipped")
                        continue
                    ok_blobs.add(dg)
                    nblobs += 1
        nrepos = nmans = ntags = 0
        for name in _repos(src, "repositories", ""):
            if not names.valid_name(name):
                problems.append(f"repository {name!r}: not a valid name, skipped")
                continue
            nrepos += 1
            base = f"repositories/{name}"
            for alg, _ in src.listdir(f"{base}/_layers"):
                for h, _ in src.listdir(f"{base}/_layers/{alg}"):
                    p = _link_digest(src.read(f"{base}/_layers/{alg}/{h}/link"))
                    if p and f"{p[0]}:{p[1]}" in ok_blobs:
                        store.link_blob(name, *p)
            mans = []
            for alg, _ in src.listdir(f"{base}/_manifests/revisions"):
                for h, _ in src.listdir(f"{base}/_manifests/revisions/{alg}"):
                    p = _link_digest(src.read(f"{base}/_manifests/revisions/{alg}/{h}/link"))
                    if p:
                        mans.append(p)
            imported = set()
            for alg, h in mans:
                dg = f"{alg}:{h}"
                if dg not in ok_blobs:
                    problems.append(f"{name}@{dg}: manifest blob missing or corrupt, skipped")
                    continue
                data = store.read_all(blob_rel(alg, h))
                assert data is not None  # ok_blobs holds only blobs that were read and verified
                try:
                    info = mf.inspect(data, None)
                except mf.ManifestError as e:
                    problems.append(f"{name}@{dg}: {e}, skipped")
                    continue
                store.link_manifest(name, alg, h, info.media_type)
                if info.subject:
                    desc = dict(info.referrer, digest=dg, size=len(data))
                    store.add_referrer(name, info.subject, dg, desc)
                imported.add(dg)
                nmans += 1
            for tag, _ in src.listdir(f"{base}/_manifests/tags"):
                p = _link_digest(src.read(f"{base}/_manifests/tags/{tag}/current/link"))
                if not names.valid_tag(tag):
                    problems.append(f"{name}:{tag!r}: not a valid tag, skipped")
                    continue
                if p and f"{p[0]}:{p[1]}" in imported:
                    store.set_tag(name, tag, f"{p[0]}:{p[1]}")
                    ntags += 1
            log(f"imported {name}: {len(imported)} manifests")
    finally:
        os.close(src.fd)
    return ImportResult(nblobs, nrepos, nmans, ntags, problems)


def _repos(src: _Src, rel: str, prefix: str):
    entries = src.listdir(rel)
    if any(n in ("_manifests", "_layers") for n, d in entries if d) and prefix:
        yield prefix[:-1]
    for n, d in sorted(entries):
        if d and not n.startswith("_"):
            yield from _repos(src, f"{rel}/{n}", f"{prefix}{n}/")


def _copy_blob(src: _Src, rel: str, store: Storage, alg: str, hexd: str) -> None:
    """Copy (in the kernel) into tmp/, hash the copy, rename it into blobs/ if it matches:
    what is stored is what was verified."""
    fd = src.open(rel)
    tname = "i-" + os.urandom(8).hex()
    tfd = store.opendir("tmp", create=True)
    try:
        out = os.open(tname, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644,
                      dir_fd=tfd)
        try:
            off = 0
            while True:
                n = os.copy_file_range(fd, out, 1 << 30, off, off)
                if n == 0:
                    break
                off += n
            h = hashlib.new(alg)
            pos = 0
            while pos < off:
                b = os.pread(out, min(1 << 20, off - pos), pos)
                if not b:
                    break
                h.update(b)
                pos += len(b)
        finally:
            os.close(out)
        if h.hexdigest() != hexd:
            os.unlink(tname, dir_fd=tfd)
            raise ValueError(f"{rel}: content is {alg}:{h.hexdigest()}, not {alg}:{hexd}; skipped")
        store.rename_into(tfd, tname, blob_rel(alg, hexd))
    except BaseException:
        try:
            os.unlink(tname, dir_fd=tfd)
        except OSError:
            pass
        raise
    finally:
        os.close(tfd)
        os.close(fd)
