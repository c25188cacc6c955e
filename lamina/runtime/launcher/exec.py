""":func:`exec_in`: one more process inside a running container (its namespaces, cgroups,
rlimits, OOM score, seccomp filter and capabilities).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from lamina.errors import InvalidArgument, NotFound, Unavailable
from lamina.runtime.launcher.base import (
    _CGROUP_ROOT,
    _CLONE_NEWCGROUP,
    _CLONE_NEWIPC,
    _CLONE_NEWNET,
    _CLONE_NEWNS,
    _CLONE_NEWPID,
    _CLONE_NEWUTS,
    _PR_SET_PDEATHSIG,
    _RLIMIT_NUM,
    _TIOCSCTTY,
    _UMASK,
    _check,
    _docker_code,
    _lib,
    _prctl,
    _read_all,
    _report,
    _wait,
)
from lamina.runtime.launcher.cgroups import _is_v2, _v1_hierarchies, _write, cgroup_dirs
from lamina.runtime.launcher.launch import _kill_and_reap, _raise_or_print
from lamina.runtime.launcher.process import _apply_security, _exec, _oom_score_adj, _Proc, _set_oom_score_adj
from lamina.runtime.launcher.spawn import _close_all_but, _setup_stdio


def exec_in(pid: int, process: dict, *, stdio: tuple[int, int, int] = (0, 1, 2),
            console: int | None = None, cgroup: str | None = None,
            seccomp: dict | None = None, on_spawn: Callable[[], None] | None = None,
            on_child: Callable[[int], None] | None = None) -> int:
    """Run ``process`` (an OCI process object) inside the running container whose PID 1 has
    host pid ``pid``; return Docker's exit code (126/127 for exec failures).

    The process gets the container's whole profile, nothing of the caller: it joins the
    target's cgroups (``cgroup``, e.g. ``/lamina/<id>``, or the ones in
    ``/proc/<pid>/cgroup``; a failure is an error), then its ipc, uts, net, cgroup, pid and
    mount namespaces, forks so the pid namespace applies, chroots to the target's root, takes
    the container init's rlimits and oom_score_adj (never above what this process may set),
    a new session keyring, umask 022, and the process's user, capabilities, no_new_privs and
    ``seccomp`` (the container's ``linux.seccomp`` object) before the exec. Its environment
    is ``process.env`` only; 0/1/2 are ``stdio`` (guarded as in :func:`run`) or ``console``.
    ``on_spawn`` as in :func:`run`; ``on_child(pid)`` gets the host pid of the process in the
    container's namespaces whose SIGKILL ends the command too (it dies with it: the health
    check's timeout). Raises NotFound if the process is gone, other
    LaminaErrors for setup failures.
    """
    p = _Proc(process, seccomp)
    if p.terminal and console is None:
        raise InvalidArgument("process.terminal is set but no console fd was given")
    guard = None
    if console is None:
        from lamina.runtime.stdio import Pipes, is_private

        if not all(is_private(fd) for fd in stdio):
            guard = Pipes(stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], only_unsafe=True)
            stdio = guard.child
    nsfds: list[tuple[int, int]] = []
    try:
        for name, flag in (("ipc", _CLONE_NEWIPC), ("uts", _CLONE_NEWUTS),
                           ("net", _CLONE_NEWNET), ("cgroup", _CLONE_NEWCGROUP),
                           ("pid", _CLONE_NEWPID), ("mnt", _CLONE_NEWNS)):
            try:
                if os.stat(f"/proc/{pid}/ns/{name}").st_ino == \
                        os.stat(f"/proc/self/ns/{name}").st_ino:
                    continue
                nsfds.append((os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC),
                              flag))
            except FileNotFoundError:
                raise NotFound(f"container process {pid} is not running") from None
        rootfd = os.open(f"/proc/{pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        nsfds.append((rootfd, 0))
        procs = _cgroup_procs_of(pid, cgroup)
        limits = _limits_of(pid)
        oom = _oom_score_adj(pid)
        errr, errw = os.pipe2(os.O_CLOEXEC)
        c = os.fork()
        if c == 0:
            code = 125
            try:
                _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                _close_all_but([errw, *stdio, console, *(fd for fd, _ in nsfds)])
                os.umask(_UMASK)
                for path in procs:
                    try:
                        _write(path, "0")
                    except OSError as e:
                        raise Unavailable(f"joining the container's cgroup "
                                          f"{os.path.dirname(path)} failed: {e.strerror}") from e
                for fd, flag in nsfds:
                    if flag and _lib().setns(fd, flag) != 0:
                        _check(-1, f"setns {flag:#x}")
                os.fchdir(rootfd)
                os.chroot(".")
                g = os.fork()
                if g == 0:
                    try:
                        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
                        if console is not None:
                            os.setsid()
                            _lib().ioctl(console, _TIOCSCTTY, None)
                        _setup_stdio(stdio if console is None else (console,) * 3, errw)
                        _set_limits(limits)
                        _set_oom_score_adj(oom)
                        try:
                            os.chdir(p.cwd)
                        except OSError as e:
                            raise Unavailable(f"chdir to {p.cwd!r} failed: {e.strerror}") from e
                        _apply_security(p)
                    except BaseException as e:  # noqa: BLE001
                        _report(3, e)
                        os._exit(125)
                    _exec(p, 3)
                    os._exit(125)
                os.close(errw)
                code = _docker_code(_wait(g))
            except BaseException as e:  # noqa: BLE001
                _report(errw, e)
            os._exit(code)
        os.close(errw)
        try:
            if on_child is not None:
                on_child(c)
            if guard is not None:
                guard.start()
            if on_spawn is not None:
                on_spawn()
        except BaseException:
            _kill_and_reap(c, 0, errr)
            raise
        data = _read_all(errr)
        try:
            _raise_or_print(data, console if console is not None else stdio[2])
        except BaseException:
            _wait(c)
            raise
        return _docker_code(_wait(c))
    finally:
        for fd, _ in nsfds:
            os.close(fd)
        if guard is not None:
            guard.finish(wait_eof=False)


def _limits_of(pid: int) -> list[tuple[int, int, int]]:
    """The rlimits of process ``pid`` (the container's init): [(resource, soft, hard)]."""
    import resource

    out = []
    for num in sorted(set(_RLIMIT_NUM.values())):
        try:
            soft, hard = resource.prlimit(pid, num)
        except ProcessLookupError:
            raise NotFound(f"container process {pid} is not running") from None
        except (OSError, ValueError):
            continue
        out.append((num, soft, hard))
    return out


def _set_limits(limits: list[tuple[int, int, int]]) -> None:
    """Take the container init's rlimits; one whose hard limit is above ours (raising needs
    CAP_SYS_RESOURCE) is set as high as we may, never above the init's."""
    import resource  # imported by _limits_of before the fork: no file is read here

    for num, soft, hard in limits:
        try:
            resource.setrlimit(num, (soft, hard))
        except (OSError, ValueError):
            _, mine = resource.getrlimit(num)
            def cap(v, mine=mine):
                return v if mine == resource.RLIM_INFINITY or (v != resource.RLIM_INFINITY and v <= mine) else mine
            try:
                resource.setrlimit(num, (cap(soft), cap(hard)))
            except (OSError, ValueError) as e:
                raise Unavailable(f"setting rlimit {num} to the container's failed: {e}") from e


def _cgroup_procs_of(pid: int, cgroup: str | None) -> list[str]:
    if cgroup is not None:
        return [os.path.join(d, "cgroup.procs") for d in cgroup_dirs(cgroup).values()]
    out = []
    hier = {} if _is_v2() else _v1_hierarchies()
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise NotFound(f"container process {pid} is not running") from None
    for line in lines:
        _, ctl, path = line.split(":", 2)
        if _is_v2():
            out.append(os.path.join(_CGROUP_ROOT, path.lstrip("/"), "cgroup.procs"))
            continue
        for point, c in hier.items():
            if c == ctl:
                out.append(os.path.join(point, path.lstrip("/"), "cgroup.procs"))
    return out
