"""cgroups on the host side, in the caller: v1 hierarchies (and the hybrid ``unified`` one) or
v2; limits, Docker's device allow-list, the freezer (pause/unpause) and the pids a container
holds (top); removal after exit.
"""

from __future__ import annotations

import errno as _errno
import os
import time

from lamina.errors import InvalidArgument, NotFound, Unavailable
from lamina.runtime.launcher.base import _CGROUP_ROOT, _V1_CONTROLLERS

# ---------------------------------------------------------------------------------------------
# cgroups (host side)

_v1_cache: dict[str, str] | None = None


def _v1_hierarchies() -> dict[str, str]:
    """Mounted cgroup v1 hierarchies: mount point -> superblock options (controllers),
    plus the hybrid v2 ``unified`` one with value ``""``."""
    global _v1_cache
    if _v1_cache is None:
        out: dict[str, str] = {}
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    left, _, right = line.partition(" - ")
                    fields = right.split()
                    if len(fields) < 3:
                        continue
                    point = left.split()[4]
                    if not point.startswith(_CGROUP_ROOT + "/"):
                        continue
                    if fields[0] == "cgroup":
                        opts = [o for o in fields[2].split(",")
                                if o in _V1_CONTROLLERS or o.startswith("name=")]
                        if opts:
                            out[point] = ",".join(opts)
                    elif fields[0] == "cgroup2":
                        out[point] = ""
        except OSError:
            pass
        _v1_cache = out
    return _v1_cache


def _is_v2() -> bool:
    return os.path.exists(_CGROUP_ROOT + "/cgroup.controllers")


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def cgroup_dirs(cgroups_path: str) -> dict[str, str]:
    """Host directories of ``cgroups_path`` (e.g. ``/lamina/<id>``): controller -> dir.

    v1 keys are each hierarchy's controllers (``"memory"``, ``"cpu,cpuacct"``,
    ``"name=systemd"``, ``""`` for the hybrid unified one); v2 has the single key ``""``.
    """
    rel = cgroups_path.strip("/")
    if _is_v2():
        return {"": os.path.join(_CGROUP_ROOT, rel)}
    return {ctl: os.path.join(point, rel) for point, ctl in _v1_hierarchies().items()}


def _dir_for(dirs: dict[str, str], controller: str) -> str | None:
    for ctl, d in dirs.items():
        if controller in ctl.split(","):
            return d
    return None


