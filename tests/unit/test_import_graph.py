"""The package's import graph: no circles, and run-time code free of install-time converters.

The graph is read from the source with `ast` (nothing is imported), counting every import
statement, also those inside functions: a lazy import hides a circle from Python's loader but
not from a reader, and the next refactor turns it into an ImportError.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

import crowdsight

PACKAGE_DIR = Path(crowdsight.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """crowdsight modules named by the import statements of one module."""
    out: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` imports the submodule when there is one.
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        out.update(n for n in names if n in known and n != module)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the crowdsight modules it imports (anywhere in its source)."""
    mods = _modules()
    known = set(mods)
    return {
        name: _imported(ast.parse(path.read_text()), name, path.name == "__init__.py", known)
        for name, path in mods.items()
    }


def reachable(graph: dict[str, set[str]], starts: list[str]) -> set[str]:
    """Every module imported, directly or not, by one of ``starts``."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_the_graph_sees_known_edges() -> None:
    graph = import_graph()
    assert len(graph) > 100
    assert "crowdsight.config.pipeline" in graph["crowdsight.pipeline.camera"]
    # a lazy import inside a function counts
    assert "crowdsight.perception.detector" in graph["crowdsight.pipeline.camera"]


def test_no_import_circle() -> None:
    try:
        tuple(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("layer", ["crowdsight.perception", "crowdsight.privacy"])
def test_run_time_layers_never_reach_the_converters(layer: str) -> None:
    graph = import_graph()
    starts = [n for n in graph if n == layer or n.startswith(layer + ".")]
    reached = reachable(graph, starts)
    bad = sorted(n for n in reached if n.startswith("crowdsight.models.converters"))
    assert bad == [], f"{layer} reaches {bad}"
