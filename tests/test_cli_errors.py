"""Errors as a Docker user reads them (issue 13): one line in one format whatever failed,
the traceback only with --debug; ``inspect -f`` and ``tag`` answer as Docker does, checked
side by side with the docker CLI and dockerd on this machine."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import uuid

import pytest
from conftest import need_tool
from containers_util import bb  # noqa: F401  (fixture)

from lamina.errors import describe


def _docker(*args: str) -> subprocess.CompletedProcess:
    need_tool("docker")
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def docker_busybox(busybox_tar):
    """A busybox image in dockerd, removed at the end."""
    name = f"lamina-errors-{uuid.uuid4().hex[:8]}:v1"
    p = _docker("import", "-c", 'CMD ["sh"]', busybox_tar, name)
    if p.returncode != 0:
        pytest.fail(f"dockerd is not running (scripts/test.sh starts it): {p.stderr.strip()}")
    yield name
    _docker("rmi", "-f", name)


# -- one line, one format -------------------------------------------------------------------
def test_an_unexpected_failure_is_one_line_and_the_traceback_only_with_debug(lamina):
    """A damaged container record makes ``ps`` fail in a way lamina does not foresee: the user
    sees one ``Error:`` line (exit 125), the traceback only with --debug."""
    lamina("images", "-q")
    db = sqlite3.connect(os.path.join(lamina.root, "lamina.db"))
    db.execute("INSERT INTO containers(id, name, image, created, data) VALUES(?,?,?,?,?)",
               ("ab" * 32, "damaged", "sha256:" + "0" * 64, 0, json.dumps({"Id": "ab" * 32})))
    db.commit()
    db.close()
    r = lamina("ps", "-a", check=False)
    assert r.rc == 125 and r.out == ""
    assert r.err == "Error: unexpected KeyError: 'State' (run with --debug for the traceback)\n"
    r = lamina("--debug", "ps", "-a", check=False)
    assert r.rc == 125 and "Traceback (most recent call last):" in r.err
    assert r.err.endswith("Error: unexpected KeyError: 'State'\n")


def test_a_damaged_metadata_database_is_named(lamina):
    lamina("images", "-q")
    with open(os.path.join(lamina.root, "lamina.db"), "wb") as f:
        f.write(b"this is not an SQLite database, it was overwritten" * 100)
    r = lamina("images", check=False)
    assert r.rc == 125
    assert r.err == (f"Error: {lamina.root}/lamina.db: file is not a database: the store's metadata "
                     f"database is damaged; restore it from a backup or use another store (--root)\n")


def test_os_errors_read_like_dockers_not_pythons(tmp_path):
    """What the user sees for an OSError: the reason and the path, never ``[Errno 13] ... '...'``."""
    try:
        os.mkdir("/proc/lamina-cannot-be-here")
    except OSError as e:
        assert describe(e) == f"{os.strerror(e.errno)}: /proc/lamina-cannot-be-here"
    src, dst = tmp_path / "missing", tmp_path / "also-missing"
    with pytest.raises(OSError) as info:
        os.rename(src, dst)
    assert info.value.errno == errno.ENOENT
    assert describe(info.value) == f"No such file or directory: {src} -> {dst}"
    assert describe(ValueError("bad\nthing")) == "unexpected ValueError: bad thing"


def test_a_directory_given_as_an_archive_is_one_line(lamina, tmp_path):
    r = lamina("load", "-i", str(tmp_path), check=False)
    assert (r.rc, r.err) == (125, f"Error: Is a directory: {tmp_path}\n")


# -- inspect -f ---------------------------------------------------------------------------------
@pytest.mark.parametrize("template", [
    "{{.Nope}}", "{{.Config.Nope}}", "{{.RootFS.Nope}}", "{{.Nope.Deeper}}", "{{json .Nope}}",
    "{{.Id}}{{.Nope}}", "{{.Config.Healthcheck.Test}}",
])
def test_inspect_format_with_a_missing_key_fails_like_docker(lamina, busybox_tar, docker_busybox, template):
    """docker/cli renders the typed value, then the raw JSON with missingkey=error: the error
    text, the exit code (1) and the empty stdout are Docker's."""
    lamina("import", "-c", 'CMD ["sh"]', busybox_tar, docker_busybox)
    theirs = _docker("inspect", "-f", template, docker_busybox)
    ours = lamina("inspect", "-f", template, docker_busybox, check=False)
    assert (ours.rc, ours.out, ours.err) == (theirs.returncode, theirs.stdout, theirs.stderr)


