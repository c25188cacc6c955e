"""Starting, stopping and watching containers.

Two ways a container runs:
- **in-process** (``run_foreground``): a foreground ``lamina run`` without ``-t`` and
  without ``-d`` runs the container as its own child and is its monitor: no extra
  process, no socket. With ``--rm`` not even a log file is written.
- **monitored** (``start_monitored``): ``-d``, ``-t``, ``start``, restart policies. A
  monitor process (forked, own session) owns the container's stdio (a pty with ``-t``), the
  json-file log, an attach socket, the exit status and the restart policy, so ``attach``,
  ``logs -f``, ``stop`` and ``wait`` work from any later ``lamina`` invocation.

The record's State keeps Pid/PidStart of the container's init and MonitorPid/MonitorStart
of whoever waits for it; ``Containers.refresh`` uses them to notice a killed monitor.

Crash semantics (decided, tested in tests/test_containers_crash.py): a container dies with
whoever runs it (the launcher sets PR_SET_PDEATHSIG), so SIGKILL of a monitor or of a
foreground ``lamina run`` ends the container too; the next command shows it ``Exited (255)``
with State.Error naming the cause, ``rm -f``/``start`` work, its cgroups are removed, and
nothing was ever mounted on the host (mounts live in the container's mount namespace).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time

from lamina.errors import CannotRun, Conflict, InvalidArgument, LaminaError, Unavailable
from lamina.runtime import record
from lamina.runtime.containers import Containers, _pid_start, cgroup_parent_of, now_rfc3339, process_alive
from lamina.runtime.signals import parse_signal

TYPE_CHECKING = False
if TYPE_CHECKING:  # names used in annotations only; importing them costs start-up time
    import socket


def _running_state(pid: int) -> dict:
    return record.running_state(pid, pid_start=_pid_start(pid), now=now_rfc3339())


def _exited_state(code: int) -> dict:
    return record.exited_state(code, now=now_rfc3339())


def net_attach(containers: Containers, doc: dict):
    """The container's network for this start (lamina.network.sandbox.Sandbox), or None for
    host, none and container: modes (nothing to make; lamina.network is not imported)."""
    mode = doc["HostConfig"]["NetworkMode"]
    if mode in ("host", "none") or mode.startswith("container:") or \
            not (doc.get("NetworkSettings") or {}).get("Networks"):
        return None
    from lamina.network.sandbox import attach
    sb = attach(containers.store, doc)
    _net_events(containers, doc, _nets_of(sb), "connect")
    return sb


def _net_events(containers: Containers, doc: dict, nets, action: str) -> None:
    """Journal Docker's ``network connect``/``disconnect`` for each network of ``nets``
    (a Sandbox's endpoint networks: :func:`_nets_of`)."""
    from lamina.events import emit
    for net in nets:
        emit(containers.store.root, "network", action, net.id,
             {"container": doc["Id"], "name": net.name, "type": "bridge"})


def _nets_of(sb) -> list:
    return [] if sb is None else [ep.net for ep in sb.endpoints]


def _teardown(containers: Containers, doc: dict, sb) -> None:
    """Remove this start's network (``sb``) and journal the disconnects."""
    if sb is None:
        return
    nets = _nets_of(sb)
    sb.teardown()
    _net_events(containers, doc, nets, "disconnect")


def _started(containers: Containers, doc: dict, pid: int, sb, **more) -> tuple[dict, object]:
    """Record that ``pid`` runs (and this start's network, and ``State.Health`` starting when
    the container has a health check), journal ``start`` and start the health prober; returns
    the record and the prober (None without a health check)."""
    from lamina.runtime import health
    st = _running_state(pid)
    st.update(MonitorPid=os.getpid(), MonitorStart=_pid_start(os.getpid()), **more)
    h = health.initial(doc)
    if h is not None:
        st["Health"] = h

    def apply(d):
        d["State"].update(st)
        if "RestartCount" in more:
            d["RestartCount"] = more["RestartCount"]
        _with_network(d, sb)
    doc = containers.update(doc["Id"], apply)
    containers.event(doc, "start")
    prober = None
    if h is not None:
        prober = health.Prober(containers.store.root, doc["Id"], st["StartedAt"])
        prober.start()
    return doc, prober


def discard(containers: Containers, doc: dict) -> None:
    """``--rm``: remove a container whose start failed (its directory, cgroups, network
    leases, anonymous volumes), unless something runs it after all."""
    if not doc["HostConfig"].get("AutoRemove"):
        return
    try:
        cur = containers.refresh(containers.reload(doc))
    except LaminaError:
        return  # gone already
    if not record.State.of(cur).active:
        containers.delete(cur, volumes=True)


def _with_network(doc: dict, sb) -> None:
    """Put the NetworkSettings of this start (``sb``) or of a stopped container into ``doc``."""
    if doc["HostConfig"]["NetworkMode"] in ("host", "none"):
        return
    from lamina.network.sandbox import settings
    doc["NetworkSettings"] = settings(doc, sb)


def _check_startable(doc: dict) -> None:
    st = doc["State"]
    if st["Running"]:
        raise Conflict(f"container {doc['Id'][:12]} is already running")


# -- in-process -----------------------------------------------------------------------
def run_foreground(containers: Containers, doc: dict, *, stdin: bool, sig_proxy: bool = True) -> int:
    # which of the container's output streams this process shows: Config.AttachStdout/err
    # (``-a``); the others still reach the log
    """Run the container as a child of this process; returns its exit code.

    The container never gets this process's descriptors (a terminal it could type into with
    TIOCSTI, files it could reopen through /proc/self/fd): its 0/1/2 are pipes that threads
    copy, as Docker does. stdin is copied only with ``stdin`` (``-i``), else /dev/null.
    A container on a bridge network gets its network before it starts, and this process
    (its monitor) removes it when it ends."""
    _check_startable(doc)
    try:
        sb = net_attach(containers, doc)
        try:
            bundle, rootfs_mounts = containers.prepare_bundle(doc, sb)
        except BaseException:
            _teardown(containers, doc, sb)
            raise
    except BaseException:
        discard(containers, doc)
        raise
    try:
        return _run_foreground(containers, doc, sb, bundle, rootfs_mounts,
                               stdin=stdin and doc["Config"].get("AttachStdin", True), sig_proxy=sig_proxy)
    finally:
        _teardown(containers, doc, sb)
        if doc["HostConfig"]["AutoRemove"]:
            discard(containers, doc)


def _run_foreground(containers: Containers, doc: dict, sb, bundle, rootfs_mounts, *, stdin: bool,
                    sig_proxy: bool) -> int:
    from lamina.runtime import launcher
    from lamina.runtime.stdio import Pipes
    cid = doc["Id"]
    log = None
    if not doc["HostConfig"]["AutoRemove"]:
        from lamina.runtime.logs import open_log
        log = open_log(doc)
    try:
        cfg = doc["Config"]
        pipes = Pipes(stdin=0 if stdin else None, stdout=1 if cfg.get("AttachStdout", True) else None,
                      stderr=2 if cfg.get("AttachStderr", True) else None, log=log)
    except BaseException:
        if log is not None:
            log.close()
        raise
    pid_box: list[int] = []
    probers: list = []

    def on_start(pid: int) -> None:
        pid_box.append(pid)
        _, prober = _started(containers, doc, pid, sb)
        if prober is not None:
            probers.append(prober)

    old = {}
    if sig_proxy:
        def forward(signum, _frame):
            if pid_box:
                try:
                    os.kill(pid_box[0], signum)
                except ProcessLookupError:
                    pass
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            old[sig] = signal.signal(sig, forward)
    try:
        code = launcher.run(bundle, container_id=cid, rootfs_mounts=rootfs_mounts, stdio=pipes.child,
                            runtime=doc["HostConfig"].get("Runtime") or "builtin", on_start=on_start,
                            on_spawn=pipes.start, cgroup_parent=cgroup_parent_of(doc))
    except LaminaError as e:
        if doc["HostConfig"]["AutoRemove"]:
            containers.delete(doc, volumes=True)
        else:
            failed = {**_exited_state(128), "Error": str(e)}
            containers.update(cid, lambda d: (d["State"].update(failed), _with_network(d, None)))
        raise
    finally:
        for p in probers:  # before the record changes: no probe result lands after the exit
            p.stop()
        for sig, h in old.items():
            signal.signal(sig, h)
        pipes.finish()
        if log is not None:
            log.close()
    final = containers.update(cid, lambda d: (d["State"].update(_exited_state(code)), _with_network(d, None)))
    containers.event(final, "die", exitCode=str(code))
    return code  # run_foreground removes an --rm container once its network is gone


# -- monitored ------------------------------------------------------------------------
def start_monitored(containers: Containers, doc: dict, *, wait_client: bool = False) -> int:
    """Fork a monitor that starts the container; returns once it runs (or raises its error).

    With ``wait_client`` (``run -t``, ``start -a``) the monitor only listens and returns 0
    at once; it starts the container when the first client has attached (or after 30 s), so
    no early output is lost, and reports a start failure to that client as an error
    message and exit code 125."""
    _check_startable(doc)
    containers.store.close_db()  # the monitor opens its own; never carry SQLite across fork
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # intermediate: new session, fork the monitor, exit
        try:
            os.close(r)
            os.setsid()
            if os.fork() == 0:
                _monitor_main(containers.store.root, doc["Id"], w, wait_client)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(w)
    os.waitpid(pid, 0)
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
        if b"\n" in data:
            break
    os.close(r)
    msg = data.decode(errors="replace").strip()
    if msg.startswith("ok"):
        return int(msg.split()[1])
    if msg == "listening":
        return 0
    if msg.startswith("exit "):  # the command could not be run: its message, its code (126, 127)
        _, code, text = (msg + " ").split(" ", 2)
        err = CannotRun(text.strip())
        err.exit_code = int(code) if code.isdigit() else 125
        raise err
    raise Unavailable(msg[4:] if msg.startswith("err ") else
                      f"the monitor of container {doc['Id'][:12]} died before the container started")


class _Monitor:
    """State of one monitor process (runs in the forked monitor only)."""

    def __init__(self, store_root: str, cid: str) -> None:
        from lamina.store import Store
        self.containers = Containers(Store(store_root))
        self.cid = cid
        self.doc = self.containers.get(cid)
        self.clients: dict[socket.socket, dict] = {}
        self.lock = threading.Lock()
        self.tty = self.doc["Config"]["Tty"]
        self.open_stdin = self.doc["Config"]["OpenStdin"]
        from lamina.runtime.logs import open_log
        self.log = open_log(self.doc)

    def broadcast(self, kind: int, payload: bytes) -> None:
        from lamina.runtime.attach import frame
        data = frame(kind, payload)
        with self.lock:
            for c in list(self.clients):
                try:
                    c.sendall(data)
                except OSError:
                    self.clients.pop(c, None)


def _monitor_main(store_root: str, cid: str, ready_w: int, wait_client: bool = False) -> None:
    """Body of the monitor process. Never returns."""
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        code = _monitor(store_root, cid, ready_w, wait_client)
    except BaseException as e:  # report to the starter if it still listens, and to monitor.log
        try:
            from lamina.errors import describe
            os.write(ready_w, f"err {describe(e)}\n".encode())
        except OSError:
            pass
        try:
            import traceback
            with open(os.open(os.path.join(store_root, "containers", cid, "monitor.log"),
                              os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600), "a") as f:
                f.write(f"{now_rfc3339()} monitor failed:\n{traceback.format_exc()}\n")
        except OSError:
            pass
    finally:
        os._exit(code)


def _monitor(store_root: str, cid: str, ready_w: int, wait_client: bool = False) -> int:
    import selectors
    import socket

    from lamina.runtime import launcher
    from lamina.runtime.attach import CLOSE_STDIN, EXIT, RESIZE, STDERR, STDIN, STDOUT, FrameReader
    m = _Monitor(store_root, cid)
    containers = m.containers
    d = containers.dir(cid)
    sock_path = os.path.join(d, "attach.sock")
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    from lamina.runtime.attach import unix_path
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with unix_path(sock_path) as addr:
        listener.bind(addr)
        os.chmod(addr, 0o600)  # the container dir is 0700 already; the socket is private too
    listener.listen(16)
    containers.set_state(cid, MonitorPid=os.getpid(), MonitorStart=_pid_start(os.getpid()))
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, ("accept", None))
    wake_r, wake_w = os.pipe()
    sel.register(wake_r, selectors.EVENT_READ, ("wake", None))
    state = {"stdin_w": None, "master": None, "done": False, "size": None}
    readers: dict = {}

    def drop(c) -> None:
        sel.unregister(c)
        readers.pop(c, None)
        with m.lock:
            m.clients.pop(c, None)
        c.close()

    def io_loop() -> None:
        while not state["done"]:
            for key, _ in sel.select(timeout=0.5):
                kind, extra = key.data
                if kind == "accept":
                    c, _ = listener.accept()
                    readers[c] = [FrameReader(), b"", False]
                    sel.register(c, selectors.EVENT_READ, ("client", c))
                elif kind == "wake":
                    os.read(wake_r, 64)
                elif kind == "out":
                    fd, stream = extra
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    if not data:  # the pty master is closed by the run loop, pipes here
                        _close_out(sel, fd, close=fd != state["master"])
                        continue
                    with m.lock:
                        m.log.write(stream, data)
                    m.broadcast(STDERR if stream == "stderr" else STDOUT, data)
                elif kind == "client":
                    c = extra
                    try:
                        data = c.recv(65536)
                    except OSError:
                        data = b""
                    info = readers.get(c)
                    if not data or info is None:
                        drop(c)
                        continue
                    if not info[2]:  # header line
                        info[1] += data
                        if b"\n" not in info[1]:
                            if len(info[1]) > 65536:  # no header: a broken client
                                drop(c)
                            continue
                        head, _, data = info[1].partition(b"\n")
                        info[2] = True
                        try:
                            hdr = json.loads(head)
                            want_stdin = bool(hdr.get("stdin"))
                            if hdr.get("size"):
                                state["size"] = hdr["size"].encode()
                                if state["master"] is not None:
                                    _set_winsize(state["master"], state["size"])
                        except (ValueError, AttributeError):
                            want_stdin = False
                        with m.lock:
                            m.clients[c] = {"stdin": want_stdin}
                        first_client.set()
                    try:
                        frames = info[0].feed(data)
                    except ValueError:
                        drop(c)
                        continue
                    for fkind, payload in frames:
                        target = state["master"] if m.tty else state["stdin_w"]
                        if fkind == STDIN and target is not None and m.clients.get(c, {}).get("stdin"):
                            try:
                                os.write(target, payload)
                            except OSError:
                                pass
                        elif fkind == RESIZE:
                            state["size"] = payload
                            if state["master"] is not None:
                                _set_winsize(state["master"], payload)
                        elif fkind == CLOSE_STDIN and not m.tty and state["stdin_w"] is not None:
                            os.close(state["stdin_w"])
                            state["stdin_w"] = None

    first_client = threading.Event()
    io = threading.Thread(target=io_loop, daemon=True)
    io.start()
    restarts = 0
    ready_sent = False
    client_code = None  # the exit code attached clients get, when it is not the container's
    if wait_client:
        os.write(ready_w, b"listening\n")
        ready_sent = True
        first_client.wait(30)
    code = 0
    while True:
        doc = containers.get(cid)
        sb = None
        try:
            sb = net_attach(containers, doc)
            bundle, rootfs_mounts = containers.prepare_bundle(doc, sb)
        except LaminaError as e:
            _teardown(containers, doc, sb)
            containers.set_state(cid, **_exited_state(128), Error=str(e))
            discard(containers, doc)  # --rm: nothing of it stays
            if not ready_sent:
                os.write(ready_w, f"err {e}\n".encode())
            else:
                m.broadcast(STDERR, f"Error: {e}\n".encode())
                m.broadcast(EXIT, str(e.exit_code).encode())
            return 1
        console = on_console = console_size = None
        runtime = doc["HostConfig"].get("Runtime") or "builtin"
        if m.tty:
            # the launcher (or runc) makes the pty in the container's own devpts (tty:
            # /dev/pts/0) and hands us its master before the exec; 0/1/2 (/dev/null) until then
            def on_console(master: int) -> None:
                state["master"] = master
                if state["size"]:  # a resize that came after console_size was read
                    _set_winsize(master, state["size"])
                sel.register(master, selectors.EVENT_READ, ("out", (master, "stdout")))
                os.write(wake_w, b"x")

            try:
                console_size = tuple(int(x) for x in (state["size"] or b"").split()) or None
            except ValueError:
                console_size = None
            stdio = (0, 1, 2)
            child_fds = []
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            if m.open_stdin:
                in_r, in_w = os.pipe()
                if state["stdin_w"] is not None:  # the previous run's (restart)
                    try:
                        os.close(state["stdin_w"])
                    except OSError:
                        pass
                state["stdin_w"] = in_w
            else:
                in_r = os.open(os.devnull, os.O_RDONLY)
            sel.register(out_r, selectors.EVENT_READ, ("out", (out_r, "stdout")))
            sel.register(err_r, selectors.EVENT_READ, ("out", (err_r, "stderr")))
            stdio = (in_r, out_w, err_w)
            child_fds = [in_r, out_w, err_w]
        os.write(wake_w, b"x")

        probers: list = []

        def on_start(pid: int, restarts: int = restarts, sb=sb, doc=doc, probers=probers) -> None:
            nonlocal ready_sent  # called during this run
            _, prober = _started(containers, doc, pid, sb, RestartCount=restarts)
            if prober is not None:
                probers.append(prober)
            if not ready_sent:
                os.write(ready_w, f"ok {pid}\n".encode())
                ready_sent = True

        try:
            code = launcher.run(bundle, container_id=cid, rootfs_mounts=rootfs_mounts, stdio=stdio,
                                console=console, runtime=runtime, on_start=on_start,
                                on_console=on_console, console_size=console_size,
                                cgroup_parent=cgroup_parent_of(doc))
            error = ""
        except LaminaError as e:
            code, error = 128, str(e)
            if not ready_sent:
                os.write(ready_w, f"err {e}\n".encode())
                ready_sent = True
            elif restarts == 0:
                m.broadcast(STDERR, f"Error: {e}\n".encode())
                client_code = e.exit_code
        for p in probers:
            p.stop()
        for fd in child_fds:
            os.close(fd)
        time.sleep(0.02)  # let the pump drain what the container wrote last
        _drain(sel, m, STDOUT, STDERR, keep=state["master"])
        if state["master"] is not None:
            try:
                sel.unregister(state["master"])
            except (KeyError, ValueError):
                pass
            os.close(state["master"])
            state["master"] = None
        with m.lock:
            m.log.flush()
        if not ready_sent:  # the command never ran (exec: "x": executable file not found ...)
            why = _last_stderr_line(m.doc["LogPath"]) or "the container exited before it started"
            os.write(ready_w, f"exit {code} {why}\n".encode())
            ready_sent = True
        nets = _nets_of(sb)
        if sb is not None:  # before the record says exited: a next start finds the network gone
            sb.teardown()
        exited = {**_exited_state(code), "Error": error}
        doc = containers.update(cid, lambda d, exited=exited: (d["State"].update(exited), _with_network(d, None)))
        if not error:
            containers.event(doc, "die", exitCode=str(code))
        _net_events(containers, doc, nets, "disconnect")
        policy = doc["HostConfig"]["RestartPolicy"]
        stopped = doc["State"].get("StoppedByUser")
        again = not stopped and not error and (
            policy["Name"] in ("always", "unless-stopped") or
            (policy["Name"] == "on-failure" and code != 0 and
             (policy["MaximumRetryCount"] == 0 or restarts < policy["MaximumRetryCount"])))
        if not again:
            break
        restarts += 1
        containers.set_state(cid, Status="restarting", Restarting=True)
        # back off (Docker: 100 ms doubling), but a `stop` during the pause ends the loop
        deadline = time.monotonic() + min(0.1 * (2 ** min(restarts - 1, 6)), 5)
        while time.monotonic() < deadline and not containers.get(cid)["State"].get("StoppedByUser"):
            time.sleep(0.05)
        if containers.get(cid)["State"].get("StoppedByUser"):
            containers.set_state(cid, Status="exited", Restarting=False)
            break
    m.broadcast(EXIT, str(code if client_code is None else client_code).encode())
    state["done"] = True
    os.write(wake_w, b"x")
    with m.lock:
        for c in list(m.clients):
            c.close()
        m.log.close()
    listener.close()
    try:
        os.unlink(sock_path)
    except FileNotFoundError:
        pass
    doc = containers.get(cid)
    if doc["HostConfig"]["AutoRemove"]:
        containers.delete(doc, volumes=True)
    else:
        containers.set_state(cid, MonitorPid=0)
    return 0


