"""The built-in container launcher: the one module in lamina that performs a container's
final ``execve``.

:func:`run` starts the container described by ``bundle/config.json`` (an OCI runtime spec,
usually from :func:`lamina.runtime.spec.build_spec`) in the foreground and returns Docker's
exit code. :func:`exec_in` runs one more process inside a running container.
:func:`freeze`, :func:`thaw` and :func:`pids` serve pause/unpause/top.

Process tree of the built-in runtime (no subprocess, no exec of helpers)::

    caller ── clone3 ──> P2 = PID 1 of the new pid namespace (single-threaded caller)

    caller ── fork ──> P1 "setup parent": PR_SET_PDEATHSIG, waits (caller with threads)
                        └─ clone3 (or unshare(CLONE_NEWPID) + fork) ──> P2

P2's host pid is given to ``on_start``; P2 joins the v1 cgroups, unshares mnt/uts/ipc/
(net)/cgroup, mounts, pivot_root, drops privileges and execs the command (with ``--init``
the spec's command is Debian's tini, bound on /sbin/docker-init by lamina.runtime.spec).

P2 is made with a raw ``clone3(CLONE_NEWPID | CLONE_INTO_CGROUP)``: born in its pid namespace
(the cloning process's own later forks stay in its namespace) and in its v2 (or hybrid
``unified``) cgroup, so no cgroup.procs write is needed. A raw clone skips glibc's fork
handlers, which is safe only in a process with one thread (no other thread can hold a libc
lock): a single-threaded caller (``lamina run``) clones P2 itself and waits for it; a caller
with threads (the monitor, the build) forks P1, which clones P2 and exits with its Docker
exit code (``code`` or ``128+signal``). Without clone3 (old kernel, seccomp), P1 unshares
CLONE_NEWPID, forks P2 and writes its pid into cgroup.procs. P1 and P2 die with their parent
(``PR_SET_PDEATHSIG``): a SIGKILLed caller takes its container with it (note: the death
signal fires when the *thread* that called :func:`run` exits).

Mounts. Every mount is made inside the container's new mount namespace, after ``/`` was made
``rprivate``: the caller's ``rootfs_mounts`` (overlay ...) are mounted on ``root.path`` there,
so nothing is ever left mounted on the host, even when everything is SIGKILLed. Filesystem
mounts go through :func:`lamina.mount.mount_all`; this module itself calls mount(2) only to
change propagation and to remount read-only, plus ``pivot_root`` and ``umount2(MNT_DETACH)``
of the old root (which lamina.mount has no verbs for). Mount destinations are resolved with
``openat2(RESOLVE_IN_ROOT)``, so a symlink in the image cannot point a mount outside the
rootfs; missing destinations are created (a file for a bind of a file).

Order in P2 (as runc, but for the cgroup namespace): umask 022 -> join the network namespace
the spec names by ``path`` (the only namespace joined by path: lamina.network made it, or it
is another container's) -> namespaces but cgroup -> loopback up (new netns) -> ``/`` rprivate
(rslave with ``linux.rootfsPropagation`` rslave: a bind with slave propagation follows the
host) -> rootfs -> spec mounts [before the first cgroup
mount: wait until the parent has P2 in the v2 cgroup, join the v1 cgroups, unshare the
cgroup namespace] -> /dev nodes and symlinks -> pivot_root -> masked paths -> readonly paths
-> read-only root -> hostname -> rlimits -> cwd -> a new anonymous session keyring -> the
process's umask -> the caller's persona flags cleared -> [seccomp, when ``noNewPrivileges``
is false, while CAP_SYS_ADMIN is still held] -> bounding set -> setgroups/setresgid/setresuid
(PR_SET_KEEPCAPS) -> capset + ambient
-> no_new_privs -> [seccomp, when ``noNewPrivileges``] -> cwd again -> execve.

Seccomp: :mod:`lamina.runtime.seccomp` compiles the spec's ``linux.seccomp`` into classic BPF
*in the caller* (cached); the child only calls ``prctl(PR_SET_SECCOMP)`` with it.

What a container process never gets from its caller (run and exec alike): its environment
(execve gets the spec's env only), its terminal or any other descriptor (0/1/2 are the
given stdio, every other fd is closed; a stdio fd that is not a pipe, a socket or /dev/null,
e.g. a terminal, is replaced by a pipe that a thread of the caller copies), its session
keyring, its umask, its persona flags (setarch -R), its OOM score adjustment, its signal
mask and dispositions, its cwd, its cgroups, namespaces,
capabilities and seccomp state (the container's own are applied), its rlimits beyond the
container's (exec copies the container init's limits, never above them).

Exec failures follow Docker: a command not found -> ``exec: "foo": executable file not found
in $PATH`` on the container's stderr and exit code 127; found but not executable ->
``... permission denied`` and 126. The child reports them (and setup failures) through a
CLOEXEC pipe that reaches EOF at the successful execve. Setup failures raise
:class:`~lamina.errors.LaminaError` subclasses in the caller (exit 125 class), e.g.
``mount /proc on /x/rootfs/proc failed: ...``.

cgroups (host side, in the caller): v1 creates ``<hierarchy>/<cgroup_parent>/<id>`` in every
mounted v1 hierarchy (and the hybrid ``unified`` one), writes memory/cpu/pids limits and
Docker's device allow-list, and removes the cgroups after exit. P2 joins every v1 hierarchy
(all of them, as runc: one left out would make the container's cgroup namespace root, and so
its /sys/fs/cgroup/<ctl> mount, the caller's cgroup) by writing ``0`` to each ``tasks`` file:
moving one thread of a single-threaded process skips the global threadgroup rwsem whose
write side, taken by every cgroup.procs write, waits for an RCU grace period (3-15 ms). v2 (when
``/sys/fs/cgroup/cgroup.controllers`` exists) uses ``/sys/fs/cgroup/<parent>/<id>``. A
requested limit whose controller is missing raises :class:`~lamina.errors.Unavailable`.

``runtime="runc"`` (or ``"crun"``): :mod:`lamina.runtime.external` drives the runtime's own
verbs (create --pid-file, start, wait for the init as a child subreaper, delete), so the pid
given to ``on_start`` is the container's init, as with the built-in runtime.

Terminals of the built-in runtime. With ``on_console`` (the monitor's way), P2 allocates the
pty as runc does: after the spec's mounts it opens ``<rootfs>/dev/pts/ptmx`` (the
container's own devpts instance), sets the window size (``console_size`` or the spec's
``process.consoleSize``), makes the slave its controlling tty and 0/1/2, bind-mounts it on
``/dev/console`` and sends the master to the caller over a socketpair (SCM_RIGHTS, runc's
"console socket"); the caller hands it to ``on_console`` before the command is exec'd, so
``tty`` prints ``/dev/pts/0`` and ``ps`` shows ``pts/0``. (A rootfs without a devpts on
/dev/pts gets a pty of the host's devpts instead.) The caller keeps a slave of that pty open
(``TIOCGPTPEER``) until the container exits, for exec error messages, as a caller-given
console would be. With ``console`` (a pty slave the caller made, e.g. with os.openpty()),
that slave itself is the container's tty, bind-mounted on ``/dev/console``: a host pty is
invisible in the container's new devpts, so ``tty`` prints ``/dev/console``.

Modules (one concern each; ``run`` and ``exec_in`` are the entry points, re-exported here):
``base`` (constants, libc, the child's error report), ``caps``, ``cgroups`` (v1/v2, freezer,
pids), ``targets`` (mount destinations in the rootfs), ``mounts`` (rootfs, /dev, pivot_root,
masked paths, netns join), ``console``, ``process`` (seccomp load, rlimits, credentials,
execve), ``spawn`` (clone3/fork of P2 and its main), ``launch`` (:func:`run`), ``exec``
(:func:`exec_in`). Networking (veth, bridges, NAT) is :mod:`lamina.network`, beside the
runtime: the spec names a network namespace that lamina.network made, and P2 joins it.
"""

from __future__ import annotations

from lamina.runtime.launcher.cgroups import (
                                             cgroup_dirs,
                                             check_cgroup_parent,
                                             default_cgroup_parent,
                                             freeze,
                                             pids,
                                             remove_cgroups,
                                             thaw,
                                             update_resources,
)
from lamina.runtime.launcher.exec import exec_in
from lamina.runtime.launcher.launch import run

__all__ = ["run", "exec_in", "freeze", "thaw", "pids", "remove_cgroups", "cgroup_dirs", "update_resources",
           "default_cgroup_parent", "check_cgroup_parent"]