@pytest.mark.parametrize("template", [
    "{{.Config.Cmd}}", "{{.Config.StopSignal}}|{{.Variant}}|{{.OsVersion}}", "{{.Config.Labels.nope}}",
    "{{.ContainerConfig.Shell}}", "{{range .RootFS.Layers}}{{.}}{{end}}", "{{.Config.ArgsEscaped}}",
    "{{.Config.Healthcheck}}|{{json .Config.Healthcheck}}|{{if .Config.Healthcheck}}y{{else}}n{{end}}",
])
def test_inspect_format_of_fields_dockers_type_has_but_json_omits(lamina, busybox_tar, docker_busybox, template):
    lamina("import", "-c", 'CMD ["sh"]', busybox_tar, docker_busybox)
    theirs = _docker("inspect", "-f", template, docker_busybox)
    ours = lamina("inspect", "-f", template, docker_busybox, check=False)
    assert theirs.returncode == 0, theirs.stderr
    assert (ours.rc, ours.out) == (0, theirs.stdout)


def test_inspect_format_of_a_container_fails_on_missing_keys_like_docker(bb, docker_busybox):
    cid = _docker("create", "--network", "none", docker_busybox, "true").stdout.strip()
    try:
        bb("create", "--name", "c", "busybox", "true")
        for template in ("{{.Nope}}", "{{.State.Nope}}", "{{.Config.Nope}}"):
            theirs = _docker("inspect", "-f", template, cid)
            ours = bb("inspect", "-f", template, "c", check=False)
            assert (ours.rc, ours.out, ours.err) == (theirs.returncode, theirs.stdout, theirs.stderr), template
        for template in ("{{.State.Status}} {{.RestartCount}} {{.State.Health}}", "{{.Config.Cmd}} {{.Path}}",
                         "{{.SizeRw}}|{{.ExecIDs}}"):
            theirs = _docker("inspect", "-f", template, cid)
            assert theirs.returncode == 0, theirs.stderr
            assert bb("inspect", "-f", template, "c").out == theirs.stdout
        # keys only lamina's JSON has still work (Docker's raw-JSON pass)
        assert bb("inspect", "-f", "{{.Name}}", "c").out == "/c\n"
    finally:
        _docker("rm", "-f", cid)


def test_inspect_of_several_objects_reports_every_failure_after_the_rest(lamina, busybox_tar, docker_busybox):
    """docker/cli goes on after an object that fails (not found, or the template fails on it),
    prints what rendered, then every error, and exits 1."""
    lamina("import", "-c", 'CMD ["sh"]', busybox_tar, docker_busybox)
    other = docker_busybox.replace(":v1", ":other")
    _docker("tag", docker_busybox, other)
    lamina("tag", docker_busybox, other)
    try:
        for args in (("-f", "{{.Config.Cmd}}", docker_busybox, "lamina-nothing-here", other),
                     ("-f", "{{if eq (index .RepoTags 0) \"%s\"}}{{.Nope}}{{else}}ok{{end}}" % other,
                      docker_busybox, other),
                     ("lamina-nothing-here",)):
            theirs = _docker("inspect", *args)
            ours = lamina("inspect", *args, check=False)
            assert (ours.rc, ours.out, ours.err) == (theirs.returncode, theirs.stdout, theirs.stderr), args
    finally:
        _docker("rmi", other)


