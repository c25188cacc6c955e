"""Volumes and mounts of containers: ``-v``, ``--mount``, ``--tmpfs`` and the anonymous
volumes an image's VOLUME asks for.

On-disk tree (owned by this module)::

    volumes/<name>/_data     a named or anonymous volume (anonymous: 64-hex name)

A new volume mounted over a path that has content in the image is first filled with that
content (Docker's copy-up), so ``VOLUME /data`` keeps the image's /data files.
"""

from __future__ import annotations

import os

from lamina.errors import InvalidArgument
from lamina.values import value


@value
class ContainerMount:
    type: str           # bind | volume | tmpfs
    source: str         # host path (bind, volume) or "" (tmpfs)
    destination: str
    readonly: bool = False
    name: str = ""      # volume name
    anonymous: bool = False
    options: str = ""   # tmpfs options
    nocopy: bool = False  # a volume the image's content is not copied into
    propagation: str = ""  # bind propagation: rprivate (default), private, rshared ...

    def to_inspect(self) -> dict:
        if self.type == "bind":
            return {"Type": "bind", "Source": self.source, "Destination": self.destination,
                    "Mode": self.options, "RW": not self.readonly,
                    "Propagation": self.propagation or "rprivate"}
        if self.type == "volume":
            return {"Type": "volume", "Name": self.name, "Source": self.source, "Destination": self.destination,
                    "Driver": "local", "Mode": "z", "RW": not self.readonly, "Propagation": "",
                    "Lamina": {"Anonymous": self.anonymous}}
        return {"Type": "tmpfs", "Source": "", "Destination": self.destination, "Mode": self.options,
                "RW": not self.readonly, "Propagation": ""}


_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def _check_propagation(prop: str, spec: str) -> str:
    """Private and slave propagation are kept; shared would let the container's mounts
    reach the host, which lamina's runtime never allows: refused rather than weakened."""
    if prop in ("shared", "rshared"):
        raise InvalidArgument(f"bind propagation {prop} is not supported by lamina (a container's mounts never "
                              f"reach the host): use rslave or rprivate ({spec})")
    return prop


def volumes_dir(store) -> str:
    return os.path.join(store.root, "volumes")


def check_volume_name(name: str) -> str:
    """``name`` if it is a local volume name by Docker's grammar
    (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``), else InvalidArgument with the daemon's words: so no
    path, ``..`` or ``/`` ever names a directory under volumes/."""
    import re
    if len(name) == 1:
        raise InvalidArgument(f"create {name}: volume name is too short, names should be at least "
                              f"two alphanumeric characters")
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume '
                              f'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to '
                              f'pass a host directory, use absolute path')
    return name


def _volume(store, name: str | None) -> tuple[str, str, bool]:
    """Create (if new) the volume ``name`` (None: a new anonymous one); returns (name,
    its _data dir, anonymous). volumes/ and volumes/<name>/ are 0700; _data is 0755, the
    mode a container sees at the mount point."""
    from lamina import perms
    anonymous = name is None
    name = os.urandom(32).hex() if anonymous else check_volume_name(name)
    top = volumes_dir(store)
    perms.mkdir(top, exist_ok=True)
    perms.mkdir(os.path.join(top, name), exist_ok=True)
    path = os.path.join(top, name, "_data")
    perms.mkdir(path, perms.VISIBLE_DIR, exist_ok=True)
    return name, path, anonymous


def _check_dest(dest: str, spec: str) -> str:
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: '{dest}' "
                              f"mount path must be absolute ({spec})")
    return os.path.normpath(dest)


