"""The entry point :func:`run`: read the bundle, create the cgroups, spawn P2 (built-in) or
hand over to runc/crun, wait, and return Docker's exit code.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable, Sequence

from lamina.errors import InvalidArgument, NotFound, Unavailable
from lamina.runtime.launcher.base import (
    _ERROR_CLASSES,
    _PR_SET_PDEATHSIG,
    _TERMINAL_SIGNALS,
    _docker_code,
    _prctl,
    _read_all,
    _report,
    _wait,
)
from lamina.runtime.launcher.cgroups import _Cgroup, default_cgroup_parent
from lamina.runtime.launcher.console import _take_console
from lamina.runtime.launcher.mounts import _Plan
from lamina.runtime.launcher.spawn import _close_all_but, _NoClone, _single_threaded, _spawn_p2

# ---------------------------------------------------------------------------------------------
# Public API

def _load_spec(bundle: str) -> dict:
    import json

    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"bundle {bundle} has no config.json") from None
    except ValueError as e:
        raise InvalidArgument(f"{path}: invalid JSON: {e}") from e


def _raise_or_print(data: bytes, errfd: int) -> None:
    """Interpret the child's report: raise a setup error, or print an exec error."""
    if not data:
        return
    kind, text = data[:1], data[1:].decode("utf-8", "replace")
    if kind == b"P":
        return
    if kind == b"X":
        _, _, msg = text.partition("\t")
        try:
            os.write(errfd, (msg + "\n").encode())
        except OSError:
            pass
        return
    cls, _, msg = text.partition("\t")
    raise _ERROR_CLASSES.get(cls, Unavailable)(msg)


def run(bundle: str, *, container_id: str, rootfs_mounts: Sequence = (),
        stdio: tuple[int, int, int] = (0, 1, 2), console: int | None = None,
        runtime: str = "builtin", on_start: Callable[[int], None] | None = None,
        cgroup_parent: str | None = None, on_console: Callable[[int], None] | None = None,
        console_size: tuple[int, int] | None = None,
        on_spawn: Callable[[], None] | None = None, detached: Sequence[int] = ()) -> int:
    """Run the container of ``bundle/config.json`` in the foreground; return Docker's exit code.

    ``rootfs_mounts`` (lamina.mount.Mount values, e.g. the snapshot's overlay) are mounted on
    ``root.path`` inside the container's mount namespace (builtin) or on the host around the
    runtime call (runc/crun). ``stdio`` fds become the container's 0/1/2 unless ``console``
    (a pty slave fd) is given with ``process.terminal``: then it is the controlling tty and
    0/1/2. A ``stdio`` fd that is not a pipe, a socket or /dev/null (a terminal, a file) is
    never handed over: the container gets a pipe that a thread of this process copies to
    (from) it. Without ``console``, ``on_console(master_fd)`` makes the terminal in the
    container's own devpts (``tty`` prints ``/dev/pts/0``, as with runc; see the module
    docstring) and is called with its pty master (then the caller's, CLOEXEC) before the
    command is exec'd; ``console_size`` = ``(rows, cols)`` is its window size (default:
    the spec's ``process.consoleSize``). ``on_spawn()`` is called once the container's
    first process exists (from then on the caller may start threads: a single-threaded
    caller clones the container itself). ``on_start(pid)`` is called with the host pid of
    the container's PID 1 once the command was exec'd (builtin) or the runtime started it.
    The return value is the command's exit code, ``128+N`` for death by signal N, 127/126
    for an exec failure (message written to ``stdio[2]``, or to the terminal). Setup
    failures raise LaminaError subclasses. The cgroups ``/<cgroup_parent>/<container_id>``
    (unless config.json names ``linux.cgroupsPath``; ``cgroup_parent`` defaults to
    :func:`default_cgroup_parent`) are created before and removed after.
    ``detached`` (builtin only): descriptors (all above 5) of detached mounts
    (lamina.mount.detached_bind/detached_overlay) that config.json mounts as binds with source
    ``/proc/self/fd/<n>``: they are attached with move_mount(2) in the container's namespace,
    never looked up by path.
    """
    cgroup_parent = cgroup_parent or default_cgroup_parent()
    if detached and runtime != "builtin":
        raise InvalidArgument(f"detached mounts need the built-in runtime, not {runtime}")
    if runtime not in ("builtin", "runc", "crun"):
        raise InvalidArgument(f"unknown runtime {runtime!r}: use builtin, runc or crun")
    bundle = os.path.abspath(bundle)
    spec = _load_spec(bundle)
    guard = None
    if not (spec.get("process") or {}).get("terminal"):
        from lamina.runtime.stdio import Pipes, is_private

        if not all(is_private(fd) for fd in stdio):
            guard = Pipes(stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], only_unsafe=True)
            stdio = guard.child
            spawned = on_spawn

            def on_spawn() -> None:
                guard.start()
                if spawned is not None:
                    spawned()
    try:
        if runtime != "builtin":
            from lamina.runtime.external import run_external

            return run_external(runtime, bundle, spec, container_id=container_id,
                                 rootfs_mounts=rootfs_mounts, stdio=stdio, console=console,
                                 on_start=on_start, cgroup_parent=cgroup_parent,
                                 on_console=on_console, console_size=console_size,
                                 on_spawn=on_spawn)
        return _run_builtin(bundle, spec, container_id=container_id,
                            rootfs_mounts=rootfs_mounts, stdio=stdio, console=console,
                            on_start=on_start, cgroup_parent=cgroup_parent,
                            on_console=on_console, console_size=console_size,
                            on_spawn=on_spawn, detached=detached)
    finally:
        if guard is not None:
            guard.finish()