def _last_stderr_line(log_path: str) -> str:
    """The last line a container wrote to stderr, from its json-file log ("" if none)."""
    from lamina.runtime.logs import read_entries
    try:
        entries, _ = read_entries(log_path)
    except (OSError, ValueError):
        return ""
    for e in reversed(entries):
        text = (e.get("log") or "").strip()
        if e.get("stream") == "stderr" and text:
            return text.splitlines()[-1]
    return ""


def _drain(sel, m, STDOUT, STDERR, keep: int | None = None) -> None:
    """Read whatever is still buffered in the output pipes (non-blocking)."""
    for key in list(sel.get_map().values()):
        kind, extra = key.data
        if kind != "out":
            continue
        fd, stream = extra
        os.set_blocking(fd, False)
        while True:
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, OSError):
                break
            if not data:
                _close_out(sel, fd, close=fd != keep)
                break
            with m.lock:
                m.log.write(stream, data)
            m.broadcast(STDERR if stream == "stderr" else STDOUT, data)


def _close_out(sel, fd: int, *, close: bool = True) -> None:
    """An output pipe reached EOF: stop watching it and close it (the io thread and the
    final drain may both get here; whoever is second finds nothing to do)."""
    try:
        sel.unregister(fd)
    except (KeyError, ValueError):
        return
    if close:
        try:
            os.close(fd)
        except OSError:
            pass


