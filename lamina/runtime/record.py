"""Container records: the one module that knows their shape.

A container's record is its Docker inspect document, kept as JSON in the ``data`` column
of the ``containers`` table (:mod:`lamina.runtime.containers` owns the row and the
directory). ``inspect`` prints it as it is, so its top level, ``Config``, ``HostConfig``,
``State`` and ``NetworkSettings`` follow ``docker inspect``; lamina's own bookkeeping rides
along in ``State`` (the pids and start times that tell a live process from a reused pid,
``StoppedByUser`` for restart policies) and under ``Lamina`` (the chain ID of the image's
layers, the detach keys, the cgroup parent), where Docker scripts do not look.

This module owns:

- :func:`new_document`: every field of a new record and its default, in inspect order;
- :data:`STATE_DEFAULTS` and :class:`State`: what ``State`` may hold (Docker's keys and
  lamina's), its typed view, and :func:`check_state` that refuses a key not declared here;
- the state transitions every writer uses: :func:`running_state`, :func:`exited_state`,
  :func:`gone_state`;
- :func:`network_settings`: Docker's ``NetworkSettings`` with nothing attached (the base of
  what :func:`lamina.network.sandbox.settings` fills in for a running container).

A new field (health, another network attribute) is added here, with its default, and
nowhere else needs to know the shape to keep records valid. Importing this module is cheap
(no I/O; os and lamina.values only): ``run`` and ``ps`` load it.
"""

from __future__ import annotations

import os

from lamina.values import value

__all__ = ["ZERO_TIME", "STATE_DEFAULTS", "State", "check_state", "running_state",
           "exited_state", "gone_state", "network_settings", "new_document"]

#: Go's zero time as Docker prints it for a container never started or never finished.
ZERO_TIME = "0001-01-01T00:00:00Z"

#: Docker's ``State`` of a created container, in its inspect order.
DOCKER_STATE = {
    "Status": "created", "Running": False, "Paused": False, "Restarting": False,
    "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
    "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
}

#: lamina's bookkeeping in ``State`` (absent until the first start): the init's pid start
#: time, the monitor's pid and start time, whether the user stopped it (restart policies),
#: and the restart count the monitor loop keeps. ``Health`` is Docker's (``{"Status",
#: "FailingStreak", "Log"}``, lamina.runtime.health), present only for a container with a
#: health check that was started.
LAMINA_STATE = {
    "PidStart": None, "MonitorPid": 0, "MonitorStart": None, "StoppedByUser": False,
    "RestartCount": 0, "Health": None,
}

STATE_DEFAULTS = {**DOCKER_STATE, **LAMINA_STATE}


@value
class State:
    """A typed view of a record's ``State`` (read-only; write through the transitions below
    and ``Containers.set_state``)."""

    status: str = "created"
    running: bool = False
    paused: bool = False
    restarting: bool = False
    oom_killed: bool = False
    dead: bool = False
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    pid_start: str | None = None
    monitor_pid: int = 0
    monitor_start: str | None = None
    stopped_by_user: bool = False
    restart_count: int = 0
    health: dict | None = None

    @classmethod
    def of(cls, doc: dict) -> State:
        """The state of the record ``doc`` (missing keys take their defaults)."""
        st = doc["State"]
        return cls(*(st.get(k, d) for k, d in STATE_DEFAULTS.items()))

    @property
    def active(self) -> bool:
        """Running, paused or between two runs of a restart policy: a process (or the
        monitor that will start one) should exist."""
        return self.running or self.status in ("running", "paused", "restarting")


def check_state(changes: dict) -> dict:
    """``changes`` if every key is a declared ``State`` field, else ValueError naming the
    first unknown one (a programming error: declare the field in this module)."""
    for k in changes:
        if k not in STATE_DEFAULTS:
            raise ValueError(f"container State has no field {k!r} (declare it in lamina.runtime.record)")
    return changes


