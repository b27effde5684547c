"""Imports point down only: every kvopt module sits in a layer and imports nothing from a higher one.

Imports are read with ``ast`` from the source (also those inside functions, which
would otherwise hide an upward dependency), so the test needs no import side effects.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "kvopt"

# Lowest first.  A module may import from its own layer or any lower one; a
# pattern ending in ".*" covers a whole subpackage (and the package itself).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("kvopt.model",),
    ("kvopt.evaluate", "kvopt.scaling"),
    ("kvopt.bounds", "kvopt.io", "kvopt.tables", "kvopt.suites.*"),
    ("kvopt.heuristics.*",),
    ("kvopt.exact.backend", "kvopt.exact.solvers", "kvopt.exact.linear", "kvopt.exact.brute", "kvopt.exact.knapsack"),
    ("kvopt.exact.assignment", "kvopt.exact.setpart"),
    ("kvopt.exact.cpsat", "kvopt.exact.milp", "kvopt.exact.colgen", "kvopt.exact.packing"),
    ("kvopt.exact.mccormick", "kvopt.exact.candidates", "kvopt.exact.branch_price"),
    ("kvopt.exact.bisection", "kvopt.exact.export", "kvopt.exact"),
    ("kvopt.exact.reference", "kvopt.lns"),
    ("kvopt.solve", "kvopt.replan.*", "kvopt.anytime"),
    ("kvopt.bench.*",),
    ("kvopt.integrations.*",),
    ("kvopt.cli", "kvopt.__main__", "kvopt"),
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """The layer index of ``module`` (the most specific pattern wins), ``None`` if unlisted."""
    best: tuple[int, int] | None = None  # (specificity, layer)
    for index, patterns in enumerate(LAYERS):
        for pattern in patterns:
            if pattern.endswith(".*"):
                stem = pattern[:-2]
                if module == stem or module.startswith(stem + "."):
                    candidate = (len(stem), index)
                else:
                    continue
            elif module == pattern:
                candidate = (len(pattern) + 1, index)
            else:
                continue
            if best is None or candidate > best:
                best = candidate
    return None if best is None else best[1]


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """kvopt modules imported anywhere in ``path`` (``from kvopt.x import y`` counts ``kvopt.x.y`` if a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("kvopt"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("kvopt"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    # The root package only re-exports the public API; importing its __version__ is no dependency.
    return {name: {m for m in imported_modules(path, known) if m != name and m != "kvopt"}
            for name, path in modules.items()}


def test_every_module_has_a_layer() -> None:
    unlisted = [m for m in all_modules() if layer_of(m) is None]
    assert not unlisted, f"add these modules to LAYERS: {unlisted}"


def test_imports_point_down_only() -> None:
    upward = []
    for module, targets in import_graph().items():
        for target in targets:
            if target in all_modules() and layer_of(target) > layer_of(module):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports from a higher layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles() -> None:
    graph = import_graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", ["kvopt.exact.setpart", "kvopt.exact.mccormick", "kvopt.exact.colgen"])
def test_solver_modules_hold_no_benchmark(module: str) -> None:
    """Benchmarks live in scripts/ or kvopt.bench: a solver module writes no report."""
    source = all_modules()[module].read_text()
    assert "write_text(" not in source and '__name__ == "__main__"' not in source
