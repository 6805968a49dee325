"""No import cycle inside segnext_jt, read statically from the source (nothing is imported).

Two graphs are built from every `import` / `from ... import` of the package's modules:
  * module level: the imports that run when the module is imported (class bodies and module-level
    `if`/`try` blocks included, `if TYPE_CHECKING:` blocks excluded);
  * all: the same plus the imports inside functions.
A cycle at module level breaks the import outright; a cycle that needs a function-level import
works only because one side waits until it is called, which hides the tangle instead of removing
it. Both must be empty. Importing `a.b.c` also runs the `__init__` of `a.b` (an edge to it), except
for the packages that contain the importing module, which are already being imported.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

PACKAGE = "segnext_jt"
SOURCE = Path(__file__).resolve().parents[1] / PACKAGE

Edges = Dict[str, Dict[str, Set[str]]]  # importer -> imported -> {"module", "function"}


def _modules(source: Path = SOURCE) -> Dict[str, Path]:
    modules = {}
    for path in sorted(source.rglob("*.py")):
        parts = list(path.relative_to(source.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, in_function: bool = False) -> Iterator[Tuple[ast.stmt, bool]]:
    """(import statement, inside a function?) for every import that can run."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, in_function
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(ast.Module(body=node.orelse, type_ignores=[]), in_function)
            continue
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _imports(node, nested)


def _targets(node: ast.stmt, importer: str, modules: Dict[str, Path]) -> List[str]:
    """The package modules an import statement names (a `from X import y` names X.y too when y is
    a submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = importer.split(".")
        if modules[importer].name != "__init__.py":
            base = base[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules]


def import_graph(source: Path = SOURCE) -> Edges:
    modules = _modules(source)
    edges: Edges = {name: {} for name in modules}
    for importer, path in modules.items():
        for node, in_function in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, importer, modules):
                parts = target.split(".")
                for depth in range(1, len(parts) + 1):  # `import a.b.c` runs a, a.b and a.b.c
                    name = ".".join(parts[:depth])
                    if name not in modules or importer == name or importer.startswith(name + "."):
                        continue
                    edges[importer].setdefault(name, set()).add("function" if in_function else "module")
    return edges


def _restrict(edges: Edges, module_level_only: bool) -> Dict[str, Set[str]]:
    return {a: {b for b, kinds in out.items() if not module_level_only or "module" in kinds}
            for a, out in edges.items()}


def _find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def _describe(cycle: List[str], edges: Edges) -> str:
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        where = "" if "module" in edges[a][b] else " (inside a function)"
        steps.append(f"{a} -> {b}{where}")
    return "; ".join(steps)


def test_the_graph_sees_both_kinds_of_import():
    # guards the test itself: an empty or mis-resolved graph would find no cycle either
    edges = import_graph()
    assert "module" in edges["segnext_jt.config"]["segnext_jt.config_schema"]
    assert edges["segnext_jt.cli"]["segnext_jt.runtime"] == {"function"}
    assert "segnext_jt.io" in edges["segnext_jt.engine.checkpoint"]  # a package's __init__ runs too
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) in (["a", "b", "c", "a"],)
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_at_module_level():
    edges = import_graph()
    cycle = _find_cycle(_restrict(edges, module_level_only=True))
    assert cycle is None, f"module-level import cycle: {_describe(cycle, edges)}"


def test_no_import_cycle_through_function_level_imports():
    edges = import_graph()
    cycle = _find_cycle(_restrict(edges, module_level_only=False))
    assert cycle is None, (f"import cycle closed by a function-level import: {_describe(cycle, edges)}; "
                           "move what both sides need into a module that imports neither")


def test_the_error_module_is_a_leaf():
    # every module may import segnext_jt.errors because it imports nothing from the package
    assert import_graph()["segnext_jt.errors"] == {}


LEAVES = ("segnext_jt.errors", "segnext_jt.files", "segnext_jt.interrupts", "segnext_jt.data.layouts")


def test_the_leaves_and_the_harness_boundary_of_docs_design():
    """docs/design.md "Where things live": the leaf modules import nothing from the package, and
    nothing outside the harness (segnext_jt.repro) imports it."""
    edges = import_graph()
    for leaf in LEAVES:
        assert leaf in edges, f"{leaf} is gone: update LEAVES and docs/design.md"
        assert not edges[leaf], f"{leaf} should be a leaf but imports {sorted(edges[leaf])}"
    into_harness = sorted(importer for importer, targets in edges.items()
                          if not importer.startswith("segnext_jt.repro")
                          and any(t.startswith("segnext_jt.repro") for t in targets))
    assert not into_harness, f"the port imports the harness: {into_harness}"
