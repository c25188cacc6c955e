"""Helpers for the runtime security tests: run the host's own Python inside a busybox
container (to make exact syscalls and ioctls there), and run lamina as a caller that holds
things a container must never get (a terminal, a session key, fds, an umask)."""

from __future__ import annotations

import os
import sys
import sysconfig

from conftest import REPO

_LIBDIR = "/usr/lib/" + (sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu")
_LOADER = os.path.realpath("/lib64/ld-linux-x86-64.so.2")


def host_python_cmd(code: str) -> list[str]:
    """The command that runs ``code`` with this host's Python in a container that has the
    host's / bound read-only on /host (see :func:`host_python`): its dynamic loader runs the
    interpreter from there; PYTHONHOME must be :func:`host_python_home`."""
    exe = os.path.realpath(sys.executable)
    return ["/host" + _LOADER, "--library-path", "/host" + _LIBDIR, "/host" + exe, "-S", "-s",
            "-c", code]


def host_python_home() -> str:
    return f"PYTHONHOME=/host{sys.base_prefix}"


def host_python(code: str, *, image: str = "busybox") -> list[str]:
    """``lamina run`` arguments (from the options on) that run ``code`` with this host's
    Python in a busybox container, to make exact syscalls and ioctls there."""
    return ["-v", "/:/host:ro", "-e", host_python_home(), image, *host_python_cmd(code)]


#: Python that joins a new session keyring, adds a key only its possessor may view, checks
#: it can see it in /proc/keys, then execs ``python -m lamina ARGS``.
KEYRING_CALLER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
ring = libc.syscall(L(250), L(1), ctypes.c_char_p(b"lamina-test-session"))  # JOIN_SESSION_KEYRING
assert ring > 0, os.strerror(ctypes.get_errno())
key = libc.syscall(L(248), ctypes.c_char_p(b"user"), ctypes.c_char_p(b"lamina-host-secret"),
                   ctypes.c_char_p(b"hunter2"), L(7), L(-3))  # add_key to KEY_SPEC_SESSION_KEYRING
assert key > 0, os.strerror(ctypes.get_errno())
assert libc.syscall(L(250), L(5), L(key), L(0x3f000000)) == 0  # SETPERM: possessor only
assert "lamina-host-secret" in open("/proc/keys").read()  # we, the possessor, see it
os.execv(sys.executable, [sys.executable, "-m", "lamina", *sys.argv[1:]])
"""


def caller_env(lamina, **extra: str) -> dict:
    env = dict(lamina.env)
    env.update(extra)
    return env


def run_as_caller(lamina, code: str, *args: str, env: dict | None = None, **kw):
    """Run ``python -c code lamina-args...`` (code execs lamina) with the store of ``lamina``."""
    import subprocess

    return subprocess.run([sys.executable, "-c", code, *args], env=env or lamina.env,
                          capture_output=True, cwd=REPO, timeout=120, **kw)
