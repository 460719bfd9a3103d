"""Pruned RNN-T loss in pure PyTorch (Kuang et al., 2022, arXiv 2206.13236).

Two losses share one lattice recursion (:mod:`.rnnt_lattice`):

* the *simple* loss uses a trivial joiner, logits(t, u, v) = am(t, v) + lm(u, v),
  whose softmax normaliser is a (T x V) @ (V x U+1) matrix product, so the
  B x T x U x V tensor is never built.  Its arc posteriors place a window of
  ``prune_range`` labels per frame;
* the *pruned* loss runs the real joint network only inside those windows,
  (B, T, prune_range, D) instead of (B, T, U+1, D), and sums the paths that
  stay inside them.

:class:`PrunedRNNTLoss` combines both with an icefall-style warm-up.
"""

import inspect
import logging
import warnings
from typing import Optional, Tuple

import torch

from espnet2_ext.asr.transducer.rnnt_lattice import prune_bounds, rnnt_lattice_loglik

NEG_INF = float("-inf")
_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")


def _padded_targets(targets: torch.Tensor, target_lens: torch.Tensor, blank_id: int) -> torch.Tensor:
    """(B, U) -> (B, U+1): padding (any value, e.g. -1) and one extra column become blank."""
    B, U = targets.shape
    pos = torch.arange(U + 1, device=targets.device).view(1, U + 1)  # [1, U+1]
    y = torch.cat([targets.long(), targets.new_full((B, 1), blank_id).long()], dim=1)  # [B, U+1]
    return y.masked_fill(pos >= target_lens.view(B, 1).to(targets.device), blank_id)  # [B, U+1]


