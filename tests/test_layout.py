"""The layout (issue 19): the core is pure, imports point one way, modules stay small.

Read from the source with `ast`, never by importing it: every import statement counts,
at the top of a module or inside a function (a lazy import is still a dependency), and so
does `importlib.import_module("literal")`. cli.py's verb table names its modules as strings
and imports the chosen one by name: that is dispatch, not a dependency of cli, and is not
an edge here (the verbs' modules import cli for its shared flags).

The allow-lists below name today's offenders in files other engineers are splitting; the
lead empties them at merge. An entry that no longer offends fails its test, so a list can
only shrink.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIZARD = ROOT / "wizard"
MAX_LINES = 600

# wizard.core modules allowed to import outside the core and the standard library: none.
CORE_IMPORT_ALLOWED: dict[str, set[str]] = {}

# Import cycles allowed, for now, each as the sorted modules of one strongly connected
# component. (Empty: the last one, wizard.live.errors <-> wizard.live.target, is gone.)
CYCLES_ALLOWED: set[tuple[str, ...]] = set()

# Modules allowed, for now, over MAX_LINES lines.
LONG_ALLOWED: set[str] = {
    # not split yet: 705 lines
    "wizard/ui/state.py",
}


def _modules() -> dict[str, Path]:
    """Every module of the wizard package by dotted name (a package by its own name)."""
    out = {}
    for path in sorted(WIZARD.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, source: str, is_package: bool = False) -> set[str]:
    """Every module `name` imports, anywhere in its source, resolved to a dotted name: a
    submodule when `from package import submodule` names one, else the module itself."""
    tree = ast.parse(source, name)
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in MODULES else module)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


GRAPH = {name: _imports(name, path.read_text(), path.name == "__init__.py")
         for name, path in MODULES.items()}


def _internal(targets: set[str]) -> set[str]:
    return {t for t in targets if t in MODULES}


def test_the_scan_sees_lazy_imports_and_relative_ones() -> None:
    lazy = "def f():\n    from wizard.core import model\n    import asyncpg\n"
    assert _imports("wizard.x", lazy) == {"wizard.core.model", "asyncpg"}
    relative = "from . import model\nfrom .catalog import load\nfrom .. import cli\n"
    assert _imports("wizard.core.y", relative) == {
        "wizard.core.model", "wizard.core.catalog", "wizard.cli"}
    assert _imports("wizard.core", "from . import model\n", is_package=True) == {
        "wizard.core.model"}
    by_name = "import importlib\nimportlib.import_module('wizard.guard')\n"
    assert _imports("wizard.x", by_name) == {"importlib", "wizard.guard"}


def test_core_imports_only_itself_and_the_standard_library() -> None:
    stdlib = sys.stdlib_module_names
    offenders: dict[str, set[str]] = {}
    for name, targets in GRAPH.items():
        if name != "wizard.core" and not name.startswith("wizard.core."):
            continue
        bad = {t for t in targets if t.split(".")[0] not in stdlib
               and t != "wizard.core" and not t.startswith("wizard.core.")}
        if bad:
            offenders[name] = bad
    assert offenders == CORE_IMPORT_ALLOWED, (
        "wizard/core must import only the standard library and wizard.core.* "
        "(an allow-list entry that no longer offends is removed)")


def _cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected components with more than one module, or a module importing
    itself (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[tuple[str, ...]] = set()
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1 or node in graph[node]:
                    out.add(tuple(sorted(comp)))
    return out


def test_the_cycle_finder_finds_a_lazy_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert _cycles(graph) == {("a", "b", "c"), ("e",)}
    assert _cycles({"a": {"b"}, "b": set()}) == set()


def test_no_import_cycles_in_wizard() -> None:
    graph = {name: _internal(targets) - {name} for name, targets in GRAPH.items()}
    assert _cycles(graph) == CYCLES_ALLOWED, (
        "import cycle in wizard/ (lazy imports count); make the lower module a leaf")


def test_no_module_over_600_lines() -> None:
    long = {str(path.relative_to(ROOT)) for path in MODULES.values()
            if len(path.read_text().splitlines()) > MAX_LINES}
    assert long == LONG_ALLOWED, (
        f"modules over {MAX_LINES} lines: split them by job (an allow-list entry that is "
        "short enough now is removed)")


def test_bench_imports_nothing_from_tests() -> None:
    """The benchmarks use the harness in wizard/fleet (and wizard/web/local.py), never a
    test helper: tests may change without breaking a benchmark."""
    offenders = {}
    for path in sorted((ROOT / "bench").glob("*.py")):
        bad = {m for m in _imports(f"bench.{path.stem}", path.read_text())
               if m == "tests" or m.startswith("tests.")}
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


def _test_module_imports(name: str, source: str) -> set[str]:
    """The test modules (and conftests) that `source` imports: a module whose last part is
    test_* or conftest, by its dotted name (tests.test_app) or bare (test_app, as pytest's
    rootdir on sys.path allows)."""
    return {m for m in _imports(name, source)
            if m.rpartition(".")[2].startswith("test_") or m.rpartition(".")[2] == "conftest"}


def test_the_test_scan_sees_lazy_bare_and_dotted_test_imports() -> None:
    source = ("from tests.support import go\nfrom tests.test_app import texts\n"
              "def f():\n    import test_trust\n    from tests.e2e.conftest import ROOT\n")
    assert _test_module_imports("tests.test_x", source) == {
        "tests.test_app", "test_trust", "tests.e2e.conftest"}


def test_test_modules_import_helpers_only_from_the_support_module() -> None:
    """Shared helpers live in tests/support.py: no module under tests/ imports a test module
    or a conftest (a test module changes or moves without breaking another)."""
    offenders = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        bad = _test_module_imports(name, path.read_text())
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}, "import shared helpers from tests/support.py"


def _readme_tree() -> str:
    """The code block of README's "How the code is laid out"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    return section.split("```", 2)[1]


def _tree_entries(tree: str) -> dict[str, set[str]]:
    """wizard/'s entries in the tree (`core/`, `cli.py`, ...), each with the words of its
    lines (an entry's continuation lines are indented deeper)."""
    entries: dict[str, set[str]] = {}
    current = None
    for line in tree.splitlines():
        indent = len(line) - len(line.lstrip())
        if indent == 2:
            current = line.split()[0]
            entries[current] = set()
        elif indent == 0:
            current = None
        if current is not None:
            entries[current] |= set(re.findall(r"[\w./-]+", line))
    return entries


def test_readme_tree_matches_the_folders() -> None:
    """Every package and top-level module of wizard/ has its entry in README's tree; the
    core's entry names each of its files and no other, and scenario/, export/, live/ and
    fleet/ name each of their modules: the tree cannot drift from the code."""
    entries = _tree_entries(_readme_tree())
    packages = {p.name + "/" for p in WIZARD.iterdir() if (p / "__init__.py").is_file()}
    top = {p.name for p in WIZARD.glob("*.py") if not p.name.startswith("__")}
    assert (packages | top) - set(entries) == set(), "missing from README's tree"
    core = {p.name for p in (WIZARD / "core").glob("*.py") if not p.name.startswith("__")}
    named = {w for w in entries["core/"] if w.endswith(".py")}
    assert named == core, "README's core/ entry and wizard/core differ"
    for sub in ("scenario", "export", "live", "fleet"):
        modules = {p.stem for p in (WIZARD / sub).glob("*.py") if not p.name.startswith("__")}
        assert modules - entries[sub + "/"] == set(), f"{sub}/ modules missing from the tree"
