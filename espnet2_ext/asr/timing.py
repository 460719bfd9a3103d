"""When each token was emitted: encoder frames from the searches, and the frame shift that turns them into seconds.

* Our batched searches (greedy, modified beam search) record the frame of every emission themselves.
* ESPnet's searches (``default``/``tsd``/``alsd``/``nsc``/``maes``/``mbg``) keep no frames in their ``Hypothesis``;
  for those the hypothesis is force-aligned afterwards (``force_align_frames``: best path through the RNN-T
  lattice of that exact token sequence), which gives the frames a greedy search would have emitted it at.
* ``frame_shift_seconds``: the duration of one encoder frame, from the model itself: the frontend's hop (for a
  wav2vec2/XLS-R S3PRL upstream the product of the CNN strides in ``conv_feature_layers``; otherwise S3PRL's
  ``downsample_rate`` or the STFT hop), divided by S3PRL's ``tile_factor`` and multiplied by the encoder's own
  subsampling.

A token emitted at frame ``t`` is stamped ``t * frame_shift`` seconds (the start of the frame's hop).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
from espnet2.asr.transducer.beam_search_transducer import Hypothesis as EspnetHypothesis

from espnet2_ext.asr.transducer.search_common import JointScorer, PredictionNet

# ESPnet's input layers and the factor by which they subsample time.
_SUBSAMPLING = {
    "Conv2dSubsampling": 4,
    "Conv2dSubsampling1": 1,
    "Conv2dSubsampling2": 2,
    "Conv2dSubsampling6": 6,
    "Conv2dSubsampling8": 8,
    "Conv1dSubsampling": 1,
    "Linear": 1,
    "Embedding": 1,
    "Sequential": 1,
}


@dataclass
class TimedHypothesis(EspnetHypothesis):
    """ESPnet's transducer hypothesis plus ``frames``: the encoder frame of each token of ``yseq[1:]``."""

    frames: Optional[List[int]] = None


def frontend_hop_samples(frontend: torch.nn.Module) -> float:
    """Input samples per frontend output frame (may be fractional when S3PRL tiles frames)."""
    w2v = getattr(frontend, "_wav2vec2", None)
    if w2v is not None and hasattr(frontend, "frame_geometry"):
        hop = frontend.frame_geometry[1]  # product of the CNN strides (conv_feature_layers)
    elif hasattr(frontend, "hop_length"):
        hop = frontend.hop_length  # S3PRL: featurizer.downsample_rate; DefaultFrontend: STFT hop
    else:
        raise ValueError(
            f"cannot tell the frame shift of frontend {type(frontend).__name__}: it has neither a "
            f"wav2vec2 CNN nor a hop_length; decode with --write_times false to skip token times"
        )
    return float(hop) / float(getattr(frontend, "tile_factor", 1) or 1)


def encoder_subsampling(encoder: torch.nn.Module) -> int:
    """Time subsampling of an ESPnet encoder (1 when it has no input layer, e.g. our identity encoder)."""
    embed = getattr(encoder, "embed", None)
    if embed is None:
        return 1
    name = type(embed).__name__
    if name == "Sequential" and len(embed) > 0:  # e.g. Sequential(Conv2dSubsampling, PositionalEncoding)
        name = type(embed[0]).__name__
    if name not in _SUBSAMPLING:
        logging.warning(f"encoder input layer {name}: unknown subsampling, assuming 1 (token times may be off)")
        return 1
    return _SUBSAMPLING[name]


def frame_shift_seconds(asr_model: torch.nn.Module, sample_rate: int) -> float:
    """Seconds between two encoder output frames of ``asr_model`` for audio at ``sample_rate``."""
    if getattr(asr_model, "frontend", None) is None:
        raise ValueError("the model has no frontend: cannot tell its frame shift")
    return frontend_hop_samples(asr_model.frontend) * encoder_subsampling(asr_model.encoder) / float(sample_rate)


def frames_to_seconds(frames: Sequence[int], shift: float) -> List[float]:
    return [round(f * shift, 6) for f in frames]


@torch.no_grad()
def force_align_frames(
    encoder_out: torch.Tensor, decoder: torch.nn.Module, joint_network: torch.nn.Module, tokens: Sequence[int]
) -> List[int]:
    """Emission frame of each token on the best RNN-T path that outputs exactly ``tokens``.

    Args:
        encoder_out: (T, D_enc) encoder output of one utterance (valid frames only).
        decoder, joint_network: the model's prediction and joint networks.
        tokens: the hypothesis without blanks.

    Returns:
        one frame index per token, non-decreasing. Several tokens may share a frame (ESPnet's searches allow it).
    """
    n_frames, n_tok = encoder_out.size(0), len(tokens)
    if n_tok == 0:
        return []
    if n_frames == 0:
        raise ValueError("cannot align tokens to an utterance without encoder frames")
    device = encoder_out.device
    pred, joint = PredictionNet(decoder, device), JointScorer(joint_network)
    out, state = pred.start(1)
    dec_rows = [out]
    for tok in tokens:  # decoder output after each prefix of the hypothesis
        out, state = pred.step(torch.tensor([int(tok)], device=device), state)
        dec_rows.append(out)
    dec = joint.dec(torch.cat(dec_rows))  # dec: [U+1, D_joint]
    enc = joint.enc(encoder_out)  # enc: [T, D_joint]
    logp = torch.log_softmax(joint.logits(enc[:, None, :], dec[None, :, :]).float(), dim=-1)  # [T, U+1, V]
    blank = logp[:, :, pred.blank_id].double().cpu().numpy()  # [T, U+1]
    idx = torch.tensor([int(t) for t in tokens], device=logp.device)
    emit = logp[:, :-1, :].gather(2, idx.view(1, -1, 1).expand(n_frames, n_tok, 1))[..., 0].double().cpu().numpy()
    # Viterbi over nodes (t, u): blank moves t -> t+1, emitting token u moves u -> u+1 within frame t.
    alpha = np.full((n_frames, n_tok + 1), -np.inf)
    from_emit = np.zeros((n_frames, n_tok + 1), dtype=bool)
    for t in range(n_frames):
        row = alpha[t]
        if t == 0:
            row[0] = 0.0
        else:
            row[:] = alpha[t - 1] + blank[t - 1]
        for u in range(1, n_tok + 1):
            cand = row[u - 1] + emit[t, u - 1]
            if cand > row[u]:
                row[u], from_emit[t, u] = cand, True
    frames = [0] * n_tok
    t, u = n_frames - 1, n_tok
    while u > 0:
        if from_emit[t, u]:
            frames[u - 1] = t
            u -= 1
        else:
            t -= 1
    return frames
