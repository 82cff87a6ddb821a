"""The layout of tasks/ (DESIGN §3): no module imports, however indirectly, one that imports
it, and only a few modules sit at the top of the package.

Every import counts: at the top of a module, inside a function, under TYPE_CHECKING. So
does the package an import passes through: `import tasks.images.tree` runs
tasks/images/__init__.py first, and a package's __init__ that imported its members would
make every importer of one member depend on all of them.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP_MODULES = 12
Graph = dict[str, dict[str, int]]  # module -> {module it imports: line of the first import}
Pairs = frozenset[tuple[str, str]]  # (importer, imported)

# (importer, imported) pairs allowed to close a cycle for now: none. An entry goes with its
# import (an entry whose import no longer closes a cycle fails the test below).
ALLOWED: Pairs = frozenset()


def modules(root: Path, package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(module: str, path: Path, known: Mapping[str, Path]) -> Iterator[tuple[str, int]]:
    """Each module of `known` that `module` imports, with the line, by name only."""

    def within(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            # `from p import m` imports the module p.m where there is one, else a name of p
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for name in names:
            target = within(name)
            if target and target != module:
                yield target, node.lineno


def import_graph(
    root: Path, package: str, ignored: frozenset[tuple[str, str]] = frozenset()
) -> Graph:
    """What each module of `package` imports, with the packages an import passes through
    from outside them; `ignored` imports left out."""
    known = modules(root, package)
    graph: Graph = {}
    for module, path in known.items():
        edges = graph.setdefault(module, {})
        for target, line in imports(module, path, known):
            if (module, target) in ignored:
                continue
            edges.setdefault(target, line)
            parts = target.split(".")
            for end in range(1, len(parts)):
                outer = ".".join(parts[:end])
                if outer in known and not f"{module}.".startswith(f"{outer}."):
                    edges.setdefault(outer, line)
    return graph


def strongly_connected(graph: Graph) -> list[set[str]]:
    """The groups of two or more modules that each reach one another (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def one_cycle(graph: Graph, group: set[str]) -> list[str]:
    """The shortest path from a module of `group` back to it (breadth first)."""
    start = min(group)
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        for nxt in sorted(graph[node]):
            if nxt == start:
                path = [node]
                while (before := previous[path[-1]]) is not None:
                    path.append(before)
                return [*reversed(path), start]
            if nxt in group and nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{sorted(group)} is no cycle")


def described(graph: Graph, cycle: list[str]) -> str:
    return "\n".join(
        f"  {a} (line {graph[a][b]}) imports {b}" for a, b in itertools.pairwise(cycle)
    )


def test_no_module_of_tasks_imports_itself_through_others():
    graph = import_graph(REPO, "tasks", ignored=ALLOWED)
    cycles = [
        described(graph, one_cycle(graph, group)) + f"\n  (one of the cycles among {sorted(group)})"
        for group in strongly_connected(graph)
    ]
    assert not cycles, "import cycles in tasks/:\n" + "\n\n".join(cycles)


def test_every_allowed_import_still_closes_a_cycle():
    groups = strongly_connected(import_graph(REPO, "tasks"))
    stale = [pair for pair in ALLOWED if not any(set(pair) <= group for group in groups)]
    assert not stale, f"no longer in a cycle: take these out of ALLOWED: {stale}"


def test_few_modules_at_the_top_of_tasks():
    top = sorted(p.name for p in (REPO / "tasks").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= TOP_MODULES, f"{len(top)} modules at the top of tasks/: {top}"


def package(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_an_import_inside_a_function_closes_a_cycle(tmp_path):
    root = package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg import b\n",
            "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n",
            "pkg/c.py": "from pkg.a import f\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert strongly_connected(graph) == [{"pkg.a", "pkg.b"}]
    assert described(graph, one_cycle(graph, {"pkg.a", "pkg.b"})) == (
        "  pkg.a (line 2) imports pkg.b\n  pkg.b (line 3) imports pkg.a"
    )


def test_a_package_init_is_imported_with_its_members(tmp_path):
    root = package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from pkg.sub.writer import write\n",
            "pkg/sub/tree.py": "",
            "pkg/sub/writer.py": "from pkg import spec\n",
            "pkg/spec.py": "from pkg.sub.tree import Tree\n",
        },
    )
    graph = import_graph(root, "pkg")
    assert strongly_connected(graph) == [{"pkg.sub", "pkg.sub.writer", "pkg.spec"}]
    # a member importing a sibling does not depend on its own package's __init__
    assert "pkg.sub" not in graph["pkg.sub.writer"]


def test_an_ignored_import_breaks_no_other_cycle(tmp_path):
    root = package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": "import pkg.a\n",
        },
    )
    assert (
        strongly_connected(import_graph(root, "pkg", ignored=frozenset({("pkg.b", "pkg.a")}))) == []
    )
    assert (
        strongly_connected(import_graph(root, "pkg", ignored=frozenset({("pkg.b", "pkg.c")}))) != []
    )