class _Cgroup:
    """A container's cgroups: created with limits before the fork, removed after exit."""

    def __init__(self, cgroups_path: str, resources: dict) -> None:
        self.path = cgroups_path
        self.dirs = cgroup_dirs(cgroups_path)
        self.created: list[str] = []
        self.v2 = _is_v2()
        # Joined by P2 itself writing "0" (its only thread) into each v1 ``tasks`` file: a
        # single-thread move of the caller skips the global threadgroup rwsem, whose write
        # side waits for an RCU grace period (3-15 ms) on every cgroup.procs write.
        self.tasks: list[str] = []
        # cgroup.procs of v2 / the hybrid unified tree: a v2 domain cgroup only takes whole
        # processes, so these pay that grace period; P1 writes P2's pid into them while P2
        # is busy with its namespaces and mounts.
        self.procs: list[str] = []
        try:
            self._create(resources or {})
        except BaseException:
            self.remove()
            raise

    def _mkdirs(self, d: str, top: str, copy_cpuset: bool) -> None:
        rel = os.path.relpath(d, top).split("/")
        cur = top
        for part in rel:
            parent, cur = cur, os.path.join(cur, part)
            try:
                os.mkdir(cur)
            except FileExistsError:
                continue
            self.created.append(cur)
            if copy_cpuset:
                for f in ("cpuset.cpus", "cpuset.mems"):
                    try:
                        with open(os.path.join(parent, f)) as src:
                            v = src.read().strip()
                        _write(os.path.join(cur, f), v or "\n")
                    except OSError:
                        pass

    def _create(self, res: dict) -> None:
        mem = (res.get("memory") or {}).get("limit")
        cpu = res.get("cpu") or {}
        pids = (res.get("pids") or {}).get("limit")
        devices = res.get("devices")
        if self.v2:
            d = self.dirs[""]
            avail = _v2_controllers()
            for need, ctl in ((mem, "memory"), (cpu.get("quota") or cpu.get("shares"), "cpu"), (pids, "pids"),
                              (cpu.get("cpus") or cpu.get("mems"), "cpuset")):
                if need is not None and ctl not in avail:
                    raise Unavailable(f"the {ctl} limit needs the cgroup v2 {ctl} controller, "
                                      "which this host does not enable")
            self._mkdirs(d, _CGROUP_ROOT, False)
            want = [c for c in ("cpuset", "memory", "cpu", "pids") if c in avail]
            parents, cur = [_CGROUP_ROOT], _CGROUP_ROOT
            for part in os.path.relpath(d, _CGROUP_ROOT).split("/")[:-1]:
                cur = os.path.join(cur, part)
                parents.append(cur)
            for parent in parents:
                try:
                    _write(os.path.join(parent, "cgroup.subtree_control"),
                           " ".join("+" + c for c in want))
                except OSError:
                    pass
            apply_resources(self.dirs, res, v2=True)
            self.procs = [os.path.join(d, "cgroup.procs")]
            return
        for need, ctl in ((mem, "memory"), (cpu.get("quota") or cpu.get("shares"), "cpu"),
                          (pids, "pids"), (cpu.get("cpus") or cpu.get("mems"), "cpuset")):
            if need is not None and _dir_for(self.dirs, ctl) is None:
                raise Unavailable(f"the {ctl} limit needs the cgroup v1 {ctl} controller, "
                                  f"which is not mounted under {_CGROUP_ROOT}")
        for ctl, d in self.dirs.items():
            top = d[: len(d) - len(self.path.strip("/")) - 1]
            self._mkdirs(d, top, "cpuset" in ctl.split(","))
            if ctl:
                self.tasks.append(os.path.join(d, "tasks"))
            else:
                self.procs.append(os.path.join(d, "cgroup.procs"))
        apply_resources(self.dirs, res, v2=False)
        d = _dir_for(self.dirs, "devices")
        if devices is not None and d is not None:
            try:
                for rule in devices:
                    typ = rule.get("type", "a")
                    major = "*" if rule.get("major") is None else str(rule["major"])
                    minor = "*" if rule.get("minor") is None else str(rule["minor"])
                    line = "a" if typ == "a" and major == minor == "*" else \
                        f"{typ} {major}:{minor} {rule.get('access', 'rwm')}"
                    _write(os.path.join(d, "devices.allow" if rule.get("allow")
                                        else "devices.deny"), line)
            except OSError as e:
                raise Unavailable(f"cgroup setup of {self.path} failed: {e.strerror}: "
                                  f"{e.filename or ''}") from e

    def join_pid(self, pid: int) -> None:
        """Move process ``pid`` into the v2 / hybrid unified cgroup (P1, for P2)."""
        for p in self.procs:
            _write(p, str(pid))

    def join_self(self) -> None:
        """Move the calling single-threaded process into the v1 cgroups (P2 itself)."""
        for p in self.tasks:
            _write(p, "0")

    def remove(self) -> None:
        """Remove the container's cgroup dirs (never the shared parent). Best effort: a
        cgroup whose last task is still exiting is retried for up to ~0.2 s."""
        leaf = os.path.basename(self.path.rstrip("/"))
        for d in reversed(self.created):
            if os.path.basename(d) != leaf:
                continue
            for _i in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != _errno.EBUSY:
                        break
                    time.sleep(0.002)


