"""TaskMaskCollateFn (espnet2_ext/train/collate.py): ESPnet's padding plus a stacked (B, 1 + K) task mask."""

import numpy as np
import pytest
import torch

from espnet2_ext.common import TASK_MASK
from espnet2_ext.train.collate import TaskMaskCollateFn


def item(uid, n_samples, tokens, mask):
    d = {"speech": np.arange(n_samples, dtype=np.float32), "text": np.asarray(tokens, dtype=np.int64)}
    if mask is not None:
        d[TASK_MASK] = np.asarray(mask)
    return uid, d


def test_masks_are_stacked_and_speech_text_padded_as_espnet_does():
    collate = TaskMaskCollateFn(float_pad_value=0.0, int_pad_value=-1)
    uids, batch = collate([item("a", 5, [3, 4, 5], [1, 1, 0, 1, 0]), item("b", 3, [7], [1, 0, 0, 0, 1])])
    assert uids == ["a", "b"]
    assert batch[TASK_MASK].dtype == torch.int64
    assert batch[TASK_MASK].tolist() == [[1, 1, 0, 1, 0], [1, 0, 0, 0, 1]]  # [B, 1 + K]
    assert f"{TASK_MASK}_lengths" not in batch  # fixed size: stacked, not padded
    assert batch["speech"].shape == (2, 5) and batch["speech_lengths"].tolist() == [5, 3]
    assert batch["speech"][1, 3:].tolist() == [0.0, 0.0]
    assert batch["text"].tolist() == [[3, 4, 5], [7, -1, -1]] and batch["text_lengths"].tolist() == [3, 1]


def test_boolean_and_float_masks_become_int64():
    _, batch = TaskMaskCollateFn()(
        [item("a", 2, [1], np.array([True, False, True])), item("b", 2, [1], np.array([1.0, 1.0, 0.0]))]
    )
    assert batch[TASK_MASK].dtype == torch.int64 and batch[TASK_MASK].tolist() == [[1, 0, 1], [1, 1, 0]]


def test_without_masks_the_batch_is_espnets():
    _, batch = TaskMaskCollateFn()([item("a", 2, [1], None), item("b", 3, [1, 2], None)])
    assert TASK_MASK not in batch and batch["speech"].shape == (2, 3)


def test_some_utterances_without_a_mask_is_an_error_naming_them():
    with pytest.raises(ValueError, match="utterance.s. b have no task mask.*utt2tasks"):
        TaskMaskCollateFn()([item("a", 2, [1], [1, 0]), item("b", 2, [1], None)])


def test_masks_of_different_sizes_is_an_error():
    with pytest.raises(ValueError, match="task masks of different sizes"):
        TaskMaskCollateFn()([item("a", 2, [1], [1, 0, 1]), item("b", 2, [1], [1, 0])])
