"""The layout rules: no import cycle anywhere, catalog never imports scheduler,
tickless imports neither, and every module says what it holds.

The import graph is read from the source (every import statement, including
those inside functions and under ``if TYPE_CHECKING``: a cycle hidden there
is still a cycle for a reader). Importing ``a.b.c`` also runs the ``__init__``
of ``a`` and ``a.b``, unless the importer sits inside them already (then they
are initialised before it runs), so those count as edges too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tickless", "scheduler", "catalog")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:index]) for index in range(1, len(parts))]


def imports_of(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for target in targets:
            if target not in known or target in _ancestors(name):
                continue  # a package the importer sits in is initialised before the importer runs
            yield target
            for ancestor in _ancestors(target):
                if ancestor in known and ancestor != name and ancestor not in _ancestors(name):
                    yield ancestor


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports_of(name, path, known)) - {name} for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for following in edges[node]:
            if following not in index:
                visit(following)
                low[node] = min(low[node], low[following])
            elif following in on_stack:
                low[node] = min(low[node], index[following])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_real_imports() -> None:
    edges = graph()
    assert "scheduler.execution.events" in edges["scheduler.service"]
    assert "catalog.library" in edges["catalog.refresh"]  # the package __init__ builds on the library object
    assert "tickless.config.yamlfile" in edges["catalog.registry"]


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle_through_a_package_init() -> None:
    # The shape that was fixed: a module importing a sub-package's module whose __init__ imports it back.
    edges = {"p.library": {"p.refresh.run", "p.refresh"}, "p.refresh": {"p.library", "p.refresh.run"}, "p.refresh.run": set()}
    assert cycles(edges) == [["p.library", "p.refresh"]]


@pytest.mark.parametrize(("importer", "forbidden"), [("catalog", "scheduler"), ("tickless", "scheduler"), ("tickless", "catalog")])
def test_packages_stand_on_their_own(importer: str, forbidden: str) -> None:
    offenders = sorted(
        f"{name} imports {target}"
        for name, targets in graph().items() if name.split(".")[0] == importer
        for target in targets if target.split(".")[0] == forbidden
    )
    assert offenders == []


def test_every_module_says_what_it_holds() -> None:
    missing = [name for name, path in modules().items() if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))]
    assert missing == []


def test_the_layout_in_docs_names_every_module() -> None:
    # docs/design.md shows the module tree; a module missing from it is a newcomer's wrong guess.
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    tree = text.split("## Layout", 1)[1].split("```", 2)[1]
    named = set(re.findall(r"\b([a-z_]+\.py)\b", tree))
    missing = sorted(
        str(path.relative_to(ROOT)) for path in modules().values()
        if path.name not in ("__init__.py", "__main__.py") and path.name not in named
    )
    assert missing == []
