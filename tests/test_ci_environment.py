"""The machine the suite runs on is the one it claims: CI (.ci/run -> scripts/test.sh) runs it
as root with overlayfs, cgroups and the peer tools, so no test has a reason to skip -- and
conftest turns any skip into a failure. These tests fail loudly where that does not hold."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import REPO, need_tool


def test_suite_runs_as_root_with_overlayfs_and_cgroups(tmp_path):
    assert os.geteuid() == 0, "the suite needs root (mounts, namespaces, cgroups): run .ci/run as root"
    with open("/proc/filesystems") as f:
        assert "overlay" in f.read().split(), "overlayfs is not available"
    lower, upper, work, merged = (tmp_path / n for n in ("l", "u", "w", "m"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount overlayfs: {r.stderr}"
    subprocess.run(["umount", str(merged)], check=True)
    assert os.path.isdir("/sys/fs/cgroup/pids") or os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def test_peer_tools_are_installed():
    for tool in ("runc", "busybox", "docker", "skopeo", "umoci", "tar", "pgrep"):
        need_tool(tool)


def test_a_skip_fails_the_run(tmp_path):
    """conftest's hook: pytest.skip and skipif markers come out as failures."""
    (tmp_path / "test_skips.py").write_text(textwrap.dedent("""
        import pytest

        def test_skip_call():
            pytest.skip("no tool")

        @pytest.mark.skipif(True, reason="not root")
        def test_skipif_marker():
            pass

        def test_passes():
            pass
    """))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_skips.py")],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": os.path.join(REPO, "tests") + os.pathsep + REPO})
    assert r.returncode == 1, r.stdout + r.stderr
    summary = r.stdout.strip().splitlines()[-1]
    assert summary.startswith("1 failed, 1 passed, 1 error in "), r.stdout  # skipif: at setup
    assert "FAILED test_skips.py::test_skip_call - skipped (Skipped: no tool)" in r.stdout
    assert "ERROR test_skips.py::test_skipif_marker - skipped (Skipped: not root)" in r.stdout
