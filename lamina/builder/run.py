"""RUN steps: the command runs in a throwaway container on the step's parent layers; its
overlay upper dir becomes the step's layer (and, renamed, that layer's snapshot, so the
next step does not unpack it again).

The container has a directory under containers/ but no record: it never shows in ``ps``,
and a crash leaves a directory that ``Containers.gc_orphans`` removes.
"""

from __future__ import annotations

import os
import shutil

from lamina.errors import InvalidArgument
from lamina.values import value


@value
class RunMount:
    """A RUN --mount, resolved to something the runtime can mount: a ``tmpfs``, or a
    ``bind`` of the object the descriptor ``fd`` names (``O_PATH``, resolved by lamina --
    inside the context's or the stage's root for a bind source; owned by this value, see
    :func:`close_mounts`). ``discard_writes``: a writable bind whose writes must not reach
    the source (BuildKit's ``rw``: an overlay with a throwaway upper dir); ``source`` is for
    messages only."""

    type: str            # bind | tmpfs
    source: str
    target: str
    readonly: bool = False
    fd: int = -1
    discard_writes: bool = False


def close_mounts(mounts: list[RunMount]) -> None:
    for m in mounts:
        if m.fd >= 0:
            os.close(m.fd)


def parse_run_mounts(values: list[str], *, context_dir: str, cache_root: str, secrets: dict[str, str],
                     stage_root) -> list[RunMount]:
    """``--mount`` values of a RUN (BuildKit syntax) -> RunMounts. ``stage_root(name)``
    returns a directory holding the named stage's (or image's) merged filesystem. A bind
    ``source`` is resolved inside its own root (the context or that filesystem) with
    ``openat2(RESOLVE_IN_ROOT)``: a symlink there cannot name a host path. The caller closes
    the result with :func:`close_mounts` (also on error: this closes what it made)."""
    out: list[RunMount] = []
    try:
        for value in values:
            m = _parse_one(value, context_dir=context_dir, cache_root=cache_root, secrets=secrets,
                           stage_root=stage_root)
            if m is not None:
                out.append(m)
    except BaseException:
        close_mounts(out)
        raise
    return out


def _parse_one(value: str, *, context_dir: str, cache_root: str, secrets: dict[str, str],
               stage_root) -> RunMount | None:
    from lamina.safepath import open_root, resolve_in_root
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
            return None
        try:  # the user's own path (--secret src=...), opened once: what is bound is this file
            fd = os.open(src, os.O_PATH | os.O_CLOEXEC)
        except OSError as e:
            raise InvalidArgument(f"secret {sid}: {src}: {e.strerror}") from None
        return RunMount("bind", src, target, readonly=True, fd=fd)
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
        fd = open_root(d)  # lamina's own directory; the descriptor is what gets bound
        try:
            mode = kv.get("mode")
            if mode:
                os.chmod(f"/proc/self/fd/{fd}", int(mode, 8))
            if "uid" in kv or "gid" in kv:
                os.chown(f"/proc/self/fd/{fd}", int(kv.get("uid", 0)), int(kv.get("gid", 0)))
        except (ValueError, OSError) as e:
            os.close(fd)
            raise InvalidArgument(f"RUN --mount={value}: {e}") from None
        return RunMount("bind", d, target, readonly=ro, fd=fd)
    if typ == "tmpfs":
        return RunMount("tmpfs", "tmpfs", target)
    if typ == "bind":
        src = kv.get("source") or kv.get("src") or "."
        frm = kv.get("from")
        base = stage_root(frm) if frm else context_dir
        where = f"stage {frm}" if frm else "build context"
        try:
            fd, _ = resolve_in_root(base, src)
        except InvalidArgument:
            raise InvalidArgument(f"RUN --mount={value}: source {src} not found in the {where}") from None
        rw = "rw" in flags or "readwrite" in flags or kv.get("rw") in ("true", "1")
        return RunMount("bind", src, target, readonly=not rw, fd=fd, discard_writes=rw)
    raise InvalidArgument(f"RUN --mount={value}: unsupported mount type {typ!r}")


