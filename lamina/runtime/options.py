"""``lamina create/run`` options as a value (kept apart from lamina.runtime.containers so
listing commands never pay for the dataclass machinery)."""

from __future__ import annotations

from lamina.values import field, value


@value
class CreateOptions:
    """``lamina create/run`` options, Docker's names and defaults."""

    image: str
    cmd: tuple[str, ...] = ()
    name: str | None = None
    entrypoint: tuple[str, ...] | None = None   # None: not given; (): --entrypoint ""
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    tty: bool = False
    interactive: bool = False
    volumes: tuple[str, ...] = ()        # -v specs
    mounts: tuple[str, ...] = ()         # --mount specs
    tmpfs: tuple[str, ...] = ()          # --tmpfs specs
    read_only: bool = False
    network: str = "default"             # default (the bridge) | bridge | none | host | container:<x> | <net>
    ip: str | None = None                # --ip
    network_aliases: tuple[str, ...] = ()
    publish: tuple[str, ...] = ()        # -p specs
    publish_all: bool = False            # -P
    expose: tuple[str, ...] = ()         # --expose specs
    add_hosts: tuple[str, ...] = ()      # --add-host host:ip
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    domainname: str | None = None
    init: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    restart: str = "no"
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    security_opt: tuple[str, ...] = ()
    memory: int | None = None
    memory_swap: int | None = None       # --memory-swap: None not given, -1 unlimited
    cpus: float | None = None
    pids_limit: int | None = None
    ulimits: tuple[str, ...] = ()
    shm_size: int | None = None
    labels: dict = field(default_factory=dict)
    runtime: str = "builtin"
    auto_remove: bool = False
    detach_keys: str | None = None
    detach: bool = False                 # run -d: no stream attached (Config.Attach* false)
    healthcheck: dict | None = None      # Docker's HealthConfig from the --health-* flags
    devices: tuple = ()                  # Docker's DeviceMapping dicts (--device)
    group_add: tuple[str, ...] = ()      # --group-add: names or gids
    pid_mode: str = ""                   # "" | host | container:<x>
    ipc_mode: str = "private"            # private | shareable | none | host | container:<x>
    uts_mode: str = ""                   # "" | host
    sysctls: dict = field(default_factory=dict)
    log_config: dict = field(default_factory=lambda: {"Type": "json-file", "Config": {}})
    volumes_from: tuple[str, ...] = ()   # container[:ro|:rw]
    attach: tuple[str, ...] = ()         # -a: stdin, stdout, stderr
    memory_reservation: int | None = None
    oom_kill_disable: bool = False
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    init_path: str | None = None         # --init-path: the init binary (default tini-static)
    cidfile: str = ""
    log_rotate: tuple[int, int] = (-1, 1)  # (max size in bytes or -1, files kept): --log-opt
    cgroup_parent: str = ""              # --cgroup-parent ("": $LAMINA_CGROUP_PARENT or lamina)
