"""TokenVersePreprocessor (espnet2_ext/train/preprocessor.py): available tasks -> active tasks -> stripped
reference + task mask, with ESPnet's CommonPreprocessor doing the tokenization."""

from collections import Counter

import numpy as np
import pytest

from espnet2_ext.common import TASK_MASK, TASKS_NAME, DataError
from espnet2_ext.task_spec import TaskSpec
from espnet2_ext.train.preprocessor import TokenVersePreprocessor

TEXT = "[EN] hello [NE] maria [/NE] [SCD] fine [ENDP]"
WORDS = sorted(set(TEXT.split()) | {"[DE]", "[FR]", "[ES]", "guten"})
TOKENS = ["<blank>", "<unk>"] + WORDS + ["<sos/eos>"]


def make(train=True, policy="label", **kw):
    return TokenVersePreprocessor(train=train, token_type="word", token_list=TOKENS, policy=policy, seed=0, **kw)


def words_of(pre, out):
    return [TOKENS[i] for i in out["text"]]


def test_label_policy_keeps_what_is_annotated_and_masks_it():
    pre = make()
    out = pre("u1", {"speech": np.zeros(160, np.float32), "text": TEXT, TASKS_NAME: "asr scd endp ner lid"})
    assert words_of(pre, out) == TEXT.split()
    assert out[TASK_MASK].tolist() == [1, 1, 1, 1, 1] and out[TASK_MASK].dtype == np.int64
    assert TASKS_NAME not in out


def test_partial_labels_strip_nothing_they_do_not_have_and_mask_the_rest_off():
    pre = make()
    out = pre("u2", {"speech": np.zeros(160, np.float32), "text": "[DE] guten", TASKS_NAME: "asr lid"})
    assert words_of(pre, out) == ["[DE]", "guten"]
    assert out[TASK_MASK].tolist() == [1, 0, 0, 0, 1]  # columns: asr scd endp ner lid


def test_sample_policy_strips_exactly_the_inactive_tasks_tokens_and_draws_every_subset():
    pre = make(policy="sample")
    spec = TaskSpec.default()
    seen = Counter()
    for _ in range(400):
        out = pre("u1", {"speech": np.zeros(160, np.float32), "text": TEXT, TASKS_NAME: "asr scd endp ner lid"})
        active = spec.active_from_mask(out[TASK_MASK])
        assert "asr" in active
        got = words_of(pre, out)
        assert [w for w in got if spec.task_of(w) is None] == ["hello", "maria", "fine"]  # words always stay
        assert {spec.task_of(w) for w in got} - {None} == set(active) - {"asr"}  # every active task's tokens kept
        seen[active] += 1
    assert len(seen) == 16  # 2^4 subsets of the auxiliary tasks
    assert min(seen.values()) > 400 / 16 * 0.4


def test_validation_uses_the_labels_as_given():
    pre = make(train=False, policy="sample")
    for _ in range(20):
        out = pre("u1", {"speech": np.zeros(160, np.float32), "text": TEXT, TASKS_NAME: "asr scd endp ner lid"})
        assert out[TASK_MASK].tolist() == [1, 1, 1, 1, 1]


def test_without_a_tasks_field_every_task_or_default_active():
    out = make()("u1", {"speech": np.zeros(160, np.float32), "text": TEXT})
    assert out[TASK_MASK].tolist() == [1, 1, 1, 1, 1]
    out = make(default_active=["lid"])("u1", {"speech": np.zeros(160, np.float32)})
    assert out[TASK_MASK].tolist() == [1, 0, 0, 0, 1]  # the primary task is always on


def test_bad_annotations_name_the_utterance():
    pre = make()
    with pytest.raises(DataError, match=r"text \(u3\): .*\[SCD\]"):  # scd token but not annotated for scd
        pre("u3", {"speech": np.zeros(160, np.float32), "text": "[EN] hello [SCD] fine", TASKS_NAME: "asr lid"})
    with pytest.raises(DataError, match=r"utt2tasks \(u4\): unknown task.s. sentiment"):
        pre("u4", {"speech": np.zeros(160, np.float32), "text": "[EN] hello", TASKS_NAME: "asr sentiment"})
    with pytest.raises(ValueError, match="policy 'random' is unknown"):
        make(policy="random")
