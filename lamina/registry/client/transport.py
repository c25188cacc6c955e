"""HTTP for the registry client, on urllib3: the only module that imports it.

One ``Transport`` per command and registry: a urllib3 pool manager whose connections are
kept alive and reused across manifests and blobs (and shared by the parallel layer
downloads; urllib3's pools are thread-safe), TLS set up from the Endpoint (CA files and a
client certificate from certs.d, verification off only for insecure registries).

Contracts:
- ``request`` retries, with exponential backoff, on HTTP 500/502/503/504/429 and on
  connections reset before a response arrived; it never retries a request whose body was
  a stream that was (partly) sent. A refused connection is not retried (the registry is
  down: say so at once). Every other failure raises :class:`TransportError` with Docker's
  wording: ``Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused``.
- Redirects are followed by the caller (``follow=False``) or here (``follow=True``):
  the ``Authorization`` header is dropped when a redirect leaves the registry's host, so
  credentials never reach a storage backend.
- Responses are returned unread when ``stream=True`` (the caller reads and releases
  them); otherwise the body is read (up to ``limit`` bytes) and the connection released.
"""

from __future__ import annotations

import time
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from lamina.errors import LaminaError
from lamina.registry.client.hosts import Endpoint

# unverified TLS is a decision (insecure registries, as Docker), not something to warn about
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BLOCK = 1 << 20


class TransportError(LaminaError):
    """The registry could not be reached or the connection failed. Exit 1, like docker pull."""

    exit_code = 1


class TLSFallback(Exception):
    """HTTPS failed in a way that means the server speaks plain HTTP (insecure registries)."""


def _go_method(method: str) -> str:
    return method[0] + method[1:].lower()


def _dialed(host: str, port: int) -> str | None:
    """The address Go's dialer names for a refused connection to ``host``: its first
    resolved address, IPv4 first (``localhost`` -> ``127.0.0.1:5000``); None for an IP
    literal or a name that does not resolve now."""
    import ipaddress
    import socket
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    infos.sort(key=lambda i: i[0] != socket.AF_INET)
    if not infos:
        return None
    ip = str(infos[0][4][0])
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def describe(method: str, url: str, e: BaseException) -> str:
    """Docker's (Go's) wording for a failed request."""
    from urllib.parse import urlsplit
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    addr = f"{u.hostname}:{port}" if ":" not in (u.hostname or "") else f"[{u.hostname}]:{port}"
    text = str(e)
    reason = getattr(e, "reason", None) or e
    low = f"{text} {reason}".lower()
    if "connection refused" in low or "errno 111" in low:
        why = f"dial tcp {_dialed(u.hostname or '', port) or addr}: connect: connection refused"
    elif isinstance(e, (ConnectTimeoutError,)) or "timed out" in low and "connect" in low:
        why = f"dial tcp {addr}: i/o timeout"
    elif "name or service not known" in low or "nodename nor servname" in low or "failed to resolve" in low:
        why = f"dial tcp: lookup {u.hostname}: no such host"
    elif isinstance(e, SSLError) or "ssl" in low or "certificate" in low:
        why = f"tls: {_ssl_reason(low, text)}"
    elif isinstance(e, ReadTimeoutError):
        why = "read timeout"
    elif "reset" in low:
        why = f"read tcp {addr}: read: connection reset by peer"
    else:
        why = text
    return f'{_go_method(method)} "{url}": {why}'


def _ssl_reason(low: str, text: str) -> str:
    if "certificate verify failed" in low:
        if "self-signed" in low or "self signed" in low:
            return "failed to verify certificate: x509: certificate signed by unknown authority"
        if "hostname" in low or "ip address mismatch" in low:
            return "failed to verify certificate: x509: certificate is valid for another host"
        return "failed to verify certificate: x509: certificate signed by unknown authority"
    if "wrong version number" in low or "record layer" in low or "http request" in low:
        return "first record does not look like a TLS handshake"
    return text


