"""Container rows and their on-disk bundles.

A container is a row in the ``containers`` table whose ``data`` column holds its record,
the Docker-shaped inspect document (Id, Name, Config, HostConfig, State, Mounts ...) whose
fields and defaults :mod:`lamina.runtime.record` owns, plus a directory (owned by this
module)::

    containers/<id>/
      upper/ work/          the container's overlay layer (its copy-on-write changes)
      init/                 the init layer under it: mount points and /etc files bound over
      rootfs/               mount point of the container's root (mounted inside the
                            container's own mount namespace by the built-in launcher, so a
                            killed lamina leaves no mount on the host)
      config.json           the OCI runtime spec, written at each start
      hostname hosts resolv.conf
      <id>-json.log         json-file log (Docker's format)
      attach.sock           the monitor's attach socket (detached containers)

Contracts:
- ``create`` writes the directory first and the row last; a crash in between leaves a
  directory without a row, which ``gc_orphans`` removes.
- State changes are read-modify-write of the row in one transaction.
- ``refresh`` turns a "running" record whose process is gone (its monitor was killed)
  into "exited" with code 255, so ``ps``/``rm`` always see the truth.
"""

from __future__ import annotations

import json
import os
import time

from lamina import testhook
from lamina.errors import Conflict, InvalidArgument, LaminaError, NotFound
from lamina.runtime import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from lamina.runtime.options import CreateOptions

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def now_rfc3339() -> str:
    from lamina.timefmt import rfc3339
    return rfc3339()


def _pid_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):  # a zombie is gone, even if nobody reaped it yet
        return None
    return fields[19].decode()


def cgroup_parent_of(doc: dict) -> str:
    """The parent cgroup the container runs under, fixed when it was created (records
    made before ``--cgroup-parent`` existed used ``lamina``)."""
    return (doc.get("Lamina") or {}).get("CgroupParent") or "lamina"


def process_alive(pid: int | None, start: str | None) -> bool:
    """True if ``pid`` runs and is the same process (same start time) that was recorded."""
    return bool(pid) and start is not None and _pid_start(pid) == start


