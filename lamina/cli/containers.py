"""Container verbs: run, create, start, ps, stop, kill, rm, restart, wait, rename, pause,
unpause, logs, attach, exec, top, port, commit, diff, cp, export (and the ``container``
group). Parsing and output only; the work is in lamina.runtime and lamina.diff."""

from __future__ import annotations

import os
import sys
import time

from lamina.cli.args import Parser, parse
from lamina.errors import Conflict, InvalidArgument, LaminaError, need_root

PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.CreatedAt}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED",
              "RunningFor": "CREATED", "Status": "STATUS", "Ports": "PORTS", "Names": "NAMES",
              "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS", "State": "STATE"}


def cmd_container_inspect(argv, ctx) -> int:
    """``container inspect``: ``inspect --type container``."""
    from lamina.cli.images import cmd_inspect
    return cmd_inspect(["--type", "container", *argv], ctx)


def _containers(ctx):
    from lamina.runtime.containers import Containers
    return Containers(ctx.store)


# -- create / run ----------------------------------------------------------------------
def _create_parser(verb: str) -> Parser:
    p = Parser(verb, "[OPTIONS] IMAGE [COMMAND] [ARG...]",
               "Create and run a new container from an image" if verb == "run" else "Create a new container",
               interspersed=False)
    p.flag("-i", "--interactive", help="Keep STDIN open even if not attached")
    p.flag("-t", "--tty", help="Allocate a pseudo-TTY")
    if verb == "run":
        p.flag("-d", "--detach", help="Run container in background and print container ID")
        p.flag("--sig-proxy", default=True, help="Proxy received signals to the process (default true)")
    p.flag("--rm", help="Automatically remove the container when it exits")
    p.option("--name", help="Assign a name to the container")
    p.option("-e", "--env", append=True, metavar="list", help="Set environment variables")
    p.option("--env-file", append=True, metavar="list", help="Read in a file of environment variables")
    p.option("-w", "--workdir", help="Working directory inside the container")
    p.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    p.option("-v", "--volume", append=True, metavar="list", help="Bind mount a volume")
    p.option("--mount", append=True, metavar="mount", help="Attach a filesystem mount to the container")
    p.option("--tmpfs", append=True, metavar="list", help="Mount a tmpfs directory")
    p.flag("--read-only", help="Mount the container's root filesystem as read only")
    p.option("-h", "--hostname", help="Container host name")
    p.option("--network", "--net", default="default", metavar="network",
             help="Connect a container to a network: bridge (the default), a user network, none (only lo), "
                  "host (the host's own network, loopback services included) or container:<name|id>")
    p.option("--network-alias", "--net-alias", append=True, metavar="list",
             help="Add network-scoped alias for the container")
    p.option("--ip", metavar="string", help="IPv4 address (e.g., 172.30.100.104)")
    p.option("-p", "--publish", append=True, metavar="list", help="Publish a container's port(s) to the host")
    p.flag("-P", "--publish-all", help="Publish all exposed ports to random ports")
    p.option("--expose", append=True, metavar="list", help="Expose a port or a range of ports")
    p.option("--add-host", append=True, metavar="list", help="Add a custom host-to-IP mapping (host:ip)")
    p.option("--dns", append=True, metavar="list", help="Set custom DNS servers")
    p.option("--dns-search", append=True, metavar="list", help="Set custom DNS search domains")
    p.option("--dns-option", "--dns-opt", append=True, metavar="list", help="Set DNS options")
    p.option("--domainname", metavar="string", help="Container NIS domain name")
    p.flag("--init", help="Run an init inside the container that forwards signals and reaps processes")
    p.option("--stop-signal", help="Signal to stop the container")
    p.option("--stop-timeout", metavar="int", help="Timeout (in seconds) to stop a container")
    p.option("--restart", default="no", help="Restart policy to apply when a container exits (default \"no\")")
    p.option("--cap-add", append=True, metavar="list", help="Add Linux capabilities")
    p.option("--cap-drop", append=True, metavar="list", help="Drop Linux capabilities")
    p.flag("--privileged", help="Give extended privileges to this container")
    p.option("--security-opt", append=True, metavar="list", help="Security Options")
    p.option("-m", "--memory", metavar="bytes", help="Memory limit")
    p.option("--memory-swap", metavar="bytes",
             help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap (default: twice --memory)")
    p.option("--cpus", metavar="decimal", help="Number of CPUs")
    p.option("--pids-limit", metavar="int", help="Tune container pids limit (set -1 for unlimited)")
    p.option("--cgroup-parent", default="", help="Optional parent cgroup for the container")
    p.option("--ulimit", append=True, metavar="ulimit", help="Ulimit options")
    p.option("--shm-size", metavar="bytes", help="Size of /dev/shm")
    p.option("-l", "--label", append=True, metavar="list", help="Set meta data on a container")
    p.option("--detach-keys", help="Override the key sequence for detaching a container")
    p.option("--runtime", default="builtin", help="Runtime to use for this container: builtin, runc or crun")
    p.option("--pull", default="missing", help='Pull image before running ("always", "missing", "never") '
                                               '(default "missing")')
    p.args("args", min=1)
    return p


def _ensure_image(ctx, a) -> None:
    """Docker's --pull policy: a missing image is pulled (its progress on stderr, as
    ``docker run`` shows it). A failed pull is an engine error (125), as in Docker."""
    from lamina.registry.ensure import ensure_image
    try:
        ensure_image(ctx.store, a.args[0], policy=a.pull, announce=sys.stderr, out=sys.stderr)
    except LaminaError as e:
        if e.exit_code == 125:
            raise
        raise LaminaError(str(e)) from None


def _read_env_files(paths: list[str]) -> list[str]:
    out = []
    for path in paths:
        try:
            lines = open(path).read().splitlines()
        except OSError as e:
            raise InvalidArgument(f"open {path}: {e.strerror.lower()}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if " " in line.split("=", 1)[0] or line.startswith("="):
                raise InvalidArgument(f"{path}:{n}: variable '{line.split('=', 1)[0]}' contains whitespaces")
            out.append(line)
    return out


def _options(a, verb: str):
    from lamina.runtime.options import CreateOptions
    image, cmd = a.args[0], tuple(a.args[1:])
    entry = None
    if a.entrypoint is not None:
        entry = () if a.entrypoint == "" else (a.entrypoint,)
    labels = {}
    for l in a.label:
        k, _, v = l.partition("=")
        labels[k] = v
    runtime = a.runtime
    if runtime not in ("builtin", "runc", "crun", "lamina"):
        raise InvalidArgument(f"unknown or invalid runtime name: {runtime}")
    from lamina.cli.args import go_int, nano_cpus

    def num(v, what):
        return None if v is None else go_int(v, what)
    pids = num(a.pids_limit, "--pids-limit")
    nano = nano_cpus(a.cpus) if a.cpus is not None else 0

    def size(v, what):
        if not v:
            return None
        if v == "-1" and what == "--memory-swap":
            return -1
        from lamina.cli.units import parse_size
        try:
            return parse_size(v)
        except InvalidArgument as e:  # Docker names the flag: invalid argument "x" for "-m, --memory" flag: ...
            raise InvalidArgument(f'invalid argument "{v}" for "{what}" flag: {e}') from None
    return CreateOptions(
        image=image, cmd=cmd, name=a.name, entrypoint=entry,
        env=tuple(_read_env_files(a.env_file) + list(a.env)), workdir=a.workdir, user=a.user,
        hostname=a.hostname, tty=a.tty, interactive=a.interactive, volumes=tuple(a.volume),
        mounts=tuple(a.mount), tmpfs=tuple(a.tmpfs), read_only=a.read_only, network=a.network,
        ip=a.ip, network_aliases=tuple(a.network_alias), publish=tuple(a.publish), publish_all=a.publish_all,
        expose=tuple(a.expose), add_hosts=tuple(a.add_host), dns=tuple(a.dns), dns_search=tuple(a.dns_search),
        dns_options=tuple(a.dns_option), domainname=a.domainname,
        init=a.init, stop_signal=a.stop_signal, stop_timeout=None if a.stop_timeout is None else
        go_int(a.stop_timeout, "--stop-timeout", bits=32),
        restart=a.restart, cap_add=tuple(a.cap_add), cap_drop=tuple(a.cap_drop), privileged=a.privileged,
        security_opt=tuple(a.security_opt), memory=size(a.memory, "-m, --memory"),
        memory_swap=size(a.memory_swap, "--memory-swap"),
        cpus=nano / 1e9 if nano else None, pids_limit=None if pids is None or pids <= 0 else pids,
        ulimits=tuple(a.ulimit), shm_size=size(a.shm_size, "--shm-size"), labels=labels,
        runtime="builtin" if runtime == "lamina" else runtime, auto_remove=a.rm, detach_keys=a.detach_keys,
        cgroup_parent=a.cgroup_parent)


def cmd_create(argv, ctx) -> int:
    p = _create_parser("create")
    a = parse(p, argv)
    need_root("lamina create")
    opts = _options(a, "create")
    _ensure_image(ctx, a)
    doc = _containers(ctx).create(opts)
    print(doc["Id"])
    return 0


def cmd_run(argv, ctx) -> int:
    p = _create_parser("run")
    a = parse(p, argv)
    need_root("lamina run")
    from lamina.runtime import lifecycle
    from lamina.runtime.attach import attach, parse_detach_keys
    if a.detach and a.rm and a.restart not in ("no", ""):
        raise Conflict("conflicting options: cannot specify both --restart and --rm")
    keys = parse_detach_keys(a.detach_keys)
    opts = _options(a, "run")
    _ensure_image(ctx, a)
    cs = _containers(ctx)
    doc = cs.create(opts)
    if a.detach:
        lifecycle.start_monitored(cs, doc)
        print(doc["Id"])
        return 0
    if not a.tty:
        return lifecycle.run_foreground(cs, doc, stdin=a.interactive, sig_proxy=a.sig_proxy)
    # -t: the container belongs to a monitor, this process attaches (so ctrl-p ctrl-q can detach)
    sock = os.path.join(cs.dir(doc["Id"]), "attach.sock")
    lifecycle.start_monitored(cs, doc, wait_client=True)
    return _exit_code(cs, doc, attach(sock, stdin=a.interactive, tty=True, detach_keys=keys))


def _exit_code(cs, doc: dict, code) -> int:
    """What an attached client returns: 0 on detach, else the container's exit code (read
    from its record when the monitor went away without sending one)."""
    from lamina.runtime import lifecycle
    from lamina.runtime.attach import DETACHED
    if code is DETACHED:
        return 0
    if code is None:
        final = lifecycle.wait_exit(cs, doc)
        return final["State"]["ExitCode"] if final else 0
    return code


def cmd_start(argv, ctx) -> int:
    p = Parser("start", "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers")
    p.flag("-a", "--attach", help="Attach STDOUT/STDERR and forward signals")
    p.flag("-i", "--interactive", help="Attach container's STDIN")
    p.option("--detach-keys", help="Override the key sequence for detaching a container")
    p.args("containers", min=1)
    a = parse(p, argv)
    need_root("lamina start")
    from lamina.runtime import lifecycle
    from lamina.runtime.attach import attach, parse_detach_keys
    cs = _containers(ctx)
    if (a.attach or a.interactive) and len(a.containers) > 1:
        raise InvalidArgument("you cannot start and attach multiple containers at once")
    rc = 0
    for ref in a.containers:
        try:
            doc = cs.get(ref)
            if doc["State"]["Running"]:
                if not (a.attach or a.interactive):
                    print(ref)
                    continue
            else:
                cs.set_state(doc["Id"], StoppedByUser=False)
                lifecycle.start_monitored(cs, doc, wait_client=bool(a.attach or a.interactive))
            if a.attach or a.interactive:
                sock = os.path.join(cs.dir(doc["Id"]), "attach.sock")
                code = attach(sock, stdin=a.interactive, tty=doc["Config"]["Tty"],
                              detach_keys=parse_detach_keys(a.detach_keys or doc.get("Lamina", {}).get("DetachKeys")))
                return _exit_code(cs, doc, code)
            print(ref)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1
    if rc:
        sys.stderr.write("Error: failed to start containers: " + ", ".join(a.containers) + "\n")
    return rc


# -- ps ---------------------------------------------------------------------------------
def _status(st: dict, now: float) -> str:
    from lamina.cli.units import human_duration
    from lamina.timefmt import parse_time
    s = st.get("Status")
    if s == "created":
        return "Created"
    if s == "restarting":
        since = human_duration(now - (parse_time(st.get('FinishedAt')) or now))
        return f"Restarting ({st.get('ExitCode', 0)}) {since} ago"
    if st.get("Running"):
        up = f"Up {human_duration(now - (parse_time(st.get('StartedAt')) or now))}"
        return up + " (Paused)" if st.get("Paused") else up
    if s == "exited":
        fin = parse_time(st.get("FinishedAt"))
        ago = f" {human_duration(now - fin)} ago" if fin and fin > 0 else ""
        return f"Exited ({st.get('ExitCode', 0)}){ago}"
    return s or ""


def _command(doc: dict, trunc: bool) -> str:
    import json as _json
    cmd = " ".join([doc["Path"], *doc["Args"]])
    if trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    return _json.dumps(cmd, ensure_ascii=False)


def cmd_ps(argv, ctx) -> int:
    p = Parser("ps", "[OPTIONS]", "List containers")
    p.flag("-a", "--all", help="Show all containers (default shows just running)")
    p.option("-f", "--filter", append=True, metavar="filter", help="Filter output based on conditions provided")
    p.option("--format", help="Format output using a custom template")
    p.option("-n", "--last", metavar="int", help="Show n last created containers (includes all states)")
    p.flag("-l", "--latest", help="Show the latest created container (includes all states)")
    p.flag("--no-trunc", help="Don't truncate output")
    p.flag("-q", "--quiet", help="Only display container IDs")
    p.flag("-s", "--size", help="Display total file sizes")
    p.args("args", max=0)
    a = parse(p, argv)
    from lamina.cli.table import format_table
    from lamina.cli.units import ago
    from lamina.timefmt import parse_time
    cs = _containers(ctx)
    docs = sorted(cs.all(), key=lambda d: d["Created"], reverse=True)
    # a container whose image `rmi -f` deleted shows the image's ID, as Docker's ps does
    held = {r[0] for r in cs.db.query("SELECT manifest FROM images")} if docs else set()
    from lamina.cli.args import go_int
    last = go_int(a.last, "-n, --last", bits=32) if a.last not in (None, "") else (1 if a.latest else -1)
    show_all = a.all or last > 0
    filters: dict[str, list[str]] = {}
    for f in a.filter:
        k, sep, v = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter (expected name=value): {f}")
        if k not in ("status", "name", "id", "label", "ancestor", "exited"):
            raise InvalidArgument(f"invalid filter '{k}'")
        filters.setdefault(k, []).append(v)
    now = time.time()
    rows = []
    for d in docs:
        st = d["State"]
        if not show_all and not st["Running"] and not filters.get("status"):
            continue
        name = d["Name"].lstrip("/")
        status_word = "paused" if st.get("Paused") else st["Status"]
        if "status" in filters and status_word not in filters["status"]:
            continue
        if "name" in filters and not any(v in name for v in filters["name"]):
            continue
        if "id" in filters and not any(d["Id"].startswith(v) for v in filters["id"]):
            continue
        if "exited" in filters and not (st["Status"] == "exited" and str(st["ExitCode"]) in filters["exited"]):
            continue
        if "ancestor" in filters and not any(v in (d["Config"]["Image"], d["Image"], d["Image"][7:19])
                                             for v in filters["ancestor"]):
            continue
        if "label" in filters:
            labels = d["Config"].get("Labels") or {}
            ok = True
            for v in filters["label"]:
                k, sep, val = v.partition("=")
                ok = ok and k in labels and (not sep or labels[k] == val)
            if not ok:
                continue
        created = parse_time(d["Created"]) or now
        image = d["Config"]["Image"] if d.get("ImageManifest") in held else \
            (d["Image"] if a.no_trunc else d["Image"][7:19])
        rows.append({"ID": d["Id"] if a.no_trunc else d["Id"][:12], "Image": image,
                     "Command": _command(d, not a.no_trunc), "CreatedAt": ago(created, now),
                     "RunningFor": ago(created, now), "Status": _status(st, now), "Ports": display_ports(d),
                     "Names": name, "State": status_word,
                     "Labels": ",".join(f"{k}={v}" for k, v in (d["Config"].get("Labels") or {}).items()),
                     "Mounts": ",".join(m.get("Name") or m["Source"] for m in d.get("Mounts") or ()),
                     "Networks": ",".join((d.get("NetworkSettings") or {}).get("Networks") or ()),
                     "Size": "0B"})
    if last > 0:
        rows = rows[:last]
    if a.quiet:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return 0
    out = format_table(rows, a.format or PS_TABLE, headers=PS_HEADERS)
    sys.stdout.write(out)
    return 0


# -- stop / kill / rm / restart / wait / rename / pause ---------------------------------------
def _each(refs, ctx, fn, *, echo=True) -> int:
    cs = _containers(ctx)
    rc = 0
    for ref in refs:
        try:
            fn(cs, cs.get(ref))
            if echo:
                print(ref)
        except LaminaError as e:
            sys.stderr.write(f"Error: {e}\n")
            rc = 1
    return rc


def cmd_stop(argv, ctx) -> int:
    p = Parser("stop", "[OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers")
    p.option("-t", "--time", metavar="int", help="Seconds to wait before killing the container")
    p.option("-s", "--signal", help="Signal to send to the container")
    p.args("containers", min=1)
    a = parse(p, argv)
    from lamina.cli.args import go_int
    from lamina.runtime import lifecycle
    t = go_int(a.time, "-t, --time", bits=32) if a.time is not None else None
    return _each(a.containers, ctx, lambda cs, d: lifecycle.stop(cs, d, timeout=t, sig=a.signal))


def cmd_kill(argv, ctx) -> int:
    p = Parser("kill", "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers")
    p.option("-s", "--signal", default="KILL", help="Signal to send to the container (default \"KILL\")")
    p.args("containers", min=1)
    a = parse(p, argv)
    from lamina.runtime import lifecycle
    from lamina.runtime.signals import parse_signal
    sig = parse_signal(a.signal)

    def kill(cs, d):
        if sig in (9,):
            cs.set_state(d["Id"], StoppedByUser=True)
        lifecycle.signal_container(d, sig)
    return _each(a.containers, ctx, kill)


def cmd_rm(argv, ctx) -> int:
    p = Parser("rm", "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers")
    p.flag("-f", "--force", help="Force the removal of a running container (uses SIGKILL)")
    p.flag("-v", "--volumes", help="Remove anonymous volumes associated with the container")
    p.flag("-l", "--link", help="Remove the specified link")
    p.args("containers", min=1)
    a = parse(p, argv)
    from lamina.runtime import lifecycle
    if a.force and len(a.containers) > 1:
        # kill every running one first, so their exits overlap instead of queueing
        import signal as _signal
        cs = _containers(ctx)
        for ref in a.containers:
            try:
                d = cs.get(ref)
                if d["State"]["Running"]:
                    cs.set_state(d["Id"], StoppedByUser=True)
                    lifecycle.signal_container(d, _signal.SIGKILL)
            except (LaminaError, ProcessLookupError):
                pass  # reported by the removal below
    return _each(a.containers, ctx, lambda cs, d: lifecycle.remove(cs, d, force=a.force, volumes=a.volumes))


def cmd_restart(argv, ctx) -> int:
    p = Parser("restart", "[OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers")
    p.option("-t", "--time", metavar="int", help="Seconds to wait before killing the container")
    p.option("-s", "--signal", help="Signal to send to the container")
    p.args("containers", min=1)
    a = parse(p, argv)
    need_root("lamina restart")
    from lamina.cli.args import go_int
    from lamina.runtime import lifecycle
    t = go_int(a.time, "-t, --time", bits=32) if a.time is not None else None

    def restart(cs, d):
        lifecycle.stop(cs, d, timeout=t, sig=a.signal)
        d = cs.get(d["Id"])
        cs.set_state(d["Id"], StoppedByUser=False)
        lifecycle.start_monitored(cs, d)
    return _each(a.containers, ctx, restart)


def cmd_wait(argv, ctx) -> int:
    p = Parser("wait", "CONTAINER [CONTAINER...]",
               "Block until one or more containers stop, then print their exit codes")
    p.args("containers", min=1)
    a = parse(p, argv)
    from lamina.runtime import lifecycle

    def wait(cs, d):
        final = lifecycle.wait_exit(cs, d)
        print(final["State"]["ExitCode"] if final else 0)
    return _each(a.containers, ctx, wait, echo=False)


def cmd_rename(argv, ctx) -> int:
    p = Parser("rename", "CONTAINER NEW_NAME", "Rename a container")
    p.args("args", min=2, max=2)
    a = parse(p, argv)
    import re
    cs = _containers(ctx)
    doc = cs.get(a.args[0])
    new = a.args[1].lstrip("/")
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", new):
        raise InvalidArgument(f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if cs.db.one("SELECT id FROM containers WHERE name=?", (new,)):
        raise Conflict(f'Conflict. The container name "/{new}" is already in use')
    with cs.db.tx() as c:
        c.execute("UPDATE containers SET name=? WHERE id=?", (new, doc["Id"]))
    cs.update(doc["Id"], lambda d: d.__setitem__("Name", "/" + new))
    return 0


def cmd_pause(argv, ctx) -> int:
    p = Parser("pause", "CONTAINER [CONTAINER...]", "Pause all processes within one or more containers")
    p.args("containers", min=1)
    a = parse(p, argv)
    from lamina.runtime import lifecycle
    return _each(a.containers, ctx, lifecycle.pause)


def cmd_unpause(argv, ctx) -> int:
    p = Parser("unpause", "CONTAINER [CONTAINER...]", "Unpause all processes within one or more containers")
    p.args("containers", min=1)
    a = parse(p, argv)
    from lamina.runtime import lifecycle
    return _each(a.containers, ctx, lifecycle.unpause)


# -- logs / attach -----------------------------------------------------------------------
def cmd_logs(argv, ctx) -> int:
    p = Parser("logs", "[OPTIONS] CONTAINER", "Fetch the logs of a container")
    p.flag("-f", "--follow", help="Follow log output")
    p.option("--since", help="Show logs since timestamp or relative (e.g. 42m for 42 minutes)")
    p.option("--until", help="Show logs before a timestamp or relative")
    p.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs (default \"all\")")
    p.flag("-t", "--timestamps", help="Show timestamps")
    p.flag("--details", help="Show extra details provided to logs")
    p.args("container", min=1, max=1)
    a = parse(p, argv)
    from lamina.runtime.logs import LogReader, parse_since, write_entries
    cs = _containers(ctx)
    doc = cs.get(a.container)
    now = time.time()
    since, until = parse_since(a.since, now), parse_since(a.until, now)
    reader = LogReader(doc["LogPath"])
    entries = reader  # streamed record by record: a log may be far larger than memory
    if a.tail != "all":
        try:
            n = int(a.tail)
        except ValueError:
            raise InvalidArgument(f'invalid value for "tail": {a.tail}') from None
        if n >= 0:
            import collections
            entries = collections.deque(reader, maxlen=n)
    write_entries(entries, timestamps=a.timestamps, since=since, until=until)
    if not a.follow:
        return 0
    while True:
        before = reader.offset
        write_entries(reader, timestamps=a.timestamps, since=since, until=until)
        try:
            cur = cs.get(doc["Id"])
        except LaminaError:
            return 0
        if not cur["State"]["Running"] and cur["State"]["Status"] != "restarting" and reader.offset == before:
            write_entries(reader, timestamps=a.timestamps, since=since, until=until)
            return 0
        time.sleep(0.05)


def cmd_attach(argv, ctx) -> int:
    p = Parser("attach", "[OPTIONS] CONTAINER",
               "Attach local standard input, output, and error streams to a running container")
    p.option("--detach-keys", help="Override the key sequence for detaching a container")
    p.flag("--no-stdin", help="Do not attach STDIN")
    p.flag("--sig-proxy", default=True, help="Proxy all received signals to the process (default true)")
    p.args("container", min=1, max=1)
    a = parse(p, argv)
    from lamina.runtime.attach import attach, parse_detach_keys
    cs = _containers(ctx)
    doc = cs.get(a.container)
    if not doc["State"]["Running"]:
        raise Conflict("You cannot attach to a stopped container, start it first")
    sock = os.path.join(cs.dir(doc["Id"]), "attach.sock")
    if not os.path.exists(sock):
        raise Conflict(f"container {doc['Id'][:12]} runs in the foreground of another lamina process; "
                       f"it has no attach socket (run it with -d or -t to attach later)")
    code = attach(sock, stdin=not a.no_stdin and doc["Config"]["OpenStdin"], tty=doc["Config"]["Tty"],
                  detach_keys=parse_detach_keys(a.detach_keys or doc.get("Lamina", {}).get("DetachKeys")),
                  sig_proxy_pid=doc["State"].get("Pid") if a.sig_proxy else None)
    return _exit_code(cs, doc, code)


# -- exec / top / port ------------------------------------------------------------------------
def cmd_exec(argv, ctx) -> int:
    p = Parser("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container",
               interspersed=False)
    p.flag("-d", "--detach", help="Detached mode: run command in the background")
    p.flag("-i", "--interactive", help="Keep STDIN open even if not attached")
    p.flag("-t", "--tty", help="Allocate a pseudo-TTY")
    p.option("-e", "--env", append=True, metavar="list", help="Set environment variables")
    p.option("--env-file", append=True, metavar="list", help="Read in a file of environment variables")
    p.option("-u", "--user", help="Username or UID (format: \"<name|uid>[:<group|gid>]\")")
    p.option("-w", "--workdir", help="Working directory inside the container")
    p.flag("--privileged", help="Give extended privileges to the command")
    p.option("--detach-keys", help="Override the key sequence for detaching a container")
    p.args("args", min=2)
    a = parse(p, argv)
    need_root("lamina exec")
    from lamina.runtime import exec as rexec
    cs = _containers(ctx)
    doc = cs.get(a.args[0])
    return rexec.exec_command(cs, doc, a.args[1:], env=_read_env_files(a.env_file) + list(a.env),
                              user=a.user, workdir=a.workdir, tty=a.tty, interactive=a.interactive,
                              detach=a.detach, privileged=a.privileged)


def cmd_top(argv, ctx) -> int:
    p = Parser("top", "CONTAINER [ps OPTIONS]", "Display the running processes of a container", interspersed=False)
    p.args("args", min=1)
    a = parse(p, argv)
    import subprocess

    from lamina.runtime import launcher, lifecycle
    cs = _containers(ctx)
    doc = cs.get(a.args[0])
    if not doc["State"]["Running"]:
        raise Conflict(f"Container {doc['Id'][:12]} is not running")
    rt = lifecycle.external_runtime(doc)
    if rt is not None:
        from lamina.runtime import external
        pids = set(external.pids(rt, doc["Id"]))
    else:
        from lamina.runtime.containers import cgroup_parent_of
        pids = set(launcher.pids(doc["Id"], cgroup_parent=cgroup_parent_of(doc)))
    ps_args = a.args[1:] or ["-ef"]
    out = subprocess.run(["ps", *ps_args], capture_output=True, text=True)
    if out.returncode != 0:
        raise InvalidArgument(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument('Couldn\'t find PID field in ps output')
    col = header.index("PID")
    rows = [l for l in lines[1:] if len(l.split()) > col and l.split()[col].isdigit() and int(l.split()[col]) in pids]
    from lamina.cli.table import tabwrite
    sys.stdout.write(tabwrite("\t".join(header) + "\n" + "".join(
        "\t".join(l.split(None, len(header) - 1)) + "\n" for l in rows)))
    return 0


def _port_list(doc: dict) -> list[tuple[int, str, int, str]]:
    """(private port, host IP, public port, proto) of a container, as the API's Port list."""
    out = []
    for key, binds in ((doc.get("NetworkSettings") or {}).get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if binds:
            out += [(int(port), b["HostIp"], int(b["HostPort"] or 0), proto) for b in binds]
        else:
            out.append((int(port), "", 0, proto))
    return sorted(out)


def display_ports(doc: dict) -> str:
    """ps's PORTS, as docker/cli's DisplayablePorts: runs of unpublished (or published on the
    same port number) ports grouped as ``80-81/tcp``/``0.0.0.0:80-81->80-81/tcp``, in order
    of first appearance, then ``ip:public->private/proto`` for the others."""
    groups: dict[str, list[int]] = {}
    result, mappings = [], []

    def form(key: str, first: int, last: int) -> str:
        ip, _, kind = key.rpartition("/")
        g = str(first) if first == last else f"{first}-{last}"
        return f"{ip}:{g}->{g}/{kind}" if ip else f"{g}/{kind}"
    for private, ip, public, proto in _port_list(doc):
        key = proto
        if ip:
            if public != private:
                mappings.append(f"{ip}:{public}->{private}/{proto}")
                continue
            key = f"{ip}/{proto}"
        g = groups.get(key)
        if g is None:
            groups[key] = [private, private]
        elif private == g[1] + 1:
            g[1] = private
        else:
            result.append(form(key, *g))
            groups[key] = [private, private]
    result += [form(k, *g) for k, g in groups.items()]
    return ", ".join(result + mappings)


def cmd_port(argv, ctx) -> int:
    p = Parser("port", "CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container")
    p.args("args", min=1, max=2)
    a = parse(p, argv)
    doc = _containers(ctx).get(a.args[0])
    ports = [x for x in _port_list(doc) if x[1]]
    if len(a.args) == 2:
        port, _, proto = a.args[1].partition("/")
        hits = [f"{ip}:{public}" for private, ip, public, pr in ports
                if str(private) == port and pr == (proto or "tcp")]
        if not hits:
            sys.stderr.write(f"Error: No public port '{a.args[1]}' published for {a.args[0]}\n")
            return 1
        sys.stdout.write("".join(h + "\n" for h in hits))
        return 0
    sys.stdout.write("".join(f"{private}/{proto} -> {ip}:{public}\n" for private, ip, public, proto in ports))
    return 0


# -- commit / diff / cp / export --------------------------------------------------------------
def cmd_commit(argv, ctx) -> int:
    p = Parser("commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes")
    p.option("-a", "--author", help="Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")")
    p.option("-c", "--change", append=True, metavar="list", help="Apply Dockerfile instruction to the created image")
    p.option("-m", "--message", help="Commit message")
    p.flag("-p", "--pause", default=True, help="Pause container during commit (default true)")
    p.args("args", min=1, max=2)
    a = parse(p, argv)
    from lamina import reference
    from lamina.runtime.commit import commit
    cs = _containers(ctx)
    doc = cs.get(a.args[0])
    tag = reference.parse_tag(a.args[1]) if len(a.args) > 1 else None
    from lamina.cli.images import _terminal_progress
    rec = commit(cs, doc, tag=tag, author=a.author, message=a.message, changes=a.change, pause=a.pause,
                 progress=_terminal_progress(sys.stdout))
    print(rec.id)
    return 0


def cmd_diff(argv, ctx) -> int:
    p = Parser("diff", "CONTAINER", "Inspect changes to files or directories on a container's filesystem")
    p.args("container", min=1, max=1)
    a = parse(p, argv)
    from lamina.diff.changes import changes, format_changes
    from lamina.snapshot import Snapshotter
    cs = _containers(ctx)
    doc = cs.get(a.container)
    snap = Snapshotter(ctx.store)
    lowers = [snap.dir_of(x.chain_id) for x in reversed(cs.layers_of(doc))]
    sys.stdout.write(format_changes(changes(os.path.join(cs.dir(doc["Id"]), "upper"), lowers)))
    return 0


def cmd_cp(argv, ctx) -> int:
    p = Parser("cp", "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tlamina cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
               "Copy files/folders between a container and the local filesystem")
    p.flag("-a", "--archive", help="Archive mode (copy all uid/gid information)")
    p.flag("-L", "--follow-link", help="Always follow symbol link in SRC_PATH")
    p.flag("-q", "--quiet", help="Suppress progress output during copy")
    p.args("args", min=2, max=2)
    a = parse(p, argv)
    from lamina.runtime.rootfs import with_container_root
    src, dst = a.args

    def split(x):
        if ":" in x and not x.startswith(("/", ".")):
            c, _, path = x.partition(":")
            return c, path
        return None, x
    sc, sp = split(src)
    dc, dp = split(dst)
    if (sc is None) == (dc is None):
        e = InvalidArgument("copying between containers is not supported" if sc else
                            "must specify at least one container source")
        e.exit_code = 1
        raise e
    cs = _containers(ctx)
    from lamina.diff import copy as dcopy
    try:  # any failure: 1, as Docker's client exits (bad flags stay 125)
        if sc is not None:
            doc = cs.get(sc)
            if dp == "-":
                rc = with_container_root(cs, doc, lambda root: dcopy.copy_out_tar(
                    root, sp, sys.stdout.buffer, follow_link=a.follow_link, container=sc or ""))
            else:
                dest = os.path.abspath(dp) + ("/" if dp.endswith("/") else "")
                rc = with_container_root(cs, doc, lambda root: dcopy.copy_out(
                    root, sp, dest, follow_link=a.follow_link, archive=a.archive, container=sc or ""))
        else:
            doc = cs.get(dc)
            if sp == "-":
                rc = with_container_root(cs, doc, lambda root: dcopy.copy_in_tar(
                    root, sys.stdin.buffer, dp, archive=a.archive, container=dc or ""))
            else:
                srcpath = os.path.abspath(sp) + ("/" if sp.endswith("/") else "")
                rc = with_container_root(cs, doc, lambda root: dcopy.copy_in(
                    root, srcpath, dp, archive=a.archive, follow_link=a.follow_link, container=dc or ""))
    except LaminaError as e:
        e.exit_code = 1
        raise
    return 1 if rc else 0


def cmd_export(argv, ctx) -> int:
    p = Parser("export", "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive")
    p.option("-o", "--output", help="Write to a file, instead of STDOUT")
    p.args("container", min=1, max=1)
    a = parse(p, argv)
    from lamina.diff.copy import export_tar
    from lamina.runtime.rootfs import with_container_root
    cs = _containers(ctx)
    doc = cs.get(a.container)
    from lamina.cli.images import side_progress
    if a.output is None:
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        progress = side_progress(to_stdout=True)
        return with_container_root(cs, doc, lambda root: export_tar(root, sys.stdout.buffer, progress=progress),
                                   mounts=False)
    out = os.path.abspath(a.output)
    from lamina.perms import open_output
    # opened here, on the host (0600, as Docker's client writes it; renamed over out when
    # complete): the export itself may run chrooted in the container's root
    f, tmp = open_output(out)
    progress = side_progress(to_stdout=False)

    def write(root):
        with f:
            export_tar(root, f, progress=progress)
    try:
        code = with_container_root(cs, doc, write, mounts=False)
        if code == 0:
            os.rename(tmp, out)
        return code
    finally:
        f.close()
        if os.path.lexists(tmp):
            os.unlink(tmp)


def cmd_prune(argv, ctx) -> int:
    p = Parser("container prune", "[OPTIONS]", "Remove all stopped containers")
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.option("--filter", append=True, help="Provide filter values (e.g. 'until=<timestamp>')")
    a = parse(p, argv)
    from lamina.cli.images import _confirm
    if not a.force and not _confirm("WARNING! This will remove all stopped containers."):
        return 0
    from lamina.cli.images import print_pruned
    print_pruned("Deleted Containers:", prune_containers(ctx))
    print("Total reclaimed space: 0B")
    return 0


def prune_containers(ctx) -> list[str]:
    cs = _containers(ctx)
    out = []
    for d in cs.all():
        if not d["State"]["Running"] and d["State"]["Status"] != "restarting":
            cs.delete(d)
            out.append(d["Id"])
    cs.gc_orphans()
    return out
