"""Task-vector tables: sizes, exact summing, combination lookup, gradients only where active."""

import itertools

import pytest
import torch

from espnet2_ext.layers.task_vectors import TaskVectors, combination_index, vector_labels


def all_masks(k):
    return torch.tensor([[1] + list(bits) for bits in itertools.product([0, 1], repeat=k)])


def test_sizes():
    assert TaskVectors(8, 4, "per_combination").weight.shape == (16, 8)
    assert TaskVectors(8, 4, "per_task").weight.shape == (5, 8)
    assert vector_labels("per_combination", ["scd", "ner"]) == ["asr", "asr+scd", "asr+ner", "asr+scd+ner"]
    with pytest.raises(ValueError, match="unknown task-vector strategy"):
        TaskVectors(8, 4, "per_layer")


def test_per_task_sums_exactly():
    tv = TaskVectors(6, 4, "per_task")
    masks = all_masks(4)
    out = tv(masks)
    for m, v in zip(masks, out):
        expected = sum(tv.weight[i] for i in range(5) if m[i])
        assert torch.equal(v, expected)


def test_per_combination_picks_one_row_per_subset():
    tv = TaskVectors(6, 3, "per_combination")
    masks = all_masks(3)
    idx = combination_index(masks)
    assert sorted(idx.tolist()) == list(range(8))
    assert torch.equal(tv(masks), tv.weight[idx])


def test_seeded_init():
    assert torch.equal(TaskVectors(6, 3, seed=3).weight, TaskVectors(6, 3, seed=3).weight)
    assert not torch.equal(TaskVectors(6, 3, seed=3).weight, TaskVectors(6, 3, seed=4).weight)


@pytest.mark.parametrize("strategy", ["per_task", "per_combination"])
def test_gradients_only_for_active(strategy):
    tv = TaskVectors(5, 4, strategy)
    mask = torch.tensor([[1, 0, 1, 0, 1]])  # asr + endp + lid
    tv(mask).sum().backward()
    nonzero = (tv.weight.grad.abs().sum(1) > 0).nonzero().flatten().tolist()
    if strategy == "per_task":
        assert nonzero == [0, 2, 4]
    else:
        assert nonzero == [combination_index(mask).item()] == [0b1010]
