"""Layers point down (issues #13, #31): the package's own import graph, read with ``ast`` (nothing is imported).

Function-local imports count like top-level ones: they dodge a circle at import time but keep the two modules
tangled. ``LAYERS`` lists the package bottom-up; a module may import its own layer and the ones below it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Set, Tuple

import pytest

PKG = "espnet2_ext"
ROOT = Path(__file__).resolve().parents[1] / PKG

# Bottom-up. Each entry is one layer: top-level modules or subpackages of espnet2_ext ("" is the package's own
# __init__, which installs the import hook). A new subpackage must be placed here (test_every_module_has_a_layer).
LAYERS: Tuple[Tuple[str, ...], ...] = (
    ("common", "_offline", "stack"),  # nothing from the package
    ("utils",),  # text I/O, Kaldi tables, safe loading
    ("task_spec",),
    ("activation",),
    ("text",),  # task tokens, normalisation, time outputs
    ("data",),  # Kaldi data-dir I/O and checks
    ("upstream",),
    ("layers",),
    ("asr",),
    ("ssl",),
    ("train",),
    ("registry",),  # names the asr/train classes for ESPnet
    ("tasks",),
    ("hub",),
    ("scoring",),  # metrics
    ("reporting",),  # tables and reports built on the metrics
    ("corpora",),  # corpus preparation (synthetic corpus, importers): makes data dirs
    ("bin",),  # thin CLIs
    ("", "_import_hook"),
)

# Modules allowed to import a higher layer, each with the reason; an entry that no longer imports up fails
# test_allowed_upward_imports_are_still_needed, so it is removed once the code moves.
UPWARD_ALLOWED: Dict[str, str] = {}


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


def layer_of(module: str, layers: Sequence[Sequence[str]] = LAYERS) -> int:
    """Index in ``layers`` of the entry naming ``module``'s top-level part under the package (-1: none)."""
    head = module.split(".")[1] if "." in module else ""
    for i, names in enumerate(layers):
        if head in names:
            return i
    return -1


def upward_imports(graph: Mapping[str, Set[str]], layers: Sequence[Sequence[str]] = LAYERS) -> List[Tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer than its importer."""
    return sorted((m, t) for m, targets in graph.items() for t in targets if layer_of(t, layers) > layer_of(m, layers))


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


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if layer_of(m) < 0] == [], "place the new subpackage in LAYERS (test/test_layering.py)"


def test_upward_import_detection_finds_one():
    layers = (("common",), ("data",), ("bin",))
    g = {f"{PKG}.common": set(), f"{PKG}.data.x": {f"{PKG}.common"}, f"{PKG}.bin.y": {f"{PKG}.data.x"}}
    assert upward_imports(g, layers) == []
    g[f"{PKG}.common"] = {f"{PKG}.bin.y"}
    g[f"{PKG}.data.x"].add(f"{PKG}.data.z")  # the same layer is fine
    assert upward_imports(g, layers) == [(f"{PKG}.common", f"{PKG}.bin.y")]
    assert layer_of(f"{PKG}.nowhere", layers) == -1
    assert layer_of(PKG, (("common",), ("",))) == 1


def test_no_import_from_a_lower_layer_to_a_higher_one(graph):
    up = [(m, t) for m, t in upward_imports(graph) if m not in UPWARD_ALLOWED]
    assert up == [], "a module imports a higher layer (LAYERS): move the shared part down, or the importer up"


def test_allowed_upward_imports_are_still_needed(graph):
    still = {m for m, _ in upward_imports(graph)}
    assert sorted(set(UPWARD_ALLOWED) - still) == [], "no longer imports up: remove it from UPWARD_ALLOWED"


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
