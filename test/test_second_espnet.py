"""The second-ESPnet run (tools/second_espnet.py, tools/constraints_espnet202509.txt) and the `recipe` marker agree
with the rest of the tree: pins, declared ranges, CI, README and conftest. Fast: nothing heavy is imported."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
from pathlib import Path

import pytest
import tomllib
from conftest import RECIPE_FOLDERS, RECIPE_TESTS, TEST_DIR, is_recipe_test
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("second_espnet", ROOT / "tools" / "second_espnet.py")
second_espnet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(second_espnet)


def _core_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    out = {}
    for r in map(Requirement, project["dependencies"]):
        (bound,) = [s.version for s in r.specifier if s.operator == ">="]
        out[canonicalize_name(r.name)] = bound
    return out


def test_the_second_pins_swap_espnet_for_an_older_release_inside_the_declared_range():
    second = second_espnet.read_pins(second_espnet.PINS)
    main = second_espnet.read_pins(second_espnet.MAIN_PINS)
    assert "espnet" in second and Version(second["espnet"]) < Version(main["espnet"]), (second, main)
    bounds = _core_bounds()
    for name, version in second.items():
        assert name in main and version != main[name], f"{name}=={version}: pin only what differs from the stack"
        # what CI tests must be installable as declared: the pyproject lower bound still holds for it
        assert Version(version) >= Version(bounds.get(name, "0")), f"{name}=={version} is below pyproject's bound"
    # the torch pair is not swapped: the overlay installs with --no-deps and must not fetch another torch
    assert not {"torch", "torchaudio"} & set(second)


def test_test_packaging_reads_the_same_second_pins():
    """test_packaging.py's bound rule and its installed-pins check use this run's file and variable."""
    from test_packaging import SECOND_PINS, SECOND_PINS_ENV

    assert (SECOND_PINS, SECOND_PINS_ENV) == (second_espnet.PINS, second_espnet.PINS_ENV)


def test_requirements_carry_the_extras_pyproject_requests():
    assert second_espnet.requirements({"espnet": "202509", "jiwer": "4.0.0"}) == [
        "espnet[train]==202509",
        "jiwer==4.0.0",
    ]


def test_a_pin_file_line_that_is_not_an_exact_pin_names_its_line(tmp_path):
    bad = tmp_path / "pins.txt"
    bad.write_text("# comment\nespnet==202509\nespnet[train]>=202509\n")
    with pytest.raises(ValueError, match=r"pins\.txt:3: 'espnet\[train\]>=202509' is not 'name==version'"):
        second_espnet.read_pins(bad)


def _fake_overlay(tmp_path, requires):
    """An overlay folder with a stand-in espnet 1.0 (its espnet2 package and metadata) requiring ``requires``."""
    target = tmp_path / "overlay"
    (target / "espnet2").mkdir(parents=True)
    (target / "espnet2" / "__init__.py").write_text("")
    info = target / "espnet-1.0.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", "Name: espnet", "Version: 1.0"] + [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    pins = tmp_path / "constraints_fake.txt"
    pins.write_text("espnet==1.0\n")
    return target, pins


def test_the_check_passes_when_the_stack_meets_the_overlays_requirements(tmp_path, capfd):
    target, pins = _fake_overlay(tmp_path, ["packaging>=20", 'pytest>=1; extra == "train"'])
    second_espnet.check(target, pins)
    out = capfd.readouterr().out
    assert "meet espnet[train]==1.0; espnet2 from " + str(target) in out


def test_the_check_names_an_unmet_requirement_and_the_pin_file(tmp_path):
    target, pins = _fake_overlay(tmp_path, ['packaging<1; extra == "train"'])
    with pytest.raises(SystemExit) as e:
        second_espnet.check(target, pins)
    assert re.fullmatch(
        r"second_espnet: the recipe venv does not meet what constraints_fake\.txt installs: packaging<1.* is declared "
        r"but this environment has packaging \d[^:]*: pin a version that fits in .*constraints_fake\.txt \(or in "
        r"constraints\.txt for the whole stack\)",
        str(e.value),
    )


def test_the_overlay_runs_unit_tests_only_and_ci_runs_it_after_the_main_suite():
    assert second_espnet.PYTEST[:2] == ["-m", "not recipe"]
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    command = ci[-1]  # the README's test command, as written there
    assert f"```bash\n   {command}\n   ```" in (ROOT / "README.md").read_text(encoding="utf-8")
    main_suite = command.index("tools/venv/bin/python -m pytest -q test/")
    assert command.index("tools/venv/bin/python tools/second_espnet.py -q test/") > main_suite
    assert "tools/second_espnet/" in (ROOT / ".gitignore").read_text().splitlines()


def test_readme_names_both_tested_espnet_releases():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for version in (second_espnet.read_pins(f)["espnet"] for f in (second_espnet.PINS, second_espnet.MAIN_PINS)):
        assert f"`espnet` {version}" in readme, version
    assert "tools/venv/bin/python tools/second_espnet.py" in readme


def test_the_recipe_marker_is_declared_and_every_listed_test_exists():
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "--strict-markers" in ini["addopts"] and any(m.startswith("recipe:") for m in ini["markers"])
    assert all((TEST_DIR / d).is_dir() for d in RECIPE_FOLDERS)
    for rel, names in RECIPE_TESTS.items():
        tree = ast.parse((TEST_DIR / rel).read_text(encoding="utf-8"))
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert names <= functions, f"test/conftest.py RECIPE_TESTS: {rel} has no {names - functions}"
        # a listed test runs a recipe script (its body names one)
        for n in tree.body:
            if isinstance(n, ast.FunctionDef) and n.name in names:
                assert re.search(r"run\.sh|local/data\.sh", ast.get_source_segment((TEST_DIR / rel).read_text(), n))


def test_recipe_tests_are_those_in_the_recipe_folder_and_the_listed_ones():
    assert is_recipe_test("recipe/test_recipe.py", "test_every_stage_ran")
    assert is_recipe_test("data/test_audio_formats.py", "test_commonvoice_import_then_recipe_stages_1_to_4")
    assert not is_recipe_test("data/test_audio_formats.py", "test_every_format_reads_as_16k_mono")
    assert not is_recipe_test("test_packaging.py", "test_the_recipe_venv_runs_the_pins")


@pytest.mark.skipif(not os.environ.get(second_espnet.PINS_ENV), reason="only under tools/second_espnet.py")
def test_the_overlay_is_what_this_run_imports():
    """Under tools/second_espnet.py: the ESPnet this run imports is the second pin, from the overlay folder."""
    from importlib import metadata

    pins_file = Path(os.environ[second_espnet.PINS_ENV]).resolve()
    assert metadata.version("espnet") == second_espnet.read_pins(pins_file)["espnet"]
    overlay = str(second_espnet.overlay_dir(pins_file)) + os.sep
    assert importlib.util.find_spec("espnet2").origin.startswith(overlay)
    assert importlib.util.find_spec("espnet2_ext").origin.startswith(str(ROOT) + os.sep)