def _run_builtin(bundle: str, spec: dict, *, container_id: str, rootfs_mounts, stdio, console,
                 on_start, cgroup_parent: str, on_console, console_size, on_spawn,
                 detached: Sequence[int] = ()) -> int:
    import lamina.mount
    from lamina import safepath
    safepath.prepare()  # the child resolves mount targets with openat2: bind it before the fork

    if any(getattr(m, "type", None) == "overlay" for m in rootfs_mounts):
        lamina.mount._new_api_supported()  # probe once here, not in every child (2-7 ms)

    plan = _Plan(spec, bundle)
    if any(fd <= 5 for fd in detached):
        raise InvalidArgument("detached mount descriptors must be above 5")
    plan.detached = frozenset(detached)
    sock = None  # the "console socket": P2 sends the pty master over it
    if plan.proc.terminal and console is None:
        if on_console is None:
            raise InvalidArgument("process.terminal is set but no console fd was given")
        import socket
        sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # CLOEXEC
        if console_size:
            plan.proc.console_size = (int(console_size[0]), int(console_size[1]))
    csock = None if sock is None else sock[1].fileno()
    peer = None  # the caller's slave of the container's pty
    cg = _Cgroup(plan.cgroups_path or f"/{cgroup_parent}/{container_id}", plan.resources)
    try:
        errr, errw = os.pipe2(os.O_CLOEXEC)
        p2 = 0
        try:
            if _single_threaded() and not plan.join_pid:
                p2 = _spawn_p2(plan, cg, rootfs_mounts, stdio, console, errw, direct=True,
                               console_sock=csock)
        except _NoClone:
            pass
        except BaseException:
            os.close(errr)
            os.close(errw)
            raise
        if p2:
            try:
                if on_spawn is not None:
                    on_spawn()
                if sock is not None:
                    sock[1].close()
                    peer = _take_console(sock[0], on_console)
            except BaseException:
                os.close(errw)
                _kill_and_reap(p2, p2, errr)
                raise
            return _finish(p2, p2, b"", errr, errw, stdio, console if sock is None else peer,
                           on_start)
        try:
            p1 = os.fork()
        except BaseException:
            os.close(errr)
            os.close(errw)
            raise
        if p1 == 0:  # P1
            code = 125
            try:
                gc.disable()  # a collection here would copy the caller's heap page by page
                _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                _close_all_but([errw, *stdio, console, csock])
                for s in _TERMINAL_SIGNALS:
                    signal.signal(s, signal.SIG_IGN)
                if plan.join_pid:  # P2 is born in it (a pid namespace applies to children)
                    from lamina.runtime.launcher.base import _CLONE_NEWPID
                    from lamina.runtime.launcher.mounts import _join_namespace
                    _join_namespace(plan.join_pid, _CLONE_NEWPID, "pid")
                p2 = _spawn_p2(plan, cg, rootfs_mounts, stdio, console, errw, direct=False,
                               console_sock=csock)
                if csock is not None:
                    os.close(csock)
                os.write(errw, f"P{p2}\n".encode())
                os.close(errw)
                code = _docker_code(_wait(p2))
            except BaseException as e:  # noqa: BLE001
                _report(errw, e)
            os._exit(code)
        os.close(errw)
        try:
            if on_spawn is not None:
                on_spawn()
            if sock is not None:
                sock[1].close()
                peer = _take_console(sock[0], on_console)
        except BaseException:
            _kill_and_reap(p1, 0, errr)
            raise
        data = _read_all(errr)
        if data.startswith(b"P"):
            line, _, data = data.partition(b"\n")
            p2 = int(line[1:])
        return _finish(p1, p2, data, None, None, stdio, console if sock is None else peer,
                       on_start)
    finally:
        if sock is not None:
            sock[0].close()
            sock[1].close()
        if peer is not None:
            os.close(peer)
        cg.remove()


def _kill_and_reap(waitee: int, p2: int, errr: int) -> None:
    """The caller failed while P2 sets up: kill it (P2, or P1 whose death kills P2 through
    its PDEATHSIG) and reap ``waitee``."""
    for pid in {waitee, p2} - {0}:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os.close(errr)
    _wait(waitee)


def _finish(waitee: int, p2: int, data: bytes, errr: int | None, errw: int | None, stdio,
            console, on_start) -> int:
    """The caller's side once P2 exists: read the child's report up to the exec (when
    ``errr`` is given), raise setup errors, call ``on_start``, wait for ``waitee`` (P2 itself
    or P1) and return Docker's exit code. Never leaves the container running on an error."""
    if errr is not None:
        os.close(errw)
        data = _read_all(errr)
    try:
        _raise_or_print(data, console if console is not None else stdio[2])
    except BaseException:
        _wait(waitee)
        raise
    try:
        if on_start is not None and p2 and not data:
            on_start(p2)
        return _docker_code(_wait(waitee))
    except BaseException:
        # on_start failed or the caller was interrupted (KeyboardInterrupt): never leave
        # a container running without its runner.
        if p2:
            try:
                os.kill(p2, signal.SIGKILL)
            except OSError:
                pass
        _wait(waitee)
        raise