# -- version and info ------------------------------------------------------------------------
def test_version_format_reads_dockers_fields(lamina):
    from lamina import __version__
    assert lamina("version", "--format", "{{.Server.Version}}").out == f"{__version__}\n"
    out = lamina("version", "--format", "{{.Client.Version}} {{.Client.GitCommit}} {{.Server.Os}}/{{.Server.Arch}}").out
    version, commit, plat = out.split()
    # run from a checkout: the commit is the checkout's HEAD
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout.strip()
    assert (version, commit, plat.split("/")[0]) == (__version__, head, "linux")
    assert lamina("version", "--format", "{{range .Server.Components}}{{.Name}} {{end}}").out.startswith("Engine ")
    assert f" Git commit:        {head}\n" in lamina("version").out
    r = lamina("version", "--format", "{{.Server.Nope}}", check=False)
    theirs = _docker("version", "--format", "{{.Server.Nope}}")
    assert r.rc == theirs.returncode == 1
    assert r.err == theirs.stderr  # "template: version:1:9: executing ... in type *types.Version"


def test_info_has_dockers_breakdown_and_fields(bb):
    bb("run", "-d", "--name", "up", "busybox", "sleep", "1000")
    bb("run", "-d", "--name", "frozen", "busybox", "sleep", "1000")
    bb("pause", "frozen")
    bb("create", "--name", "new", "busybox", "true")
    bb("run", "--name", "done", "busybox", "true")
    try:
        fields = ("{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}} "
                  "{{.LoggingDriver}} {{.CgroupDriver}} {{.DefaultRuntime}} {{index .Runtimes \"builtin\"}}")
        assert bb("info", "--format", fields).out.split() == ["4", "1", "1", "2", "json-file", "cgroupfs",
                                                              "builtin", "map[path:lamina]"]
        text = bb("info").out
        for line in (" Containers: 4\n  Running: 1\n  Paused: 1\n  Stopped: 2\n", " Logging Driver: json-file\n",
                     " Cgroup Driver: cgroupfs\n", " Default Runtime: builtin\n", " Security Options:\n  seccomp\n"
                     "   Profile: default\n", " Registry: https://index.docker.io/v1/\n",
                     " Insecure Registries:\n  127.0.0.0/8\n"):
            assert line in text, (line, text)
        assert "runc" in bb("info", "--format", "{{range $k, $v := .Runtimes}}{{$k}} {{end}}").out.split()
        # the same keys as Docker's, where both have them
        theirs = json.loads(_docker("info", "--format", "{{json .}}").stdout)
        ours = json.loads(bb("info", "--format", "{{json .}}").out)
        for key in ("Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped", "Images",
                    "LoggingDriver", "CgroupDriver", "CgroupVersion", "Runtimes", "DefaultRuntime",
                    "SecurityOptions", "RegistryConfig", "IndexServerAddress", "KernelVersion", "OSType",
                    "Architecture", "NCPU", "MemTotal", "ServerVersion", "Name"):
            assert key in ours and type(ours[key]) is type(theirs[key]), key
        for key in ("CgroupDriver", "CgroupVersion", "LoggingDriver", "KernelVersion", "NCPU", "MemTotal",
                    "IndexServerAddress", "SecurityOptions"):
            assert ours[key] == theirs[key], key
        r = bb("info", "--format", "{{.Nope}}", check=False)
        assert (r.rc, r.err) == (1, _docker("info", "--format", "{{.Nope}}").stderr)
    finally:
        bb("unpause", "frozen", check=False)
        bb("rm", "-f", "up", "frozen", "new", "done", check=False)


