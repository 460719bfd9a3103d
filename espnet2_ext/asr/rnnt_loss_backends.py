"""Selectable RNN-T loss backends for the transducer (``model_conf.rnnt_loss``).

* ``torchaudio`` (default): the full loss on the B×T×(U+1)×V joint output, works on CPU and CUDA.
* ``pruned``: our pure-PyTorch pruned RNN-T loss (``espnet2_ext.asr.transducer.pruned_rnnt_loss``); evaluates
  the joint network only on a pruned band of the lattice.
* ``warp_rnnt`` / ``k2``: used only when those packages are importable (a clear error otherwise).
ESPnet's own default (``warprnnt_pytorch``) is not on PyPI, so it is never required.
"""

from __future__ import annotations

import importlib
from typing import Optional

import torch

BACKENDS = ("torchaudio", "pruned", "warp_rnnt", "k2")


def backend_available(name: str) -> bool:
    module = {"torchaudio": "torchaudio", "pruned": "torch", "warp_rnnt": "warp_rnnt", "k2": "k2"}[name]
    try:
        importlib.import_module(module)
        return True
    except Exception:
        return False


def _require(module: str, backend: str):
    try:
        return importlib.import_module(module)
    except Exception as e:
        raise ImportError(
            f"model_conf.rnnt_loss '{backend}' needs the '{module}' package, which cannot be imported "
            f"here ({e}); install it or choose rnnt_loss: torchaudio or pruned"
        ) from None


class FullRNNTLoss(torch.nn.Module):
    """Full-lattice loss: ``forward(joint_out (B,T,U+1,V), target (B,U), t_len, u_len) -> mean over batch``."""

    def __init__(self, backend: str = "torchaudio", blank_id: int = 0):
        super().__init__()
        if backend not in ("torchaudio", "warp_rnnt", "k2"):
            raise ValueError(f"unknown full RNN-T loss backend '{backend}'")
        self.backend, self.blank_id = backend, blank_id
        # The backend module's name, not the module: a module object on an nn.Module cannot be deep-copied
        # (replicas) or pickled. Imported once here to fail early; importlib caches it for forward.
        self._module_name = {"torchaudio": "torchaudio.functional", "warp_rnnt": "warp_rnnt", "k2": "k2"}[backend]
        _require(self._module_name, backend)

    @property
    def _mod(self):
        return importlib.import_module(self._module_name)

    def forward(
        self, joint_out: torch.Tensor, target: torch.Tensor, t_len: torch.Tensor, u_len: torch.Tensor
    ) -> torch.Tensor:
        logits = joint_out.float()  # the recursions need float32 even under autocast
        target, t_len, u_len = target.int(), t_len.int(), u_len.int()
        if self.backend == "torchaudio":
            return self._mod.rnnt_loss(logits, target, t_len, u_len, blank=self.blank_id, reduction="mean")
        if self.backend == "warp_rnnt":
            return self._mod.rnnt_loss(
                logits.log_softmax(-1), target, t_len, u_len, reduction="mean", blank=self.blank_id, gather=True
            )
        boundary = torch.zeros(logits.size(0), 4, dtype=torch.int64, device=logits.device)
        boundary[:, 2], boundary[:, 3] = u_len, t_len
        return self._mod.rnnt_loss(logits, target.long(), self.blank_id, boundary, reduction="mean")


def build_rnnt_loss(
    name: str, blank_id: int, encoder_dim: int, decoder_dim: int, vocab_size: int, conf: Optional[dict] = None
) -> torch.nn.Module:
    conf = dict(conf or {})
    if name not in BACKENDS:
        raise ValueError(f"model_conf.rnnt_loss '{name}' is unknown: choose one of {', '.join(BACKENDS)}")
    if name == "pruned":
        from espnet2_ext.asr.transducer.pruned_rnnt_loss import PrunedRNNTLoss

        return PrunedRNNTLoss(encoder_dim, decoder_dim, vocab_size, blank_id=blank_id, **conf)
    if conf:
        raise ValueError(f"model_conf.rnnt_loss_conf {sorted(conf)} only applies to rnnt_loss: pruned")
    return FullRNNTLoss(name, blank_id)
