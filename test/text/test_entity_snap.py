"""text/entity_snap + bin/snap_entities: entity spans become the nearest list phrase, nothing else changes."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from espnet2_ext.bin.snap_entities import main
from espnet2_ext.common import DataError
from espnet2_ext.text.entity_snap import entity_spans, snap_entities

PHRASES = ["lufthansa", "maria berg", "dresden"]


def test_a_near_miss_inside_a_span_becomes_the_phrase():
    hyp = "[DE] ich fliege mit [NE] lufthanser [/NE] nach [NE] dresten [/NE] [ENDP]".split()
    out, snaps = snap_entities(hyp, PHRASES, 0.3)
    assert " ".join(out) == "[DE] ich fliege mit [NE] lufthansa [/NE] nach [NE] dresden [/NE] [ENDP]"
    assert [(s.heard, s.phrase) for s in snaps] == [("lufthanser", "lufthansa"), ("dresten", "dresden")]
    assert snaps[0].distance == pytest.approx(2 / 10)  # two edits over the longer spelling (10 letters)


def test_the_threshold_decides_and_spaces_do_not_count():
    hyp = "[EN] call [NE] marie aberg [/NE]".split()
    assert snap_entities(hyp, PHRASES, 0.05)[0] == hyp  # "marieaberg" -> "mariaberg": 1 edit / 10 letters
    out, _ = snap_entities(hyp, PHRASES, 0.1)
    assert out == "[EN] call [NE] maria berg [/NE]".split()
    split = "[DE] mit [NE] luft hansa [/NE]".split()  # a name cut at the wrong place matches without the space
    assert snap_entities(split, PHRASES, 0.01)[0] == "[DE] mit [NE] lufthansa [/NE]".split()


def test_unclosed_span_ends_at_the_next_tag_and_words_outside_spans_stay():
    hyp = "[EN] lufthanser [NE] lufthanser [ENDP] lufthanser".split()
    assert entity_spans(hyp) == [(3, 4)]
    out, _ = snap_entities(hyp, PHRASES, 0.3)
    assert out == "[EN] lufthanser [NE] lufthansa [ENDP] lufthanser".split()


def test_no_list_or_exact_matches_change_nothing():
    hyp = "[EN] [NE] dresden [/NE] [NE] [/NE]".split()
    assert snap_entities(hyp, [], 1.0) == (hyp, [])
    assert snap_entities(hyp, PHRASES, 1.0) == (hyp, [])  # equal already; the empty span has no words
    with pytest.raises(DataError, match="outside"):
        snap_entities(hyp, PHRASES, 1.5)


WORD = st.text(alphabet="abcdefghij", min_size=1, max_size=6)
TOKEN = st.one_of(WORD, st.sampled_from(["[NE]", "[/NE]", "[SCD]", "[EN]"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(TOKEN, max_size=20), st.lists(st.lists(WORD, min_size=1, max_size=3), max_size=5), st.floats(0, 1))
def test_only_entity_span_words_change_and_the_result_is_a_phrase_or_the_original(tokens, phrase_words, dist):
    phrases = [" ".join(w) for w in phrase_words]
    out, snaps = snap_entities(tokens, phrases, dist)
    inside = {i for a, b in entity_spans(tokens) for i in range(a, b)}
    outside_before = [t for i, t in enumerate(tokens) if i not in inside]
    # walk the output: tags and outside words are the input's, in order
    assert [t for t in out if t.startswith("[")] == [t for t in tokens if t.startswith("[")]
    assert len(snaps) <= len(entity_spans(tokens))
    for s in snaps:
        assert s.phrase in phrases and s.distance <= dist
    if not snaps:
        assert out == tokens
    assert all(t in out for t in outside_before)
    assert snap_entities(tokens, phrases, 0.0)[0] == tokens or any(
        "".join(" ".join(tokens[a:b]).split()) == "".join(p.split()) for a, b in entity_spans(tokens) for p in phrases
    )


def test_cli_writes_a_new_text_and_a_log_and_never_the_decode(tmp_path, capsys):
    hyp = tmp_path / "text"
    hyp.write_text("u1 [DE] mit [NE] lufthanser [/NE]\nu2 [EN] hello\n", encoding="utf-8")
    lists = tmp_path / "utt2biasing"
    lists.write_text("u1 | lufthansa | maria berg\n", encoding="utf-8")
    out, log = tmp_path / "snap" / "text", tmp_path / "snap" / "log.jsonl"
    argv = ["--hyp", str(hyp), "--utt2biasing", str(lists), "--max_distance", "0.3", "--out", str(out)]
    assert main(argv + ["--log", str(log)]) == 0
    assert out.read_text() == "u1 [DE] mit [NE] lufthansa [/NE]\nu2 [EN] hello\n"
    assert json.loads(log.read_text())["snaps"][0]["phrase"] == "lufthansa"
    assert hyp.read_text().startswith("u1 [DE] mit [NE] lufthanser")
    assert main(argv[:-1] + [str(hyp)]) == 1 and "decode's own text" in capsys.readouterr().err
    assert main(argv[:5] + ["2", "--out", str(out)]) == 1 and "outside [0, 1]" in capsys.readouterr().err
