"""``stats`` and ``update``: resource use and limits of containers, as docker/cli prints and
takes them. The readings are lamina.runtime.stats', the changes lamina.runtime.update's."""

from __future__ import annotations

import sys
import time

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument, LaminaError

STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
#: how long between the two readings a CPU % is computed from (dockerd collects every second)
INTERVAL = 1.0


def _row(doc: dict, given: str, prev, cur, *, trunc: bool) -> dict:
    from lamina.cli.units import bytes_size, human_size
    from lamina.runtime.stats import cpu_percent
    cid = doc["Id"]
    row = {"Container": given or (cid[:12] if trunc else cid), "ID": cid[:12] if trunc else cid,
           "Name": doc["Name"].lstrip("/")}
    if cur is None:  # not running: Docker's zeros
        row.update(CPUPerc="0.00%", MemUsage="0B / 0B", MemPerc="0.00%", NetIO="0B / 0B", BlockIO="0B / 0B",
                   PIDs="0")
        return row
    mem_perc = cur.memory / cur.memory_limit * 100 if cur.memory_limit else 0.0
    row.update(CPUPerc=f"{cpu_percent(prev, cur):.2f}%",
               MemUsage=f"{bytes_size(cur.memory)} / {bytes_size(cur.memory_limit)}",
               MemPerc=f"{mem_perc:.2f}%",
               NetIO=f"{human_size(cur.net_rx, 3)} / {human_size(cur.net_tx, 3)}",
               BlockIO=f"{human_size(cur.block_read, 3)} / {human_size(cur.block_write, 3)}",
               PIDs=str(cur.pids))
    return row


def _reading(doc: dict):
    from lamina.runtime.psindex import process_alive
    from lamina.runtime.stats import sample
    st = doc["State"]
    if not st.get("Running") or not process_alive(st.get("Pid"), st.get("PidStart")):
        return None
    mode = doc["HostConfig"].get("NetworkMode") or ""
    parent = (doc.get("Lamina") or {}).get("CgroupParent") or "lamina"  # (containers.cgroup_parent_of)
    return sample(doc["Id"], pid=st["Pid"], network=mode != "host", cgroup_parent=parent)


def cmd_stats(argv, ctx) -> int:
    p = Parser("stats", "[OPTIONS] [CONTAINER...]", "Display a live stream of container(s) resource usage statistics")
    p.flag("-a", "--all", help="Show all containers (default shows just running)")
    p.option("--format", help="Pretty-print images using a Go template")
    p.flag("--no-stream", help="Disable streaming stats and only pull the first result")
    p.flag("--no-trunc", help="Do not truncate output")
    p.args("containers")
    a = parse(p, argv)
    from lamina.cli.table import format_table
    from lamina.runtime.containers import Containers
    cs = Containers(ctx.store)
    named = list(a.containers)
    fmt = a.format or STATS_TABLE
    if fmt == "table":
        fmt = STATS_TABLE
    rc = 0
    first = True
    prev: dict[str, object] = {}
    while True:
        if named:
            docs = []
            for ref in named:
                try:
                    docs.append((cs.get(ref), ref))
                except LaminaError as e:
                    sys.stderr.write(f"Error: {e}\n")
                    rc = 1
            if not docs:
                return rc
        else:
            docs = [(d, "") for d in sorted(cs.all(), key=lambda d: d["Created"], reverse=True)
                    if a.all or d["State"].get("Running")]
        cur = {d["Id"]: _reading(d) for d, _ in docs}
        if first:  # a CPU % needs two readings
            first = False
            prev = cur
            time.sleep(INTERVAL)
            cur = {d["Id"]: _reading(d) for d, _ in docs}
        rows = [_row(d, given, prev.get(d["Id"]), cur[d["Id"]], trunc=not a.no_trunc) for d, given in docs]
        out = format_table(rows, fmt, headers=STATS_HEADERS, type_name="*formatter.statsContext")
        if not a.no_stream:
            out = "\x1b[2J\x1b[H" + out
        sys.stdout.write(out)
        sys.stdout.flush()
        if a.no_stream:
            return rc
        prev = cur
        time.sleep(INTERVAL)


def cmd_update(argv, ctx) -> int:
    p = Parser("update", "[OPTIONS] CONTAINER [CONTAINER...]", "Update configuration of one or more containers")
    p.option("-c", "--cpu-shares", metavar="int", help="CPU shares (relative weight)")
    p.option("--cpus", metavar="decimal", help="Number of CPUs")
    p.option("--cpuset-cpus", metavar="string", help="CPUs in which to allow execution (0-3, 0,1)")
    p.option("--cpuset-mems", metavar="string", help="MEMs in which to allow execution (0-3, 0,1)")
    p.option("-m", "--memory", metavar="bytes", help="Memory limit")
    p.option("--memory-reservation", metavar="bytes", help="Memory soft limit")
    p.option("--memory-swap", metavar="bytes",
             help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    p.option("--pids-limit", metavar="int", help="Tune container pids limit (set -1 for unlimited)")
    p.option("--restart", metavar="string", help="Restart policy to apply when a container exits")
    p.args("containers", min=1)
    a = parse(p, argv)
    from lamina.cli.args import go_int, nano_cpus
    from lamina.runtime.update import Update, update

    def size(v, flag):
        if v is None:
            return None
        if v == "-1" and flag == "--memory-swap":
            return -1
        from lamina.cli.units import parse_size
        try:
            return parse_size(v)
        except InvalidArgument as e:
            raise InvalidArgument(f'invalid argument "{v}" for "{flag}" flag: {e}') from None
    u = Update(memory=size(a.memory, "-m, --memory"), memory_swap=size(a.memory_swap, "--memory-swap"),
               memory_reservation=size(a.memory_reservation, "--memory-reservation"),
               nano_cpus=nano_cpus(a.cpus) if a.cpus is not None else 0,
               cpu_shares=go_int(a.cpu_shares, "-c, --cpu-shares") if a.cpu_shares is not None else 0,
               cpuset_cpus=a.cpuset_cpus or "", cpuset_mems=a.cpuset_mems or "",
               pids_limit=go_int(a.pids_limit, "--pids-limit") if a.pids_limit is not None else None,
               restart=a.restart)
    if u.empty():
        e = InvalidArgument("you must provide one or more flags when using this command")
        e.exit_code = 1
        raise e
    from lamina.runtime.containers import Containers
    cs = Containers(ctx.store)
    rc = 0
    for ref in a.containers:
        try:
            update(cs, cs.get(ref), u)
            print(ref)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1
    return rc
