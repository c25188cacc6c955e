"""A seeded, time-bounded fuzz run (issue 7) of what reads untrusted input: the Dockerfile
parser with variable expansion, .dockerignore patterns, the reference parser, and the
archive loader (docker-archive and oci-archive tars with mutated JSON and tar headers).

Every input must give a result or a LaminaError with a one-line first line: no other
exception (no traceback), no hang (each case runs under an alarm far above its cost), and a
refused load leaves the store's blobs as they were. A hand-rolled mutator, so the run needs
no extra package; the seeds are fixed, the budget per target is a few seconds (the number
of cases run varies with the machine's load, the cases themselves do not).

On failure the message lists the failing inputs (shortened) with their exception, so a
case can be replayed with ``_replay_*`` below.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import signal
import tarfile
import time
import traceback

import pytest
from conftest import REPO, tar_bytes

BUDGET = float(os.environ.get("LAMINA_FUZZ_SECONDS", "10"))  # per target
CASE_ALARM = 30  # seconds: a case costs milliseconds; one this slow is a hang


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang("no result after %d s" % CASE_ALARM)


def _run_cases(name: str, seed: int, gen, check) -> tuple[int, list[str]]:
    """Run ``check(case)`` on cases from ``gen(rng)`` until the budget is spent."""
    from lamina.errors import LaminaError
    rng = random.Random(seed + int(os.environ.get("LAMINA_FUZZ_SEED", "0")))  # other seeds: explore
    failures: list[str] = []
    n = 0
    old = signal.signal(signal.SIGALRM, _on_alarm)
    deadline = time.monotonic() + BUDGET
    try:
        while time.monotonic() < deadline and len(failures) < 5:
            case = gen(rng)
            n += 1
            signal.alarm(CASE_ALARM)
            try:
                check(case)
            except LaminaError as e:
                msg = str(e)
                if not msg or "Traceback" in msg:
                    failures.append(f"{name} case {n} {_show(case)}: LaminaError without a clean message: {msg!r}")
            except BaseException as e:  # noqa: BLE001 - that is what the fuzz looks for
                if isinstance(e, KeyboardInterrupt):
                    raise
                tb = traceback.format_exception(type(e), e, e.__traceback__)[-3:]
                failures.append(f"{name} case {n} {_show(case)}: {type(e).__name__}: {e}\n{''.join(tb)}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, old)
    return n, failures


def _show(case) -> str:
    r = repr(case)
    return r if len(r) < 300 else r[:150] + f"...({len(r)} chars)..." + r[-100:]


def _mutate(rng: random.Random, data: bytes, tokens: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        pos = rng.randint(0, len(b))
        if op == 0 and b:
            b[pos % len(b)] = rng.randrange(256)
        elif op in (1, 2):
            b[pos:pos] = rng.choice(tokens)
        elif op == 3 and b:
            end = min(len(b), pos + rng.randint(1, 40))
            del b[pos:end]
        elif op == 4 and b:
            start = rng.randrange(len(b))
            chunk = b[start:start + rng.randint(1, 80)]
            b[pos:pos] = chunk * rng.randint(1, 3)
        elif op == 5:
            b[pos:pos] = rng.choice(tokens) * rng.choice((2, 10, 300, 3000))
        elif op == 6 and b and rng.random() < 0.3:
            del b[pos:]
    return bytes(b)


# -- the Dockerfile parser and expansion --------------------------------------------------------

_DF_TOKENS = [
    b"${", b"}", b"${X:-", b"${X:+", b"${X?", b"${X#", b"${X##*", b"${X%", b"${X%%?", b"${X/", b"${X//*/",
    b"$X", b"$", b"/", b"\\", b"\\\n", b"`", b"`\n", b"'", b'"', b"[", b"]", b'["a", ', b"{", b"<<EOF\n",
    b"EOF\n", b"<<-'E'\n", b"\tE\n", b"\n", b" ", b"\t", b"\r", b"=", b"#", b"# escape=`\n", b"# syntax=x\n",
    b"\xff", b"\x00", b"\xc3", b"\xe2\x82", "\u00a0".encode(), b"ONBUILD ", b"RUN ",
    b"FROM scratch AS x\n", b"FROM x\n", b"ARG ", b"ENV ", b"LABEL ", b"COPY ", b"ADD ", b"CMD ", b"SHELL ",
    b"HEALTHCHECK --interval=", b"99999999999999999999h", b"1e400s", b"--mount=type=cache,target=", b"--chown=",
    b"--from=", b"--platform=", b"*", b"?", b"\\*", b"\\}", b"\\x", b"EXPOSE 80-", b"USER ", b"WORKDIR ",
]


def _dockerfile_corpus() -> list[bytes]:
    d = os.path.join(REPO, "tests", "dockerfiles")
    out = [open(os.path.join(d, n), "rb").read() for n in sorted(os.listdir(d))]
    out += [
        b"FROM busybox\nARG X=a*b\nENV Y=${X:-d} Z=${X#*a}\nRUN echo $Y\n",
        b"# escape=`\nFROM busybox\nRUN echo `\n  hi\nCOPY [\"a\", \"/b\"]\n",
        b"ARG V=1\nFROM busybox:$V AS b\nCOPY --from=b <<EOF /x\n${V}\nEOF\nHEALTHCHECK --interval=5s CMD true\n",
        b"FROM busybox\nONBUILD RUN echo ${X//a/b}\nLABEL 'a b'=\"c d\" e=f\nEXPOSE 80/tcp 90-91\n",
    ]
    return out


def _check_dockerfile(data: bytes) -> None:
    from lamina.dockerfile.expand import expand_instruction, expand_words, key_values
    from lamina.dockerfile.parser import parse
    df = parse(data)
    env = {"X": "a*b/c\nd", "Y": ""}
    for ins in df.meta_args:
        for k, v in key_values(expand_instruction(ins, env, escape=df.escape)):
            env[k] = v if v is not None else env.get(k, "")
    for st in df.stages:
        for ins in (st.source, *st.instructions):
            if ins is None:
                continue
            e = expand_instruction(ins, env, escape=df.escape)
            if e.cmd in ("ENV", "ARG", "LABEL"):
                for k, v in key_values(e):
                    env[k] = v if v is not None else env.get(k, "")
            if e.cmd == "RUN" and not e.json and e.args:
                expand_words(e.args[0], env, escape=df.escape)  # what a shell-less consumer would do


def test_fuzz_dockerfile_parser_and_expansion():
    corpus = _dockerfile_corpus()
    n, failures = _run_cases("dockerfile", 7, lambda rng: _mutate(rng, rng.choice(corpus), _DF_TOKENS),
                             _check_dockerfile)
    assert not failures, "\n\n".join(failures)
    assert n > 50, n
    print(f"dockerfile: {n} cases")


def _replay_dockerfile(data: bytes) -> None:  # for a failure printed above
    _check_dockerfile(data)


# -- .dockerignore patterns -------------------------------------------------------------------

_IGN_TOKENS = [b"*", b"**", b"**/", b"?", b"/", b"[", b"]", b"[^a]", b"[!a-c]", b"\\", b"\\*", b"!", b".", b"..",
               b"a", b"b", b"#", b" ", b"\n", b"\xff", b"-"]
_IGN_CORPUS = [b"*.md\n!README.md\n", b"**/node_modules\nbuild/\n", b"a/**/b/*.go\n", b"[a-c]?x\n!\\*y\n",
               b"/abs/path\n../up\n**\n"]


def _check_ignore(case: tuple[bytes, list[str]]) -> None:
    from lamina.dockerfile import ignore
    data, paths = case
    m = ignore.Matcher.from_lines(data.splitlines())
    for p in paths:
        m.excluded(p)
        m.may_exclude_children(p)
        m.can_skip_dir(p)
        for pat in m.patterns:  # the NFA answers as the regex does (where re is quick: short
            # paths, few unbounded parts)
            if pat.kind == ignore._REGEXP and len(p) <= 12 and ignore._unbounded(pat.regex.pattern) <= 6:
                assert pat.matches(p) == bool(pat.regex.match(p)), (str(pat), p)


def test_fuzz_dockerignore_patterns():
    def gen(rng):
        paths = ["".join(rng.choice("ab/.-c") for _ in range(rng.randint(0, 12))) for _ in range(3)]
        return _mutate(rng, rng.choice(_IGN_CORPUS), _IGN_TOKENS), paths + ["a" * 300, "/".join("d" * 200)]
    n, failures = _run_cases("dockerignore", 17, gen, _check_ignore)
    assert not failures, "\n\n".join(failures)
    assert n > 50, n
    print(f"dockerignore: {n} cases")


# -- the reference parser -----------------------------------------------------------------------

_REF_CORPUS = [b"busybox", b"busybox:1.36", b"docker.io/library/busybox:latest", b"localhost:5000/a/b:c",
               b"ghcr.io/o/r@sha256:" + b"a" * 64, b"[::1]:5000/x:y", b"Upper.example/x", b"a/b/c/d/e:tag",
               b"foo_bar.com/x", b"sha256:" + b"b" * 64, b"b" * 64, b"abc123"]
_REF_TOKENS = [b"/", b":", b"@", b".", b"-", b"_", b"__", b"[", b"]", b"sha256:", b"sha512:", b"a" * 64,
               b"A", b"\xff", b"\n", b" ", b"localhost", b"0", b"%", b"..", b"-" * 50, b"a." * 40]


def _check_reference(raw: bytes) -> None:
    from lamina import reference
    text = raw.decode("utf-8", "replace")
    for fn in (reference.parse, reference.parse_any):
        try:
            r = fn(text)
        except Exception as e:
            from lamina.errors import LaminaError
            if isinstance(e, LaminaError):
                continue
            raise
        s = str(r)
        if fn is reference.parse:
            assert reference.parse(s) == r, (text, s)  # the canonical form parses back to itself
            _ = r.familiar


def test_fuzz_reference_parser():
    n, failures = _run_cases("reference", 11, lambda rng: _mutate(rng, rng.choice(_REF_CORPUS), _REF_TOKENS),
                             _check_reference)
    assert not failures, "\n\n".join(failures)
    assert n > 50, n
    print(f"reference: {n} cases")


# -- the archive loader --------------------------------------------------------------------------

def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _base_archives() -> list[dict[str, bytes]]:
    """Member dicts of a few valid archives: docker-archive (legacy and 25+ layouts) and OCI."""
    layer = tar_bytes([("etc/", "dir", None), ("etc/f", "file", "fuzz"), ("l", "symlink", "etc/f")])
    gz = gzip.compress(layer, mtime=0)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"], "Env": ["A=1"]},
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + _sha(layer)]},
                      "history": [{"created_by": "x"}]}).encode()
    legacy = {f"{_sha(cfg)}.json": cfg, "abc/layer.tar": layer,
              "manifest.json": json.dumps([{"Config": f"{_sha(cfg)}.json", "RepoTags": ["fz:1"],
                                            "Layers": ["abc/layer.tar"]}]).encode(),
              "repositories": json.dumps({"fz": {"1": "abc"}}).encode()}
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": "sha256:" + _sha(cfg), "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                  "digest": "sha256:" + _sha(gz), "size": len(gz)}]}).encode()
    idx = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + _sha(man),
         "size": len(man), "annotations": {"io.containerd.image.name": "docker.io/library/fz:2",
                                           "org.opencontainers.image.ref.name": "2"}}]}).encode()
    oci = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": idx,
           f"blobs/sha256/{_sha(gz)}": gz, f"blobs/sha256/{_sha(cfg)}": cfg, f"blobs/sha256/{_sha(man)}": man}
    modern = dict(oci)
    modern["manifest.json"] = json.dumps([{"Config": f"blobs/sha256/{_sha(cfg)}", "RepoTags": ["fz:3"],
                                           "Layers": [f"blobs/sha256/{_sha(gz)}"]}]).encode()
    return [legacy, oci, modern]


_ODD_VALUES = [None, True, False, 0, -1, 1.5, 10 ** 18, -(10 ** 18), 2 ** 64, "", "x" * 300, [], {}, [[]],
               {"a": {}}, "sha256:" + "0" * 64, "sha256:xyz", "../../etc/passwd", "/abs", "\udcff", "\x00",
               ["a", 1], [None], {"digest": 1}]


def _mutate_json(rng: random.Random, value):
    """A copy of ``value`` with one node replaced, deleted, or nested deep."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        k = rng.choice(list(value))
        out = dict(value)
        r = rng.random()
        if r < 0.15:
            del out[k]
        elif r < 0.55:
            out[k] = _mutate_json(rng, value[k])
        else:
            out[k] = rng.choice(_ODD_VALUES)
        return out
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        out = list(value)
        out[i] = _mutate_json(rng, value[i]) if rng.random() < 0.6 else rng.choice(_ODD_VALUES)
        if rng.random() < 0.1:
            out.append(rng.choice(_ODD_VALUES))
        return out
    return rng.choice(_ODD_VALUES)


