"""Identity encoder: the XLSR frontend *is* the encoder of an XLSR-Transducer.

ESPnet's ``ASRTask`` builds the transducer's joint network from ``encoder.output_size()``, so an encoder object
must exist; this one passes features through (optionally with dropout) and keeps padding frames at zero.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from espnet.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet2.asr.encoder.abs_encoder import AbsEncoder


class IdentityEncoder(AbsEncoder):
    def __init__(self, input_size: int, dropout_rate: float = 0.0):
        super().__init__()
        self._output_size = input_size
        self.dropout = torch.nn.Dropout(dropout_rate)

    def output_size(self) -> int:
        return self._output_size

    def forward(
        self, xs_pad: torch.Tensor, ilens: torch.Tensor, prev_states: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, None]:
        xs_pad = self.dropout(xs_pad).masked_fill(make_pad_mask(ilens, xs_pad, 1), 0.0)
        return xs_pad, ilens, None
