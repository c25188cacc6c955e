"""``version``, ``info``, ``system df``, ``system prune``."""

from __future__ import annotations

import os
import platform
import sys

from lamina.cli.args import Parser, parse


def _version_data():
    """Docker's ``types.Version`` shapes (client and engine are one program here): the
    template sees Go field names, as ``docker version --format`` does."""
    from lamina import __version__
    from lamina.buildinfo import build_info
    from lamina.gotemplate.values import GoStruct
    from lamina.oci import host_platform
    commit, built = build_info()
    arch = host_platform().architecture
    python = f"python{platform.python_version()}"
    client = GoStruct([("Platform", GoStruct([("Name", "lamina")], type_name="struct { Name string }")),
                       ("Version", __version__), ("GitCommit", commit), ("GoVersion", python),
                       ("Os", "linux"), ("Arch", arch), ("BuildTime", built), ("Context", "daemonless"),
                       ("Experimental", False)], type_name="*client.clientVersion")
    engine_details = {"GitCommit": commit, "GoVersion": python, "Os": "linux", "Arch": arch,
                      "KernelVersion": platform.release(), "BuildTime": built, "Experimental": "false"}
    components = [GoStruct([("Name", "Engine"), ("Version", __version__), ("Details", engine_details)],
                           type_name="types.ComponentVersion")]
    for name, version, rev in _runtime_versions():
        components.append(GoStruct([("Name", name), ("Version", version), ("Details", {"GitCommit": rev})],
                                   type_name="types.ComponentVersion"))
    server = GoStruct([("Platform", GoStruct([("Name", "lamina")], type_name="struct { Name string }")),
                       ("Components", components), ("Version", __version__), ("GitCommit", commit),
                       ("GoVersion", python), ("Os", "linux"), ("Arch", arch),
                       ("KernelVersion", platform.release()), ("Experimental", False), ("BuildTime", built)],
                      type_name="*types.Version")
    return GoStruct([("Client", client), ("Server", server)], type_name="command.versionInfo")


def _runtime_versions() -> list[tuple[str, str, str]]:
    """(name, version, commit) of the external OCI runtimes and the init lamina can use
    (``--runtime runc|crun``, ``--init``), as ``docker version`` lists runc and docker-init."""
    import shutil
    import subprocess
    out = []
    for name in ("runc", "crun", "tini-static"):
        path = shutil.which(name)
        if not path:
            continue
        try:
            text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        first = text.strip().splitlines()[0] if text.strip() else ""
        version = first.split("version", 1)[-1].strip().split()[0] if "version" in first else first
        rev = ""
        for line in text.splitlines():
            if line.lower().startswith("commit:"):
                rev = line.split(":", 1)[1].strip()
        if name == "tini-static":  # "tini version 0.19.0 - git.de40ad0"
            name = "docker-init"
            if " - git." in first:
                rev = first.rsplit(" - git.", 1)[1].strip()
        out.append((name, version, rev))
    return out


def cmd_version(argv, ctx) -> int:
    p = Parser("version", "[OPTIONS]", "Show the lamina version information")
    p.option("-f", "--format", help="Format the output using the given Go template")
    a = parse(p, argv)
    data = _version_data()
    if a.format:
        print(_render_bare(a.format, data, name="version"))
        return 0
    c, s = data["Client"], data["Server"]
    lines = ["Client: lamina",
             f" Version:           {c['Version']}",
             f" Git commit:        {c['GitCommit']}",
             f" Python version:    {c['GoVersion'][6:]}",
             f" OS/Arch:           {c['Os']}/{c['Arch']}",
             f" Context:           {c['Context']}",
             "",
             "Server: lamina (daemonless: the engine runs in each command)"]
    for comp in s["Components"]:
        lines.append(f" {comp['Name']}:")
        lines.append(f"  Version:          {comp['Version']}")
        d = comp["Details"]
        if comp["Name"] == "Engine":
            lines += [f"  Git commit:       {d['GitCommit']}",
                      f"  Built:            {d['BuildTime'] or 'from a source checkout'}",
                      f"  OS/Arch:          {d['Os']}/{d['Arch']}",
                      f"  Kernel:           {d['KernelVersion']}",
                      f"  Experimental:     {d['Experimental']}"]
        else:
            lines.append(f"  GitCommit:        {d['GitCommit']}")
    print("\n".join(lines))
    return 0


def _render_bare(text: str, data, *, name: str = "") -> str:
    """A --format template over ``data``; its errors read as ``docker version``/``info``
    print them: Go's message alone (``template: version:1:9: executing ...``), exit 1."""
    from lamina.gotemplate.template import TemplateError, compile_template
    try:
        return compile_template(text, name=name).render(data)
    except TemplateError as e:
        raise TemplateError(str(e).removeprefix("template parsing error: ")) from None


