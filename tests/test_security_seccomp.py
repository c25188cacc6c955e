"""Issue 7, item 11: lamina's seccomp filter is Docker's default profile, an allow-list.

Oracle: Docker's own profiles/seccomp/default.json as Debian's golang-github-docker-docker-dev
installs it (the dockerd here is the same 20.10), interpreted with Docker's rules
(includes/excludes by caps, arches, minKernel; archMap) by code of this test. lamina's
compiled BPF program is run on seccomp_data for every x86_64 (and i386, x32) syscall number
of the kernel headers, with the argument values that matter, by a classic-BPF interpreter
of this test, and must decide as that profile does: allow, or refuse with the profile's
errno (EPERM by default; ENOSYS above the highest number the profile names, as runc).
Then real containers make the calls.
"""

from __future__ import annotations

import errno
import json
import os
import re
import struct

import pytest
from containers_util import bb  # noqa: F401  (fixture)
from security_util import host_python

from lamina.runtime import seccomp
from lamina.runtime.spec import RunOptions, build_spec

DOCKER_JSON = "/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json"
HEADERS = "/usr/include/x86_64-linux-gnu/asm"
AUDIT_X86_64, AUDIT_I386, X32_BIT = 0xC000003E, 0x40000003, 0x40000000
RET_ALLOW, RET_ERRNO, RET_ACTION = 0x7FFF0000, 0x00050000, 0xFFFF0000


def _docker_profile() -> dict:
    if not os.path.exists(DOCKER_JSON):
        pytest.fail(f"{DOCKER_JSON} is missing: install Debian's golang-github-docker-docker-dev "
                    "(scripts/test.sh does)")
    with open(DOCKER_JSON) as f:
        return json.load(f)


def _table(name: str) -> dict[str, int]:
    """name -> number from the kernel's uapi header (linux-libc-dev)."""
    path = f"{HEADERS}/{name}"
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: install linux-libc-dev")
    out = {}
    for m in re.finditer(r"^#define __NR_(\w+)\s+(?:\(__X32_SYSCALL_BIT \+ )?(\d+)\)?", open(path).read(), re.M):
        out[m.group(1)] = int(m.group(2)) | (X32_BIT if "X32" in m.group(0) else 0)
    return out


# -- the oracle: Docker's rules, applied to its JSON ---------------------------------------------

def _kernel() -> tuple[int, int]:
    a, b = os.uname().release.split(".")[:2]
    return int(a), int(re.match(r"\d+", b).group())


def docker_rules(profile: dict, caps: set[str]) -> dict[str, list[dict]]:
    """Docker's setupSeccomp for amd64: syscall name -> the rules that apply to it."""
    out: dict[str, list[dict]] = {}
    for r in profile["syscalls"]:
        inc, exc = r.get("includes") or {}, r.get("excludes") or {}
        if "amd64" in (exc.get("arches") or []) or caps & set(exc.get("caps") or []):
            continue
        if exc.get("minKernel") and _kernel() >= tuple(map(int, exc["minKernel"].split("."))):
            continue
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if not set(inc.get("caps") or []) <= caps:
            continue
        if inc.get("minKernel") and _kernel() < tuple(map(int, inc["minKernel"].split("."))):
            continue
        for n in r["names"]:
            out.setdefault(n, []).append(r)
    return out


def _holds(a: dict, args: list[int]) -> bool:
    v, op = args[a["index"]], a["op"]
    x, y = a["value"], a.get("valueTwo", 0)
    return {"SCMP_CMP_EQ": v == x, "SCMP_CMP_NE": v != x, "SCMP_CMP_LT": v < x,
            "SCMP_CMP_LE": v <= x, "SCMP_CMP_GT": v > x, "SCMP_CMP_GE": v >= x,
            "SCMP_CMP_MASKED_EQ": v & x == y}[op]


def expected(rules: dict[str, list[dict]], name: str | None, args: list[int], top: int,
             nr: int) -> tuple[str, int]:
    """('allow', 0) or ('errno', N) for a call of ``name`` (None: no name) numbered ``nr``."""
    for r in rules.get(name or "", ()):
        if all(_holds(a, args) for a in r.get("args") or ()):
            if r["action"] == "SCMP_ACT_ALLOW":
                return ("allow", 0)
            if r["action"] == "SCMP_ACT_ERRNO":
                return ("errno", r.get("errnoRet") or errno.EPERM)
    return ("errno", errno.ENOSYS if nr > top else errno.EPERM)


# -- classic BPF, as the kernel runs it ------------------------------------------------------------

