"""What ``run --rm`` skips to start and end fast, and that skipping it changes nothing else:

- the ``lamina`` command ends a ``run`` with ``os._exit`` once nothing is left for the
  interpreter's teardown (lamina.cli.main.entry): the exit code, the output and the store
  are what a plain exit gives, and an ``atexit`` callback or a live thread keeps the plain exit;
- a ``--rm`` container's overlay is volatile (no sync of the host filesystem when it is
  unmounted, as Podman does for ``--rm``); the marker such a mount leaves does not stop a later
  mount of the same upper dir in the same boot, and after a reboot it is refused with a
  one-line error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO
from containers_util import bb, until  # noqa: F401  (fixture)

# A module-level object whose finalizer writes a line: it runs only in the interpreter's
# teardown, so its line on stderr tells whether the teardown happened.
_PRELUDE = """\
import sys
class _Teardown:
    def __del__(self):
        sys.stderr.write("TEARDOWN\\n")
        sys.stderr.flush()
_t = _Teardown()
"""


def _entry(bb, args, prelude: str = "") -> subprocess.CompletedProcess:
    """``lamina ARGS`` through lamina.cli.main.entry (what the console script and ``python -m
    lamina`` run), after ``prelude`` (code run first, in the same interpreter)."""
    code = (_PRELUDE + prelude + "sys.argv = ['lamina', *sys.argv[1:]]\n"
            "from lamina.cli.main import entry\nentry()\n")
    return subprocess.run([sys.executable, "-c", code, *args], env=bb.env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_run_ends_without_teardown_and_keeps_code_output_and_store(bb):
    p = _entry(bb, ["run", "--rm", "--network", "none", "busybox", "sh", "-c",
                    "seq 1 20000; echo to-stderr >&2; exit 3"])
    assert p.returncode == 3
    assert p.stdout.splitlines() == [str(i) for i in range(1, 20001)]  # all of it, flushed
    assert p.stderr == "to-stderr\n"  # no TEARDOWN: the process ended with os._exit
    # the database was closed first: SQLite checkpointed and removed its WAL, as at a plain exit
    assert not os.path.exists(os.path.join(bb.root, "lamina.db-wal"))
    assert bb("ps", "-aq").out == ""
    assert os.listdir(os.path.join(bb.root, "containers")) == []


def test_run_error_ends_the_same_way(bb):
    p = _entry(bb, ["run", "--rm", "--network", "none", "--memory", "bad", "busybox", "true"])
    assert p.returncode == 125
    assert p.stderr.startswith("Error: ") and "TEARDOWN" not in p.stderr


def test_atexit_callback_or_live_thread_keeps_the_plain_exit(bb):
    p = _entry(bb, ["run", "--rm", "--network", "none", "busybox", "true"],
               prelude="import atexit\natexit.register(lambda: sys.stderr.write('ATEXIT\\n'))\n")
    assert p.returncode == 0
    assert p.stderr.splitlines() == ["ATEXIT", "TEARDOWN"]
    p = _entry(bb, ["run", "--rm", "--network", "none", "busybox", "sh", "-c", "exit 4"],
               prelude="import threading\nthreading.Thread(target=threading.Event().wait, daemon=True).start()\n")
    assert p.returncode == 4
    assert p.stderr == "TEARDOWN\n"


def test_other_verbs_keep_the_plain_exit(bb):
    p = _entry(bb, ["images", "-q"])
    assert p.returncode == 0 and len(p.stdout.split()) == 1
    assert p.stderr == "TEARDOWN\n"


def _root_mount(bb, *args: str) -> str:
    out = bb("run", *args, "--network", "none", "busybox", "cat", "/proc/self/mountinfo").out
    (line,) = [l for l in out.splitlines() if l.split()[4] == "/"]
    return line


def test_rm_container_overlay_is_volatile_and_others_are_not(bb):
    assert "volatile" in _root_mount(bb, "--rm").split(" - ")[1]
    line = _root_mount(bb, "--name", "kept")
    assert "overlay" in line and "volatile" not in line
    bb("rm", "kept")


def test_volatile_marker_does_not_block_a_later_mount(bb):
    """A killed ``run --rm`` leaves its container (Exited 255) and the overlay's volatile
    marker; ``cp`` from it and ``start`` of it mount the same upper dir again."""
    p = bb.popen("run", "--rm", "--name", "v", "--network", "none", "busybox", "sh", "-c",
                 "echo data > /kept; sleep 300", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: bb("inspect", "-f", "{{.State.Running}}", "v", check=False).out.strip() == "true",
              what="container v running")
        cid = bb("inspect", "-f", "{{.Id}}", "v").out.strip()
        marker = os.path.join(bb.root, "containers", cid, "work", "work", "incompat", "volatile")
        until(lambda: bb("exec", "v", "cat", "/kept", check=False).out == "data\n", what="/kept written")
        assert os.path.isdir(marker)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    until(lambda: bb("inspect", "-f", "{{.State.Running}}", "v").out.strip() == "false", what="v exited")
    assert os.path.isdir(marker)
    assert bb("cp", "v:/kept", "-").rc == 0  # mounts the upper dir (not volatile): marker removed
    assert not os.path.exists(marker)
    bb("start", "v")  # mounts it volatile again
    until(lambda: bb("exec", "v", "cat", "/kept", check=False).out == "data\n", what="v restarted")
    assert os.path.isdir(marker)
    bb("rm", "-f", "v")
    assert bb("ps", "-aq").out == ""


@pytest.mark.parametrize("same_boot", [True, False])
def test_volatile_marker_from_another_boot_is_refused(bb, same_boot):
    """The kernel's rule: only a crash makes a volatile upper untrustworthy. The boot that
    made the marker is recorded beside the work dir; another boot's marker is an error."""
    cid = bb("create", "--rm", "--network", "none", "busybox", "cat", "/etc/hostname").out.strip()
    work = os.path.join(bb.root, "containers", cid, "work")
    marker = os.path.join(work, "work", "incompat", "volatile")
    os.makedirs(marker)
    with open(os.path.join(marker, "dirty"), "w"):
        pass
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    with open(work + ".boot", "w") as f:
        f.write(boot if same_boot else "00000000-0000-0000-0000-000000000000")
    r = bb("start", "-a", cid, check=False)
    if same_boot:
        assert r.rc == 0 and r.out == cid[:12] + "\n"
        assert bb("ps", "-aq").out == ""  # --rm: gone
    else:
        assert r.rc == 125
        assert r.err.count("\n") == 1 and "mounted volatile (--rm) before the host restarted" in r.err
        bb("rm", "-f", cid, check=False)  # a --rm container whose start failed may be gone already
        assert bb("ps", "-aq").out == ""


