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


def num_vectors(strategy: str, n_aux: int) -> int:
    if strategy == "per_combination":
        return 2 ** n_aux
    if strategy == "per_task":
        return n_aux + 1
    raise ValueError(f"unknown task-vector strategy '{strategy}': choose one of {', '.join(STRATEGIES)}")


def vector_labels(strategy: str, aux_tasks: Sequence[str], primary: str = "asr") -> List[str]:
    """Human-readable name of each row, e.g. ``asr+scd+ner`` for a combination row."""
    if strategy == "per_task":
        return [primary] + list(aux_tasks)
    num_vectors(strategy, len(aux_tasks))
    return ["+".join([primary] + [t for i, t in enumerate(aux_tasks) if (c >> i) & 1])
            for c in range(2 ** len(aux_tasks))]


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
