"""``version``, ``info``, ``system df``, ``system prune``."""

from __future__ import annotations

import os
import platform
import sys

from lamina.cli.args import Parser, parse


def _version_data() -> dict:
    from lamina import __version__
    from lamina.oci import host_platform
    return {"Client": {"Version": __version__, "PythonVersion": platform.python_version(),
                       "Os": "linux", "Arch": host_platform().architecture,
                       "KernelVersion": platform.release()}}


def cmd_version(argv, ctx) -> int:
    p = Parser("version", "[OPTIONS]", "Show the lamina version information")
    p.option("-f", "--format")
    a = parse(p, argv)
    data = _version_data()
    if a.format:
        from lamina.gotemplate.template import compile_template
        print(compile_template(a.format).render(data))
        return 0
    c = data["Client"]
    print(f"Client: lamina\n Version:           {c['Version']}\n Python version:    {c['PythonVersion']}\n"
          f" OS/Arch:           {c['Os']}/{c['Arch']}\n Kernel:            {c['KernelVersion']}\n"
          f" Daemon:            none (lamina is daemonless)")
    return 0


def _cgroup_version() -> str:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "2"
    if os.path.isdir("/sys/fs/cgroup/unified"):
        return "1 (hybrid)"
    return "1"


def cmd_info(argv, ctx) -> int:
    p = Parser("info", "[OPTIONS]", "Display system-wide information")
    p.option("-f", "--format")
    a = parse(p, argv)
    store = ctx.store
    db = store.db
    n_images = db.one("SELECT COUNT(DISTINCT config) FROM images")[0]
    n_cont = db.one("SELECT COUNT(*) FROM containers")[0]
    from lamina import __version__
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    data = {"ID": "", "Containers": n_cont, "Images": n_images, "Driver": "overlay",
            "DriverStatus": [["Backing Filesystem", _fstype(store.root)]],
            "LaminaRootDir": store.root, "ServerVersion": __version__, "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(), "OSType": "linux", "Architecture": platform.machine(),
            "NCPU": os.cpu_count(), "MemTotal": mem, "CgroupVersion": _cgroup_version(),
            "Name": platform.node()}
    if a.format:
        from lamina.gotemplate.template import compile_template
        print(compile_template(a.format).render(data))
        return 0
    from lamina.cli.units import bytes_size
    print(f"Client:\n Version:    {__version__}\n Context:    daemonless\n\nServer:\n"
          f" Containers: {n_cont}\n Images: {n_images}\n Server Version: {__version__}\n"
          f" Storage Driver: overlay\n  Backing Filesystem: {data['DriverStatus'][0][1]}\n"
          f" Cgroup Version: {data['CgroupVersion']}\n Kernel Version: {data['KernelVersion']}\n"
          f" Operating System: {data['OperatingSystem']}\n OSType: linux\n Architecture: {data['Architecture']}\n"
          f" CPUs: {data['NCPU']}\n Total Memory: {bytes_size(mem)}\n Name: {data['Name']}\n"
          f" Lamina Root Dir: {store.root}")
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
    for manifest, config, _ in images:
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
    from lamina.cli.units import human_size
    from lamina.cli.images import _confirm, _parse_filters, print_pruned
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
    from lamina.build.cache import BuildCache
    BuildCache(ctx.store).prune()
    lines, freed = prune_images(Images(ctx.store), all_unused=a.all,
                                filters=_parse_filters(a.filter, ("until", "label")))
    print_pruned("Deleted Images:", lines)
    print(f"Total reclaimed space: {human_size(freed + freed_volumes, 4)}")  # units.HumanSize
    return 0
