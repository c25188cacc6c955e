"""Mutation testing for lamina's core packages: does the suite notice when the code is wrong?

    python scripts/mutants.py [MODULE ...] [--work DIR] [-j N] [--timeout-factor F]
                              [--max N] [--list] [--report]

Each mutant is one small change to one module (a comparison turned around, ``and`` for
``or``, a ``not`` dropped, a constant nudged, an arithmetic operator swapped, a ``raise``
or a ``return`` value removed, ``break`` for ``continue``). For each, the tests that cover
that module run against a private copy of the checkout; a mutant the tests fail on (or
that hangs past the time limit) is *killed*, one they pass on *survived*, and the
survivors are the report: code whose behaviour no test pins down.

- MODULE is a path under lamina/ (``lamina/digest.py``) or a package dir; default: the
  core list below (content, layer, image, snapshot, reference, runtime spec + seccomp, the
  builder's cache keys). TESTS maps each module to the test files that exercise it.
- Resumable: results go to ``<work>/results.jsonl`` keyed by mutant and the module's source
  hash; a rerun skips every mutant already killed for unchanged source, and every survivor
  whose tests did not change since (so a killed run loses one mutant at most, editing a
  module re-tests that module, and new tests re-test the survivors). ``--fresh`` forgets
  every earlier result.
- The checkout is never touched: the code is copied to ``<work>/tree`` (refreshed on every
  start) and mutated there; a kill at any moment leaves the checkout as it was.
- Not in CI (a full pass takes hours); run it on a quiet machine: ``scripts/mutants.sh``.
  ``--report`` prints the score and the survivors from the results without running.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# module -> tests that cover it (the fast, direct ones first)
TESTS = {
    "lamina/digest.py": ["tests/test_digest.py", "tests/test_content_writer.py", "tests/test_content.py",
                         "tests/test_layer_ingest.py", "tests/test_reference.py"],
    "lamina/reference.py": ["tests/test_reference.py", "tests/test_reference_messages.py"],
    "lamina/content/store.py": ["tests/test_content_writer.py", "tests/test_content.py", "tests/test_gc.py"],
    "lamina/layer": ["tests/test_layer_ingest.py", "tests/test_layer_breakout.py", "tests/test_layer_compress.py",
                     "tests/test_layer_roundtrip.py"],
    "lamina/image": ["tests/test_image_cli.py", "tests/test_image_rmi_in_use.py", "tests/test_gc.py",
                     "tests/test_interop.py"],
    "lamina/snapshot": ["tests/test_snapshot.py", "tests/test_mount.py"],
    "lamina/runtime/spec.py": ["tests/test_runtime_launcher.py", "tests/test_containers_limits.py"],
    "lamina/runtime/seccomp.py": ["tests/test_runtime_launcher.py", "tests/test_containers_limits.py"],
    "lamina/build/cache.py": ["tests/test_build_cache.py"],
    "lamina/build/context.py": ["tests/test_build_context.py", "tests/test_build_cache.py"],
    "lamina/build/fastpath.py": ["tests/test_build_cache.py"],
}
CORE = ["lamina/digest.py", "lamina/reference.py", "lamina/content/store.py", "lamina/layer",
        "lamina/image", "lamina/snapshot", "lamina/runtime/spec.py", "lamina/runtime/seccomp.py",
        "lamina/build/cache.py", "lamina/build/context.py", "lamina/build/fastpath.py"]

# Mutants that change no behaviour a test can observe (or only speed, or durability across a
# power loss), decided by reading the code: (module, a piece of the line, the mutation).
# They are reported apart, as "equivalent", so the survivors list stays a to-do list.
EQUIVALENT = [
    ("*", "TYPE_CHECKING = False", "False -> True"),         # imports for annotations only
    ("lamina/digest.py", 'if algorithm == "sha256" and len(data) < (1 << 20)', ""),  # fast path for small data
    ("lamina/content/store.py", "_CHUNK = 1 << 20", ""),     # read size
    ("lamina/content/store.py", "os.O_RDONLY | os.O_DIRECTORY", "BitOr"),  # a dir opens without O_DIRECTORY
    ("lamina/content/store.py", "sync: bool = True", "True -> False"),     # fsync: power-loss only
    ("lamina/content/store.py", "min(left, 1 << 30)", ""),   # copy_file_range chunk size
    ("lamina/content/store.py", "n = 0", "0 -> 1"),          # only read after copy_file_range failed
    ("lamina/content/store.py", "resume=False) as w:", "False -> True"),  # put_bytes' ref is new each time
    ("lamina/content/store.py", "resume: bool, hashing: bool = True", "True -> False"),  # always passed
    ("lamina/content/store.py", "if self._lockfd >= 0:", ""),  # fds are > 0 here
    ("lamina/content/store.py", "self._lockfd = -1", ""),
    ("lamina/content/store.py", "for attempt in range(3):", ""),  # retry of a create/remove race
    ("lamina/content/store.py", "if attempt == 2:", ""),
    ("lamina/reference.py", 'if slash and ("." in first or ":" in first or first.lower() != first):', ""),
    ("lamina/reference.py", 'return "", name', "return x -> return None"),  # parse() always has a domain here
    ("lamina/reference.py", 'if colon > left.rfind("/"):', "Gt -> GtE"),      # both -1 only without "/"
    ("lamina/reference.py", 'remote = remainder.split(":", 1)[0]', "1 -> 2"),
    ("lamina/reference.py", "if len(tag) > TAG_LENGTH_MAX and", "Gt -> GtE"),  # 128 chars: matched before
    ("lamina/reference.py", "return problem", "return x -> return None"),    # _split_name's last line: idem
    ("lamina/reference.py", "if lowered != s and not isinstance(", ""),       # parse() rejects uppercase
    ("lamina/reference.py", 'raise _fail(text, "repository name must be lowercase")', ""),  # paths first
    ("lamina/digest.py", "def read(self, n: int = -1)", "1 -> 2"),          # any negative n reads all
    ("lamina/content/store.py", "data = f.read(limit + 1)", "1 -> 2"),     # more than limit either way
    ("lamina/content/store.py", "break", "break -> continue"),              # retry loop / short-file guard
    ("lamina/content/store.py", "if not self._f.closed:", "not x -> x"),    # close() closes it anyway
]


def _equivalent(module: str, code: str, what: str) -> bool:
    return any((m == "*" or m == module) and piece in code and w in what for m, piece, w in EQUIVALENT)


MUTATOR = "2"  # bump when the mutation sites change: earlier results no longer apply

_CMP_SWAP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
             ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BIN_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult,
             ast.Div: ast.Mult, ast.Mod: ast.FloorDiv, ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr,
             ast.LShift: ast.RShift, ast.RShift: ast.LShift}


def _docstring_nodes(tree: ast.AST) -> set[int]:
    """Strings that are not behaviour: docstrings (also the ones after an attribute) and the
    names in ``__all__``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            out.add(id(node.value))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                  for t in node.targets):
            out.update(id(n) for n in ast.walk(node.value) if isinstance(n, ast.Constant))
    return out


