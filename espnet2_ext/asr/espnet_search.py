"""The adapter for ESPnet's transducer searches (``default``/``tsd``/``alsd``/``nsc``/``maes``/``mbg``) under
``TokenVerseSpeech2Text``: our encoder (it takes the task mask, ESPnet's ``encode`` does not) feeds ESPnet's
``BeamSearchTransducer`` one utterance at a time, with constrained decoding and the blank penalty applied as a
fixed logit bias on its joint network. ESPnet's searches keep no emission frames: ``force_aligned`` adds them.
"""

from __future__ import annotations

import contextlib
from typing import List

import torch

from espnet2_ext.asr.search_driver import suppress_of

ESPNET_SEARCHES = ("default", "tsd", "alsd", "nsc", "maes", "mbg")


class _MaskedJoint(torch.nn.Module):
    """Joint network plus a fixed logit bias [V] (ESPnet searches): -1e9 on suppressed tokens, minus the blank
    penalty on blank."""

    def __init__(self, joint: torch.nn.Module, penalty: torch.Tensor):
        super().__init__()
        self.joint, self.penalty = joint, penalty

    def forward(self, *args, **kwargs):
        out = self.joint(*args, **kwargs)
        return out + self.penalty.to(out.device, out.dtype)


@contextlib.contextmanager
def constrained_joint(s2t, task_mask: torch.Tensor):
    """ESPnet's search of ``s2t`` with its joint network biased for one utterance's ``task_mask`` [1, 1+K]."""
    suppress = suppress_of(s2t, task_mask)  # [1, V] or None
    search = s2t.beam_search_transducer
    if (suppress is None and not s2t.blank_penalty) or search is None:
        yield
        return
    bias = torch.zeros(len(s2t.token_list))  # [V]
    if suppress is not None:
        bias = bias.masked_fill(suppress[0].cpu(), -1e9)
    bias[s2t.asr_model.blank_id] -= s2t.blank_penalty
    joint = search.joint_network
    search.joint_network = _MaskedJoint(joint, bias)
    try:
        yield
    finally:
        search.joint_network = joint


def decode_one(s2t, speech: torch.Tensor, task_mask: torch.Tensor) -> list:
    """ESPnet's search on our encoder output, for one utterance (ESPnet's ``__call__`` minus its encode, which
    takes no mask). ``speech``: [1, S] (unpadded); ``task_mask``: [1, 1+K]. Returns [(text, tokens, ids, hyp)]."""
    lengths = torch.tensor([speech.size(-1)])
    speech = speech.to(s2t.device, getattr(torch, s2t.dtype))  # speech: [1, S]
    enc, _ = s2t.asr_model.encode(speech, lengths.to(s2t.device), task_mask=task_mask)  # enc: [1, T, D]
    with constrained_joint(s2t, task_mask):
        return s2t._decode_single_sample(enc[0])


def decode_espnet(s2t, speech: torch.Tensor, lengths: torch.Tensor, task_mask: torch.Tensor, with_frames: bool):
    """Each utterance of the batch (``speech`` [B, S], ``lengths`` [B], ``task_mask`` [B, 1+K]) through
    ``decode_one``; ``with_frames``: the hypotheses force-aligned to get their emission frames."""
    out = [decode_one(s2t, speech[i : i + 1, : int(lengths[i])], task_mask[i : i + 1]) for i in range(speech.size(0))]
    return force_aligned(s2t, speech, lengths, task_mask, out) if with_frames else out


def force_aligned(s2t, speech, speech_lengths, task_mask, results: List[list]) -> List[list]:
    """ESPnet hypotheses with ``frames`` from a forced alignment of their tokens (timing.force_align_frames)."""
    from espnet2_ext.asr.timing import TimedHypothesis, force_align_frames

    speech = speech.to(s2t.device, getattr(torch, s2t.dtype))  # speech: [B, S]
    enc, enc_lens = s2t.asr_model.encode(speech, speech_lengths.to(s2t.device), task_mask=task_mask)
    enc = enc[0] if isinstance(enc, tuple) else enc  # enc: [B, T, D]
    model = s2t.asr_model
    out = []
    for i, nbest in enumerate(results):
        row = []
        for text, token, token_int, hyp in nbest:
            frames = force_align_frames(enc[i, : int(enc_lens[i])], model.decoder, model.joint_network, token_int)
            hyp = TimedHypothesis(
                score=hyp.score, yseq=hyp.yseq, dec_state=hyp.dec_state, lm_state=hyp.lm_state, frames=frames
            )
            row.append((text, token, token_int, hyp))
        out.append(row)
    return out
