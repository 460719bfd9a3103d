"""Property-based tests (hypothesis, bounded examples) of the parsers every user file goes through.

Invariants: no traceback on any Unicode (or non-UTF-8) input, only ``DataError`` with a one-line message; task-token
stripping is idempotent and never drops a word; the tag-aware tokenizer's encode -> decode gives back the normalised
text with every task token intact; the scorer's counts are symmetric where they should be.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from espnet2_ext.common import DataError
from espnet2_ext.data.utt2tasks import read_utt2tasks
from espnet2_ext.scoring.metrics import (
    BOUNDARY_TASKS,
    align_matches,
    read_text,
    read_utt2lang,
    score_corpus,
    score_utterance,
)
from espnet2_ext.task_spec import PRIMARY_TASK, TaskSpec
from espnet2_ext.text.annotation import annotation_error, hidden_task_token
from espnet2_ext.text.strip_tasks import strip_all_task_tokens, strip_inactive_tokens

SPEC = TaskSpec.default()
TAGS = SPEC.all_tokens
# Bounded for CI; database=None: no .hypothesis/ example store written into the checkout.
BOUNDED = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FEW = settings(BOUNDED, max_examples=30)

# Words: any Unicode, including bracketed look-alikes of tags, control and separator characters.
any_word = st.one_of(
    st.text(min_size=1, max_size=8),
    st.sampled_from(TAGS),
    st.sampled_from(["[XX]", "[ne]", "[NE", "NE]", "[]", "[[SCD]]", "[SCD]x", "\u2581[SCD]"]),
)
spaces = st.text(alphabet=" \t\u3000\u00a0\u2028\x1c\r\n\x0b", min_size=1, max_size=3)


@st.composite
def texts(draw, word=any_word, max_words=12):
    words = draw(st.lists(word, max_size=max_words))
    seps = draw(st.lists(spaces, min_size=len(words) + 1, max_size=len(words) + 1))
    return "".join(s + w for s, w in zip(seps, words + [""]))


task_sets = st.sets(st.sampled_from(SPEC.aux_tasks)).map(lambda s: (PRIMARY_TASK,) + tuple(sorted(s)))


def one_line(msg: str) -> bool:
    return len(msg.splitlines()) == 1


# ---- task-token stripping and annotation checks ------------------------------------------------------------
@BOUNDED
@given(texts(), task_sets)
def test_stripping_is_idempotent_and_never_drops_a_word(text, active):
    out = strip_inactive_tokens(text, active, SPEC)
    assert strip_inactive_tokens(out, active, SPEC) == out
    assert out.split() == [w for w in text.split() if SPEC.task_of(w) in (None,) + active]
    assert [w for w in out.split() if not SPEC.is_task_token(w)] == [
        w for w in text.split() if not SPEC.is_task_token(w)
    ]
    words_only = strip_all_task_tokens(text, SPEC)
    assert not any(SPEC.is_task_token(w) for w in words_only.split())
    assert strip_all_task_tokens(out, SPEC) == words_only


@BOUNDED
@given(texts(), st.one_of(st.none(), task_sets))
def test_annotation_check_answers_any_text_in_one_line(text, available):
    err = annotation_error(text, SPEC, available)
    assert err is None or (isinstance(err, str) and one_line(err))


@BOUNDED
@given(
    texts(word=st.one_of(st.sampled_from(TAGS), st.text(alphabet="abcxyzäß", min_size=1, max_size=4))),
    task_sets,
    task_sets,
)
def test_stripping_a_valid_annotation_keeps_it_valid(text, annotated, requested):
    """What the preprocessor feeds the model: a valid reference stripped to a subset of its tasks stays valid."""
    assume(annotation_error(text, SPEC, annotated) is None)
    active = tuple(t for t in requested if t in annotated)
    out = strip_inactive_tokens(text, active, SPEC)
    assume(out)  # a reference of tags only becomes empty, which the data-dir check rejects anyway
    assert annotation_error(out, SPEC, active) is None


# ---- data-dir validation and Kaldi-table readers: any bytes -> a value or one DataError ----------------------
def _write_dir(root: Path, text: bytes, utt2tasks: bytes) -> Path:
    d = root / "data"
    d.mkdir()
    (d / "wav.scp").write_text("u1 /nonexistent/u1.wav\n", encoding="utf-8")
    (d / "utt2spk").write_text("u1 u1\n", encoding="utf-8")
    (d / "text").write_bytes(text)
    (d / "utt2tasks").write_bytes(utt2tasks)
    return d


line_bytes = st.one_of(
    texts().map(lambda t: ("u1 " + t + "\n").encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    st.sampled_from([b"u1 [EN] hello\n", b"u1 \xff\xfe hello\n", b"u1 caf\xe9\n", b"\xef\xbb\xbfu1 hello\n"]),
)
utt2tasks_bytes = st.one_of(
    st.lists(st.sampled_from(["asr", "scd", "endp", "ner", "lid", "topic", "ASR", ""]), max_size=4).map(
        lambda ts: ("u1 " + " ".join(ts) + "\n").encode()
    ),
    st.binary(max_size=30),
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@FEW
@given(line_bytes, utt2tasks_bytes)
def test_validate_data_dir_never_tracebacks(text, utt2tasks):
    from espnet2_ext.data.validate_dir import validate_data_dir

    with tempfile.TemporaryDirectory() as tmp:
        d = _write_dir(Path(tmp), text, utt2tasks)
        try:
            summary = validate_data_dir(d, SPEC)
        except DataError as e:
            assert one_line(str(e)) and str(d) in str(e)
        else:
            assert summary.n_utts == 1
        assert (d / "text").read_bytes() == text  # never modified


@BOUNDED
@given(utt2tasks_bytes)
def test_read_utt2tasks_any_bytes(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "utt2tasks"
        path.write_bytes(content)
        try:
            out = read_utt2tasks(path, SPEC)
        except DataError as e:
            assert one_line(str(e)) and str(path) in str(e)
        else:
            for tasks in out.values():
                assert PRIMARY_TASK in tasks and set(tasks) <= set(SPEC.tasks)


utt_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=6)


@BOUNDED
@given(
    st.dictionaries(utt_ids, st.lists(st.sampled_from(SPEC.tasks), min_size=0, max_size=6), max_size=5),
    st.sampled_from([" ", "\t", "  ", " \t "]),
    st.sampled_from(["\n", "\r\n"]),
)
def test_read_utt2tasks_roundtrip(entries, sep, newline):
    """Any whitespace between fields, LF or CRLF: the tasks read back are those written (spec order, asr first)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "utt2tasks"
        path.write_bytes(
            "".join(utt + sep + sep.join([PRIMARY_TASK] + tasks) + newline for utt, tasks in entries.items()).encode()
        )
        out = read_utt2tasks(path, SPEC, utt_ids=list(entries))
    assert out == {utt: tuple(t for t in SPEC.tasks if t in {PRIMARY_TASK, *tasks}) for utt, tasks in entries.items()}


