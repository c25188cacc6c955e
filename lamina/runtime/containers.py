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
from lamina.runtime import psindex, record

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    from lamina.runtime.options import CreateOptions

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def now_rfc3339() -> str:
    from lamina.timefmt import rfc3339
    return rfc3339()


_pid_start = psindex.pid_start
process_alive = psindex.process_alive


def cgroup_parent_of(doc: dict) -> str:
    """The parent cgroup the container runs under, fixed when it was created (records
    made before ``--cgroup-parent`` existed used ``lamina``)."""
    return (doc.get("Lamina") or {}).get("CgroupParent") or "lamina"


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

    def event(self, doc: dict, action: str, **attributes: str) -> None:
        """Journal a container event (lamina.events) for ``doc``."""
        from lamina.events import container_event
        container_event(self.store.root, doc, action, **attributes)

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
            c.execute("UPDATE containers SET data=?, ps=? WHERE id=?", (json.dumps(doc), psindex.encode(doc), cid))
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
        if opts.init_path is not None and not os.path.isfile(opts.init_path):
            raise InvalidArgument(f"--init-path {opts.init_path}: no such file")
        if opts.init and opts.init_path is None:
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
        if opts.uts_mode == "host":
            import socket
            hostname = socket.gethostname()
        from lamina.runtime import health
        healthcheck = health.merge(cfg.get("Healthcheck"), opts.healthcheck)
        health.validate(opts.healthcheck)
        ns_modes = self._namespace_modes(opts, cid, netcfg["Mode"])
        check_sysctls(opts.sysctls, network=netcfg["Mode"], ipc=opts.ipc_mode)
        # Config.Env is the image's and -e's only (Docker's record); the process gets PATH,
        # HOSTNAME, TERM and HOME around it at start (process_env)
        env = _merge_env(list(cfg.get("Env") or []), list(opts.env))
        workdir = opts.workdir if opts.workdir is not None else (cfg.get("WorkingDir") or "")
        if workdir and not workdir.startswith("/"):
            raise InvalidArgument(f"the working directory '{workdir}' is invalid, it needs to be an absolute path")
        user = opts.user if opts.user is not None else (cfg.get("User") or "")
        from lamina.runtime.signals import parse_signal
        stop_signal = opts.stop_signal or cfg.get("StopSignal") or ""  # "": SIGTERM, unrecorded as Docker
        parse_signal(stop_signal or "SIGTERM")  # Docker: "Invalid signal: SIGBOGUS", 125
        memory_swap = _memory_swap(opts.memory, opts.memory_swap)
        if opts.memory_reservation and opts.memory and opts.memory < opts.memory_reservation:
            raise InvalidArgument("Minimum memory limit should be larger than memory reservation limit, see usage")
        if opts.memory_reservation is not None and 0 < opts.memory_reservation < 6 << 20:
            raise InvalidArgument("Minimum memory reservation allowed is 6MB")
        check_cpuset(opts.cpuset_cpus, "cpus")
        check_cpuset(opts.cpuset_mems, "mems")
        from lamina.runtime.volumes import parse_mounts
        mounts = parse_mounts(self.store, opts, image_volumes=list((cfg.get("Volumes") or {}).keys()),
                              volumes_from=self._volumes_from(opts.volumes_from))
        d = self.dir(cid)
        # locked from its first moment until the row exists: gc_orphans skips a locked directory
        creating = lock_new_dir(d)
        make_layer_dirs(d)
        try:
            extra_host = {"Devices": list(opts.devices), "GroupAdd": list(opts.group_add) or None,
                          **ns_modes, "LogConfig": opts.log_config, "VolumesFrom": list(opts.volumes_from) or None,
                          "CpuShares": opts.cpu_shares, "CpusetCpus": opts.cpuset_cpus,
                          "CpusetMems": opts.cpuset_mems, "MemoryReservation": opts.memory_reservation or 0,
                          "OomKillDisable": opts.oom_kill_disable,
                          **({"Sysctls": dict(opts.sysctls)} if opts.sysctls else {})}
            extra_config = {**({"Healthcheck": healthcheck} if healthcheck else {}),
                            **({"Shell": list(cfg["Shell"])} if cfg.get("Shell") else {})}
            return self._create_rest(opts, cid, name, d, rec, images, cfg, entrypoint, cmd, hostname,
                                     netcfg, restart_name, restart_max, workdir, user, stop_signal,
                                     mounts, Snapshotter, image_layers, env, security_opt,
                                     memory_swap, extra_host, extra_config, cgroup_parent=cgroup_parent)
        except BaseException:
            _rmtree(d)
            raise
        finally:
            os.close(creating)

    def _create_rest(self, opts, cid, name, d, rec, images, cfg, entrypoint, cmd, hostname, netcfg,
                     restart_name, restart_max, workdir, user, stop_signal, mounts, Snapshotter,
                     image_layers, env, security_opt, memory_swap, extra_host, extra_config, *,
                     cgroup_parent: str) -> dict:
        from lamina.network import files
        network = netcfg["Mode"]
        # the streams a client attaches, as Docker's records them: none for run -d, -a's
        # list, else stdout and stderr (and stdin with -i)
        if opts.detach:
            attach_in = attach_out = attach_err = False
        elif opts.attach:
            attach_in, attach_out, attach_err = ("stdin" in opts.attach, "stdout" in opts.attach,
                                                 "stderr" in opts.attach)
        else:
            attach_in, attach_out, attach_err = opts.interactive, True, True
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
                "Ulimits": [_ulimit_doc(u) for u in opts.ulimits] or None, **extra_host,
                "CgroupParent": opts.cgroup_parent,
            },
            mounts=[m.to_inspect() for m in mounts],
            config={
                "Hostname": hostname, "Domainname": opts.domainname or "", "User": user,
                "AttachStdin": attach_in, "AttachStdout": attach_out, "AttachStderr": attach_err,
                "Tty": opts.tty, "OpenStdin": opts.interactive,
                "StdinOnce": attach_in and opts.interactive, "Env": env or None, "Cmd": cmd or None,
                "Image": shown,
                "Volumes": cfg.get("Volumes"), "WorkingDir": workdir, "Entrypoint": entrypoint or None,
                "OnBuild": None, "Labels": {**(cfg.get("Labels") or {}), **opts.labels},
                **({"StopSignal": stop_signal} if stop_signal else {}),
                **({"StopTimeout": opts.stop_timeout} if opts.stop_timeout is not None else {}),
                **({"ExposedPorts": netcfg["ExposedPorts"]} if netcfg["ExposedPorts"] else {}),
                **extra_config,
            },
            networks=netcfg["Networks"],
            chain_id=str(layers[-1].chain_id) if layers else None, detach_keys=opts.detach_keys,
            cgroup_parent=cgroup_parent,
        )
        doc["Lamina"].update(InitPath=opts.init_path, LogRotate=list(opts.log_rotate),
                             ImageRef=image_ref(images, opts.image, rec))
        if opts.log_config.get("Type") == "none":
            doc["LogPath"] = ""
        import sqlite3
        try:
            with self.db.tx() as c:
                c.execute("INSERT INTO containers(id, name, image, chain_id, created, data, ps) "
                          "VALUES(?,?,?,?,?,?,?)", (cid, name, str(rec.manifest), doc["Lamina"]["ChainID"],
                                                    time.time(), json.dumps(doc), psindex.encode(doc)))
        except sqlite3.IntegrityError:  # another lamina took the name between our check and now
            raise Conflict(f'Conflict. The container name "/{name}" is already in use by another container. '
                           f'You have to remove (or rename) that container to be able to reuse that name.') from None
        if any(m.type == "volume" and not m.nocopy for m in mounts):
            from lamina.runtime.volumes import populate
            try:
                populate(self, doc, mounts)  # Docker's copy-up into new, empty volumes
            except BaseException:
                self.delete(doc, volumes=True, event=False)
                raise
        self.event(doc, "create")
        return doc

    def _namespace_modes(self, opts, cid: str, network: str) -> dict:
        """HostConfig's PidMode, IpcMode, UTSMode: ``container:<x>`` names x by its full ID
        (NotFound for an unknown x, as Docker); IPC of x only when x's IPC is shareable."""
        out = {"PidMode": opts.pid_mode, "IpcMode": opts.ipc_mode or "private", "UTSMode": opts.uts_mode}
        for key, what in (("PidMode", "PID"), ("IpcMode", "IPC")):
            mode = out[key]
            if mode.startswith("container:"):
                other = self.get(mode.partition(":")[2])
                if other["Id"] == cid:
                    raise InvalidArgument(f"cannot join own {what} namespace")
                if key == "IpcMode" and other["HostConfig"].get("IpcMode") not in ("shareable", "host"):
                    raise InvalidArgument(f"can't join IPC of container {other['Id']}: non-shareable IPC "
                                          "(hint: use IpcMode:shareable for the donor container)")
                out[key] = f"container:{other['Id']}"
        return out

    def _volumes_from(self, specs) -> list:
        """``--volumes-from c[:ro|:rw]``: the volume and bind mounts of container c (read-only
        with ``:ro``, read-write with ``:rw``, else as c has them)."""
        from lamina.runtime.volumes import ContainerMount
        out = []
        for spec in specs:
            ref, _, mode = spec.partition(":")
            if mode not in ("", "ro", "rw"):
                raise InvalidArgument(f"invalid mode: {mode}")
            other = self.get(ref)
            for m in other.get("Mounts") or ():
                if m["Type"] not in ("bind", "volume"):
                    continue
                ro = mode == "ro" if mode else not m.get("RW", True)
                if m["Type"] == "volume":  # never this container's to remove (rm -v)
                    out.append(ContainerMount("volume", m["Source"], m["Destination"], readonly=ro,
                                              name=m.get("Name") or "", nocopy=True))
                else:
                    out.append(ContainerMount("bind", m["Source"], m["Destination"], readonly=ro,
                                              propagation=m.get("Propagation") or "", options=m.get("Mode") or ""))
        return out

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
        dirs = [os.path.join(d, "upper"), *lowers]
        user = with_primary_gid(resolve_user_in_layers(dirs, doc["Config"]["User"]))
        hc, c = doc["HostConfig"], doc["Config"]
        if hc.get("GroupAdd"):
            from lamina import values
            gids = list(user.additional_gids)
            gids += [g for g in dict.fromkeys(group_ids_in_layers(dirs, hc["GroupAdd"])) if g not in gids]
            user = values.replace(user, additional_gids=tuple(gids))
        env = process_env(c, home=user.home or "/")
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
        shm_mode = hc.get("IpcMode") or "private"
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
            etc_files=etc, pid_ns=self._join_ns(hc.get("PidMode") or "", "pid", "PID"),
            ipc_ns=self._join_ns(shm_mode if shm_mode in ("host", "none") or shm_mode.startswith("container:")
                                 else "", "ipc", "IPC"),
            uts_ns="host" if hc.get("UTSMode") == "host" else "", sysctls=hc.get("Sysctls") or {},
            devices=tuple(host_device(x) for x in hc.get("Devices") or ()),
            cpu_shares=hc.get("CpuShares") or 0, cpuset_cpus=hc.get("CpusetCpus") or "",
            cpuset_mems=hc.get("CpusetMems") or "", memory_reservation=hc.get("MemoryReservation") or 0,
            oom_kill_disable=bool(hc.get("OomKillDisable")),
            init_path=(doc.get("Lamina") or {}).get("InitPath"),
        )
        spec = build_spec(opts, root_path="rootfs")
        _write(os.path.join(d, "config.json"), json.dumps(spec, separators=(",", ":")))
        return d, rootfs_mounts

    def _join_ns(self, mode: str, ns: str, what: str) -> str:
        """A namespace mode for the spec: "" (own), host, none, or the namespace file of the
        running container ``container:<id>`` names (Conflict when it does not run)."""
        if not mode.startswith("container:"):
            return mode
        other = self.get(mode.partition(":")[2])
        st = other["State"]
        if not st.get("Running") or not process_alive(st.get("Pid"), st.get("PidStart")):
            raise Conflict(f"cannot join {what} of a non running container: {other['Id']}")
        return f"/proc/{st['Pid']}/ns/{ns}"

    # -- removal ------------------------------------------------------------------
    def delete(self, doc: dict, *, volumes: bool = False, event: bool = True) -> None:
        """Drop the row, then the directory (and anonymous volumes with ``volumes``). The
        container must not be running (:func:`lamina.runtime.lifecycle.remove` stops it).
        Journals ``destroy`` unless ``event`` is false (a create that failed half-way)."""
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
        if event:
            self.event(doc, "destroy")

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




