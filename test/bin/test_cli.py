"""bin/_cli.run_cli (one exit convention for every CLI) and the one activation tag (issue #13)."""

import subprocess
import sys
from pathlib import Path

import pytest

from espnet2_ext.activation import activation_tag, order_tasks
from espnet2_ext.bin import activation_tag as tag_cli
from espnet2_ext.bin import tokenverse_report
from espnet2_ext.bin._cli import run_cli
from espnet2_ext.common import DataError, comma_list
from espnet2_ext.task_spec import TaskSpec


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


def test_one_list_parser_for_clis_and_activations():
    """Commas and/or spaces, as shell users write them; the same parse for --task_activation, --languages, ..."""
    assert comma_list("a, b,,c") == comma_list("a b  c") == comma_list(" a,b c ") == ["a", "b", "c"]
    assert comma_list([" a ", "", "b"]) == ["a", "b"] and comma_list(None) == comma_list(" , ") == []
    spec = TaskSpec.default()
    assert (
        spec.active_tasks("lid ner")
        == spec.active_tasks("ner,lid")
        == spec.active_tasks([" lid", "ner "])
        == ("asr", "ner", "lid")
    )
    with pytest.raises(ValueError, match="empty"):
        spec.active_tasks(" , ")
    assert activation_tag("lid asr") == activation_tag("asr,lid") == "asr+lid"


def test_activation_tag_cli(capsys):
    assert tag_cli.main(["ner,asr"]) == 0
    assert capsys.readouterr().out == "asr+ner\n"
    assert tag_cli.main([" , "]) == 1
    assert capsys.readouterr().err.startswith("activation_tag: no task given")


def test_activation_tag_cli_imports_neither_torch_nor_espnet2():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['activation_tag', 'lid,asr']\n"
        "try:\n"
        "    runpy.run_module('espnet2_ext.bin.activation_tag', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'espnet2', 'numpy'))\n"
        "print('heavy:', heavy)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["asr+lid", "heavy: []"]


def test_decode_activation_sets_names_dirs_by_the_tag_and_writes_them_whole(tmp_path, monkeypatch, capsys):
    from espnet2_ext.bin import decode_activation_sets as das

    decoded = []

    def decode(s2t, args, out_dir, task_mask, task):
        decoded.append(task_mask)
        (Path(out_dir) / "1best_recog").mkdir()
        (Path(out_dir) / "1best_recog" / "text").write_text("u1 hi\n")
        if task_mask == "mask of asr,scd":
            raise ValueError("data/test/wav.scp (u1): cannot decode audio")

    class Model:
        def task_mask(self, act):  # the names resolved once, before decoding: a stand-in "mask"
            if "topic" in act:
                raise ValueError("--task_activation: topic not among this model's tasks")
            return f"mask of {act}"

    monkeypatch.setattr(das, "build_speech2text", lambda args: Model())
    monkeypatch.setattr(das, "decode_to_dir", decode)
    exp = tmp_path / "exp"
    argv = ["--test_dirs", str(tmp_path / "test"), "--output_root", str(exp), "--activation_sets"]
    das.run(argv + ["lid,asr", "asr"])
    assert decoded == ["mask of lid,asr", "mask of asr"]
    assert sorted(p.name for p in exp.iterdir()) == ["decode_asr", "decode_asr+lid"]  # the tag, as the shell's
    assert [p.name for p in (exp / "decode_asr+lid").iterdir()] == ["test"]  # no temporary dir left
    das.run(argv + ["asr"])  # complete and newer than the model: kept
    assert decoded == ["mask of lid,asr", "mask of asr"] and "already decoded" in capsys.readouterr().out
    assert das.main(argv + ["asr,scd"]) == 1  # the decode fails half-way: nothing appears
    assert not (exp / "decode_asr+scd" / "test").exists() and not list((exp / "decode_asr+scd").iterdir())
    assert capsys.readouterr().err == "decode_activation_sets: error: data/test/wav.scp (u1): cannot decode audio\n"
    assert (
        das.main(argv + ["asr,ner", "asr,topic"]) == 1 and decoded[-1] == "mask of asr,scd"
    )  # all checked before decoding