def _skip_line(src_lines: list[str], lineno: int) -> bool:
    line = src_lines[lineno - 1]
    return "pragma: no mutate" in line or line.lstrip().startswith(("import ", "from ", "@"))


class _Mutator(ast.NodeTransformer):
    """Applies mutation number ``target`` (counting sites in walk order); with target -1
    it only counts and describes the sites."""

    def __init__(self, target: int, src_lines: list[str], docstrings: set[int]) -> None:
        self.target, self.count, self.sites = target, 0, []
        self.src_lines, self.docstrings = src_lines, docstrings
        self.in_annotation = 0

    def _site(self, node, what: str) -> bool:
        if _skip_line(self.src_lines, node.lineno):
            return False
        n = self.count
        self.count += 1
        self.sites.append((node.lineno, node.col_offset, what))
        return n == self.target

    # annotations, docstrings, f-string pieces and type hints are not behaviour
    def visit_arg(self, node):
        return node

    def visit_AnnAssign(self, node):
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_FunctionDef(self, node):
        node.body = [self.visit(s) for s in node.body]
        node.args.defaults = [self.visit(d) for d in node.args.defaults]
        node.args.kw_defaults = [self.visit(d) if d is not None else None for d in node.args.kw_defaults]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_JoinedStr(self, node):
        return node

    def visit_Compare(self, node):
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            new = _CMP_SWAP.get(type(op))
            if new and self._site(node, f"{type(op).__name__} -> {new.__name__}"):
                node.ops[i] = new()
        return node

    def visit_BoolOp(self, node):
        self.generic_visit(node)
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        if self._site(node, f"{type(node.op).__name__} -> {new.__name__}"):
            node.op = new()
        return node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.Not) and self._site(node, "not x -> x"):
            return node.operand
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        new = _BIN_SWAP.get(type(node.op))
        if new and not (isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant)
                        and isinstance(node.left.value, (str, bytes))):
            if self._site(node, f"{type(node.op).__name__} -> {new.__name__}"):
                node.op = new()
        return node

    def visit_Constant(self, node):
        if id(node) in self.docstrings:
            return node
        v = node.value
        if isinstance(v, bool):
            if self._site(node, f"{v} -> {not v}"):
                return ast.copy_location(ast.Constant(not v), node)
        elif isinstance(v, int):
            if self._site(node, f"{v} -> {v + 1}"):
                return ast.copy_location(ast.Constant(v + 1), node)
        elif isinstance(v, (str, bytes)) and v and len(v) < 200:
            if self._site(node, f"{v!r:.40} -> ''"):
                return ast.copy_location(ast.Constant(v[:0]), node)
        return node

    def visit_Raise(self, node):
        self.generic_visit(node)
        if self._site(node, "raise -> pass"):
            return ast.copy_location(ast.Pass(), node)
        return node

    def visit_Return(self, node):
        self.generic_visit(node)
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            if self._site(node, "return x -> return None"):
                return ast.copy_location(ast.Return(ast.Constant(None)), node)
        return node

    def visit_Break(self, node):
        if self._site(node, "break -> continue"):
            return ast.copy_location(ast.Continue(), node)
        return node

    def visit_Continue(self, node):
        if self._site(node, "continue -> break"):
            return ast.copy_location(ast.Break(), node)
        return node


