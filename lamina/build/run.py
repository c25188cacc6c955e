"""RUN steps: the command runs in a throwaway container on the step's parent layers; its
overlay upper dir becomes the step's layer (and, renamed, that layer's snapshot, so the
next step does not unpack it again).

The container has a directory under containers/ but no record: it never shows in ``ps``,
and a crash leaves a directory that ``Containers.gc_orphans`` removes.
"""

from __future__ import annotations

import os
import shutil
from lamina._dcache import dataclass

from lamina.errors import InvalidArgument


@dataclass(frozen=True)
class RunMount:
    """A RUN --mount, resolved to something the runtime can bind."""

    type: str            # bind | tmpfs
    source: str
    target: str
    readonly: bool = False


def parse_run_mounts(values: list[str], *, context_dir: str, cache_root: str, secrets: dict[str, str],
                     stage_root) -> list[RunMount]:
    """``--mount`` values of a RUN (BuildKit syntax) -> RunMounts. ``stage_root(name)``
    returns a directory holding the named stage's (or image's) merged filesystem."""
    out = []
    for value in values:
        kv: dict[str, str] = {}
        flags: set[str] = set()
        for item in value.split(","):
            k, sep, v = item.partition("=")
            (kv.__setitem__(k.strip().lower(), v.strip()) if sep else flags.add(k.strip().lower()))
        typ = kv.get("type", "bind")
        target = kv.get("target") or kv.get("dst") or kv.get("destination")
        if typ == "secret":
            sid = kv.get("id") or (os.path.basename(target) if target else None)
            if not sid:
                raise InvalidArgument(f"RUN --mount={value}: a secret needs an id")
            target = target or f"/run/secrets/{sid}"
            src = secrets.get(sid)
            if src is None:
                if kv.get("required") in ("true", "1") or "required" in flags:
                    raise InvalidArgument(f"secret {sid} not found: pass it with --secret id={sid},src=<file>")
                continue
            out.append(RunMount("bind", src, target, readonly=True))
            continue
        if not target:
            raise InvalidArgument(f"RUN --mount={value}: target is required")
        if not target.startswith("/"):
            raise InvalidArgument(f"RUN --mount={value}: target must be an absolute path")
        ro = "readonly" in flags or "ro" in flags or kv.get("readonly") in ("true", "1") or kv.get("ro") in ("true", "1")
        if typ == "cache":
            cid = kv.get("id") or target
            import hashlib
            d = os.path.join(cache_root, hashlib.sha256(cid.encode()).hexdigest()[:24])
            from lamina import perms
            perms.makedirs(cache_root)
            perms.mkdir(d, perms.VISIBLE_DIR, exist_ok=True)  # BuildKit's default mode 0755
            mode = kv.get("mode")
            if mode:
                os.chmod(d, int(mode, 8))
            if "uid" in kv or "gid" in kv:
                os.chown(d, int(kv.get("uid", 0)), int(kv.get("gid", 0)))
            out.append(RunMount("bind", d, target, readonly=ro))
        elif typ == "tmpfs":
            out.append(RunMount("tmpfs", "tmpfs", target))
        elif typ == "bind":
            src = kv.get("source") or kv.get("src") or "."
            frm = kv.get("from")
            base = stage_root(frm) if frm else context_dir
            path = os.path.normpath(os.path.join(base, src.lstrip("/")))
            if not (path == base or path.startswith(base.rstrip("/") + "/")):
                raise InvalidArgument(f"RUN --mount={value}: source {src} is outside the {'stage' if frm else 'context'}")
            if not os.path.exists(path):
                raise InvalidArgument(f"RUN --mount={value}: source {src} not found")
            rw = "rw" in flags or "readwrite" in flags or kv.get("rw") in ("true", "1")
            out.append(RunMount("bind", path, target, readonly=not rw))
        else:
            raise InvalidArgument(f"RUN --mount={value}: unsupported mount type {typ!r}")
    return out


def _exists_below(lowers: list[str], rel: str) -> bool:
    for d in lowers:
        p = os.path.join(d, rel)
        if os.path.lexists(p):
            import stat
            st = os.lstat(p)
            return not (stat.S_ISCHR(st.st_mode) and st.st_rdev == 0)
    return False


