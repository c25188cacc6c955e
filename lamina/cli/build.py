"""``build`` and ``builder prune``."""

from __future__ import annotations

import os
import sys

from lamina.cli.args import Parser, parse
from lamina.errors import InvalidArgument


def _kv(items: list[str], what: str, *, from_env: bool = False) -> dict:
    """``k=v`` items as a dict. A bare ``k`` is ``""`` -- or, with ``from_env`` (build args),
    the value of ``$k``, and left out when ``$k`` is unset, as the docker CLI does (an ``ARG
    k=default`` then keeps its default)."""
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not k:
            raise InvalidArgument(f"invalid {what}: {it!r}")
        if sep:
            out[k] = v
        elif not from_env:
            out[k] = ""
        elif k in os.environ:
            out[k] = os.environ[k]
    return out


def cmd_build(argv, ctx) -> int:
    p = Parser("build", "[OPTIONS] PATH | URL | -", "Build an image from a Dockerfile")
    p.option("-t", "--tag", append=True, metavar="list", help="Name and optionally a tag in the 'name:tag' format")
    p.option("-f", "--file", metavar="string", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')")
    p.option("--build-arg", append=True, metavar="list", help="Set build-time variables")
    p.option("--target", help="Set the target build stage to build")
    p.flag("--no-cache", help="Do not use cache when building the image")
    p.flag("--pull", help="Always attempt to pull a newer version of the image")
    p.flag("-q", "--quiet", help="Suppress the build output and print image ID on success")
    p.option("--iidfile", help="Write the image ID to the file")
    p.option("--label", append=True, metavar="list", help="Set metadata for an image")
    p.option("--network", default="default",
             help="Set the networking mode for the RUN instructions during build: default is the host's "
                  "network (RUN steps reach the host's loopback services), none, bridge or a user network")
    p.option("--secret", append=True, metavar="stringArray",
             help="Secret to expose to the build (id=mysecret,src=/local/secret)")
    p.option("--progress", default="auto", help="Set type of progress output (auto, plain, tty)")
    p.option("-o", "--output", metavar="stringArray", help="Output destination (format: type=local,dest=path)")
    p.option("--platform", help="Set platform if server is multi-platform capable")
    p.flag("--rm", default=True, help="Remove intermediate containers after a successful build (default true)")
    p.flag("--force-rm", help="Always remove intermediate containers")
    p.option("--pull-policy", help="Pull policy for base images: always, missing or never (--pull=POLICY)")
    p.option("--add-host", append=True, metavar="list", help="Add a custom host-to-IP mapping (host:ip)")
    p.option("--shm-size", metavar="bytes", help="Size of /dev/shm")
    p.option("--ulimit", append=True, metavar="ulimit", help="Ulimit options")
    p.option("--security-opt", append=True, metavar="stringArray",
             help="Security options (refused, as Docker's daemon refuses them on build)")
    p.args("context", min=1, max=1)
    # --pull is Docker's boolean; --pull=always|missing|never (as on run) names a policy
    argv = [f"--pull-policy={x[7:]}" if x.startswith("--pull=") and x[7:] in ("always", "missing", "never")
            else x for x in argv]
    a = parse(p, argv)
    if a.progress not in ("auto", "plain", "tty", "quiet", "rawjson"):
        raise InvalidArgument(f"invalid progress mode {a.progress!r}: want auto, plain or tty")
    if a.progress == "tty" and not sys.stdout.isatty():  # as BuildKit refuses it
        raise InvalidArgument("--progress=tty: failed to get console: standard output is not a terminal "
                              "(use --progress=plain or auto)")
    from lamina.registry.ensure import check_policy
    a.pull_policy = check_policy("always" if a.pull else (a.pull_policy or "missing"))
    step = _step_options(a)  # bad values fail before anything, a replayed build included
    rid = _replay(ctx, a)
    if rid is not None:  # a fully cached build, replayed without the builder (builder/fastpath.py)
        _after(ctx, a, rid)
        return 0
    from lamina import reference
    from lamina.builder.builder import BuildOptions, build
    tags = [reference.parse_tag(t) for t in a.tag]
    secrets = {}
    env_secret_files: list[str] = []  # --secret id=x,env=VAR: temp files removed after the build
    for s in a.secret:
        kv = dict(x.split("=", 1) for x in s.split(",") if "=" in x)
        sid = kv.get("id")
        src = kv.get("src") or kv.get("source")
        if not sid:
            raise InvalidArgument(f"invalid secret {s!r}: want id=<name>,src=<file>")
        if src is None and kv.get("env"):
            import tempfile
            fd, src = tempfile.mkstemp(prefix="lamina-secret-")
            env_secret_files.append(src)
            os.write(fd, os.environ.get(kv["env"], "").encode())
            os.close(fd)
        if not src or not os.path.isfile(src):
            raise InvalidArgument(f"secret {sid}: file {src} not found")
        secrets[sid] = os.path.abspath(src)
    tmp_ctx = None
    dockerfile_data = None
    context = a.context
    if context == "-":
        if a.file == "-":
            raise InvalidArgument("invalid argument: can't use stdin for both build context and dockerfile")
        import tempfile

        from lamina.layer.compress import open_decompressed
        from lamina.layer.extract import apply_layer
        tmp_ctx = tempfile.mkdtemp(prefix="lamina-context-")
        data = sys.stdin.buffer.read()
        from lamina.layer.compress import sniff
        if sniff(data[:6]) is None and data[257:262] != b"ustar":
            dockerfile_data, context = data, tmp_ctx  # not an archive: a Dockerfile, empty context
        else:
            import io
            stream, _ = open_decompressed(io.BytesIO(data))
            apply_layer(stream, tmp_ctx, mode="merge")
            context = tmp_ctx
    elif "://" in context:
        raise InvalidArgument(f"remote build contexts are not supported: {context}; clone or download it first")
    elif not os.path.isdir(context):
        raise InvalidArgument(f'unable to prepare context: path "{context}" not found')
    else:
        context = os.path.realpath(context)  # resolved once: a symlink re-pointed later changes nothing
    dockerfile = None
    if a.file == "-":
        dockerfile_data = sys.stdin.buffer.read()
    elif a.file:
        dockerfile = _dockerfile_path(a, context)
    opts = BuildOptions(context=context, dockerfile=dockerfile, dockerfile_data=dockerfile_data,
                        tags=tuple(tags), build_args=_kv(a.build_arg, "build arg", from_env=True), target=a.target,
                        no_cache=a.no_cache, quiet=a.quiet, labels=_kv(a.label, "label"), network=a.network,
                        secrets=secrets, progress=a.progress, platform=a.platform,
                        memo_key=None if tmp_ctx or a.file == "-" else _memo_key(a, context), pull=a.pull_policy,
                        step=step)
    from lamina.builder.builder import BuildFailed
    from lamina.errors import LaminaError, NeedsRoot
    try:
        rec = build(ctx.store, opts)
    except BuildFailed:
        raise  # a failed RUN: the command's own exit code, as the classic `docker build` returns it
    except LaminaError as e:
        if not isinstance(e, NeedsRoot):  # NeedsRoot: nothing started, 125 like a bad flag
            e.exit_code = 1  # any other build error: 1, as `docker build` exits (125 stays for bad flags)
        raise
    finally:
        if tmp_ctx:
            import shutil
            shutil.rmtree(tmp_ctx, ignore_errors=True)
        for f in env_secret_files:
            os.unlink(f)
    _after(ctx, a, str(rec.id), rec)
    return 0


def _dockerfile_path(a, context: str) -> str:
    """-f: relative to the current directory, else to the (resolved) context."""
    dockerfile = os.path.abspath(a.file)
    if not os.path.exists(dockerfile) and os.path.exists(os.path.join(context, a.file)):
        dockerfile = os.path.join(context, a.file)
    return dockerfile


def _step_options(a):
    """build's container flags (--add-host, --shm-size, --ulimit) as the builder's
    StepOptions, with run's checks and messages; None when none is given. --security-opt
    is refused as dockerd refuses it."""
    if a.security_opt:  # dockerd 20.10's classic builder refuses them on Linux, so does lamina
        raise InvalidArgument("The daemon on this platform does not support setting security options on build")
    if not (a.add_host or a.shm_size or a.ulimit):
        return None
    from lamina.builder.builder import StepOptions
    from lamina.network.config import _check_host
    from lamina.runtime.containers import _ulimit_doc
    hosts = []
    for h in a.add_host:
        name, _, addr = _check_host(h).partition(":")
        if addr == "host-gateway":
            raise InvalidArgument(f"--add-host {h}: host-gateway is not supported by lamina build "
                                  "(name the address)")
        hosts.append((name, addr))
    shm = None
    if a.shm_size:
        from lamina.cli.units import parse_size
        try:
            shm = parse_size(a.shm_size)
        except InvalidArgument as e:
            raise InvalidArgument(f'invalid argument "{a.shm_size}" for "--shm-size" flag: {e}') from None
    limits = tuple((u["Name"], u["Soft"], u["Hard"]) for u in map(_ulimit_doc, a.ulimit))
    return StepOptions(add_hosts=tuple(hosts), shm_size=shm, ulimits=limits)


def _memo_key(a, context: str) -> str:
    """What makes two build invocations the same (see builder/fastpath.py): the *resolved*
    context path (``current -> r/v1`` re-pointed to ``r/v2`` is another build)."""
    from lamina.builder.fastpath import memo_key
    # values, not the flags as typed: `--build-arg FOO` takes FOO from the environment
    return memo_key(context=context, file=_dockerfile_path(a, context) if a.file else None,
                    tags=a.tag, build_args=sorted(_kv(a.build_arg, "build arg", from_env=True).items()),
                    target=a.target, quiet=a.quiet, labels=sorted(_kv(a.label, "label").items()),
                    network=a.network, secrets=sorted(a.secret), progress=a.progress, platform=a.platform)


def _replay(ctx, a) -> str | None:
    if a.no_cache or a.pull_policy == "always" or a.context == "-" or a.file == "-" or not os.path.isdir(a.context):
        return None  # --pull re-resolves every base: a memo cannot vouch for the registry
    from lamina.builder import fastpath
    context = os.path.realpath(a.context)
    dockerfile = _dockerfile_path(a, context) if a.file else os.path.join(context, "Dockerfile")
    return fastpath.replay(ctx.store, _memo_key(a, context), dockerfile_path=dockerfile, dockerfile_data=None)


def _after(ctx, a, image_id: str, rec=None) -> None:
    if a.quiet:
        print(image_id)
    if a.iidfile:
        with open(a.iidfile, "w") as f:
            f.write(image_id)
    if a.output:
        if rec is None:
            from lamina.image.service import Images
            rec = Images(ctx.store).resolve(image_id)
        _export(ctx, rec, a.output, tags=list(a.tag))


def _export(ctx, rec, spec: str, *, tags: list[str] = ()) -> None:
    from lamina.image.service import Images
    kv = dict(x.split("=", 1) for x in spec.split(",") if "=" in x)
    if "=" not in spec:
        kv = {"type": "local", "dest": spec}
    typ, dest = kv.get("type", "local"), kv.get("dest")
    if not dest:
        raise InvalidArgument(f"--output {spec}: dest is required")
    images = Images(ctx.store)
    if typ in ("oci", "docker"):
        from lamina.image.archive import save
        with open(dest, "wb") as f:
            # the archive carries the build's tags (and name=..., like BuildKit's exporter)
            names = list(tags) + [n for n in kv.get("name", "").split(";") if n]
            save(images, names or [str(rec.manifest)], f)
        return
    if typ not in ("tar", "local"):
        raise InvalidArgument(f"--output {spec}: unsupported type {typ!r} (want local, tar, oci or docker)")
    import tempfile

    from lamina.snapshot import Snapshotter, image_layers
    root = (tempfile.mkdtemp(prefix="lamina-out-", dir=ctx.store.snapshots_dir) if typ == "tar"
            else os.path.abspath(dest))
    try:
        with ctx.store.operation():  # held until the tar is written: GC must not sweep the staging dir
            Snapshotter(ctx.store).copy_rootfs(image_layers(images, rec), root)
            if typ == "tar":
                from lamina.layer.writer import write_layer
                out = sys.stdout.buffer if dest == "-" else open(dest, "wb")
                try:
                    write_layer(root, out)
                finally:
                    if out is not sys.stdout.buffer:
                        out.close()
    finally:
        if typ == "tar":
            import shutil
            shutil.rmtree(root, ignore_errors=True)


def cmd_builder_prune(argv, ctx) -> int:
    p = Parser("builder prune", "[OPTIONS]", "Remove build cache")
    p.flag("-a", "--all", help="Remove all unused build cache, not just dangling ones")
    p.flag("-f", "--force", help="Do not prompt for confirmation")
    p.option("--filter", append=True, help="Provide filter values")
    a = parse(p, argv)
    from lamina.builder.cache import BuildCache
    from lamina.cli.images import _confirm
    from lamina.cli.units import human_size
    if not a.force and not _confirm("WARNING! This will remove all dangling build cache."):
        return 0
    import shutil
    n = BuildCache(ctx.store).prune()
    from lamina.builder.fastpath import forget
    forget(ctx.store)  # replays vouch for cache rows: none is left
    for sub in ("mounts", "context-hashes.db", "context-hashes.db-wal", "context-hashes.db-shm"):
        path = os.path.join(ctx.store.root, "build-cache", sub)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.unlink(path)
    # intermediate step images nothing refers to any more go with the cache
    from lamina.image.prune import prune_images
    from lamina.image.service import Images
    lines, freed = prune_images(Images(ctx.store), all_unused=False, filters={}, intermediate_only=True)
    print(f"Deleted build cache objects: {n}")
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0
