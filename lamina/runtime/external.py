"""Containers owned by an external OCI runtime (``--runtime runc`` or ``crun``).

lamina drives the runtime through its own verbs, as containerd's shim does, so every later
command acts on the container and never on the host:

* :func:`run_external`: ``<rt> create --pid-file`` (stdio handed to the container, or
  ``--console-socket`` for a terminal) -> the container init's host pid (recorded as the
  container's Pid: ``exec``, ``cp``, ``export`` and ``top`` use it) -> ``<rt> start`` -> wait
  for the init (this process is a child subreaper while it runs, so the init, orphaned when
  ``create`` exits, becomes its child) -> ``<rt> delete``. The rootfs mounts are made on the
  host around it, as the runtime wants a mounted ``root.path``.
* :func:`kill`, :func:`pause`, :func:`resume`, :func:`pids`, :func:`delete`,
  :func:`exec_process`: ``<rt> kill|pause|resume|ps|delete|exec <id>``.

The runtime's state lives in ``/run/<rt>/<id>``; a state left by a killed lamina is deleted
before the next start. Errors of the runtime raise Unavailable with its message.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess

from lamina.errors import InvalidArgument, NotFound, Unavailable

__all__ = ["run_external", "kill", "pause", "resume", "pids", "delete", "exec_process",
           "state", "RUNTIMES"]

RUNTIMES = ("runc", "crun")
_PR_SET_CHILD_SUBREAPER, _PR_GET_CHILD_SUBREAPER = 36, 37


def _exe(runtime: str) -> str:
    import shutil

    if runtime not in RUNTIMES:
        raise InvalidArgument(f"unknown runtime {runtime!r}: use builtin, runc or crun")
    exe = shutil.which(runtime)
    if exe is None:
        raise Unavailable(f"runtime {runtime} is not installed")
    return exe


def _verb(runtime: str, *args: str, what: str, quiet_missing: bool = False) -> str:
    """Run ``<runtime> args...``; its stdout, or Unavailable (NotFound when the runtime
    does not know the container) with the runtime's own message."""
    p = subprocess.run([_exe(runtime), *args], stdin=subprocess.DEVNULL, capture_output=True)
    if p.returncode != 0:
        msg = _message(p.stderr) or f"exit status {p.returncode}"
        if "does not exist" in msg or "not found" in msg.lower():
            if quiet_missing:
                return ""
            raise NotFound(f"{runtime} {what}: {msg}")
        raise Unavailable(f"{runtime} {what} failed: {msg}")
    return p.stdout.decode(errors="replace")


