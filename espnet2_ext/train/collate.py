"""Task-mask collate function: ESPnet's padding collate plus a (B, n_tasks) ``task_mask`` tensor.

The mask is fixed-size per utterance, so it is stacked (``not_sequence``: no ``task_mask_lengths``) while speech
and text are padded as usual by ESPnet's ``CommonCollateFn``.
"""

from __future__ import annotations

from typing import Collection, Dict, List, Tuple

import numpy as np
import torch
from espnet2.train.collate_fn import CommonCollateFn

from espnet2_ext.common import TASK_MASK


class TaskMaskCollateFn(CommonCollateFn):
    def __init__(self, float_pad_value: float = 0.0, int_pad_value: int = -32768, not_sequence: Collection[str] = ()):
        super().__init__(
            float_pad_value=float_pad_value,
            int_pad_value=int_pad_value,
            not_sequence=tuple(not_sequence) + (TASK_MASK,),
        )

    def __call__(
        self, data: Collection[Tuple[str, Dict[str, np.ndarray]]]
    ) -> Tuple[List[str], Dict[str, torch.Tensor]]:
        """Per utterance ``task_mask`` [1 + K] -> batch ``task_mask`` [B, 1 + K] (int64), next to ESPnet's padded
        ``speech`` [B, S] / ``speech_lengths`` [B] and ``text`` [B, U] / ``text_lengths`` [B]."""
        have = [TASK_MASK in d for _, d in data]
        if any(have) and not all(have):
            missing = [u for (u, d) in data if TASK_MASK not in d]
            raise ValueError(
                f"utterance(s) {', '.join(missing[:3])} have no task mask while others in the batch do; "
                f"give every utterance an utt2tasks entry"
            )
        if any(have):
            shapes = {np.asarray(d[TASK_MASK]).shape for _, d in data}
            if len(shapes) != 1:
                raise ValueError(f"task masks of different sizes in one batch: {sorted(shapes)}")
            for _, d in data:
                d[TASK_MASK] = np.asarray(d[TASK_MASK], dtype=np.int64)
        uttids, batch = super().__call__(data)
        return uttids, batch