@BOUNDED
@given(st.one_of(st.binary(max_size=60), texts().map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_scoring_readers_any_bytes(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "text"
        path.write_bytes(content)
        for reader in (read_text, read_utt2lang):
            try:
                reader(path)
            except DataError as e:
                assert one_line(str(e)) and str(path) in str(e)


# ---- the scorer ------------------------------------------------------------------------------------------
small_tokens = st.lists(st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(TAGS)), max_size=10)


@BOUNDED
@given(small_tokens, small_tokens)
def test_alignment_is_a_valid_matching_of_symmetric_size(ref, hyp):
    pairs = align_matches(ref, hyp, SPEC.is_task_token)
    assert all(ref[i] == hyp[j] for i, j in pairs)
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(pairs, pairs[1:]))
    back = align_matches(hyp, ref, SPEC.is_task_token)

    def kinds(ps, seq):
        return (len(ps), sum(not SPEC.is_task_token(seq[i]) for i, _ in ps))

    assert kinds(pairs, ref) == kinds(back, hyp)  # as many matches, as many of them words, either way round


@BOUNDED
@given(small_tokens, small_tokens, task_sets)
@example(["[SCD]", "[ENDP]"], ["[ENDP]", "[SCD]"], ("asr", "endp", "scd"))
def test_score_counts_are_symmetric(ref, hyp, active):
    a = score_utterance(ref, hyp, SPEC, active).c
    b = score_utterance(hyp, ref, SPEC, active).c
    assert a["S"] + a["D"] + a["I"] == b["S"] + b["D"] + b["I"]  # edit distance
    assert a["D"] - a["I"] == a["n_ref_words"] - b["n_ref_words"]
    for task in BOUNDARY_TASKS:
        assert a[f"{task}_tp"] == b[f"{task}_tp"]
        assert (a[f"{task}_fp"], a[f"{task}_fn"]) == (b[f"{task}_fn"], b[f"{task}_fp"])
    assert (a["ner_tp"], a["ner_hyp"], a["ner_ref"]) == (b["ner_tp"], b["ner_ref"], b["ner_hyp"])


@BOUNDED
@given(small_tokens, task_sets)
def test_scoring_a_reference_against_itself_is_perfect(ref, active):
    c = score_utterance(ref, ref, SPEC, active).c
    assert c["S"] == c["D"] == c["I"] == 0
    assert all(c[f"{t}_fp"] == c[f"{t}_fn"] == 0 for t in BOUNDARY_TASKS)
    assert c["ner_tp"] == c["ner_ref"] == c["ner_hyp"]


@FEW
@given(
    st.dictionaries(utt_ids, st.lists(any_word, max_size=6), max_size=4),
    st.dictionaries(utt_ids, st.lists(any_word, max_size=6), max_size=4),
    task_sets,
)
def test_score_corpus_any_tokens(ref, hyp, active):
    try:
        result = score_corpus(ref, hyp, SPEC, active)
    except DataError as e:
        assert one_line(str(e)) and set(ref) != set(hyp)
    else:
        assert set(ref) == set(hyp) and result["counts"]["n_utts"] == len(ref)


# ---- the tag-aware tokenizer ------------------------------------------------------------------------------
CORPUS_WORDS = (
    "hello how are you fine thanks the weather is nice today guten tag wie geht es danke maria berlin"
).split()


@pytest.fixture(scope="module")
def sp(tmp_path_factory):
    """A tiny tag-aware sentencepiece model, trained once for this module."""
    import random

    import sentencepiece as spm

    from espnet2_ext.text.tag_aware_bpe import train_tag_aware_bpe

    rng = random.Random(0)
    lines = [
        f"u{i} [{rng.choice(['EN', 'DE'])}] "
        + " ".join(rng.choice(CORPUS_WORDS + ["[SCD]", "[ENDP]"]) for _ in range(rng.randint(3, 9)))
        for i in range(200)
    ]
    model = train_tag_aware_bpe(lines, SPEC, vocab_size=80, out_dir=tmp_path_factory.mktemp("spm"))
    return spm.SentencePieceProcessor(model_file=str(model))


def _roundtrip(sp, text: str) -> str:
    return sp.decode_pieces(sp.encode(text, out_type=str))


def normalise(text: str) -> str:
    """What reaches the tokenizer in training and scoring: whitespace-split words joined by one space."""
    return " ".join(text.split())


@BOUNDED
@given(
    texts(
        word=st.one_of(
            st.sampled_from(CORPUS_WORDS), st.sampled_from(TAGS), st.text(alphabet="helowrdatg", min_size=1, max_size=6)
        ),
        max_words=15,
    )
)
def test_tokenizer_roundtrip_on_known_characters(sp, text):
    text = normalise(text)
    assert _roundtrip(sp, text) == text
    pieces = sp.encode(text, out_type=str)
    n_tags = sum(SPEC.is_task_token(w) for w in text.split())
    assert sum(p.lstrip("\u2581") in TAGS for p in pieces) == n_tags  # each tag one piece


@BOUNDED
@given(texts())
@example("\u2581[SCD] hello")
@example("\uff3bSCD\uff3d hello")
def test_tokenizer_keeps_every_task_token_of_any_text(sp, text):
    """Any Unicode: unknown characters may come back as <unk> (⁇), but a text that passes the annotation check
    keeps exactly its task tokens, in order; the check rejects words that the tokenizer would turn into a tag."""
    text = normalise(text)
    out = _roundtrip(sp, text)  # no exception for any input

    def tags(s):
        return [w for w in s.split() if SPEC.is_task_token(w)]

    if annotation_error(text, SPEC) is None:
        assert tags(out) == tags(text)
    elif tags(out) != tags(text):  # only words the check rejects as hidden tags change the tag sequence
        assert any(hidden_task_token(w, SPEC) for w in text.split())
