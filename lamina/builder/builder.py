"""``lamina build``: Dockerfile -> layered image, with Docker's build cache and the classic
builder's step-by-step output.

Flow: parse (lamina.dockerfile) -> pick the stages the target needs -> for each step:
expand variables where Docker does, compute its cache key, reuse the cached result or
execute it (RUN in a throwaway container, COPY/ADD by staging files, everything else by
editing the config) -> every step's result is an image (intermediate, hidden from
``images``, listed by ``images -a``), so ``lamina run -it <step id> sh`` enters it.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import sys

from lamina import oci
from lamina.builder.sources import SourceSteps
from lamina.builder.state import State, _canonical, _quote_kv, _show
from lamina.digest import chain_ids
from lamina.errors import InvalidArgument, LaminaError, NeedsRoot
from lamina.values import field, value

DEFAULT_SHELL = ["/bin/sh", "-c"]
#: the diff ID of a layer tar with no entries (1024 zero bytes), moby's layer.DigestSHA256EmptyTar
EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
METADATA = ("ENV", "LABEL", "MAINTAINER", "EXPOSE", "CMD", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR",
            "STOPSIGNAL", "HEALTHCHECK", "SHELL", "ONBUILD")


class BuildFailed(LaminaError):
    """A step failed; ``exit_code`` is the failing command's code (or 1)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = code or 1


@value
class BuildOptions:
    context: str                        # a directory ("-" handled by the CLI: a tar unpacked to a temp dir)
    dockerfile: str | None = None       # path, or None for <context>/Dockerfile
    dockerfile_data: bytes | None = None  # -f - : the Dockerfile itself
    tags: tuple = ()                    # parsed references
    build_args: dict = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    quiet: bool = False
    labels: dict = field(default_factory=dict)
    network: str = "default"
    secrets: dict = field(default_factory=dict)
    progress: str = "auto"
    platform: str | None = None
    memo_key: str | None = None         # see builder/fastpath.py
    pull: str = "missing"               # base images (FROM, COPY --from, RUN --mount from=): always|missing|never
    step: StepOptions | None = None     # --add-host, --shm-size, --ulimit of RUN steps


@value
class StepOptions:
    """What ``build``'s container flags give every RUN step's container (Docker's classic
    builder applies them the same way; they are not part of a step's cache key, as in
    Docker). ``add_hosts``: (name, address) lines added to /etc/hosts; ``ulimits``: (name,
    soft, hard)."""

    add_hosts: tuple[tuple[str, str], ...] = ()
    shm_size: int | None = None
    ulimits: tuple[tuple[str, int, int], ...] = ()


class Output:
    """The classic builder's step-by-step output, by ``--progress``:

    - ``auto`` (the default) is ``tty`` on a terminal, else the plain classic lines;
    - ``tty`` adds a transient activity line under the running step (``Reading build
      context  120MB``, ``Copying  56MB``, ``Writing layer  80MB``), redrawn in place and
      erased by the next line (never part of what a cached build replays);
    - ``plain`` never redraws, says why a step missed the cache and ends every step with
      its time (`` ---> DONE 0.3s``, BuildKit's word), so its builds are not replayed.
    """

    def __init__(self, quiet: bool, progress: str) -> None:
        self.quiet = quiet
        self.plain = progress == "plain"
        self.fd = 1
        self.transcript: list[str] = []   # what was printed (replayed by builder/fastpath.py)
        self.live = None  # lamina.progress.Progress for the transient activity line (tty mode)
        self._step_start: float | None = None
        if not quiet and progress in ("auto", "tty"):
            from lamina.progress import on_terminal
            self.live = on_terminal(sys.stdout)

    def line(self, text: str) -> None:
        if not self.quiet:
            if self.live is not None:
                self.live.clear()
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
            self.transcript.append(text + "\n")

    def step(self, text: str) -> None:
        """A ``Step N/M : ...`` line: the previous step ends here."""
        self.end_step()
        self.line(text)
        import time
        self._step_start = time.monotonic()

    def end_step(self) -> None:
        """``plain``: the time the step that ran last took."""
        if self._step_start is not None and self.plain:
            import time
            self.line(f" ---> DONE {time.monotonic() - self._step_start:.1f}s")
        self._step_start = None

    def meter(self, text: str):
        """A thread-safe ``meter(nbytes)`` drawing ``text  <total>`` on the activity line, or
        None when there is no activity line (then the work paths skip counting)."""
        if self.live is None:
            return None
        from lamina.progress import Meter
        return Meter(self.live, text)


