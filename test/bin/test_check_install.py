"""check_install's report and the supported-stack check of ``import espnet2_ext`` (issue 34).

Missing parts are simulated: ``sys.modules[name] = None`` makes ``import name`` fail exactly as for an uninstalled
module; an older torch/ESPnet is a fake ``*.dist-info`` ahead on sys.path (what importlib.metadata reads first).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import espnet2_ext.stack as stack
from espnet2_ext.bin import check_install

ROOT = Path(__file__).resolve().parents[2]


def _fake_dists(folder: Path, **versions: str) -> Path:
    for name, version in versions.items():
        info = folder / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


def _run(args, tmp_path, extra_path=None, **env):
    e = {k: v for k, v in os.environ.items() if k != stack.SKIP_ENV}
    e["PYTHONPATH"] = os.pathsep.join([str(p) for p in (extra_path, ROOT) if p])
    e.update(env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=e, cwd=tmp_path, timeout=300)


# ---- check_install ---------------------------------------------------------------------------------------
def test_a_missing_extra_is_reported_with_what_it_disables(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyannote.metrics.segmentation", None)
    probes = check_install.run([])
    out = capsys.readouterr().out
    missing = [p.part.dist for p in probes if not p.ok]
    assert missing == ["pyannote.metrics"]
    assert 'extra scoring: incomplete: pip install "espnet2_ext[scoring]"' in out
    assert "[MISSING] pyannote.metrics: ModuleNotFoundError" in out
    assert "disables: time-based SCD/ENDP metrics of tokenverse_score" in out
    assert "extra corpus: ok" in out
    assert out.rstrip().endswith("result: the core works; extras incomplete: scoring")


def test_everything_present_reports_every_extra(capsys):
    probes = check_install.run([])
    out = capsys.readouterr().out
    assert all(p.ok for p in probes)
    assert out.rstrip().endswith("result: the core works; every extra imports")
    for dist in ("torch", "espnet", "espnet-s3prl"):
        assert f"[ok]      {dist} {check_install.metadata.version(dist)}" in out
    assert "GPU" in out and "espeak-ng" in out and "sox" in out


def test_a_missing_core_part_fails_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "soxr", None)
    assert check_install.main([]) == 1
    captured = capsys.readouterr()
    assert "[MISSING] soxr: ModuleNotFoundError" in captured.out
    assert "disables: resampling audio that is not at the model's rate" in captured.out
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("check_install: the core does not work here: missing soxr")


def test_an_old_stack_makes_check_install_fail(monkeypatch, capsys):
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda d: "202402" if d == "espnet" else real(d))
    assert check_install.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("check_install: the core does not work here: espnet>=202509 (found 202402)")


# ---- the stack check of `import espnet2_ext` -------------------------------------------------------------
@pytest.mark.parametrize(
    "found, ok",
    [
        ("2.9.1", True),
        ("2.9.1+cu126", True),
        ("2.9.1a0", True),
        ("2.15.0", True),
        ("2.9.0", False),
        ("1.13.1+cpu", False),
    ],
)
def test_torch_versions_against_the_minimum(monkeypatch, found, ok):
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda d: found if d == "torch" else real(d))
    assert stack.stack_problems() == ([] if ok else [f"torch>=2.9.1 (found {found})"])


def test_pypi_s3prl_instead_of_espnets_fork_is_named(monkeypatch):
    real = stack.installed_version
    monkeypatch.setattr(stack, "installed_version", lambda d: {"espnet-s3prl": None, "s3prl": "0.4.18"}.get(d, real(d)))
    (problem,) = stack.stack_problems()
    assert problem.startswith("espnet-s3prl>=2026.5.14 (found PyPI's s3prl 0.4.18")


def test_importing_with_an_old_torch_and_espnet_fails_with_one_line(tmp_path):
    fake = _fake_dists(tmp_path / "old", torch="2.4.0", espnet="202402")
    r = _run(["-c", "import espnet2_ext"], tmp_path, fake)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "espnet2_ext.stack.UnsupportedStackError: espnet2_ext needs torch>=2.9.1 (found 2.4.0); "
        "espnet>=202509 (found 202402): upgrade them"
    )
    assert stack.SKIP_ENV in last


def test_a_cli_with_an_old_torch_prints_only_the_line(tmp_path):
    fake = _fake_dists(tmp_path / "old", torch="2.4.0")
    r = _run(["-m", "espnet2_ext.bin.validate_data_dir", "--help"], tmp_path, fake)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("espnet2_ext needs torch>=2.9.1 (found 2.4.0): ")


def test_the_check_can_be_skipped(tmp_path):
    fake = _fake_dists(tmp_path / "old", torch="2.4.0")
    r = _run(["-m", "espnet2_ext.bin.validate_data_dir", "--help"], tmp_path, fake, **{stack.SKIP_ENV: "1"})
    assert r.returncode == 0 and "usage:" in r.stdout


def test_cli_detection_reads_the_interpreters_arguments(monkeypatch):
    for argv, module in (
        (["python", "-m", "espnet2_ext.bin.check_install"], "espnet2_ext.bin.check_install"),
        (["python", "-u", "-m", "espnet2_ext.bin.x", "--help"], "espnet2_ext.bin.x"),
        (["python", "-m", "pytest", "-m", "espnet2_ext.y"], None),
        (["python", "script.py", "-m", "espnet2_ext.y"], None),
        (["python", "-c", "import espnet2_ext", "-m", "espnet2_ext.y"], None),
    ):
        monkeypatch.setattr(sys, "orig_argv", argv)
        assert stack.our_cli_module() == module


def test_a_newer_or_unreadable_version_is_marked():
    torch_part = next(p for p in check_install.PARTS if p.dist == "torch")
    line = check_install.stack_line("torch", [check_install.Probe(torch_part, "2.15.0", None)])
    assert line == "torch       2.15.0 (supported >= 2.9.1; newer than the tested 2.9.1: untested)"
    line = check_install.stack_line("torch", [check_install.Probe(torch_part, "custom_build", None)])
    assert line.endswith("(supported >= 2.9.1; version not comparable)")
    assert check_install.stack_line("espnet", []) == "ESPnet      not installed (supported >= 202509)"