def _set_winsize(fd: int, payload: bytes) -> None:
    import fcntl
    import struct
    import termios
    try:
        rows, cols = (int(x) for x in payload.split())
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except (ValueError, OSError):
        pass


# -- signals and waiting ------------------------------------------------------------


def external_runtime(doc: dict) -> str | None:
    """The OCI runtime (runc, crun) that owns the container, None for the built-in one."""
    rt = doc["HostConfig"].get("Runtime") or "builtin"
    return None if rt in ("builtin", "lamina") else rt


def signal_container(doc: dict, sig: int, containers: Containers | None = None) -> None:
    """Send ``sig`` to the container's init (``<runtime> kill`` for a runc/crun one); with
    ``containers``, journal Docker's ``kill`` event (``signal=<number>``)."""
    st = doc["State"]
    if not st["Running"] or not process_alive(st.get("Pid"), st.get("PidStart")):
        raise Conflict(f"Container {doc['Id']} is not running")
    if containers is not None:
        containers.event(doc, "kill", signal=str(int(sig)))
    rt = external_runtime(doc)
    if rt is not None:
        from lamina.errors import NotFound
        from lamina.runtime import external
        try:
            external.kill(rt, doc["Id"], sig)
            return
        except NotFound:
            raise ProcessLookupError(f"container {doc['Id'][:12]} is gone") from None
    os.kill(st["Pid"], sig)


