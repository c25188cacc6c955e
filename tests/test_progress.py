"""Progress of long operations (issue 13): on a terminal, Docker's redrawn lines (load's
``<id>: Loading layer [===>  ]  12MB/20MB``, and the same drawing for import, save, export,
commit and build); on a pipe, Docker's quiet line-oriented output and no progress module
loaded at all. Every terminal here is a real pty; docker's own ``load`` is run the same way
for the side-by-side check."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import uuid

import pytest
from conftest import REPO, mkctx, need_tool
from containers_util import bb  # noqa: F401  (fixture)

ESC = "\x1b"


def on_pty(cmd: list[str], env: dict | None = None, *, cols: int = 140, stdout_file: str | None = None,
           stdin: bytes | None = None) -> tuple[int, str]:
    """Run ``cmd`` with stdout and stderr on a new pty (``cols`` wide); stdout goes to
    ``stdout_file`` instead when given. Returns (exit code, everything the pty showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    out = open(stdout_file, "wb") if stdout_file else slave
    p = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=out, stderr=slave,
                         stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
    os.close(slave)
    if stdout_file:
        out.close()
    if stdin is not None:
        p.stdin.write(stdin)
        p.stdin.close()
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:  # EIO: the last holder of the slave is gone
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    return p.wait(300), b"".join(chunks).decode(errors="replace")


def lamina_on_pty(lam, *args: str, **kw) -> tuple[int, str]:
    return on_pty([sys.executable, "-m", "lamina", *args], lam.env, **kw)


def screen_lines(text: str) -> list[str]:
    """What a terminal shows at the end, for Docker's drawing (lines redrawn in place with
    cursor-up / clear-line / cursor-down, single lines redrawn with clear + CR)."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(text):
        m = re.match(r"\x1b\[(\d*)([ABK])", text[i:])
        if m:
            n = int(m[1] or 1)
            if m[2] == "A":
                row = max(row - n, 0)
            elif m[2] == "B":
                row += n
                while len(lines) <= row:
                    lines.append("")
            else:  # 2K: the whole line; K: from the cursor on
                lines[row] = "" if m[1] == "2" else lines[row][:col]
            i += m.end()
            continue
        c = text[i]
        if c == "\r":
            col = 0
        elif c == "\n":
            row += 1
            col = 0
            while len(lines) <= row:
                lines.append("")
        else:
            cur = lines[row]
            lines[row] = cur[:col] + c + cur[col + 1:]
            col += 1
        i += 1
    return [ln.rstrip() for ln in lines if ln.strip()]


@pytest.fixture
def big_image(bb, tmp_path):
    """busybox with a ~12 MB incompressible layer on top, as ``big:v1``, and its archive."""
    ctx = tmp_path / "big"
    ctx.mkdir()
    (ctx / "blob").write_bytes(os.urandom(12 << 20))
    bb("import", str(_tar_of(ctx, tmp_path / "big.tar")), "big:v1")
    archive = tmp_path / "big-save.tar"
    bb("save", "-o", str(archive), "big:v1")
    return bb, str(archive)


def _tar_of(d, dest):
    subprocess.run(["tar", "-C", str(d), "-cf", str(dest), "."], check=True)
    return dest


# -- load ------------------------------------------------------------------------------------
def test_load_draws_dockers_layer_bars_on_a_terminal_and_nothing_on_a_pipe(big_image):
    lam, archive = big_image
    lam("rmi", "big:v1")
    rc, text = lamina_on_pty(lam, "load", "-i", archive)
    assert rc == 0, text
    assert f"{ESC}[1A{ESC}[2K\r" in text and f"\r{ESC}[1B" in text  # redrawn in place
    shown = screen_lines(text)
    assert re.fullmatch(r"[0-9a-f]{12}: Loading layer \[={50}>\]\s+12\.\d+MB/12\.\d+MB", shown[0]), shown
    assert shown[-1] == "Loaded image: big:v1"
    # a pipe: Docker's client loads quietly (only what was loaded)
    lam("rmi", "big:v1")
    r = lam("load", "-i", archive)
    assert (r.out, r.err) == ("Loaded image: big:v1\n", "")
    # -q on a terminal: no bars either
    lam("rmi", "big:v1")
    rc, text = lamina_on_pty(lam, "load", "-q", "-i", archive)
    assert rc == 0 and screen_lines(text) == ["Loaded image: big:v1"] and ESC not in text


def test_load_on_a_terminal_looks_like_dockers(big_image, tmp_path):
    """The same archive through ``docker load`` and ``lamina load``, each on a pty: the
    same lines once IDs and sizes are set aside."""
    need_tool("docker")
    lam, archive = big_image
    name = f"lamina-progress-{uuid.uuid4().hex[:8]}:v1"
    lam("tag", "big:v1", name)
    lam("save", "-o", str(tmp_path / "named.tar"), name)
    lam("rmi", name, "big:v1")
    try:
        rc, theirs = on_pty(["docker", "load", "-i", str(tmp_path / "named.tar")], dict(os.environ))
        assert rc == 0, theirs
        rc, ours = lamina_on_pty(lam, "load", "-i", str(tmp_path / "named.tar"))
        assert rc == 0, ours

        def shape(text):
            return [re.sub(r"\d+(\.\d+)?[kMG]?B", "N", re.sub(r"^[0-9a-f]{12}", "ID", ln))
                    for ln in screen_lines(text)]
        assert shape(ours)[-2:] == shape(theirs)[-2:]  # the big layer's full bar, "Loaded image: ..."
    finally:
        subprocess.run(["docker", "rmi", "-f", name], capture_output=True)


# -- import, save, export, commit -----------------------------------------------------------
def test_import_counts_bytes_on_a_terminal_and_prints_only_the_id_elsewhere(bb, tmp_path):
    d = tmp_path / "rootfs"
    d.mkdir()
    (d / "data").write_bytes(os.urandom(8 << 20))
    tar = _tar_of(d, tmp_path / "rootfs.tar")
    rc, text = lamina_on_pty(bb, "import", str(tar), "imp:tty")
    assert rc == 0, text
    shown = screen_lines(text)
    assert re.fullmatch(r"Importing \[={50}>\]\s+8\.\d+MB/8\.\d+MB", shown[0]), shown
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", shown[1]) and len(shown) == 2
    r = bb("import", str(tar), "imp:pipe")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.out) and r.err == ""


def test_save_shows_progress_where_the_archive_is_not(big_image, tmp_path):
    lam, _ = big_image
    out = tmp_path / "o.tar"
    rc, text = lamina_on_pty(lam, "save", "-o", str(out), "big:v1")  # archive in a file, stdout a terminal
    assert rc == 0, text
    shown = screen_lines(text)
    assert any(re.fullmatch(r"[0-9a-f]{12}: Saving layer \[={50}>\]\s+12\.\d+MB/12\.\d+MB", ln) for ln in shown), shown
    # the archive on stdout (a file), stderr a terminal: the bars go to stderr, as podman's do
    piped = tmp_path / "p.tar"
    rc, text = lamina_on_pty(lam, "save", "big:v1", stdout_file=str(piped))
    assert rc == 0 and "Saving layer" in text
    quiet = lam("save", "big:v1")
    assert quiet.err == ""
    assert piped.read_bytes() == out.read_bytes() == quiet.outb  # progress never touches the archive


def test_export_and_commit_count_bytes_on_a_terminal(bb, tmp_path):
    bb("run", "--name", "c", "busybox", "sh", "-c", "head -c 6000000 /dev/urandom > /payload")
    rc, text = lamina_on_pty(bb, "export", "-o", str(tmp_path / "e.tar"), "c")
    assert rc == 0, text
    assert re.fullmatch(r"Exporting\s+\d+(\.\d+)?MB", screen_lines(text)[-1]), screen_lines(text)
    rc, text = lamina_on_pty(bb, "export", "c", stdout_file=str(tmp_path / "e2.tar"))
    assert rc == 0 and re.search(r"Exporting\s+\d", text)
    assert (tmp_path / "e.tar").read_bytes() == (tmp_path / "e2.tar").read_bytes() == bb("export", "c").outb
    assert bb("export", "-o", str(tmp_path / "e3.tar"), "c").out == ""
    rc, text = lamina_on_pty(bb, "commit", "c", "committed:v1")
    assert rc == 0, text
    shown = screen_lines(text)
    assert re.fullmatch(r"Committing layer\s+6\.\d+MB", shown[0]), shown
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", shown[1])
    r = bb("commit", "c", "committed:v2")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}\n", r.out) and r.err == ""


# -- build -------------------------------------------------------------------------------------
def test_build_progress_modes(bb, tmp_path):
    ctx = mkctx(tmp_path, "FROM busybox\nCOPY big /big\nRUN echo ran\n", {"big": os.urandom(8 << 20)})
    # tty (auto on a terminal): a transient activity line under the step, erased by the next line
    rc, text = lamina_on_pty(bb, "build", "-t", "b", str(ctx))
    assert rc == 0, text
    assert re.search(r"\x1b\[2K\r(Reading build context|Copying|Writing layer) +\d", text), text
    shown = screen_lines(text)
    assert not any(ln.startswith(("Reading build context", "Copying", "Writing layer")) for ln in shown), shown
    assert shown[-1] == "Successfully tagged b:latest"
    # the cached build: the same lines; whether it is replayed or (its context written within the
    # filesystem's timestamp granularity: racily clean) checked the slow way, no activity stays
    rc, cached = lamina_on_pty(bb, "build", "-t", "b", str(ctx))
    assert rc == 0 and " ---> Using cache" in cached
    shown = screen_lines(cached)
    assert not any(ln.startswith(("Reading build context", "Copying", "Writing layer")) for ln in shown), shown
    assert shown[-1] == "Successfully tagged b:latest"
    # auto on a pipe: the classic lines only
    r = bb("build", "--no-cache", "-t", "b", str(ctx))
    assert ESC not in r.out and "DONE" not in r.out
    # plain: every step ends with its time, BuildKit's word; never redrawn
    r = bb("build", "--progress=plain", "--no-cache", "-t", "b", str(ctx))
    steps = re.split(r"^Step \d/3 : ", r.out, flags=re.M)[1:]
    assert len(steps) == 3 and all(re.search(r"^ ---> DONE \d+\.\ds$", s, re.M) for s in steps), r.out
    assert ESC not in r.out
    r = bb("build", "--progress=plain", "-t", "b", str(ctx))  # cached: timed too (plain is never replayed)
    assert r.out.count(" ---> DONE ") == 3 and r.out.count(" ---> Using cache") == 2
    # tty asked for on a pipe: refused, as BuildKit does
    r = bb("build", "--progress=tty", "-t", "b", str(ctx), check=False)
    assert r.rc == 125 and "--progress=tty" in r.err and "not a terminal" in r.err


# -- cost off a terminal -----------------------------------------------------------------------
def _modules_after(lam, *args: str, stdin: bytes | None = None) -> set[str]:
    code = ("import sys\nfrom lamina.cli.main import main\ntry:\n    rc = main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    rc = e.code\nsys.stderr.write('MODULES ' + ' '.join(m for m in sys.modules if m.startswith('lamina')) + '\\n')\n"
            "sys.exit(rc)\n")
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=lam.env, capture_output=True,
                       input=stdin, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    return set(p.stderr.decode().rsplit("MODULES ", 1)[1].split())


def test_no_progress_module_off_a_terminal_nor_on_start_up_paths(big_image, tmp_path):
    lam, archive = big_image
    lam("rmi", "big:v1")
    assert "lamina.progress" not in _modules_after(lam, "load", "-i", archive)
    assert "lamina.progress" not in _modules_after(lam, "save", "-o", str(tmp_path / "s.tar"), "big:v1")
    assert "lamina.progress" not in _modules_after(lam, "import", archive, "x")
    for args in (("--help",), ("images",), ("ps", "-a"), ("run", "--rm", "busybox", "true")):
        assert "lamina.progress" not in _modules_after(lam, *args), args
