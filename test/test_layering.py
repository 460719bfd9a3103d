"""Layers point down (issue #13): the package's own import graph, read with ``ast`` (nothing is imported).

Function-local imports count like top-level ones: they dodge a circle at import time but keep the two modules
tangled.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

import pytest

PKG = "espnet2_ext"
ROOT = Path(__file__).resolve().parents[1] / PKG


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def internal(name: str, modules: Set[str]) -> str:
    """The package module ``name`` refers to (``a.b.c`` for an imported attribute c of module a.b)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def import_graph() -> Dict[str, Set[str]]:
    files = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    graph: Dict[str, Set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(mod, path.name == "__init__.py", node)
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.split(".")[0] == PKG:
                    target = internal(name, set(files))
                    if target and target != mod:
                        graph[mod].add(target)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One circle per strongly connected component with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_graph_is_read(graph):
    # guards the other tests against an empty or mis-resolved graph
    assert "espnet2_ext.common" in graph and len(graph) > 50
    assert "espnet2_ext.common" in graph["espnet2_ext.data.utt2tasks"]
    assert "espnet2_ext.task_spec" in graph["espnet2_ext.text.strip_tasks"]


def test_cycle_detection_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle(graph):
    assert cycles(graph) == [], "modules that import each other (directly or through others): move the shared part down"


def test_common_imports_nothing_from_the_package(graph):
    assert graph["espnet2_ext.common"] == set()


def test_asr_does_not_import_tasks(graph):
    up = {
        (m, t)
        for m, targets in graph.items()
        if m.startswith(f"{PKG}.asr")
        for t in targets
        if t.startswith(f"{PKG}.tasks")
    }
    assert up == set(), "asr/ must not import tasks/ (tasks builds on asr)"


_INLINE_PYTHON = re.compile(r"python3?\}?\"?\s+-c\b")


def test_inline_python_is_found():
    assert _INLINE_PYTHON.search("x=\"$(${python} -c 'import yaml')\"")
    assert _INLINE_PYTHON.search("python3 -c 'print(1)'")
    assert not _INLINE_PYTHON.search("${python} -m espnet2_ext.bin.make_replay_subset --config c.yaml")


def test_recipe_shell_has_no_inline_python():
    """Shell stays thin: what a recipe computes lives in an importable, tested module (python -m ...)."""
    root = Path(__file__).resolve().parent.parent
    # (tools/install.sh may: it checks whether espnet2_ext is installed before it can be imported)
    scripts = sorted((root / "egs2").rglob("*.sh"))
    found = [
        f"{p.relative_to(root)}:{i}"
        for p in scripts
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if not line.lstrip().startswith("#") and _INLINE_PYTHON.search(line)
    ]
    assert not found, f"inline python -c in {found}: move it into espnet2_ext (a bin/ CLI or an option of one)"


def test_scoring_does_not_import_reporting(graph):
    up = {
        (m, t)
        for m, targets in graph.items()
        if m.startswith(f"{PKG}.scoring")
        for t in targets
        if t.startswith(f"{PKG}.reporting")
    }
    assert up == set(), "scoring/ (the metrics) must not import reporting/ (the tables built on them)"
