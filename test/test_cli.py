"""bin/_cli.run_cli (one exit convention for every CLI) and the one activation tag (issue #13)."""
import subprocess
import sys

import pytest

from espnet2_ext.activation import activation_tag, order_tasks
from espnet2_ext.bin import activation_tag as tag_cli
from espnet2_ext.bin import tokenverse_report
from espnet2_ext.bin._cli import run_cli
from espnet2_ext.common import DataError


def test_run_cli_exit_status_and_one_line_message(capsys):
    def bad(argv):
        raise DataError(f"{argv[0]}:3 (u3): empty text")

    assert run_cli(lambda argv: {"made": argv}, ["x"], prog="tool") == 0  # what run returns is for Python callers
    assert run_cli(bad, ["data/text"], prog="tool") == 1
    assert capsys.readouterr().err == "tool: data/text:3 (u3): empty text\n"
    with pytest.raises(KeyError):  # not an expected error: the traceback shows
        run_cli(lambda argv: {}["x"], [], prog="tool")


def test_report_cli_main_gives_status_1_and_its_error_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert tokenverse_report.main(["--exp_dir", str(tmp_path / "empty"), "--out", str(tmp_path / "r.md")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tokenverse_report: error: no score.json found") and err.count("\n") == 1
    assert not (tmp_path / "r.md").exists()


def test_activation_tag_is_canonical():
    assert activation_tag("lid, asr,scd") == activation_tag(["scd", "lid", "asr"]) == "asr+scd+lid"
    assert activation_tag("asr,qst,endp,asr") == "asr+endp+qst"  # added tasks after the known ones, once each
    assert order_tasks(["zz", "lid", "aa"]) == ("lid", "aa", "zz")
    assert activation_tag("") == ""


def test_activation_tag_cli(capsys):
    assert tag_cli.main(["ner,asr"]) == 0
    assert capsys.readouterr().out == "asr+ner\n"
    assert tag_cli.main([" , "]) == 1
    assert capsys.readouterr().err.startswith("activation_tag: no task given")


def test_activation_tag_cli_imports_neither_torch_nor_espnet2():
    code = ("import runpy, sys\n"
            "sys.argv = ['activation_tag', 'lid,asr']\n"
            "try:\n"
            "    runpy.run_module('espnet2_ext.bin.activation_tag', run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'espnet2', 'numpy'))\n"
            "print('heavy:', heavy)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["asr+lid", "heavy: []"]