# -- references ------------------------------------------------------------------------------
# target of `docker tag`, and whether dockerd 20.10 takes it; each is asked of dockerd too
TAG_TARGETS = [
    "Uppercase/lowercase:tag", "lowercase:Uppercase", "FOO/bar", "LOCALDOMAIN/fooo", "Foo.com/bar",
    "foo.com/Bar", "localhost:5000/Foo", "localhost/foo", "a/b/c/d:e", "foo:", ":tag", "foo@sha256:abc",
    "foo-", "foo__bar", "foo___bar", "foo..bar", "foo.-bar", "foo--bar", "fo_o", "foo/", "/foo",
    "foo//bar", "foo:bar:baz", "foo:-tag", "foo:_tag", "foo:.tag", "a", "docker.io/foo",
    "index.docker.io/library/foo", "https://foo/bar", "foo bar", "sha256:" + "0" * 64, "0" * 64,
    "sha256:abc", "busybox:" + "t" * 128, "busybox:" + "t" * 129, "x" * 255, "Busybox", "me/app:v1.0_RC-2",
]


def test_tag_accepts_and_refuses_what_dockerd_does(bb, docker_busybox):
    """Every target above, through ``docker tag`` (dockerd 20.10 decides) and ``lamina tag``.
    Departure kept on purpose: IPv6 registry hosts (``[::1]:5000/x``), which newer Docker
    accepts and 20.10 refuses, are accepted."""
    for target in TAG_TARGETS:
        theirs = _docker("tag", docker_busybox, target)
        if theirs.returncode == 0:
            _docker("rmi", target)
        ours = bb("tag", "busybox", target, check=False)
        assert (ours.rc == 0) == (theirs.returncode == 0), (target, ours.err, theirs.stderr)
        if ours.rc:
            assert ours.rc == 125 and ours.err.startswith("Error: ") and len(ours.err.splitlines()) == 1, ours.err
        if "must be lowercase" in theirs.stderr:
            assert "repository name must be lowercase" in ours.err, target
        if "ambiguous" in theirs.stderr:
            assert "refusing to create an ambiguous tag using digest algorithm as name" in ours.err
    r = bb("tag", "busybox", "Uppercase/lowercase:tag", check=False)
    assert r.err == 'Error: invalid reference format "Uppercase/lowercase:tag": repository name must be lowercase\n'
    assert bb("tag", "busybox", "[::1]:5000/me/app").rc == 0


def test_other_verbs_that_make_tags_refuse_what_tag_refuses(bb, tmp_path, busybox_tar):
    for args in (("import", busybox_tar, "sha256:" + "1" * 64), ("import", busybox_tar, "Uppercase/x"),
                 ("build", "-t", "sha256:" + "2" * 64, str(tmp_path))):
        if args[0] == "build":
            (tmp_path / "Dockerfile").write_text("FROM busybox\nENV A=1\n")
        before = bb("images", "-a", "-q").out
        r = bb(*args, check=False)
        assert r.rc == 125 and len(r.err.splitlines()) == 1, r.err
        assert bb("images", "-a", "-q").out == before  # nothing recorded