def run_bpf(prog: bytes, nr: int, arch: int, args: list[int]) -> int:
    data = struct.pack("<iIQ6Q", nr if nr < 1 << 31 else nr - (1 << 32), arch, 0,
                       *[a & (2**64 - 1) for a in args])
    insns = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    A = X = 0
    mem = [0] * 16
    pc = 0
    for _ in range(100000):
        code, jt, jf, k = insns[pc]
        cls = code & 0x07
        pc += 1
        if cls == 0x00:  # LD
            mode = code & 0xE0
            if mode == 0x20:
                assert code & 0x18 == 0 and k % 4 == 0, "seccomp loads whole words"
                A = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:
                A = k
            elif mode == 0x60:
                A = mem[k]
            elif mode == 0x80:
                A = len(data)
            else:
                raise AssertionError(f"load mode {code:#x}")
        elif cls == 0x01:  # LDX
            mode = code & 0xE0
            X = k if mode == 0x00 else mem[k] if mode == 0x60 else len(data)
        elif cls == 0x02:
            mem[k] = A
        elif cls == 0x03:
            mem[k] = X
        elif cls == 0x04:  # ALU
            op, src = code & 0xF0, (X if code & 0x08 else k)
            A = {0x00: lambda: A + src, 0x10: lambda: A - src, 0x20: lambda: A * src,
                 0x30: lambda: A // src, 0x40: lambda: A | src, 0x50: lambda: A & src,
                 0x60: lambda: A << src, 0x70: lambda: A >> src, 0x80: lambda: -A,
                 0x90: lambda: A % src, 0xA0: lambda: A ^ src}[op]() & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            op, src = code & 0xF0, (X if code & 0x08 else k)
            if op == 0x00:
                pc += k
                continue
            cond = {0x10: A == src, 0x20: A > src, 0x30: A >= src, 0x40: bool(A & src)}[op]
            pc += jt if cond else jf
        elif cls == 0x06:  # RET
            return k if code & 0x18 == 0 else A
        elif cls == 0x07:
            if code & 0xF8 == 0x00:
                X = A
            else:
                A = X
    raise AssertionError("BPF program did not return")


def decision(ret: int) -> tuple[str, int]:
    if ret & RET_ACTION == RET_ALLOW:
        return ("allow", 0)
    if ret & RET_ACTION == RET_ERRNO:
        return ("errno", ret & 0xFFFF)
    return ("other", ret)


# -- the comparison --------------------------------------------------------------------------------

PERSONAS = [0, 8, 0x20000, 0x20008, 0xFFFFFFFF, 0x80040000, 0x0040000, 0x0400000, 1,
            0x1_0000_0000, 0xFFFFFFFF_FFFFFFFF]
CLONES = [0x11, 0x3D0F00, 0x10000000, 0x20000, 0x20000000, 0x40000000, 0x7E020000,
          0x02000000 | 0x11, 0x80000000]

CAP_CASES = [(), ("SYS_ADMIN",), ("SYS_PTRACE",), ("SYS_TIME",), ("SYS_MODULE",),
             ("SYS_BOOT",), ("SYS_NICE",), ("SYSLOG",), ("SYS_RAWIO",), ("SYS_PACCT",),
             ("DAC_READ_SEARCH",), ("SYS_TTY_CONFIG",), ("ALL",)]


def _program(cap_add=(), cap_drop=()) -> tuple[bytes, list[str]]:
    spec = build_spec(RunOptions(args=("x",), cap_add=cap_add, cap_drop=cap_drop), root_path="r")
    return seccomp.program(spec["linux"]["seccomp"]), spec["process"]["capabilities"]["bounding"]


@pytest.mark.parametrize("cap_add", CAP_CASES, ids=lambda c: "+".join(c) or "default")
def test_every_x86_64_syscall_as_dockers_default_profile(cap_add):
    docker = _docker_profile()
    prog, bounding = _program(cap_add)
    rules = docker_rules(docker, set(bounding))
    checked = 0
    for arch, table_name, mask in ((AUDIT_X86_64, "unistd_64.h", 0), (AUDIT_X86_64, "unistd_x32.h", X32_BIT),
                                   (AUDIT_I386, "unistd_32.h", 0)):
        table = _table(table_name)
        by_nr = {nr: n for n, nr in table.items()}
        # runc answers ENOSYS above the highest number the profile it is given names
        top = max(nr for n, nr in table.items() if n in rules)
        for nr in range(mask, max(by_nr) + 40):
            name = by_nr.get(nr)
            argsets = [[0] * 6]
            if name == "personality":
                argsets = [[p, 0, 0, 0, 0, 0] for p in PERSONAS]
            elif name == "clone" and arch == AUDIT_X86_64 and not mask:
                argsets = [[c, 0, 0, 0, 0, 0] for c in CLONES]
            for args in argsets:
                if arch == AUDIT_I386 and args[0] > 0xFFFFFFFF:
                    continue  # i386 arguments are 32-bit: no such call exists
                # x32: libseccomp (and the kernel, for these int arguments) use the low 32 bits
                seen = [a & 0xFFFFFFFF for a in args] if mask else args
                want = expected(rules, name, seen, top, nr)
                got = decision(run_bpf(prog, nr, arch, args))
                assert got == want, (hex(arch), nr, name, [hex(a) for a in args], got, want)
                checked += 1
    assert checked > 1000


