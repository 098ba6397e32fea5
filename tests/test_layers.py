"""The import structure of ``src/vsrlab``: the layer order that README's "Where things are" states
(lowest first), checked on every import, at module level or inside a function; no import cycle
between modules."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "vsrlab"


def _layers() -> list[set[str]]:
    """The README's layer line: ``Layers, lowest first: `a` < `b`, `c` < ...``."""
    line = next(
        x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("Layers, lowest first")
    )
    return [set(re.findall(r"`(\w+)`", part)) for part in line.split(":", 1)[1].split("<")]


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """``{module: vsrlab modules it imports}`` (``from vsrlab.x import name`` counts as ``vsrlab.x``
    and, when ``vsrlab.x.name`` is a module, as that module)."""
    modules = {_module(p) for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        source = _module(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.level == 0
                and (node.module or "").startswith("vsrlab")
            ):
                names = [f"{node.module}.{a.name}" for a in node.names]
                targets = [n for n in names if n in modules] or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("vsrlab")]
            else:
                continue
            graph[source].update(t for t in targets if t != source)
    return graph


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_readme_names_every_package_once():
    layers = _layers()
    named = [p for layer in layers for p in layer]
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert len(named) == len(set(named)) and set(named) == packages, (sorted(named), sorted(packages))
    assert not [p.name for p in SRC.glob("*.py") if p.name != "__init__.py"], "modules outside a package"


def test_no_import_reaches_up_or_sideways():
    rank = {p: i for i, layer in enumerate(_layers()) for p in layer}
    wrong = []
    for source, targets in _imports().items():
        src_pkg = _package(source)
        if not src_pkg:  # vsrlab/__init__.py: the Python API, above everything (imported lazily)
            continue
        for target in targets:
            dst_pkg = _package(target)
            if dst_pkg != src_pkg and (dst_pkg == "" or rank[dst_pkg] >= rank[src_pkg]):
                wrong.append(f"{source} -> {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


def test_no_import_cycle_between_modules():
    graph = _imports()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ re-exporting its own modules is not a cycle of meaning
            if nxt == node.rsplit(".", 1)[0] or node == nxt.rsplit(".", 1)[0]:
                continue
            if state.get(nxt) == 1:
                cycles.append(
                    " -> ".join([*path[path.index(nxt) :], nxt]) if nxt in path else f"{node} -> {nxt}"
                )
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)