#: sysctls Docker lets a container set (docker/cli ValidateSysctl): the IPC ones by name,
#: the network and POSIX message queue ones by prefix
_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                      "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})


def check_sysctls(sysctls: dict, *, network: str, ipc: str) -> None:
    """Docker's client check (an allowed, namespaced sysctl) and runc's (not in a namespace
    the container shares with the host)."""
    for k, v in sysctls.items():
        if not (k in _SYSCTLS or k.startswith(("net.", "fs.mqueue."))):
            raise InvalidArgument(f'invalid argument "{k}={v}" for "--sysctl" flag: sysctl \'{k}={v}\' is not allowed')
        if k.startswith("net.") and network == "host":
            raise InvalidArgument(f'sysctl "{k}" not allowed in host network namespace')
        if not k.startswith("net.") and ipc == "host":
            raise InvalidArgument(f'sysctl "{k}" is not allowed in the hosts ipc namespace')


def check_cpuset(value: str, what: str) -> None:
    """``--cpuset-cpus``/``--cpuset-mems``: a list like ``0-2,4`` of what this host has."""
    if not value:
        return
    import re
    if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
        raise InvalidArgument(f"Invalid value {value} for cpuset {what}")
    want = set()
    for part in value.split(","):
        a, _, b = part.partition("-")
        lo, hi = int(a), int(b or a)
        if hi < lo:
            raise InvalidArgument(f"Invalid value {value} for cpuset {what}")
        want.update(range(lo, hi + 1))
    path = "/sys/fs/cgroup/cpuset/cpuset." + what
    if not os.path.exists(path):
        path = "/sys/fs/cgroup/cpuset." + what + ".effective"
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return
    have = set()
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        have.update(range(int(a), int(b or a) + 1))
    if not want <= have:
        raise InvalidArgument(f"Requested {'CPUs' if what == 'cpus' else 'memory nodes'} are not available - "
                              f"requested {value}, available: {text}")


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


