"""Health checks: Docker's HEALTHCHECK, run by whoever runs the container.

The configuration is the record's ``Config.Healthcheck`` (Docker's ``HealthConfig``: ``Test``,
``Interval``, ``Timeout``, ``StartPeriod``, ``Retries``, durations in nanoseconds), the
image's merged with the ``--health-*`` flags at create (:func:`merge`, moby's rules). A
``Test`` of ``["NONE"]`` (``--no-healthcheck``), an empty one or an unknown kind means no
probe and no ``State.Health``.

The container's monitor (the forked monitor, or a foreground ``run``, which is its own) runs
a :class:`Prober` thread from each start to the exit. Like dockerd's (daemon/health.go):

- at start ``State.Health`` is ``{"Status": "starting", "FailingStreak": 0, "Log": <kept>}``
  (:func:`initial`, written with the running state);
- every ``Interval`` (30 s) after the previous probe ended, a probe runs: ``CMD-SHELL`` through
  the container's shell (``Config.Shell``, else ``/bin/sh -c``), ``CMD`` as given. The probe
  is a process in the container made exactly as ``lamina exec`` makes one
  (:mod:`lamina.runtime.exec`: the container's namespaces, cgroups, capabilities, seccomp
  filter, rlimits, user, environment and working directory, a new session keyring; nothing
  of the monitor), journaled as exec_create/exec_start/exec_die;
- its stdout and stderr together, up to 4096 bytes (then ``...``), are the result's output;
  one running past ``Timeout`` (30 s) is killed and gives ExitCode -1 and ``Health check
  exceeded timeout (<timeout>)``;
- exit 0: healthy, streak 0. Otherwise the streak grows (not while ``starting`` within
  ``StartPeriod`` of the start) and reaching ``Retries`` (3) makes it unhealthy;
- the last five results stay in ``State.Health.Log`` (Start, End, ExitCode, Output); a status
  change is journaled as ``health_status: <status>``.

The prober has its own store connection (a SQLite connection is never shared by threads).
"""

from __future__ import annotations

import os
import signal
import threading

from lamina.errors import InvalidArgument, LaminaError

DEFAULT_INTERVAL = 30_000_000_000
DEFAULT_TIMEOUT = 30_000_000_000
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096
MIN_DURATION = 1_000_000  # 1 ms: dockerd refuses shorter non-zero durations


def from_flags(*, cmd: str | None, interval: int, timeout: int, start_period: int, retries: int,
               disabled: bool) -> dict | None:
    """The ``HealthConfig`` the ``--health-*`` / ``--no-healthcheck`` flags make (docker/cli's
    rules and messages), None when none was given. Durations in nanoseconds."""
    have = bool(cmd) or interval != 0 or timeout != 0 or start_period != 0 or retries != 0
    if disabled:
        if have:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not have:
        return None
    for name, v in (("interval", interval), ("timeout", timeout), ("retries", retries),
                    ("start-period", start_period)):
        if v < 0:
            raise InvalidArgument(f"--health-{name} cannot be negative")
    out: dict = {}
    if cmd:
        out["Test"] = ["CMD-SHELL", cmd]
    for key, v in (("Interval", interval), ("Timeout", timeout), ("StartPeriod", start_period),
                   ("Retries", retries)):
        if v:
            out[key] = v
    return out