# -- cp ----------------------------------------------------------------------------------------
def test_cp_fails_like_docker_naming_the_container(bb, docker_busybox, tmp_path):
    """Each failure exits 1 as Docker's client does, with Docker's words (and the container
    as the user named it); a stopped container's root includes its init layer, so its empty
    /etc/hostname is there, as in Docker."""
    dcid = _docker("create", "--network", "none", "--name", f"lamina-cp-{uuid.uuid4().hex[:8]}", docker_busybox,
                   "true").stdout.strip()
    try:
        bb("create", "--name", "c", "busybox", "true")
        missing = tmp_path / "missing"
        cases = [  # (args with {c} for the container, what lamina's message says)
            (("{c}:/nonexist", str(tmp_path)), "Error: Could not find the file /nonexist in container {c}\n"),
            (("{c}:/etc/hostname", f"{missing}/dir/"),
             f'Error: invalid output path: directory "{missing}" does not exist\n'),
            (("{c}:/etc/passwd", f"{missing}/"), f"Error: no such directory: {missing}/\n"),
            (("/etc/hostname", "{c}:/nodir/"), "Error: no such directory: /nodir/ in container {c}\n"),
            (("/etc/hostname", "{c}:/nodir/x"), "Error: Could not find the file /nodir in container {c}\n"),
            (("/etc/hostname/", "{c}:/tmp"), "Error: cannot copy /etc/hostname/: not a directory\n"),
            (("lamina-no-such-container:/etc", str(tmp_path)), "Error: No such container: lamina-no-such-container\n"),
        ]
        for args, message in cases:
            theirs = _docker("cp", *(x.format(c=dcid) for x in args))
            ours = bb("cp", *(x.format(c="c") for x in args), check=False)
            assert ours.rc == theirs.returncode == 1, (args, theirs.stderr)
            assert ours.err == message.format(c="c"), args
            # the docker client may log its tar stream's broken pipe (time="..." level=error ...)
            # before the error itself: those lines are the client's noise, not the message
            said = "\n".join(line for line in theirs.stderr.splitlines() if not line.startswith('time="'))
            said = said.replace("Error response from daemon: ", "").replace(dcid, "c").strip()
            if said in ("no such directory", "not a directory"):  # Docker's terse ones: lamina adds where
                assert ours.err.startswith("Error: ") and said in ours.err, (said, ours.err)
            else:
                assert ours.err == f"Error: {said}\n", (said, ours.err)
        assert not missing.exists()
        out = tmp_path / "hostname"
        bb("cp", "c:/etc/hostname", str(out))
        assert out.read_bytes() == b""
        assert _docker("cp", f"{dcid}:/etc/hostname", str(tmp_path / "theirs")).returncode == 0
    finally:
        _docker("rm", "-f", dcid)


@pytest.mark.parametrize("command,code", [("nonexist", 127), ("/etc/passwd", 126)])
def test_run_detached_with_a_command_that_cannot_run_says_why(bb, docker_busybox, command, code):
    """The monitor reports the exec failure the container wrote (it used to say only that
    the monitor died): Docker's words and exit code."""
    theirs = _docker("run", "-d", "--network", "none", docker_busybox, command)
    cid = theirs.stdout.strip()
    if cid:
        _docker("rm", "-f", cid)
    ours = bb("run", "-d", "--name", "x", "busybox", command, check=False)
    assert ours.rc == theirs.returncode == code
    said = f'exec: "{command}": ' + ("executable file not found in $PATH" if code == 127 else "permission denied")
    assert said in theirs.stderr
    assert ours.err == f"Error: {said}\n"


def test_state_errors_word_for_word_like_docker(bb, docker_busybox):
    """kill/pause/unpause/top/exec/rm/attach refused for the container's state: the same
    line as dockerd's (its "Error response from daemon: " is lamina's "Error: "; the client's
    own checks print bare), the same exit code; containers named by their full IDs."""
    import re
    tag = f"lamina-state-{uuid.uuid4().hex[:8]}"
    names = {"run": f"{tag}-r", "done": f"{tag}-d"}
    try:
        _docker("run", "-d", "--name", names["run"], "--network", "none", docker_busybox, "sleep", "100")
        _docker("run", "--name", names["done"], "--network", "none", docker_busybox, "true")
        bb("run", "-d", "--name", names["run"], "--network", "none", "busybox", "sleep", "100")
        bb("run", "--name", names["done"], "--network", "none", "busybox", "true")
        for args in (("kill", "done"), ("pause", "done"), ("unpause", "run"), ("top", "done"),
                     ("exec", "done", "true"), ("rm", "run"), ("attach", "done"), ("kill", "nosuch")):
            real = [names.get(x, x) if i == 1 else x for i, x in enumerate(args)]
            theirs = _docker(*real)
            ours = bb(*real, check=False)

            def norm(text: str) -> str:
                text = text.replace("Error response from daemon: ", "Error: ")
                return re.sub(r"\b[0-9a-f]{64}\b", "ID", text).strip()
            assert ours.rc == theirs.returncode == 1, (args, theirs.stderr, ours.err)
            assert norm(ours.err) == norm(theirs.stderr), args
    finally:
        _docker("rm", "-f", *names.values())
