"""The core's imports (issue 19): wizard/core imports only the standard library and itself, and
no module of wizard imports itself back through others (lazy, function-level imports counted).

Read from the source with ast, so an import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

WIZARD = Path(__file__).resolve().parent.parent / "wizard"
# Known and tracked elsewhere (issue 19 lists it): the live check's errors <-> target.
KNOWN_CYCLES = [{"wizard.live.errors", "wizard.live.target"}]


def _modules() -> dict[str, Path]:
    out = {}
    for p in WIZARD.rglob("*.py"):
        parts = p.relative_to(WIZARD.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(path: Path) -> set[str]:
    """Every module name an import statement in the file names (top level or lazy)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_core_imports_only_the_standard_library_and_itself():
    bad = {}
    for name, path in _modules().items():
        if not name.startswith("wizard.core"):
            continue
        for imp in _imports(path):
            top = imp.split(".")[0]
            inside = imp == "wizard.core" or imp.startswith("wizard.core.")
            if not inside and (top == "wizard" or top not in sys.stdlib_module_names):
                bad.setdefault(name, set()).add(imp)
    assert not bad, bad


def test_no_import_cycles_lazy_imports_included():
    mods = _modules()
    graph = {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}
    cycles = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            # A package importing its own submodule and back is not a cycle of modules.
            if len(comp) > 1 and not all(c.startswith(min(comp, key=len)) for c in comp):
                cycles.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert [c for c in cycles if c not in KNOWN_CYCLES] == []