def validate(hc: dict | None) -> None:
    """dockerd's checks of a container's health configuration."""
    if not hc:
        return
    for key in ("Interval", "Timeout", "StartPeriod"):
        v = hc.get(key) or 0
        if v != 0 and v < MIN_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if (hc.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def merge(image: dict | None, user: dict | None) -> dict | None:
    """The container's ``Config.Healthcheck``: the user's fields, the image's where the user's
    are unset (moby's merge of a container config with its image's)."""
    if user is None:
        return dict(image) if image else None
    out = dict(user)
    if image:
        if not out.get("Test"):
            if image.get("Test"):
                out["Test"] = list(image["Test"])
        for key in ("Interval", "Timeout", "StartPeriod", "Retries"):
            if not out.get(key) and image.get(key):
                out[key] = image[key]
    return out


def probe_args(config: dict) -> list[str] | None:
    """The command a probe runs, None when the container has no probe."""
    hc = config.get("Healthcheck") or {}
    test = list(hc.get("Test") or ())
    if not test:
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        return list(config.get("Shell") or ["/bin/sh", "-c"]) + test[1:]
    return None  # NONE, or a kind dockerd does not know


def initial(doc: dict) -> dict | None:
    """``State.Health`` at a start: starting, no failing streak, the log of earlier runs."""
    if probe_args(doc["Config"]) is None:
        return None
    old = doc["State"].get("Health") or {}
    return {"Status": "starting", "FailingStreak": 0, "Log": list(old.get("Log") or [])}


def status_text(state: dict) -> str:
    """The health part of ps's STATUS (``health: starting``, ``healthy``), or ""."""
    h = state.get("Health")
    if not h:
        return ""
    return "health: starting" if h.get("Status") == "starting" else h.get("Status", "")


class Prober:
    """The health check loop of one start of a container (a daemon thread of its monitor).

    ``start()`` after the container runs; ``stop()`` when it exited (kills a probe in flight,
    waits for the thread; a result that comes after is dropped, as dockerd drops it)."""

    def __init__(self, store_root: str, cid: str, started_at: str) -> None:
        self.store_root = store_root
        self.cid = cid
        self.started_at = started_at
        self._stop = threading.Event()
        self._child: int | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"health-{cid[:12]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kill_child()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=15)

    def _kill_child(self) -> None:
        with self._lock:
            if self._child is not None:
                try:
                    os.kill(self._child, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _run(self) -> None:
        from lamina.runtime.containers import Containers
        from lamina.store import Store
        store = Store(self.store_root)
        cs = Containers(store)
        try:
            doc = cs.get(self.cid)
            hc = doc["Config"].get("Healthcheck") or {}
            interval = (hc.get("Interval") or DEFAULT_INTERVAL) / 1e9
            while not self._stop.wait(interval):
                doc = cs.get(self.cid)
                if doc["State"].get("StartedAt") != self.started_at or not doc["State"].get("Running"):
                    return
                if doc["State"].get("Paused"):
                    continue  # dockerd's probe of a paused container fails; lamina waits instead
                result = self._probe(cs, doc, hc)
                if self._stop.is_set():
                    return
                self._record(cs, result, hc)
        except LaminaError:
            return  # removed, or gone: nothing left to report on
        finally:
            store.close_db()

    def _probe(self, cs, doc: dict, hc: dict) -> dict:
        from lamina.duration import format_go_duration
        from lamina.runtime.exec import exec_event_name, prepare, run_prepared
        from lamina.timefmt import rfc3339
        args = probe_args(doc["Config"]) or []
        timeout_ns = hc.get("Timeout") or DEFAULT_TIMEOUT
        start = rfc3339()
        exec_id = os.urandom(32).hex()
        what = exec_event_name(args)
        cs.event(doc, "exec_create: " + what, execID=exec_id)
        r, w = os.pipe2(os.O_CLOEXEC)
        out = bytearray()
        truncated = [False]

        def reader() -> None:
            while True:
                data = os.read(r, 65536)
                if not data:
                    return
                room = MAX_OUTPUT - len(out)
                if len(data) > room:
                    truncated[0] = True
                out.extend(data[:max(room, 0)])
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        timed_out = threading.Event()
        timer = None

        def on_child(pid: int) -> None:
            nonlocal timer
            with self._lock:
                self._child = pid
            timer = threading.Timer(timeout_ns / 1e9, lambda: (timed_out.set(), self._kill_child()))
            timer.daemon = True
            timer.start()
        code = -1
        try:
            devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                prep = prepare(cs, doc, args, env=[], user=None, workdir=None, tty=False, privileged=False)
                cs.event(doc, "exec_start: " + what, execID=exec_id)
                code = run_prepared(prep, (devnull, w, w), on_child=on_child)
            finally:
                os.close(devnull)
        except LaminaError as e:
            out.extend(str(e).encode()[:MAX_OUTPUT - len(out)])
            code = -1
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._child = None
            os.close(w)
            t.join(timeout=5)
            os.close(r)
        cs.event(doc, "exec_die", execID=exec_id, exitCode=str(code))
        text = out.decode("utf-8", "replace") + ("..." if truncated[0] else "")
        if timed_out.is_set():
            code, text = -1, f"Health check exceeded timeout ({format_go_duration(timeout_ns)})"
        return {"Start": start, "End": rfc3339(), "ExitCode": code, "Output": text}

    def _record(self, cs, result: dict, hc: dict) -> None:
        from lamina.timefmt import parse_time
        retries = hc.get("Retries") or DEFAULT_RETRIES
        if retries <= 0:
            retries = DEFAULT_RETRIES
        changed: list[str] = []

        def apply(d: dict) -> None:
            st = d["State"]
            if st.get("StartedAt") != self.started_at or not st.get("Running"):
                return
            h = st.get("Health") or {"Status": "starting", "FailingStreak": 0, "Log": []}
            old = h.get("Status")
            h["Log"] = (list(h.get("Log") or []) + [result])[-MAX_LOG:]
            if result["ExitCode"] == 0:
                h["FailingStreak"] = 0
                h["Status"] = "healthy"
            else:
                count = True
                if old == "starting":
                    since = (parse_time(result["Start"]) or 0) - (parse_time(st.get("StartedAt")) or 0)
                    if since * 1e9 < (hc.get("StartPeriod") or 0):
                        count = False
                if count:
                    h["FailingStreak"] = int(h.get("FailingStreak") or 0) + 1
                    if h["FailingStreak"] >= retries:
                        h["Status"] = "unhealthy"
            st["Health"] = h
            if h["Status"] != old:
                changed.append(h["Status"])
        doc = cs.update(self.cid, apply)
        for status in changed:
            cs.event(doc, "health_status: " + status)
