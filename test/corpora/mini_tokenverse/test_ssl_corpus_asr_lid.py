"""Word-list read speech as ASR+LID-only fine-tuning data (``ssl_corpus.plan_asr_lid`` / ``prepare_asr_lid`` and
``local/data.sh --wordlist_read``): the head of the pretraining corpus, spelled with the tokenizer's letters."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from espnet2_ext.corpora.mini_tokenverse import ssl_corpus as S
from espnet2_ext.data.kaldi_dir import read_data_dir

REPO = Path(__file__).resolve().parents[3]
HAVE_TOOLS = all(shutil.which(t) for t in ("espeak-ng", "sox"))


def test_subset_is_the_head_of_the_pretraining_corpus_in_plan_order():
    corpus = {p.utt_id: p for p in S.plan(hours=0.2, seed=0)["train"]}
    sub = S.plan_asr_lid(6, seed=0)
    assert [p.lang for p in sub] == [lang for lang in S.LANGUAGES for _ in range(6)]
    for lang in S.LANGUAGES:
        head = [u for u in corpus if u.startswith(f"ssl{lang}") and int(u.rsplit("-", 1)[1]) < 6]
        got = [p for p in sub if p.lang == lang]
        assert sorted(p.utt_id for p in got) == sorted(head)
        assert all(corpus[p.utt_id] == p for p in got)  # same sentence, voice and noise seed: same wav
    # a smaller set is the head of a larger one, per language
    assert S.plan_asr_lid(3, seed=0) == [p for lang in S.LANGUAGES for p in [q for q in sub if q.lang == lang][:3]]
    S.check_disjoint({"train": sub})


def test_charset_drops_sentences_with_other_letters_and_keeps_plan_order():
    full = S.plan_asr_lid(40, seed=0, languages=("fr",))
    letters = set("".join(w for p in full for w in p.turns[0].tokens))
    assert "é" in letters
    no_acute = letters - {"é"}
    kept = S.plan_asr_lid(10, seed=0, charset=no_acute, languages=("fr",))
    assert len(kept) == 10 and all("é" not in "".join(p.turns[0].tokens) for p in kept)
    index = [int(p.utt_id.rsplit("-", 1)[1]) for p in kept]
    assert index == sorted(index) and index[-1] >= 10  # later sentences fill the places of the dropped ones
    skipped = [p for p in full if int(p.utt_id.rsplit("-", 1)[1]) <= index[-1] and p not in kept]
    assert skipped and all("é" in "".join(p.turns[0].tokens) for p in skipped)
    with pytest.raises(ValueError, match="fewer than 5 fr sentences use only the letters"):
        S.plan_asr_lid(5, seed=0, charset=set("xyz"), languages=("fr",))
    with pytest.raises(ValueError, match="positive"):
        S.plan_asr_lid(0)


def test_letters_of_text_leave_task_tokens_out(tmp_path):
    t = tmp_path / "text"
    t.write_text("a-1 [DE] grüß [NE] köln [/NE] [ENDP]\nb-1 [EN] ok\n", encoding="utf-8")
    assert S.letters_of_text(t) == set("grüßkölnok")


@pytest.mark.skipif(not HAVE_TOOLS, reason="needs espeak-ng and sox")
def test_data_sh_wordlist_read_writes_the_set_and_the_combined_train_set(tmp_path):
    shutil.copytree(
        REPO / "egs2",
        tmp_path / "egs2",
        symlinks=True,
        ignore=shutil.ignore_patterns("data", "dump", "exp", "exp_*", "downloads", "*.pt", "*.png"),
    )
    recipe = tmp_path / "egs2" / "mini_tokenverse" / "asr1"
    env = {**os.environ, "ESPNET2_EXT_VENV": sys.prefix}
    r = subprocess.run(
        ["local/data.sh", "--size", "debug", "--train_read", "3", "--wordlist_read", "2"],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wl = read_data_dir(recipe / "data" / "wordlist_read2")
    assert len(wl) == 2 * len(S.LANGUAGES)
    letters = S.letters_of_text(recipe / "data" / "train" / "text")
    for u in wl:
        words = u.text.split()
        assert words[0] == f"[{u.lang.upper()}]" and u.tasks == ("asr", "lid")
        assert set("".join(words[1:])) <= letters
        assert (recipe / u.wav).is_file() and u.wav.startswith("downloads/ssl_wav/asr_lid-seed0/")
    combined = read_data_dir(recipe / "data" / "train_read3_wl2")
    base = read_data_dir(recipe / "data" / "train_read3")
    assert sorted(u.utt_id for u in combined) == sorted([u.utt_id for u in base] + [u.utt_id for u in wl])
    v = subprocess.run(
        [
            sys.executable,
            "-m",
            "espnet2_ext.bin.validate_data_dir",
            "data/train_read3_wl2",
            "--check_audio",
            "--languages",
            "en,de,es,fr",
            "--tasks",
            "asr,scd,endp,ner,lid",
        ],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
    )
    assert v.returncode == 0, v.stderr
    # without --train_read there is nothing to add the set to: a one-line error, before any synthesis
    bad = subprocess.run(
        ["local/data.sh", "--size", "debug", "--wordlist_read", "2"],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "give --train_read N too" in bad.stderr


def test_cli_refuses_charset_without_the_subset_and_names_a_missing_text(tmp_path, capsys):
    from espnet2_ext.bin.prepare_ssl_corpus import main

    assert main(["--out_dir", str(tmp_path / "d"), "--charset_from", "x"]) == 1
    assert "--charset_from only goes with --asr_lid_per_lang" in capsys.readouterr().err
    missing = tmp_path / "no_such" / "text"
    assert main(["--out_dir", str(tmp_path / "d"), "--asr_lid_per_lang", "2", "--charset_from", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
