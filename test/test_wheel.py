"""The built wheel works on the declared dependencies alone (issue 34).

The wheel is built from a copy of the package, installed into a fresh venv that sees only the distributions its
declared requirements (``espnet2_ext[all]``) need, transitively, linked from the recipe venv (test/overlay_env.py:
no download, no second torch); there every module imports, every CLI answers ``--help`` as ``python -m`` runs it,
nothing is read from the source tree, and check_install reports a working core with every extra.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from overlay_env import expose, overlay_venv, own_requirements, pip_for, requirement_closure, wheel_requires

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "espnet2_ext"
CONSTRAINTS = ROOT / "tools" / "constraints.txt"


def _package_files():
    return sorted(
        str(p.relative_to(ROOT))
        for p in PKG.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(OMP_NUM_THREADS="1", PIP_NO_INPUT="1")
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of a copy holding what the build reads (so no build/ or egg-info lands in the tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PKG, src / "espnet2_ext", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        check=True,
        env=_env(),
    )
    (whl,) = (tmp / "dist").glob("espnet2_ext-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """(python, pip dry-run report) of a fresh venv with the wheel, over the closure of its declared requirements."""
    tmp = tmp_path_factory.mktemp("venv")
    dists = requirement_closure(own_requirements(wheel_requires(wheel), "espnet2_ext", ["all"]))
    assert "torch" in dists and "espnet" in dists and "espnet2-ext" not in dists
    expose(dists.values(), tmp / "exposed")
    python = overlay_venv(tmp / "venv", tmp / "exposed")
    report = tmp / "report.json"
    # the resolver's view, offline: the declared ranges and the pins are satisfied by what is exposed
    subprocess.run(
        [
            *pip_for(python),
            "install",
            "--dry-run",
            "--no-index",
            "-q",
            "--report",
            str(report),
            "-c",
            str(CONSTRAINTS),
            f"{wheel}[all]",
        ],
        check=True,
        env=_env(),
        cwd=tmp,
    )
    subprocess.run(
        [*pip_for(python), "install", "--no-index", "--no-deps", "-q", str(wheel)], check=True, env=_env(), cwd=tmp
    )
    return python, json.loads(report.read_text())


@pytest.fixture(scope="module")
def probe(venv, tmp_path_factory):
    python, _ = venv
    tmp = tmp_path_factory.mktemp("probe")
    out, script = tmp / "probe.json", tmp / "wheel_probe.py"
    shutil.copy(Path(__file__).with_name("wheel_probe.py"), script)  # outside the tree, as everything it runs
    allowed = Path(sys.prefix).resolve()  # the recipe venv the exposed files link to (tools/venv in CI)
    subprocess.run(
        [str(python), str(script), str(out), str(ROOT), str(allowed)], check=True, env=_env(), cwd=tmp, timeout=600
    )
    return json.loads(out.read_text())


def test_the_wheel_carries_every_file_of_the_package(wheel):
    with zipfile.ZipFile(wheel) as z:
        carried = {n for n in z.namelist() if n.startswith("espnet2_ext/")}
    missing = [f for f in _package_files() if f not in carried]
    assert not missing, f"package files the wheel lacks (pyproject/MANIFEST.in package data): {missing}"
    assert "espnet2_ext/bin/check_install.py" in carried


def test_pip_needs_nothing_but_the_wheel(venv):
    _, report = venv
    assert [i["metadata"]["name"] for i in report["install"]] == ["espnet2_ext"]


def test_every_module_imports_from_the_installed_wheel(probe, venv):
    python, _ = venv
    assert len(probe["modules"]) > 100 and "espnet2_ext.bin.check_install" in probe["modules"]
    assert probe["errors"] == {}
    venv_root = str(python.parent.parent)
    elsewhere = {m: f for m, f in probe["files"].items() if f and not f.startswith(venv_root)}
    assert not elsewhere, f"modules loaded from outside the wheel's venv: {elsewhere}"


def test_every_cli_answers_help(probe):
    assert len(probe["helps"]) >= 20
    bad = {m: h for m, h in probe["helps"].items() if h["exit"] not in (0, None) or not h["usage"]}
    assert not bad, f"CLIs whose --help fails in the wheel's venv: {bad}"


def test_nothing_is_read_from_the_source_tree(probe):
    assert probe["opened"] == []


def test_check_install_reports_a_working_core(venv):
    python, _ = venv
    r = subprocess.run(
        [str(python), "-m", "espnet2_ext.bin.check_install"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=python.parent,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "result: the core works; every extra imports" in r.stdout
    pins = dict(line.split("==") for line in CONSTRAINTS.read_text().splitlines() if "==" in line)
    assert f"torch       {pins['torch']} " in r.stdout and f"ESPnet      {pins['espnet']} " in r.stdout
