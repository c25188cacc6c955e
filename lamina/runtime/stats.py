"""``stats``: a running container's resource use, read where the kernel keeps it.

- CPU: the cgroup's CPU time (v1 ``cpuacct.usage``, v2 ``cpu.stat`` usage_usec) and the
  host's (``/proc/stat``, the first seven fields, in ns), sampled twice; Docker's CPU % is
  ``container delta / host delta * online CPUs * 100``.
- memory: usage without the inactive page cache (v1 ``memory.usage_in_bytes`` minus
  ``total_inactive_file``; v2 ``memory.current`` minus ``inactive_file``), the limit capped
  at the host's memory (as dockerd caps it).
- block I/O: bytes read and written (v1 ``blkio.throttle.io_service_bytes_recursive``, or
  the CFQ file when it has entries; v2 ``io.stat`` rbytes/wbytes).
- network: bytes received and sent by the interfaces of the container's network namespace
  but ``lo`` (``/proc/<init>/net/dev``); a container on the host's network shows none, as
  in Docker.
- PIDs: ``pids.current``.
Read-only; nothing here writes.
"""

from __future__ import annotations

import os

from lamina.values import value


@value(kw_only=True)
class Sample:
    """One reading of a container (``cpu`` and ``system`` in ns, for deltas)."""

    cpu: int = 0
    system: int = 0
    online_cpus: int = 1
    memory: int = 0
    memory_limit: int = 0
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0
    pids: int = 0


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _int(path: str) -> int:
    text = _read(path)
    try:
        return int((text or "0").split()[0])
    except (ValueError, IndexError):
        return 0


def _kv(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v)
        except ValueError:
            pass
    return out


def system_cpu() -> int:
    """The host's CPU time in ns (dockerd's getSystemCPUUsage: user..softirq of /proc/stat)."""
    text = _read("/proc/stat") or ""
    for line in text.splitlines():
        if line.startswith("cpu "):
            ticks = sum(int(x) for x in line.split()[1:8])
            return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return 0


def host_memory() -> int:
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _net(pid: int) -> tuple[int, int]:
    rx = tx = 0
    text = _read(f"/proc/{pid}/net/dev") or ""
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        if name.strip() == "lo":
            continue
        f = rest.split()
        if len(f) >= 9:
            rx += int(f[0])
            tx += int(f[8])
    return rx, tx


def sample(container_id: str, *, pid: int, network: bool, cgroup_parent: str = "lamina") -> Sample:
    """Read the container's counters now (zeros for a file that is not there)."""
    from lamina.runtime.launcher.cgroups import _dir_for, _is_v2, cgroup_dirs
    dirs = cgroup_dirs(f"/{cgroup_parent}/{container_id}")
    mem_total = host_memory()
    ncpu = os.sysconf("SC_NPROCESSORS_ONLN") or 1
    if _is_v2():
        d = dirs[""]
        cpu = _kv(_read(os.path.join(d, "cpu.stat"))).get("usage_usec", 0) * 1000
        mstat = _kv(_read(os.path.join(d, "memory.stat")))
        usage = _int(os.path.join(d, "memory.current"))
        inactive = mstat.get("inactive_file", 0)
        limit_text = (_read(os.path.join(d, "memory.max")) or "max").strip()
        limit = mem_total if limit_text == "max" else int(limit_text)
        rd = wr = 0
        for line in (_read(os.path.join(d, "io.stat")) or "").splitlines():
            for item in line.split()[1:]:
                k, _, v = item.partition("=")
                if k == "rbytes":
                    rd += int(v)
                elif k == "wbytes":
                    wr += int(v)
        pids = _int(os.path.join(d, "pids.current"))
    else:
        cd = _dir_for(dirs, "cpuacct")
        cpu = _int(os.path.join(cd, "cpuacct.usage")) if cd else 0
        md = _dir_for(dirs, "memory")
        usage = _int(os.path.join(md, "memory.usage_in_bytes")) if md else 0
        mstat = _kv(_read(os.path.join(md, "memory.stat"))) if md else {}
        inactive = mstat.get("total_inactive_file", mstat.get("inactive_file", 0))
        limit = _int(os.path.join(md, "memory.limit_in_bytes")) if md else 0
        bd = _dir_for(dirs, "blkio")
        rd = wr = 0
        if bd:
            text = _read(os.path.join(bd, "blkio.io_service_bytes_recursive")) or ""
            if not any(len(line.split()) == 3 for line in text.splitlines()):
                text = _read(os.path.join(bd, "blkio.throttle.io_service_bytes_recursive")) or ""
            for line in text.splitlines():
                f = line.split()
                if len(f) == 3 and f[1].lower() == "read":
                    rd += int(f[2])
                elif len(f) == 3 and f[1].lower() == "write":
                    wr += int(f[2])
        pd = _dir_for(dirs, "pids")
        pids = _int(os.path.join(pd, "pids.current")) if pd else 0
    if mem_total and (limit <= 0 or limit > mem_total):
        limit = mem_total
    if inactive < usage:
        usage -= inactive
    rx, tx = _net(pid) if network and pid else (0, 0)
    return Sample(cpu=cpu, system=system_cpu(), online_cpus=ncpu, memory=usage, memory_limit=limit,
                  net_rx=rx, net_tx=tx, block_read=rd, block_write=wr, pids=pids)


def cpu_percent(prev: Sample | None, cur: Sample) -> float:
    """Docker's CPU %: the container's share of the host's CPU time between two samples,
    times the online CPUs."""
    if prev is None:
        return 0.0
    cpu_delta = cur.cpu - prev.cpu
    sys_delta = cur.system - prev.system
    if cpu_delta <= 0 or sys_delta <= 0:
        return 0.0
    return cpu_delta / sys_delta * cur.online_cpus * 100.0
