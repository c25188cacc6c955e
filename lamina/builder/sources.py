"""Where a step's files come from, and the layers made of them: the COPY and ADD steps.

:class:`SourceSteps` is the part of :class:`lamina.builder.builder.Builder` that reads
sources -- other stages and images (``--from``, ``RUN --mount from=``), the build context,
URLs, local archives that ADD expands -- through an image's merged view, stages them and
turns the staging directory into a layer (or reuses the previous result's files). It is a
mixin: the builder's step machinery (``_commit``, ``_cached``, ``_state_of``,
``_stage_index``) and its attributes (``opts``, ``store``, ``images``, ``out``, ``memo``
...) are the builder's own.
"""

from __future__ import annotations

import os
import shutil
import sys

from lamina.builder.state import State, _canonical
from lamina.digest import chain_ids
from lamina.errors import InvalidArgument, LaminaError, NotFound
from lamina.values import replace


class SourceSteps:
    def _stage_root(self, name: str) -> str:
        """RUN --mount=type=bind,from=<stage|index|image>: a merged copy of its filesystem."""
        return self._merged_dir(self._stage_or_image(name, "RUN --mount from"))

    def _stage_or_image(self, name: str, what: str) -> State:
        """The state of a built stage (by name or index) or of a local image."""
        j = self._stage_index(name)
        if j is not None and j in self.stage_results:
            return self.stage_results[j]
        try:
            return self._state_of(self._base_image(name, f"{what}={name}"))
        except NotFound:
            raise InvalidArgument(f"{what}={name}: no stage or image named {name!r}") from None

    def _base_image(self, name: str, where: str):
        """A base image, pulled as ``--pull`` says (missing by default; ``always`` with
        ``build --pull``), its pull output in the build's output. Pulled once per build."""
        from lamina.registry.ensure import ensure_image
        pulled = self.__dict__.setdefault("_pulled", {})
        if name in pulled:
            return pulled[name]
        try:
            rec = ensure_image(self.store, name, policy=self.opts.pull, out=sys.stdout, quiet=self.opts.quiet)
        except NotFound as e:
            if self.opts.pull == "never" or not getattr(e, "status", None):
                raise NotFound(f"{where}: {e}") from None
            raise InvalidArgument(f"{where}: {e}") from None
        except LaminaError as e:
            raise type(e)(f"{where}: {e}") from None
        pulled[name] = rec
        return rec

    # -- COPY / ADD -------------------------------------------------------------------------
    def _context(self):
        if self._ctx is None:
            from lamina.builder.context import Context
            from lamina.dockerfile.ignore import find_ignore_file, read_ignore_file
            ign_path = find_ignore_file(self.context_dir, self.opts.dockerfile)
            ign = read_ignore_file(ign_path) if ign_path else None
            os.makedirs(os.path.join(self.store.root, "build-cache"), mode=0o700, exist_ok=True)
            self._ctx = Context(self.context_dir, ignore=ign,
                                cache_path=os.path.join(self.store.root, "build-cache", "context-hashes.db"))
        return self._ctx

    def _owner(self, view, chown: str | None):
        """(uid, gid) of --chown, names looked up in the image's /etc/passwd and /etc/group."""
        if not chown:
            return None
        from lamina.runtime.spec import resolve_user_with
        user, _, group = chown.partition(":")
        if user.isdigit() and (not group or group.isdigit()):
            return int(user), int(group or user)

        def read(path: str) -> str | None:
            data = view.read(path)
            return None if data is None else data.decode("utf-8", "replace")
        u = resolve_user_with(read, chown if group else user)
        return u.uid, u.gid

    def _i_copy(self, state, instr):
        return self._copy(state, instr, add=False)

    def _i_add(self, state, instr):
        return self._copy(state, instr, add=True)

    def _copy(self, state, instr, *, add: bool):
        from lamina.builder.cache import cache_key
        from lamina.builder.context import contains_wildcards
        from lamina.builder.copy import CopyItem
        flags = dict(instr.flags)
        if instr.heredocs:
            return self._copy_heredocs(state, instr, flags)
        if len(instr.args) < 2:
            raise InvalidArgument(f"{instr.cmd} requires at least two arguments")
        srcs, dest = list(instr.args[:-1]), instr.args[-1]
        chmod = None
        if flags.get("chmod"):
            try:
                chmod = int(flags["chmod"], 8)
            except ValueError:
                raise InvalidArgument(f"invalid chmod parameter {flags['chmod']!r}: want octal like 0755") from None
        frm = flags.get("from")
        wildcard = any(contains_wildcards(s) for s in srcs)
        urls = [s for s in srcs if add and ("://" in s)]
        local = [s for s in srcs if s not in urls]
        ctx = self._from_context(frm) if frm else self._context()
        resolved = []
        for src in local:
            try:
                # Docker reads a source without wildcards literally (a backslash is a name character
                # then, e.g. with `# escape=\``); only a wildcard pattern gives backslash its escaping
                # role; a wildcard that matches nothing is fine while another source matches
                resolved += ctx.resolve([src], allow_wildcards=contains_wildcards(src), allow_empty=True)
            except InvalidArgument:
                if not frm:
                    raise
                raise InvalidArgument(f'failed to compute cache key: "/{src.lstrip("/")}" not found in {frm}') from None
        if local and not resolved and not urls:
            raise InvalidArgument(f"{instr.cmd} failed: no source files were specified")
        ctx.on_read = self.out.meter("Reading build context")
        try:
            local_sum, sources_manifest = ctx.checksum_with_manifest(resolved) if resolved else ("", {})
        finally:
            ctx.on_read = None
        checksum = local_sum
        from lamina.testhook import pause
        pause("copy-hashed")
        if urls or (frm and self._stage_index(frm) is None):
            self.memo_ok = False
        url_files = [self._fetch_url(u, flags.get("checksum")) for u in urls]
        items = [CopyItem(src.name, src, ctx) for src in resolved]
        for uctx, src, digest in url_files:
            checksum += digest
            items.append(CopyItem(src.name, src, uctx, remote=True))
        try:
            text = _canonical(instr)
            payload = [text, checksum, state.cc.get("WorkingDir") or "/", sorted(flags.items())]
            key = cache_key(state.image_id, instr.cmd, payload)
            hit = self._cached(state, key, instr_text=text, sources=sources_manifest)
            if hit is not None:
                return hit
            from lamina.errors import need_root
            need_root("lamina build")  # an ONBUILD COPY of a base image, say
            reuse = None
            if not add and len(items) == 1 and resolved and not self.opts.no_cache:
                reuse = self._reuse(state, text, sources_manifest)
            try:
                desc, copied = self._copy_layer(state, instr, items, add=add, chmod=chmod,
                                                owner_spec=flags.get("chown"), wildcard=wildcard, dest=dest,
                                                reuse=reuse)
            finally:
                if reuse is not None:
                    reuse.close()
        finally:
            for uctx, _, _ in url_files:
                uctx.close()
                shutil.rmtree(uctx.root, ignore_errors=True)
        # the key of what was copied (the bytes in the layer), which differs from the one looked
        # up only if a source changed in between: the layer is then recorded under its own key
        got = ctx.digest_manifest(copied.get(ctx, {})) if resolved else ""
        if got != local_sum:
            checksum = got + "".join(d for _, _, d in url_files)
            sources_manifest = copied.get(ctx, {})
            key = cache_key(state.image_id, instr.cmd, [text, checksum, state.cc.get("WorkingDir") or "/",
                                                        sorted(flags.items())])
            self.memo_ok = False
        # the classic builder's comment: the stage's shell, "COPY [--chown=X]<kind>:<hash> in
        # <dest> " with kind file/dir for one source and multi (a hash of the hashes) for more
        if len(items) == 1:
            src_hash = f"{'dir' if items[0].is_dir else 'file'}:{checksum[:64]}"
        else:
            import hashlib
            src_hash = "multi:" + hashlib.sha256(checksum.encode()).hexdigest()
        chown = f"--chown={flags['chown']}" if flags.get("chown") else ""
        shell = " ".join(state.cc.get("Shell") or ["/bin/sh", "-c"])
        comment = f"#(nop) {instr.cmd} {chown}{src_hash} in {dest} "
        shown = f"{shell} {comment}"
        container = (self.step_container_id(state.image_id, text),
                     list(state.cc.get("Shell") or ["/bin/sh", "-c"]) + [comment])
        result = self._commit(state, instr_text=text, history={"created_by": shown}, new_layer=desc, key=key,
                              sources=sources_manifest, container=container)
        self.out.line(f" ---> {result.image_id[7:19]}")
        return result

    def _layers_of(self, state: State):
        from lamina.snapshot import Layer
        return [Layer(c, d, desc.digest) for c, (desc, d, _) in
                zip(chain_ids([x[1] for x in state.layers]), state.layers)]

    def _view(self, state: State):
        """The merged view of a state's layers (lamina.snapshot.view), prepared first."""
        from lamina.snapshot import Snapshotter
        from lamina.snapshot.view import LayerView
        layers = self._layers_of(state)
        return LayerView(list(reversed(Snapshotter(self.store).prepare(layers))) if layers else [])

    def _new_layer(self, state: State, fill):
        """Run ``fill(staging_dir, view)`` in a fresh staging dir and make it the state's next
        layer (adopted as that layer's snapshot). Returns (descriptor triple, fill's result)."""
        from lamina import perms
        from lamina.runtime.commit import layer_from_dir
        from lamina.snapshot import Layer, Snapshotter
        staging = os.path.join(self.store.snapshots_dir, f"tmp-stage-{os.urandom(8).hex()}")
        perms.mkdir(staging, perms.VISIBLE_DIR)  # it becomes the snapshot's fs/: the layer's root
        try:
            with self._view(state) as view:
                res = fill(staging, view)
            desc = layer_from_dir(self.store, staging, source_date_epoch=self.epoch,
                                  progress=self.out.live, progress_text="Writing layer")
            chain = chain_ids([x[1] for x in state.layers] + [desc[1]])[-1]
            parent_chain = chain_ids([x[1] for x in state.layers])[-1] if state.layers else None
            Snapshotter(self.store).adopt(Layer(chain, desc[1], desc[0].digest), parent_chain, staging, desc[2])
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return desc, res

    def _reuse(self, state: State, text: str, expect: dict):
        """A copy.Reuse of the latest result of this COPY on this parent, if its snapshot is
        still unpacked (see copy.Reuse)."""
        from lamina.builder.copy import Reuse
        from lamina.runtime.commit import base_layers
        from lamina.snapshot import Snapshotter
        prev = self.cache.previous(parent=state.image_id, instr=text)
        if prev is None:
            return None
        try:
            layers = base_layers(self.images, self.images.get(prev[0]))
        except LaminaError:
            return None
        if len(layers) != len(state.layers) + 1 or [x[1] for x in layers[:-1]] != [x[1] for x in state.layers]:
            return None
        d = Snapshotter(self.store).dir_of(chain_ids([x[1] for x in layers])[-1])
        return Reuse(d, prev[1], expect) if d else None

    def _copy_layer(self, state, instr, items, *, add: bool, chmod, owner_spec, wildcard: bool, dest: str,
                    reuse=None):
        """Stage ``items`` (ADD: local archives unpacked) and make the layer; returns
        (descriptor triple, {context: manifest of what was copied})."""
        from lamina.builder.copy import stage_copy

        def fill(staging, view):
            owner = self._owner(view, owner_spec)
            copied: dict = {}
            todo = items
            if add:
                todo = self._expand_archives(items, staging, view, copied, workdir=state.cc.get("WorkingDir") or "/",
                                             dest=dest, owner=owner)
            if todo or not add:
                for ctx, m in stage_copy(staging, todo, dest, workdir=state.cc.get("WorkingDir") or "/", view=view,
                                         owner=owner, chmod=chmod, wildcard=wildcard, what=instr.cmd,
                                         reuse=reuse, on_bytes=self.out.meter("Copying")).items():
                    for rel, entry in m.items():
                        copied.setdefault(ctx, {}).setdefault(rel, entry)
            return {c: dict(sorted(m.items())) for c, m in copied.items()}
        return self._new_layer(state, fill)

    def _memo_context(self, ctx) -> None:
        """Remember what the build context showed (builder/fastpath.py replays only if all of
        it still looks the same); a context that cannot vouch for it (a path changed while
        the build read it, or is racily clean) leaves no memo."""
        if ctx is None:
            return
        if not ctx.trustworthy():
            self.memo_ok = False
            return
        self._memo_seen(ctx.root, ctx.seen)

    def _memo_seen(self, root: str, seen: dict) -> None:
        mine = self.memo["seen"].setdefault(root, {})
        for rel, key in seen.items():
            if mine.setdefault(rel, key) != key:
                self.memo_ok = False  # two stages saw it differently

    def _expand_archives(self, items, staging, view, copied: dict, *, workdir: str, dest: str, owner):
        """ADD: local tar archives (compressed or not) are unpacked at the destination instead
        of copied; what was read is hashed into ``copied``. Returns the items left to copy."""
        from lamina.builder.context import entry_text
        from lamina.builder.copy import Staging, ensure_parents, resolve_dest
        from lamina.layer.compress import open_decompressed
        from lamina.layer.extract import apply_layer
        out = []
        dest_abs, _ = resolve_dest(dest, workdir)
        rel_dest = view.resolve(dest_abs)
        for item in items:
            ctx = item.ctx
            if item.is_dir or item.remote or not _is_archive(ctx, item.source.relpath):
                out.append(item)
                continue
            st_ = Staging(staging)
            try:
                ensure_parents(st_, rel_dest, view, owner=owner)
                target_fd = os.open(rel_dest or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                    dir_fd=st_.fd) if rel_dest else os.dup(st_.fd)
            finally:
                st_.close()
            fd = ctx.open_file(item.source.relpath)
            try:
                with os.fdopen(fd, "rb", closefd=False) as raw:
                    hashing = _HashingReader(raw)
                    stream, _ = open_decompressed(hashing, threaded=False)
                    apply_layer(stream, f"/proc/self/fd/{target_fd}", mode="merge")
                    while hashing.read(1 << 20):
                        pass
                s = os.fstat(fd)
            finally:
                os.close(fd)
                os.close(target_fd)
            copied.setdefault(ctx, {}).setdefault(item.source.relpath, entry_text(s, digest=hashing.hexdigest()))
        return out

    def _fetch_url(self, url: str, checksum: str | None):
        """ADD <url>: download into a private temp dir; verify --checksum. Returns
        (Context of that dir, its Source, digest)."""
        import hashlib
        import tempfile
        import urllib.error
        import urllib.parse
        import urllib.request

        from lamina.builder.context import Context
        name = os.path.basename(urllib.parse.urlparse(url).path) or "index.html"
        tmp = tempfile.mkdtemp(prefix="lamina-add-")
        path = os.path.join(tmp, name)
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=30) as r, open(path, "xb") as f:
                while chunk := r.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            reason = getattr(e, "reason", None) or e
            raise InvalidArgument(f"failed to fetch {url}: {reason}") from None
        got = f"sha256:{h.hexdigest()}"
        if checksum and checksum != got:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InvalidArgument(f"invalid checksum for {url}: expected {checksum}, got {got}")
        os.chmod(path, 0o600)
        ctx = Context(tmp)
        return ctx, ctx.resolve([name], allow_wildcards=False)[0], got

    def _from_context(self, frm: str):
        """COPY --from=<stage|index|image>: a Context on that filesystem (a merged copy), so its
        sources resolve with the context's rules (wildcards; symlinks followed inside that
        root) and are keyed by their contents, like the classic builder: a stage rebuilt with
        identical files still hits."""
        from lamina.builder.context import Context
        st = self._stage_or_image(frm, "COPY --from")
        root = self._merged_dir(st)
        ctxs = getattr(self, "_from_ctxs", None)
        if ctxs is None:
            ctxs = self._from_ctxs = {}
        if root not in ctxs:
            ctxs[root] = Context(root)
        return ctxs[root]

    def _merged_dir(self, st: State) -> str:
        """A directory holding the merged filesystem of a state (cached per image for the build)."""
        from lamina.snapshot import Snapshotter
        cache = getattr(self, "_merged", None)
        if cache is None:
            cache = self._merged = {}
        if st.image_id in cache:
            return cache[st.image_id]
        d = os.path.join(self.store.snapshots_dir, f"tmp-merged-{os.urandom(8).hex()}")
        Snapshotter(self.store).copy_rootfs(self._layers_of(st), d)
        cache[st.image_id] = d
        return d

    def _copy_heredocs(self, state, instr, flags):
        """COPY <<EOF /dest : the heredoc bodies become files."""
        import tempfile
        tmp = tempfile.mkdtemp(prefix="lamina-heredoc-")
        try:
            files = []
            for hd in instr.heredocs:
                p = os.path.join(tmp, hd.name)
                with open(p, "w") as f:
                    f.write(hd.content)
                os.chmod(p, 0o644)
                files.append(p)
            args = [os.path.basename(p) for p in files] + [instr.args[-1]]
            fake = replace(instr, args=tuple(args), heredocs=())
            old = self.context_dir, self._ctx
            self.context_dir, self._ctx = tmp, None
            try:
                return self._copy(state, fake, add=False)
            finally:
                if self._ctx is not None:
                    self._ctx.close()
                self.context_dir, self._ctx = old
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class _HashingReader:
    """A raw reader that hashes every byte read through it (ADD of an archive hashes exactly
    what it unpacks)."""

    def __init__(self, f) -> None:
        import hashlib
        self._f = f
        self._h = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._h.update(data)
        return data

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        if n:
            self._h.update(memoryview(b)[:n])
        return n

    def readable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _is_archive(ctx, rel: str) -> bool:
    """Docker's test for ADD: the file, decompressed if it is gzip/bzip2/xz/zstd, starts with
    a valid tar header (a .gz that is not a tar is copied as it is)."""
    from lamina.errors import LaminaError
    from lamina.layer.compress import open_decompressed
    from lamina.layer.tarstream import _checksum_ok
    fd = ctx.open_file(rel)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            try:
                stream, _ = open_decompressed(f, threaded=False)
                head = b""
                while len(head) < 512:
                    chunk = stream.read(512 - len(head))
                    if not chunk:
                        break
                    head += chunk
            except (LaminaError, OSError, EOFError, ValueError):
                return False
    finally:
        os.close(fd)
    return len(head) == 512 and head != bytes(512) and _checksum_ok(head)
