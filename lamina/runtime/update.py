"""``update``: change the resource limits and restart policy of a container, running or not.

The new values are merged into the record's ``HostConfig`` with dockerd's rules
(daemon/update.go): only the fields given change; a memory limit above the recorded
memory+swap limit needs ``--memory-swap`` too; ``--cpus`` and ``--cpu-shares``/``--cpuset-*``
replace what was there; ``--pids-limit`` 0 or -1 means unlimited; a restart policy cannot be
set on a ``--rm`` container (dockerd accepts a reservation above the limit; so does the kernel).
A running container's cgroups get the same values at once
(lamina.runtime.launcher.cgroups.update_resources), before the record changes: a value
the kernel refuses leaves the record as it was. A stopped container takes them at its
next start (its cgroups are made from the record).
"""

from __future__ import annotations

from lamina.errors import Conflict, InvalidArgument, LaminaError
from lamina.values import value


@value(kw_only=True)
class Update:
    """What ``update`` was asked to change (None / 0 / "": leave as it is)."""

    memory: int | None = None
    memory_swap: int | None = None        # -1: unlimited
    memory_reservation: int | None = None
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None         # <= 0: unlimited
    restart: str | None = None

    def empty(self) -> bool:
        return (self.memory is None and self.memory_swap is None and self.memory_reservation is None
                and not self.nano_cpus and not self.cpu_shares and not self.cpuset_cpus and not self.cpuset_mems
                and self.pids_limit is None and self.restart is None)


class UpdateError(LaminaError):
    """dockerd's ``Cannot update container <id>: ...``."""


def update(containers, doc: dict, u: Update) -> dict:
    """Apply ``u`` to the container ``doc`` (see the module docstring); returns the record."""
    from lamina.runtime import launcher
    from lamina.runtime.containers import cgroup_parent_of, check_cpuset, parse_restart
    cid = doc["Id"]

    def refuse(msg: str) -> UpdateError:
        return UpdateError(f"Cannot update container {cid}: {msg}")
    hc = dict(doc["HostConfig"])
    if u.memory is not None:
        if u.memory < 6 << 20:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        swap = hc.get("MemorySwap") or 0
        if u.memory > swap and not u.memory_swap:  # dockerd's rule, -1 (unlimited) included
            raise refuse("Memory limit should be smaller than already set memoryswap limit, "
                         "update the memoryswap at the same time")
        hc["Memory"] = u.memory
    if u.memory_swap:
        if u.memory_swap != -1 and u.memory_swap < (hc.get("Memory") or 0):
            raise refuse("Minimum memoryswap limit should be larger than memory limit, see usage")
        if not hc.get("Memory"):
            raise refuse("You should always set the Memory limit when using Memoryswap limit, see usage")
        hc["MemorySwap"] = u.memory_swap
    if u.memory_reservation is not None:
        hc["MemoryReservation"] = u.memory_reservation
    if u.nano_cpus:
        hc["NanoCpus"] = u.nano_cpus
    if u.cpu_shares:
        hc["CpuShares"] = u.cpu_shares
    if u.cpuset_cpus:
        check_cpuset(u.cpuset_cpus, "cpus")
        hc["CpusetCpus"] = u.cpuset_cpus
    if u.cpuset_mems:
        check_cpuset(u.cpuset_mems, "mems")
        hc["CpusetMems"] = u.cpuset_mems
    if u.pids_limit is not None:
        hc["PidsLimit"] = u.pids_limit if u.pids_limit > 0 else None
    if u.restart is not None:
        name, count = parse_restart(u.restart)
        if hc.get("AutoRemove") and name != "no":
            raise refuse("Restart policy cannot be updated because AutoRemove is enabled for the container")
        hc["RestartPolicy"] = {"Name": name, "MaximumRetryCount": count}
    st = doc["State"]
    if st.get("Running") and (doc["HostConfig"].get("Runtime") or "builtin") in ("builtin", "lamina"):
        res = _resources(u, hc)
        if res:
            try:
                launcher.update_resources(cid, res, cgroup_parent=cgroup_parent_of(doc))
            except LaminaError as e:
                raise refuse(str(e)) from None
    elif st.get("Running"):
        raise Conflict(f"Cannot update container {cid}: the resources of a container of runtime "
                       f"{doc['HostConfig']['Runtime']} are updated by that runtime; stop it first")

    def apply(d: dict) -> None:
        d["HostConfig"].update({k: hc[k] for k in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus",
                                                   "CpuShares", "CpusetCpus", "CpusetMems", "PidsLimit",
                                                   "RestartPolicy") if k in hc})
    doc = containers.update(cid, apply)
    containers.event(doc, "update")
    return doc


def _resources(u: Update, hc: dict) -> dict:
    """The OCI resources to write into a running container's cgroups for ``u``."""
    res: dict = {}
    mem: dict = {}
    if u.memory is not None:
        mem["limit"] = u.memory
        mem["swap"] = hc.get("MemorySwap") or -1
    if u.memory_swap:
        mem["swap"] = u.memory_swap
        mem.setdefault("limit", hc.get("Memory") or -1)
    if u.memory_reservation is not None:
        mem["reservation"] = u.memory_reservation
    if mem:
        res["memory"] = mem
    cpu: dict = {}
    if u.nano_cpus:
        cpu.update(quota=u.nano_cpus * 100000 // 1_000_000_000, period=100000)
    if u.cpu_shares:
        cpu["shares"] = u.cpu_shares
    if u.cpuset_cpus:
        cpu["cpus"] = u.cpuset_cpus
    if u.cpuset_mems:
        cpu["mems"] = u.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if u.pids_limit is not None:
        res["pids"] = {"limit": u.pids_limit if u.pids_limit > 0 else -1}
    return res
