"""Volumes and mounts of containers: ``-v``, ``--mount``, ``--tmpfs`` and the anonymous
volumes an image's VOLUME asks for.

On-disk tree (owned by this module)::

    volumes/<name>/_data     a named or anonymous volume (anonymous: 64-hex name)

A new volume mounted over a path that has content in the image is first filled with that
content (Docker's copy-up), so ``VOLUME /data`` keeps the image's /data files.
"""

from __future__ import annotations

import os
from lamina._dcache import dataclass

from lamina.errors import InvalidArgument


@dataclass(frozen=True)
class ContainerMount:
    type: str           # bind | volume | tmpfs
    source: str         # host path (bind, volume) or "" (tmpfs)
    destination: str
    readonly: bool = False
    name: str = ""      # volume name
    anonymous: bool = False
    options: str = ""   # tmpfs options

    def to_inspect(self) -> dict:
        if self.type == "bind":
            return {"Type": "bind", "Source": self.source, "Destination": self.destination, "Mode": "",
                    "RW": not self.readonly, "Propagation": "rprivate"}
        if self.type == "volume":
            return {"Type": "volume", "Name": self.name, "Source": self.source, "Destination": self.destination,
                    "Driver": "local", "Mode": "z", "RW": not self.readonly, "Propagation": "",
                    "Lamina": {"Anonymous": self.anonymous}}
        return {"Type": "tmpfs", "Source": "", "Destination": self.destination, "Mode": self.options,
                "RW": not self.readonly, "Propagation": ""}


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
        raise InvalidArgument(f"invalid mount config for type \"bind\": invalid mount path: '{dest}' mount path must be absolute ({spec})")
    return os.path.normpath(dest)


def parse_mounts(store, opts, *, image_volumes: list[str]) -> list[ContainerMount]:
    """The mounts of ``-v``, ``--mount``, ``--tmpfs`` and the image's VOLUMEs. Every spec is
    checked before anything is created, so a bad one leaves no volume behind."""
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
        ro = False
        for m in filter(None, mode.split(",")):
            if m == "ro":
                ro = True
            elif m not in ("rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "nocopy"):
                raise InvalidArgument(f"invalid mode: {m} in volume specification '{spec}'")
        if src.startswith("/") or src.startswith("."):
            plan.append(("bind", os.path.abspath(src), dest, ro, True))  # Docker creates a missing -v source
        else:
            plan.append(("volume", check_volume_name(src), dest, ro))
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
        ro = "readonly" in flags or "ro" in flags or kv.get("readonly") in ("1", "true") or kv.get("ro") in ("1", "true")
        src = kv.get("source") or kv.get("src")
        if typ == "bind":
            if not src or not os.path.exists(src):
                raise InvalidArgument(f"invalid mount config for type \"bind\": bind source path does not exist: {src}")
            plan.append(("bind", os.path.abspath(src), dest, ro, False))
        elif typ == "volume":
            if src and src.startswith("."):
                src = os.path.abspath(src)  # as Docker's client does, so the error names the path
            plan.append(("volume", check_volume_name(src) if src else None, dest, ro))
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
    for dest in image_volumes:
        dest = os.path.normpath(dest)
        if dest not in taken:
            plan.append(("volume", None, dest, False))
    out: list[ContainerMount] = []
    for p in plan:
        if p[0] == "volume":
            name, path, anon = _volume(store, p[1])
            out.append(ContainerMount("volume", path, p[2], readonly=p[3], name=name, anonymous=anon))
        elif p[0] == "bind":
            if p[4] and not os.path.exists(p[1]):
                os.makedirs(p[1], exist_ok=True)
            out.append(ContainerMount("bind", p[1], p[2], readonly=p[3]))
        else:
            out.append(ContainerMount("tmpfs", "", p[2], readonly=p[3], options=p[1]))
    return out


def mounts_from_inspect(doc: dict) -> list:
    """The runtime MountSpecs for a container's recorded Mounts."""
    from lamina.runtime.spec import MountSpec
    out = []
    for m in doc.get("Mounts") or ():
        if m["Type"] in ("bind", "volume"):
            out.append(MountSpec("bind", m["Source"], m["Destination"], ("rbind", "ro" if not m["RW"] else "rw")))
        else:
            opts = ["nosuid", "nodev"] + [o for o in (m.get("Mode") or "").split(",") if o]
            if not m["RW"]:
                opts.append("ro")
            out.append(MountSpec("tmpfs", "tmpfs", m["Destination"], tuple(opts)))
    return out


def copy_up(root_layers: list[str], mounts: list[ContainerMount]) -> None:
    """Fill each new, empty volume with the image's content at its destination."""
    import shutil
    for m in mounts:
        if m.type != "volume" or os.listdir(m.source):
            continue
        rel = m.destination.lstrip("/")
        for layer in root_layers:
            src = os.path.join(layer, rel)
            if os.path.isdir(src) and not os.path.islink(src):
                shutil.copytree(src, m.source, symlinks=True, dirs_exist_ok=True)
                st = os.stat(src)
                os.chown(m.source, st.st_uid, st.st_gid)
                os.chmod(m.source, st.st_mode & 0o7777)
                break


def remove_anonymous(store, doc: dict) -> None:
    import shutil
    for m in doc.get("Mounts") or ():
        if m["Type"] == "volume" and (m.get("Lamina") or {}).get("Anonymous"):
            shutil.rmtree(os.path.join(volumes_dir(store), m["Name"]), ignore_errors=True)