class Transport:
    """HTTP to one registry endpoint. ``scheme`` is decided by the first request that
    works (``https``, then ``http`` for insecure registries)."""

    def __init__(self, ep: Endpoint, *, pool_size: int = 8, timeout: float = 60.0,
                 retries: int = 4, backoff: float = 0.25) -> None:
        self.ep = ep
        self.retries = retries
        self.backoff = backoff
        self.scheme: str | None = None if len(ep.schemes) > 1 else ep.schemes[0]
        self._timeout = urllib3.Timeout(connect=min(timeout, 15.0), read=timeout)
        self._pools: dict[str, urllib3.PoolManager] = {}
        self._pool_size = pool_size
        self._other: urllib3.PoolManager | None = None  # redirects to other hosts (storage)

    # -- pools --------------------------------------------------------------------
    def _ssl_context(self, verify: bool):
        import ssl
        ctx = ssl.create_default_context()
        if verify:
            for ca in self.ep.tls.cas:
                ctx.load_verify_locations(cafile=ca)
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.ep.tls.client_pairs:
            cert, key = self.ep.tls.client_pairs[0]
            ctx.load_cert_chain(cert, key)
        return ctx

    def _pool(self, scheme: str) -> urllib3.PoolManager:
        pm = self._pools.get(scheme)
        if pm is None:
            kw: dict[str, Any] = dict(num_pools=4, maxsize=self._pool_size, block=False, retries=False,
                                      timeout=self._timeout, blocksize=BLOCK)
            if scheme == "https":
                kw["ssl_context"] = self._ssl_context(self.ep.verify_tls)
                if not self.ep.verify_tls:
                    kw["assert_hostname"] = False
            pm = self._pools[scheme] = urllib3.PoolManager(**kw)
        return pm

    def _other_pool(self) -> urllib3.PoolManager:
        if self._other is None:
            self._other = urllib3.PoolManager(num_pools=4, maxsize=self._pool_size, retries=False,
                                              timeout=self._timeout, blocksize=BLOCK)
        return self._other

    def url(self, path: str) -> str:
        """Absolute URL for a path on the registry (scheme decided already or the first)."""
        return self.ep.url(self.scheme or self.ep.schemes[0], path)

    def same_host(self, url: str) -> bool:
        from urllib.parse import urlsplit
        return urlsplit(url).netloc == self.ep.host

    def close(self) -> None:
        for pm in self._pools.values():
            pm.clear()
        if self._other is not None:
            self._other.clear()

    # -- requests -----------------------------------------------------------------
    def request(self, method: str, url_or_path: str, *, headers: dict | None = None, body=None,
                stream: bool = False, follow: bool = True, limit: int = 64 << 20,
                retry: bool = True) -> urllib3.BaseHTTPResponse:
        """One HTTP exchange (with retries and redirects, see the module contract).

        ``url_or_path`` starting with ``/`` is a path on the registry (the scheme is
        probed on first use for insecure registries). ``body`` may be bytes or a file
        object (then it is sent once, never retried).
        """
        if url_or_path.startswith("/"):
            if self.scheme is None:
                return self._probe(method, url_or_path, headers=headers, body=body, stream=stream,
                                   follow=follow, limit=limit)
            url = self.ep.url(self.scheme, url_or_path)
        else:
            url = url_or_path
        return self._request(method, url, headers=headers, body=body, stream=stream, follow=follow,
                             limit=limit, retry=retry)

    def _probe(self, method, path, **kw):
        last = None
        for scheme in self.ep.schemes:
            url = self.ep.url(scheme, path)
            try:
                r = self._request(method, url, tls_probe=(scheme == "https"), **kw)
            except TLSFallback as e:
                last = e
                continue
            except TransportError:
                if scheme == self.ep.schemes[-1]:
                    raise
                continue
            if scheme == "http" and last is not None and r.status == 400 and \
                    b"HTTPS server" in (body_of(r) if not kw.get("stream") else b""):
                raise TransportError(str(last))  # it speaks TLS: the TLS failure is the news
            self.scheme = scheme
            return r
        raise TransportError(str(last))

    def _request(self, method: str, url: str, *, headers=None, body=None, stream=False, follow=True,
                 limit=64 << 20, retry=True, tls_probe=False):
        headers = dict(headers or {})
        replayable = body is None or isinstance(body, (bytes, bytearray, memoryview))
        attempt = 0
        redirects = 0
        while True:
            pm = self._pool(url.split(":", 1)[0]) if self.same_host(url) else self._other_pool()
            try:
                r = pm.request(method, url, headers=headers, body=body, preload_content=False,
                               redirect=False, retries=False)
            except SSLError as e:
                if tls_probe:
                    raise TLSFallback(describe(method, url, e)) from None
                raise TransportError(describe(method, url, e)) from None
            except (NewConnectionError, ConnectTimeoutError) as e:
                if tls_probe and "refused" not in str(e).lower():
                    raise TLSFallback(describe(method, url, e)) from None
                raise TransportError(describe(method, url, e)) from None
            except (ProtocolError, ReadTimeoutError, HTTPError, OSError) as e:
                if tls_probe:
                    raise TLSFallback(describe(method, url, e)) from None
                if retry and replayable and attempt < self.retries:
                    attempt += 1
                    time.sleep(self.backoff * (2 ** (attempt - 1)))
                    continue
                raise TransportError(describe(method, url, e)) from None
            if r.status in RETRY_STATUSES and retry and replayable and attempt < self.retries:
                attempt += 1
                delay = self.backoff * (2 ** (attempt - 1))
                ra = r.headers.get("Retry-After")
                if ra and ra.isdigit():
                    delay = max(delay, min(float(ra), 30.0))
                r.drain_conn()
                r.release_conn()
                time.sleep(delay)
                continue
            if follow and r.status in (301, 302, 303, 307, 308) and r.headers.get("Location"):
                from urllib.parse import urljoin
                redirects += 1
                if redirects > 10:
                    raise TransportError(f'{_go_method(method)} "{url}": stopped after 10 redirects')
                nxt = urljoin(url, r.headers["Location"])
                r.drain_conn()
                r.release_conn()
                if not self.same_host(nxt):
                    headers.pop("Authorization", None)
                if r.status == 303:
                    method, body = "GET", None
                url = nxt
                continue
            if not stream:
                try:
                    data = r.read(limit + 1, decode_content=False)
                except (ProtocolError, ReadTimeoutError, HTTPError, OSError) as e:
                    raise TransportError(describe(method, url, e)) from None
                finally:
                    r.release_conn()
                keep_body(r, data[:limit])  # the read body, for the caller
            vars(r)["_lamina_url"] = url  # the URL actually answered (after redirects)
            return r


def body_of(r) -> bytes:
    """The body read by a non-streaming :meth:`Transport.request`."""
    return getattr(r, "_lamina_body", b"")


def keep_body(r, data: bytes) -> None:
    """Attach the bytes read of ``r``'s body, for :func:`body_of`."""
    vars(r)["_lamina_body"] = data


def url_of(r) -> str:
    return getattr(r, "_lamina_url", "")


STREAM_ERRORS = (ProtocolError, ReadTimeoutError, HTTPError, OSError)
"""What reading a streamed body raises when the connection breaks."""
