"""``exec``: a new process in a running container's namespaces, with the container's
capabilities, seccomp profile and (by default) user, as Docker does."""

from __future__ import annotations

import json
import os
import threading

from lamina.errors import Conflict


def prepare(containers, doc: dict, args: list[str], *, env: list[str], user: str | None,
            workdir: str | None, tty: bool, privileged: bool) -> dict:
    """What a new process in the running container ``doc`` gets: ``{"pid": the container's
    init, "process": an OCI process object (the container's capabilities, no_new_privs,
    rlimits and OOM score from its spec, with ``args``/``env``/``user``/``workdir`` of its
    own), "seccomp": the container's filter, "runtime": runc/crun or None}``. Conflict if
    the container is not running or is paused."""
    from lamina.runtime.containers import _merge_env, process_alive, with_primary_gid
    from lamina.runtime.lifecycle import external_runtime
    from lamina.runtime.spec import resolve_user
    st = doc["State"]
    if not st["Running"] or not process_alive(st.get("Pid"), st.get("PidStart")):
        raise Conflict(f"Container {doc['Id']} is not running")
    if st.get("Paused"):
        raise Conflict(f"Container {doc['Id']} is paused, unpause the container before exec")
    pid = st["Pid"]
    with open(os.path.join(containers.dir(doc["Id"]), "config.json")) as f:
        spec = json.load(f)
    base = spec["process"]
    who = user if user is not None else (doc["Config"].get("User") or "")
    u = with_primary_gid(resolve_user(f"/proc/{pid}/root", who))
    penv = _merge_env(list(base.get("env") or []), env)
    if tty and not any(e.startswith("TERM=") for e in penv):
        penv.append("TERM=xterm")
    process = {
        "args": list(args), "env": penv, "cwd": workdir or base.get("cwd") or "/", "terminal": tty,
        "user": {"uid": u.uid, "gid": u.gid, "additionalGids": list(u.additional_gids)},
        "capabilities": base.get("capabilities"), "noNewPrivileges": base.get("noNewPrivileges", False),
        "rlimits": base.get("rlimits") or [],
    }
    if "oomScoreAdj" in base:
        process["oomScoreAdj"] = base["oomScoreAdj"]
    if privileged:
        from lamina.runtime.spec import ALL_CAPS
        caps = list(ALL_CAPS)
        process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    return {"pid": pid, "process": process, "seccomp": (spec.get("linux") or {}).get("seccomp"),
            "runtime": external_runtime(doc), "id": doc["Id"]}


def run_prepared(prep: dict, stdio, console=None, on_spawn=None, on_child=None) -> int:
    """Run a :func:`prepare`-d process to its end; Docker's exit code. ``on_child(pid)`` gets
    the host pid whose SIGKILL ends the process (a health check's timeout)."""
    from lamina.runtime import launcher
    if prep["runtime"] is not None:
        from lamina.runtime import external
        if on_spawn is not None:
            on_spawn()
        return external.exec_process(prep["runtime"], prep["id"], prep["pid"], prep["process"], stdio=stdio,
                                     console=console, on_child=on_child)
    return launcher.exec_in(prep["pid"], prep["process"], stdio=stdio, console=console, seccomp=prep["seccomp"],
                            on_spawn=on_spawn, on_child=on_child)


def exec_event_name(args: list[str]) -> str:
    """Docker's exec event action suffix: the entrypoint, a space, the arguments joined."""
    return f"{args[0]} {' '.join(args[1:])}"


def exec_command(containers, doc: dict, args: list[str], *, env: list[str], user: str | None,
                 workdir: str | None, tty: bool, interactive: bool, detach: bool, privileged: bool) -> int:
    """``docker exec``: the process gets the container's whole profile (its spec's
    capabilities, no_new_privs, rlimits and seccomp filter, its cgroups and namespaces, a new
    session keyring) with only ``args``/``env``/``user``/``workdir`` of its own. Its stdio
    are pipes this process copies (stdin only with ``interactive``), or a pty of the
    container with ``tty``; never this process's descriptors. Journals exec_create,
    exec_start and exec_die as Docker does."""
    prep = prepare(containers, doc, args, env=env, user=user, workdir=workdir, tty=tty, privileged=privileged)
    pid, process = prep["pid"], prep["process"]
    exec_id = os.urandom(32).hex()
    what = exec_event_name(args)
    containers.event(doc, "exec_create: " + what, execID=exec_id)
    containers.event(doc, "exec_start: " + what, execID=exec_id)

    def run(stdio, console=None, on_spawn=None) -> int:
        code = -1
        try:
            code = run_prepared(prep, stdio, console, on_spawn)
            return code
        finally:
            containers.event(doc, "exec_die", execID=exec_id, exitCode=str(code))

    if detach:
        if os.fork() == 0:
            try:
                os.setsid()
                devnull = os.open(os.devnull, os.O_RDWR)
                run((devnull, devnull, devnull))
            finally:
                os._exit(0)
        return 0
    if not tty:
        from lamina.runtime.stdio import Pipes
        pipes = Pipes(stdin=0 if interactive else None, stdout=1, stderr=2)
        try:
            return run(pipes.child, on_spawn=pipes.start)
        finally:
            pipes.finish(wait_eof=False)
    return _exec_tty(run, pid, process, interactive, host_pty=prep["runtime"] is not None)


def _container_pty(pid: int, uid: int, gid: int) -> tuple[int, int]:
    """A pty pair from the container's own devpts (``/proc/<pid>/root/dev/ptmx``), so the
    process's ``tty`` is ``/dev/pts/N`` inside the container, as with Docker; the slave is
    owned by the exec user. Falls back to a host pty."""
    import fcntl
    import struct
    try:
        master = os.open(f"/proc/{pid}/root/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return os.openpty()
    try:
        fcntl.ioctl(master, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
        slave = fcntl.ioctl(master, 0x5441, os.O_RDWR | os.O_NOCTTY)  # TIOCGPTPEER
        os.fchown(slave, uid, gid)
    except OSError:
        os.close(master)
        return os.openpty()
    return master, slave


def _exec_tty(run, pid: int, process: dict, interactive: bool, *, host_pty: bool = False) -> int:
    """``exec -t``: the process's terminal is a pty of the container's devpts (or, for runc,
    a host pty that runc relays to the pty it makes in the container); this process copies
    between it and its own terminal."""
    import termios
    import tty as ttymod
    if host_pty:
        master, slave = os.openpty()
    else:
        master, slave = _container_pty(pid, process["user"]["uid"], process["user"]["gid"])
    raw = interactive and os.isatty(0)
    saved = termios.tcgetattr(0) if raw else None
    if os.isatty(1):
        import fcntl
        try:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, fcntl.ioctl(1, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            pass
    if raw:
        ttymod.setraw(0, termios.TCSANOW)  # keep typeahead (Docker does not flush either)
    stop = threading.Event()

    def pump_out() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            os.write(1, data)

    def pump_in() -> None:
        import select
        while not stop.is_set():
            r, _, _ = select.select([0], [], [], 0.2)
            if r:
                data = os.read(0, 65536)
                if not data:
                    break
                os.write(master, data)

    out = threading.Thread(target=pump_out, daemon=True)
    out.start()
    if interactive:
        threading.Thread(target=pump_in, daemon=True).start()
    try:
        code = run((slave, slave, slave), console=slave)
    finally:
        stop.set()
        os.close(slave)
        out.join(timeout=1)
        os.close(master)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return code
