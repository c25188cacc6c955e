""".dockerignore cases after moby/patternmatcher's tests."""

import os

import pytest

from lamina.dockerfile.ignore import Matcher, Pattern, find_ignore_file
from lamina.errors import InvalidArgument

# (pattern, path, matches) -- patternmatcher TestMatches
MATCHES = [
    ("**", "file", True), ("**", "file/", True), ("**/", "file", True), ("**/", "file/", True),
    ("dir/**", "dir/file", True), ("dir/**", "dir/file/", True), ("dir/**", "dir/dir2/file", True),
    ("**/file", "file", True), ("**/file", "dir/file", True), ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True), ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True), ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True), ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True), ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True), ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True), ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True), ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False), ("a[b-d]e", "ace", True), ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True), (".*", ".foo", True), (".*", "foo", False),
    ("abc.def", "abcdef", False), ("abc.def", "abc.def", True), ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True), ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True), ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False), ("abc/**", "abc/def", True), ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True), ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True), ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
]


@pytest.mark.parametrize("pattern,path,want", MATCHES)
def test_pattern_match(pattern, path, want):
    assert Pattern.compile(pattern).match(path) is want


# (patterns, path, excluded) -- MatchesOrParentMatches semantics
EXCLUDES = [
    (["*"], "fileutils.go", True),
    (["*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["*.go", "!fileutils.go", "fileutils.go"], "fileutils.go", True),
    (["docs"], "docs/README.md", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/other.md", True),
    (["/docs"], "docs/a", True),
    (["./docs"], "docs/a", True),
    (["docs/../src"], "src/x", True),
    (["*/*.md"], "a/b.md", True),
    (["*/*.md"], "a/b/c.md", False),  # * does not cross "/", and no parent is */*.md
    (["**/*.md", "!**/README.md"], "x/y/README.md", False),
    (["node_modules"], "sub/node_modules/x", False),
    (["**/node_modules"], "sub/node_modules/x", True),
    (["  #not-a-comment"], "#not-a-comment", True),  # only a "#" in column 0 comments
]


@pytest.mark.parametrize("patterns,path,want", EXCLUDES)
def test_excluded(patterns, path, want):
    assert Matcher.from_lines(patterns).excluded(path) is want


def test_from_lines_comments_blank_bom_and_trim():
    m = Matcher.from_lines(["\ufeff# comment", "", "   ", "  *.log  ", "! keep.log", "/abs/x/"])
    assert [str(p) for p in m.patterns] == ["*.log", "!keep.log", "abs/x"]
    assert m.excluded("a.log") and not m.excluded("keep.log") and m.excluded("abs/x/y")
    assert not m.excluded("abs")


def test_bare_exclamation_is_an_error():
    with pytest.raises(InvalidArgument, match="illegal exclusion pattern"):
        Matcher.from_lines(["!"])


def test_dir_skipping_and_exceptions():
    m = Matcher.from_lines(["build", "!build/keep.txt", "vendor", ".git"])
    assert m.excluded("build", True) and not m.can_skip_dir("build")
    assert not m.excluded("build/keep.txt")
    assert m.can_skip_dir("vendor") and m.can_skip_dir(".git")
    assert not m.can_skip_dir("src")
    m2 = Matcher.from_lines(["*", "!**/*.go"])
    assert not m2.can_skip_dir("anything")  # an exception could match inside
    m3 = Matcher.from_lines(["docs/*.md"])
    assert m3.may_exclude_children("docs") and not m3.may_exclude_children("src")
    assert Matcher.from_lines(["**/*.pyc"]).may_exclude_children("any/where")


def test_keeping_dockerfile_and_ignore_file():
    m = Matcher.from_lines(["*", "!src"]).keeping("Dockerfile", ".dockerignore")
    assert not m.excluded("Dockerfile") and not m.excluded(".dockerignore")
    assert m.excluded("other")


def test_find_ignore_file_precedence(tmp_path):
    ctx = tmp_path
    (ctx / "build").mkdir()
    (ctx / "build" / "app.Dockerfile").write_text("FROM a\n")
    assert find_ignore_file(str(ctx), "build/app.Dockerfile") is None
    (ctx / ".dockerignore").write_text("x\n")
    assert find_ignore_file(str(ctx), "build/app.Dockerfile") == str(ctx / ".dockerignore")
    (ctx / "build" / "app.Dockerfile.dockerignore").write_text("y\n")
    assert find_ignore_file(str(ctx), "build/app.Dockerfile") == os.path.join(
        str(ctx), "build/app.Dockerfile.dockerignore")
    assert find_ignore_file(str(ctx), "Dockerfile") == str(ctx / ".dockerignore")