class Builder(SourceSteps):
    def __init__(self, store, opts: BuildOptions) -> None:
        from lamina.builder.cache import BuildCache
        from lamina.image.service import Images
        self.store = store
        self.opts = opts
        self.images = Images(store)
        self.cache = BuildCache(store)
        self.out = Output(opts.quiet, opts.progress)
        self.context_dir = os.path.abspath(opts.context)
        self._ctx = None
        self.epoch = _source_date_epoch()
        self.stage_results: dict[int, State] = {}
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0
        # what a replay of this build must re-check (builder/fastpath.py); only a build whose
        # every step was a cache hit is recorded
        self.memo_ok = not opts.no_cache and opts.memo_key is not None and opts.progress != "plain"
        self.memo = {"seen": {}, "bases": [], "images": [], "keys": []}

    # -- entry ------------------------------------------------------------------------
    def build(self):
        from lamina.dockerfile.parser import parse
        df_path = self.opts.dockerfile or os.path.join(self.context_dir, "Dockerfile")
        if self.opts.dockerfile_data is not None:
            data, name = self.opts.dockerfile_data, "Dockerfile"
        else:
            try:
                with open(df_path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:
                raise InvalidArgument(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                                      f"lstat {df_path}: no such file or directory") from None
            # errors say "Dockerfile:3" (a Dockerfile outside the context: by its base name, like BuildKit)
            name = (os.path.relpath(df_path, self.context_dir) if df_path.startswith(self.context_dir + "/")
                    else os.path.basename(df_path))
        self.df = parse(data, filename=name)
        if not self.df.stages:
            raise InvalidArgument(f"{name}: file with no instructions")
        self.meta_env = self._meta_args()
        target = self._target_index()
        needed = self._needed(target)
        if any(instr.cmd in ("RUN", "COPY", "ADD") for i in needed for instr in self.df.stages[i].instructions):
            from lamina.errors import need_root
            need_root("lamina build")  # RUN, COPY and ADD make layers: refused before anything is recorded
        self.total = sum(1 + len(self.df.stages[i].instructions) for i in needed) + len(self.opts.labels)
        with self.store.operation():
            for wave in self._waves(needed):
                if len(wave) == 1 or os.environ.get("LAMINA_BUILD_SERIAL"):
                    for i in wave:
                        self.stage_results[i] = self._build_stage(self.df.stages[i])
                else:
                    self._build_concurrently(wave)
            if self.opts.labels:
                self.stage_results[target] = self._label_step(self.stage_results[target])
                self.out.end_step()
            final = self.stage_results[target]
            rec = self.images.get(final.manifest) if final.manifest else None
            if rec is None:
                raise InvalidArgument("the target stage is FROM scratch with no instructions: nothing to build")
            unused = sorted(set(self.opts.build_args) - self.used_args - set(PROXY_ARGS))
            if unused:
                self.out.line(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
            for t in self.opts.tags:
                self.images.tag(rec, t)
            self.images.write_index()
        self.out.line(f"Successfully built {rec.id.short}")
        from lamina.refname import split_canonical
        for t in self.opts.tags:
            repo, tag = split_canonical(str(t))
            self.out.line(f"Successfully tagged {repo}:{tag}")
        if self.memo_ok:
            self._memo_context(self._ctx)
        if self.memo_ok:
            self._record_memo(rec, df_path)
        elif self.opts.memo_key is not None:
            from lamina.builder import fastpath
            fastpath.forget(self.store, self.opts.memo_key)  # an older memo would now replay a stale result
        from lamina.testhook import pause
        pause("build-done")
        return rec

    def _record_memo(self, rec, df_path: str) -> None:
        from lamina.builder import fastpath
        dockerfile = (self.opts.dockerfile_data if self.opts.dockerfile_data is not None else None)
        memo = dict(self.memo)
        memo["dockerfile"] = (fastpath._sha256(dockerfile).hexdigest() if dockerfile is not None
                              else fastpath.file_digest(df_path))
        memo["ignore"] = {p: fastpath.file_digest(p) for p in
                          fastpath.ignore_candidates(self.context_dir, self.opts.dockerfile or df_path)}
        memo["epoch"] = os.environ.get("SOURCE_DATE_EPOCH", "")
        memo["tags"] = [str(t) for t in self.opts.tags]
        memo["final"] = str(rec.manifest)
        memo["final_id"] = str(rec.id)
        memo["output"] = "".join(self.out.transcript)
        fastpath.record(self.store, self.opts.memo_key, memo)

    def _label_step(self, state: State) -> State:
        """--label: the classic builder (dockerd 20.10) appends one ``LABEL k=v`` step per label,
        sorted by key, after the target stage; they override the Dockerfile's labels."""
        from lamina.dockerfile.parser import parse
        for k, v in sorted(self.opts.labels.items()):
            text = f"LABEL {_quote_kv(k)}={_quote_kv(v)}"
            instr = parse(f"FROM scratch\n{text}\n", filename="--label").stages[0].instructions[0]
            self.step += 1
            self.out.step(f"Step {self.step}/{self.total} : {text}")
            state = self._step(state, instr)
        return state

    # -- planning -----------------------------------------------------------------------
    def _meta_args(self) -> dict:
        """ARGs before the first FROM, with --build-arg overrides (used in FROM lines)."""
        from lamina.dockerfile.expand import expand_instruction, key_values
        env = dict(_auto_platform_args(self.opts.platform))
        for instr in self.df.meta_args:
            instr = expand_instruction(instr, env, escape=self.df.escape)
            for k, v in key_values(instr):
                if k in self.opts.build_args:
                    env[k] = self.opts.build_args[k]
                    self.used_args.add(k)
                elif v is not None:
                    env[k] = v
                else:
                    env.setdefault(k, "")
        return env

    def _stage_index(self, name: str) -> int | None:
        for s in self.df.stages:
            if s.name == name.lower():
                return s.index
        if name.isdigit() and int(name) < len(self.df.stages):
            return int(name)
        return None

    def _target_index(self) -> int:
        if self.opts.target is None:
            return len(self.df.stages) - 1
        i = self._stage_index(self.opts.target)
        if i is None:
            raise InvalidArgument(f'failed to reach build target {self.opts.target} in Dockerfile: '
                                  f'target stage "{self.opts.target}" could not be found')
        return i

    def _needed(self, target: int) -> list[int]:
        """The stages ``target`` depends on (FROM <stage>, COPY --from, RUN --mount from=), in order."""
        from lamina.dockerfile.expand import expand_word
        deps: dict[int, set[int]] = {}
        for s in self.df.stages:
            d = set()
            base = expand_word(s.base, self.meta_env, escape=self.df.escape)
            j = self._stage_index(base)
            if j is not None and j < s.index:
                d.add(j)
            for instr in s.instructions:
                for k, v in instr.flags:
                    refs = []
                    if k == "from" and v:
                        refs.append(v)
                    elif k == "mount" and v:
                        refs.extend(p.split("=", 1)[1] for p in v.split(",") if p.startswith("from="))
                    for r in refs:
                        j = self._stage_index(r)
                        if j is not None and j < s.index:
                            d.add(j)
            deps[s.index] = d
        self.deps = deps
        out: list[int] = []

        def visit(i: int) -> None:
            if i in out:
                return
            for j in sorted(deps[i]):
                visit(j)
            out.append(i)
        visit(target)
        return out

    # -- stages -------------------------------------------------------------------------
    def _waves(self, needed: list[int]) -> list[list[int]]:
        """``needed`` in dependency waves: every stage of a wave depends only on earlier waves."""
        done: set[int] = set()
        left = list(needed)
        waves = []
        while left:
            wave = [i for i in left if self.deps[i] <= done]
            if not wave:  # cannot happen (deps point to earlier stages); stay correct anyway
                wave = left[:1]
            waves.append(wave)
            done.update(wave)
            left = [i for i in left if i not in done]
        return waves

    def _build_concurrently(self, wave: list[int]) -> None:
        """Build independent stages at once, each in a forked child with its output captured;
        the outputs are then printed in stage order, so the log reads as a sequential build.

        Children share nothing mutable with the parent but the store (SQLite connections are
        closed before fork; every child opens its own) and report their result as JSON.
        """
        import json as _json
        import tempfile
        self.store.close_db()
        if self._ctx is not None:
            if self.memo_ok:
                self._memo_context(self._ctx)
            self._ctx.close()
            self._ctx = None
        sys.stdout.flush()
        children = []
        step = self.step
        for i in wave:
            stage = self.df.stages[i]
            out = tempfile.TemporaryFile()
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: build one stage, report, never return
                code = 0
                try:
                    os.close(r)
                    os.dup2(out.fileno(), 1)
                    sys.stdout = open(1, "w", buffering=1, closefd=False)
                    self.out.live = None  # a file now: its text is replayed by the parent
                    self.step = step
                    st = self._build_stage(stage)
                    if self.memo_ok:  # the parent records the memo: it needs what this stage saw
                        self._memo_context(self._ctx)
                    res = {"manifest": st.manifest, "cmd_set": st.cmd_set, "memo_ok": self.memo_ok,
                           "memo": self.memo, "used": sorted(self.used_args)}
                except BuildFailed as e:
                    res, code = {"error": str(e), "code": e.exit_code}, 1
                except LaminaError as e:
                    res, code = {"error": str(e), "code": None}, 1
                except BaseException as e:  # noqa: BLE001 - reported to the parent
                    from lamina.errors import describe
                    res, code = {"error": f"stage {i} failed: {describe(e)}", "code": None}, 1
                try:
                    sys.stdout.flush()
                    os.write(w, _json.dumps(res).encode())
                finally:
                    os._exit(code)
            os.close(w)
            children.append((i, pid, r, out))
            step += 1 + len(stage.instructions)
        results = {}
        for i, pid, r, out in children:
            data = b""
            while chunk := os.read(r, 1 << 16):
                data += chunk
            os.close(r)
            os.waitpid(pid, 0)
            died = {"error": f"stage {i}: the build process died", "code": None}
            results[i] = (_json.loads(data) if data else died, out)
        failure = None
        for i in wave:  # replay in order; stop at the first failed stage like a sequential build
            res, out = results[i]
            out.seek(0)
            text = out.read().decode(errors="replace")
            out.close()
            if not self.out.quiet:
                sys.stdout.write(text)
                sys.stdout.flush()
                self.out.transcript.append(text)
            if "error" in res:
                failure = res
                break
            self.step += 1 + len(self.df.stages[i].instructions)
            for key in ("bases", "images", "keys"):
                self.memo[key].extend(res["memo"][key])
            for root, seen in (res["memo"].get("seen") or {}).items():
                self._memo_seen(root, seen)
            self.memo_ok = self.memo_ok and res["memo_ok"]
            self.used_args.update(res["used"])
            if res["manifest"]:
                st = self._state_of(self.images.get(res["manifest"]))
                st.cmd_set = res["cmd_set"]
            else:
                st = self._from("scratch", self.df.stages[i])
            self.stage_results[i] = st
        for i in wave:
            results[i][1].close()
        if failure is not None:
            if failure.get("code") is not None:
                raise BuildFailed(failure["error"], failure["code"])
            raise InvalidArgument(failure["error"])

    def _build_stage(self, stage) -> State:
        from lamina.dockerfile.expand import expand_word
        self.step += 1
        base = expand_word(stage.base, self.meta_env, escape=self.df.escape)
        self.out.step(f"Step {self.step}/{self.total} : {stage.source.original if stage.source else 'FROM ' + base}")
        state = self._from(base, stage)
        self.out.line(f" ---> {state.image_id[7:19] if state.image_id else '<scratch>'}" if state.image_id
                      else " ---> <scratch>")
        self.args: dict[str, str | None] = {}   # ARGs declared in this stage (value or None)
        triggers = list(state.cc.get("OnBuild") or [])
        if triggers:  # the classic builder's wording
            self.out.line(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}")
        for trigger in triggers:
            state = self._onbuild(state, trigger)
        if state.cc.get("OnBuild"):
            state.cc["OnBuild"] = None
        for instr in stage.instructions:
            self.step += 1
            self.out.step(f"Step {self.step}/{self.total} : {_show(instr)}")
            state = self._step(state, instr)
        self.out.end_step()
        return state

    def _from(self, base: str, stage) -> State:
        state = self._from_image(base, stage)
        # like Docker (beginStage -> setDefaultPath): a base without PATH gets the default one
        env = state.cc.get("Env") or []
        if not any(e.startswith("PATH=") for e in env):
            state.cc["Env"] = list(env) + [_DEFAULT_PATH]
        return state

    def _from_image(self, base: str, stage) -> State:
        if base == "scratch":
            return State(config={"architecture": oci.host_platform().architecture, "os": "linux",
                                 "config": {"Env": [_DEFAULT_PATH]}, "history": []},
                         layers=[], image_id="", manifest="")
        j = self._stage_index(base)
        if j is not None and j < stage.index:
            prev = self.stage_results[j]
            return State(config=json.loads(json.dumps(prev.config)), layers=list(prev.layers),
                         image_id=prev.image_id, manifest=prev.manifest)
        rec = self._base_image(base, f"FROM {base} (Dockerfile:{stage.line})")
        self._memo_base(base, rec)
        return self._state_of(rec)

    def _memo_base(self, text: str, rec) -> None:
        from lamina import reference
        name = ""
        try:
            ref = reference.parse(text)
            if ref.digest is None and str(ref) in self.images.tags_of(rec.manifest):
                name = str(ref)
        except InvalidArgument:
            pass
        self.memo["bases"].append([name, str(rec.manifest)])

    def _state_of(self, rec) -> State:
        from lamina.runtime.commit import base_layers
        cfg = json.loads(self.images.config_raw(rec))
        cfg.pop("rootfs", None)
        return State(config=cfg, layers=base_layers(self.images, rec), image_id=str(rec.id),
                     manifest=str(rec.manifest))

    def _onbuild(self, state: State, trigger: str) -> State:
        from lamina.dockerfile.parser import parse
        df = parse(f"FROM scratch\n{trigger}\n", filename="ONBUILD")
        for instr in df.stages[0].instructions:
            state = self._step(state, instr)
        return state

    # -- one step -----------------------------------------------------------------------
    def _env(self, state: State) -> dict[str, str]:
        env = {}
        for e in state.cc.get("Env") or []:
            k, _, v = e.partition("=")
            env[k] = v
        for k, v in self.args.items():
            if k not in env and v is not None:
                env[k] = v
        return env

    def _step(self, state: State, instr) -> State:
        from lamina.dockerfile.expand import expand_instruction
        from lamina.dockerfile.parser import format_error
        try:
            if instr.cmd not in ("CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK", "ONBUILD", "MAINTAINER"):
                # (RUN: only its --mount values are expanded; the command is the shell's)
                instr = expand_instruction(instr, self._env(state), escape=self.df.escape)
            handler = getattr(self, f"_i_{instr.cmd.lower()}", None)
            if handler is None:
                raise InvalidArgument(f"{instr.cmd} is not supported here")
            return handler(state, instr)
        except (BuildFailed, NeedsRoot):
            raise
        except LaminaError as e:
            if "Dockerfile:" in str(e).split("\n")[0]:
                raise
            raise InvalidArgument(format_error(self.df, instr.line, str(e))) from None

    def step_container_id(self, parent: str, text: str) -> str:
        """The ID of a step's container as the image records it (``container``): random, or
        under SOURCE_DATE_EPOCH derived from the parent and the instruction, so that
        reproducible builds stay reproducible."""
        if self.epoch is None:
            return os.urandom(32).hex()
        import hashlib
        return hashlib.sha256(f"{parent}\n{text}\n{self.epoch}".encode()).hexdigest()

    def _commit(self, state: State, *, instr_text: str, history: dict, new_layer=None,
                key: str | None, sources: dict | None = None,
                container: tuple[str, list[str]] | None = None) -> State:
        """Record the step's image (parent = state's image) and its cache entry.

        As the classic builder does, the config names the parent image (``config.Image``)
        and ``container`` = (ID, argv) the step's container: ``container`` and
        ``container_config`` (the config with that Hostname and Cmd), which is what
        ``inspect`` shows as Container and ContainerConfig."""
        cfg = json.loads(json.dumps(state.config))
        created = _rfc3339(self.epoch)
        cfg["created"] = created
        conf = cfg["config"] = dict(cfg.get("config") or {})
        conf["Image"] = state.image_id or ""
        cfg.pop("container", None)
        cfg.pop("container_config", None)
        if container is not None:
            cid, argv = container
            cfg["container"] = cid
            cfg["container_config"] = {**conf, "Hostname": cid[:12], "Cmd": list(argv)}
        h = {"created": created, **history}
        if new_layer is None:
            h["empty_layer"] = True
        cfg.setdefault("history", []).append(h)
        layers = list(state.layers) + ([new_layer] if new_layer else [])
        rec = self.images.create(config=cfg, layers=layers, parent=state.image_id or None,
                                 intermediate=True, write_index=False)
        if key:
            self.cache.record(key, parent=state.image_id, instr=instr_text, image=str(rec.manifest),
                              sources=sources)
        cfg.pop("rootfs", None)
        return State(config=cfg, layers=layers, image_id=str(rec.id), manifest=str(rec.manifest),
                     cmd_set=state.cmd_set)

    def _cached(self, state: State, key: str, *, instr_text: str, sources: dict | None = None) -> State | None:
        if self.opts.no_cache:
            self.memo_ok = False
            return None
        manifest = self.cache.lookup(key)
        if manifest is not None:
            self.memo["images"].append(manifest)
            self.memo["keys"].append([key, manifest])
        if manifest is None:
            self.memo_ok = False
            if self.out.plain:
                why = self.cache.explain_miss(parent=state.image_id, instr=instr_text, sources=sources)
                self.out.line(f" ---> Cache miss: {why}")
            return None
        rec = self.images.get(manifest)
        self.out.line(" ---> Using cache")
        self.out.line(f" ---> {rec.id.short}")
        new = self._state_of(rec)
        new.cmd_set = state.cmd_set
        return new

    def _metadata_step(self, state: State, instr, apply, layer=None) -> State:
        from lamina.builder.cache import cache_key
        text = _canonical(instr)
        key = cache_key(state.image_id, instr.cmd, text)
        hit = self._cached(state, key, instr_text=text)
        if hit is not None:
            if instr.cmd == "CMD":
                hit.cmd_set = True
            return hit
        cid = self.step_container_id(state.image_id, text)
        self.out.line(f" ---> Running in {cid[:12]}")
        new = State(config=json.loads(json.dumps(state.config)), layers=state.layers,
                    image_id=state.image_id, manifest=state.manifest, cmd_set=state.cmd_set)
        apply(new)
        comment = _history_comment(instr, new, text)
        shown = _nop_comment(new, comment)
        shell = list(new.cc.get("Shell") or DEFAULT_SHELL)
        # moby's commit runs [shell, "#(nop) ", comment]; WORKDIR's [shell, "#(nop) WORKDIR ..."]
        argv = shell + ([f"#(nop) {comment}"] if instr.cmd == "WORKDIR" else ["#(nop) ", comment])
        new_layer = layer(new) if layer is not None else None
        result = self._commit(new, instr_text=text, history={"created_by": shown}, key=key, new_layer=new_layer,
                              container=(cid, argv))
        self.out.line(f"Removing intermediate container {cid}")
        self.out.line(f" ---> {result.image_id[7:19]}")
        return result

    # -- metadata instructions ------------------------------------------------------------
    def _i_env(self, state, instr):
        from lamina.dockerfile.expand import key_values
        from lamina.image.changes import set_env

        def apply(s):
            env = list(s.cc.get("Env") or [])
            for k, v in key_values(instr):
                env = set_env(env, k, v)
            s.cc["Env"] = env
        return self._metadata_step(state, instr, apply)

    def _i_label(self, state, instr):
        from lamina.dockerfile.expand import key_values

        def apply(s):
            labels = dict(s.cc.get("Labels") or {})
            labels.update(dict(key_values(instr)))
            s.cc["Labels"] = labels
        return self._metadata_step(state, instr, apply)

    def _i_maintainer(self, state, instr):
        def apply(s):
            s.config["author"] = " ".join(instr.args)
        return self._metadata_step(state, instr, apply)

    def _i_expose(self, state, instr):
        from lamina.image.changes import expose_ports

        def apply(s):
            ports = dict(s.cc.get("ExposedPorts") or {})
            for p in instr.args:
                for key in expose_ports(p):
                    ports[key] = {}
            s.cc["ExposedPorts"] = ports
        return self._metadata_step(state, instr, apply)

    def _shell_form(self, state, instr) -> list[str]:
        if instr.json:
            return list(instr.args)
        return list(state.cc.get("Shell") or DEFAULT_SHELL) + [" ".join(instr.args)]

    def _i_cmd(self, state, instr):
        def apply(s):
            s.cc["Cmd"] = self._shell_form(s, instr)
            s.cmd_set = True
        new = self._metadata_step(state, instr, apply)
        new.cmd_set = True
        return new

    def _i_entrypoint(self, state, instr):
        def apply(s):
            s.cc["Entrypoint"] = self._shell_form(s, instr)
            if not s.cmd_set:
                s.cc["Cmd"] = None  # a new ENTRYPOINT resets an inherited CMD, like Docker
        return self._metadata_step(state, instr, apply)

    def _i_volume(self, state, instr):
        def apply(s):
            vols = dict(s.cc.get("Volumes") or {})
            for v in instr.args:
                if not v.strip():
                    raise InvalidArgument("VOLUME specified can not be an empty string")
                vols[v] = {}
            s.cc["Volumes"] = vols
        return self._metadata_step(state, instr, apply)

    def _i_user(self, state, instr):
        def apply(s):
            s.cc["User"] = instr.args[0] if instr.args else ""
        return self._metadata_step(state, instr, apply)

    def _i_workdir(self, state, instr):
        def apply(s):
            wd = instr.args[0] if instr.args else "/"
            s.cc["WorkingDir"] = posixpath.normpath(posixpath.join(s.cc.get("WorkingDir") or "/", wd))
        return self._metadata_step(state, instr, apply, layer=lambda s: self._workdir_layer(s))

    def _workdir_layer(self, state: State):
        """WORKDIR creates its directory (and missing parents, root:root 0755) in a layer of its
        own when the image lacks it, like the classic builder: the path is resolved inside the
        image's root (``WORKDIR /l/sub`` with ``/l -> /tmp`` makes ``/tmp/sub``); an existing
        directory gives no layer (Docker drops empty diffs)."""
        from lamina.builder.copy import Staging, ensure_parents
        wd = state.cc.get("WorkingDir") or "/"
        with self._view(state) as view:
            rel = view.resolve(wd)
            if not rel or view.lstat(rel) is not None:
                return None  # exists (a file there: the next RUN says so, as with Docker)

        def fill(staging, view):
            st_ = Staging(staging)
            try:
                ensure_parents(st_, rel, view)
            finally:
                st_.close()
        return self._new_layer(state, fill)[0]

    def _i_stopsignal(self, state, instr):
        def apply(s):
            from lamina.runtime.signals import parse_signal
            parse_signal(instr.args[0])
            s.cc["StopSignal"] = instr.args[0]
        return self._metadata_step(state, instr, apply)

    def _i_shell(self, state, instr):
        if not instr.json:
            raise InvalidArgument("SHELL requires the arguments to be in JSON form")

        def apply(s):
            s.cc["Shell"] = list(instr.args)
        return self._metadata_step(state, instr, apply)

    def _i_onbuild(self, state, instr):
        trigger = instr.original.split(None, 1)[1] if " " in instr.original.strip() else ""
        head = trigger.split(None, 1)[0].upper() if trigger else ""
        if head in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(f"{head} isn't allowed as an ONBUILD trigger")

        def apply(s):
            s.cc["OnBuild"] = list(s.cc.get("OnBuild") or []) + [trigger]
        return self._metadata_step(state, instr, apply)

    def _i_healthcheck(self, state, instr):
        flags = dict(instr.flags)

        def apply(s):
            if instr.args and instr.args[0].upper() == "NONE":
                s.cc["Healthcheck"] = {"Test": ["NONE"]}
                return
            args = list(instr.args)
            if not args or args[0].upper() != "CMD":
                raise InvalidArgument("HEALTHCHECK requires CMD or NONE")
            rest = args[1:]
            if instr.json:
                test = ["CMD"] + rest
            else:
                test = ["CMD-SHELL", " ".join(rest)]
            hc = {"Test": test}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
                if flags.get(flag):
                    hc[key] = _duration_ns(flags[flag], flag)
            if flags.get("retries"):
                hc["Retries"] = int(flags["retries"])
            s.cc["Healthcheck"] = hc
        return self._metadata_step(state, instr, apply)

    def _i_arg(self, state, instr):
        from lamina.dockerfile.expand import key_values
        for k, v in key_values(instr):
            if k in self.opts.build_args:
                self.args[k] = self.opts.build_args[k]
                self.used_args.add(k)
            elif v is not None:
                self.args[k] = v
            elif k in self.meta_env:
                self.args[k] = self.meta_env[k]
            else:
                self.args[k] = None
        # ARG changes no config, but the classic builder commits it as a step of its own
        # (history "#(nop)  ARG V=x", cached like any metadata step; its value is not in the key:
        # RUN steps see build args through their own keys)
        return self._metadata_step(state, instr, lambda s: None)

    # -- RUN --------------------------------------------------------------------------------
    def _run_args_env(self) -> list[str]:
        """Build args visible to RUN (declared ARGs with a value, plus proxy args given)."""
        out = [f"{k}={v}" for k, v in self.args.items() if v is not None]
        for k in PROXY_ARGS:
            if k in self.opts.build_args and k not in self.args:
                out.append(f"{k}={self.opts.build_args[k]}")
        return out

    def _run_command(self, state, instr) -> tuple[list[str], tuple[str, str] | None]:
        """The argv of a RUN, and (name, text) of a heredoc script to mount, if any.

        Heredocs follow BuildKit: ``RUN <<EOF`` alone runs the heredoc as a script (through
        the shell, or directly -- mounted at /dev/pipes/<name> -- when it starts with ``#!``);
        heredocs inside a longer command are handed to the shell with the command text, so
        the shell's own heredoc support does the work (``RUN cat <<A > /a``, ``RUN <<EOF sh``).
        """
        if not instr.heredocs or instr.json:
            return self._shell_form(state, instr), None
        shell = list(state.cc.get("Shell") or DEFAULT_SHELL)
        line = " ".join(instr.args)
        only = len(instr.heredocs) == 1 and line.strip().startswith("<<") and " " not in line.strip()
        if only:
            hd = instr.heredocs[0]
            if hd.content.startswith("#!"):
                return [f"/dev/pipes/{hd.name}"], (hd.name, hd.content)
            return shell + [hd.content], None
        text = line + "\n" + "".join(hd.content + hd.name + "\n" for hd in instr.heredocs)
        return shell + [text], None

    def _volume_mounts(self, state) -> list:
        """The classic builder runs RUN with the image's VOLUMEs mounted (anonymous volumes):
        the mount point is created in the step's layer and what the command writes there is
        thrown away. For a VOLUME the image does not have yet, that is an empty tmpfs here
        (one it has keeps its content visible, and writable, as before)."""
        vols = sorted(state.cc.get("Volumes") or {})
        if not vols:
            return []
        from lamina.builder.run import RunMount
        out = []
        with self._view(state) as view:
            for v in vols:
                target = posixpath.normpath(posixpath.join("/", v))
                rel = view.resolve(target)
                if rel and view.lstat(rel) is None:
                    out.append(RunMount("tmpfs", "tmpfs", target))
        return out

    def _keep_mount_points(self, state, upper: str, targets: list[str]) -> None:
        """Create each of ``targets`` (and missing parents, with the image's metadata) in the
        RUN's upper dir, through descriptors and the image's view (never following a link)."""
        from lamina.builder.copy import Staging, ensure_parents
        with self._view(state) as view:
            st_ = Staging(upper)
            try:
                for t in targets:
                    rel = view.resolve(t)
                    if rel:
                        ensure_parents(st_, rel, view)
            finally:
                st_.close()

    def _i_run(self, state, instr):
        from lamina.builder.cache import cache_key
        from lamina.builder.run import close_mounts, discard, parse_run_mounts, run_in_layers
        from lamina.runtime.commit import layer_from_dir
        from lamina.snapshot import Layer, Snapshotter
        args, script = self._run_command(state, instr)
        build_env = self._run_args_env()
        proxies = [e for e in build_env if e.split("=", 1)[0] in PROXY_ARGS and e.split("=", 1)[0] not in self.args]
        keyed_env = [e for e in build_env if e not in proxies]
        flags = [(k, v) for k, v in instr.flags]
        network = dict(flags).get("network") or (self.opts.network if self.opts.network != "default" else "host")
        mounts_raw = [v for k, v in flags if k == "mount"]
        if any("type=bind" in m or "type=" not in m for m in mounts_raw):
            self.memo_ok = False  # bind-mounted context content is not tracked by the memo
        # the cache key sees the command, the build args and the flags (mount specs included) --
        # never secrets: neither their contents nor which ones the build was given (BuildKit's rule)
        # undeclared proxy args reach RUN's environment but, like Docker, neither its history nor its key
        prefix = f"|{len(keyed_env)} {' '.join(keyed_env)} " if keyed_env else ""
        text = prefix + " ".join(args) if not instr.json else prefix + json.dumps(args)
        key = cache_key(state.image_id, "RUN", [text, flags] + ([script] if script is not None else []))
        hit = self._cached(state, key, instr_text=text)
        if hit is not None:
            return hit
        from lamina.errors import need_root
        need_root("lamina build")  # an ONBUILD RUN of a base image, say
        env = list(state.cc.get("Env") or [_DEFAULT_PATH])
        if not any(e.startswith("PATH=") for e in env):
            env.insert(0, _DEFAULT_PATH)
        names = {e.split("=", 1)[0] for e in env}
        env += [e for e in build_env if e.split("=", 1)[0] not in names]
        layers = [Layer(c, d, desc.digest) for c, (desc, d, _) in
                  zip(chain_ids([x[1] for x in state.layers]), state.layers)]
        mounts = parse_run_mounts(mounts_raw, context_dir=self.context_dir,
                                  cache_root=os.path.join(self.store.root, "build-cache", "mounts"),
                                  secrets=self.opts.secrets, stage_root=self._stage_root)
        volumes = self._volume_mounts(state)
        mounts += volumes
        script_dir = None
        run_cid: list[str] = []  # the container ID the runtime picked (on_id)
        try:
            if script is not None:  # RUN <<EOF with a #! line: the heredoc is an executable file
                import tempfile

                from lamina.builder.run import RunMount
                script_dir = tempfile.mkdtemp(prefix="lamina-heredoc-")
                path = os.path.join(script_dir, script[0])
                with open(path, "w") as f:
                    f.write(script[1])
                os.chmod(path, 0o755)
                mounts.append(RunMount("bind", path, args[0], readonly=True,
                                       fd=os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)))
            sys.stdout.flush()
            code, upper, cdir = run_in_layers(
                self.store, layers, args=args, env=env, cwd=state.cc.get("WorkingDir") or "/",
                user=state.cc.get("User") or "", mounts=mounts, network=network, step=self.opts.step,
                out_fd=os.open(os.devnull, os.O_WRONLY) if self.opts.quiet else 1,
                on_id=lambda cid: (run_cid.append(cid), self.out.line(f" ---> Running in {cid[:12]}")))
        finally:
            close_mounts(mounts)
            if script_dir is not None:
                shutil.rmtree(script_dir, ignore_errors=True)
        try:
            if code != 0:
                shown = " ".join(args)  # Docker: strings.Join(runConfig.Cmd, " "), exec form too
                last = state.image_id[7:19] if state.image_id else "<scratch>"
                raise BuildFailed(f"The command '{shown}' returned a non-zero code: {code}\n"
                                  f"Step {self.step}/{self.total} failed: {_show(instr)} "
                                  f"(Dockerfile:{instr.line}). The last good step's image is {last}: "
                                  f"debug it with 'lamina run -it {last} sh'", code)
            if volumes:  # the VOLUME mount points stay in the step's layer, as in dockerd's
                self._keep_mount_points(state, upper, [m.target for m in volumes])
            desc = layer_from_dir(self.store, upper, overlay_upper=True, source_date_epoch=self.epoch,
                                  progress=self.out.live, progress_text="Writing layer")
            if str(desc[1]) == EMPTY_TAR_DIFF_ID:
                # the command changed nothing: like dockerd's commit, no layer (history
                # empty_layer); the blob just written is garbage for GC
                desc = None
            else:
                chain = chain_ids([x[1] for x in state.layers] + [desc[1]])[-1]
                parent_chain = chain_ids([x[1] for x in state.layers])[-1] if state.layers else None
                Snapshotter(self.store).adopt(Layer(chain, desc[1], desc[0].digest), parent_chain, upper, desc[2])
        finally:
            discard(cdir)
        # history as the classic builder records it: the argv joined, the exec form too
        cid = run_cid[0] if self.epoch is None and run_cid else self.step_container_id(state.image_id, text)
        saved = (["|" + str(len(keyed_env))] + keyed_env if keyed_env else []) + list(args)
        result = self._commit(state, instr_text=text, history={"created_by": prefix + " ".join(args)},
                              new_layer=desc, key=key, container=(cid, saved))
        self.out.line(f"Removing intermediate container {os.path.basename(cdir)[:12]}")
        self.out.line(f" ---> {result.image_id[7:19]}")
        return result

    def cleanup(self) -> None:
        for c in (getattr(self, "_from_ctxs", None) or {}).values():
            c.close()
        for d in (getattr(self, "_merged", None) or {}).values():
            shutil.rmtree(d, ignore_errors=True)
        if self._ctx is not None:
            self._ctx.close()


_DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _go_q(items) -> str:
    """Go's ``%q`` of a []string: ``["a" "b c"]``."""
    from lamina.gotemplate.strconv import quote
    return "[" + " ".join(quote(x) for x in items) + "]"


def _go_duration(ns: int) -> str:
    """Go's time.Duration.String(): ``0s``, ``1.5s``, ``500ms``, ``1m30s``, ``1h0m0s``."""
    if ns == 0:
        return "0s"
    neg, ns = ns < 0, abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                whole, frac = divmod(ns, size)
                f = f"{frac:0{len(str(size)) - 1}d}".rstrip("0") if size > 1 else ""
                return ("-" if neg else "") + str(whole) + ("." + f if f else "") + unit
    secs, frac = divmod(ns, 1_000_000_000)
    f = f"{frac:09d}".rstrip("0")
    out = f"{secs % 60}" + ("." + f if f else "") + "s"
    mins = secs // 60
    if mins:
        out = f"{mins % 60}m" + out
        if mins // 60:
            out = f"{mins // 60}h" + out
    return ("-" if neg else "") + out


def _history_comment(instr, new: State, text: str) -> str:
    """What the classic builder writes after ``#(nop)`` for a metadata instruction: the values
    it set, formatted as moby's dispatchers format them (``CMD %q`` of the resolved argv,
    ``VOLUME %v``, ``HEALTHCHECK %q`` of the config, ENV/LABEL/ARG as unquoted key=value)."""
    from lamina.dockerfile.expand import key_values
    cmd = instr.cmd
    cc = new.cc
    if cmd in ("ENV", "LABEL"):
        return " ".join([cmd] + [f"{k}={v}" for k, v in key_values(instr)])
    if cmd == "ARG":
        return "ARG " + " ".join(k if v is None else f"{k}={v}" for k, v in key_values(instr))
    if cmd in ("CMD", "ENTRYPOINT"):
        return f"{cmd} {_go_q(cc.get('Cmd' if cmd == 'CMD' else 'Entrypoint') or [])}"
    if cmd == "VOLUME":
        return "VOLUME [" + " ".join(instr.args) + "]"
    if cmd == "SHELL":
        return "SHELL [" + " ".join(cc.get("Shell") or []) + "]"
    if cmd == "WORKDIR":
        return "WORKDIR " + (cc.get("WorkingDir") or "/")
    if cmd == "HEALTHCHECK":
        from lamina.gotemplate.strconv import quote
        hc = cc.get("Healthcheck") or {}
        retries = int(hc.get("Retries") or 0)
        c = chr(retries) if 0 <= retries < 0x110000 else "\ufffd"
        rune = {"'": "\\'", '"': '"'}.get(c) or quote(c)[1:-1]  # strconv.QuoteRune
        durations = " ".join(quote(_go_duration(int(hc.get(k) or 0)))
                             for k in ("Interval", "Timeout", "StartPeriod"))
        return f"HEALTHCHECK &{{{_go_q(hc.get('Test') or [])} {durations} '{rune}'}}"
    return text


def _nop_comment(new: State, comment: str) -> str:
    """The history line of a metadata step: the stage's shell (after this step), then
    ``#(nop)`` and the comment -- two spaces between for moby's ``commit`` (one argv element
    each), one for WORKDIR (``withCmdCommentString``: one element)."""
    shell = " ".join(new.cc.get("Shell") or DEFAULT_SHELL)
    sep = " " if comment.startswith("WORKDIR ") else "  "
    return f"{shell} #(nop){sep}{comment}"


def _duration_ns(text: str, flag: str) -> int:
    import re
    total = 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise InvalidArgument(f"HEALTHCHECK --{flag}={text}: want a duration like 30s or 1m30s")
    for num, unit in parts:
        total += float(num) * units[unit]
    if not total * 1e9 < 1 << 63:
        raise InvalidArgument(f"HEALTHCHECK --{flag}={text}: duration out of range")
    return int(total * 1e9)


def _source_date_epoch() -> int | None:
    v = os.environ.get("SOURCE_DATE_EPOCH")
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except ValueError:
        raise InvalidArgument(f"SOURCE_DATE_EPOCH={v!r} is not a number of seconds") from None
    if not 0 <= n < 253402300800:  # before year 10000: RFC 3339 has four year digits
        raise InvalidArgument(f"SOURCE_DATE_EPOCH={v!r} is out of range")
    return n


def _rfc3339(epoch: int | None) -> str:
    from lamina.timefmt import rfc3339
    return rfc3339(float(epoch)) if epoch is not None else rfc3339()


def _auto_platform_args(platform: str | None) -> dict:
    host = oci.host_platform()
    target = host
    if platform:
        parts = platform.split("/")
        if len(parts) < 2:
            raise InvalidArgument(f"invalid platform {platform!r}: want os/arch[/variant]")
        target = oci.Platform(parts[0], parts[1], parts[2] if len(parts) > 2 else None)
        if (target.os, target.architecture) != (host.os, host.architecture):
            raise InvalidArgument(f"platform {platform} is not this host's ({host}); lamina builds for the host only")
    out = {}
    for prefix, p in (("TARGET", target), ("BUILD", host)):
        out[f"{prefix}PLATFORM"] = str(p)
        out[f"{prefix}OS"] = p.os
        out[f"{prefix}ARCH"] = p.architecture
        out[f"{prefix}VARIANT"] = p.variant or ""
    return out


def build(store, opts: BuildOptions):
    b = Builder(store, opts)
    try:
        return b.build()
    finally:
        b.cleanup()
