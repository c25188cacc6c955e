"""The flags of ``create`` and ``run``: their declaration (Docker's names, defaults and help)
and their reading into :class:`lamina.runtime.options.CreateOptions`, with docker/cli's
client-side checks and messages. Parsing only; lamina.runtime.containers does the work."""

from __future__ import annotations

import os

from lamina.cli.args import Parser
from lamina.errors import InvalidArgument


def create_parser(verb: str) -> Parser:
    p = Parser(verb, "[OPTIONS] IMAGE [COMMAND] [ARG...]",
               "Create and run a new container from an image" if verb == "run" else "Create a new container",
               interspersed=False)
    p.option("-a", "--attach", append=True, metavar="list", help="Attach to STDIN, STDOUT or STDERR")
    p.option("--add-host", append=True, metavar="list", help="Add a custom host-to-IP mapping (host:ip)")
    p.option("--cap-add", append=True, metavar="list", help="Add Linux capabilities")
    p.option("--cap-drop", append=True, metavar="list", help="Drop Linux capabilities")
    p.option("--cgroup-parent", default="", help="Optional parent cgroup for the container")
    p.option("--cidfile", metavar="string", help="Write the container ID to the file")
    p.option("-c", "--cpu-shares", metavar="int", help="CPU shares (relative weight)")
    p.option("--cpus", metavar="decimal", help="Number of CPUs")
    p.option("--cpuset-cpus", metavar="string", help="CPUs in which to allow execution (0-3, 0,1)")
    p.option("--cpuset-mems", metavar="string", help="MEMs in which to allow execution (0-3, 0,1)")
    if verb == "run":
        p.flag("-d", "--detach", help="Run container in background and print container ID")
    p.option("--detach-keys", help="Override the key sequence for detaching a container")
    p.option("--device", append=True, metavar="list", help="Add a host device to the container")
    p.option("--dns", append=True, metavar="list", help="Set custom DNS servers")
    p.option("--dns-option", "--dns-opt", append=True, metavar="list", help="Set DNS options")
    p.option("--dns-search", append=True, metavar="list", help="Set custom DNS search domains")
    p.option("--domainname", metavar="string", help="Container NIS domain name")
    p.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    p.option("-e", "--env", append=True, metavar="list", help="Set environment variables")
    p.option("--env-file", append=True, metavar="list", help="Read in a file of environment variables")
    p.option("--expose", append=True, metavar="list", help="Expose a port or a range of ports")
    p.option("--group-add", append=True, metavar="list", help="Add additional groups to join")
    p.option("--health-cmd", metavar="string", help="Command to run to check health")
    p.option("--health-interval", metavar="duration", help="Time between running the check (ms|s|m|h) (default 0s)")
    p.option("--health-retries", metavar="int", help="Consecutive failures needed to report unhealthy")
    p.option("--health-start-period", metavar="duration",
             help="Start period for the container to initialize before starting health-retries countdown "
                  "(ms|s|m|h) (default 0s)")
    p.option("--health-timeout", metavar="duration",
             help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)")
    p.option("-h", "--hostname", help="Container host name")
    p.flag("--init", help="Run an init inside the container that forwards signals and reaps processes")
    p.option("--init-path", metavar="string",
             help="Host path of the init binary --init runs (default: tini-static from the PATH)")
    p.flag("-i", "--interactive", help="Keep STDIN open even if not attached")
    p.option("--ip", metavar="string", help="IPv4 address (e.g., 172.30.100.104)")
    p.option("--ipc", metavar="string", help="IPC mode to use")
    p.option("-l", "--label", append=True, metavar="list", help="Set meta data on a container")
    p.option("--label-file", append=True, metavar="list", help="Read in a line delimited file of labels")
    p.option("--log-driver", metavar="string", help="Logging driver for the container")
    p.option("--log-opt", append=True, metavar="list", help="Log driver options")
    p.option("-m", "--memory", metavar="bytes", help="Memory limit")
    p.option("--memory-reservation", metavar="bytes", help="Memory soft limit")
    p.option("--memory-swap", metavar="bytes",
             help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap (default: twice --memory)")
    p.option("--mount", append=True, metavar="mount", help="Attach a filesystem mount to the container")
    p.option("--name", help="Assign a name to the container")
    p.option("--network", "--net", default="default", metavar="network",
             help="Connect a container to a network: bridge (the default), a user network, none (only lo), "
                  "host (the host's own network, loopback services included) or container:<name|id>")
    p.option("--network-alias", "--net-alias", append=True, metavar="list",
             help="Add network-scoped alias for the container")
    p.flag("--no-healthcheck", help="Disable any container-specified HEALTHCHECK")
    p.flag("--oom-kill-disable", help="Disable OOM Killer")
    p.option("--pid", metavar="string", help="PID namespace to use")
    p.option("--pids-limit", metavar="int", help="Tune container pids limit (set -1 for unlimited)")
    p.option("--platform", metavar="string", help="Set platform if server is multi-platform capable")
    p.flag("--privileged", help="Give extended privileges to this container")
    p.option("-p", "--publish", append=True, metavar="list", help="Publish a container's port(s) to the host")
    p.flag("-P", "--publish-all", help="Publish all exposed ports to random ports")
    p.option("--pull", default="missing", help='Pull image before running ("always", "missing", "never") '
                                               '(default "missing")')
    p.flag("--read-only", help="Mount the container's root filesystem as read only")
    p.option("--restart", default="no", help="Restart policy to apply when a container exits (default \"no\")")
    p.flag("--rm", help="Automatically remove the container when it exits")
    p.option("--runtime", default="builtin", help="Runtime to use for this container: builtin, runc or crun")
    p.option("--security-opt", append=True, metavar="list", help="Security Options")
    p.option("--shm-size", metavar="bytes", help="Size of /dev/shm")
    if verb == "run":
        p.flag("--sig-proxy", default=True, help="Proxy received signals to the process (default true)")
    p.option("--stop-signal", help="Signal to stop the container")
    p.option("--stop-timeout", metavar="int", help="Timeout (in seconds) to stop a container")
    p.option("--sysctl", append=True, metavar="map", help="Sysctl options (default map[])")
    p.option("--tmpfs", append=True, metavar="list", help="Mount a tmpfs directory")
    p.flag("-t", "--tty", help="Allocate a pseudo-TTY")
    p.option("--ulimit", append=True, metavar="ulimit", help="Ulimit options")
    p.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.option("--userns", metavar="string", help="User namespace to use (host: the only one lamina has)")
    p.option("--uts", metavar="string", help="UTS namespace to use")
    p.option("-v", "--volume", append=True, metavar="list", help="Bind mount a volume")
    p.option("--volumes-from", append=True, metavar="list", help="Mount volumes from the specified container(s)")
    p.option("-w", "--workdir", help="Working directory inside the container")
    p.args("args", min=1)
    return p


def read_env_files(paths: list[str]) -> list[str]:
    """``--env-file``: KEY=value lines (``#`` comments, blank lines skipped), Docker's checks."""
    out = []
    for path in paths:
        try:
            lines = open(path).read().splitlines()
        except OSError as e:
            raise InvalidArgument(f"open {path}: {e.strerror.lower()}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if " " in line.split("=", 1)[0] or line.startswith("="):
                raise InvalidArgument(f"{path}:{n}: variable '{line.split('=', 1)[0]}' contains whitespaces")
            out.append(line)
    return out


def read_label_files(paths: list[str]) -> list[str]:
    """``--label-file``: one ``key=value`` (or ``key``) a line, ``#`` comments and blank lines
    skipped (docker/cli's ReadKVStrings)."""
    out = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise InvalidArgument(f"open {path}: {e.strerror.lower()}") from None
        for n, raw in enumerate(data.split(b"\n"), 1):
            try:
                line = raw.decode("utf-8").lstrip(" \t").rstrip("\r")
            except UnicodeDecodeError:
                raise InvalidArgument(f"{path}:{n}: invalid utf8 bytes in line") from None
            if not line.strip() or line.startswith("#"):
                continue
            if " " in line.split("=", 1)[0]:
                raise InvalidArgument(f"{path}:{n}: variable '{line.split('=', 1)[0]}' contains whitespaces")
            out.append(line)
    return out


def _namespace_mode(value: str | None, flag: str, allowed: tuple[str, ...], *, container: bool) -> str:
    v = value or ""
    if v in allowed or (container and v.startswith("container:") and v.partition(":")[2]):
        return v
    if flag == "ipc":  # dockerd's message (the CLI checks --pid and --uts, the daemon --ipc)
        raise InvalidArgument(f"Invalid IPC mode: {v}")
    raise InvalidArgument(f"--{flag}: invalid {flag.upper()} mode")


def _devices(specs: list[str]) -> tuple:
    """``--device host[:container][:perms]`` as Docker's DeviceMapping dicts."""
    out = []
    for spec in specs:
        parts = spec.split(":")
        perms = "rwm"
        if len(parts) == 3:
            src, dst, perms = parts
        elif len(parts) == 2:
            src, dst = parts
            if all(c in "rwm" for c in dst) and dst:
                perms, dst = dst, src
        elif len(parts) == 1:
            src = dst = parts[0]
        else:
            raise InvalidArgument(f"invalid device specification: {spec}")
        if not dst.startswith("/"):
            raise InvalidArgument(f"{dst} is not an absolute path")
        if not perms or any(c not in "rwm" for c in perms):
            raise InvalidArgument(f"invalid device mode: {perms}")
        out.append({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms})
    return tuple(out)


def _attach(values: list[str], a, verb: str) -> tuple[str, ...]:
    out = []
    for v in values:
        if v.lower() not in ("stdin", "stdout", "stderr"):
            raise InvalidArgument(f'invalid argument "{v}" for "-a, --attach" flag: '
                                  "valid streams are STDIN, STDOUT and STDERR")
        out.append(v.lower())
    if out and verb == "run" and getattr(a, "detach", False):
        raise InvalidArgument("Conflicting options: -a and -d")
    return tuple(out)


def _sysctls(values: list[str]) -> dict:
    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not sep:
            raise InvalidArgument(f'invalid argument "{v}" for "--sysctl" flag: {v} is not a valid key=value pair')
        out[k] = val
    return out


def _log_config(driver: str | None, opts: list[str]) -> dict:
    config = {}
    for o in opts:
        k, sep, v = o.partition("=")
        if not sep:
            raise InvalidArgument(f'invalid argument "{o}" for "--log-opt" flag: {o} is not a valid key=value pair')
        config[k] = v
    return {"Type": driver or "json-file", "Config": config}


#: the log drivers lamina has and the options each takes (Docker's names)
DRIVER_OPTS = {"json-file": ("max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"),
               "local": ("max-size", "max-file", "compress"), "none": ()}


def check_log_config(cfg: dict) -> tuple[int, int]:
    """Docker's checks of ``HostConfig.LogConfig`` (driver, option names and values); returns
    (max_size, max_file) for the writer: -1 unlimited; the local driver's defaults are 20 MB
    and 5 files, as Docker's."""
    from lamina.errors import InvalidArgument
    driver, opts = cfg.get("Type") or "json-file", cfg.get("Config") or {}
    if driver not in DRIVER_OPTS:
        raise InvalidArgument(f'error looking up logging plugin {driver}: plugin "{driver}" not found')
    if driver == "none" and opts:
        raise InvalidArgument("invalid logging opts for driver none")
    for k in opts:
        if k not in DRIVER_OPTS[driver]:
            raise InvalidArgument(f"unknown log opt '{k}' for json-file log driver" if driver == "json-file"
                                  else f"unknown log opt '{k}' for log driver {driver}")
    max_size, max_file = (20 * 1024 * 1024, 5) if driver == "local" else (-1, 1)
    if "max-size" in opts:
        from lamina.cli.units import parse_size
        try:
            max_size = parse_size(opts["max-size"])
        except (InvalidArgument, ValueError):
            raise InvalidArgument(f"failed to initialize logging driver: invalid size: '{opts['max-size']}'") from None
    if "max-file" in opts:
        v = opts["max-file"]
        if not v.lstrip("+-").isdigit():
            raise InvalidArgument(f'failed to initialize logging driver: strconv.Atoi: parsing "{v}": invalid syntax')
        max_file = int(v)
        if max_file < 1:
            raise InvalidArgument("failed to initialize logging driver: max-file cannot be less than 1")
    if "compress" in opts and opts["compress"] not in ("true", "false", "1", "0", "t", "f", "True", "False"):
        raise InvalidArgument(f'failed to initialize logging driver: strconv.ParseBool: parsing "{opts["compress"]}": '
                              "invalid syntax")
    return max_size, max_file


def check_platform(value: str | None) -> None:
    """``--platform``: lamina runs the host's platform only; anything else is refused."""
    if not value:
        return
    from lamina.oci import host_platform
    host = host_platform()
    os_, _, rest = value.lower().partition("/")
    arch, _, variant = rest.partition("/")
    aliases = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}
    arch = aliases.get(arch, arch)
    if os_ != host.os or (arch and arch != host.architecture) or (variant and variant != (host.variant or "")):
        raise InvalidArgument(f'"{value}": lamina runs containers of this host\'s platform only '
                              f'({host.os}/{host.architecture}); --platform cannot select another')


def options(a, verb: str):
    """The CreateOptions of parsed ``create``/``run`` flags ``a``."""
    from lamina.runtime.options import CreateOptions
    image, cmd = a.args[0], tuple(a.args[1:])
    entry = None
    if a.entrypoint is not None:
        entry = () if a.entrypoint == "" else (a.entrypoint,)
    labels = {}
    for l in read_label_files(a.label_file) + list(a.label):
        k, _, v = l.partition("=")
        labels[k] = v
    runtime = a.runtime
    if runtime not in ("builtin", "runc", "crun", "lamina"):
        raise InvalidArgument(f"unknown or invalid runtime name: {runtime}")
    from lamina.cli.args import go_duration, go_int, nano_cpus

    def num(v, what):
        return None if v is None else go_int(v, what)
    pids = num(a.pids_limit, "--pids-limit")
    nano = nano_cpus(a.cpus) if a.cpus is not None else 0

    def size(v, what):
        if not v:
            return None
        if v == "-1" and what == "--memory-swap":
            return -1
        from lamina.cli.units import parse_size
        try:
            return parse_size(v)
        except InvalidArgument as e:  # Docker names the flag: invalid argument "x" for "-m, --memory" flag: ...
            raise InvalidArgument(f'invalid argument "{v}" for "{what}" flag: {e}') from None

    def dur(v, what):
        return 0 if v is None else go_duration(v, what)
    from lamina.runtime import health
    healthcheck = health.from_flags(cmd=a.health_cmd, interval=dur(a.health_interval, "--health-interval"),
                                    timeout=dur(a.health_timeout, "--health-timeout"),
                                    start_period=dur(a.health_start_period, "--health-start-period"),
                                    retries=num(a.health_retries, "--health-retries") or 0,
                                    disabled=a.no_healthcheck)
    check_platform(a.platform)
    if a.userns not in (None, "", "host"):
        raise InvalidArgument(f"--userns={a.userns}: lamina remaps no users (user namespaces are not supported); "
                              "the only mode is host")
    pid_mode = _namespace_mode(a.pid, "pid", ("", "host"), container=True)
    ipc_mode = _namespace_mode(a.ipc, "ipc", ("", "none", "private", "shareable", "host"), container=True)
    uts_mode = _namespace_mode(a.uts, "uts", ("", "host"), container=False)
    if uts_mode == "host" and a.hostname:
        raise InvalidArgument("conflicting options: hostname and the UTS mode")
    if a.cidfile and os.path.exists(a.cidfile):
        raise InvalidArgument(f"Container ID file found, make sure the other container isn't running or "
                              f"delete {a.cidfile}")
    log = _log_config(a.log_driver, a.log_opt)
    rotate = check_log_config(log)
    shares = num(a.cpu_shares, "-c, --cpu-shares")
    return CreateOptions(
        image=image, cmd=cmd, name=a.name, entrypoint=entry,
        env=tuple(read_env_files(a.env_file) + list(a.env)), workdir=a.workdir, user=a.user,
        hostname=a.hostname, tty=a.tty, interactive=a.interactive, volumes=tuple(a.volume),
        mounts=tuple(a.mount), tmpfs=tuple(a.tmpfs), read_only=a.read_only, network=a.network,
        ip=a.ip, network_aliases=tuple(a.network_alias), publish=tuple(a.publish), publish_all=a.publish_all,
        expose=tuple(a.expose), add_hosts=tuple(a.add_host), dns=tuple(a.dns), dns_search=tuple(a.dns_search),
        dns_options=tuple(a.dns_option), domainname=a.domainname,
        init=a.init, init_path=a.init_path, stop_signal=a.stop_signal, stop_timeout=None if a.stop_timeout is None
        else go_int(a.stop_timeout, "--stop-timeout", bits=32),
        restart=a.restart, cap_add=tuple(a.cap_add), cap_drop=tuple(a.cap_drop), privileged=a.privileged,
        security_opt=tuple(a.security_opt), memory=size(a.memory, "-m, --memory"),
        memory_swap=size(a.memory_swap, "--memory-swap"),
        memory_reservation=size(a.memory_reservation, "--memory-reservation"),
        oom_kill_disable=a.oom_kill_disable, cpu_shares=shares or 0,
        cpuset_cpus=a.cpuset_cpus or "", cpuset_mems=a.cpuset_mems or "",
        cpus=nano / 1e9 if nano else None, pids_limit=None if pids is None or pids <= 0 else pids,
        ulimits=tuple(a.ulimit), shm_size=size(a.shm_size, "--shm-size"), labels=labels,
        runtime="builtin" if runtime == "lamina" else runtime, auto_remove=a.rm, detach_keys=a.detach_keys,
        detach=verb == "run" and bool(getattr(a, "detach", False)),
        healthcheck=healthcheck, devices=_devices(a.device), group_add=tuple(a.group_add),
        pid_mode=pid_mode, ipc_mode=ipc_mode or "private", uts_mode=uts_mode, sysctls=_sysctls(a.sysctl),
        log_config=log, volumes_from=tuple(a.volumes_from), attach=_attach(a.attach, a, verb),
        cidfile=a.cidfile or "", log_rotate=rotate, cgroup_parent=a.cgroup_parent)


def write_cidfile(path: str, cid: str) -> None:
    """``--cidfile``: the container ID, in a new file (O_EXCL: never over another's)."""
    if not path:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise InvalidArgument(f"Container ID file found, make sure the other container isn't running or "
                              f"delete {path}") from None
    except OSError as e:
        raise InvalidArgument(f"failed to create the container ID file: open {path}: {e.strerror.lower()}") from None
    with os.fdopen(fd, "w") as f:
        f.write(cid)