def process_env(config: dict, *, home: str) -> list[str]:
    """The environment of a container's process, as dockerd builds it: PATH, HOSTNAME and
    (with a TTY) TERM, each replaced in place or followed by Config.Env's variables, then
    HOME when none of those set it."""
    env = [DEFAULT_PATH, f"HOSTNAME={config['Hostname']}"] + (["TERM=xterm"] if config.get("Tty") else [])
    where = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for e in config.get("Env") or []:
        key = e.split("=", 1)[0]
        if key in where:
            env[where[key]] = e
        else:
            where[key] = len(env)
            env.append(e)
    if "HOME" not in where:
        env.append(f"HOME={home}")
    return env


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


def image_ref(images, text: str, rec) -> str | None:
    """The tag (canonical name) ``text`` found the image ``rec`` by, None when it named an ID
    or a digest: ps shows the image's ID once that tag names another image (Docker's rule)."""
    from lamina import reference
    try:
        ref = reference.parse(text)
    except InvalidArgument:
        return None
    if ref.digest is not None:
        return None
    row = images.db.one("SELECT manifest FROM tags WHERE name=?", (str(ref),))
    return str(ref) if row and row[0] == str(rec.manifest) else None


def host_device(mapping: dict) -> dict:
    """``--device`` (Docker's DeviceMapping) as an OCI linux.devices entry (plus the cgroup
    access): the host node's type, numbers, mode and owner, read now. InvalidArgument names
    a missing path or one that is not a device, as dockerd does."""
    import stat as st_
    src = mapping["PathOnHost"]
    try:
        st = os.stat(src)
    except OSError as e:
        raise InvalidArgument(f'error gathering device information while adding custom device "{src}": '
                              f"{(e.strerror or str(e)).lower()}") from None
    if st_.S_ISCHR(st.st_mode):
        typ = "c"
    elif st_.S_ISBLK(st.st_mode):
        typ = "b"
    else:
        raise InvalidArgument(f'error gathering device information while adding custom device "{src}": '
                              "not a device node")
    return {"path": mapping["PathInContainer"], "type": typ, "major": os.major(st.st_rdev),
            "minor": os.minor(st.st_rdev), "fileMode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid,
            "access": mapping.get("CgroupPermissions") or "rwm"}


def group_ids_in_layers(dirs: list[str], groups) -> list[int]:
    """``--group-add``: gids as given, names looked up in the container's /etc/group."""
    from lamina.snapshot.view import LayerView
    out: list[int] = []
    text = None
    for g in groups:
        if g.isdigit():
            out.append(int(g))
            continue
        if text is None:
            with LayerView(dirs) as view:
                data = view.read("/etc/group", limit=1 << 22)
            text = (data or b"").decode("utf-8", "replace")
        for line in text.splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and parts[0] == g and parts[2].isdigit():
                out.append(int(parts[2]))
                break
        else:
            raise InvalidArgument(f"Unable to find group {g}: no matching entries in group file")
    return out


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