def _detach(mounts: list[RunMount], d: str) -> tuple[list[tuple[RunMount, int]], list[int]]:
    """Detached mounts for the binds of ``mounts`` (writes of ``rw`` binds go to throwaway
    dirs under ``d``). Returns [(mount, fd to attach)] in order and every fd made."""
    import fcntl
    import stat as stat_

    from lamina import mount as mnt
    made: list[int] = []
    out: list[tuple[RunMount, int]] = []
    try:
        for i, m in enumerate(mounts):
            if m.type != "bind" or m.fd < 0:
                out.append((m, -1))
                continue
            if m.discard_writes:
                from lamina import perms
                scratch = os.path.join(d, f"mnt-{i}")
                perms.mkdir(scratch)
                src = os.fstat(m.fd)
                if stat_.S_ISDIR(src.st_mode):
                    upper, work = os.path.join(scratch, "upper"), os.path.join(scratch, "work")
                    perms.mkdir(work)
                    perms.mkdir(upper, stat_.S_IMODE(src.st_mode))  # the mount's root shows the upper's
                    os.chown(upper, src.st_uid, src.st_gid)
                    mfd = mnt.detached_overlay(m.fd, upper=upper, work=work)
                else:  # a file: a private copy takes the writes
                    copy = os.path.join(scratch, "file")
                    with open(f"/proc/self/fd/{m.fd}", "rb") as src, open(copy, "xb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    cfd = os.open(copy, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
                    try:
                        mfd = mnt.detached_bind(cfd, readonly=False)
                    finally:
                        os.close(cfd)
            else:
                mfd = mnt.detached_bind(m.fd, readonly=m.readonly)
            high = fcntl.fcntl(mfd, fcntl.F_DUPFD_CLOEXEC, 10)  # the launcher keeps fds above 5
            os.close(mfd)
            made.append(high)
            out.append((m, high))
    except BaseException:
        for fd in made:
            os.close(fd)
        raise
    return out, made


def run_in_layers(store, layers, *, args: list[str], env: list[str], cwd: str, user: str,
                  mounts: list[RunMount], network: str, out_fd: int, on_id=None,
                  step=None) -> tuple[int, str, str]:
    """Run ``args`` on top of ``layers``; returns (exit code, upper dir, container dir).

    ``step`` (builder.StepOptions: ``build --add-host/--shm-size/--ulimit``)
    applies to the step's container. The caller commits the upper dir (or not) and removes
    the container dir. /etc/hosts,
    /proc ... come from an init layer under the upper dir, and RUN --mount targets the
    runtime had to create are removed again, so none of them reach the layer.
    """
    from lamina.runtime import launcher
    from lamina.runtime.containers import resolve_user_in_layers, with_primary_gid
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
    # like Docker's daemon: the primary gid is a supplementary group too (busybox `id` shows it)
    u = with_primary_gid(resolve_user_in_layers([upper, *lowers], user))
    hostname = cid[:12]
    from lamina import perms
    perms.write_file(os.path.join(d, "hostname"), hostname + "\n", perms.VISIBLE_FILE)
    extra = "".join(f"{addr}\t{name}\n" for name, addr in (step.add_hosts if step else ()))
    perms.write_file(os.path.join(d, "hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                     f"ip6-loopback\n{extra}127.0.1.1\t{hostname}\n", perms.VISIBLE_FILE)
    etc = {"/etc/hostname": os.path.join(d, "hostname"), "/etc/hosts": os.path.join(d, "hosts")}
    sb = None
    if network not in ("none", "host"):  # bridge or a user network: a network of the step's own
        from lamina.network.sandbox import attach_build_step
        perms.write_file(os.path.join(d, "resolv.conf"), "", perms.VISIBLE_FILE)
        sb = attach_build_step(store, cid=cid, network=network, hostname=hostname,
                               hosts_path=os.path.join(d, "hosts"), resolv_path=os.path.join(d, "resolv.conf"))
        etc["/etc/resolv.conf"] = os.path.join(d, "resolv.conf")
    elif network != "none" and os.path.exists("/etc/resolv.conf"):
        etc["/etc/resolv.conf"] = "/etc/resolv.conf"
    try:
        detached, made = _detach(mounts, d)
    except BaseException:
        if sb is not None:
            sb.teardown()
        discard(d)
        raise
    try:
        return _run(store, d, cid, launcher, detached, made, lowers, rootfs_mounts, u, args=args, env=env,
                    cwd=cwd, network=network, etc=etc, out_fd=out_fd, hostname=hostname, upper=upper, sb=sb,
                    step=step)
    finally:
        for fd in made:
            os.close(fd)
        if sb is not None:
            sb.teardown()


def _run(store, d, cid, launcher, detached, made, lowers, rootfs_mounts, u, *, args, env, cwd, network, etc,
         out_fd, hostname, upper, sb, step=None):
    from lamina.runtime.spec import MountSpec, RunOptions, build_spec
    from lamina.snapshot.view import LayerView
    specs = [MountSpec("bind", f"/proc/self/fd/{fd}" if fd >= 0 else m.source, m.target,
                       ("rbind", "ro" if m.readonly else "rw")) if m.type == "bind"
             else MountSpec("tmpfs", "tmpfs", m.target, ("nosuid", "nodev")) for m, fd in detached]
    stubs = []  # mount targets the image lacks: the runtime creates them (resolved in the root)
    with LayerView(lowers) as view:
        for m, _ in detached:
            rel = view.resolve(m.target)
            if rel and view.lstat(rel) is None:
                stubs.append(rel)
    full_env = list(env)
    if not any(e.startswith("HOSTNAME=") for e in full_env):
        full_env.append(f"HOSTNAME={hostname}")
    if not any(e.startswith("HOME=") for e in full_env):
        full_env.append(f"HOME={u.home or '/'}")
    extra: dict = {}
    if step is not None:
        extra["ulimits"] = step.ulimits
        if step.shm_size:
            extra["shm_size"] = step.shm_size
    opts = RunOptions(args=tuple(args), env=tuple(full_env), cwd=cwd or "/", user=u, hostname=hostname,
                      network="path" if sb else network, netns_path=sb.netns_path if sb else "",
                      mounts=tuple(specs), etc_files=etc, **extra)
    import json
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(build_spec(opts, root_path="rootfs"), f)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        code = launcher.run(d, container_id=cid, rootfs_mounts=rootfs_mounts, stdio=(devnull, out_fd, out_fd),
                            detached=made)
    except BaseException:
        discard(d)
        raise
    finally:
        os.close(devnull)
    for p in stubs:  # RUN --mount targets the runtime had to create
        _remove_stub(upper, p)
    return code, upper, d


def _remove_stub(upper: str, rel: str) -> None:
    """Remove an empty file or dir the runtime created at ``rel`` (a physical path of the
    upper dir, which the container wrote: every access goes through descriptors and stops
    at a symlink), and its empty parents."""
    import stat as stat_

    from lamina.safepath import PHYSICAL, open_root, openat2
    try:
        rfd = open_root(upper)
    except OSError:
        return
    first = True
    try:
        while rel:
            parent, _, name = rel.rpartition("/")
            try:
                pfd = openat2(rfd, parent, os.O_PATH | os.O_DIRECTORY, PHYSICAL) if parent else os.dup(rfd)
            except OSError:
                return
            try:
                s = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if stat_.S_ISDIR(s.st_mode):
                    os.rmdir(name, dir_fd=pfd)  # fails unless empty
                elif first and stat_.S_ISREG(s.st_mode) and s.st_size == 0:
                    os.unlink(name, dir_fd=pfd)
                else:
                    return
            except OSError:
                return
            finally:
                os.close(pfd)
            rel, first = parent, False
    finally:
        os.close(rfd)


_LOCKS: dict[str, int] = {}


def discard(container_dir: str) -> None:
    shutil.rmtree(container_dir, ignore_errors=True)
    fd = _LOCKS.pop(container_dir, None)
    if fd is not None:
        os.close(fd)