def mutants_of(path: str) -> tuple[str, list[tuple[int, int, int, str]]]:
    """(source, [(number, line, col, description)]) of one module."""
    src = open(path).read()
    tree = ast.parse(src)
    m = _Mutator(-1, src.splitlines(), _docstring_nodes(tree))
    m.visit(tree)
    return src, [(i, *site) for i, site in enumerate(m.sites)]


def mutate(src: str, number: int) -> str:
    tree = ast.parse(src)
    m = _Mutator(number, src.splitlines(), _docstring_nodes(tree))
    tree = m.visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree)


def expand(targets: list[str]) -> list[str]:
    out = []
    for t in targets:
        t = os.path.relpath(os.path.abspath(os.path.join(REPO, t)), REPO)
        full = os.path.join(REPO, t)
        if os.path.isdir(full):
            for dirpath, _, files in os.walk(full):
                out += sorted(os.path.relpath(os.path.join(dirpath, f), REPO) for f in files if f.endswith(".py"))
        elif os.path.exists(full):
            out.append(t)
        else:
            sys.exit(f"mutants: no such module {t}")
    return out


def tests_for(module: str) -> list[str]:
    best = None
    for key, tests in TESTS.items():
        if module == key or module.startswith(key.rstrip("/") + "/"):
            if best is None or len(key) > len(best):
                best = key
    if best is None:
        sys.exit(f"mutants: no tests are mapped to {module}: add it to TESTS in scripts/mutants.py")
    return TESTS[best]