def _cgroup_version() -> str:
    """"2" on a unified hierarchy, else "1" (hybrid hosts too, as Docker reports them)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "2"
    return "1"


def _info_data(store) -> dict:
    """Docker's ``system.Info`` fields that mean something for lamina, same names and shapes."""
    from lamina import __version__
    from lamina.registry.client.hosts import _listed_insecure
    from lamina.runtime.containers import Containers
    db = store.db
    n_images = db.one("SELECT COUNT(DISTINCT config) FROM images")[0]
    running = paused = stopped = 0
    for doc in Containers(store).all():
        st = doc["State"]
        if st.get("Running") and st.get("Paused"):
            paused += 1
        elif st.get("Running"):
            running += 1
        else:
            stopped += 1
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    import shutil
    runtimes = {"builtin": {"path": "lamina"}}
    for rt in ("runc", "crun"):
        path = shutil.which(rt)
        if path:
            runtimes[rt] = {"path": path}
    security = []
    from lamina.runtime.seccomp import _libseccomp_path
    if _libseccomp_path():
        security.append("name=seccomp,profile=default")
    if os.geteuid() != 0:
        security.append("name=rootless")
    if _cgroup_version() == "2":
        security.append("name=cgroupns")
    insecure = ["127.0.0.0/8", "::1/128"] + [x for x in _listed_insecure() if x not in ("127.0.0.0/8", "::1/128")]
    init = shutil.which("tini-static")
    return {
        "ID": "", "Containers": running + paused + stopped, "ContainersRunning": running,
        "ContainersPaused": paused, "ContainersStopped": stopped, "Images": n_images,
        "Driver": "overlay", "DriverStatus": [["Backing Filesystem", _fstype(store.root)]],
        "Plugins": {"Volume": ["local"], "Network": ["host", "none"], "Authorization": None,
                    "Log": ["json-file"]},
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": _cgroup_version(),
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(), "OSType": "linux",
        "Architecture": platform.machine(), "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {"docker.io": {"Mirrors": [], "Name": "docker.io",
                                                          "Official": True, "Secure": True}},
                           "InsecureRegistryCIDRs": insecure, "Mirrors": []},
        "NCPU": os.cpu_count(), "MemTotal": mem, "DockerRootDir": store.root, "LaminaRootDir": store.root,
        "Name": platform.node(), "Labels": [], "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": runtimes, "DefaultRuntime": "builtin", "Swarm": {"LocalNodeState": "inactive"},
        "LiveRestoreEnabled": True, "InitBinary": init or "", "SecurityOptions": security,
        "Debug": False, "Warnings": None,
    }


def cmd_info(argv, ctx) -> int:
    p = Parser("info", "[OPTIONS]", "Display system-wide information")
    p.option("-f", "--format", help="Format the output using the given Go template")
    a = parse(p, argv)
    data = _info_data(ctx.store)
    if a.format:
        from lamina.gotemplate.values import GoStruct
        print(_render_bare(a.format, GoStruct(data.items(), type_name="system.dockerInfo")))
        return 0
    from lamina import __version__
    from lamina.buildinfo import build_info
    from lamina.cli.units import bytes_size
    d = data
    lines = ["Client:", f" Version:    {__version__}", f" Git commit: {build_info()[0]}",
             " Context:    daemonless", f" Debug Mode: {'true' if ctx.debug else 'false'}", "",
             "Server:",
             f" Containers: {d['Containers']}", f"  Running: {d['ContainersRunning']}",
             f"  Paused: {d['ContainersPaused']}", f"  Stopped: {d['ContainersStopped']}",
             f" Images: {d['Images']}", f" Server Version: {d['ServerVersion']}",
             f" Storage Driver: {d['Driver']}"]
    lines += [f"  {k}: {v}" for k, v in d["DriverStatus"]]
    lines += [f" Logging Driver: {d['LoggingDriver']}", f" Cgroup Driver: {d['CgroupDriver']}",
              f" Cgroup Version: {d['CgroupVersion']}", " Plugins:",
              f"  Volume: {' '.join(d['Plugins']['Volume'])}",
              f"  Network: {' '.join(d['Plugins']['Network'])}",
              f"  Log: {' '.join(d['Plugins']['Log'])}",
              f" Runtimes: {' '.join(sorted(d['Runtimes']))}",
              f" Default Runtime: {d['DefaultRuntime']}",
              f" Init Binary: {d['InitBinary'] or '(none: apt-get install tini for --init)'}",
              " Security Options:"]
    for opt in d["SecurityOptions"]:
        kv = dict(x.split("=", 1) for x in opt.split(","))
        lines.append(f"  {kv.pop('name')}")
        lines += [f"   {k.capitalize()}: {v}" for k, v in kv.items()]
    lines += [f" Kernel Version: {d['KernelVersion']}", f" Operating System: {d['OperatingSystem']}",
              f" OSType: {d['OSType']}", f" Architecture: {d['Architecture']}", f" CPUs: {d['NCPU']}",
              f" Total Memory: {bytes_size(d['MemTotal'])}", f" Name: {d['Name']}",
              f" Lamina Root Dir: {d['LaminaRootDir']}", f" Debug Mode: {'true' if ctx.debug else 'false'}",
              f" Registry: {d['IndexServerAddress']}", " Labels:", " Experimental: false",
              " Insecure Registries:"]
    lines += [f"  {x}" for x in d["RegistryConfig"]["InsecureRegistryCIDRs"]]
    lines.append(f" Live Restore Enabled: {'true' if d['LiveRestoreEnabled'] else 'false'}")
    print("\n".join(lines))
    return 0


