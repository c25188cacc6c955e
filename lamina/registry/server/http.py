"""HTTP/1.1 for the registry: an asyncio protocol around httptools' parser (uvloop's loop).

Why not a framework: the hot paths of a registry are tiny responses (a manifest, a HEAD)
and huge ones (a layer). A framework's per-request objects, middleware chain and task per
request cost more than the registry's own work on the first, and none of them does
zero-copy on the second. Here a request that the application answers synchronously (every
GET and HEAD) is parsed, answered and written inside the one ``data_received`` call that
carried it: no task, no future. Blob bodies go out with ``sendfile(2)`` from a small
thread pool (the socket is handed to the thread while the loop does not read or write
it), so a layer never passes through Python. Request bodies are streamed into the
application's sink as they arrive (an upload writes them to its file); nothing is
buffered beyond one ``recv``.

The application contract (:class:`App`): at the end of a request's headers the protocol
calls ``app.begin(request)``, which returns either a :class:`Response` (the request needs
no body; any body is read and dropped) or a handler with ``write(chunk)`` (the body, as it
arrives), ``finish()`` (returns a Response, or an awaitable of one) and ``abort()`` (the
connection died first). Requests on one connection are answered in order (pipelining
works: a request that arrives while another is answered waits, with its body held up to
a bound).

Bounds: request line + headers 64 KiB (431/414 beyond), a deferred pipelined body 1 MiB,
connections idle for ``idle_timeout`` seconds are closed (checked every few seconds, not
per request). SIGTERM (see serve.py) stops accepting, lets answered requests finish and
closes idle connections.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque

import httptools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    206: "Partial Content", 304: "Not Modified", 307: "Temporary Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
    414: "URI Too Long", 416: "Range Not Satisfiable", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    503: "Service Unavailable",
}
HEAD_LIMIT = 1 << 16
DEFER_LIMIT = 1 << 20
SMALL_FILE = 1 << 18       # blobs up to this size are read and written, not sendfile'd

_date_cache: list = [0, b""]


def http_date() -> bytes:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode()
    return _date_cache[1]


class Request:
    """One parsed request. ``headers`` maps lower-case names to values (repeats joined
    with ", "). ``path`` is the URL path (not decoded; the registry's grammar has no
    escapes), ``query_string`` the raw query."""

    __slots__ = ("method", "target", "path", "query_string", "headers", "version",
                 "keep_alive", "remote", "user", "t0", "_query", "scheme", "route", "received")

    def __init__(self, method, target, headers, version, keep_alive, remote, scheme) -> None:
        self.method = method
        self.target = target
        path, _, qs = target.partition("?")
        self.path = path
        self.query_string = qs
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.remote = remote
        self.scheme = scheme
        self.user: Any = None
        self.route = "other"
        self.received = 0
        self.t0 = time.perf_counter()
        self._query: Any = None

    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            if self.query_string:
                from urllib.parse import parse_qs
                self._query = parse_qs(self.query_string, keep_blank_values=True)
            else:
                self._query = {}
        return self._query

    def arg(self, name: str) -> str | None:
        v = self.query().get(name)
        return v[0] if v else None


class Response:
    """A response: ``body`` bytes, or ``file`` = (fd, offset, count) sent with sendfile
    (the fd is closed after). ``length`` overrides Content-Length (HEAD answers)."""

    __slots__ = ("status", "headers", "body", "file", "length")

    def __init__(self, status: int, headers: list | None = None, body: bytes = b"", *,
                 file: tuple[int, int, int] | None = None, length: int | None = None) -> None:
        self.status = status
        self.headers = headers or []
        self.body = body
        self.file = file
        self.length = length


class _Deferred:
    __slots__ = ("req", "chunks", "size", "complete")

    def __init__(self, req) -> None:
        self.req, self.size, self.complete = req, 0, False
        self.chunks: list[bytes] = []


def _sendfile_blocking(sockfd: int, fd: int, offset: int, count: int, timeout: float) -> int:
    """Send ``count`` bytes of ``fd`` from ``offset`` on socket ``sockfd``; returns the bytes
    sent (short if the file shrank).

    The loop owns the socket's O_NONBLOCK flag; while this thread holds the socket the loop
    neither reads nor writes it, so the flag is cleared for the duration (one sendfile call
    then moves the whole range, the kernel sleeping while the peer reads) with SO_SNDTIMEO
    as the give-up time, and restored after."""
    import fcntl
    import socket
    import struct

    sent = 0
    flags = fcntl.fcntl(sockfd, fcntl.F_GETFL)
    sock = socket.socket(fileno=os.dup(sockfd))
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(timeout), 0))
        fcntl.fcntl(sockfd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        while sent < count:
            try:
                n = os.sendfile(sockfd, fd, offset + sent, min(count - sent, 1 << 30))
            except BlockingIOError:
                raise TimeoutError("client did not read for %.0f s" % timeout) from None
            if n == 0:
                break
            sent += n
        return sent
    finally:
        fcntl.fcntl(sockfd, fcntl.F_SETFL, flags)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 0))
        finally:
            sock.close()      # a duplicate descriptor: the connection stays open


class Protocol(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.app = server.app
        self.loop = server.loop
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.remote = "-"
        self.cur_req: Any = None
        self.cur_handler: Any = None
        self.cur_deferred: Any = None
        self.answered_early = False
        self.busy = False
        self.queue: deque = deque()
        self.closing = False
        self.last_active = 0.0
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._hsize = 0
        self._drain: Any = None
        self._paused = False
        self.in_request = False

    # -- connection ----------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if peer else "-"
        self.last_active = self.loop.time()
        self.server.conns.add(self)

    def connection_lost(self, exc) -> None:
        self.server.conns.discard(self)
        self.closing = True
        h = self.cur_handler
        if h is not None and not isinstance(h, Response):
            try:
                h.abort()
            except Exception:
                pass
        self.cur_handler = None
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self, empty: bool = False) -> None:
        """Wait until the transport's buffer is below its limit (``empty``: fully sent)."""
        t = self.transport
        if empty:
            if t.get_write_buffer_size() == 0:
                return
            t.set_write_buffer_limits(high=0)
            try:
                while t.get_write_buffer_size() and not self.closing:
                    self._drain = self.loop.create_future()
                    await self._drain
            finally:
                if not self.closing:
                    t.set_write_buffer_limits()
            return
        while self._paused and not self.closing:
            self._drain = self.loop.create_future()
            await self._drain

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as e:
            self._fail(400, f"malformed request: {e}")

    def _fail(self, status: int, why: str) -> None:
        if self.transport.is_closing():
            return
        body = why.encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                             b"Connection: close\r\n\r\n%s"
                             % (status, REASONS.get(status, "").encode(), len(body), body))
        self.transport.close()
        self.closing = True

    # -- parser callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = []
        self._headers = []
        self._hsize = 0
        self.in_request = True

    def on_url(self, url: bytes) -> None:
        self._hsize += len(url)
        if self._hsize > HEAD_LIMIT:
            raise httptools.HttpParserError("request target too long")
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._hsize += len(name) + len(value)
        if self._hsize > HEAD_LIMIT:
            raise httptools.HttpParserError("request headers too large")
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers: dict[str, str] = {}
        for n, v in self._headers:
            k = n.decode("latin-1").lower()
            val = v.decode("latin-1")
            if k in headers:
                headers[k] = headers[k] + ", " + val
            else:
                headers[k] = val
        p = self.parser
        req = Request(p.get_method().decode(), b"".join(self._url).decode("latin-1"), headers,
                      p.get_http_version(), p.should_keep_alive(), self.remote, self.server.scheme)
        if self.busy or self.queue or self.cur_req is not None:
            d = _Deferred(req)
            self.queue.append(d)
            self.cur_deferred = d
            return
        self.cur_deferred = None
        self._begin(req)

    def _begin(self, req: Request) -> None:
        self.cur_req = req
        self.answered_early = False
        try:
            h = self.app.begin(req)
        except Exception as e:  # a bug: answer 500, keep serving
            h = self.app.internal_error(req, e)
        self.cur_handler = h
        gate = getattr(h, "gate", None)
        if gate is not None and not gate.done():
            # the handler waits for something (a password check) before it takes the
            # body: read no more until then
            self.transport.pause_reading()
            gate.add_done_callback(self._gate_open)
        if req.headers.get("expect", "").lower() == "100-continue":
            if isinstance(h, Response) and h.status >= 400:
                # refuse the body: answer now and close once answered
                self.answered_early = True
                req.keep_alive = False
                self.cur_req = None
                self.cur_handler = None
                self._respond(req, h)
            else:
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _gate_open(self, _fut) -> None:
        if not self.closing and not self.busy and not self.queue and not self.transport.is_reading():
            self.transport.resume_reading()

    def on_body(self, body: bytes) -> None:
        d = self.cur_deferred
        if d is not None:
            d.size += len(body)
            if d.size > DEFER_LIMIT:
                raise httptools.HttpParserError("pipelined request body too large")
            d.chunks.append(body)
            return
        h = self.cur_handler
        if self.cur_req is not None:
            self.cur_req.received += len(body)
        if h is not None and not isinstance(h, Response):
            try:
                h.write(body)
            except Exception as e:
                self.cur_handler = self.app.internal_error(self.cur_req, e)
                try:
                    h.abort()
                except Exception:
                    pass

    def on_message_complete(self) -> None:
        self.in_request = False
        d = self.cur_deferred
        if d is not None:
            d.complete = True
            self.cur_deferred = None
            if not self._paused_reading():
                self.transport.pause_reading()
            return
        self._complete()

    def _paused_reading(self) -> bool:
        return not self.transport.is_reading()

    def _complete(self) -> None:
        req, h = self.cur_req, self.cur_handler
        self.cur_req = None
        self.cur_handler = None
        if req is None:     # answered early (refused body)
            return
        if isinstance(h, Response):
            self._respond(req, h)
            return
        try:
            r = h.finish()
        except Exception as e:
            r = self.app.internal_error(req, e)
        if isinstance(r, Response):
            self._respond(req, r)
        else:
            self.busy = True
            self.transport.pause_reading()
            self.loop.create_task(self._await_response(req, r))

    async def _await_response(self, req: Request, aw) -> None:
        try:
            r = await aw
        except Exception as e:
            r = self.app.internal_error(req, e)
        self.busy = False
        self._respond(req, r)

    # -- responses -----------------------------------------------------------------------
    def _head(self, req: Request, r: Response, length: int) -> bytes:
        parts = [b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\nDate: %s\r\n"
                 b"Docker-Distribution-Api-Version: registry/2.0\r\n"
                 % (r.status, REASONS.get(r.status, "Status").encode(), length, http_date())]
        for k, v in r.headers:
            parts.append(f"{k}: {v}\r\n".encode("latin-1"))
        if not req.keep_alive or self.server.stopping:
            req.keep_alive = False
            parts.append(b"Connection: close\r\n")
        elif req.version == "1.0":
            parts.append(b"Connection: keep-alive\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _respond(self, req: Request, r: Response) -> None:
        if self.closing or self.transport.is_closing():
            if r.file is not None:
                os.close(r.file[0])
            self.server.log(req, r.status, 0)
            return
        head_only = req.method == "HEAD"
        if r.file is not None:
            fd, off, count = r.file
            length = count if r.length is None else r.length
            if head_only or count <= SMALL_FILE or self.server.ssl:
                if head_only or count <= SMALL_FILE:
                    try:
                        body = b"" if head_only else os.pread(fd, count, off)
                    finally:
                        os.close(fd)
                    self.transport.write(self._head(req, r, length) + body)
                    self._done(req, r.status, len(body))
                    return
                self.busy = True
                self.transport.pause_reading()
                self.loop.create_task(self._send_chunks(req, r, length))
                return
            self.busy = True
            self.transport.pause_reading()
            self.loop.create_task(self._sendfile(req, r, length))
            return
        length = len(r.body) if r.length is None else r.length
        if head_only:
            self.transport.write(self._head(req, r, length))
            self._done(req, r.status, 0)
        else:
            self.transport.write(self._head(req, r, length) + r.body)
            self._done(req, r.status, len(r.body))

    async def _sendfile(self, req: Request, r: Response, length: int) -> None:
        assert r.file is not None  # the caller sends files only
        fd, off, count = r.file
        sent = 0
        try:
            self.transport.write(self._head(req, r, length))
            await self.drain(empty=True)
            if self.closing:
                return
            sock = self.transport.get_extra_info("socket")
            sent = await self.loop.run_in_executor(self.server.pool, _sendfile_blocking,
                                                   sock.fileno(), fd, off, count, self.server.idle_timeout)
            if sent < count:
                self.transport.abort()   # the file shrank under us: the body is short
                self.closing = True
        except (OSError, TimeoutError):
            self.transport.abort()
            self.closing = True
        finally:
            os.close(fd)
        self.busy = False
        self._done(req, r.status, sent)

    async def _send_chunks(self, req: Request, r: Response, length: int) -> None:
        assert r.file is not None  # the caller sends files only
        fd, off, count = r.file
        sent = 0
        try:
            self.transport.write(self._head(req, r, length))
            while sent < count and not self.closing:
                b = os.pread(fd, min(1 << 18, count - sent), off + sent)
                if not b:
                    self.transport.abort()
                    self.closing = True
                    break
                self.transport.write(b)
                sent += len(b)
                await self.drain()
        except OSError:
            self.transport.abort()
            self.closing = True
        finally:
            os.close(fd)
        self.busy = False
        self._done(req, r.status, sent)

    def _done(self, req: Request, status: int, nbytes: int) -> None:
        self.server.log(req, status, nbytes)
        if not req.keep_alive or self.closing:
            self.closing = True
            self.transport.close()
            return
        self.last_active = self.loop.time()
        # answer what was pipelined behind this request
        while self.queue and not self.busy and not self.closing:
            d = self.queue[0]
            if not d.complete and d is not self.cur_deferred:
                break
            self.queue.popleft()
            was_current = d is self.cur_deferred
            self.cur_deferred = None
            self._begin(d.req)
            for c in d.chunks:
                self.on_body(c)
            if d.complete:
                self._complete()
            elif was_current:
                break   # its body continues in the stream: fed directly from now on
        if not self.busy and not self.closing and not self.transport.is_reading():
            gate = getattr(self.cur_handler, "gate", None)
            if gate is None or gate.done():
                self.transport.resume_reading()

    # -- shutdown ------------------------------------------------------------------------
    def idle(self) -> bool:
        return not self.busy and not self.in_request and self.cur_req is None and not self.queue


class HttpServer:
    """Connections of one process; ``app`` answers, ``log(req, status, nbytes)`` records."""

    def __init__(self, app, *, loop, ssl=None, idle_timeout: float = 120.0, logger=None,
                 sendfile_threads: int = 16) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.app = app
        self.loop = loop
        self.ssl = ssl
        self.scheme = "https" if ssl else "http"
        self.idle_timeout = idle_timeout
        self.conns: set[Protocol] = set()
        self.stopping = False
        self.logger = logger
        self.pool = ThreadPoolExecutor(max_workers=sendfile_threads, thread_name_prefix="sendfile")
        self._sweeper: Any = None

    def protocol(self) -> Protocol:
        return Protocol(self)

    def log(self, req: Request, status: int, nbytes: int) -> None:
        if self.logger is not None:
            self.logger(req, status, nbytes)

    def start_sweeper(self) -> None:
        self._sweeper = self.loop.call_later(5.0, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        for c in list(self.conns):
            if c.idle() and now - c.last_active > self.idle_timeout:
                c.transport.close()
            elif c.in_request and not c.busy and now - c.last_active > self.idle_timeout:
                c.transport.abort()   # a request that stopped arriving
        self._sweeper = self.loop.call_later(5.0, self._sweep)

    async def shutdown(self, grace: float = 30.0) -> None:
        """Stop: close idle connections now, let the others finish their request."""
        self.stopping = True
        deadline = self.loop.time() + grace
        while self.conns and self.loop.time() < deadline:
            for c in list(self.conns):
                if c.idle():
                    c.transport.close()
            if not self.conns:
                break
            await asyncio.sleep(0.05)
        for c in list(self.conns):
            c.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.pool.shutdown(wait=False)
