"""Declared dependencies (pyproject.toml), pins (tools/constraints.txt) and the environment check agree (issue 34).

Read statically or from installed metadata: nothing heavy is imported. The built wheel itself is tested in
test_wheel.py.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Set

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from espnet2_ext.bin.check_install import OPTIONAL, PARTS
from espnet2_ext.stack import MINIMUM, TESTED

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
CONSTRAINTS = ROOT / "tools" / "constraints.txt"
# the second ESPnet release the unit tests also run against in CI (tools/second_espnet.py, which names this file in
# $ESPNET2_EXT_SECOND_PINS for the tests it runs)
SECOND_PINS = ROOT / "tools" / "constraints_espnet202509.txt"
SECOND_PINS_ENV = "ESPNET2_EXT_SECOND_PINS"


def declared() -> Dict[str, List[Requirement]]:
    """extra ("" = core) -> requirements, without the self-referencing ``all``."""
    out = {"": [Requirement(r) for r in PROJECT["dependencies"]]}
    out.update({k: [Requirement(r) for r in v] for k, v in PROJECT["optional-dependencies"].items() if k != "all"})
    return out


def pins(path: Path = CONSTRAINTS) -> Dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[canonicalize_name(name)] = version
    return out


def lower_bound(req: Requirement) -> str:
    (bound,) = [s.version for s in req.specifier if s.operator == ">="]
    return bound


def test_extras_are_the_documented_ones_and_all_holds_every_one():
    extras = PROJECT["optional-dependencies"]
    assert set(extras) == {"scoring", "corpus", "zoo", "hub", "longform", "test", "all"}
    (everything,) = [Requirement(r) for r in extras["all"]]
    assert canonicalize_name(everything.name) == "espnet2-ext" and everything.extras == set(extras) - {"all"}


def test_every_requirement_has_a_lower_bound_that_is_the_pinned_version():
    """The lower bound is a version we run: the recipe/CI pin, or the second release CI runs the unit tests against
    (tools/constraints_espnet202509.txt). No upper bounds (a newer torch stays in place)."""
    p, second = pins(), pins(SECOND_PINS)
    for extra, reqs in declared().items():
        for req in reqs:
            name = canonicalize_name(req.name)
            assert {s.operator for s in req.specifier} == {">="}, f"{req} ({extra or 'core'}): give one >= bound"
            assert lower_bound(req) in (p.get(name), second.get(name)), (
                f"{req}: tools/constraints.txt pins {name}=={p.get(name)}"
                + (f" and {SECOND_PINS.name} {name}=={second[name]}" if name in second else "")
                + "; the lower bound must be a version CI runs"
            )


def test_the_newest_tested_versions_are_the_pins():
    """check_install's "newer than the tested": the pinned stack, the newest CI runs."""
    p = pins()
    assert TESTED == {d: p[d] for d in MINIMUM}
    assert all(Version(MINIMUM[d][0]) <= Version(v) for d, v in TESTED.items())


def test_the_recipe_venv_runs_the_pins():
    """What CI tests is what the constraints file says (after `bash tools/install.sh`); under tools/second_espnet.py,
    with the second release's pins in place of the stack's."""
    running = pins()
    if os.environ.get(SECOND_PINS_ENV):
        running.update(pins(Path(os.environ[SECOND_PINS_ENV])))
    wrong = {}
    for name, version in running.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = None
        if found != version:
            wrong[name] = (version, found)
    assert not wrong, f"pinned vs installed (re-run bash tools/install.sh): {wrong}"


def test_stack_minimum_is_pyprojects_lower_bound():
    core = {canonicalize_name(r.name): lower_bound(r) for r in declared()[""]}
    assert {d: v for d, (v, _) in MINIMUM.items()} == {d: core[d] for d in MINIMUM}


def test_check_install_lists_exactly_the_declared_dependencies():
    listed = {(canonicalize_name(p.dist), p.extra) for p in PARTS}
    wanted = {(canonicalize_name(r.name), extra) for extra, reqs in declared().items() for r in reqs}
    assert listed == wanted


def _guarded_nodes(tree: ast.AST) -> Set[int]:
    """Import nodes inside a ``try`` whose handler catches ImportError: optional imports."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            h.type is not None
            and any(
                isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in ast.walk(h.type)
            )
            for h in node.handlers
        ):
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def third_party_imports() -> Dict[str, str]:
    """top-level module -> first 'file:line' importing it (function-local imports too), unguarded ones only."""
    found: Dict[str, str] = {}
    for path in sorted((ROOT / "espnet2_ext").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        guarded = _guarded_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top != "espnet2_ext" and top not in sys.stdlib_module_names:
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_the_import_scan_sees_function_local_imports():
    found = third_party_imports()
    assert "soxr" in found and "pyannote" in found and "sklearn" in found  # all three imported inside functions
    assert "nltk" not in found  # _offline.py imports it under `except ImportError`: optional


def test_every_third_party_import_is_declared():
    owners = metadata.packages_distributions()  # top-level module -> distributions providing it
    names = {canonicalize_name(r.name) for reqs in declared().values() for r in reqs}
    names |= {canonicalize_name(p.dist) for p in OPTIONAL}  # imported only when present (rnnt_loss backends)
    undeclared = {
        mod: where
        for mod, where in third_party_imports().items()
        if not names & {canonicalize_name(d) for d in owners.get(mod, [])}
    }
    assert not undeclared, f"imported but not declared in pyproject.toml (core or an extra): {undeclared}"


def test_install_sh_takes_every_version_from_the_constraints_file():
    script = (ROOT / "tools" / "install.sh").read_text(encoding="utf-8")
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r'-c "\$\{constraints\}"', code) and 'constraints="${root}/tools/constraints.txt"' in code
    assert '-e "${root}[all]"' in code
    assert not re.search(r"[A-Za-z0-9_\]]==\d", code), (
        "a version pin in install.sh: it belongs in tools/constraints.txt"
    )
    assert "espeak-ng" in code and "sox" in code and ".espnet2_ext_stack" in code
    assert not (ROOT / "setup.py").exists()
