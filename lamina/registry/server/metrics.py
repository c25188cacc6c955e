"""Prometheus metrics of every worker process, in one shared memory page set.

Counters live in an anonymous shared mapping made before the workers fork; each worker
adds only to its own row (so no locks and no lost updates), and ``/metrics`` — answered by
whichever worker the connection reached — sums the rows. Cost per request: a handful of
integer additions. Exposition is the Prometheus text format 0.0.4::

    lamina_registry_http_requests_total{method="GET",code="200"} 12
    lamina_registry_http_request_duration_seconds_bucket{route="manifest",le="0.005"} 10
    lamina_registry_http_response_bytes_total 123456
    lamina_registry_http_request_bytes_total 654321
    lamina_registry_uploads_in_progress 0
"""

from __future__ import annotations

import bisect
import mmap

METHODS = ("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OTHER")
CODES = (200, 201, 202, 204, 206, 304, 307, 400, 401, 403, 404, 405, 413, 416, 429, 500, 503, 0)
ROUTES = ("base", "catalog", "tags", "manifest", "blob", "upload", "referrers", "token",
          "metrics", "other")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_M = {m: i for i, m in enumerate(METHODS)}
_C = {c: i for i, c in enumerate(CODES)}
_R = {r: i for i, r in enumerate(ROUTES)}
_NB = len(BUCKETS) + 1                    # + the +Inf bucket
_REQ = 0                                  # requests[method][code]
_HIST = _REQ + len(METHODS) * len(CODES)  # per route: buckets..., sum (microseconds), count
_HSTRIDE = _NB + 2
_BYTES_OUT = _HIST + len(ROUTES) * _HSTRIDE
_BYTES_IN = _BYTES_OUT + 1
ROW = _BYTES_IN + 1


class Metrics:
    """Counters for ``workers`` processes; call :meth:`bind` in each worker with its index."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._mm = mmap.mmap(-1, max(mmap.PAGESIZE, workers * ROW * 8))
        self._all = memoryview(self._mm).cast("q")
        self._base = 0

    def bind(self, worker: int) -> None:
        self._base = worker * ROW

    def observe(self, method: str, status: int, route: str, seconds: float,
                bytes_out: int, bytes_in: int) -> None:
        v, b = self._all, self._base
        v[b + _REQ + _M.get(method, 6) * len(CODES) + _C.get(status, len(CODES) - 1)] += 1
        h = b + _HIST + _R.get(route, len(ROUTES) - 1) * _HSTRIDE
        v[h + bisect.bisect_left(BUCKETS, seconds)] += 1
        v[h + _NB] += int(seconds * 1e6)
        v[h + _NB + 1] += 1
        v[b + _BYTES_OUT] += bytes_out
        v[b + _BYTES_IN] += bytes_in

    def _sum(self, i: int) -> int:
        v = self._all
        return sum(v[w * ROW + i] for w in range(self.workers))

    def render(self, uploads_in_progress: int) -> bytes:
        out = ["# HELP lamina_registry_http_requests_total HTTP requests answered, by method and status code.",
               "# TYPE lamina_registry_http_requests_total counter"]
        for mi, m in enumerate(METHODS):
            for ci, c in enumerate(CODES):
                n = self._sum(_REQ + mi * len(CODES) + ci)
                if n:
                    out.append(f'lamina_registry_http_requests_total{{method="{m}",code="{c or "other"}"}} {n}')
        out += ["# HELP lamina_registry_http_request_duration_seconds "
                "Time from the end of a request's headers to the last byte of its response.",
                "# TYPE lamina_registry_http_request_duration_seconds histogram"]
        for ri, r in enumerate(ROUTES):
            h = _HIST + ri * _HSTRIDE
            count = self._sum(h + _NB + 1)
            if not count:
                continue
            acc = 0
            for bi, le in enumerate(BUCKETS):
                acc += self._sum(h + bi)
                out.append(f'lamina_registry_http_request_duration_seconds_bucket{{route="{r}",le="{le}"}} {acc}')
            out.append(f'lamina_registry_http_request_duration_seconds_bucket{{route="{r}",le="+Inf"}} {count}')
            out.append(f'lamina_registry_http_request_duration_seconds_sum{{route="{r}"}} {self._sum(h + _NB) / 1e6}')
            out.append(f'lamina_registry_http_request_duration_seconds_count{{route="{r}"}} {count}')
        out += ["# HELP lamina_registry_http_response_bytes_total Response body bytes sent.",
                "# TYPE lamina_registry_http_response_bytes_total counter",
                f"lamina_registry_http_response_bytes_total {self._sum(_BYTES_OUT)}",
                "# HELP lamina_registry_http_request_bytes_total Request body bytes received.",
                "# TYPE lamina_registry_http_request_bytes_total counter",
                f"lamina_registry_http_request_bytes_total {self._sum(_BYTES_IN)}",
                "# HELP lamina_registry_uploads_in_progress "
                "Blob upload sessions started and not yet completed or cancelled.",
                "# TYPE lamina_registry_uploads_in_progress gauge",
                f"lamina_registry_uploads_in_progress {uploads_in_progress}"]
        return ("\n".join(out) + "\n").encode()