def test_the_listed_escapes_are_refused():
    # the calls the audit reached through the deny-list, and personality(0x80040000)
    prog, _ = _program()
    t = _table("unistd_64.h")
    assert decision(run_bpf(prog, t["personality"], AUDIT_X86_64, [0x80040000] + [0] * 5)) == \
        ("errno", errno.EPERM)
    assert decision(run_bpf(prog, t["quotactl_fd"], AUDIT_X86_64, [0] * 6)) == ("errno", errno.EPERM)
    assert decision(run_bpf(prog, t["set_mempolicy_home_node"], AUDIT_X86_64, [0] * 6))[0] == "errno"
    # numbers newer than these headers: cachestat 451, fchmodat2 452, statmount 457,
    # listmount 458, lsm_list_modules 461, mseal 462, open_tree_attr 467, and any future one
    for nr in (451, 452, 457, 458, 461, 462, 467, 600, 0x3FFFFFFF):
        assert decision(run_bpf(prog, nr, AUDIT_X86_64, [0] * 6)) == ("errno", errno.ENOSYS), nr
    # clone3: ENOSYS so that libc falls back to clone, whose namespace flags are filtered
    assert decision(run_bpf(prog, t["clone3"], AUDIT_X86_64, [0] * 6)) == ("errno", errno.ENOSYS)


def test_lamina_profile_is_dockers_profile():
    """Rule for rule, after Docker's includes/excludes, for each capability case."""
    docker = _docker_profile()

    def canon(profile: dict) -> set:
        out = set()
        for r in profile["syscalls"]:
            for n in r["names"]:
                out.add((n, r["action"], r.get("errnoRet"),
                         tuple((a["index"], a["op"], a["value"], a.get("valueTwo", 0))
                               for a in r.get("args") or ())))
        return out

    for cap_add in CAP_CASES:
        spec = build_spec(RunOptions(args=("x",), cap_add=cap_add), root_path="r")
        ours = spec["linux"]["seccomp"]
        theirs = seccomp.resolve(docker, bounding=spec["process"]["capabilities"]["bounding"])
        assert ours["defaultAction"] == theirs["defaultAction"] == "SCMP_ACT_ERRNO"
        assert ours["architectures"] == theirs["architectures"] == \
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        assert canon(ours) == canon(theirs), cap_add


def test_cache_key_covers_the_profile(tmp_path):
    """Two profiles that differ in one errno never share a cached program."""
    a = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    b = json.loads(json.dumps(a))
    b["syscalls"][0]["errnoRet"] = 30
    pa, pb = seccomp.program(seccomp.resolve(a, bounding=[])), seccomp.program(seccomp.resolve(b, bounding=[]))
    assert pa != pb
    mkdir = _table("unistd_64.h")["mkdir"]
    assert decision(run_bpf(pa, mkdir, AUDIT_X86_64, [0] * 6)) == ("errno", 13)
    assert decision(run_bpf(pb, mkdir, AUDIT_X86_64, [0] * 6)) == ("errno", 30)
    assert seccomp._disk_path("x") != seccomp._disk_path("y")


# -- real containers -------------------------------------------------------------------------------

PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
for spec in sys.argv[1:]:
    nr, *args = [int(x, 0) for x in spec.split(",")]
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    e = ctypes.get_errno()
    print(spec, "ok" if r != -1 else os.strerror(e))
"""


def _probe(bb, *calls: str, flags=()) -> dict:
    args = host_python(PROBE)
    out = bb("run", "--rm", *flags, *args, *calls).out
    return dict(line.split(" ", 1) for line in out.splitlines())


def test_real_container_calls(bb):
    got = _probe(bb, "135,0x80040000", "135,0xffffffff", "135,0x0040000", "452,-100,0,0,0", "451",
                 "462", "999", "435,0,0", "250,1,0", "272,0x10000000", "436,3,3,0",
                 "56,0x10000000,0,0,0,0")
    assert got == {
        "135,0x80040000": "Operation not permitted",   # personality: ADDR_NO_RANDOMIZE refused
        "135,0xffffffff": "ok",                         # the query is fine
        "135,0x0040000": "Operation not permitted",
        "452,-100,0,0,0": "Function not implemented",   # fchmodat2: newer than the profile
        "451": "Function not implemented",
        "462": "Function not implemented",
        "999": "Function not implemented",
        "435,0,0": "Function not implemented",          # clone3 -> libc falls back to clone
        "250,1,0": "Operation not permitted",           # keyctl
        "272,0x10000000": "Operation not permitted",    # unshare(CLONE_NEWUSER)
        "436,3,3,0": "ok",                              # close_range: allowed
        "56,0x10000000,0,0,0,0": "Operation not permitted",  # clone(CLONE_NEWUSER)
    }, got
    got = _probe(bb, "272,0x04000000", "435,0,0", flags=("--cap-add", "SYS_ADMIN"))
    assert got == {"272,0x04000000": "ok",                # unshare(CLONE_NEWUTS) with SYS_ADMIN
                   "435,0,0": "Invalid argument"}, got    # clone3 reaches the kernel
