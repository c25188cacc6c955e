"""Mount values and the one place in lamina that calls mount(2) / umount(2).

Snapshotters *describe* mounts (:class:`Mount` values, like containerd's ``mount.Mount``);
this module *performs* them. Nothing else in lamina may call mount(2), umount2(2) or the new
mount API syscalls.

Overlay and its one-page limit
------------------------------
A classic ``mount(2)`` copies its option string into one page (4096 bytes here), so a
``lowerdir=a:b:c...`` string with many long absolute paths does not fit. :func:`mount_all`
therefore mounts overlays, in order of preference, with:

1. the new mount API: ``fsopen("overlay")``, one ``fsconfig(FSCONFIG_SET_STRING, "lowerdir+",
   dir)`` per layer (Linux >= 6.8), ``fsconfig(FSCONFIG_CMD_CREATE)``, ``fsmount``,
   ``move_mount``. ``fsconfig`` copies at most 255 bytes of a string value, so a layer path
   longer than that is opened ``O_PATH`` and passed with ``FSCONFIG_SET_FD`` (Linux >= 6.13).
2. classic ``mount(2)`` from the lower dirs' common parent with short relative paths (done in a
   helper thread that first ``unshare(CLONE_FS)`` so the ``chdir`` never touches the cwd of the
   rest of the process); :class:`~lamina.errors.Unavailable` if the string still exceeds a page.

The kernel allows at most :data:`OVL_MAX_STACK` (500) lower layers in one overlay.

Every overlay built by :func:`overlay` carries ``index=off,redirect_dir=off,metacopy=off``, so
its upper dir is a plain diff: a deleted lower path becomes a 0:0 character device (whiteout)
and a directory that replaces a lower one carries the xattr ``trusted.overlay.opaque=y``.
(Kernel quirks: with ``redirect_always_follow=Y``, the module default, ``redirect_dir=off``
means "follow lower redirects, never create one", shown as no option in mountinfo for an overlay
with upper dir and as ``redirect_dir=on`` for a lower-only one; neither creates redirects.
An overlay with no upper dir needs at least two lower dirs, so :func:`overlay` returns a
read-only bind mount for a single lower dir.)

What a diff reader of an upper dir must know (observed on Linux 6.18, ext4 upper):

* whiteouts are hard links to one shared 0:0 char device inode in the work dir (nlink > 1),
  so detect whiteouts *before* hard-link tracking, or every whiteout after the first would
  become a hard link entry;
* even with ``index=off`` the kernel writes bookkeeping xattrs: ``trusted.overlay.origin`` on
  copied-up entries, ``trusted.overlay.impure`` on their parent dirs and
  ``trusted.overlay.uuid`` on the upper root. Only ``trusted.overlay.opaque`` carries meaning
  for a layer; skip every other ``trusted.overlay.*`` (as Docker does);
* with ``redirect_dir=off`` renaming a directory that came from a lower layer fails with
  ``EXDEV`` (tools then copy and delete), so no ``trusted.overlay.redirect`` ever appears.

Errors: a failing syscall raises :class:`~lamina.errors.InvalidArgument` when the mount
description is at fault (``EINVAL``, ``ENOENT``, ``ENOTDIR``, ``ELOOP``, ``ENAMETOOLONG``) and
:class:`~lamina.errors.Unavailable` otherwise (``EPERM``, ``EBUSY``, ``ENODEV`` ...). The message
names the target, the syscall and its argument, the errno text and, where the kernel logged one
into the fs context, its own explanation, e.g. ``overlay mount on /x failed: fsconfig lowerdir+
/a/b: No such file or directory``. The :class:`OSError` is chained as ``__cause__``.

This module imports only the standard library; ``ctypes`` and ``threading`` are loaded on the
first mount, so importing it is cheap.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable, Sequence

from lamina.errors import InvalidArgument, Unavailable
from lamina.values import value

__all__ = [
    "Mount",
    "OVL_MAX_STACK",
    "overlay",
    "mount_all",
    "unmount",
    "unmount_all",
    "is_mountpoint",
    "detached_bind",
    "detached_overlay",
    "DETACHED",
]

#: ``Mount(DETACHED, "/proc/self/fd/<n>")``: attach the detached mount tree held by fd ``n``
#: (made by :func:`detached_bind` or :func:`detached_overlay`) with move_mount(2).
DETACHED = "detached"

#: Most lower layers one overlay mount accepts (kernel ``OVL_MAX_STACK``).
OVL_MAX_STACK = 500

#: Options :func:`overlay` always adds so the upper dir is a plain diff.
DIFF_OPTIONS = ("index=off", "redirect_dir=off", "metacopy=off")

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_FSCONFIG_MAX_STRING = 255  # fsconfig() copies string values with strndup_user(value, 256)

# errnos that mean "the description is wrong", as opposed to "the host can't do it now".
_BAD_INPUT = frozenset({_errno.EINVAL, _errno.ENOENT, _errno.ENOTDIR, _errno.ELOOP,
                        _errno.ENAMETOOLONG})


# ---------------------------------------------------------------------------------------------
# Values


@value
class Mount:
    """A mount to perform, as containerd's ``mount.Mount``: what snapshotters return.

    ``type`` is the filesystem type (``"overlay"``, ``"bind"``, ``"tmpfs"``, ``"proc"`` ...),
    ``source`` the device or directory (``"overlay"`` for overlays), ``options`` the
    ``mount -o`` words in order: flags (``"ro"``, ``"nosuid"``, ``"rbind"``, ``"rprivate"`` ...)
    and ``key=value`` data (``"size=64m"``; for overlay ``lowerdir=``, ``upperdir=``,
    ``workdir=``). In overlay path options, ``\\``, ``:`` and ``,`` inside a path are escaped
    with a backslash, exactly as ``mount -t overlay`` expects. A list passed as ``options`` is
    stored as a tuple. Creating a value does no I/O; :func:`mount_all` performs it.
    """

    type: str
    source: str
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.options, tuple):
            object.__setattr__(self, "options", tuple(self.options))
        for name, val in (("type", self.type), ("source", self.source)):
            if not isinstance(val, str) or "\0" in val:
                raise InvalidArgument(f"mount {name} must be a string without NUL: {val!r}")
        for opt in self.options:
            if not isinstance(opt, str) or not opt or "\0" in opt:
                raise InvalidArgument(f"bad mount option {opt!r} in {self.type} mount of "
                                      f"{self.source!r}: options are non-empty strings")

    @property
    def readonly(self) -> bool:
        """True if the options make the mount read-only (the last of ``ro``/``rw`` wins)."""
        ro = False
        for opt in self.options:
            if opt in ("ro", "rw"):
                ro = opt == "ro"
        return ro


def _ovl_escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def _ovl_split(value: str) -> list[str]:
    """Split an escaped ``lowerdir=`` value on unescaped ``:`` and unescape each part."""
    parts, cur, it = [], [], iter(value)
    for ch in it:
        if ch == "\\":
            cur.append(next(it, ""))
        elif ch == ":":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _ovl_unescape(value: str) -> str:
    out, it = [], iter(value)
    for ch in it:
        out.append(next(it, "") if ch == "\\" else ch)
    return "".join(out)


def overlay(lowers: Sequence[str], *, upper: str | None = None, work: str | None = None,
            readonly: bool = False, options: Sequence[str] = ()) -> Mount:
    """Describe an overlay of ``lowers`` (top-most first, as in ``lowerdir=top:...:bottom``).

    ``upper`` and ``work`` (same filesystem, both or neither) make it writable; without them
    the overlay is read-only whatever ``readonly`` says. ``readonly=True`` adds ``ro``.
    At most :data:`OVL_MAX_STACK` (500) lowers, the kernel's limit; at least one.
    Paths are made absolute (against the current directory) now. ``options`` are extra
    ``mount -o`` words (e.g. ``"userxattr"`` for rootless) appended after
    ``index=off,redirect_dir=off,metacopy=off``, which are always present so the upper dir is
    a plain diff (whiteouts are 0:0 char devices; opaque dirs carry
    ``trusted.overlay.opaque=y``).

    Special case, as containerd: one lower and no upper (the kernel refuses a lower-only
    overlay with fewer than two lowers) gives ``Mount("bind", lower, ("ro", "rbind"))``.
    Pure function: no I/O, the directories are checked when mounted.
    Raises InvalidArgument for an empty or too long stack or a lone upper/work.
    """
    if isinstance(lowers, str):
        raise InvalidArgument("overlay lowers must be a sequence of paths, not one string")
    lowers = [os.path.abspath(p) for p in lowers]
    if not lowers:
        raise InvalidArgument("overlay needs at least one lower dir")
    if len(lowers) > OVL_MAX_STACK:
        raise InvalidArgument(f"overlay has {len(lowers)} lower dirs; the kernel allows at most "
                              f"{OVL_MAX_STACK} (OVL_MAX_STACK): squash the image's layers")
    if (upper is None) != (work is None):
        raise InvalidArgument(f"overlay needs upper and work dirs together "
                              f"(got upper={upper!r}, work={work!r})")
    for p in lowers + [x for x in (upper, work) if x is not None]:
        if "\0" in p:
            raise InvalidArgument(f"overlay path contains NUL: {p!r}")
    if upper is None and len(lowers) == 1:
        return Mount("bind", lowers[0], ("ro", "rbind"))
    opts = [*DIFF_OPTIONS, "lowerdir=" + ":".join(_ovl_escape(p) for p in lowers)]
    if upper is not None:
        assert work is not None  # checked above: both or neither
        opts += ["upperdir=" + _ovl_escape(os.path.abspath(upper)),
                 "workdir=" + _ovl_escape(os.path.abspath(work))]
    opts += list(options)
    if readonly:
        opts.append("ro")
    return Mount("overlay", "overlay", tuple(opts))


# ---------------------------------------------------------------------------------------------
# Syscalls (ctypes, loaded lazily)

_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_SYNCHRONOUS = 1, 2, 4, 8, 16
_MS_REMOUNT, _MS_MANDLOCK, _MS_DIRSYNC, _MS_NOSYMFOLLOW = 32, 64, 128, 256
_MS_NOATIME, _MS_NODIRATIME, _MS_BIND, _MS_REC = 1024, 2048, 4096, 16384
_MS_UNBINDABLE, _MS_PRIVATE, _MS_SLAVE, _MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
_MS_RELATIME, _MS_STRICTATIME, _MS_LAZYTIME = 1 << 21, 1 << 24, 1 << 25

# option -> (clear, set) for classic mount(2) flags.
_CLASSIC_FLAGS: dict[str, tuple[int, int]] = {
    "ro": (0, _MS_RDONLY), "rw": (_MS_RDONLY, 0),
    "nosuid": (0, _MS_NOSUID), "suid": (_MS_NOSUID, 0),
    "nodev": (0, _MS_NODEV), "dev": (_MS_NODEV, 0),
    "noexec": (0, _MS_NOEXEC), "exec": (_MS_NOEXEC, 0),
    "sync": (0, _MS_SYNCHRONOUS), "async": (_MS_SYNCHRONOUS, 0),
    "dirsync": (0, _MS_DIRSYNC), "mand": (0, _MS_MANDLOCK), "nomand": (_MS_MANDLOCK, 0),
    "noatime": (0, _MS_NOATIME), "atime": (_MS_NOATIME, 0),
    "nodiratime": (0, _MS_NODIRATIME), "diratime": (_MS_NODIRATIME, 0),
    "relatime": (0, _MS_RELATIME), "norelatime": (_MS_RELATIME, 0),
    "strictatime": (0, _MS_STRICTATIME), "nostrictatime": (_MS_STRICTATIME, 0),
    "lazytime": (0, _MS_LAZYTIME), "nolazytime": (_MS_LAZYTIME, 0),
    "nosymfollow": (0, _MS_NOSYMFOLLOW), "symfollow": (_MS_NOSYMFOLLOW, 0),
    "bind": (0, _MS_BIND), "rbind": (0, _MS_BIND | _MS_REC),
    "defaults": (0, 0),
}
_PROPAGATION: dict[str, int] = {
    "private": _MS_PRIVATE, "rprivate": _MS_PRIVATE | _MS_REC,
    "shared": _MS_SHARED, "rshared": _MS_SHARED | _MS_REC,
    "slave": _MS_SLAVE, "rslave": _MS_SLAVE | _MS_REC,
    "unbindable": _MS_UNBINDABLE, "runbindable": _MS_UNBINDABLE | _MS_REC,
}
# Flags a bind mount ignores on creation and needs a MS_REMOUNT|MS_BIND to apply.
_BIND_REMOUNT_MASK = (_MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC | _MS_NOATIME
                      | _MS_NODIRATIME | _MS_RELATIME | _MS_STRICTATIME | _MS_NOSYMFOLLOW)

# New mount API (include/uapi/linux/mount.h).
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_FLAG, _FSCONFIG_SET_STRING, _FSCONFIG_SET_FD, _FSCONFIG_CMD_CREATE = 0, 1, 5, 6
_FSMOUNT_CLOEXEC = 1
_MOVE_MOUNT_F_EMPTY_PATH = 4
_AT_FDCWD = -100
_MOUNT_ATTR: dict[str, int] = {
    "ro": 0x1, "nosuid": 0x2, "nodev": 0x4, "noexec": 0x8,
    "relatime": 0x0, "noatime": 0x10, "strictatime": 0x20, "nodiratime": 0x80,
    "nosymfollow": 0x200000,
}
_MOUNT_ATTR_NOOP = frozenset({"rw", "suid", "dev", "exec", "atime", "diratime", "defaults"})

_MNT_DETACH, _UMOUNT_NOFOLLOW = 2, 8
_CLONE_FS = 0x200
_STATX_ATTR_MOUNT_ROOT = 0x2000
_AT_SYMLINK_NOFOLLOW, _AT_NO_AUTOMOUNT = 0x100, 0x800

# move_mount, fsopen, fsconfig, fsmount: the unified numbers every architecture except alpha
# uses since Linux 5.2 (x86_64: asm/unistd_64.h; arm64 and riscv: asm-generic/unistd.h).
_NEW_API_SYSCALLS = {"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
                     "mount_setattr": 442}
_NEW_API_MACHINES = frozenset({"x86_64", "amd64", "aarch64", "arm64", "riscv64", "ppc64le",
                               "ppc64", "s390x", "loongarch64", "i686", "i386"})

_lib = None


def _libc():
    global _lib
    if _lib is None:
        import ctypes

        lib = ctypes.CDLL(None, use_errno=True)
        lib.syscall.restype = ctypes.c_long
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                              ctypes.c_ulong, ctypes.c_char_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.unshare.argtypes = [ctypes.c_int]
        _lib = lib
    return _lib


def _last_oserror() -> OSError:
    import ctypes

    e = ctypes.get_errno()
    return OSError(e, os.strerror(e))


def _syscall(name: str, *args) -> int:
    """Call a new-mount-API syscall; ints are passed as C longs, bytes/None as char*."""
    import ctypes

    conv = [ctypes.c_long(a) if isinstance(a, int) else ctypes.c_char_p(a) for a in args]
    r = _libc().syscall(ctypes.c_long(_NEW_API_SYSCALLS[name]), *conv)
    if r < 0:
        raise _last_oserror()
    return r


def _fail(what: str, target: str, call: str, exc: OSError, log: str = "") -> Exception:
    msg = f"{what} {target} failed: {call}: {exc.strerror or exc}"
    if log:
        msg += f" (kernel: {log})"
    if exc.errno == _errno.EBUSY:
        msg += "; something still uses it (a process or an open mount fd)"
    cls = InvalidArgument if exc.errno in _BAD_INPUT else Unavailable
    return cls(msg)


def _enc(s: str) -> bytes:
    return os.fsencode(s)


# ---------------------------------------------------------------------------------------------
# Classic mount(2)


def _run_in_private_cwd(cwd: str, fn: Callable[[], None]) -> None:
    """Run ``fn`` in a short-lived thread whose cwd is ``cwd``, private to that thread.

    The thread calls ``unshare(CLONE_FS)`` before ``chdir``, so the cwd of every other thread
    of the process is untouched (unlike a plain ``os.chdir``). Exceptions propagate.
    """
    import threading

    box: list[BaseException] = []

    def run() -> None:
        try:
            if _libc().unshare(_CLONE_FS) != 0:
                raise _last_oserror()
            os.chdir(cwd)
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box.append(e)

    t = threading.Thread(target=run, name="lamina-mount", daemon=True)
    t.start()
    t.join()
    if box:
        raise box[0]


def _mount2(source: str | None, target: str, fstype: str | None, flags: int,
            data: str | None, *, cwd: str | None = None) -> None:
    """Call mount(2) once; relative paths in ``source``/``data`` resolve against ``cwd``.

    ``target`` must be absolute when ``cwd`` is given. Raises OSError; no cleanup needed.
    """
    bdata = _enc(data) if data else None
    if bdata is not None and len(bdata) + 1 > _PAGE_SIZE:
        raise OSError(_errno.E2BIG, f"option string is {len(bdata)} bytes; mount(2) takes at "
                      f"most {_PAGE_SIZE - 1}")

    def call() -> None:
        lib = _libc()
        if lib.mount(_enc(source) if source is not None else None, _enc(target),
                     _enc(fstype) if fstype is not None else None, flags, bdata) != 0:
            raise _last_oserror()

    if cwd is None:
        call()
    else:
        _run_in_private_cwd(cwd, call)


def _classic_options(options: Sequence[str]) -> tuple[int, int, list[str]]:
    """Split options into (mount flags, propagation flags, data words)."""
    flags, prop, data = 0, 0, []
    for opt in options:
        if opt in _CLASSIC_FLAGS:
            clear, set_ = _CLASSIC_FLAGS[opt]
            flags = (flags & ~clear) | set_
        elif opt in _PROPAGATION:
            prop |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, prop, data


def _mount_classic(m: Mount, target: str) -> None:
    """Mount a non-overlay :class:`Mount` with mount(2) (bind remount and propagation too)."""
    flags, prop, data = _classic_options(m.options)
    if m.type == "bind":
        flags |= _MS_BIND
    fstype = None if flags & _MS_BIND else m.type
    what = f"{m.type} mount of {m.source} on"
    try:
        _mount2(m.source, target, fstype, flags, ",".join(data) or None)
    except OSError as e:
        raise _fail(what, target, f"mount {m.source}", e) from e
    try:
        if flags & _MS_BIND and flags & _BIND_REMOUNT_MASK:
            # A bind mount ignores ro/nosuid/...; apply them to the new mount (top level only).
            try:
                _mount2(None, target, None,
                        _MS_REMOUNT | _MS_BIND | (flags & _BIND_REMOUNT_MASK), None)
            except OSError as e:
                raise _fail(what, target, "mount MS_REMOUNT|MS_BIND", e) from e
        if prop:
            try:
                _mount2(None, target, None, prop, None)
            except OSError as e:
                raise _fail(what, target, "mount (propagation)", e) from e
    except BaseException:
        _umount_quietly(target)
        raise


# ---------------------------------------------------------------------------------------------
# Detached mounts: made from descriptors in the caller's namespace, attached in another one

_OPEN_TREE_CLONE, _AT_EMPTY_PATH, _AT_RECURSIVE = 1, 0x1000, 0x8000
_MOUNT_ATTR_RDONLY = 0x1


def detached_bind(fd: int, *, readonly: bool) -> int:
    """A detached recursive bind of what the descriptor ``fd`` (``O_PATH`` is enough) names:
    ``open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)``, made read-only (the whole tree) when
    asked. Returns the mount's descriptor (CLOEXEC; the caller closes it); attach it with
    ``Mount(DETACHED, f"/proc/self/fd/{n}")``, also from a child in a new mount namespace.
    Because the source is a descriptor the caller resolved, no path is looked up again:
    nothing can swap a symlink in between. Raises Unavailable/InvalidArgument."""
    import ctypes

    try:
        mfd = _syscall("open_tree", fd, b"", _OPEN_TREE_CLONE | _AT_EMPTY_PATH | _AT_RECURSIVE
                       | os.O_CLOEXEC)
    except OSError as e:
        raise _fail("detached bind of", f"fd {fd}", "open_tree", e) from e
    if readonly:
        attr = (ctypes.c_uint64 * 4)(_MOUNT_ATTR_RDONLY, 0, 0, 0)
        r = _libc().syscall(ctypes.c_long(_NEW_API_SYSCALLS["mount_setattr"]), ctypes.c_int(mfd),
                            ctypes.c_char_p(b""), ctypes.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE),
                            ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))
        if r < 0:
            err = _last_oserror()
            os.close(mfd)
            raise _fail("detached bind of", f"fd {fd}", "mount_setattr MOUNT_ATTR_RDONLY", err)
    return mfd


def detached_overlay(lower_fd: int, *, upper: str, work: str) -> int:
    """A detached writable overlay whose only lower layer is the directory ``lower_fd``
    (passed as a descriptor: ``FSCONFIG_SET_FD``, Linux >= 6.13; older kernels get the magic
    link of the same descriptor) and whose ``upper``/``work`` dirs take the writes. Used
    where writes must be thrown away (BuildKit's ``RUN --mount=type=bind,rw``). Returns the
    mount's descriptor, as :func:`detached_bind`."""
    what = "overlay mount on"
    target = f"lower fd {lower_fd}"
    try:
        fs = _syscall("fsopen", b"overlay", _FSOPEN_CLOEXEC)
    except OSError as e:
        raise _fail(what, target, "fsopen overlay", e) from e
    try:
        def config(cmd: int, key: str | None, value: str | None = None, aux: int = 0) -> None:
            try:
                _syscall("fsconfig", fs, cmd, key and key.encode(),
                         None if value is None else _enc(value), aux)
            except OSError as e:
                raise _fail(what, target, f"fsconfig {key}", e, _fs_log(fs)) from e

        try:
            _syscall("fsconfig", fs, _FSCONFIG_SET_FD, b"lowerdir+", None, lower_fd)
        except OSError as e:
            if e.errno != _errno.EINVAL:
                raise _fail(what, target, "fsconfig lowerdir+ fd", e, _fs_log(fs)) from e
            _fs_log(fs)
            config(_FSCONFIG_SET_STRING, "lowerdir+", f"/proc/self/fd/{lower_fd}")
        config(_FSCONFIG_SET_STRING, "upperdir", os.path.abspath(upper))
        config(_FSCONFIG_SET_STRING, "workdir", os.path.abspath(work))
        for opt in DIFF_OPTIONS:
            key, _, value = opt.partition("=")
            config(_FSCONFIG_SET_STRING, key, value)
        config(_FSCONFIG_CMD_CREATE, None)
        try:
            return _syscall("fsmount", fs, _FSMOUNT_CLOEXEC, 0)
        except OSError as e:
            raise _fail(what, target, "fsmount", e, _fs_log(fs)) from e
    finally:
        os.close(fs)


def _attach(m: Mount, target: str) -> None:
    prefix = "/proc/self/fd/"
    if not m.source.startswith(prefix) or not m.source[len(prefix):].isdigit():
        raise InvalidArgument(f"detached mount source must be {prefix}<fd>, not {m.source!r}")
    fd = int(m.source[len(prefix):])
    try:
        _syscall("move_mount", fd, b"", _AT_FDCWD, _enc(target), _MOVE_MOUNT_F_EMPTY_PATH)
    except OSError as e:
        raise _fail("attach of a detached mount on", target, "move_mount", e) from e


# ---------------------------------------------------------------------------------------------
# Overlay


@value
class _OverlaySpec:
    lowers: tuple[str, ...]
    upper: str | None
    work: str | None
    other: tuple[str, ...]  # every other option, in order


def _parse_overlay(m: Mount) -> _OverlaySpec:
    lowers: list[str] = []
    upper = work = None
    other: list[str] = []
    for opt in m.options:
        key, eq, value = opt.partition("=")
        if key == "lowerdir" and eq:
            lowers.extend(_ovl_split(value))
        elif key == "lowerdir+" and eq:
            lowers.append(_ovl_unescape(value))
        elif key == "upperdir" and eq:
            upper = _ovl_unescape(value)
        elif key == "workdir" and eq:
            work = _ovl_unescape(value)
        else:
            other.append(opt)
    if any(p == "" for p in lowers):
        raise InvalidArgument("overlay lowerdir has an empty path (data-only layers '::' are "
                              "not supported)")
    if not lowers:
        raise InvalidArgument("overlay mount has no lowerdir= option")
    if len(lowers) > OVL_MAX_STACK:
        raise InvalidArgument(f"overlay has {len(lowers)} lower dirs; the kernel allows at most "
                              f"{OVL_MAX_STACK} (OVL_MAX_STACK)")
    absp = os.path.abspath
    return _OverlaySpec(tuple(absp(p) for p in lowers), upper and absp(upper),
                        work and absp(work), tuple(other))


_new_api: bool | None = None


def _new_api_supported() -> bool:
    """Whether fsopen/fsconfig with overlay's ``lowerdir+`` key work here (probed once)."""
    global _new_api
    if _new_api is None:
        ok = os.uname().machine.lower() in _NEW_API_MACHINES
        if ok:
            try:
                fd = _syscall("fsopen", b"overlay", _FSOPEN_CLOEXEC)
            except OSError:
                ok = False  # ENOSYS (old kernel/seccomp), ENODEV (no overlay) ...
            else:
                try:
                    _syscall("fsconfig", fd, _FSCONFIG_SET_STRING, b"lowerdir+", b"/", 0)
                except OSError:
                    ok = False  # EINVAL: kernel < 6.8 does not know "lowerdir+"
                finally:
                    os.close(fd)
        _new_api = ok
    return _new_api


def _fs_log(fd: int) -> str:
    """Drain the messages the kernel logged into an fs context ("e overlay: ...")."""
    lines = []
    for _ in range(16):
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        lines.append(os.fsdecode(chunk).strip().split(" ", 1)[-1])
    return "; ".join(lines)


def _mount_overlay_new_api(spec: _OverlaySpec, source: str, target: str) -> None:
    """Mount with fsopen/fsconfig("lowerdir+")/fsmount/move_mount. Raises LaminaError."""
    what = "overlay mount on"
    try:
        fs = _syscall("fsopen", b"overlay", _FSOPEN_CLOEXEC)
    except OSError as e:
        raise _fail(what, target, "fsopen overlay", e) from e
    try:
        def config(cmd: int, key: str | None, value: str | None = None, aux: int = 0,
                   label: str | None = None) -> None:
            try:
                _syscall("fsconfig", fs, cmd, key and key.encode(),
                         None if value is None else _enc(value), aux)
            except OSError as e:
                call = label or f"fsconfig {key}" + (f" {value}" if value is not None else "")
                raise _fail(what, target, call, e, _fs_log(fs)) from e

        def config_path(key: str, path: str) -> None:
            if len(_enc(path)) <= _FSCONFIG_MAX_STRING:
                config(_FSCONFIG_SET_STRING, key, path)
                return
            # Too long for a string value: pass an O_PATH fd (overlay accepts fds since 6.13).
            try:
                dfd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise _fail(what, target, f"open {key} {path}", e) from e
            try:
                try:
                    _syscall("fsconfig", fs, _FSCONFIG_SET_FD, key.encode(), None, dfd)
                except OSError as e:
                    if e.errno != _errno.EINVAL:
                        raise _fail(what, target, f"fsconfig {key} fd of {path}", e,
                                    _fs_log(fs)) from e
                    _fs_log(fs)  # drop the "bad value" message
                    # Linux 6.8-6.12: no fds for layers; the magic link is short and resolves
                    # to the same directory (mountinfo then shows the /proc path).
                    config(_FSCONFIG_SET_STRING, key, f"/proc/self/fd/{dfd}",
                           label=f"fsconfig {key} /proc/self/fd/{dfd} ({path})")
            finally:
                os.close(dfd)

        attrs = 0
        if source:
            config(_FSCONFIG_SET_STRING, "source", source)
        for p in spec.lowers:
            config_path("lowerdir+", p)
        if spec.upper is not None:
            config_path("upperdir", spec.upper)
        if spec.work is not None:
            config_path("workdir", spec.work)
        for opt in spec.other:
            if opt in _MOUNT_ATTR:
                attrs |= _MOUNT_ATTR[opt]
                if opt == "ro":
                    config(_FSCONFIG_SET_FLAG, "ro")  # the superblock too, not just the mount
            elif opt in _MOUNT_ATTR_NOOP:
                continue
            elif opt in _PROPAGATION:
                raise InvalidArgument(f"overlay mount on {target}: propagation option {opt!r} "
                                      "is not supported here; mount then change propagation")
            else:
                key, eq, value = opt.partition("=")
                config(_FSCONFIG_SET_STRING if eq else _FSCONFIG_SET_FLAG, key,
                       value if eq else None)
        config(_FSCONFIG_CMD_CREATE, None, label="fsconfig FSCONFIG_CMD_CREATE")
        try:
            mfd = _syscall("fsmount", fs, _FSMOUNT_CLOEXEC, attrs)
        except OSError as e:
            raise _fail(what, target, "fsmount", e, _fs_log(fs)) from e
    finally:
        os.close(fs)
    try:
        _syscall("move_mount", mfd, b"", _AT_FDCWD, _enc(target), _MOVE_MOUNT_F_EMPTY_PATH)
    except OSError as e:
        raise _fail(what, target, f"move_mount to {target}", e) from e
    finally:
        os.close(mfd)  # an open mount fd would keep the mount busy


def _mount_overlay_classic(spec: _OverlaySpec, source: str, target: str) -> None:
    """Mount with classic mount(2), lower dirs relative to their common parent.

    Relative paths keep ``lowerdir=`` short; the mount runs in a helper thread whose private
    cwd is that parent (see :func:`_run_in_private_cwd`). Raises Unavailable when the option
    string still exceeds a page, naming the size and the way out.
    """
    parent = os.path.commonpath(spec.lowers)
    if not os.path.isdir(parent):  # e.g. a single lower that is itself missing
        parent = os.path.dirname(parent)
    rel = [os.path.relpath(p, parent) for p in spec.lowers]
    flags, prop, data = _classic_options(spec.other)
    if prop:
        raise InvalidArgument(f"overlay mount on {target}: propagation options are not "
                              "supported here; mount then change propagation")
    head = ["lowerdir=" + ":".join(_ovl_escape(p) for p in rel)]
    if spec.upper is not None:
        head.append("upperdir=" + _ovl_escape(spec.upper))
    if spec.work is not None:
        head.append("workdir=" + _ovl_escape(spec.work))
    words = head + data
    opt = ",".join(words)
    if len(_enc(opt)) + 1 > _PAGE_SIZE:
        raise Unavailable(
            f"overlay mount on {target} failed: the option string is {len(_enc(opt))} bytes "
            f"even with lower dirs relative to {parent}, over mount(2)'s one-page limit "
            f"({_PAGE_SIZE} bytes), and this kernel lacks the new mount API key 'lowerdir+' "
            "(Linux >= 6.8): use fewer layers or shorter paths")
    try:
        _mount2(source or "overlay", target, "overlay", flags, opt, cwd=parent)
    except OSError as e:
        if e.errno == _errno.EINVAL:
            # Old kernels lack some of index/redirect_dir/metacopy; a feature the kernel
            # lacks is off anyway, so drop the options it has no module parameter for.
            known = {k for k in ("index", "redirect_dir", "metacopy")
                     if os.path.exists(f"/sys/module/overlay/parameters/{k}")}
            if known:
                kept = [w for w in data if w.partition("=")[0] not in
                        {"index", "redirect_dir", "metacopy"} - known]
                if kept != data:
                    try:
                        _mount2(source or "overlay", target, "overlay", flags,
                                ",".join(head + kept), cwd=parent)
                        return
                    except OSError as e2:
                        e = e2
        call = f"mount(2) lowerdir relative to {parent} ({len(rel)} layers)"
        if e.errno in (_errno.ENOENT, _errno.ENOTDIR):
            for p in [*spec.lowers, spec.upper, spec.work, target]:
                if p is not None and not os.path.isdir(p):
                    call += f", missing directory {p}"
                    break
        raise _fail("overlay mount on", target, call, e) from e


def _mount_overlay(m: Mount, target: str) -> None:
    spec = _parse_overlay(m)
    if _new_api_supported():
        _mount_overlay_new_api(spec, m.source, target)
    else:
        _mount_overlay_classic(spec, m.source, target)


# ---------------------------------------------------------------------------------------------
# Public operations


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Mount each of ``mounts`` on ``target``, in order (later ones stack on earlier ones).

    All or nothing: if one fails, the ones this call already mounted are unmounted (lazily)
    before the error is raised. ``target`` must be an existing directory (or a file, for a
    bind of a file); it is made absolute first. Overlays use the new mount API when the kernel
    has it (no limit on the total length of the lower dir paths), else classic mount(2) with
    short relative paths. Not idempotent: mounting twice stacks two mounts.
    Raises InvalidArgument (bad description, missing dir) or Unavailable (kernel refused).
    """
    if isinstance(mounts, Mount):
        mounts = [mounts]
    target = os.path.abspath(target)
    done = 0
    try:
        for m in mounts:
            if m.type == "overlay":
                _mount_overlay(m, target)
            elif m.type == DETACHED:
                _attach(m, target)
            else:
                _mount_classic(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            _umount_quietly(target)
        raise


def _umount_quietly(target: str) -> None:
    try:
        if _libc().umount2(_enc(target), _MNT_DETACH | _UMOUNT_NOFOLLOW) != 0:
            pass
    except Exception:  # noqa: BLE001 - best-effort cleanup on an error path
        pass


def unmount(target: str, *, detach: bool = False, ignore_not_mounted: bool = False) -> None:
    """Unmount the top-most mount on ``target`` (umount2 with ``UMOUNT_NOFOLLOW``).

    ``detach=True`` adds ``MNT_DETACH`` (lazy: gone from the tree now, freed when unused).
    With ``ignore_not_mounted=True``, a target that is not a mount point (EINVAL) or does not
    exist (ENOENT) is a no-op, making the call idempotent; otherwise those raise
    InvalidArgument. EBUSY and others raise Unavailable.
    """
    target = os.path.abspath(target)
    flags = _UMOUNT_NOFOLLOW | (_MNT_DETACH if detach else 0)
    if _libc().umount2(_enc(target), flags) == 0:
        return
    e = _last_oserror()
    if ignore_not_mounted and e.errno in (_errno.EINVAL, _errno.ENOENT):
        return
    call = "umount2" + (" MNT_DETACH" if detach else "")
    if e.errno == _errno.EINVAL:
        e = OSError(e.errno, f"{e.strerror} (not a mount point)")
    raise _fail("unmount of", target, call, e) from e


def unmount_all(target: str, *, detach: bool = False) -> None:
    """Unmount every mount stacked on ``target`` (the inverse of :func:`mount_all`).

    Idempotent: a target that is not mounted, or missing, is fine. Raises Unavailable if a
    mount is busy (pass ``detach=True`` to unmount lazily).
    """
    for _ in range(1000):
        if not is_mountpoint(target):
            return
        unmount(target, detach=detach, ignore_not_mounted=True)
    raise Unavailable(f"unmount of {target} failed: still mounted after 1000 unmounts")


def is_mountpoint(path: str) -> bool:
    """True if ``path`` (not followed if a symlink) is the root of a mount.

    Uses statx's ``STATX_ATTR_MOUNT_ROOT`` (Linux >= 5.8), which, unlike comparing st_dev
    with the parent, also sees bind mounts within one filesystem; falls back to
    /proc/self/mountinfo. A missing path is not a mount point.
    """
    path = os.path.abspath(path)
    try:
        return _statx_mount_root(path)
    except OSError as e:
        if e.errno in (_errno.ENOENT, _errno.ENOTDIR):
            return False
    except (AttributeError, NotImplementedError):
        pass
    # Fallback: compare with the mount points listed in mountinfo.
    real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    return real in _mount_points()


def _mount_points() -> list[str]:
    """Every mount point in /proc/self/mountinfo, octal escapes decoded, in mount order."""
    out = []
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                point = line.split(b" ", 5)[4]
                point = point.replace(b"\\040", b" ").replace(b"\\011", b"\t") \
                    .replace(b"\\012", b"\n").replace(b"\\134", b"\\")
                out.append(os.fsdecode(point))
    except OSError:
        pass
    return out


def mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path`` (realpath), in mount order (unmount in reverse)."""
    real = os.path.realpath(path)
    prefix = real.rstrip("/") + "/"
    return [p for p in _mount_points() if p == real or p.startswith(prefix)]


def _statx_mount_root(path: str) -> bool:
    import ctypes

    lib = _libc()
    fn = lib.statx  # AttributeError if glibc < 2.28
    buf = ctypes.create_string_buffer(256)
    if fn(ctypes.c_int(_AT_FDCWD), _enc(path), ctypes.c_int(_AT_SYMLINK_NOFOLLOW
                                                             | _AT_NO_AUTOMOUNT),
          ctypes.c_uint(0), buf) != 0:
        raise _last_oserror()
    attributes = int.from_bytes(buf.raw[8:16], "little" if _little() else "big")
    attributes_mask = int.from_bytes(buf.raw[56:64], "little" if _little() else "big")
    if not attributes_mask & _STATX_ATTR_MOUNT_ROOT:
        raise NotImplementedError("statx lacks STATX_ATTR_MOUNT_ROOT")
    return bool(attributes & _STATX_ATTR_MOUNT_ROOT)


def _little() -> bool:
    import sys

    return sys.byteorder == "little"


def make_private(path: str = "/", *, recursive: bool = True) -> None:
    """Set mount propagation of ``path`` to private (rprivate with ``recursive``), so mounts
    made afterwards in this mount namespace do not propagate to the host."""
    flags = _MS_PRIVATE | (_MS_REC if recursive else 0)
    try:
        _mount2(None, os.path.abspath(path), None, flags, None)
    except OSError as e:
        raise _fail("propagation change", path, "mount MS_PRIVATE", e) from None