def parse_mounts(store, opts, *, image_volumes: list[str], volumes_from: list[ContainerMount] = ()
                 ) -> list[ContainerMount]:
    """The mounts of ``-v``, ``--mount``, ``--tmpfs``, ``--volumes-from`` (``volumes_from``:
    the other containers' mounts, where the container's own flags name no destination) and
    the image's VOLUMEs (where nothing else is mounted). Every spec is checked before
    anything is created, so a bad one leaves no volume behind."""
    plan: list[tuple] = []   # ("volume", name|None, dest, ro) | ("bind", src, dest, ro, create) | ("tmpfs", ...)
    for spec in opts.volumes:
        parts = spec.split(":")
        if len(parts) == 1:
            plan.append(("volume", None, _check_dest(parts[0], spec), False))
            continue
        if len(parts) > 3:
            raise InvalidArgument(f"invalid volume specification: '{spec}'")
        src, dest = parts[0], _check_dest(parts[1], spec)
        mode = parts[2] if len(parts) == 3 else ""
        ro = nocopy = False
        prop = ""
        for m in filter(None, mode.split(",")):
            if m == "ro":
                ro = True
            elif m == "nocopy":
                nocopy = True
            elif m in _PROPAGATIONS:
                prop = _check_propagation(m, spec)
            elif m not in ("rw", "z", "Z"):
                raise InvalidArgument(f"invalid mode: {m} in volume specification '{spec}'")
        if src.startswith("/") or src.startswith("."):
            if nocopy:
                raise InvalidArgument(f"invalid mode: nocopy in volume specification '{spec}' "
                                      "(bind mounts copy nothing)")
            # Docker creates a missing -v source
            plan.append(("bind", os.path.abspath(src), dest, ro, True, prop, mode))
        else:
            if prop:
                raise InvalidArgument(f"invalid mode: {prop} in volume specification '{spec}' "
                                      f"(propagation is for bind mounts)")
            plan.append(("volume", check_volume_name(src), dest, ro, nocopy))
    for spec in opts.mounts:
        kv = {}
        flags = set()
        for item in spec.split(","):
            k, sep, v = item.partition("=")
            if sep:
                kv[k.strip()] = v.strip()
            else:
                flags.add(k.strip())
        typ = kv.get("type", "volume")
        dest = kv.get("target") or kv.get("destination") or kv.get("dst")
        if not dest:
            raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: target is required")
        dest = _check_dest(dest, spec)
        ro = ("readonly" in flags or "ro" in flags or kv.get("readonly") in ("1", "true")
              or kv.get("ro") in ("1", "true"))
        src = kv.get("source") or kv.get("src")
        prop = kv.get("bind-propagation", "")
        if prop and (typ != "bind" or prop not in _PROPAGATIONS):
            raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: "
                                  + (f"invalid propagation mode {prop!r}" if typ == "bind" else
                                     f"bind-propagation is for type=bind, not {typ}"))
        _check_propagation(prop, spec)
        nocopy = "volume-nocopy" in flags or kv.get("volume-nocopy") in ("1", "true")
        if typ == "bind":
            if not src or not os.path.exists(src):
                raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: {src}")
            plan.append(("bind", os.path.abspath(src), dest, ro, False, prop, ""))
        elif typ == "volume":
            if src and src.startswith("."):
                src = os.path.abspath(src)  # as Docker's client does, so the error names the path
            plan.append(("volume", check_volume_name(src) if src else None, dest, ro, nocopy))
        elif typ == "tmpfs":
            o = []
            if "tmpfs-size" in kv:
                o.append(f"size={kv['tmpfs-size']}")
            if "tmpfs-mode" in kv:
                o.append(f"mode={kv['tmpfs-mode']}")
            plan.append(("tmpfs", ",".join(o), dest, ro))
        else:
            raise InvalidArgument(f"invalid argument \"{spec}\" for \"--mount\" flag: unknown mount type {typ!r}")
    for spec in opts.tmpfs:
        dest, _, o = spec.partition(":")
        plan.append(("tmpfs", o, _check_dest(dest, spec), False))
    taken = {p[2] for p in plan}
    borrowed = []
    for m in volumes_from:
        if m.destination not in taken:
            taken.add(m.destination)
            borrowed.append(m)
    for dest in image_volumes:
        dest = os.path.normpath(dest)
        if dest not in taken:
            plan.append(("volume", None, dest, False, False))
    out: list[ContainerMount] = []
    for p in plan:
        if p[0] == "volume":
            name, path, anon = _volume(store, p[1])
            out.append(ContainerMount("volume", path, p[2], readonly=p[3], name=name, anonymous=anon,
                                      nocopy=len(p) > 4 and p[4]))
        elif p[0] == "bind":
            if p[4] and not os.path.exists(p[1]):
                os.makedirs(p[1], exist_ok=True)
            out.append(ContainerMount("bind", p[1], p[2], readonly=p[3], propagation=p[5], options=p[6]))
        else:
            out.append(ContainerMount("tmpfs", "", p[2], readonly=p[3], options=p[1]))
    return borrowed + out