def running_state(pid: int, *, pid_start: str | None, now: str) -> dict:
    """The ``State`` changes of a start: ``pid`` (its start time ``pid_start``) runs."""
    return {"Status": "running", "Running": True, "Paused": False, "Restarting": False, "Pid": pid,
            "PidStart": pid_start, "StartedAt": now, "ExitCode": 0, "Error": "",
            "FinishedAt": ZERO_TIME}


def exited_state(code: int, *, now: str) -> dict:
    """The ``State`` changes of an exit with Docker's exit code ``code``."""
    return {"Status": "exited", "Running": False, "Paused": False, "Restarting": False, "Pid": 0,
            "ExitCode": code, "FinishedAt": now}


def gone_state(*, now: str) -> dict:
    """The ``State`` of a record that says running but whose process and monitor are gone
    (its lamina monitor was killed): exited with 255, as ``ps`` and ``rm`` must see it."""
    return {**exited_state(255, now=now),
            "Error": "container process is gone (its lamina monitor was killed)"}


def network_settings(networks: dict) -> dict:
    """Docker's ``NetworkSettings`` of a container that is attached to nothing yet, with
    ``networks`` (name -> endpoint settings) as its ``Networks``."""
    return {"Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": networks}


#: The top-level keys of Docker's container inspect JSON, in its order (docker inspect).
DOCKER_TOP = ("Id", "Created", "Path", "Args", "State", "Image", "ResolvConfPath", "HostnamePath",
              "HostsPath", "LogPath", "Name", "RestartCount", "Driver", "Platform", "MountLabel",
              "ProcessLabel", "AppArmorProfile", "ExecIDs", "HostConfig", "GraphDriver", "Mounts",
              "Config", "NetworkSettings")
_DOCKER_TOP_DEFAULTS = {"MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None}


def inspect_view(doc: dict) -> dict:
    """What ``inspect`` prints of the record ``doc`` (no template): Docker's keys in Docker's
    order (labels and profile fields lamina does not use as Docker prints them unset), a
    State with Docker's fields only (``Health`` when the container has a health check), then
    lamina's own keys (``ImageManifest``, ``Lamina``). Templates see the record itself."""
    out: dict = {}
    for k in DOCKER_TOP:
        if k == "State":
            st = doc["State"]
            state = {f: st.get(f, d) for f, d in DOCKER_STATE.items()}
            if st.get("Health") is not None:
                state["Health"] = st["Health"]
            out[k] = state
        elif k in doc:
            out[k] = doc[k]
        elif k in _DOCKER_TOP_DEFAULTS:
            out[k] = _DOCKER_TOP_DEFAULTS[k]
    for k, v in doc.items():
        out.setdefault(k, v)
    return out


def new_document(*, cid: str, name: str, created: str, path: str, args: list[str], image: str,
                 manifest: str, directory: str, host_config: dict, config: dict, mounts: list,
                 networks: dict, chain_id: str | None, detach_keys: str | None,
                 cgroup_parent: str) -> dict:
    """The record of a container just created: ``host_config`` and ``config`` are Docker's
    ``HostConfig`` and ``Config`` objects (their fields are the create options'), the file
    paths are those of its ``directory``."""
    return {
        "Id": cid, "Created": created, "Path": path, "Args": args,
        "State": dict(DOCKER_STATE),
        "Image": image, "ImageManifest": manifest,
        "ResolvConfPath": os.path.join(directory, "resolv.conf"),
        "HostnamePath": os.path.join(directory, "hostname"),
        "HostsPath": os.path.join(directory, "hosts"),
        "LogPath": os.path.join(directory, f"{cid}-json.log"),
        "Name": "/" + name, "RestartCount": 0, "Driver": "overlay", "Platform": "linux",
        "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay", "Data": {"UpperDir": os.path.join(directory, "upper"),
                                                     "WorkDir": os.path.join(directory, "work"),
                                                     "MergedDir": os.path.join(directory, "rootfs")}},
        "Mounts": mounts,
        "Config": config,
        "NetworkSettings": network_settings(networks),
        "Lamina": {"ChainID": chain_id, "DetachKeys": detach_keys, "CgroupParent": cgroup_parent},
    }
