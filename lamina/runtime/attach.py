"""The attach protocol between a container's monitor and ``lamina attach``/``run -it`` clients.

Framing, both directions: 1 byte type + 4 bytes big-endian length + payload.
  monitor -> client: STDOUT(1), STDERR(2), EXIT(3, payload = decimal exit code)
  client -> monitor: STDIN(0), RESIZE(4, payload = "rows cols"), CLOSE_STDIN(5)
A client first sends one JSON line: {"stdin": bool, "size": "rows cols" or ""}.
Detach keys (default ctrl-p ctrl-q) are handled by the client: it disconnects and the
container keeps running.
"""

from __future__ import annotations

import os
import struct

STDIN, STDOUT, STDERR, EXIT, RESIZE, CLOSE_STDIN = 0, 1, 2, 3, 4, 5
DETACHED = object()


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BI", kind, len(payload)) + payload


#: Largest frame payload either side sends (the monitor reads 64 KiB at a time); a peer
#: announcing more is broken or hostile and is dropped, so no buffer grows without bound.
MAX_FRAME = 1 << 20


class FrameReader:
    """Splits a byte stream into frames. Raises ValueError for a frame over MAX_FRAME."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= 5:
            kind, n = struct.unpack(">BI", self.buf[:5])
            if n > MAX_FRAME:
                raise ValueError(f"attach frame of {n} bytes (at most {MAX_FRAME})")
            if len(self.buf) < 5 + n:
                break
            out.append((kind, self.buf[5:5 + n]))
            self.buf = self.buf[5 + n:]
        return out


def parse_detach_keys(spec: str | None) -> bytes:
    """Docker's --detach-keys: comma-separated 'ctrl-<x>' or single characters."""
    from lamina.errors import InvalidArgument
    if not spec:
        return b"\x10\x11"
    out = bytearray()
    for part in spec.split(","):
        p = part.strip()
        if len(p) == 1:
            out.append(ord(p))
        elif p.startswith("ctrl-") and len(p) == 6:
            c = p[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(c)
            if code is None:
                if not c.isalpha():
                    raise InvalidArgument(f"invalid detach keys: {spec}")
                code = ord(c.lower()) - ord("a") + 1
            out.append(code)
        else:
            raise InvalidArgument(f"invalid detach keys: {spec}")
    return bytes(out)


class unix_path:
    """A usable AF_UNIX address for ``path``: the path itself, or, when it is longer than
    sun_path allows (108 bytes; deep ``--root`` dirs), ``/proc/self/fd/<dirfd>/<name>`` through
    an O_PATH descriptor of its directory, held open for the ``with`` block."""

    def __init__(self, path: str) -> None:
        self.path, self.fd = path, None

    def __enter__(self) -> str:
        if len(os.fsencode(self.path)) < 100:
            return self.path
        self.fd = os.open(os.path.dirname(self.path) or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self.fd}/{os.path.basename(self.path)}"

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _winsize(fd: int) -> bytes | None:
    import fcntl
    import termios
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
        return f"{rows} {cols}".encode()
    except OSError:
        return None


def attach(sock_path: str, *, stdin: bool, tty: bool, detach_keys: bytes = b"\x10\x11",
           sig_proxy_pid: int | None = None):
    """Attach this terminal to a container. Returns its exit code, DETACHED, or None when
    the monitor closed the connection without an exit code. With ``sig_proxy_pid`` (and no
    raw tty, where ctrl-c is just a byte for the container) signals are forwarded to it."""
    import selectors
    import signal
    import socket
    import termios
    import tty as ttymod

    from lamina.errors import Unavailable
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with unix_path(sock_path) as addr:
            s.connect(addr)
    except OSError as e:
        raise Unavailable(f"cannot attach: the container's monitor is not reachable ({e.strerror})") from None
    in_fd, out_fd, err_fd = 0, 1, 2
    size = _winsize(out_fd) if tty and os.isatty(out_fd) else None
    # the header carries the window size, so a container started for this client (run -t)
    # gets it before its first instruction
    s.sendall(b'{"stdin": %s, "size": "%s"}\n' % (b"true" if stdin else b"false", size or b""))
    raw = stdin and tty and os.isatty(in_fd)
    saved = None
    if raw:
        saved = termios.tcgetattr(in_fd)
        ttymod.setraw(in_fd, termios.TCSANOW)  # keep typeahead (Docker does not flush either)
    if tty and os.isatty(out_fd):
        ws = _winsize(out_fd)
        if ws:
            s.sendall(frame(RESIZE, ws))

        def on_winch(*_):
            w = _winsize(out_fd)
            if w:
                try:
                    s.sendall(frame(RESIZE, w))
                except OSError:
                    pass
        signal.signal(signal.SIGWINCH, on_winch)
    if sig_proxy_pid and not raw:
        # --sig-proxy: without a raw tty, signals sent to this client go to the container
        def forward(signum, _frame):
            try:
                os.kill(sig_proxy_pid, signum)
            except ProcessLookupError:
                pass
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                    signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, forward)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ, "sock")
    if stdin:
        sel.register(in_fd, selectors.EVENT_READ, "stdin")
    reader = FrameReader()
    matched = 0
    held = b""
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "sock":
                    data = s.recv(65536)
                    if not data:
                        return None  # the monitor went away: the caller reads the state
                    for kind, payload in reader.feed(data):
                        if kind == EXIT:
                            return int(payload or b"0")
                        os.write(err_fd if kind == STDERR else out_fd, payload)
                else:
                    data = os.read(in_fd, 65536)
                    if not data:
                        sel.unregister(in_fd)
                        s.sendall(frame(CLOSE_STDIN, b""))
                        continue
                    if tty and detach_keys:
                        send = bytearray()
                        for b in data:
                            if b == detach_keys[matched]:
                                matched += 1
                                held += bytes([b])
                                if matched == len(detach_keys):
                                    return DETACHED
                            else:
                                send += held + bytes([b])
                                held, matched = b"", 0
                        data = bytes(send)
                    if data:
                        s.sendall(frame(STDIN, data))
    finally:
        if saved is not None:
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
        s.close()