def parse_restart(policy: str) -> tuple[str, int]:
    name, _, count = (policy or "no").partition(":")
    if name not in ("no", "on-failure", "always", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy '{policy}'")
    if count and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if count and not count.isdigit():
        raise InvalidArgument(f"invalid restart policy '{policy}': maximum retry count must be a number")
    return name, int(count or 0)


class Containers:
    def __init__(self, store) -> None:
        self.store = store
        self.root = store.containers_dir

    @property
    def db(self):
        return self.store.db

    def dir(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    # -- records ------------------------------------------------------------------
    def all(self) -> list[dict]:
        """Every container (refreshed); directories a crashed ``create`` left without a row
        are removed on the way (see ``gc_orphans``)."""
        docs = [json.loads(r[0]) for r in self.db.query("SELECT data FROM containers")]
        try:
            if len(os.listdir(self.root)) > len(docs):
                self.gc_orphans()
        except FileNotFoundError:
            pass
        return [self.refresh(d) for d in docs]

    def get(self, ref: str) -> dict:
        """By full ID, unique ID prefix, or name (with or without a leading /)."""
        name = ref[1:] if ref.startswith("/") else ref
        row = self.db.one("SELECT data FROM containers WHERE id=? OR name=?", (ref, name))
        if row is None and ref and all(c in "0123456789abcdef" for c in ref):
            rows = self.db.query("SELECT data FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"No such container: {ref}")
        return self.refresh(json.loads(row[0]))

    def reload(self, doc: dict) -> dict:
        row = self.db.one("SELECT data FROM containers WHERE id=?", (doc["Id"],))
        if row is None:
            raise NotFound(f"No such container: {doc['Id'][:12]}")
        return json.loads(row[0])

    def update(self, cid: str, fn) -> dict:
        """Apply ``fn(doc)`` (mutating) to the stored document in one transaction."""
        with self.db.tx() as c:
            row = c.execute("SELECT data FROM containers WHERE id=?", (cid,)).fetchone()
            if row is None:
                raise NotFound(f"No such container: {cid[:12]}")
            doc = json.loads(row[0])
            fn(doc)
            c.execute("UPDATE containers SET data=? WHERE id=?", (json.dumps(doc), cid))
        return doc

    def set_state(self, cid: str, **changes) -> dict:
        """Update fields of the record's ``State`` (each declared in lamina.runtime.record)."""
        record.check_state(changes)

        def apply(doc):
            doc["State"].update(changes)
        return self.update(cid, apply)

    def refresh(self, doc: dict) -> dict:
        """``doc`` with its State brought up to date: an active record whose process and
        monitor are both gone becomes the state of a lost container (exit 255), its cgroups
        and network left-overs removed. The write is a compare-and-set: if the stored State
        changed since ``doc`` was read (the monitor recorded the real exit, a restart began),
        the stored document wins and is returned unchanged."""
        st = record.State.of(doc)
        if not st.active:
            return doc
        testhook.pause("refresh-active")
        if process_alive(st.pid, st.pid_start) or process_alive(st.monitor_pid, st.monitor_start):
            return doc
        seen = (st.pid, st.pid_start, st.monitor_pid, st.monitor_start)
        dead = record.gone_state(now=now_rfc3339())
        mode = doc["HostConfig"]["NetworkMode"]
        netted = not (mode in ("host", "none") or mode.startswith("container:"))
        if netted:
            from lamina.network.sandbox import sweep
            try:
                sweep(self.store)  # what the dead monitor left: rules, lease, DNS entry
            except LaminaError:
                pass
        lost = []

        def apply(d: dict) -> None:
            cur = record.State.of(d)
            if not cur.active or (cur.pid, cur.pid_start, cur.monitor_pid, cur.monitor_start) != seen:
                return  # a newer state was written meanwhile: it is the truth
            d["State"].update(dead)
            if netted:
                from lamina.network.sandbox import settings
                d["NetworkSettings"] = settings(d, None)
            lost.append(True)
        doc = self.update(doc["Id"], apply)
        if lost:
            from lamina.runtime import launcher
            launcher.remove_cgroups(doc["Id"], cgroup_parent=cgroup_parent_of(doc))
        return doc

    # -- create -------------------------------------------------------------------
    def create(self, opts: CreateOptions) -> dict:
        """Resolve the image, unpack its layers, write the container's directory and row."""
        from lamina.image.service import Images
        from lamina.runtime import names
        from lamina.snapshot import Snapshotter, image_layers

        images = Images(self.store)
        rec = images.resolve(opts.image)
        icfg = images.config(rec)
        cfg = dict(icfg.config)
        restart_name, restart_max = parse_restart(opts.restart)
        if opts.auto_remove and restart_name != "no":
            raise Conflict("conflicting options: cannot specify both --restart and --rm")
        from lamina.runtime import secopts
        security_opt = secopts.normalize(opts.security_opt)
        if opts.init:
            from lamina.runtime.spec import find_init
            find_init()  # Unavailable (125) now rather than at every start
        from lamina.runtime import launcher
        cgroup_parent = launcher.check_cgroup_parent(opts.cgroup_parent) if opts.cgroup_parent \
            else launcher.default_cgroup_parent()
        # CMD / ENTRYPOINT: Docker's rules
        if opts.entrypoint is not None:
            entrypoint = list(opts.entrypoint)
            cmd = list(opts.cmd)
        else:
            entrypoint = list(cfg.get("Entrypoint") or [])
            cmd = list(opts.cmd) or list(cfg.get("Cmd") or [])
        if not entrypoint and not cmd:
            raise InvalidArgument("no command specified")
        cid = os.urandom(32).hex()
        taken = {r[0] for r in self.db.query("SELECT name FROM containers")}
        if opts.name is not None:
            name = opts.name[1:] if opts.name.startswith("/") else opts.name
            import re
            if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
                raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
            if name in taken:
                other = self.db.one("SELECT id FROM containers WHERE name=?", (name,))[0]
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by container '
                               f'"{other}". You have to remove (or rename) that container to be able to '
                               'reuse that name.')
        else:
            name = names.generate(taken)
        from lamina.network.config import for_create
        netcfg = for_create(self.store, self, opts, cid, cfg.get("ExposedPorts"))
        hostname = opts.hostname or (netcfg["Container"]["Config"]["Hostname"] if netcfg["Container"]
                                     else cid[:12])
        env = _merge_env(list(cfg.get("Env") or []), list(opts.env))
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, DEFAULT_PATH)
        workdir = opts.workdir if opts.workdir is not None else (cfg.get("WorkingDir") or "")
        if workdir and not workdir.startswith("/"):
            raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        user = opts.user if opts.user is not None else (cfg.get("User") or "")
        from lamina.runtime.signals import parse_signal
        stop_signal = opts.stop_signal or cfg.get("StopSignal") or "SIGTERM"
        parse_signal(stop_signal)  # Docker: "Invalid signal: SIGBOGUS", 125
        memory_swap = _memory_swap(opts.memory, opts.memory_swap)
        from lamina.runtime.volumes import parse_mounts
        mounts = parse_mounts(self.store, opts, image_volumes=list((cfg.get("Volumes") or {}).keys()))
        d = self.dir(cid)
        # locked from its first moment until the row exists: gc_orphans skips a locked directory
        creating = lock_new_dir(d)
        make_layer_dirs(d)
        try:
            return self._create_rest(opts, cid, name, d, rec, images, cfg, entrypoint, cmd, hostname,
                                     netcfg, restart_name, restart_max, workdir, user, stop_signal,
                                     mounts, Snapshotter, image_layers, env, security_opt,
                                     memory_swap, cgroup_parent=cgroup_parent)
        except BaseException:
            _rmtree(d)
            raise
        finally:
            os.close(creating)

    def _create_rest(self, opts, cid, name, d, rec, images, cfg, entrypoint, cmd, hostname, netcfg,
                     restart_name, restart_max, workdir, user, stop_signal, mounts, Snapshotter,
                     image_layers, env, security_opt, memory_swap, *, cgroup_parent: str) -> dict:
        from lamina.network import files
        network = netcfg["Mode"]
        _write(os.path.join(d, "hostname"), hostname + "\n", shared=True)
        if network == "host":  # lamina keeps the container's own hostname here
            hosts = files.HOSTS_HEADER + f"127.0.1.1\t{hostname}\n"
        else:  # a bridge network's is written at each start, with the container's address
            hosts = files.hosts(ip="", hostname=hostname, domainname=opts.domainname or "",
                                extra=[tuple(h.split(":", 1)) for h in netcfg["HostConfig"]["ExtraHosts"] or ()])
        _write(os.path.join(d, "hosts"), hosts, shared=True)
        try:
            resolv = open("/etc/resolv.conf").read()
        except OSError:
            resolv = ""
        _write(os.path.join(d, "resolv.conf"), resolv if network == "host" else "", shared=True)
        layers = image_layers(images, rec)
        with self.store.operation():
            Snapshotter(self.store).prepare(layers)
        shown = opts.image  # Config.Image is the name as the user gave it
        created = now_rfc3339()
        doc = record.new_document(
            cid=cid, name=name, created=created, path=(entrypoint + cmd)[0], args=(entrypoint + cmd)[1:],
            image=str(rec.id), manifest=str(rec.manifest), directory=d,
            host_config={
                "Binds": list(opts.volumes) or None, **netcfg["HostConfig"],
                "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": restart_max},
                "AutoRemove": opts.auto_remove, "CapAdd": list(opts.cap_add) or None,
                "CapDrop": list(opts.cap_drop) or None, "Privileged": opts.privileged,
                "ReadonlyRootfs": opts.read_only, "SecurityOpt": list(security_opt) or None,
                "Tmpfs": _tmpfs_map(opts.tmpfs) or None, "ShmSize": opts.shm_size or 64 << 20,
                "Runtime": opts.runtime, "Init": opts.init or None, "Memory": opts.memory or 0,
                "MemorySwap": memory_swap,
                "NanoCpus": int((opts.cpus or 0) * 1e9), "PidsLimit": opts.pids_limit,
                "Ulimits": [_ulimit_doc(u) for u in opts.ulimits] or None,
                "CgroupParent": opts.cgroup_parent,
            },
            mounts=[m.to_inspect() for m in mounts],
            config={
                "Hostname": hostname, "Domainname": opts.domainname or "", "User": user,
                "AttachStdin": opts.interactive,
                "AttachStdout": True, "AttachStderr": True, "Tty": opts.tty, "OpenStdin": opts.interactive,
                "StdinOnce": opts.interactive, "Env": env, "Cmd": cmd or None, "Image": shown,
                "Volumes": cfg.get("Volumes"), "WorkingDir": workdir, "Entrypoint": entrypoint or None,
                "OnBuild": None, "Labels": {**(cfg.get("Labels") or {}), **opts.labels},
                "StopSignal": stop_signal,
                **({"StopTimeout": opts.stop_timeout} if opts.stop_timeout is not None else {}),
                **({"ExposedPorts": netcfg["ExposedPorts"]} if netcfg["ExposedPorts"] else {}),
            },
            networks=netcfg["Networks"],
            chain_id=str(layers[-1].chain_id) if layers else None, detach_keys=opts.detach_keys,
            cgroup_parent=cgroup_parent,
        )
        import sqlite3
        try:
            with self.db.tx() as c:
                c.execute("INSERT INTO containers(id, name, image, chain_id, created, data) VALUES(?,?,?,?,?,?)",
                          (cid, name, str(rec.manifest), doc["Lamina"]["ChainID"], time.time(), json.dumps(doc)))
        except sqlite3.IntegrityError:  # another lamina took the name between our check and now
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by another container. '
                           f'You have to remove (or rename) that container to be able to reuse that name.') from None
        if any(m.type == "volume" and not m.nocopy for m in mounts):
            from lamina.runtime.volumes import populate
            try:
                populate(self, doc, mounts)  # Docker's copy-up into new, empty volumes
            except BaseException:
                self.delete(doc, volumes=True)
                raise
        return doc

    # -- start support --------------------------------------------------------------
    def layers_of(self, doc: dict):
        from lamina.image.service import Images
        from lamina.snapshot import image_layers
        images = Images(self.store)
        return image_layers(images, images.of_container(doc["ImageManifest"]))

    def prepare_bundle(self, doc: dict, sandbox=None) -> tuple[str, list]:
        """Write config.json for a start; returns (bundle dir, rootfs mounts). ``sandbox``
        (lamina.network.sandbox.Sandbox) is the network made for this start of a container on
        a bridge network; ``container:<x>`` joins x's namespace and sees x's hosts and
        resolv.conf (Conflict if x does not run)."""
        from lamina.runtime.spec import RunOptions, build_spec
        from lamina.runtime.volumes import mounts_from_inspect
        from lamina.snapshot import Snapshotter, make_init_layer
        d = self.dir(doc["Id"])
        layers = self.layers_of(doc)
        snap = Snapshotter(self.store)
        rootfs_mounts = snap.mounts(layers, upper=os.path.join(d, "upper"), work=os.path.join(d, "work"),
                                    init=make_init_layer(os.path.join(d, "init")),
                                    volatile=bool(doc["HostConfig"]["AutoRemove"]))
        lowers = [snap.dir_of(x.chain_id) for x in reversed(layers)]
        user = with_primary_gid(resolve_user_in_layers([os.path.join(d, "upper"), *lowers], doc["Config"]["User"]))
        hc, c = doc["HostConfig"], doc["Config"]
        env = list(c["Env"])
        if not any(e.startswith("HOSTNAME=") for e in env):
            env.insert(1, f"HOSTNAME={c['Hostname']}")
        if c["Tty"] and not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={user.home or '/'}")
        etc = {"/etc/hostname": doc["HostnamePath"], "/etc/hosts": doc["HostsPath"]}
        resolv = doc["ResolvConfPath"]
        mode, netns = hc["NetworkMode"], ""
        if sandbox is not None:
            mode, netns = "path", sandbox.netns_path
        elif mode.startswith("container:"):
            other = self.get(mode.partition(":")[2])
            if not other["State"]["Running"] or not other["State"].get("Pid"):
                raise Conflict(f"cannot join network of a non running container: {other['Id']}")
            mode, netns = "path", f"/proc/{other['State']['Pid']}/ns/net"
            etc["/etc/hosts"], resolv = other["HostsPath"], other["ResolvConfPath"]
        elif mode not in ("host", "none") and not (doc.get("NetworkSettings") or {}).get("Networks"):
            mode = "none"  # disconnected from every network: only lo, as Docker
        elif mode not in ("host", "none"):
            raise InvalidArgument(f"container {doc['Id'][:12]}: network {mode} was not set up for this start")
        if mode in ("host", "path") or os.path.getsize(resolv):
            etc["/etc/resolv.conf"] = resolv
        from lamina.runtime import secopts
        security = secopts.parse(hc.get("SecurityOpt"))
        opts = RunOptions(
            args=tuple([doc["Path"], *doc["Args"]]), env=tuple(env), cwd=c["WorkingDir"] or "/",
            user=user, hostname=c["Hostname"], terminal=c["Tty"], readonly_rootfs=hc["ReadonlyRootfs"],
            network=mode, netns_path=netns, cap_add=tuple(hc.get("CapAdd") or ()),
            cap_drop=tuple(hc.get("CapDrop") or ()),
            privileged=hc["Privileged"], no_new_privileges=security.no_new_privileges,
            mounts=tuple(mounts_from_inspect(doc)), shm_size=hc["ShmSize"], memory=hc["Memory"] or None,
            memory_swap=hc.get("MemorySwap") or None,
            cpus=(hc["NanoCpus"] / 1e9) or None, pids_limit=hc.get("PidsLimit"),
            ulimits=tuple((u["Name"], u["Soft"], u["Hard"]) for u in hc.get("Ulimits") or ()),
            init=bool(hc.get("Init")), seccomp=security.seccomp,
            seccomp_profile=security.seccomp_profile, system_paths=security.system_paths,
            etc_files=etc,
        )
        spec = build_spec(opts, root_path="rootfs")
        _write(os.path.join(d, "config.json"), json.dumps(spec, separators=(",", ":")))
        return d, rootfs_mounts

    # -- removal ------------------------------------------------------------------
    def delete(self, doc: dict, *, volumes: bool = False) -> None:
        """Drop the row, then the directory (and anonymous volumes with ``volumes``). The
        container must not be running (:func:`lamina.runtime.lifecycle.remove` stops it)."""
        from lamina.runtime import launcher
        from lamina.runtime.volumes import remove_anonymous
        rt = doc["HostConfig"].get("Runtime") or "builtin"
        if rt not in ("builtin", "lamina"):
            from lamina.runtime import external
            try:
                external.delete(rt, doc["Id"])  # the runtime's state (and a container a killed lamina left)
            except LaminaError:
                pass
        with self.db.tx() as c:
            c.execute("DELETE FROM containers WHERE id=?", (doc["Id"],))
        _rmtree(self.dir(doc["Id"]))
        # left behind when its monitor was killed
        launcher.remove_cgroups(doc["Id"], cgroup_parent=cgroup_parent_of(doc))
        if volumes:
            remove_anonymous(self.store, doc)

    def gc_orphans(self) -> list[str]:
        """Remove container directories without a row (a crash during create); a directory
        whose ``create`` is still running holds a flock on itself and is skipped."""
        import fcntl
        known = {r[0] for r in self.db.query("SELECT id FROM containers")}
        out = []
        for name in os.listdir(self.root):
            if name in known:
                continue
            path = os.path.join(self.root, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # being created right now
            try:
                if self.db.one("SELECT id FROM containers WHERE id=?", (name,)) is None:
                    _rmtree(path)
                    out.append(name)
            finally:
                os.close(fd)
        return out


def lock_new_dir(path: str) -> int:
    """Create ``path`` and flock it (exclusive) before anything is put in it; returns the fd.

    ``Containers.gc_orphans`` removes row-less container dirs only when it can lock them, so
    a container being created, or a build step's throwaway container, is never swept away.
    The directory is 0700: only the store's owner may enter it (lamina.perms)."""
    import fcntl
    os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd




def _memory_swap(memory: int | None, swap: int | None) -> int:
    """HostConfig.MemorySwap as Docker computes it: twice ``memory`` when only ``-m`` is
    given, ``-1`` unlimited, 0 without ``-m``. Raises Docker's errors for a swap limit below
    the memory limit or without one."""
    if swap is not None and swap != 0 and not memory:
        raise InvalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage")
    if not memory:
        return 0
    if swap is None or swap == 0:
        return 2 * memory
    if swap != -1 and swap < memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    return swap


def _rmtree(path: str) -> None:
    """Remove a container's tree, unmounting first anything a crashed run left mounted."""
    if not os.path.lexists(path):
        return
    from lamina import mount
    try:
        for mp in reversed(mount.mounts_under(path)):
            mount.unmount(mp, detach=True, ignore_not_mounted=True)
    except (LaminaError, OSError):
        pass
    from lamina.safepath import remove_tree
    remove_tree(path)


def make_layer_dirs(d: str) -> tuple[str, str]:
    """A container dir's ``upper`` (0755 whatever the umask: the overlay shows it as the
    container's ``/``), ``work`` and ``rootfs`` (0700); returns (upper, work)."""
    from lamina import perms
    upper, work = os.path.join(d, "upper"), os.path.join(d, "work")
    perms.mkdir(upper, perms.VISIBLE_DIR)
    perms.mkdir(work)
    perms.mkdir(os.path.join(d, "rootfs"))
    return upper, work


def _write(path: str, text: str, *, shared: bool = False) -> None:
    """Replace a file of a container dir atomically: 0600, or 0644 for the ``shared`` files
    bound into the container (/etc/hosts ...), which every user there must read."""
    from lamina import perms
    perms.write_file(path, text, perms.VISIBLE_FILE if shared else perms.PRIVATE_FILE)


def _merge_env(base: list[str], extra: list[str]) -> list[str]:
    out = list(base)
    for e in extra:
        key = e.split("=", 1)[0]
        if "=" not in e:
            val = os.environ.get(key)
            if val is None:
                continue  # -e NAME with NAME unset on the host: dropped, like Docker
            e = f"{key}={val}"
        out = [x for x in out if x.split("=", 1)[0] != key] + [e]
    return out


def _tmpfs_map(specs) -> dict:
    out = {}
    for s in specs:
        path, _, opts = s.partition(":")
        out[path] = opts
    return out


_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
            "rss", "rtprio", "rttime", "sigpending", "stack", "as")


