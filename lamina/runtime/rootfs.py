"""A container's merged root, for ``cp`` and ``export``.

Running: ``/proc/<pid>/root`` (the live view, no mount needed). Stopped: the overlay is
mounted in a forked child's private mount namespace, so nothing is ever mounted on the host
and a killed lamina leaves nothing behind.
"""

from __future__ import annotations

import os
import sys

from lamina.errors import LaminaError


def _unshare_mount_ns() -> None:
    """unshare(CLONE_NEWNS) (os.unshare is Python 3.12+; this is 3.11)."""
    import ctypes
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.unshare(0x00020000) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")


def with_container_root(containers, doc: dict, fn) -> int:
    """Call ``fn(root_dir)``; returns 0, or the error's exit code after printing it."""
    from lamina.runtime.containers import process_alive
    st = doc["State"]
    if st.get("Running") and process_alive(st.get("Pid"), st.get("PidStart")):
        fn(f"/proc/{st['Pid']}/root")
        return 0
    from lamina.snapshot import Snapshotter
    d = containers.dir(doc["Id"])
    layers = containers.layers_of(doc)
    with containers.store.operation():
        mounts = Snapshotter(containers.store).mounts(layers, upper=os.path.join(d, "upper"),
                                                      work=os.path.join(d, "work"))
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                from lamina import mount
                _unshare_mount_ns()
                mount.make_private("/")
                target = os.path.join(d, "rootfs")
                mount.mount_all(mounts, target)
                fn(target)
                sys.stdout.flush()
            except LaminaError as e:
                sys.stderr.write(f"Error: {e}\n")
                code = e.exit_code
            except BaseException as e:  # never let the child return into the CLI
                sys.stderr.write(f"Error: {e}\n")
                code = 125
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