def _archive_case(rng: random.Random, bases) -> bytes:
    members = dict(rng.choice(bases))
    jsons = [k for k, v in members.items() if v[:1] in (b"{", b"[")]
    for _ in range(rng.randint(0, 2)):
        name = rng.choice(jsons)
        if name not in members:
            continue
        r = rng.random()
        if r < 0.1:
            text = b"[" * rng.choice((600, 200000)) + b"]" * rng.choice((0, 600, 200000))
        elif r < 0.2:
            text = _mutate(rng, members[name], [b"[", b"{", b'"', b",", b":", b"0", b"-1", b"1e999", b"NaN", b"\\u"])
        else:
            try:
                text = json.dumps(_mutate_json(rng, json.loads(members[name]))).encode()
            except (ValueError, RecursionError):  # mutated as bytes already, or deep
                text = members[name][:-1]
        old = members.pop(name)
        if name.startswith("blobs/sha256/") and rng.random() < 0.7:
            # keep the archive consistent: the blob under its new digest, references updated
            new = _sha(text)
            name = f"blobs/sha256/{new}"
            for k in list(members):
                if members[k][:1] in (b"{", b"["):
                    members[k] = members[k].replace(_sha(old).encode(), new.encode())
        members[name] = text
    data = _tar(sorted(members.items()) if rng.random() < 0.8 else list(members.items()))
    r = rng.random()
    if r < 0.35:  # tar headers and data
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            blk = rng.randrange(max(1, len(b) // 512)) * 512
            field = rng.choice([(0, 100), (100, 8), (124, 12), (148, 8), (156, 1), (157, 100), (257, 8),
                                (345, 155), (0, 512)])
            pos = blk + field[0] + rng.randrange(field[1])
            if pos < len(b):
                b[pos] = rng.choice(b"0123456777 \x00\xff/.Lxg5")
        data = bytes(b)
    elif r < 0.45:
        data = data[:rng.randrange(len(data))]
    if rng.random() < 0.15:
        data = gzip.compress(data, mtime=0)
    return data


@pytest.fixture
def fuzz_images(tmp_path):
    from lamina.image.service import Images
    from lamina.store import Store
    store = Store(str(tmp_path / "root"))
    yield Images(store)
    store.close_db()


def test_fuzz_archive_loader(fuzz_images, tmp_path):
    from lamina.errors import LaminaError
    from lamina.image.archive import load
    bases = _base_archives()
    blobs = os.path.join(fuzz_images.store.root, "content", "blobs", "sha256")
    for m in bases:  # the unmutated archives load
        load(fuzz_images, io.BytesIO(_tar(sorted(m.items()))))
    path = str(tmp_path / "case.tar")

    from lamina.image.inspect import history_rows, inspect_image
    from lamina.snapshot import image_layers

    def check(data: bytes) -> None:
        before = set(os.listdir(blobs))
        known = {r.manifest for r in fuzz_images.all()}
        try:
            if len(data) % 2:  # the seekable path (a regular file) and the streamed one
                with open(path, "wb") as f:
                    f.write(data)
                with open(path, "rb") as f:
                    load(fuzz_images, f)
            else:
                load(fuzz_images, io.BytesIO(data))
        except LaminaError:
            after = set(os.listdir(blobs))
            assert after == before, f"a refused load left blobs: {sorted(after - before)}"
            raise
        for rec in fuzz_images.all():  # what a load accepted, inspect/history/run can read
            if rec.manifest not in known:
                json.dumps(inspect_image(fuzz_images, rec))
                history_rows(fuzz_images, rec)
                image_layers(fuzz_images, rec)

    n, failures = _run_cases("archive", 13, lambda rng: _archive_case(rng, bases), check)
    assert not failures, "\n\n".join(failures)
    assert n > 50, n
    print(f"archive: {n} cases")
