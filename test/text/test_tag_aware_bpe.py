"""Tag-aware sentencepiece: tags are one piece with their word boundary; ESPnet token list; CLI measurement."""

from __future__ import annotations

import random
from pathlib import Path
from typing import List

import pytest
import sentencepiece as spm

from espnet2_ext.bin import train_tokenizer
from espnet2_ext.common import DataError
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.text.tag_aware_bpe import (
    WORD_BOUNDARY,
    VocabSizeError,
    espnet_token_list,
    prefixed_tag_symbols,
    read_texts,
    tag_piece_stats,
    train_tag_aware_bpe,
)

SPEC = TaskSpec.default()
WORDS = {
    "en": "hello how are you fine thanks the weather is nice today we meet at noon".split(),
    "de": "guten tag wie geht es danke gut das wetter ist heute schön".split(),
}
NAMES = "maria john berlin paris sarah google".split()


def make_corpus(n: int = 300, seed: int = 0) -> List[str]:
    """Kaldi text lines shaped like TokenVerse references: language tag, turns, entities, SCD/ENDP."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        lang = rng.choice(sorted(WORDS))
        words = [f"[{lang.upper()}]"]
        for turn in range(rng.randint(1, 3)):
            if turn:
                words.append("[SCD]")
            for _ in range(rng.randint(2, 6)):
                if rng.random() < 0.2:
                    words += ["[NE]", rng.choice(NAMES), "[/NE]"]
                else:
                    words.append(rng.choice(WORDS[lang]))
            words.append("[ENDP]")
        lines.append(f"utt{i:04d} " + " ".join(words))
    return lines


@pytest.fixture(scope="module")
def corpus() -> List[str]:
    return make_corpus()


@pytest.fixture(scope="module")
def ours(corpus, tmp_path_factory) -> Path:
    return train_tag_aware_bpe(corpus, SPEC, 80, tmp_path_factory.mktemp("ours"))


@pytest.fixture(scope="module")
def plain(corpus, tmp_path_factory) -> Path:
    return train_tag_aware_bpe(corpus, SPEC, 80, tmp_path_factory.mktemp("plain"), prefix_tags=False)


def test_every_tag_is_one_piece_with_no_lone_boundary(ours, corpus):
    stats = tag_piece_stats(ours, corpus, SPEC)
    n_tags = sum(1 for line in corpus for w in line.split()[1:] if SPEC.is_task_token(w))
    assert stats["tags"] == n_tags > 0
    assert stats["tag_pieces"] == n_tags
    assert stats["split_tags"] == 0
    assert stats["lone_boundary_before_tag"] == 0
    sp = spm.SentencePieceProcessor(model_file=str(ours))
    pieces = sp.encode("hello [SCD] john [ENDP]", out_type=str)
    assert WORD_BOUNDARY + "[SCD]" in pieces and WORD_BOUNDARY + "[ENDP]" in pieces
    assert WORD_BOUNDARY not in pieces


def test_plain_symbols_waste_a_boundary_piece_per_tag(ours, plain, corpus):
    ours_s, plain_s = tag_piece_stats(ours, corpus, SPEC), tag_piece_stats(plain, corpus, SPEC)
    assert plain_s["split_tags"] == 0  # plain symbols are atomic too ...
    assert plain_s["lone_boundary_before_tag"] > 0  # ... but each costs an extra "▁"
    assert ours_s["pieces"] < plain_s["pieces"]
    sp = spm.SentencePieceProcessor(model_file=str(plain))
    pieces = sp.encode("hello [SCD] john", out_type=str)
    assert pieces[pieces.index("[SCD]") - 1] == WORD_BOUNDARY


def test_split_tags_are_counted(corpus, tmp_path):
    # A model that only knows the language tags splits [SCD], [ENDP], [NE], [/NE] into several pieces.
    lid_only = train_tag_aware_bpe(corpus, TaskSpec.build(["lid"]), 80, tmp_path)
    stats = tag_piece_stats(lid_only, corpus, SPEC)
    n_lid = sum(1 for line in corpus for w in line.split() if SPEC.task_of(w) == "lid")
    assert stats["tag_pieces"] == n_lid
    assert stats["split_tags"] == stats["tags"] - n_lid > 0


def test_decode_encode_roundtrip_for_tagged_text(ours):
    sp = spm.SentencePieceProcessor(model_file=str(ours))
    sentences = [
        "[EN] hello [NE] maria [/NE] how are you [ENDP] [SCD] fine thanks [ENDP]",
        "[DE] guten tag [ENDP] [SCD] danke [NE] berlin [/NE] [ENDP]",
        " ".join(SPEC.all_tokens),  # every tag, incl. languages absent from the corpus
        "hello",
    ]
    for s in sentences:
        assert sp.decode(sp.encode(s, out_type=str)) == s
        assert sp.decode(sp.encode(s)) == s


def test_espnet_bpe_tokenizer_and_token_list_roundtrip(ours, corpus):
    from espnet2.text.sentencepiece_tokenizer import SentencepiecesTokenizer
    from espnet2.text.token_id_converter import TokenIDConverter

    import espnet2_ext  # noqa: F401  (offline guard before espnet2)

    tok = SentencepiecesTokenizer(str(ours))
    conv = TokenIDConverter(str(ours.parent / "tokens.txt"), unk_symbol="<unk>")
    unk, blank = conv.tokens2ids(["<unk>", "<blank>"])
    for text in read_texts(corpus[:50]):
        ids = conv.tokens2ids(tok.text2tokens(text))
        assert unk not in ids and blank not in ids
        assert tok.tokens2text(conv.ids2tokens(ids)) == text


def test_token_list_layout_matches_asr_sh(ours):
    tokens = (ours.parent / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert tokens[0] == "<blank>" and tokens[1] == "<unk>" and tokens[-1] == "<sos/eos>"
    assert len(tokens) == len(set(tokens))
    assert set(prefixed_tag_symbols(SPEC)) <= set(tokens)
    assert not set(SPEC.all_tokens) & set(tokens)  # no unprefixed duplicates of the tags
    # asr.sh: blank, oov, the .vocab file minus its first three lines (<unk>, <s>, </s>), sos/eos
    vocab = [line.split("\t")[0] for line in (ours.parent / "bpe.vocab").read_text(encoding="utf-8").splitlines()]
    assert vocab[:3] == ["<unk>", "<s>", "</s>"]
    assert tokens == ["<blank>", "<unk>"] + vocab[3:] + ["<sos/eos>"]
    assert tokens == espnet_token_list(ours)
    assert len(tokens) == 80  # vocab_size pieces: 3 spm specials out, 3 ESPnet specials in
    assert not [p for p in ours.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_training_is_deterministic_and_reads_kaldi_files(corpus, ours, tmp_path):
    text = tmp_path / "text"
    text.write_text("\n".join(corpus[:150] + ["utt_empty", ""] + corpus[150:]) + "\n", encoding="utf-8")
    again = train_tag_aware_bpe(text, SPEC, 80, tmp_path / "again")  # from a file, with an empty utterance
    assert again.read_bytes() == ours.read_bytes()
    assert (again.parent / "tokens.txt").read_text() == (ours.parent / "tokens.txt").read_text()
    with pytest.raises(DataError, match="no such text file"):
        train_tag_aware_bpe(tmp_path / "missing", SPEC, 80, tmp_path / "x")


def test_vocab_size_errors_name_the_limit(corpus, tmp_path):
    with pytest.raises(VocabSizeError, match=r"too large .* at most \d+") as big:
        train_tag_aware_bpe(corpus, SPEC, 5000, tmp_path / "big")
    assert not (tmp_path / "big" / "bpe.model").exists()
    train_tag_aware_bpe(corpus, SPEC, big.value.limit, tmp_path / "max")  # the suggested size works
    assert len((tmp_path / "max" / "tokens.txt").read_text().splitlines()) == big.value.limit
    with pytest.raises(VocabSizeError, match=r"too small: .* at least \d+") as small:
        train_tag_aware_bpe(corpus, SPEC, 10, tmp_path / "small")
    train_tag_aware_bpe(corpus, SPEC, small.value.limit, tmp_path / "min")
    with pytest.raises(DataError, match="no training text"):
        train_tag_aware_bpe(["utt1", "utt2 "], SPEC, 50, tmp_path / "empty")


def test_cli_writes_model_and_prints_before_after(corpus, tmp_path, capsys):
    text = tmp_path / "text"
    text.write_text("\n".join(corpus) + "\n", encoding="utf-8")
    out = tmp_path / "data" / "token_list" / "bpe_bpe80"
    train_tokenizer.main(["--text", str(text), "--out_dir", str(out), "--vocab_size", "80", "--compare_plain"])
    printed = capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"bpe.model", "bpe.vocab", "tokens.txt"}
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.startswith(("tag-aware", "plain"))}
    plain_stats = tag_piece_stats(
        train_tag_aware_bpe(corpus, SPEC, 80, tmp_path / "p", prefix_tags=False), corpus, SPEC
    )
    assert rows["tag-aware"][-1] == "0"  # lone ▁ before tags
    assert rows["plain"][-1] == str(plain_stats["lone_boundary_before_tag"])
    ours_stats = tag_piece_stats(out / "bpe.model", corpus, SPEC)
    assert rows["tag-aware"][3] == str(ours_stats["pieces"])
    assert f"pieces saved by prefixed tags: {plain_stats['pieces'] - ours_stats['pieces']} " in printed
