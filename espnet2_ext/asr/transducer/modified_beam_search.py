"""Batched modified beam search (icefall semantics) for an ESPnet RNN-Transducer.

Semantics (as icefall's ``modified_beam_search``): every frame consumes exactly one step, which emits either
blank or one non-blank symbol, so a frame emits at most one symbol. Per frame, candidate scores are
``hyp score + log_softmax(joint)`` over (hyps x vocab) of an utterance, the top ``beam`` candidates are kept,
and candidates with the same token sequence are merged by log-sum-exp of their scores.

Differences from icefall: ESPnet's prediction network is recurrent, so each hypothesis carries its RNN state
(icefall's stateless decoder only needs the last tokens). A hypothesis extended by blank keeps its parent's
decoder output; the prediction network runs once, batched over all utterances, for the hypotheses that were
extended by a symbol. When a blank extension and a symbol extension merge, the blank one's decoder output is
reused, so nothing is computed twice.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch

from espnet2_ext.asr.transducer.context_graph import BiasingBeams
from espnet2_ext.asr.transducer.search_common import (
    Hypothesis,
    JointScorer,
    PredictionNet,
    assign_state,
    SpanGrammar,
    check_inputs,
    index_state,
    log_add,
    masked_log_probs,
    prepare_suppress_mask,
)


def finalize_nbest(ys: List[Tuple[int, ...]], scores: List[float], frames: List[Tuple[int, ...]], nbest: int,
              length_norm: bool, span_grammar: Optional[SpanGrammar] = None) -> List[Hypothesis]:
    """The ``nbest`` best final hypotheses; with a span grammar, those ending inside a span only as a last resort."""
    idx = list(range(len(ys))) if span_grammar is None else span_grammar.keep_closed(ys, range(len(ys)))
    # ESPnet's sort_nbest normalises by len(yseq) including the leading blank, hence the + 1.
    keyed = [((scores[i] / (len(ys[i]) + 1)) if length_norm else scores[i], i) for i in idx]
    keyed.sort(key=lambda k: k[0], reverse=True)
    return [Hypothesis(yseq=list(ys[i]), score=scores[i], frames=list(frames[i])) for _, i in keyed[:nbest]]


class NextBeams:
    """The hypotheses one frame step keeps, built candidate by candidate (best first) by ``add_candidates``."""

    def __init__(self) -> None:
        self.utt: List[int] = []
        self.ys: List[Tuple[int, ...]] = []
        self.fr: List[Tuple[int, ...]] = []
        self.scores: List[float] = []
        self.parent: List[int] = []
        self.token: List[int] = []  # symbol the hypothesis was extended with, -1 for blank (decoder output reused)


def add_candidates(nxt: NextBeams, top_val: List[float], top_idx: List[int], start: int, vocab: int, blank: int,
                   t: int, ys: List[Tuple[int, ...]], fr: List[Tuple[int, ...]], utt_of: List[int]) -> None:
    """One utterance's top-k candidates of frame ``t`` (``idx = slot * V + tok`` over its hypotheses from
    ``start``, sorted best first) into ``nxt``, equal token sequences merged by log-sum-exp."""
    merged: Dict[Tuple[int, ...], int] = {}
    for val, idx in zip(top_val, top_idx):
        if val == -math.inf:  # fewer allowed candidates than the beam (suppression, tiny vocab)
            break
        slot, tok = divmod(idx, vocab)
        p = start + slot
        key = ys[p] if tok == blank else ys[p] + (tok,)
        j = merged.get(key)
        if j is None:
            merged[key] = len(nxt.ys)
            nxt.utt.append(utt_of[p])
            nxt.ys.append(key)
            # topk is sorted, so the first alignment reaching a sequence is its best one: keep its frames
            nxt.fr.append(fr[p] if tok == blank else fr[p] + (t,))
            nxt.scores.append(val)
            nxt.parent.append(p)
            nxt.token.append(-1 if tok == blank else tok)
        else:
            nxt.scores[j] = log_add(nxt.scores[j], val)
            if tok == blank and nxt.token[j] != -1:  # same sequence, decoder output already computed
                nxt.parent[j], nxt.token[j] = p, -1


def advance_decoder(pred: PredictionNet, joint: JointScorer, dec: torch.Tensor, state, nxt: NextBeams, device):
    """Decoder outputs and states of the kept hypotheses: the parent's for a blank extension, one batched
    prediction-network step for the hypotheses extended by a symbol. Returns ``(dec, state)``."""
    parent_t = torch.tensor(nxt.parent, dtype=torch.long, device=device)  # [H_new]
    dec = dec[parent_t]  # [H_new, D_joint]
    state = index_state(state, parent_t)  # [num_layers, H_new, hidden] each
    extended = [i for i, tok in enumerate(nxt.token) if tok != -1]
    if extended:
        ext_t = torch.tensor(extended, dtype=torch.long, device=device)  # [E], hyps extended by a symbol
        tok_t = torch.tensor([nxt.token[i] for i in extended], dtype=torch.long, device=device)  # [E]
        out, new_state = pred.step(tok_t, index_state(state, ext_t))  # out: [E, D_dec]
        dec[ext_t] = joint.dec(out)  # [E, D_joint]
        assign_state(state, ext_t, new_state)
    return dec, state


@torch.no_grad()
def modified_beam_search(
    encoder_out: torch.Tensor,
    encoder_lens: torch.Tensor,
    decoder: torch.nn.Module,
    joint_network: torch.nn.Module,
    beam: int = 4,
    suppress_mask: Optional[torch.Tensor] = None,
    nbest: int = 1,
    length_norm: bool = False,
    blank_penalty: float = 0.0,
    span_grammar: Optional[SpanGrammar] = None,
    biasing=None,
) -> List[List[Hypothesis]]:
    """Modified beam search over a batch of utterances.

    Args:
        encoder_out: (B, T, D_enc) encoder output.
        encoder_lens: (B,) valid frames per utterance; each utterance stops at its own length.
        decoder: ESPnet ``TransducerDecoder``.
        joint_network: ESPnet ``JointNetwork``.
        beam: hypotheses kept per utterance after each frame.
        suppress_mask: optional (B, V) bool; True = token may not be emitted (its log-prob is set to -inf).
        nbest: hypotheses returned per utterance.
        length_norm: rank final hypotheses by score / (len(yseq) + 1) (icefall and ESPnet's default rank by
            normalised score; the returned ``score`` is never normalised).
        blank_penalty: subtracted from the blank logit before the log-softmax of every frame (icefall's
            ``blank_penalty``; 0 = off). Scores are then those of the penalised distribution.
        span_grammar: optional; keeps [NE] ... [/NE] well formed (``SpanGrammar``).
        biasing: optional contextual biasing (``context_graph.py``): one ``ContextGraph`` for every utterance or
            one per utterance (None = no list). Scores then include the bonuses that phrases keep.

    Returns:
        per utterance (input order), up to ``nbest`` hypotheses, best first.
    """
    if beam < 1 or nbest < 1:
        raise ValueError(f"beam and nbest must be >= 1, got beam={beam}, nbest={nbest}")
    lens = check_inputs(encoder_out, encoder_lens)
    batch = len(lens)
    device = encoder_out.device
    results: List[List[Hypothesis]] = [[] for _ in range(batch)]
    if batch == 0:
        return results

    pred = PredictionNet(decoder, device)
    joint = JointScorer(joint_network, pred.blank_id, blank_penalty)
    blank = pred.blank_id
    enc = joint.enc(encoder_out)  # [B, T, D_joint]

    # Working set: the hypotheses of all running utterances, flat and grouped by utterance.
    utt_of: List[int] = list(range(batch))
    ys: List[Tuple[int, ...]] = [() for _ in range(batch)]
    fr: List[Tuple[int, ...]] = [() for _ in range(batch)]  # emission frame of each token of ys
    scores: List[float] = [0.0] * batch
    dec_out, state = pred.start(batch)  # dec_out: [B, D_dec], one hyp per utterance
    dec = joint.dec(dec_out)  # [H, D_joint], H = hyps in the working set

    bias = BiasingBeams.open(biasing, batch, utt_of)  # [biasing] graph state per hypothesis, None = no list
    mask: Optional[torch.Tensor] = None
    mask_ready = False
    for t in range(max(lens) if lens else 0):
        # Utterances that end here leave the working set with their final hypotheses.
        if any(lens[u] <= t for u in utt_of):
            keep = [i for i, u in enumerate(utt_of) if lens[u] > t]
            final = scores if bias is None else bias.final_scores(scores, utt_of)  # [biasing] partial matches back
            _collect_finished(results, utt_of, ys, final, fr, t, lens, nbest, length_norm, span_grammar)
            if bias is not None:  # [biasing]
                bias.keep(keep)
            keep_t = torch.tensor(keep, dtype=torch.long, device=device)  # [H_keep]
            utt_of = [utt_of[i] for i in keep]
            ys = [ys[i] for i in keep]
            fr = [fr[i] for i in keep]
            scores = [scores[i] for i in keep]
            dec = dec[keep_t]  # [H_keep, D_joint]
            state = index_state(state, keep_t)
        if not utt_of:
            break

        hyp_utt = torch.tensor(utt_of, dtype=torch.long, device=device)  # [H], utterance of each hyp
        logits = joint.logits(enc[hyp_utt, t], dec)  # [H, V]
        vocab = logits.size(-1)
        if not mask_ready:  # the vocabulary size is known only once the joint has run
            mask = prepare_suppress_mask(suppress_mask, batch, vocab, blank, device)  # [B, V] bool, or None
            mask_ready = True
        hyp_mask = None if mask is None else mask[hyp_utt]  # [H, V]
        if span_grammar is not None:
            hyp_mask = span_grammar.restrict(hyp_mask, ys, vocab, device)  # [H, V]
        logp = masked_log_probs(logits, hyp_mask)  # [H, V]
        cand = logp + torch.tensor(scores, dtype=torch.float64, device=device).unsqueeze(1)  # [H, V]
        if bias is not None:  # [biasing] every next token's bonus, before pruning
            cand = cand + bias.bonus(utt_of, vocab, device)  # [H, V]

        # Lay the ragged groups out as (utterances, max_group * V) so one topk serves all utterances.
        groups: List[Tuple[int, int]] = []  # (first hypothesis, count) per running utterance
        rows, slots = [], []
        for i, u in enumerate(utt_of):
            if i == 0 or u != utt_of[i - 1]:
                groups.append((i, 0))
            start, count = groups[-1]
            groups[-1] = (start, count + 1)
            rows.append(len(groups) - 1)
            slots.append(count)
        width = max(c for _, c in groups)
        # padded: [G, width, V], G = len(groups); empty slots stay -inf
        padded = torch.full((len(groups), width, vocab), float("-inf"), dtype=torch.float64, device=device)
        padded[torch.tensor(rows, device=device), torch.tensor(slots, device=device)] = cand
        k = min(beam, width * vocab)
        top_val, top_idx = padded.view(len(groups), -1).topk(k, dim=1)  # [G, k] each; idx = slot * V + tok
        top_val, top_idx = top_val.tolist(), top_idx.tolist()

        nxt = NextBeams()
        for g, (start, _) in enumerate(groups):
            add_candidates(nxt, top_val[g], top_idx[g], start, vocab, blank, t, ys, fr, utt_of)
        dec, state = advance_decoder(pred, joint, dec, state, nxt, device)
        if bias is not None:  # [biasing] equal token sequences have equal graph states: merging keeps them
            bias.advance(nxt.parent, nxt.token, nxt.utt)
        utt_of, ys, scores, fr = nxt.utt, nxt.ys, nxt.scores, nxt.fr

    final = scores if bias is None else bias.final_scores(scores, utt_of)  # [biasing] partial matches given back
    _collect_finished(results, utt_of, ys, final, fr, None, lens, nbest, length_norm, span_grammar)
    for u in range(batch):  # zero-length utterances never entered the loop
        if not results[u]:
            results[u] = [Hypothesis(yseq=[], score=0.0)]
    return results


def _collect_finished(results: List[List[Hypothesis]], utt_of: List[int], ys: List[Tuple[int, ...]],
                      scores: List[float], frames: List[Tuple[int, ...]], t: Optional[int], lens: List[int],
                      nbest: int, length_norm: bool, span_grammar: Optional[SpanGrammar] = None) -> None:
    """Store the final hypotheses of utterances that end at frame ``t`` (all remaining ones when t is None)."""
    by_utt: Dict[int, List[int]] = {}
    for i, u in enumerate(utt_of):
        if t is None or lens[u] <= t:
            by_utt.setdefault(u, []).append(i)
    for u, idx in by_utt.items():
        results[u] = finalize_nbest([ys[i] for i in idx], [scores[i] for i in idx], [frames[i] for i in idx], nbest,
                                    length_norm, span_grammar)