def _message(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("{"):  # --log-format json lines
            try:
                doc = json.loads(ln)
            except ValueError:
                continue
            if doc.get("level") in ("error", "fatal") and doc.get("msg"):
                return str(doc["msg"])
            continue
        return ln.removeprefix("time=").strip()
    return ""


def state(runtime: str, container_id: str) -> dict | None:
    """``<rt> state <id>`` as a dict (status, pid ...), None if the runtime has no such
    container."""
    out = _verb(runtime, "state", container_id, what="state", quiet_missing=True)
    if not out:
        return None
    try:
        return json.loads(out)
    except ValueError:
        raise Unavailable(f"{runtime} state {container_id}: unreadable output") from None


def kill(runtime: str, container_id: str, sig: int, *, all_processes: bool = False) -> None:
    """``<rt> kill [--all] <id> <sig>``. NotFound when the container is gone."""
    args = ["kill", *(["--all"] if all_processes else []), container_id, str(int(sig))]
    _verb(runtime, *args, what="kill")


def pause(runtime: str, container_id: str) -> None:
    _verb(runtime, "pause", container_id, what="pause")


def resume(runtime: str, container_id: str) -> None:
    _verb(runtime, "resume", container_id, what="resume")


def pids(runtime: str, container_id: str) -> list[int]:
    """Host pids of the container's processes (``<rt> ps --format json <id>``), sorted."""
    out = _verb(runtime, "ps", "--format", "json", container_id, what="ps")
    try:
        return sorted(int(p) for p in json.loads(out or "[]") or [])
    except (ValueError, TypeError):
        raise Unavailable(f"{runtime} ps {container_id}: unreadable output") from None


def delete(runtime: str, container_id: str, *, force: bool = True) -> None:
    """``<rt> delete [--force] <id>``; a container the runtime does not know is fine."""
    _verb(runtime, "delete", *(["--force"] if force else []), container_id, what="delete",
          quiet_missing=True)


# ---------------------------------------------------------------------------------------------
# run


def run_external(runtime: str, bundle: str, spec: dict, *, container_id: str, rootfs_mounts,
                 stdio, console, on_start, cgroup_parent: str, on_console, console_size,
                 on_spawn) -> int:
    """``launcher.run`` for runc/crun (same contract). A terminal needs ``on_console``: the
    runtime makes the pty in the container's devpts and hands its master over the console
    socket; a caller-made ``console`` is refused."""
    from lamina.mount import mount_all, unmount_all

    exe = _exe(runtime)
    linux = spec.setdefault("linux", {})
    if not linux.get("cgroupsPath"):
        linux["cgroupsPath"] = f"/{cgroup_parent}/{container_id}"
        tmp = os.path.join(bundle, ".config.json.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), "w") as f:
            json.dump(spec, f)  # 0600: the spec holds the container's environment
        os.replace(tmp, os.path.join(bundle, "config.json"))
    process = spec.get("process") or {}
    terminal = bool(process.get("terminal"))
    if terminal and on_console is None:
        raise InvalidArgument(f"runtime {runtime}: a terminal container needs on_console "
                              "(the runtime makes the pty; a caller-made console is refused)")
    if console is not None:
        raise InvalidArgument(f"runtime {runtime}: a caller-made console is not supported")
    rootfs = os.path.realpath(os.path.join(bundle, (spec.get("root") or {}).get("path", "")))
    if rootfs_mounts:
        mount_all(list(rootfs_mounts), rootfs)
    try:
        if terminal:
            msg_fd = _console_for_message(on_console)
            try:
                code = precheck_exec(process, rootfs, msg_fd)
            finally:
                if msg_fd >= 0:
                    os.close(msg_fd)
        else:
            code = precheck_exec(process, rootfs, stdio[2])
        if code:
            return code
        if os.path.exists(f"/run/{runtime}/{container_id}"):  # left by a killed lamina
            delete(runtime, container_id)
        return _create_start_wait(runtime, exe, bundle, container_id, stdio, terminal,
                                  on_console, console_size, on_start, on_spawn)
    finally:
        if rootfs_mounts:
            unmount_all(rootfs, detach=True)


def _console_for_message(on_console) -> int:
    """A terminal that only carries lamina's exec error message (the container did not
    start): a host pty whose master goes to ``on_console``; returns its slave."""
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    try:
        on_console(master)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return slave


def _create_start_wait(runtime: str, exe: str, bundle: str, cid: str, stdio, terminal: bool,
                       on_console, console_size, on_start, on_spawn) -> int:
    import tempfile

    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int(0)
    libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise Unavailable(f"becoming a child subreaper failed: "
                          f"{os.strerror(ctypes.get_errno())}")
    work = tempfile.mkdtemp(prefix="lamina-rt-", dir=_run_dir())
    listener = None
    pid = 0
    try:
        pid_file = os.path.join(work, "pid")
        args = [exe, "--log", os.path.join(work, "log.json"), "--log-format", "json",
                "create", "--bundle", bundle, "--pid-file", pid_file]
        if terminal:
            import socket

            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock_path = os.path.join(work, "console.sock")
            listener.bind(sock_path)
            listener.listen(1)
            args += ["--console-socket", sock_path]
            io = (subprocess.DEVNULL,) * 3
        else:
            io = stdio
        p = subprocess.run([*args, cid], stdin=io[0], stdout=io[1], stderr=io[2])
        if p.returncode != 0:
            raise Unavailable(f"{runtime} create failed: "
                              f"{_log_error(os.path.join(work, 'log.json')) or p.returncode}")
        with open(pid_file) as f:
            pid = int(f.read().strip())
        if on_spawn is not None:
            on_spawn()
        if listener is not None:
            master = _receive_console(listener, runtime)
            if console_size:
                _set_winsize(master, console_size)
            on_console(master)
        _verb(runtime, "start", cid, what="start")
        if on_start is not None:
            on_start(pid)
        return _wait_child(pid)
    except BaseException:
        if pid:  # never leave a container running without whoever runs it
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            _wait_child(pid)
        raise
    finally:
        if listener is not None:
            listener.close()
        try:
            delete(runtime, cid)
        except Exception:  # noqa: BLE001 - best effort: the next start deletes it too
            pass
        libc.prctl(_PR_SET_CHILD_SUBREAPER, was.value, 0, 0, 0)
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def _run_dir() -> str:
    d = "/run/lamina/rt" if os.geteuid() == 0 else None
    if d is None:
        return os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    os.makedirs(d, 0o700, exist_ok=True)
    return d


def _log_error(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return _message(f.read())
    except OSError:
        return ""


def _receive_console(listener, runtime: str) -> int:
    import array
    import socket

    listener.settimeout(30)
    try:
        conn, _ = listener.accept()
    except OSError as e:
        raise Unavailable(f"{runtime} did not send the container's terminal: {e}") from None
    fds = array.array("i")
    try:
        conn.settimeout(30)
        _, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(4 * fds.itemsize),
                                    socket.MSG_CMSG_CLOEXEC)
    finally:
        conn.close()
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    if not fds:
        raise Unavailable(f"{runtime} did not send the container's terminal")
    for extra in fds[1:]:
        os.close(extra)
    return fds[0]


def _set_winsize(fd: int, size) -> None:
    import fcntl
    import struct
    import termios

    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", int(size[0]), int(size[1]), 0, 0))
    except OSError:
        pass


def _wait_child(pid: int) -> int:
    """Docker's exit code of the container init ``pid`` (our child: we are its subreaper)."""
    while True:
        try:
            _, st = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255  # not ours after all (should not happen): its status is lost
        if os.WIFSIGNALED(st):
            return 128 + os.WTERMSIG(st)
        if os.WIFEXITED(st):
            return os.WEXITSTATUS(st)


# ---------------------------------------------------------------------------------------------
# exec


def exec_process(runtime: str, container_id: str, pid: int, process: dict, *,
                 stdio: tuple[int, int, int], console: int | None = None, on_child=None) -> int:
    """``<rt> exec --process <json> <id>`` in the foreground; Docker's exit code. The process
    (an OCI process object: the container's own profile with args/env/cwd/user replaced) gets
    ``stdio``; with ``process.terminal`` the runtime makes the pty in the container and relays
    it to ``console`` (a pty slave the caller reads). Missing or non-executable commands give
    127/126 with Docker's message, checked in the container's root (``/proc/<pid>/root``)."""
    import tempfile

    exe = _exe(runtime)
    err = console if process.get("terminal") else stdio[2]
    code = precheck_exec(process, f"/proc/{pid}/root", err)
    if code:
        return code
    with tempfile.NamedTemporaryFile("w", dir=_run_dir(), prefix="lamina-exec-",
                                     suffix=".json") as f:
        json.dump(process, f)
        f.flush()
        args = [exe, "exec", *(["--tty"] if process.get("terminal") else []),
                "--process", f.name, container_id]
        io = (console,) * 3 if process.get("terminal") else stdio
        p = subprocess.Popen(args, stdin=io[0], stdout=io[1], stderr=io[2])
        if on_child is not None:
            on_child(p.pid)
        while True:
            try:
                return p.wait()
            except InterruptedError:
                continue


# ---------------------------------------------------------------------------------------------
# Docker's 127/126 before the runtime runs anything


def precheck_exec(process: dict, rootfs: str, errfd: int) -> int:
    """Docker's 127/126 for a missing or non-executable command, looked up in ``rootfs``
    with openat2(RESOLVE_IN_ROOT) (the message goes to ``errfd``); 0 when it looks fine."""
    from lamina.safepath import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, openat2

    args = process.get("args") or []
    if not args:
        return 0
    name = args[0]
    env = dict(e.partition("=")[::2] for e in process.get("env") or ())
    default_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    cands = [name] if "/" in name else \
        [os.path.join(d or ".", name) for d in env.get("PATH", default_path).split(":")]
    rfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for c in cands:
            try:
                fd = openat2(rfd, c.lstrip("/"), os.O_PATH, RESOLVE_IN_ROOT
                             | RESOLVE_NO_MAGICLINKS)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
            finally:
                os.close(fd)
            if "/" in name:
                if st.st_mode & 0o170000 == 0o040000 or not st.st_mode & 0o111:
                    os.write(errfd, f'exec: "{name}": permission denied\n'.encode())
                    return 126
                return 0
            if st.st_mode & 0o170000 != 0o040000 and st.st_mode & 0o111:
                return 0
    finally:
        os.close(rfd)
    if "/" in name:
        # may come from a mount made by the runtime: let it decide
        return 0
    os.write(errfd, f'exec: "{name}": executable file not found in $PATH\n'.encode())
    return 127