def _v2_controllers() -> set[str]:
    try:
        with open(os.path.join(_CGROUP_ROOT, "cgroup.controllers")) as f:
            return set(f.read().split())
    except OSError:
        return set()


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares as v2 cpu.weight (runc's conversion)."""
    return 1 + ((shares - 2) * 9999) // 262142 if shares else 0


def apply_resources(dirs: dict[str, str], res: dict, *, v2: bool) -> None:
    """Write the OCI ``resources`` (memory limit/swap/reservation/OOM killer, cpu quota/
    shares/cpuset, pids) into existing cgroup ``dirs`` (a start, or ``update`` of a running
    container). A value of 0 (or None) for a limit leaves it as it is; ``-1`` for memory,
    swap and pids means unlimited. Unavailable names the file a write failed on."""
    mem = res.get("memory") or {}
    cpu = res.get("cpu") or {}
    pids = (res.get("pids") or {}).get("limit")
    try:
        if v2:
            d = dirs[""]
            if mem.get("limit") is not None:
                _write(os.path.join(d, "memory.max"), "max" if mem["limit"] == -1 else str(mem["limit"]))
                swap = mem.get("swap")
                if swap is not None and os.path.exists(os.path.join(d, "memory.swap.max")):
                    _write(os.path.join(d, "memory.swap.max"),
                           "max" if swap == -1 or mem["limit"] == -1 else str(max(0, swap - mem["limit"])))
            if mem.get("reservation") is not None:
                _write(os.path.join(d, "memory.low"), str(mem["reservation"]))
            if cpu.get("quota") is not None:
                _write(os.path.join(d, "cpu.max"),
                       f"{'max' if cpu['quota'] == -1 else cpu['quota']} {cpu.get('period') or 100000}")
            if cpu.get("shares"):
                _write(os.path.join(d, "cpu.weight"), str(shares_to_weight(int(cpu["shares"]))))
            if cpu.get("cpus"):
                _write(os.path.join(d, "cpuset.cpus"), cpu["cpus"])
            if cpu.get("mems"):
                _write(os.path.join(d, "cpuset.mems"), cpu["mems"])
            if pids is not None:
                _write(os.path.join(d, "pids.max"), "max" if pids == -1 else str(pids))
            return
        md = _dir_for(dirs, "memory")
        if md is not None:
            limit, swap = mem.get("limit"), mem.get("swap")
            memsw = os.path.join(md, "memory.memsw.limit_in_bytes")
            has_swap = os.path.exists(memsw)
            if limit is not None:
                # memory+swap must stay >= memory: raise swap first when the limit grows
                cur = _read_int(os.path.join(md, "memory.limit_in_bytes"))
                if swap is not None and has_swap and (limit == -1 or (cur is not None and limit > cur)):
                    _write(memsw, str(swap))
                    _write(os.path.join(md, "memory.limit_in_bytes"), str(limit))
                else:
                    _write(os.path.join(md, "memory.limit_in_bytes"), str(limit))
                    # a kernel without swap accounting has no memsw file: swap stays unlimited, as Docker warns
                    if swap is not None and has_swap:
                        _write(memsw, str(swap))
            elif swap is not None and has_swap:
                _write(memsw, str(swap))
            if mem.get("reservation") is not None:
                _write(os.path.join(md, "memory.soft_limit_in_bytes"), str(mem["reservation"]))
            if mem.get("disableOOMKiller"):
                _write(os.path.join(md, "memory.oom_control"), "1")
        cd = _dir_for(dirs, "cpu")
        if cd is not None:
            if cpu.get("shares"):
                _write(os.path.join(cd, "cpu.shares"), str(cpu["shares"]))
            if cpu.get("quota") is not None:
                _write(os.path.join(cd, "cpu.cfs_period_us"), str(cpu.get("period") or 100000))
                _write(os.path.join(cd, "cpu.cfs_quota_us"), str(cpu["quota"]))
        sd = _dir_for(dirs, "cpuset")
        if sd is not None:
            if cpu.get("cpus"):
                _write(os.path.join(sd, "cpuset.cpus"), cpu["cpus"])
            if cpu.get("mems"):
                _write(os.path.join(sd, "cpuset.mems"), cpu["mems"])
        pd = _dir_for(dirs, "pids")
        if pids is not None and pd is not None:
            _write(os.path.join(pd, "pids.max"), "max" if pids == -1 else str(pids))
    except OSError as e:
        raise Unavailable(f"cgroup setup failed: {e.strerror}: {e.filename or ''}") from e


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def update_resources(container_id: str, res: dict, *, cgroup_parent: str) -> None:
    """``update`` of a running container: :func:`apply_resources` on its cgroups.
    NotFound when it has none (not running)."""
    dirs = cgroup_dirs(f"/{cgroup_parent}/{container_id}")
    if not any(os.path.isdir(d) for d in dirs.values()):
        raise NotFound(f"no cgroup for container {container_id}: is it running?")
    apply_resources(dirs, res, v2=_is_v2())


def default_cgroup_parent() -> str:
    """The parent cgroup of a container that names none (``--cgroup-parent``):
    ``$LAMINA_CGROUP_PARENT`` (what dockerd's ``--cgroup-parent`` option is to Docker),
    else ``lamina``. Relative to each hierarchy's root, leading/trailing ``/`` ignored."""
    return os.environ.get("LAMINA_CGROUP_PARENT", "").strip("/") or "lamina"


def check_cgroup_parent(value: str) -> str:
    """A ``--cgroup-parent`` value in canonical form (no leading/trailing ``/``); raises
    InvalidArgument for one that would leave the hierarchy (``..``) or is not a path."""
    parts = value.strip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or "\0" in value:
        raise InvalidArgument(f"invalid --cgroup-parent {value!r}: want a cgroup path such as "
                              "lamina or /ci/run-1 (no empty, . or .. parts)")
    return "/".join(parts)


def remove_cgroups(container_id: str, *, cgroup_parent: str | None = None) -> None:
    """Remove the container's cgroup dirs left behind when the process that ran :func:`run`
    was killed (run() removes them itself otherwise). Idempotent; a cgroup that still has
    processes stays (Unavailable is not raised: the caller checks :func:`pids` first)."""
    cgroup_parent = cgroup_parent or default_cgroup_parent()
    for d in cgroup_dirs(f"/{cgroup_parent}/{container_id}").values():
        try:
            os.rmdir(d)
        except OSError:
            pass


def _freezer_state(container_id: str, cgroup_parent: str) -> str:
    if _is_v2():
        return os.path.join(_CGROUP_ROOT, cgroup_parent, container_id)
    d = _dir_for(cgroup_dirs(f"/{cgroup_parent}/{container_id}"), "freezer")
    if d is None:
        raise Unavailable("pause needs the cgroup v1 freezer controller, which is not mounted")
    return d


def _set_frozen(container_id: str, frozen: bool, cgroup_parent: str) -> None:
    d = _freezer_state(container_id, cgroup_parent)
    if not os.path.isdir(d):
        raise NotFound(f"no cgroup for container {container_id} ({d}): is it running?")
    if _is_v2():
        _write(os.path.join(d, "cgroup.freeze"), "1" if frozen else "0")
        return
    want = "FROZEN" if frozen else "THAWED"
    for _ in range(1000):
        _write(os.path.join(d, "freezer.state"), want)
        with open(os.path.join(d, "freezer.state")) as f:
            if f.read().strip() == want:
                return
        time.sleep(0.001)
    raise Unavailable(f"cgroup freezer of {container_id} did not reach {want}")


def freeze(container_id: str, *, cgroup_parent: str | None = None) -> None:
    """Freeze every process of the container (``docker pause``). Idempotent."""
    _set_frozen(container_id, True, cgroup_parent or default_cgroup_parent())


def thaw(container_id: str, *, cgroup_parent: str | None = None) -> None:
    """Thaw a frozen container (``docker unpause``). Idempotent."""
    _set_frozen(container_id, False, cgroup_parent or default_cgroup_parent())


def pids(container_id: str, *, cgroup_parent: str | None = None) -> list[int]:
    """Host pids of every process in the container's cgroup (``docker top``), sorted.
    Raises NotFound if the container has no cgroup (not running)."""
    dirs = cgroup_dirs(f"/{cgroup_parent or default_cgroup_parent()}/{container_id}")
    for ctl in ("pids", "freezer", "memory", ""):
        d = dirs.get("") if ctl == "" else _dir_for(dirs, ctl)
        if d and os.path.isdir(d):
            with open(os.path.join(d, "cgroup.procs")) as f:
                return sorted(int(x) for x in f.read().split())
    raise NotFound(f"no cgroup for container {container_id}: is it running?")