def refresh_tree(work: str) -> str:
    tree = os.path.join(work, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", ".git", ".pytest_cache")
    for part in ("lamina", "tests", "examples"):
        shutil.copytree(os.path.join(REPO, part), os.path.join(tree, part), ignore=ignore)
    shutil.copy(os.path.join(REPO, "pyproject.toml"), tree)
    return tree


def run_tests(tree: str, tests: list[str], timeout: float) -> tuple[str, float]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": tree}
    t = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                           cwd=tree, env=env, capture_output=True, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t
    return ("passed" if p.returncode == 0 else "failed"), time.monotonic() - t


def load_results(path: str) -> dict[str, dict]:
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                out[r["key"]] = r
    return out


def report(results: dict[str, dict], modules: list[str] | None, hashes: dict[str, str] | None) -> int:
    rows = [r for r in results.values()
            if (modules is None or r["module"] in modules) and (hashes is None or r["hash"] == hashes.get(r["module"]))
            and r["key"].split(":")[2] == MUTATOR]
    by_mod: dict[str, list] = {}
    for r in rows:
        by_mod.setdefault(r["module"], []).append(r)
    total_killed = total = total_eq = 0
    for mod in sorted(by_mod):
        rs = [r for r in by_mod[mod] if r["outcome"] != "invalid"]
        eq = [r for r in rs if r["outcome"] == "survived" and _equivalent(mod, r["code"], r["what"])]
        rs = [r for r in rs if r not in eq]
        killed = sum(r["outcome"] != "survived" for r in rs)
        total_killed += killed
        total += len(rs)
        total_eq += len(eq)
        print(f"{mod}: {killed}/{len(rs)} killed ({100 * killed / max(1, len(rs)):.0f}%), "
              f"{len(eq)} equivalent")
        for r in sorted(rs, key=lambda r: (r["line"], r["number"])):
            if r["outcome"] == "survived":
                print(f"  SURVIVED {mod}:{r['line']}: {r['what']}    | {r['code'].strip()[:100]}")
    if total:
        print(f"total: {total_killed}/{total} killed ({100 * total_killed / total:.1f}%), "
              f"{total - total_killed} survived, {total_eq} equivalent (see EQUIVALENT)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/mutants.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", help="modules or package dirs under lamina/ (default: the core list)")
    ap.add_argument("--work", default=os.environ.get("LAMINA_MUTANTS", "/var/tmp/lamina-mutants"),
                    help="work dir: the mutated copy and results.jsonl (default %(default)s)")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="mutants tested at once (default 1)")
    ap.add_argument("--timeout-factor", type=float, default=5.0,
                    help="a mutant whose tests run this many times longer than clean counts as killed")
    ap.add_argument("--max", type=int, default=None, help="test at most N new mutants this run")
    ap.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    ap.add_argument("--report", action="store_true", help="print score and survivors, run nothing")
    ap.add_argument("--fresh", action="store_true", help="forget earlier results")
    a = ap.parse_args()
    modules = expand(a.modules or CORE)
    os.makedirs(a.work, exist_ok=True)
    results_path = os.path.join(a.work, "results.jsonl")
    if a.fresh and os.path.exists(results_path):
        os.unlink(results_path)
    results = load_results(results_path)
    sources = {m: open(os.path.join(REPO, m)).read() for m in modules}
    hashes = {m: hashlib.sha256(s.encode()).hexdigest()[:16] for m, s in sources.items()}
    test_hashes = {m: hashlib.sha256(b"".join(open(os.path.join(REPO, t), "rb").read()
                                              for t in tests_for(m))).hexdigest()[:16] for m in modules}
    if a.report:
        return report(results, modules, hashes)
    plan = []
    for mod in modules:
        _, sites = mutants_of(os.path.join(REPO, mod))
        lines = sources[mod].splitlines()
        for number, line, col, what in sites:
            key = f"{mod}:{hashes[mod]}:{MUTATOR}:{number}"
            old = results.get(key)
            if a.list:
                print(f"{mod}:{line}:{col} #{number} {what}")
            elif old is None or (old["outcome"] == "survived" and old.get("tests") != test_hashes[mod]):
                plan.append((mod, number, line, what, lines[line - 1], key))
    if a.list:
        return 0
    if a.max is not None:
        plan = plan[:a.max]
    if not plan:
        print("nothing left to test for these modules (unchanged since their results)")
        return report(results, modules, hashes)
    # one private tree per job; a clean run first gives each module's time limit
    trees = [refresh_tree(os.path.join(a.work, f"job{j}")) for j in range(max(1, a.jobs))]
    limits = {}
    for mod in sorted({p[0] for p in plan}):
        outcome, took = run_tests(trees[0], tests_for(mod), timeout=3600)
        if outcome != "passed":
            sys.exit(f"mutants: the tests of {mod} fail without any mutant ({' '.join(tests_for(mod))}); fix them first")
        limits[mod] = max(30.0, took * a.timeout_factor)
        print(f"{mod}: clean run {took:.1f}s, {sum(p[0] == mod for p in plan)} mutants to test", flush=True)
    free = list(trees)

    def one(item):
        mod, number, line, what, code, key = item
        tree = free.pop()
        path = os.path.join(tree, mod)
        try:
            try:
                mutated = mutate(sources[mod], number)
            except (SyntaxError, ValueError) as e:
                return {"key": key, "module": mod, "hash": hashes[mod], "number": number, "line": line,
                        "what": what, "code": code, "outcome": "invalid", "error": str(e), "seconds": 0}
            with open(path, "w") as f:
                f.write(mutated)
            outcome, took = run_tests(tree, tests_for(mod), limits[mod])
        finally:
            with open(path, "w") as f:
                f.write(sources[mod])
            free.append(tree)
        return {"key": key, "module": mod, "hash": hashes[mod], "tests": test_hashes[mod], "number": number,
                "line": line, "what": what, "code": code,
                "outcome": "survived" if outcome == "passed" else f"killed-{outcome}", "seconds": round(took, 2)}

    done = 0
    with open(results_path, "a") as out, concurrent.futures.ThreadPoolExecutor(max(1, a.jobs)) as pool:
        for r in pool.map(one, plan):
            out.write(json.dumps(r) + "\n")
            out.flush()
            results[r["key"]] = r
            done += 1
            mark = "SURVIVED" if r["outcome"] == "survived" else r["outcome"]
            print(f"[{done}/{len(plan)}] {r['module']}:{r['line']} {r['what']}: {mark}", flush=True)
    return report(results, modules, hashes)


if __name__ == "__main__":
    raise SystemExit(main())
