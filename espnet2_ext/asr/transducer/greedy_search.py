"""Batched frame-synchronous greedy search for an ESPnet RNN-Transducer.

All utterances advance frame by frame together; within a frame an utterance may emit up to
``max_sym_per_frame`` symbols. The prediction network only runs for the utterances that just emitted a symbol,
its output being cached per utterance until the next emission.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch

from espnet2_ext.asr.transducer.context_graph import BiasingBeams
from espnet2_ext.asr.transducer.search_common import (
    JointScorer,
    PredictionNet,
    SpanGrammar,
    assign_state,
    check_inputs,
    index_state,
    length_sorted,
    prepare_suppress_mask,
)


@torch.no_grad()
def greedy_search_batch(
    encoder_out: torch.Tensor,
    encoder_lens: torch.Tensor,
    decoder: torch.nn.Module,
    joint_network: torch.nn.Module,
    max_sym_per_frame: int = 1,
    suppress_mask: Optional[torch.Tensor] = None,
    return_frames: bool = False,
    blank_penalty: float = 0.0,
    span_grammar: Optional[SpanGrammar] = None,
    biasing=None,
) -> Union[List[List[int]], Tuple[List[List[int]], List[List[int]]]]:
    """Greedy transducer decoding of a batch.

    Args:
        encoder_out: (B, T, D_enc) encoder output.
        encoder_lens: (B,) valid frames per utterance; frames beyond are ignored.
        decoder: ESPnet ``TransducerDecoder`` (``embed``, ``rnn_forward``, ``init_state``, ``blank_id``).
        joint_network: ESPnet ``JointNetwork`` (``forward(enc, dec) -> logits``).
        max_sym_per_frame: most non-blank symbols one frame may emit (>= 1).
        suppress_mask: optional (B, V) bool, True = token may not be emitted by that utterance.
        return_frames: also return, per utterance, the encoder frame at which each token was emitted.
        blank_penalty: subtracted from the blank logit at every step (icefall's ``blank_penalty``; 0 = off).
        span_grammar: optional; keeps [NE] ... [/NE] well formed (``SpanGrammar``).
        biasing: optional contextual biasing (``context_graph.py``): one ``ContextGraph`` or one per utterance;
            each step's argmax is taken over logits + the bonus of every token.

    Returns:
        token ids per utterance, without blanks, in input order (and their emission frames when
        ``return_frames``).
    """
    if max_sym_per_frame < 1:
        raise ValueError(f"max_sym_per_frame must be >= 1, got {max_sym_per_frame}")
    lens = check_inputs(encoder_out, encoder_lens)
    batch = len(lens)
    device = encoder_out.device
    hyps: List[List[int]] = [[] for _ in range(batch)]
    frames: List[List[int]] = [[] for _ in range(batch)]
    if batch == 0 or max(lens) == 0:
        return (hyps, frames) if return_frames else hyps

    pred = PredictionNet(decoder, device)
    joint = JointScorer(joint_network, pred.blank_id, blank_penalty)
    enc = joint.enc(encoder_out)  # [B, T, D_joint]
    dec_out, state = pred.start(batch)  # dec_out: [B, D_dec]
    dec = joint.dec(dec_out)  # [B, D_joint], cached until the next emission
    blank = pred.blank_id

    bias = BiasingBeams.open(biasing, batch, range(batch))  # [biasing] one graph state per utterance
    mask: Optional[torch.Tensor] = None
    mask_ready = False

    order = length_sorted(lens)
    order_t = torch.tensor(order, device=device)  # [B]
    n_active = batch
    for t in range(max(lens)):
        while lens[order[n_active - 1]] <= t:
            n_active -= 1
        cur = order_t[:n_active]  # [n_active], utterances still running at frame t
        for _ in range(max_sym_per_frame):
            logits = joint.logits(enc[cur, t], dec[cur])  # [len(cur), V]
            if not mask_ready:  # the vocabulary size is known only once the joint has run
                # mask: [B, V] bool, or None
                mask = prepare_suppress_mask(suppress_mask, batch, logits.size(-1), blank, device)
                mask_ready = True
            step_mask = None if mask is None else mask[cur]  # [len(cur), V]
            if span_grammar is not None:
                step_mask = span_grammar.restrict(step_mask, [hyps[u] for u in cur.tolist()], logits.size(-1), device)
            if step_mask is not None:
                logits = logits.masked_fill(step_mask, float("-inf"))
            if bias is not None:  # [biasing] argmax of log-probs + bonus = argmax of logits + bonus
                logits = logits + bias.bonus_at(cur.tolist(), logits.size(-1), device).to(logits.dtype)
            tokens = logits.argmax(dim=-1)  # [len(cur)]
            emitted = tokens != blank  # [len(cur)] bool
            if not bool(emitted.any()):
                break
            cur = cur[emitted]  # [n_emit], the utterances that emitted
            tokens = tokens[emitted]  # [n_emit]
            for utt, tok in zip(cur.tolist(), tokens.tolist()):
                hyps[utt].append(tok)
                frames[utt].append(t)
            if bias is not None:  # [biasing]
                bias.step_at(cur.tolist(), tokens.tolist())
            new_out, new_state = pred.step(tokens, index_state(state, cur))  # new_out: [n_emit, D_dec]
            dec[cur] = joint.dec(new_out)  # [n_emit, D_joint]
            assign_state(state, cur, new_state)
    return (hyps, frames) if return_frames else hyps
