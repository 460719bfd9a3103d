"""Replay subsets (espnet2_ext/data/replay.py, bin/make_replay_subset.py): old utterances relabelled asr + lid.

Fast: the tiny Kaldi dir of tiny_setup (2 fully annotated utterances, 2 with asr + lid only), no ESPnet import.
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_setup import UTTS, write_data_dir

from espnet2_ext.bin.make_replay_subset import main as cli_main
from espnet2_ext.common import DataError
from espnet2_ext.data.kaldi_dir import read_data_dir
from espnet2_ext.data.replay import make_replay_subset, select_replay
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.text.annotation import annotation_error


def _with_langs(root: Path) -> Path:
    d = write_data_dir(root)
    lang = {utt: txt.split()[0][1:-1].lower() for utt, txt, _ in UTTS}  # [EN] ... -> en
    (d / "utt2lang").write_text("".join(f"{u} {lang[u]}\n" for u, _, _ in UTTS), encoding="utf-8")
    return d


def _digest(d: Path) -> dict:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


@pytest.fixture
def data(tmp_path):
    return _with_langs(tmp_path)


def test_all_per_language_relabelled_and_stripped(data, tmp_path):
    before = _digest(data)
    counts = make_replay_subset(data, tmp_path / "replay", per_lang=5)  # more than there are: all of them
    assert counts == {"de": 2, "en": 2}
    out = {u.utt_id: u for u in read_data_dir(tmp_path / "replay")}
    src = {u.utt_id: u for u in read_data_dir(data)}
    assert sorted(out) == sorted(src)
    # the fully annotated ones lose [SCD] [ENDP] [NE] [/NE] but keep the language token and every word
    assert out["spk1-u1"].text == "[EN] hello maria fine thanks"
    assert out["spk1-u2"].text == "[DE] guten tag berlin"
    assert out["spk2-u3"].text == src["spk2-u3"].text  # already asr + lid: unchanged
    spec = TaskSpec.default(["de", "en"])
    for u in out.values():
        assert u.tasks == ("asr", "lid")
        assert (u.wav, u.speaker, u.lang) == (src[u.utt_id].wav, src[u.utt_id].speaker, src[u.utt_id].lang)
        assert annotation_error(u.text, spec, u.tasks) is None  # what the preprocessor checks
    assert (tmp_path / "replay" / "utt2tasks").read_text().splitlines()[0] == "spk1-u1 asr lid"
    assert _digest(data) == before  # the source is never modified


def test_per_lang_draw_is_seeded_and_balanced(data):
    utts = read_data_dir(data)
    picks = set()
    for seed in range(8):
        a, counts = select_replay(utts, per_lang=1, seed=seed)
        b, _ = select_replay(utts, per_lang=1, seed=seed)
        assert [u.utt_id for u in a] == [u.utt_id for u in b]  # reproducible
        assert counts == {"de": 1, "en": 1} and sorted(u.lang for u in a) == ["de", "en"]
        picks.add(tuple(u.utt_id for u in a))
    assert len(picks) > 1  # the seed matters: not always the first utterances


def test_tasks_and_languages_restrict_the_pool(data):
    utts = read_data_dir(data)
    full, counts = select_replay(utts, per_lang=5, tasks=["asr", "scd", "endp", "ner", "lid"])
    assert [u.utt_id for u in full] == ["spk1-u1", "spk1-u2"] and counts == {"de": 1, "en": 1}
    assert full[0].text == UTTS[0][1]  # every task kept: text unchanged
    en, counts = select_replay(utts, per_lang=5, languages=["en"])
    assert counts == {"en": 2} and {u.lang for u in en} == {"en"}
    asr_only, _ = select_replay(utts, per_lang=5, tasks=["asr"])
    assert asr_only[0].text == "hello maria fine thanks" and asr_only[0].tasks == ("asr",)


def test_bad_input_one_line_naming_the_file(data, tmp_path, capsys):
    (data / "utt2lang").unlink()
    with pytest.raises(DataError, match="has no language"):
        make_replay_subset(data, tmp_path / "r", per_lang=1)
    _with_langs(tmp_path)  # restore utt2lang
    text = (data / "text").read_text().replace("hello fine", "hello [XX] fine")
    (data / "text").write_text(text)
    assert cli_main([str(data), str(tmp_path / "r"), "--per_lang", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{data}/text (spk2-u3)" in err and "unknown tag [XX]" in err
    assert not (tmp_path / "r").exists()  # nothing half-written
    (data / "text").write_text(text.replace("hello [XX] fine", "hello fine"))
    with pytest.raises(DataError, match="no utterance of language.*fr"):
        make_replay_subset(data, tmp_path / "r", per_lang=1, languages=["fr"])
    with pytest.raises(DataError, match="'asr' must be one of them"):
        make_replay_subset(data, tmp_path / "r", per_lang=1, tasks=["lid"])
    with pytest.raises(DataError, match="overwrite its source"):
        make_replay_subset(data, data, per_lang=1)
    assert cli_main([str(data), str(tmp_path / "r"), "--per_lang", "0"]) == 1
    assert "--per_lang 0" in capsys.readouterr().err


def test_cli_as_a_module(data, tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "espnet2_ext.bin.make_replay_subset",
            str(data),
            str(tmp_path / "r"),
            "--per_lang",
            "1",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "2 utterances (de 1, en 1)" in r.stdout
    assert len(read_data_dir(tmp_path / "r")) == 2


def test_tasks_of_a_model_config(data, tmp_path, capsys):
    """run_extend.sh's default replay: every task the base model was trained with, read from its config.yaml."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tokenverse_conf:\n  tasks: [asr, scd, endp, ner, lid]\n  languages: [de, en]\n", encoding="utf-8")
    assert cli_main([str(data), str(tmp_path / "all"), "--per_lang", "5", "--tasks_of_config", str(cfg)]) == 0
    assert "tasks asr,scd,endp,ner,lid" in capsys.readouterr().out
    out = {u.utt_id: u for u in read_data_dir(tmp_path / "all")}
    assert sorted(out) == ["spk1-u1", "spk1-u2"]  # only the fully annotated ones are annotated for every task
    assert out["spk1-u1"].tasks == ("asr", "scd", "endp", "ner", "lid")
    src = {u.utt_id: u for u in read_data_dir(data)}
    assert out["spk1-u1"].text == src["spk1-u1"].text  # nothing to strip

    cfg.write_text("tokenverse_conf:\n  tasks: [asr, lid]\n  languages: [de, en]\n", encoding="utf-8")
    assert cli_main([str(data), str(tmp_path / "al"), "--per_lang", "5", "--tasks_of_config", str(cfg)]) == 0
    assert {u.tasks for u in read_data_dir(tmp_path / "al")} == {("asr", "lid")}

    for bad in ("tokenverse_conf: [", "just a string\n", "tokenverse_conf:\n  taks: [asr]\n"):
        cfg.write_text(bad, encoding="utf-8")
        assert cli_main([str(data), str(tmp_path / "r"), "--per_lang", "1", "--tasks_of_config", str(cfg)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--tasks_of_config {cfg}" in err and "--tasks" in err, err
    assert cli_main([str(data), str(tmp_path / "r"), "--per_lang", "1", "--tasks_of_config", str(tmp_path / "no")]) == 1
    assert "cannot read the model's tasks" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):  # one or the other
        cli_main(
            [str(data), str(tmp_path / "r"), "--per_lang", "1", "--tasks", "asr,lid", "--tasks_of_config", str(cfg)]
        )
