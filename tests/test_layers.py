"""The floor plan, checked on the source: every import points down, no module loop, heavy libraries stay lazy.

Floors, lowest first: ``backend`` (the ground) < ``labeling`` < ``jobs`` < ``services`` < ``app`` and ``cli``.
A module may import its own folder or a lower one — at module level or inside a function alike. ``app`` and
``cli`` share the top floor but not each other: both are entry points. Every ``import`` node of every module
counts (``ast.walk``), so a lazy import cannot hide an upward dependency or a loop.
"""

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FLOORS = {"backend": 1, "labeling": 2, "jobs": 3, "services": 4, "app": 5, "cli": 5}
HEAVY = {"torch", "transformers", "trl", "peft", "datasets", "accelerate", "sentence_transformers", "faiss"}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = REPO) -> dict[str, Path]:
    return {module_name(p, root): p for folder in FLOORS for p in sorted((root / folder).rglob("*.py"))}


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, *, lazy: bool = True) -> list[tuple[int, str]]:
    """(line, imported name) of every import in the file; ``lazy=False`` keeps module-level ones only.

    ``from a import b`` yields ``a.b`` (b may be a module) as well as ``a``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nodes = ast.walk(tree) if lazy else _module_level(tree.body)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            found += [(node.lineno, base)] + [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _module_level(body: list[ast.stmt]):
    """Statements that run at import: the body, and the bodies of top-level if/try (not functions, classes)."""
    for node in body:
        yield node
        if isinstance(node, ast.If) and not _is_type_checking(node):
            yield from _module_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _module_level(node.body + node.orelse + node.finalbody
                                     + [s for h in node.handlers for s in h.body])


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lives in (``a.b.func`` → ``a.b``), or None for a library."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def import_graph(modules: dict[str, Path], *, lazy: bool = True) -> dict[str, dict[str, int]]:
    """module → {imported project module: first line}."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges: dict[str, int] = {}
        for line, name in imports_of(module, path, lazy=lazy):
            target = resolve(name, modules)
            if target and target != module:
                edges.setdefault(target, line)
        graph[module] = edges
    return graph


def floor_violations(modules: dict[str, Path], root: Path = REPO) -> list[str]:
    problems = []
    for module, edges in import_graph(modules).items():
        here = module.split(".")[0]
        for target, line in edges.items():
            there = target.split(".")[0]
            if FLOORS[there] > FLOORS[here] or (FLOORS[there] == FLOORS[here] and there != here):
                problems.append(f"{modules[module].relative_to(root)}:{line} ({here}, floor {FLOORS[here]}) "
                                f"imports {target} ({there}, floor {FLOORS[there]})")
    return problems


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each as a loop to print."""
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def heavy_chains(modules: dict[str, Path], entry: str) -> list[str]:
    """Import chains from ``entry`` to a heavy library through module-level imports only (what loading it costs)."""
    graph = _module_level_graph(tuple(sorted(modules.items())))
    seen, chains, todo = {entry}, [], [[entry]]
    while todo:
        chain = todo.pop()
        here = chain[-1]
        for _, name in imports_of(here, modules[here], lazy=False):
            if name.split(".")[0] in HEAVY:
                chains.append(" → ".join(chain + [name]))
        for target in graph[here]:
            if target not in seen:
                seen.add(target)
                todo.append(chain + [target])
    return chains


@cache
def _module_level_graph(items: tuple) -> dict[str, dict[str, int]]:
    return import_graph(dict(items), lazy=False)


MODULES = project_modules()
LIGHT_ENTRIES = sorted(m for m in MODULES if m.split(".")[0] in ("app", "cli", "services"))


def test_imports_point_down_only():
    problems = floor_violations(MODULES)
    assert not problems, "imports of a higher floor:\n" + "\n".join(problems)


def test_no_import_loops():
    loops = cycles(import_graph(MODULES))
    assert not loops, "modules that import each other:\n" + "\n".join(" ⇄ ".join(loop) for loop in loops)


@pytest.mark.parametrize("entry", LIGHT_ENTRIES)
def test_pages_cli_and_services_load_no_heavy_library(entry):
    """What a page rerun, `studio --help` or a service import loads at module level, transitively."""
    chains = heavy_chains(MODULES, entry)
    assert not chains, "heavy library loaded at import (import it inside the function that needs it):\n" + \
        "\n".join(chains)


@pytest.mark.parametrize("path", [p for m, p in MODULES.items() if not m.startswith("app")],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_only_app_imports_streamlit(path):
    names = {name.split(".")[0] for _, name in imports_of(module_name(path), path)}
    assert "streamlit" not in names


@pytest.mark.parametrize("path", [p for m, p in MODULES.items() if m.startswith("app")],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_pages_hold_no_sql_orm_or_subprocess(path):
    names = {name for _, name in imports_of(module_name(path), path)}
    assert not {n for n in names if n.split(".")[0] in ("sqlalchemy", "subprocess")}
    assert not {n for n in names if n.startswith("backend.db.tables")}, "pages ask a service, not the ORM"


# --- the checks check themselves: an upward import and a loop planted in a scratch tree are caught ----------

def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return project_modules(tmp_path)


def test_floor_check_catches_a_lazy_upward_import(tmp_path):
    modules = _tree(tmp_path, {
        "backend/__init__.py": "", "jobs/__init__.py": "", "jobs/queue.py": "X = 1\n",
        "backend/settings.py": "def f():\n    from jobs.queue import X\n    return X\n"})
    assert floor_violations(modules, tmp_path) == [
        "backend/settings.py:2 (backend, floor 1) imports jobs.queue (jobs, floor 3)"]


def test_floor_check_keeps_app_and_cli_apart(tmp_path):
    modules = _tree(tmp_path, {"app/__init__.py": "", "cli/__init__.py": "", "cli/main.py": "import app\n"})
    assert floor_violations(modules, tmp_path) == ["cli/main.py:1 (cli, floor 5) imports app (app, floor 5)"]


def test_cycle_check_finds_a_loop_through_a_lazy_import(tmp_path):
    modules = _tree(tmp_path, {
        "services/__init__.py": "", "services/a.py": "from services import b\n",
        "services/b.py": "def f():\n    from services.c import g\n", "services/c.py": "import services.a\n"})
    assert cycles(import_graph(modules)) == [["services.a", "services.b", "services.c"]]


def test_heavy_check_follows_module_level_chains(tmp_path):
    modules = _tree(tmp_path, {
        "backend/__init__.py": "", "backend/lazy.py": "def f():\n    import torch\n",
        "backend/heavy.py": "import torch\n", "services/__init__.py": "",
        "services/page.py": "from backend import lazy\nfrom backend.heavy import x\n"})
    assert heavy_chains(modules, "services.page") == ["services.page → backend.heavy → torch"]
    assert heavy_chains(modules, "backend.lazy") == []
