"""Container verbs: run, create, start, ps, stop, kill, rm, restart, wait, rename, pause,
unpause, logs, attach, exec, top, port, commit, diff, cp, export (and the ``container``
group). Parsing and output only; the work is in lamina.runtime and lamina.diff."""

from __future__ import annotations

import os
import sys
import time

from lamina.cli.args import Parser, parse
from lamina.errors import Conflict, InvalidArgument, LaminaError, need_root


def cmd_container_inspect(argv, ctx) -> int:
    """``container inspect``: ``inspect --type container``."""
    from lamina.cli.images import cmd_inspect
    return cmd_inspect(["--type", "container", *argv], ctx)


def _containers(ctx):
    from lamina.runtime.containers import Containers
    return Containers(ctx.store)


# -- create / run ----------------------------------------------------------------------
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


def cmd_create(argv, ctx) -> int:
    from lamina.cli.create import create_parser, options, write_cidfile
    a = parse(create_parser("create"), argv)
    need_root("lamina create")
    opts = options(a, "create")
    _ensure_image(ctx, a)
    doc = _containers(ctx).create(opts)
    write_cidfile(opts.cidfile, doc["Id"])
    print(doc["Id"])
    return 0


def cmd_run(argv, ctx) -> int:
    from lamina.cli.create import create_parser, options, write_cidfile
    a = parse(create_parser("run"), argv)
    need_root("lamina run")
    from lamina.runtime import lifecycle
    from lamina.runtime.attach import attach, parse_detach_keys
    if a.detach and a.rm and a.restart not in ("no", ""):
        raise Conflict("conflicting options: cannot specify both --restart and --rm")
    keys = parse_detach_keys(a.detach_keys)
    opts = options(a, "run")
    _ensure_image(ctx, a)
    cs = _containers(ctx)
    doc = cs.create(opts)
    try:
        write_cidfile(opts.cidfile, doc["Id"])
    except BaseException:
        cs.delete(doc, volumes=True)
        raise
    if a.detach:
        lifecycle.start_monitored(cs, doc)
        print(doc["Id"])
        return 0
    cs.event(doc, "attach")
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


# -- stop / kill / rm / restart / wait / rename / pause ---------------------------------------
def _each(refs, ctx, fn, *, echo=True, what: str = "") -> int:
    """``fn(containers, record)`` for each reference, printing it when done; a failure is
    reported (prefixed ``what: <ref>: `` as dockerd words it, e.g. "Cannot kill container")
    and the rest still run; 1 if any failed."""
    cs = _containers(ctx)
    rc = 0
    for ref in refs:
        try:
            fn(cs, cs.get(ref))
            if echo:
                print(ref)
        except LaminaError as e:
            sys.stderr.write(f"Error: {what}: {ref}: {e}\n" if what else f"Error: {e}\n")
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
        lifecycle.signal_container(d, sig, cs)
    return _each(a.containers, ctx, kill, what="Cannot kill container")


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
                    lifecycle.signal_container(d, _signal.SIGKILL, cs)
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
    renamed = cs.update(doc["Id"], lambda d: d.__setitem__("Name", "/" + new))
    cs.event(renamed, "rename", oldName=doc["Name"])
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
    if (doc["HostConfig"].get("LogConfig") or {}).get("Type") == "none":
        e = LaminaError("configured logging driver does not support reading")
        e.exit_code = 1
        raise e
    now = time.time()
    since, until = parse_since(a.since, now), parse_since(a.until, now)
    reader = LogReader(doc["LogPath"], rotated=True)
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
        e = Conflict("You cannot attach to a stopped container, start it first")
        e.prefix = ""  # docker/cli's own check: printed bare
        raise e
    sock = os.path.join(cs.dir(doc["Id"]), "attach.sock")
    if not os.path.exists(sock):
        raise Conflict(f"container {doc['Id'][:12]} runs in the foreground of another lamina process; "
                       f"it has no attach socket (run it with -d or -t to attach later)")
    cs.event(doc, "attach")
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
    from lamina.cli.create import read_env_files
    return rexec.exec_command(cs, doc, a.args[1:], env=read_env_files(a.env_file) + list(a.env),
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
        raise Conflict(f"Container {doc['Id']} is not running")
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


def cmd_port(argv, ctx) -> int:
    p = Parser("port", "CONTAINER [PRIVATE_PORT[/PROTO]]", "List port mappings or a specific mapping for the container")
    p.args("args", min=1, max=2)
    a = parse(p, argv)
    from lamina.runtime.psindex import port_list
    doc = _containers(ctx).get(a.args[0])
    ports = [x for x in port_list(doc) if x[1]]
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
    cs.event(doc, "export")
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