def _ulimit_doc(spec: str) -> dict:
    name, sep, vals = spec.partition("=")
    if not sep or name not in _ULIMITS:
        raise InvalidArgument(f"invalid ulimit argument: {spec}")
    soft, _, hard = vals.partition(":")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {spec}") from None
    for v, text in ((s, soft), (h, hard)):
        if not -(1 << 63) <= v < 1 << 63:
            raise InvalidArgument(f'invalid argument "{spec}" for "--ulimit" flag: strconv.ParseInt: '
                                  f'parsing "{text}": value out of range')
    if s > h:
        raise InvalidArgument(f"ulimit soft limit must be less than or equal to hard limit: {s} > {h}")
    return {"Name": name, "Soft": s, "Hard": h}


def read_in_layers(dirs: list[str], rel: str) -> bytes | None:
    """The content of ``rel`` as the overlay of ``dirs`` (top-most first) shows it, or None.

    Read through lamina.snapshot.view: whiteouts and opaque directories hide lower layers,
    symlinks resolve inside the merged root (also across layers), nothing is followed on the
    host."""
    from lamina.snapshot.view import LayerView
    with LayerView(dirs) as view:
        return view.read(rel, limit=1 << 20)


def with_primary_gid(user):
    """Docker's daemon adds the primary gid to the supplementary groups (``id`` in a container
    shows ``groups=0(root)``), then the groups of /etc/group that list the user."""
    from lamina import values
    gids = [user.gid] + [g for g in user.additional_gids if g != user.gid]
    return values.replace(user, additional_gids=tuple(gids))


def resolve_user_in_layers(dirs: list[str], user: str):
    """``resolve_user`` against the merged /etc/passwd and /etc/group of a layer stack."""
    from lamina.runtime.spec import resolve_user_with
    from lamina.snapshot.view import LayerView
    with LayerView(dirs) as view:
        def read(path: str) -> str | None:
            data = view.read(path, limit=1 << 22)
            return None if data is None else data.decode("utf-8", "replace")
        return resolve_user_with(read, user)