def test_run_rm_imports_no_archive_or_random_modules(bb):
    """shutil (with bz2, lzma, fnmatch) and random are imported by no step of ``run --rm``
    of an unpacked image without volumes (start-up cost, measured in bench/). Modules the
    interpreter's start-up (site) imported are not counted."""
    bb("run", "--rm", "--network", "none", "busybox", "true")  # the first run unpacks the image
    code = ("import sys\nbefore = set(sys.modules)\nsys.argv = ['lamina', *sys.argv[1:]]\n"
            "from lamina.cli.main import main\ncode = main()\n"
            "sys.stderr.write('MODULES ' + ' '.join(sorted(set(sys.modules) - before)) + '\\n')\n")
    p = subprocess.run([sys.executable, "-c", code, "run", "--rm", "--network", "none", "busybox", "true"],
                       env=bb.env, cwd=REPO, capture_output=True, text=True, timeout=120)
    mods = set(p.stderr.rsplit("MODULES ", 1)[1].split())
    assert "lamina.runtime.launcher" in mods  # it did run a container
    assert not {"shutil", "random", "bz2", "lzma", "fnmatch"} & mods
    assert os.listdir(os.path.join(bb.root, "containers")) == []


def test_remove_tree_never_follows_a_symlink(tmp_path):
    from lamina.safepath import remove_tree
    outside = tmp_path / "outside"
    (outside / "keep").mkdir(parents=True)
    (outside / "keep" / "f").write_text("x")
    t = tmp_path / "t"
    (t / "a" / "b").mkdir(parents=True)
    (t / "a" / "b" / "file").write_text("y")
    (t / "a" / "link").symlink_to(outside)
    (t / "a" / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(t / "fifo")
    (tmp_path / "top-link").symlink_to(outside)
    remove_tree(str(tmp_path / "top-link"))  # a symlink to a directory is not removed through
    assert (tmp_path / "top-link").is_symlink() and (outside / "keep" / "f").read_text() == "x"
    remove_tree(str(t))
    assert not os.path.lexists(t)
    assert (outside / "keep" / "f").read_text() == "x"
    remove_tree(str(tmp_path / "missing"))  # nothing there: nothing to do
    d = tmp_path / "ro"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("z")
    (d / "g").write_text("w")
    os.chmod(d / "sub", 0o500)  # root still may: everything goes
    remove_tree(str(d))
    assert not os.path.lexists(d)


def test_run_starts_a_container_without_a_garbage_collection(bb):
    """``run`` raises the young-generation threshold before importing its path: no cyclic
    collection happens while it imports, creates, starts and removes the container (the
    default threshold collected ~17 times)."""
    bb("run", "--rm", "--network", "none", "busybox", "true")  # the first run unpacks the image
    prelude = ("import gc\nn = [0]\n"
               "def _count(phase, info):\n"
               "    if phase == 'start' and gc.get_threshold()[0] >= 50000:  # once run raised it\n"
               "        n[0] += 1\n"
               "gc.callbacks.append(_count)\n"
               "import lamina.safepath\n_rt = lamina.safepath.remove_tree\n"
               "def _report(path):\n"
               "    sys.stderr.write(f'GC {n[0]} {gc.get_threshold()[0]}\\n')\n"
               "    _rt(path)\n"
               "lamina.safepath.remove_tree = _report\n")
    p = _entry(bb, ["run", "--rm", "--network", "none", "busybox", "true"], prelude=prelude)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines()[-1] == "GC 0 50000"  # when it removes the container: none yet


@pytest.mark.parametrize("caps", [[], ["CAP_CHOWN", "CAP_NET_RAW"], ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]])
def test_default_seccomp_profile_resolves_the_same_unchecked(caps):
    """A start resolves Docker's default profile without validating it again: the default
    profile is valid, and the checked and unchecked resolutions are the same filter."""
    from lamina.runtime import seccomp
    from lamina.runtime.spec import seccomp_profile
    seccomp.check(seccomp.default_profile())
    assert seccomp.resolve(seccomp.default_profile(), bounding=caps, checked=True) == \
        seccomp.resolve(seccomp.default_profile(), bounding=caps) == seccomp_profile(caps)