def _fstype(path: str) -> str:
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) > len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return fstype


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def cmd_df(argv, ctx) -> int:
    p = Parser("system df", "[OPTIONS]", "Show lamina disk usage")
    p.flag("-v", "--verbose")
    p.option("--format")
    a = parse(p, argv)
    from lamina.cli.table import format_table
    from lamina.cli.units import human_size
    db = ctx.store.db
    images = db.query("SELECT manifest, config, size FROM images")
    used = {r[0] for r in db.query("SELECT image FROM containers")}
    # unique layers count once
    layer_sizes = dict(db.query("SELECT diff_id, content_size FROM layers"))
    from lamina.image.service import Images
    imgs = Images(ctx.store)
    all_layers, active_layers = set(), set()
    for manifest, _config, _ in images:
        try:
            diffs = [str(d) for _, d, _ in imgs.chain(imgs.get(manifest))]
        except Exception:
            diffs = []
        all_layers.update(diffs)
        if manifest in used:
            active_layers.update(diffs)
    total = sum(layer_sizes.get(d, 0) for d in all_layers)
    active_size = sum(layer_sizes.get(d, 0) for d in active_layers)
    reclaim = total - active_size
    n_img = len({c for _, c, _ in images})
    active = len({c for m, c, _ in images if m in used})
    pct = f" ({reclaim * 100 // total}%)" if total else ""
    containers = db.query("SELECT id, data FROM containers")
    running = 0
    for _, data in containers:
        if '"Running": true' in data:
            running += 1
    c_size = 0
    for cid, _ in containers:
        c_size += _du(os.path.join(ctx.store.containers_dir, cid, "upper"))
    cache_rows = db.one("SELECT COUNT(*) FROM build_cache")[0]
    inter = db.query("SELECT size FROM images WHERE intermediate=1")
    cache_size = _du(os.path.join(ctx.store.root, "build-cache"))
    rows = [
        {"Type": "Images", "TotalCount": n_img, "Active": active, "Size": human_size(total),
         "Reclaimable": f"{human_size(reclaim)}{pct}"},
        {"Type": "Containers", "TotalCount": len(containers), "Active": running, "Size": human_size(c_size),
         "Reclaimable": human_size(c_size)},
        _volume_row(ctx.store, human_size),
        {"Type": "Build Cache", "TotalCount": cache_rows + len(inter), "Active": 0, "Size": human_size(cache_size),
         "Reclaimable": human_size(cache_size)},
    ]
    fmt = a.format or "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"}
    out = format_table(rows, fmt, headers=headers)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def _du(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _volume_row(store, human_size) -> dict:
    """df's Local Volumes: every volume, those a container (any state) mounts are active;
    the others are reclaimable."""
    from lamina.runtime.volumes import volume_names, volume_size, volume_users
    users = volume_users(store)
    names = volume_names(store)
    sizes = {n: volume_size(store, n) for n in names}
    total = sum(sizes.values())
    free = sum(v for n, v in sizes.items() if not users.get(n))
    pct = f" ({free * 100 // total}%)" if total else ""
    return {"Type": "Local Volumes", "TotalCount": len(names), "Active": sum(1 for n in names if users.get(n)),
            "Size": human_size(total, 4), "Reclaimable": f"{human_size(free, 4)}{pct}"}  # units.HumanSize


def cmd_prune(argv, ctx) -> int:
    p = Parser("system prune", "[OPTIONS]", "Remove unused data")
    p.flag("-a", "--all", help="Remove all unused images not just dangling ones")
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.flag("--volumes", help="Prune volumes")
    p.option("--filter", append=True)
    a = parse(p, argv)
    from lamina.cli.images import _confirm, _parse_filters, print_pruned
    from lamina.cli.units import human_size
    from lamina.image.prune import prune_images
    from lamina.image.service import Images
    if not a.force:
        items = ["  - all stopped containers", "  - all networks not used by at least one container"]
        if a.volumes:
            items.append("  - all volumes not used by at least one container")
        items.append("  - all images without at least one container associated to them" if a.all
                     else "  - all dangling images")
        items.append("  - all build cache")
        if not _confirm("WARNING! This will remove:\n" + "\n".join(items)):
            return 0
    from lamina.cli.containers import prune_containers
    print_pruned("Deleted Containers:", prune_containers(ctx))
    from lamina.cli.network import prune_networks
    print_pruned("Deleted Networks:", prune_networks(ctx))
    freed_volumes = 0
    if a.volumes:
        from lamina.runtime.volumes import prune_volumes
        names, freed_volumes = prune_volumes(ctx.store)
        print_pruned("Deleted Volumes:", names)
    from lamina.builder.cache import BuildCache
    BuildCache(ctx.store).prune()
    lines, freed = prune_images(Images(ctx.store), all_unused=a.all,
                                filters=_parse_filters(a.filter, ("until", "label")))
    print_pruned("Deleted Images:", lines)
    print(f"Total reclaimed space: {human_size(freed + freed_volumes, 4)}")  # units.HumanSize
    return 0