def simple_rnnt_logprobs(
    am: torch.Tensor,
    lm: torch.Tensor,
    targets: torch.Tensor,
    target_lens: torch.Tensor,
    blank_id: int = 0,
    lm_scale: float = 0.0,
    am_scale: float = 0.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Arc log-probs (px, py), each (B, T, U+1), of the trivial joiner am + lm.

    With ``lm_scale``/``am_scale`` > 0 the log-probs are interpolated, as in
    k2's smoothed loss, with an LM-only distribution softmax(lm(u)) and an
    AM-only one softmax(am(t) + log unigram), the unigram being softmax(lm)
    averaged over all real label positions of the batch.
    """
    am, lm = am.float(), lm.float()  # am: [B, T, V], lm: [B, U1, V]
    B, T, V = am.shape
    U1 = lm.shape[1]
    y = _padded_targets(targets, target_lens, blank_id)  # (B, U1)

    # log sum_v exp(am[t,v] + lm[u,v]) as a matmul of max-shifted exponentials.
    am_max = am.detach().amax(dim=2, keepdim=True)  # (B, T, 1)
    lm_max = lm.detach().amax(dim=2, keepdim=True)  # (B, U1, 1)
    am_e, lm_e = (am - am_max).exp(), (lm - lm_max).exp()  # [B, T, V], [B, U1, V]
    tiny = torch.finfo(am_e.dtype).tiny  # keeps log finite if the product underflows
    norm = torch.matmul(am_e, lm_e.transpose(1, 2)).clamp_min(tiny).log()  # [B, T, U1]
    norm = norm + am_max + lm_max.transpose(1, 2)  # (B, T, U1)

    am_y = am.gather(2, y.unsqueeze(1).expand(B, T, U1))  # (B, T, U1)
    lm_y = lm.gather(2, y.unsqueeze(2)).transpose(1, 2)  # (B, 1, U1)
    am_blank = am[:, :, blank_id].unsqueeze(2)  # (B, T, 1)
    lm_blank = lm[:, :, blank_id].unsqueeze(1)  # (B, 1, U1)
    px = am_y + lm_y - norm  # [B, T, U1]
    py = am_blank + lm_blank - norm  # [B, T, U1]
    joint_scale = 1.0 - lm_scale - am_scale
    if lm_scale == 0.0 and am_scale == 0.0:
        return px, py

    px, py = joint_scale * px, joint_scale * py
    lm_lse = lm.logsumexp(dim=2).unsqueeze(1)  # (B, 1, U1)
    if lm_scale != 0.0:
        px = px + lm_scale * (lm_y - lm_lse)
        py = py + lm_scale * (lm_blank - lm_lse)
    if am_scale != 0.0:
        pos = torch.arange(U1, device=lm.device).view(1, U1, 1)  # [1, U1, 1]
        real = (pos <= target_lens.to(lm.device).view(B, 1, 1)).to(lm.dtype)  # [B, U1, 1]
        unigram = (lm.softmax(dim=2) * real).sum(dim=(0, 1)) / real.sum()  # [V]
        log_uni = unigram.clamp_min(tiny).log()  # (V,)
        am_norm = torch.matmul(am_e, unigram).clamp_min(tiny).log().unsqueeze(2) + am_max  # [B, T, 1]
        px = px + am_scale * (am_y + log_uni[y].unsqueeze(1) - am_norm)  # log_uni[y].unsqueeze(1): [B, 1, U1]
        py = py + am_scale * (am_blank + log_uni[blank_id] - am_norm)
    return px, py


def simple_rnnt_loss(
    am: torch.Tensor,
    lm: torch.Tensor,
    targets: torch.Tensor,
    am_lens: torch.Tensor,
    target_lens: torch.Tensor,
    blank_id: int = 0,
    lm_scale: float = 0.0,
    am_scale: float = 0.0,
    reduction: str = "mean",
    return_occupancy: bool = False,
):
    """RNN-T loss of the trivial joiner; am (B, T, V), lm (B, U+1, V), targets (B, U).

    With ``return_occupancy`` also returns the arc posteriors (occ_px, occ_py)
    used by :func:`prune_bounds`.
    """
    px, py = simple_rnnt_logprobs(am, lm, targets, target_lens, blank_id, lm_scale, am_scale)  # [B, T, U+1] each
    # out: loglik [B], or (loglik, (occ_px, occ_py)) with occ_px, occ_py: [B, T, U+1]
    out = rnnt_lattice_loglik(px, py, am_lens, target_lens, return_occupancy=return_occupancy)
    if return_occupancy:
        loglik, occ = out
        return _reduce(-loglik, reduction), occ
    return _reduce(-out, reduction)


def window_indices(starts: torch.Tensor, prune_range: int) -> torch.Tensor:
    """(B, T) window starts -> (B, T, prune_range) label positions s_t + r."""
    r = torch.arange(prune_range, device=starts.device)  # [prune_range]
    return starts.unsqueeze(2) + r  # [B, T, prune_range]


def gather_pruned(
    enc_proj: torch.Tensor, dec_proj: torch.Tensor, starts: torch.Tensor, prune_range: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Expand encoder (B, T, D) and gather decoder (B, U+1, D) to (B, T, R, D) each."""
    B, T, D = enc_proj.shape
    U1 = dec_proj.shape[1]
    # idx: [B, T, R]
    idx = window_indices(starts, prune_range).clamp(max=U1 - 1)  # beyond U: masked later
    # dec: [B, T*R, D]
    dec = dec_proj.gather(1, idx.reshape(B, T * prune_range, 1).expand(B, T * prune_range, D))
    enc = enc_proj.unsqueeze(2).expand(B, T, prune_range, D)  # [B, T, R, D], a view (no copy)
    return enc, dec.view(B, T, prune_range, D)  # [B, T, R, D] each


def pruned_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    target_lens: torch.Tensor,
    starts: torch.Tensor,
    blank_id: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pruned joiner logits (B, T, R, V) -> full-lattice (px, py) (B, T, U+1), -inf outside windows."""
    logits = logits.float()  # [B, T, R, V]
    B, T, R, _ = logits.shape
    U1 = targets.shape[1] + 1
    y = _padded_targets(targets, target_lens, blank_id)  # (B, U1)
    idx = window_indices(starts, R)  # (B, T, R), unclamped
    sym = y.gather(1, idx.clamp(max=U1 - 1).view(B, T * R)).view(B, T, R)  # [B, T, R], label out of each window node
    # One fused log_softmax and one gather (label, blank): fewer passes over
    # the (B, T, R, V) tensor in backward than logsumexp + two selections.
    pick = torch.stack([sym, torch.full_like(sym, blank_id)], dim=3)  # [B, T, R, 2]
    px_r, py_r = logits.log_softmax(dim=3).gather(3, pick).unbind(dim=3)  # [B, T, R] each
    # Positions s_t + r are distinct within a frame, so scatter has no clashes;
    # the R-1 spare columns take windows that run past U.
    canvas = logits.new_full((B, T, U1 + R - 1), NEG_INF)  # [B, T, U1+R-1]
    px = canvas.scatter(2, idx, px_r)[:, :, :U1]  # [B, T, U1]
    py = canvas.scatter(2, idx, py_r)[:, :, :U1]  # [B, T, U1]
    return px, py


def _accepts_no_projection(joint_network: torch.nn.Module) -> bool:
    try:
        return "no_projection" in inspect.signature(joint_network.forward).parameters
    except (TypeError, ValueError):
        return False


def joint_on_projected(joint_network: torch.nn.Module, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
    """Output logits of an ESPnet ``JointNetwork`` on already-projected inputs."""
    if _accepts_no_projection(joint_network):
        out = joint_network(enc, dec, no_projection=True)  # [B, T, R, V] for [B, T, R, D] inputs
    else:  # older/newer signature without the flag: same computation by hand
        out = joint_network.lin_out(joint_network.joint_activation(enc + dec))  # [B, T, R, V]
    return out[0] if isinstance(out, tuple) else out


def full_rnnt_loss_torchaudio(
    logits: torch.Tensor,
    targets: torch.Tensor,
    logit_lens: torch.Tensor,
    target_lens: torch.Tensor,
    blank: int = 0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Reference full-lattice loss: ``torchaudio.functional.rnnt_loss`` on (B, T, U+1, V) logits."""
    import torchaudio

    # targets: [B, U], padding set to blank
    targets = targets.masked_fill(
        torch.arange(targets.shape[1], device=targets.device) >= target_lens.view(-1, 1).to(targets.device),
        blank,
    )
    with warnings.catch_warnings():  # torchaudio 2.9 marks it for removal; we only compare
        warnings.simplefilter("ignore")
        return torchaudio.functional.rnnt_loss(  # [B] for reduction="none", else scalar
            logits.contiguous(),  # [B, T, U+1, V]
            targets.to(device=logits.device, dtype=torch.int32),
            logit_lens.to(device=logits.device, dtype=torch.int32),
            target_lens.to(device=logits.device, dtype=torch.int32),
            blank=blank,
            reduction=reduction,
        )


class PrunedRNNTLoss(torch.nn.Module):
    """Simple + pruned RNN-T loss with its own simple-joiner projections.

    Loss per utterance = ``s * simple + p * pruned`` where, with
    ``f = step / warmup_steps`` while ``step < warmup_steps``::

        s = 1.0 - f * (1.0 - simple_loss_scale)   # 1.0 -> simple_loss_scale
        p = 0.1 + 0.9 * f                         # 0.1 -> 1.0

    and ``s = simple_loss_scale``, ``p = 1.0`` afterwards (icefall's linear
    schedule).  ``step`` is a buffer (checkpointed) advanced by every forward
    in training mode.  Utterances with more labels than the pruned lattice can
    hold (U > T * (prune_range - 1)) get pruned loss 0 (a warning is logged)
    and keep their simple loss.
    """

    def __init__(
        self,
        encoder_dim: int,
        decoder_dim: int,
        vocab_size: int,
        blank_id: int = 0,
        prune_range: int = 5,
        simple_loss_scale: float = 0.5,
        lm_scale: float = 0.0,
        am_scale: float = 0.0,
        warmup_steps: int = 0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if prune_range < 2:
            raise ValueError(f"prune_range must be >= 2; got {prune_range}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
        if not 0 <= blank_id < vocab_size:
            raise ValueError(f"blank_id {blank_id} outside vocabulary of size {vocab_size}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0; got {warmup_steps}")
        self.blank_id = blank_id
        self.prune_range = prune_range
        self.simple_loss_scale = simple_loss_scale
        self.lm_scale = lm_scale
        self.am_scale = am_scale
        self.warmup_steps = warmup_steps
        self.reduction = reduction
        self.simple_am_proj = torch.nn.Linear(encoder_dim, vocab_size)
        self.simple_lm_proj = torch.nn.Linear(decoder_dim, vocab_size)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.last_simple_loss: Optional[torch.Tensor] = None
        self.last_pruned_loss: Optional[torch.Tensor] = None

    def loss_scales(self, step: Optional[int] = None) -> Tuple[float, float]:
        """(simple_scale, pruned_scale) at ``step`` (default: the current one)."""
        step = int(self.step) if step is None else step
        if self.warmup_steps <= 0 or step >= self.warmup_steps:
            return self.simple_loss_scale, 1.0
        f = step / self.warmup_steps
        return 1.0 - f * (1.0 - self.simple_loss_scale), 0.1 + 0.9 * f

    def compute_losses(
        self,
        encoder_out: torch.Tensor,
        encoder_lens: torch.Tensor,
        decoder_out: torch.Tensor,
        targets: torch.Tensor,
        target_lens: torch.Tensor,
        joint_network: torch.nn.Module,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-utterance (simple, pruned) losses, each (B,)."""
        B, T, _ = encoder_out.shape  # encoder_out: [B, T, D_enc], decoder_out: [B, U+1, D_dec]
        if decoder_out.shape[:2] != (B, targets.shape[1] + 1) or targets.shape[0] != B:
            raise ValueError(
                f"decoder_out must be (B, U+1, D) for targets (B, U); got {tuple(decoder_out.shape)} "
                f"and {tuple(targets.shape)} with encoder_out {tuple(encoder_out.shape)}"
            )
        device = encoder_out.device
        encoder_lens = encoder_lens.to(device=device, dtype=torch.long)
        target_lens = target_lens.to(device=device, dtype=torch.long)
        targets = _padded_targets(targets.to(device), target_lens, self.blank_id)[:, :-1]  # [B, U]
        V = self.simple_am_proj.out_features
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= V):
            raise ValueError(f"target ids must lie in [0, {V}); got min {int(targets.min())}, max {int(targets.max())}")

        am = self.simple_am_proj(encoder_out)  # [B, T, V]
        lm = self.simple_lm_proj(decoder_out)  # [B, U+1, V]
        # simple: [B]; occ_px, occ_py: [B, T, U+1]
        simple, (occ_px, occ_py) = simple_rnnt_loss(
            am,
            lm,
            targets,
            encoder_lens,
            target_lens,
            self.blank_id,
            self.lm_scale,
            self.am_scale,
            reduction="none",
            return_occupancy=True,
        )
        starts = prune_bounds(occ_px, occ_py, encoder_lens, target_lens, self.prune_range)  # [B, T]

        enc_proj = joint_network.lin_enc(encoder_out)  # [B, T, D_joint]
        dec_proj = joint_network.lin_dec(decoder_out)  # [B, U+1, D_joint]
        enc_pr, dec_pr = gather_pruned(enc_proj, dec_proj, starts, self.prune_range)  # [B, T, R, D_joint] each
        logits = joint_on_projected(joint_network, enc_pr, dec_pr)  # (B, T, R, V)
        px, py = pruned_logprobs(logits, targets, target_lens, starts, self.blank_id)  # [B, T, U+1] each
        pruned = -rnnt_lattice_loglik(px, py, encoder_lens, target_lens)  # [B]

        feasible = target_lens <= encoder_lens * (self.prune_range - 1)  # [B] bool
        if not bool(feasible.all()):
            logging.warning(
                "PrunedRNNTLoss: %d utterance(s) have more labels than frames*(prune_range-1); "
                "their pruned loss is set to 0 (raise prune_range or check the data)",
                int((~feasible).sum()),
            )
            pruned = torch.where(feasible, pruned, torch.zeros_like(pruned))
        return simple, pruned

    def forward(
        self,
        encoder_out: torch.Tensor,
        encoder_lens: torch.Tensor,
        decoder_out: torch.Tensor,
        targets: torch.Tensor,
        target_lens: torch.Tensor,
        joint_network: torch.nn.Module,
    ) -> torch.Tensor:
        """Weighted simple + pruned loss, reduced as ``self.reduction``."""
        simple, pruned = self.compute_losses(  # [B] each
            encoder_out, encoder_lens, decoder_out, targets, target_lens, joint_network
        )
        simple_scale, pruned_scale = self.loss_scales()
        if self.training:
            self.step += 1
        self.last_simple_loss = simple.detach()
        self.last_pruned_loss = pruned.detach()
        return _reduce(simple_scale * simple + pruned_scale * pruned, self.reduction)  # scalar, or [B] for "none"
