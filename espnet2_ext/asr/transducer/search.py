"""Batched transducer search for TokenVerse++: entry point.

- ``greedy_search_batch``: frame-synchronous greedy decoding of a batch (see ``greedy_search.py``).
- ``modified_beam_search``: icefall-style beam search, at most one symbol per frame, hypotheses with equal
  token sequences merged (see ``modified_beam_search.py``).
- ``suppress_mask_for``: constrained decoding mask forbidding the tokens of each utterance's inactive tasks.
- ``to_espnet_hypotheses``: results in ESPnet's transducer ``Hypothesis`` format (for a ``Speech2Text``).
"""

from __future__ import annotations

from typing import Iterable, List, Sequence

import torch

from espnet2_ext.asr.transducer.greedy_search import greedy_search_batch
from espnet2_ext.asr.transducer.modified_beam_search import modified_beam_search
from espnet2_ext.asr.transducer.search_common import Hypothesis
from espnet2_ext.task_spec import TaskSpec

__all__ = [
    "Hypothesis",
    "greedy_search_batch",
    "modified_beam_search",
    "suppress_mask_for",
    "suppress_mask_from_task_mask",
    "to_espnet_hypotheses",
    "token_surface",
]

SPM_SPACE = "\u2581"  # sentencepiece's word-boundary marker


def token_surface(token: str) -> str:
    """Token text without sentencepiece's leading word-boundary marker: ``▁[NE]`` -> ``[NE]``."""
    return token[1:] if token.startswith(SPM_SPACE) else token


def suppress_mask_for(
    token_list: Sequence[str], spec: TaskSpec, active_per_utt: Sequence[Iterable[str]]
) -> torch.Tensor:
    """(B, V) bool mask: True for every token that is a task token of a task inactive for that utterance.

    Args:
        token_list: the model's vocabulary (index = token id).
        spec: which task owns which token.
        active_per_utt: per utterance, the names of its active tasks (``asr`` may be listed or not; words are
            never suppressed).

    Raises:
        ValueError: an unknown task name (the message names the utterance index).
    """
    masks = [
        spec.mask(spec.parse_tasks(list(active), where=f"utterance {i}")) for i, active in enumerate(active_per_utt)
    ]
    return suppress_mask_from_task_mask(
        token_list, spec, torch.tensor(masks, dtype=torch.long).view(-1, len(spec.tasks))
    )


def suppress_mask_from_task_mask(token_list: Sequence[str], spec: TaskSpec, task_mask: torch.Tensor) -> torch.Tensor:
    """The same from the batch's task mask [B, 1 + K] (columns = ``spec.tasks``): suppress [B, V] bool."""
    if task_mask.dim() != 2 or task_mask.size(1) != len(spec.tasks):
        raise ValueError(
            f"task_mask must be (batch, {len(spec.tasks)}) over {list(spec.tasks)}, got {tuple(task_mask.shape)}"
        )
    owner = [spec.task_of(token_surface(tok)) for tok in token_list]
    task_ids = {t: i for i, t in enumerate(spec.tasks)}
    # col: [V] token -> task column; -1 for words and special symbols, which are never suppressed
    col = torch.tensor([task_ids[o] if o is not None else -1 for o in owner], dtype=torch.long)
    active = task_mask.detach().cpu().bool()  # active: [B, 1 + K]
    return (col >= 0)[None, :] & ~active[:, col.clamp(min=0)]  # [B, V]


def to_espnet_hypotheses(hyps: List[Hypothesis], blank_id: int = 0) -> list:
    """Convert to ``espnet2.asr.transducer.beam_search_transducer.Hypothesis`` (yseq with the leading blank,
    as ESPnet's ``Speech2Text`` expects; ``dec_state`` is not kept by the batched search and is None). The result
    also carries ``frames``: the emission frame of each token of ``yseq[1:]``."""
    from espnet2_ext.asr.timing import TimedHypothesis

    return [
        TimedHypothesis(score=float(h.score), yseq=[blank_id] + list(h.yseq), dec_state=None, frames=list(h.frames))
        for h in hyps
    ]
