"""Running the registry: sockets, worker processes, signals, readiness, access log, online GC.

``serve(...)`` binds the address (``127.0.0.1:0`` picks a free port), prints one readiness
line on stdout and flushes it::

    lamina registry listening on http://127.0.0.1:40123

and then serves until SIGTERM or SIGINT. With ``workers > 1`` it forks that many
processes in all (itself included); each has its own ``SO_REUSEPORT`` socket on the same
port, so the kernel spreads connections over them, and all share the store (whose every
state is on disk, see storage.py and uploads.py). On SIGTERM each process stops
accepting, finishes the requests it is answering (30 s at most), closes idle keep-alive
connections and exits; a request cut short leaves at most an upload session, never a
half-written blob, manifest or tag.

Access log: one line per request on stdout in the combined format registry:2 writes
(gorilla's CombinedLoggingHandler), e.g.::

    127.0.0.1 - - [30/Nov/2025:08:17:45 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "docker/20.10.24"

buffered and flushed every second (and when 32 KiB accumulate), at ``--log-level info``
or ``debug``.

Online GC: ``gc_interval`` seconds > 0 runs ``lamina registry gc`` (with the grace period)
as a subprocess of the first worker at that interval.

In-process use (tests, other tools): ``start_in_thread(root=..., addr="127.0.0.1:0")``
returns a handle with ``.url`` and ``.stop()``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid --addr {addr!r}: want HOST:PORT (127.0.0.1:5000)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    s.listen(1024)
    s.setblocking(False)
    return s


class AccessLog:
    """Combined-format lines, buffered; written whole-line in pieces ≤ 4 KiB so several
    workers sharing one pipe never interleave inside a line."""

    def __init__(self, fd: int = 1) -> None:
        self.fd = fd
        self.buf: list[str] = []
        self.size = 0
        self._sec = -1
        self._stamp = ""

    def line(self, req, status: int, nbytes: int) -> None:
        now = int(time.time())
        if now != self._sec:
            self._sec = now
            self._stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
        h = req.headers
        s = (f'{req.remote} - {req.user or "-"} [{self._stamp}] "{req.method} {req.target} '
             f'HTTP/{req.version}" {status} {nbytes} "{h.get("referer", "")}" '
             f'"{h.get("user-agent", "")}"\n')
        self.buf.append(s)
        self.size += len(s)
        if self.size > 32768:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        data = "".join(self.buf).encode("utf-8", "replace")
        self.buf, self.size = [], 0
        try:
            while data:
                cut = len(data) if len(data) <= 4096 else data.rfind(b"\n", 0, 4096) + 1 or 4096
                n = os.write(self.fd, data[:cut])
                data = data[n:]
        except (BrokenPipeError, BlockingIOError):
            pass


def _ssl_context(cert: str | None, key: str | None):
    if not cert:
        return None
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


class Config:
    """Everything ``serve`` needs (see ``lamina registry serve --help``)."""

    def __init__(self, *, root: str, addr: str = "127.0.0.1:5000", htpasswd: str | None = None,
                 auth: str | None = None, acl: str | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, read_only: bool = False, no_delete: bool = False,
                 max_manifest_size: int = 4 << 20, log_level: str = "info", workers: int = 1,
                 gc_interval: float = 0.0, gc_grace: float = 600.0) -> None:
        self.root = root
        self.addr = addr
        self.htpasswd = htpasswd
        self.auth = auth or ("htpasswd" if htpasswd else "none")
        self.acl = acl
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.read_only = read_only
        self.no_delete = no_delete
        self.max_manifest_size = max_manifest_size
        self.log_level = log_level
        self.workers = max(1, workers)
        self.gc_interval = gc_interval
        self.gc_grace = gc_grace


def _make_app(cfg: Config, loop, metrics):
    from lamina.registry.server.app import App, Options
    from lamina.registry.server.storage import Storage

    store = Storage(cfg.root)
    auth = None
    if cfg.auth != "none":
        from lamina.registry.server.auth import Auth
        auth = Auth(mode=cfg.auth, htpasswd=cfg.htpasswd, acl=cfg.acl, store=store, loop=loop)
    return App(store, options=Options(read_only=cfg.read_only, no_delete=cfg.no_delete,
                                      max_manifest_size=cfg.max_manifest_size),
               auth=auth, metrics=metrics, loop=loop, log_level=cfg.log_level)


async def _run_worker(cfg: Config, sock: socket.socket, metrics, index: int, stop: asyncio.Event,
                      *, ssl_ctx=None, on_ready=None) -> None:
    from lamina.registry.server.http import HttpServer

    loop = asyncio.get_running_loop()
    app = _make_app(cfg, loop, metrics)
    log = AccessLog() if cfg.log_level in ("info", "debug") else None

    def record(req, status, nbytes):
        metrics.observe(req.method, status, req.route, time.perf_counter() - req.t0, nbytes, req.received)
        if log is not None:
            log.line(req, status, nbytes)

    hs = HttpServer(app, loop=loop, ssl=ssl_ctx, logger=record)
    server = await loop.create_server(hs.protocol, sock=sock, ssl=ssl_ctx, backlog=1024)
    hs.start_sweeper()
    flusher = None
    if log is not None:
        def flush():
            nonlocal flusher
            log.flush()
            flusher = loop.call_later(1.0, flush)
        flusher = loop.call_later(1.0, flush)
    gc_task = None
    if cfg.gc_interval > 0 and index == 0:
        gc_task = loop.create_task(_gc_loop(cfg))
    if on_ready is not None:
        on_ready()
    await stop.wait()
    server.close()
    await hs.shutdown()
    if gc_task is not None:
        gc_task.cancel()
    if flusher is not None:
        flusher.cancel()
    if log is not None:
        log.flush()
    app.store.close()


async def _gc_loop(cfg: Config) -> None:
    while True:
        await asyncio.sleep(cfg.gc_interval)
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lamina", "registry", "gc", "--root", cfg.root,
            "--grace", f"{cfg.gc_grace}s", stdout=asyncio.subprocess.DEVNULL)
        await p.wait()


def _new_loop():
    try:
        import uvloop
        return uvloop.new_event_loop()
    except ImportError:  # uvloop is a dependency; the stdlib loop still works, slower
        return asyncio.new_event_loop()


def _worker_main(cfg: Config, sock, metrics, index: int, ssl_ctx, on_ready=None) -> None:
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    metrics.bind(index)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(_run_worker(cfg, sock, metrics, index, stop, ssl_ctx=ssl_ctx,
                                            on_ready=on_ready))
    finally:
        loop.close()


def serve(cfg: Config, *, out=None) -> int:
    """Serve until SIGTERM/SIGINT. Prints the readiness line on ``out`` (stdout)."""
    from lamina.registry.server.metrics import Metrics
    from lamina.registry.server.storage import Storage

    out = out or sys.stdout
    host, port = parse_addr(cfg.addr)
    Storage(cfg.root).close()     # create the store (and fail now, not in a worker)
    if cfg.auth != "none":
        from lamina.registry.server.auth import Acl, Htpasswd
        if not cfg.htpasswd:
            raise ValueError(f"--auth {cfg.auth} needs --htpasswd FILE (the users it checks)")
        Htpasswd(cfg.htpasswd)
        Acl.load(cfg.acl)
    ssl_ctx = _ssl_context(cfg.tls_cert, cfg.tls_key)
    reuse = cfg.workers > 1
    sock = bind(host, port, reuse_port=reuse)
    port = sock.getsockname()[1]
    metrics = Metrics(cfg.workers)
    children = []
    for i in range(1, cfg.workers):
        s2 = bind(host, port, reuse_port=True)
        pid = os.fork()
        if pid == 0:
            sock.close()
            code = 0
            try:
                _worker_main(cfg, s2, metrics, i, ssl_ctx)
            except BaseException:
                code = 1
            os._exit(code)
        s2.close()
        children.append(pid)
    scheme = "https" if ssl_ctx else "http"
    shown = f"[{host}]" if ":" in host else host

    def ready():
        out.write(f"lamina registry listening on {scheme}://{shown}:{port}\n")
        out.flush()

    try:
        _worker_main(cfg, sock, metrics, 0, ssl_ctx, on_ready=ready)
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
    return 0


class InProcess:
    """A registry served by a thread of this process (for tests and embedding)."""

    def __init__(self, cfg: Config) -> None:
        import threading

        from lamina.registry.server.metrics import Metrics

        host, port = parse_addr(cfg.addr)
        self.sock = bind(host, port, reuse_port=False)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.cfg = cfg
        self._loop: Any = None
        self._stop: Any = None
        started = threading.Event()

        def run():
            loop = _new_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._stop = asyncio.Event()
            loop.run_until_complete(_run_worker(cfg, self.sock, Metrics(1), 0, self._stop,
                                                ssl_ctx=_ssl_context(cfg.tls_cert, cfg.tls_key),
                                                on_ready=started.set))
            loop.close()

        self._thread = threading.Thread(target=run, name="lamina-registry", daemon=True)
        self._thread.start()
        started.wait()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()


def start_in_thread(**kw) -> InProcess:
    """Serve a store from a thread of this process; ``.url``, ``.stop()``."""
    kw.setdefault("addr", "127.0.0.1:0")
    kw.setdefault("log_level", "warn")
    return InProcess(Config(**kw))