def mounts_from_inspect(doc: dict) -> list:
    """The runtime MountSpecs for a container's recorded Mounts."""
    from lamina.runtime.spec import MountSpec
    out = []
    for m in doc.get("Mounts") or ():
        if m["Type"] in ("bind", "volume"):
            prop = (m.get("Propagation") or "rprivate",) if m["Type"] == "bind" else ()
            out.append(MountSpec("bind", m["Source"], m["Destination"],
                                 ("rbind", "ro" if not m["RW"] else "rw", *prop)))
        else:
            opts = ["nosuid", "nodev"] + [o for o in (m.get("Mode") or "").split(",") if o]
            if not m["RW"]:
                opts.append("ro")
            out.append(MountSpec("tmpfs", "tmpfs", m["Destination"], tuple(opts)))
    return out


def populate(containers, doc: dict, mounts: list[ContainerMount]) -> None:
    """Docker's copy-up: fill every empty volume of ``mounts`` (not ``nocopy``) with what the
    container's image has at its destination, owner and mode of the directory included.

    The image is read through the container's merged root, mounted in a forked child's own
    mount namespace (nothing is mounted on the host), and every path in it is resolved
    inside that root with openat2(RESOLVE_IN_ROOT) (lamina.safepath, lamina.diff.copy): a destination, or a
    symlink under it, that points outside the image reads the image, never the host. Symlinks
    are copied as symlinks, uid/gid and modes kept."""
    todo = [m for m in mounts if m.type == "volume" and not m.nocopy and not os.listdir(m.source)]
    if not todo:
        return
    from lamina import safepath
    from lamina.diff import copy as dcopy  # imported before the fork: the child runs chrooted
    from lamina.runtime.rootfs import with_container_root

    def fill(root: str) -> None:
        import stat
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for m in todo:
                try:
                    fd = safepath.open_in_root(root_fd, m.destination, os.O_PATH)
                except OSError:
                    continue  # nothing there in the image
                try:
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
                if not stat.S_ISDIR(st.st_mode):
                    continue
                dcopy.copy_out(root, m.destination.rstrip("/") + "/.", m.source, archive=True,
                               follow_link=True)
                os.chown(m.source, st.st_uid, st.st_gid)
                os.chmod(m.source, stat.S_IMODE(st.st_mode))
        finally:
            os.close(root_fd)
    code = with_container_root(containers, doc, fill, mounts=False)
    if code:
        from lamina.errors import Unavailable
        raise Unavailable(f"copying the image's content into the volumes of container {doc['Id'][:12]} failed")


def remove_anonymous(store, doc: dict) -> None:
    for m in doc.get("Mounts") or ():
        if m["Type"] == "volume" and (m.get("Lamina") or {}).get("Anonymous"):
            import shutil  # only when there is one: ``run --rm`` without volumes does not import it
            shutil.rmtree(os.path.join(volumes_dir(store), m["Name"]), ignore_errors=True)


# -- the volume verbs ------------------------------------------------------------------------
# volumes/<name>/volume.json (0600): {"CreatedAt", "Labels", "Options"} of a volume made by
# ``volume create``; a volume made by ``run -v``/VOLUME has none (its CreatedAt is the
# directory's mtime, no labels). Written before _data exists is visible to ``volume ls``.

def _meta_path(store, name: str) -> str:
    return os.path.join(volumes_dir(store), name, "volume.json")


def volume_names(store) -> list[str]:
    try:
        names = os.listdir(volumes_dir(store))
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isdir(os.path.join(volumes_dir(store), n, "_data")))


