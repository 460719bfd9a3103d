"""Task spec, stripping of inactive-task tokens, annotation checks, utt2tasks and activation policies."""

import itertools
from collections import Counter

import numpy as np
import pytest

from espnet2_ext.common import DataError
from espnet2_ext.data.utt2tasks import read_utt2tasks
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.text.annotation import annotation_error, transcript_error
from espnet2_ext.text.strip_tasks import entities, strip_all_task_tokens, strip_inactive_tokens
from espnet2_ext.train.activation_policy import choose_active

SPEC = TaskSpec.default()
SENT = "[EN] hello [NE] maria lopez [/NE] how are you [ENDP] [SCD] fine [ENDP]"

# Hand-written expectations for every subset of the auxiliary tasks.
EXPECTED = {
    (): "hello maria lopez how are you fine",
    ("scd",): "hello maria lopez how are you [SCD] fine",
    ("endp",): "hello maria lopez how are you [ENDP] fine [ENDP]",
    ("ner",): "hello [NE] maria lopez [/NE] how are you fine",
    ("lid",): "[EN] hello maria lopez how are you fine",
    ("scd", "endp"): "hello maria lopez how are you [ENDP] [SCD] fine [ENDP]",
    ("scd", "ner"): "hello [NE] maria lopez [/NE] how are you [SCD] fine",
    ("scd", "lid"): "[EN] hello maria lopez how are you [SCD] fine",
    ("endp", "ner"): "hello [NE] maria lopez [/NE] how are you [ENDP] fine [ENDP]",
    ("endp", "lid"): "[EN] hello maria lopez how are you [ENDP] fine [ENDP]",
    ("ner", "lid"): "[EN] hello [NE] maria lopez [/NE] how are you fine",
    ("scd", "endp", "ner"): "hello [NE] maria lopez [/NE] how are you [ENDP] [SCD] fine [ENDP]",
    ("scd", "endp", "lid"): "[EN] hello maria lopez how are you [ENDP] [SCD] fine [ENDP]",
    ("scd", "ner", "lid"): "[EN] hello [NE] maria lopez [/NE] how are you [SCD] fine",
    ("endp", "ner", "lid"): "[EN] hello [NE] maria lopez [/NE] how are you [ENDP] fine [ENDP]",
    ("scd", "endp", "ner", "lid"): SENT,
}


def test_spec_layout():
    assert SPEC.tasks == ("asr", "scd", "endp", "ner", "lid")
    assert SPEC.task_of("[NE]") == SPEC.task_of("[/NE]") == "ner"
    assert SPEC.task_of("[FR]") == "lid" and SPEC.task_of("hello") is None
    assert SPEC.mask(["asr", "ner"]) == [1, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="unknown task.*valid tasks are: asr, scd"):
        SPEC.parse_tasks(["asr", "sentiment"])


@pytest.mark.parametrize("active", [c for r in range(5) for c in itertools.combinations(SPEC.aux_tasks, r)])
def test_strip_every_subset(active):
    assert strip_inactive_tokens(SENT, ("asr",) + active, SPEC) == EXPECTED[active]


def test_strip_all_and_spacing():
    assert strip_all_task_tokens("  [DE]  guten   tag [ENDP] ", SPEC) == "guten tag"


@pytest.mark.parametrize(
    "text,available,message",
    [
        ("[EN] hi [XX] there", None, "unknown tag \\[XX\\]"),
        ("[EN] hi [SCD] there", ("asr", "lid"), "belongs to task 'scd'"),
        ("[EN] [NE] maria [NE] x [/NE] [/NE]", None, "nested"),
        ("[EN] [NE] maria", None, "never closed"),
        ("[EN] maria [/NE]", None, "without an opening"),
        ("[IT] ciao", None, "unknown tag \\[IT\\]"),
        ("", None, "empty text"),
    ],
)
def test_annotation_errors(text, available, message):
    import re

    assert re.search(message, annotation_error(text, SPEC, available))


@pytest.mark.parametrize(
    "text,tasks,lang,message",
    [
        (
            "[IT] ciao",
            ("asr", "lid"),
            None,
            r"language token \[IT\] is not in the task spec \(languages: en, de, es, fr\)",
        ),
        ("[EN] hi [FOO]", ("asr", "lid"), None, r"unknown tag \[FOO\]"),  # the annotation rules apply too
        ("hi [EN]", ("asr", "lid"), None, r"\[EN\] must be the first token"),
        ("hi there", ("asr", "lid"), None, "lists 'lid' but the text has no language token"),
        ("[EN] [SCD]", ("asr", "lid", "scd"), None, "no words, only task tokens"),
        ("[EN] hi", ("asr", "lid"), "de", r"\[EN\] disagrees with utt2lang 'de'"),
        ("[DE] hallo", ("asr", "lid"), "de", None),
        ("hi", ("asr",), None, None),
    ],
)
def test_transcript_errors(text, tasks, lang, message):
    import re

    err = transcript_error(text, SPEC, tasks, lang)
    assert err is None if message is None else re.search(message, err), err


def test_entities():
    assert entities("a [NE] b c [/NE] d [NE] e".split()) == ["b c", "e"]


def test_utt2tasks(tmp_path):
    p = tmp_path / "utt2tasks"
    p.write_text("u1 asr scd endp ner lid\nu2 asr lid\n")
    assert read_utt2tasks(p, SPEC) == {"u1": SPEC.tasks, "u2": ("asr", "lid")}
    with pytest.raises(DataError, match="no entry for utterance\\(s\\) u3"):
        read_utt2tasks(p, SPEC, ["u1", "u3"])
    p.write_text("u1 asr scd\nu2 asr sentiment\n")
    with pytest.raises(DataError, match=r"utt2tasks:2 \(u2\): unknown task\(s\) sentiment"):
        read_utt2tasks(p, SPEC)
    with pytest.raises(DataError, match="missing"):
        read_utt2tasks(tmp_path / "nope", SPEC)


def test_sample_policy_is_uniform_and_respects_availability():
    rng = np.random.default_rng(0)
    available = ("asr", "scd", "ner", "lid")  # endp unavailable
    n = 16000
    counts = Counter(choose_active(available, "sample", rng) for _ in range(n))
    assert all("endp" not in c and c[0] == "asr" for c in counts)
    assert len(counts) == 8  # every subset of the 3 available aux tasks
    # chi-square goodness of fit against the uniform distribution, 7 dof: 99.9% quantile is 24.3
    expected = n / 8
    chi2 = sum((v - expected) ** 2 / expected for v in counts.values())
    assert chi2 < 24.3
    assert choose_active(available, "label", rng) == available
