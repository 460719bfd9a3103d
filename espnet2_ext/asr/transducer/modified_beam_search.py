"""Batched modified beam search (icefall semantics) for an ESPnet RNN-Transducer.

Semantics (as icefall's ``modified_beam_search``): every frame consumes exactly one step, which emits either
blank or one non-blank symbol, so a frame emits at most one symbol. Per frame, candidate scores are
``hyp score + log_softmax(joint)`` over (hyps x vocab) of an utterance, the top ``beam`` candidates are kept,
and candidates with the same token sequence are merged by log-sum-exp of their scores (the merged hypothesis
keeps the emission frames of its best alignment).

Layout (``BeamSearch``): the beams of N utterances are [N, K] tensors, K = beam slots, empty slots scored -inf;
one frame is a fixed number of tensor operations over the whole batch, with no Python per hypothesis:
one joint call on [N, K] hypotheses, one log-softmax, one top-k over each utterance's K * V candidates, merging
by comparing candidate sequence keys within the top-k (below), one gather of every per-hypothesis field, and
one prediction-network step for the hypotheses extended by a symbol. Token sequences are not stored per
hypothesis: each frame appends (parent slot, token) per slot to ``history``; the n-best lists are traced back
from it at the end.

Merging without sequences: two candidates of one frame can only have the same sequence when one extends a
hypothesis p by blank and the other extends p's prefix q (``ys[q] == ys[p][:-1]``) by ``ys[p][-1]``, because the
hypotheses of a beam are distinct. Each slot therefore carries ``pre`` (the slot holding its sequence minus
the last token, or -1) and ``last`` (its last token), and a candidate's sequence has the key (q, token) either
way; equal keys within an utterance's top-k are the same sequence.

Hooks for per-hypothesis extensions (contextual biasing): ``BeamSearch.candidate_scores`` is the one place per
frame where the [N, K, V] candidate scores are formed; a per-candidate bonus is added there. Per-hypothesis
state is a [N, K] long tensor carried like ``length``/``inside``: compute its value per top-k candidate from the
parent slot's value and the token in ``_select`` (``own`` fields), and it is reordered with the others.

Differences from icefall: ESPnet's prediction network is recurrent, so each hypothesis carries its RNN state
(icefall's stateless decoder only needs the last tokens). A hypothesis extended by blank keeps its parent's
decoder output; when a blank extension and a symbol extension merge, the blank one's decoder output is reused,
so only the hypotheses with a new sequence run the prediction network, batched over all utterances.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from espnet2_ext.asr.transducer.search_common import (
    Hypothesis,
    JointScorer,
    PredictionNet,
    SpanGrammar,
    assign_state,
    check_inputs,
    index_state,
    masked_log_probs,
    prepare_suppress_mask,
)

NEG_INF = float("-inf")
# columns of the per-candidate table gathered each frame
_PARENT, _TOKEN, _SRC, _STEP, _LAST, _PRE, _LEN, _INSIDE = range(8)


def finalize_nbest(ys: List[Tuple[int, ...]], scores: List[float], frames: List[Tuple[int, ...]], nbest: int,
                   length_norm: bool, span_grammar: Optional[SpanGrammar] = None) -> List[Hypothesis]:
    """The ``nbest`` best final hypotheses; with a span grammar, those ending inside a span only as a last resort."""
    idx = list(range(len(ys))) if span_grammar is None else span_grammar.keep_closed(ys, range(len(ys)))
    # ESPnet's sort_nbest normalises by len(yseq) including the leading blank, hence the + 1.
    keyed = [((scores[i] / (len(ys[i]) + 1)) if length_norm else scores[i], i) for i in idx]
    keyed.sort(key=lambda k: k[0], reverse=True)
    return [Hypothesis(yseq=list(ys[i]), score=scores[i], frames=list(frames[i])) for _, i in keyed[:nbest]]


def trace_back(history: Sequence[list], row: int, slot: int) -> Tuple[List[int], List[int]]:
    """Tokens and their emission frames of the hypothesis in ``slot`` of utterance ``row`` after the last frame of
    ``history`` (per frame, [rows][K][(parent slot, token or -1)] lists)."""
    toks, frames = [], []
    for i in range(len(history) - 1, -1, -1):
        parent, tok = history[i][row][slot]
        if tok >= 0:
            toks.append(tok)
            frames.append(i)
        slot = parent
    return toks[::-1], frames[::-1]


class BeamSearch:
    """Modified beam search state of N utterances ([N, K] tensors), advanced one frame at a time by ``step``.

    Used by ``modified_beam_search`` (a batch, utterances sorted by decreasing length so the running ones are a
    prefix: ``retire`` drops the finished tail) and by ``streaming_search.BeamStream`` (one utterance).
    """

    def __init__(self, pred: PredictionNet, joint: JointScorer, n: int, beam: int,
                 suppress_mask: Optional[torch.Tensor], span_grammar: Optional[SpanGrammar], device: torch.device):
        self.pred, self.joint, self.K, self.device = pred, joint, beam, device
        self.blank, self.grammar = pred.blank_id, span_grammar
        self.suppress_in = suppress_mask  # [N, V] bool or None, validated once the vocabulary is known
        self.suppress: Optional[torch.Tensor] = None
        self.forbid: Optional[torch.Tensor] = None  # [2, V] span-grammar rule (outside / inside a span)
        self.vocab: Optional[int] = None
        dec_out, self.state = pred.start(n * beam)  # [N*K, D_dec]; state [L, N*K, H]
        self.dec = joint.dec(dec_out)  # [N*K, D_joint]
        self.scores = torch.full((n, beam), NEG_INF, dtype=torch.float64, device=device)  # [N, K]
        self.scores[:, 0] = 0.0  # one empty hypothesis per utterance
        self.last = torch.full((n, beam), -1, dtype=torch.long, device=device)  # last token, -1: none
        self.pre = torch.full((n, beam), -1, dtype=torch.long, device=device)  # slot of ys[:-1], -1: none
        self.length = torch.zeros((n, beam), dtype=torch.long, device=device)  # len(ys)
        self.inside = torch.zeros((n, beam), dtype=torch.bool, device=device)  # inside an entity span
        self.history: List[torch.Tensor] = []  # per frame [N_t, K, 2]: (parent slot, token or -1 for blank)
        self.k_idx = torch.arange(beam, device=device)  # [K]
        self.earlier = self.k_idx[None, :] < self.k_idx[:, None]  # [K, K]: [c, c'] True when c' comes before c

    @property
    def rows(self) -> int:
        return self.scores.size(0)

    def fields(self, start: int = 0) -> Tuple[List[List[float]], List[List[int]], List[List[bool]]]:
        """Scores, lengths and span flags of the slots of utterances ``start:`` (lists, for ``final``)."""
        return self.scores[start:].tolist(), self.length[start:].tolist(), self.inside[start:].tolist()

    def retire(self, n: int) -> Tuple[List[List[float]], List[List[int]], List[List[bool]]]:
        """Keep the first ``n`` utterances; returns the ``fields`` of the dropped ones."""
        tail, m = self.fields(n), n * self.K
        self.scores, self.last, self.pre = self.scores[:n], self.last[:n], self.pre[:n]
        self.length, self.inside = self.length[:n], self.inside[:n]
        h, c = self.state  # [L, N*K, H] each
        self.dec, self.state = self.dec[:m], (h[:, :m], None if c is None else c[:, :m])
        return tail

    def step(self, enc_t: torch.Tensor) -> None:
        """Advance every utterance by one frame. enc_t: [N, D_joint] (the joint's encoder projection)."""
        n, k = enc_t.size(0), self.K
        logits = self.joint.logits(enc_t.unsqueeze(1), self.dec.view(n, k, -1))  # [N, K, V]
        if self.vocab is None:
            self._prepare_masks(logits.size(-1))
        logp = masked_log_probs(logits, self._mask(n))  # [N, K, V] float64
        cand = self.candidate_scores(logp)  # [N, K, V]
        val, idx = cand.view(n, -1).topk(k, dim=1)  # [N, K] each; idx = slot * V + token, best first
        self._select(val, idx)

    def candidate_scores(self, logp: torch.Tensor) -> torch.Tensor:
        """Score of every (hypothesis, token) candidate: [N, K, V]. Biasing hook: add its [N, K, V] bonus here."""
        return logp + self.scores.unsqueeze(2)

    def _prepare_masks(self, vocab: int) -> None:
        self.vocab = vocab
        if self.suppress_in is not None:
            self.suppress = prepare_suppress_mask(self.suppress_in, self.suppress_in.size(0), vocab, self.blank,
                                                  self.device)  # [N, V] or None
        if self.grammar is not None:
            self.forbid = self.grammar.forbid_table(vocab, self.device)  # [2, V]

    def _mask(self, n: int) -> Optional[torch.Tensor]:
        """[N, K, V] or [N, 1, V] bool: tokens a hypothesis may not emit, or None."""
        mask = None if self.suppress is None else self.suppress[:n].unsqueeze(1)  # [N, 1, V]
        if self.forbid is not None:
            rule = self.forbid[self.inside.long()]  # [N, K, V]
            mask = rule if mask is None else rule | mask
        return mask

    def _select(self, val: torch.Tensor, idx: torch.Tensor) -> None:
        """Keep the top-k candidates (val, idx: [N, K], best first) as the next beams, equal sequences merged."""
        n, k, vocab = val.size(0), self.K, self.vocab
        slot, tok = idx // vocab, idx % vocab  # [N, K] each
        valid = val > NEG_INF  # fewer allowed candidates than the beam (suppression, tiny vocab)
        blank = tok == self.blank
        p_pre, p_last = self.pre.gather(1, slot), self.last.gather(1, slot)  # parent's fields: [N, K]
        # sequence key (q, token): see the module docstring; a blank extension without a prefix slot gets (p, -1)
        has_pre = blank & (p_pre >= 0)
        key = torch.where(has_pre, p_pre, slot) * (vocab + 1) + torch.where(blank, torch.where(has_pre, p_last, -1),
                                                                              tok)  # [N, K]
        same = (key.unsqueeze(2) == key.unsqueeze(1)) & valid.unsqueeze(2) & valid.unsqueeze(1)  # [N, K, K]
        leader = valid & ~(same & self.earlier).any(2)  # first (best) candidate of each sequence
        later = same & self.earlier.t()  # [N, K, K]: the other member of a merged pair, after the leader
        has_partner = later.any(2)
        partner = later.long().argmax(2)  # [N, K]
        merged = torch.where(has_partner, torch.logaddexp(val, val.gather(1, partner)), val)  # [N, K]
        partner_blank = has_partner & blank.gather(1, partner)
        # decoder output: a blank member's (parent's) when the sequence has one, else one prediction-network step
        src = torch.where(partner_blank, slot.gather(1, partner), slot)
        step = ~blank & ~partner_blank
        rank = leader.long().cumsum(1) - 1  # new slot of each leader
        group_slot = rank.gather(1, same.long().argmax(2))  # new slot of each candidate's sequence
        # new_of[p]: new slot holding ys[p] (p's blank extension was kept), -1 if none; column K: "no slot"
        new_of = torch.full((n, k + 1), -1, dtype=torch.long, device=self.device)
        new_of.scatter_(1, torch.where(blank & valid, slot, k), group_slot)
        new_of[:, k] = -1
        pre = torch.where(blank, new_of.gather(1, torch.where(p_pre >= 0, p_pre, k)), new_of.gather(1, slot))
        inside = self.inside.gather(1, slot)
        if self.grammar is not None:
            inside = self.grammar.next_inside(inside, torch.where(blank, -1, tok))
        own = torch.stack([slot, torch.where(blank, -1, tok), src, step.long(), torch.where(blank, p_last, tok), pre,
                           self.length.gather(1, slot) + (~blank).long(), inside.long()], dim=2)  # [N, K, 8]
        perm = torch.sort((~leader).to(torch.uint8), dim=1, stable=True).indices  # leaders first, in order
        new = own.gather(1, perm.unsqueeze(2).expand(-1, -1, own.size(2)))  # [N, K, 8]
        kept = leader.gather(1, perm)  # [N, K]
        self.scores = torch.where(kept, merged.gather(1, perm), NEG_INF)
        self.last, self.pre, self.length = new[..., _LAST], new[..., _PRE], new[..., _LEN]
        self.inside = new[..., _INSIDE].bool()
        self.history.append(new[..., :_SRC])
        self._advance_decoder(new, kept)

    def _advance_decoder(self, new: torch.Tensor, kept: torch.Tensor) -> None:
        """Decoder outputs/states of the new slots: copied from their source slot, one batched step where needed."""
        n, k = kept.shape
        src = (torch.arange(n, device=self.device).unsqueeze(1) * k + new[..., _SRC]).view(-1)  # [N*K] flat rows
        dec, state = self.dec[src], index_state(self.state, src)  # [N*K, D_joint]; [L, N*K, H]
        rows = (new[..., _STEP].bool() & kept).view(-1).nonzero().squeeze(1)  # [E] hyps extended by a symbol
        if rows.numel():
            out, new_state = self.pred.step(new[..., _TOKEN].reshape(-1)[rows], index_state(state, rows))
            dec[rows] = self.joint.dec(out)  # [E, D_joint]
            assign_state(state, rows, new_state)
        self.dec, self.state = dec, state

    def final(self, fields: Tuple[list, list, list], row0: int, history: Sequence[list], nbest: int,
              length_norm: bool) -> List[List[Hypothesis]]:
        """n-best lists of utterances ``row0, row0 + 1, ...`` whose last frame is the last of ``history``, from
        their slots' ``fields``."""
        out = []
        for r, (sc, ln, ins) in enumerate(zip(*fields)):
            slots = [s for s in range(self.K) if sc[s] > NEG_INF]
            if self.grammar is not None:
                slots = [s for s in slots if not ins[s]] or slots
            keyed = [((sc[s] / (ln[s] + 1)) if length_norm else sc[s], s) for s in slots]
            keyed.sort(key=lambda x: x[0], reverse=True)  # stable: equal keys keep slot order
            hyps = []
            for _, s in keyed[:nbest]:
                toks, frames = trace_back(history, row0 + r, s)
                hyps.append(Hypothesis(yseq=toks, score=sc[s], frames=frames))
            out.append(hyps)
        return out


@torch.inference_mode()
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

    Returns:
        per utterance (input order), up to ``nbest`` hypotheses, best first.
    """
    if beam < 1 or nbest < 1:
        raise ValueError(f"beam and nbest must be >= 1, got beam={beam}, nbest={nbest}")
    lens = check_inputs(encoder_out, encoder_lens)
    batch = len(lens)
    device = encoder_out.device
    results: List[List[Hypothesis]] = [[Hypothesis(yseq=[], score=0.0)] for _ in range(batch)]
    order = sorted(range(batch), key=lambda i: -lens[i])  # running utterances are a prefix of this order
    running = [u for u in order if lens[u] > 0]
    if not running:
        return results
    order_t = torch.tensor(running, dtype=torch.long, device=device)  # [N]
    pred = PredictionNet(decoder, device)
    joint = JointScorer(joint_network, pred.blank_id, blank_penalty)
    enc = joint.enc(encoder_out[order_t])  # [N, T, D_joint], sorted by decreasing length
    if suppress_mask is not None:
        suppress_mask = _check_mask_batch(suppress_mask, batch)[order_t.to(suppress_mask.device)]  # [N, V]
    search = BeamSearch(pred, joint, len(running), beam, suppress_mask, span_grammar, device)
    finished: List[Tuple[int, int, tuple]] = []  # (first row, frames, retired fields), traced back at the end
    for t in range(lens[running[0]]):
        n = sum(1 for u in running if lens[u] > t)
        if n < search.rows:
            finished.append((n, t, search.retire(n)))
        search.step(enc[:n, t])
    finished.append((0, lens[running[0]], search.retire(0)))
    history = [h.tolist() for h in search.history]  # one synchronisation per frame, at the end
    for row0, frames, fields in finished:
        for r, hyps in enumerate(search.final(fields, row0, history[:frames], nbest, length_norm)):
            results[running[row0 + r]] = hyps
    return results


def _check_mask_batch(mask: torch.Tensor, batch: int) -> torch.Tensor:
    if mask.dim() != 2 or mask.size(0) != batch:
        raise ValueError(f"suppress_mask must have shape (batch, vocab) with batch={batch}, got {tuple(mask.shape)}")
    return mask