def inspect_volume(store, name: str) -> dict:
    """Docker's ``volume inspect`` document; NotFound in the daemon's words."""
    import json

    from lamina.errors import NotFound
    d = os.path.join(volumes_dir(store), name)
    if not _NAME_RE_OK(name) or not os.path.isdir(os.path.join(d, "_data")):
        raise NotFound(f"get {name}: no such volume")
    try:
        with open(_meta_path(store, name)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        from lamina.timefmt import rfc3339
        meta = {"CreatedAt": rfc3339(os.stat(d).st_mtime).split(".")[0].rstrip("Z") + "Z",
                "Labels": None, "Options": None}
    return {"CreatedAt": meta["CreatedAt"], "Driver": "local", "Labels": meta.get("Labels") or None,
            "Mountpoint": os.path.join(d, "_data"), "Name": name, "Options": meta.get("Options") or None,
            "Scope": "local"}


def _NAME_RE_OK(name: str) -> bool:
    import re
    return bool(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name))


def create_volume(store, name: str | None, *, labels: dict, options: dict, driver: str = "local") -> str:
    """``volume create``: a new named (or anonymous) volume, or the existing one of that
    name (Docker returns it unchanged). Returns its name."""
    import json

    from lamina import perms
    if driver != "local":
        raise InvalidArgument(f"error looking up volume plugin {driver}: plugin \"{driver}\" not found")
    if options:
        raise InvalidArgument(f"lamina's local volumes take no driver options (got {', '.join(sorted(options))})")
    if name is not None:
        check_volume_name(name)
        if os.path.isdir(os.path.join(volumes_dir(store), name, "_data")):
            return name
    from lamina.timefmt import rfc3339
    name = name or os.urandom(32).hex()
    top = volumes_dir(store)
    perms.mkdir(top, exist_ok=True)
    perms.mkdir(os.path.join(top, name), exist_ok=True)
    perms.write_file(_meta_path(store, name), json.dumps(
        {"CreatedAt": rfc3339().split(".")[0].rstrip("Z") + "Z", "Labels": labels, "Options": options}))
    perms.mkdir(os.path.join(top, name, "_data"), perms.VISIBLE_DIR, exist_ok=True)
    from lamina.events import emit
    emit(store.root, "volume", "create", name, {"driver": driver})
    return name


def volume_users(store) -> dict[str, list[str]]:
    """{volume name: [container IDs that mount it]} over every container of the store."""
    import json
    out: dict[str, list[str]] = {}
    for (data,) in store.db.query("SELECT data FROM containers"):
        doc = json.loads(data)
        for m in doc.get("Mounts") or ():
            if m["Type"] == "volume":
                out.setdefault(m["Name"], []).append(doc["Id"])
    return out


def remove_volume(store, name: str, *, force: bool = False) -> None:
    """``volume rm``: Conflict while a container uses it; NotFound (unless ``force``)."""
    import shutil

    from lamina.errors import Conflict, NotFound
    try:
        inspect_volume(store, name)
    except NotFound:
        if force:
            return
        raise
    users = volume_users(store).get(name)
    if users:
        raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
    d = os.path.join(volumes_dir(store), name)
    tmp = os.path.join(volumes_dir(store), f".rm-{os.getpid()}-{name}")
    os.rename(d, tmp)  # gone from ls at once; a crash leaves a dot-dir that the next rm sweeps
    shutil.rmtree(tmp, ignore_errors=True)
    from lamina.events import emit
    emit(store.root, "volume", "destroy", name, {"driver": "local"})


def volume_size(store, name: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(os.path.join(volumes_dir(store), name, "_data")):
        for f in files:
            try:
                st = os.lstat(os.path.join(dirpath, f))
            except OSError:
                continue
            total += st.st_size
    return total


def prune_volumes(store, *, labels: list[str] = ()) -> tuple[list[str], int]:
    """``volume prune`` (Docker 20.10: every local volume no container uses). Returns the
    names removed and the bytes freed."""
    users = volume_users(store)
    removed, freed = [], 0
    for name in volume_names(store):
        if users.get(name):
            continue
        if labels:
            have = inspect_volume(store, name)["Labels"] or {}
            if not all(k in have and (not sep or have[k] == v) for k, sep, v in (l.partition("=") for l in labels)):
                continue
        size = volume_size(store, name)
        remove_volume(store, name)
        removed.append(name)
        freed += size
    for n in os.listdir(volumes_dir(store)) if os.path.isdir(volumes_dir(store)) else ():
        if n.startswith(".rm-"):
            import shutil
            shutil.rmtree(os.path.join(volumes_dir(store), n), ignore_errors=True)
    return removed, freed
