"""lamina's modules import each other one way: no cycle among module-level imports.

Only imports that run when a module is loaded count (its top level, and ``try``/``if`` blocks
there, but not ``if TYPE_CHECKING:``); an import inside a function is a lazy edge that the
start-up budget wants, and a cycle through one is allowed to exist only until someone makes
it module-level -- which is when this test fails. A package ``__init__`` importing its own
submodules is the package's public face, not an edge back from them.
"""

from __future__ import annotations

import ast
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules() -> dict[str, str]:
    out = {}
    base = os.path.join(REPO, "lamina")
    for dirpath, _, files in os.walk(base):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, f), REPO)[:-3].replace("/", ".")
                out[rel.removesuffix(".__init__")] = os.path.join(dirpath, f)
    return out


def _toplevel(body):
    for node in body:
        if isinstance(node, ast.If):
            test = node.test
            if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING" or \
                    isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING":
                yield from _toplevel(node.orelse)
                continue
            yield from _toplevel(node.body)
            yield from _toplevel(node.orelse)
        elif isinstance(node, ast.Try):
            for part in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _toplevel(part)
        else:
            yield node


def edges(mods: dict[str, str]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.endswith("__init__.py")
        for node in _toplevel(ast.parse(open(path).read()).body):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod if is_pkg else mod.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}" if base else pkg
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                if t in mods and t != mod and not (is_pkg and t.startswith(mod + ".")):
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    n = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = n
        n += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = n
                    n += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_detector_finds_a_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_lamina_modules():
    graph = edges(modules())
    assert sum(map(len, graph.values())) > 100  # the parser saw the real imports
    assert cycles(graph) == []


def test_the_former_circles_run_one_way_even_lazily():
    """containers -> lifecycle and expand -> parser were circles (one side lazy); now
    neither module imports the other back, not even inside a function."""
    def imports(path: str) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(open(os.path.join(REPO, path)).read())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names
    assert "lamina.runtime.lifecycle" not in imports("lamina/runtime/containers.py")
    assert "lamina.runtime.containers" in imports("lamina/runtime/lifecycle.py")
    assert "lamina.dockerfile.expand" not in imports("lamina/dockerfile/parser.py")
    assert "lamina.dockerfile.parser" in imports("lamina/dockerfile/expand.py")
