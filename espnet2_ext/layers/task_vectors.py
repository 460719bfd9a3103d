"""The learnable task vectors of TokenVerse++: v(c) added to acoustic embeddings, X~ = X + v(c).

Strategies (``c`` is a per-utterance 0/1 mask over ``(asr, aux_1, ..., aux_K)``):
  * ``per_combination``: 2^K vectors, one per subset of auxiliary tasks; row index = sum_i 2^i * c[aux_i]
    (row 0 is ASR only).
  * ``per_task``: K+1 vectors, one per task including ASR; v(c) = sum of the active tasks' rows.
"""

from __future__ import annotations

from typing import List, Sequence

import torch

STRATEGIES = ("per_combination", "per_task")
VECTOR_INITS = ("mean", "zero", "random")  # a new per_task row (grow_task_vectors)


def num_vectors(strategy: str, n_aux: int) -> int:
    if strategy == "per_combination":
        return 2**n_aux
    if strategy == "per_task":
        return n_aux + 1
    raise ValueError(f"unknown task-vector strategy '{strategy}': choose one of {', '.join(STRATEGIES)}")


def vector_labels(strategy: str, aux_tasks: Sequence[str], primary: str = "asr") -> List[str]:
    """Human-readable name of each row, e.g. ``asr+scd+ner`` for a combination row."""
    if strategy == "per_task":
        return [primary] + list(aux_tasks)
    num_vectors(strategy, len(aux_tasks))
    return [
        "+".join([primary] + [t for i, t in enumerate(aux_tasks) if (c >> i) & 1]) for c in range(2 ** len(aux_tasks))
    ]


def combination_index(task_mask: torch.Tensor) -> torch.Tensor:
    """(B, 1+K) 0/1 mask -> (B,) row index of the per-combination table (the ASR column is ignored)."""
    aux = task_mask[:, 1:].long()
    weights = (2 ** torch.arange(aux.size(1), device=aux.device)).long()
    return (aux * weights).sum(dim=1)


class TaskVectors(torch.nn.Module):
    """One table of task vectors for one injection point."""

    def __init__(self, dim: int, n_aux: int, strategy: str = "per_task", init_std: float = 0.1, seed: int = 0):
        super().__init__()
        self.strategy = strategy
        self.n_aux = n_aux
        n = num_vectors(strategy, n_aux)
        # Seeded, independent of the global RNG, so the same config gives the same initial vectors.
        gen = torch.Generator().manual_seed(seed)
        self.weight = torch.nn.Parameter(torch.randn(n, dim, generator=gen) * init_std)

    def forward(self, task_mask: torch.Tensor) -> torch.Tensor:
        """(B, 1+K) mask -> (B, dim) vectors, one per utterance."""
        if task_mask.dim() != 2 or task_mask.size(1) != self.n_aux + 1:
            raise ValueError(f"task_mask must be (batch, {self.n_aux + 1}), got {tuple(task_mask.shape)}")
        if self.strategy == "per_combination":
            return self.weight[combination_index(task_mask)]
        return task_mask.to(self.weight.dtype) @ self.weight

    def extra_repr(self) -> str:
        return f"strategy={self.strategy}, n_aux={self.n_aux}, vectors={tuple(self.weight.shape)}"


# ---- growing a trained table by new tasks (bin/extend_model) ---------------------------------------------
def grow_task_vectors(
    weight: torch.Tensor, strategy: str, n_old: int, n_new: int, init: str = "mean", seed: int = 0
) -> torch.Tensor:
    """(rows, D) table for ``n_old`` auxiliary tasks -> the table for ``n_new`` (new tasks appended).

    per_task: rows 0..n_old are kept, one new row per new task (mean of the old auxiliary rows, zero, or random
    with their std). per_combination: row r = sum_i 2^i c_i, the new tasks are the high bits: row r < 2^n_old is
    the old row r, row r >= 2^n_old starts as row ``r mod 2^n_old`` (same combination without the new tasks).
    """
    if strategy == "per_combination":
        if weight.size(0) != 2**n_old:
            raise ValueError(f"per_combination table has {weight.size(0)} rows, expected {2**n_old}")
        return weight[torch.arange(2**n_new) % (2**n_old)].clone()  # [2^n_new, D]
    if strategy != "per_task":
        raise ValueError(f"unknown task-vector strategy '{strategy}'")
    if weight.size(0) != n_old + 1:
        raise ValueError(f"per_task table has {weight.size(0)} rows, expected {n_old + 1}")
    if init not in VECTOR_INITS:
        raise ValueError(f"unknown vector init '{init}': choose one of {', '.join(VECTOR_INITS)}")
    k = n_new - n_old
    aux = weight[1:] if n_old else weight
    if init == "mean":
        extra = aux.mean(dim=0, keepdim=True).expand(k, -1)
    elif init == "zero":
        extra = weight.new_zeros(k, weight.size(1))
    else:
        gen = torch.Generator().manual_seed(seed)
        extra = torch.randn(k, weight.size(1), generator=gen).to(weight.dtype) * aux.float().std().to(weight.dtype)
    return torch.cat([weight, extra], dim=0)  # [n_new + 1, D]


def new_vector_rows(strategy: str, n_old: int, n_new: int) -> List[int]:
    """Rows of the grown table that did not exist before (what ``freeze_old`` leaves trainable)."""
    if strategy == "per_combination":
        return list(range(2**n_old, 2**n_new))
    return list(range(n_old + 1, n_new + 1))