def wait_exit(containers: Containers, doc: dict, timeout: float | None = None) -> dict | None:
    """Wait until the container is no longer running; returns the final record (None on timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pid = doc["State"].get("Pid")
    pidfd = None
    if pid and process_alive(pid, doc["State"].get("PidStart")):
        try:
            pidfd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            pidfd = None
    try:
        if pidfd is not None:
            import select
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([pidfd], [], [], left)[0]:
                return None
        while True:
            try:
                cur = containers.get(doc["Id"])
            except LaminaError:
                return None  # removed (--rm)
            st = cur["State"]
            if not st["Running"] and st["Status"] not in ("restarting",):
                return cur
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.01)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def stop(containers: Containers, doc: dict, *, timeout: int | None = None, sig: str | None = None) -> None:
    """STOPSIGNAL, wait ``timeout`` (default StopTimeout or 10 s), then SIGKILL."""
    stop_sig = parse_signal(sig) if sig else None
    doc = containers.refresh(doc)
    containers.set_state(doc["Id"], StoppedByUser=True)
    if doc["State"]["Status"] == "restarting":  # between two runs: the monitor ends its loop
        wait_exit(containers, doc, timeout=10)
        return
    if not doc["State"]["Running"]:
        return
    if doc["State"].get("Paused"):
        unpause(containers, doc)
    t = timeout if timeout is not None else doc["Config"].get("StopTimeout", 10)
    try:
        if stop_sig is None:
            try:
                stop_sig = parse_signal(doc["Config"].get("StopSignal") or "SIGTERM")
            except InvalidArgument:  # a record from before signals were checked: Docker's default
                stop_sig = signal.SIGTERM
        signal_container(doc, stop_sig, containers)
    except (Conflict, ProcessLookupError):
        return
    if t < 0:
        wait_exit(containers, doc)
    elif wait_exit(containers, doc, timeout=t) is None:
        kill_and_wait(containers, doc)
    containers.event(doc, "stop")


def remove(containers: Containers, doc: dict, *, force: bool = False, volumes: bool = False) -> None:
    """``docker rm``: a running (paused, restarting) container is a Conflict unless ``force``,
    which kills it and waits for its monitor first; then :meth:`Containers.delete`."""
    doc = containers.refresh(doc)
    if record.State.of(doc).active:
        if not force:
            raise Conflict(f"You cannot remove a running container {doc['Id']}. "
                           f"Stop the container before attempting removal or force remove")
        kill_and_wait(containers, doc)
    containers.delete(doc, volumes=volumes)


def kill_and_wait(containers: Containers, doc: dict) -> None:
    """SIGKILL and wait; the restart policy must not bring it back (``rm -f``, ``stop``)."""
    containers.set_state(doc["Id"], StoppedByUser=True)
    doc = containers.refresh(doc)
    if doc["State"].get("Paused"):
        unpause(containers, doc)
    try:
        signal_container(doc, signal.SIGKILL, containers)
    except (Conflict, ProcessLookupError):
        return
    wait_exit(containers, doc, timeout=30)


def pause(containers: Containers, doc: dict) -> None:
    from lamina.runtime import launcher
    if not doc["State"]["Running"]:
        raise Conflict(f"Container {doc['Id']} is not running")
    if doc["State"].get("Paused"):
        raise Conflict(f"Container {doc['Id']} is already paused")
    rt = external_runtime(doc)
    if rt is not None:
        from lamina.runtime import external
        external.pause(rt, doc["Id"])
    else:
        launcher.freeze(doc["Id"], cgroup_parent=cgroup_parent_of(doc))
    containers.set_state(doc["Id"], Paused=True, Status="paused")
    containers.event(doc, "pause")


def unpause(containers: Containers, doc: dict) -> None:
    from lamina.runtime import launcher
    if not doc["State"].get("Paused"):
        raise Conflict(f"Container {doc['Id']} is not paused")
    rt = external_runtime(doc)
    if rt is not None:
        from lamina.runtime import external
        external.resume(rt, doc["Id"])
    else:
        launcher.thaw(doc["Id"], cgroup_parent=cgroup_parent_of(doc))
    containers.set_state(doc["Id"], Paused=False, Status="running")
    containers.event(doc, "unpause")