def run_in_layers(store, layers, *, args: list[str], env: list[str], cwd: str, user: str,
                  mounts: list[RunMount], network: str, out_fd: int, on_id=None) -> tuple[int, str, str]:
    """Run ``args`` on top of ``layers``; returns (exit code, upper dir, container dir).

    The caller commits the upper dir (or not) and removes the container dir. /etc/hosts,
    /proc ... come from an init layer under the upper dir, and RUN --mount targets the
    runtime had to create are removed again, so none of them reach the layer.
    """
    from lamina.runtime import launcher
    from lamina.runtime.containers import resolve_user_in_layers
    from lamina.runtime.spec import MountSpec, RunOptions, build_spec
    from lamina.snapshot import Snapshotter, make_init_layer
    cid = os.urandom(32).hex()
    if on_id is not None:
        on_id(cid)
    d = os.path.join(store.containers_dir, cid)
    from lamina.runtime.containers import lock_new_dir
    lock_fd = lock_new_dir(d)  # released by discard() (or by death): `ps` must not sweep it meanwhile
    _LOCKS[d] = lock_fd
    from lamina.runtime.containers import make_layer_dirs
    upper, work = make_layer_dirs(d)
    snap = Snapshotter(store)
    rootfs_mounts = snap.mounts(layers, upper=upper, work=work, init=make_init_layer(os.path.join(d, "init")))
    lowers = [snap.dir_of(x.chain_id) for x in reversed(layers)]
    u = resolve_user_in_layers([upper, *lowers], user)
    hostname = cid[:12]
    from lamina import perms
    perms.write_file(os.path.join(d, "hostname"), hostname + "\n", perms.VISIBLE_FILE)
    perms.write_file(os.path.join(d, "hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                     f"ip6-loopback\n127.0.1.1\t{hostname}\n", perms.VISIBLE_FILE)
    etc = {"/etc/hostname": os.path.join(d, "hostname"), "/etc/hosts": os.path.join(d, "hosts")}
    if network != "none" and os.path.exists("/etc/resolv.conf"):
        etc["/etc/resolv.conf"] = "/etc/resolv.conf"
    specs = [MountSpec("bind", m.source, m.target, ("rbind", "ro" if m.readonly else "rw")) if m.type == "bind"
             else MountSpec("tmpfs", "tmpfs", m.target, ("nosuid", "nodev")) for m in mounts]
    stubs = [m.target for m in mounts if not _exists_below(lowers, m.target.lstrip("/"))]
    full_env = list(env)
    if not any(e.startswith("HOSTNAME=") for e in full_env):
        full_env.append(f"HOSTNAME={hostname}")
    if not any(e.startswith("HOME=") for e in full_env):
        full_env.append(f"HOME={u.home or '/'}")
    opts = RunOptions(args=tuple(args), env=tuple(full_env), cwd=cwd or "/", user=u, hostname=hostname,
                      network="none" if network == "none" else "host", mounts=tuple(specs), etc_files=etc)
    import json
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(build_spec(opts, root_path="rootfs"), f)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        code = launcher.run(d, container_id=cid, rootfs_mounts=rootfs_mounts, stdio=(devnull, out_fd, out_fd))
    except BaseException:
        discard(d)
        raise
    finally:
        os.close(devnull)
    for p in stubs:  # RUN --mount targets the runtime had to create
        _remove_stub(upper, p.lstrip("/"))
    return code, upper, d


def _remove_stub(upper: str, rel: str) -> None:
    """Remove an empty file or dir the runtime created at ``rel``, and its empty parents."""
    path = os.path.join(upper, rel)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            if os.listdir(path):
                return
            os.rmdir(path)
        elif os.path.isfile(path) and os.path.getsize(path) == 0:
            os.unlink(path)
        else:
            return
    except OSError:
        return
    parent = os.path.dirname(rel)
    while parent:
        try:
            os.rmdir(os.path.join(upper, parent))
        except OSError:
            break
        parent = os.path.dirname(parent)


_LOCKS: dict[str, int] = {}


def discard(container_dir: str) -> None:
    shutil.rmtree(container_dir, ignore_errors=True)
    fd = _LOCKS.pop(container_dir, None)
    if fd is not None:
        os.close(fd)
