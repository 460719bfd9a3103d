"""Batched modified beam search (icefall semantics) for an ESPnet RNN-Transducer.

Semantics (as icefall's ``modified_beam_search``): every frame consumes exactly one step, which emits either
blank or one non-blank symbol, so a frame emits at most one symbol. Per frame, candidate scores are
``hyp score + log_softmax(joint)`` over (hyps x vocab) of an utterance, the top ``beam`` candidates are kept,
and candidates with the same token sequence are merged by log-sum-exp of their scores (the merged hypothesis
keeps the emission frames of its best alignment).

Layout (``BeamSearch``): the beams of N utterances are [N, K] slots, K = beam, empty slots scored -inf. One
frame is a fixed number of array operations over the whole batch, with no Python per hypothesis: on the device
one joint call on the [N, K] hypotheses, one log-softmax, one top-k over each utterance's K * V candidates, the
gathers of decoder outputs/states and one prediction-network step for the hypotheses extended by a symbol; in
numpy (the top-k's [N, K] values and indices: one host copy per frame) the merging and the per-slot fields. On the
CPU (float32) the small arrays of the joint, the candidate scores and the decoder memory go through numpy as well
(``search_common.on_host``: a numpy call costs about a third of a torch call on arrays this small).
Token sequences are not stored per hypothesis: each frame appends parent slot * V + token per slot to ``history``;
the n-best lists are traced back from it at the end.

Merging: each slot carries two polynomial hashes of its token sequence (mod two primes near 2**31, extended by
one multiply-add per emitted token); candidates of one utterance with equal hash pairs are the same sequence.
Two different sequences of length L collide with probability about (L / 2**31)**2, i.e. below 1e-13 for the
candidates of a frame at L = 500 (icefall compares the sequences as strings, which costs Python per hypothesis).

Hooks for per-hypothesis extensions (contextual biasing): ``BeamSearch.candidate_scores`` is the one place per
frame where the [N, K, V] candidate scores are formed; a per-candidate bonus is added there. Per-hypothesis
state (e.g. a graph state) is one more int64 column of ``BeamSearch.hyp`` [N, K, F]: ``_select`` computes its
value per top-k candidate from the parent's value (a copy of the parents' fields, ``new``) and the token (``tok``)
next to LEN/INSIDE, and it is reordered with the other columns.

Contextual biasing (``context_graph.py``) uses both hooks (lines marked ``[biasing]``): ``candidate_scores`` adds
each next token's bonus before the top-k, column BIAS holds each slot's graph state, and ``fields`` gives back
unfinished matches before the n-best lists are ranked. Graph states are a function of the token sequence, so
merged candidates (equal sequences) have equal states. Without a list (``bias`` None) the column stays 0 and
nothing else changes.

Differences from icefall: ESPnet's prediction network is recurrent, so each hypothesis carries its RNN state
(icefall's stateless decoder only needs the last tokens). A hypothesis extended by blank keeps its parent's
decoder output; when a blank extension and a symbol extension merge, the blank one's decoder output is reused,
so only the hypotheses with a new sequence run the prediction network, batched over all utterances.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from espnet2_ext.asr.transducer.context_graph import BiasingSlots
from espnet2_ext.asr.transducer.decoder_memory import DecoderMemory
from espnet2_ext.asr.transducer.search_common import (
    Hypothesis,
    JointScorer,
    PredictionNet,
    SpanGrammar,
    check_inputs,
    frame_masks,
    masked_log_softmax,
    on_host,
)

NEG_INF = float("-inf")
# columns of the per-slot field table ``BeamSearch.hyp`` [N, K, F]: sequence length, inside an entity span,
# two polynomial hashes of the token sequence (mod primes below 2**31, so products fit in int64), and the
# contextual-biasing graph state (0 without a list)
LEN, INSIDE, HASH1, HASH2, BIAS = range(5)
_PRIMES, _BASES = (2147483647, 2147483629), (1000003, 998244353)


def trace_back(history: Sequence[list], row: int, slot: int, blank: int, vocab: int) -> Tuple[List[int], List[int]]:
    """Tokens and their emission frames of the hypothesis in ``slot`` of utterance ``row`` after the last frame of
    ``history`` (per frame, [rows][K] lists of parent slot * vocab + token)."""
    toks, frames = [], []
    for i in range(len(history) - 1, -1, -1):
        parent, tok = divmod(history[i][row][slot], vocab)
        if tok != blank:
            toks.append(tok)
            frames.append(i)
        slot = parent
    return toks[::-1], frames[::-1]


class BeamSearch:
    """Modified beam search state of N utterances ([N, K] slots), advanced one frame at a time by ``step``.

    Used by ``modified_beam_search`` (a batch, utterances sorted by decreasing length so the running ones are a
    prefix: ``retire`` drops the finished tail) and by ``streaming_search.BeamStream`` (one utterance).
    On the device: ``dec``/``state``, the prediction network's projected output [N*K, D_joint] and RNN state
    [L, N*K, H]. In numpy (the [N, K] bookkeeping of a frame is a few dozen tiny array operations, which numpy
    does in about a microsecond each and torch in about ten): ``scores`` [N, K] float64 (-inf: empty slot),
    ``hyp`` [N, K, F] int64 fields (see LEN ... BIAS), ``history`` per frame.
    ``bias``: ``BiasingSlots`` of the N rows (their graphs), or None without a list.
    """

    def __init__(
        self,
        pred: PredictionNet,
        joint: JointScorer,
        n: int,
        beam: int,
        suppress_mask: Optional[torch.Tensor],
        span_grammar: Optional[SpanGrammar],
        device: torch.device,
        bias: Optional[BiasingSlots] = None,
    ):
        self.pred, self.joint, self.K, self.device = pred, joint, beam, torch.device(device)  # a name or a device
        self.blank, self.grammar = pred.blank_id, span_grammar
        self.suppress_in = suppress_mask  # [N, V] bool or None, validated once the vocabulary is known
        self.suppress: Optional[torch.Tensor] = None
        self.forbid: Optional[torch.Tensor] = None  # [2, V] span-grammar rule (outside / inside a span)
        self.vocab: Optional[int] = None
        self.memory = DecoderMemory(pred, joint)
        self.mem = self.memory.start(n * beam)  # decoder output and state of the N*K slots
        self.scores = np.full((n, beam), NEG_INF)  # [N, K] float64
        self.scores[:, 0] = 0.0  # one empty hypothesis per utterance
        self.hyp = np.zeros((n, beam, 5), dtype=np.int64)  # [N, K, F]; empty sequence: hashes 0
        self.bias = bias
        if bias is not None:  # [biasing] every slot starts in its graph's start state
            self.hyp[..., BIAS] = bias.start(beam)
        self.history: List[np.ndarray] = []  # per frame [N_t, K]: parent slot * V + token (the top-k index)
        self.k_idx = np.arange(beam)  # [K]
        self.k_last = beam - 1
        self.lone = -1 - self.k_idx  # [K] keys of invalid candidates (no sequence key is negative)
        self.row_idx = np.arange(n)[:, None]  # [N, 1]
        self.bases, self.primes = np.array(_BASES, dtype=np.int64), np.array(_PRIMES, dtype=np.int64)
        self.row_base = self.row_idx * beam  # [N, 1] first flat row of each utterance

    @property
    def rows(self) -> int:
        return self.scores.shape[0]

    def fields(self, start: int = 0) -> Tuple[List[List[float]], List[List[int]], List[List[int]]]:
        """Scores, lengths and span flags of the slots of utterances ``start:`` (lists, for ``final``)."""
        scores = self.scores[start:]  # [N - start, K]
        if self.bias is not None:  # [biasing] unfinished matches given back before ranking
            scores = scores + self.bias.give_back(self.hyp[start:, :, BIAS], start)
        return scores.tolist(), self.hyp[start:, :, LEN].tolist(), self.hyp[start:, :, INSIDE].tolist()

    def retire(self, n: int) -> Tuple[list, list, list]:
        """Keep the first ``n`` utterances; returns the ``fields`` of the dropped ones."""
        tail, m = self.fields(n), n * self.K
        self.scores, self.hyp = self.scores[:n], self.hyp[:n]
        self.mem = self.memory.head(self.mem, m)
        return tail

    def step(self, enc_t: torch.Tensor) -> None:
        """Advance every utterance by one frame. enc_t: [N, D_joint] (the joint's encoder projection)."""
        n, k = enc_t.size(0), self.K
        logits = self.joint.logits(enc_t.unsqueeze(1), self.memory.dec(self.mem).view(n, k, -1))  # [N, K, V]
        if self.vocab is None:
            self._prepare_masks(logits.size(-1))
        logp = masked_log_softmax(logits, self._mask(n))  # [N, K, V] float32
        cand = self.candidate_scores(logp)  # [N, K, V] float64
        val, idx = cand.view(n, -1).topk(k, dim=1)  # [N, K] each; idx = slot * V + token, best first
        self._select(val.cpu().numpy(), idx.cpu().numpy())  # one synchronisation per frame on a GPU

    def candidate_scores(self, logp: torch.Tensor) -> torch.Tensor:
        """Score of every (hypothesis, token) candidate: [N, K, V] float64 (``logp`` float32 or float64); with
        biasing, + every next token's bonus."""
        if on_host(logp):  # the same float64 sums, without torch's mixed-type addition
            cand = torch.from_numpy(logp.numpy() + self.scores[:, :, None])  # [N, K, V] float64
        else:
            cand = logp + torch.from_numpy(self.scores).to(logp.device).unsqueeze(2)  # [N, K, V] float64
        if self.bias is not None:  # [biasing] before the top-k: a boosted token can enter the beam
            cand = cand + self.bias.bonus(self.hyp[: cand.size(0), :, BIAS], cand.size(2), cand.device)  # [N, K, V]
        return cand

    def _prepare_masks(self, vocab: int) -> None:
        self.vocab = vocab
        self.suppress, self.forbid = frame_masks(self.suppress_in, self.grammar, vocab, self.blank, self.device)

    def _mask(self, n: int) -> Optional[torch.Tensor]:
        """[N, K, V] or [N, 1, V] bool: tokens a hypothesis may not emit, or None."""
        mask = None if self.suppress is None else self.suppress[:n].unsqueeze(1)  # [N, 1, V]
        if self.forbid is not None:
            inside = torch.from_numpy(np.ascontiguousarray(self.hyp[..., INSIDE])).to(self.device)  # [N, K]
            rule = self.forbid[inside]  # [N, K, V]
            mask = rule if mask is None else rule | mask
        return mask

    def _select(self, val: np.ndarray, idx: np.ndarray) -> None:
        """Keep the top-k candidates (val, idx: [N, K], best first) as the next beams, equal sequences merged."""
        if val.shape[0] == 1 and self.grammar is None and self.bias is None:
            return self._select_one(val, idx)
        slot, tok = np.divmod(idx, self.vocab)  # [N, K] each
        r = self.row_idx[: slot.shape[0]]  # [N, 1]: fancy indexing a[r, j] picks a[n, j[n, k]]
        valid = val > NEG_INF  # fewer allowed candidates than the beam (suppression, tiny vocab)
        blank = tok == self.blank
        sym = ~blank
        new = self.hyp[r, slot]  # the parents' fields [N, K, F], a copy: made the candidates' fields in place
        # the candidate sequence's hashes: the parent's for blank, extended by the token otherwise
        h = new[..., HASH1 : HASH2 + 1]  # [N, K, 2] (a view)
        np.copyto(h, (h * self.bases + (tok + 1)[..., None]) % self.primes, where=sym[..., None])
        # one key per sequence (< 2**62); an invalid candidate gets a negative key of its own: it merges with nothing
        key = np.where(valid, h[..., 0] * _PRIMES[1] + h[..., 1], self.lone)  # [N, K]
        same = key[:, :, None] == key[:, None, :]  # [N, K, K], True on the diagonal
        leader = (same.argmax(2) == self.k_idx) & valid  # first (best) candidate of each sequence
        new[..., LEN] += sym
        if self.grammar is not None:
            g = self.grammar
            new[..., INSIDE] = (tok == g.open_id) | ((new[..., INSIDE] > 0) & (tok != g.close_id))
        if self.bias is not None:  # [biasing] the graph state after the candidate's token
            new[..., BIAS] = self.bias.advance(new[..., BIAS], tok)  # blank (tok == blank id) keeps the state
        if leader.all():  # nothing merged and every candidate valid: the candidates are the beams, in order
            self.scores, self.hyp = val, new
            self.history.append(idx)
            self._advance_decoder(slot, tok, sym)
            return
        merged, src, step = self._merge(val, slot, blank, same, leader, r)
        perm = np.argsort(~leader, axis=1, kind="stable")  # leaders first, in order: [N, K]
        self.scores = np.where(leader, merged, NEG_INF)[r, perm]  # [N, K]
        self.hyp = new[r, perm]
        self.history.append(idx[r, perm])
        self._advance_decoder(src[r, perm], tok[r, perm], step[r, perm])

    def _select_one(self, val: np.ndarray, idx: np.ndarray) -> None:
        """``_select`` for one utterance (a stream, or a batch's last one) without span grammar or biasing, in plain
        Python over its K candidates: the same rules, hashes and merged scores (``np.logaddexp``), and the same order
        of the new slots (leaders, then the rest at -inf), where numpy's per-call cost on [1, K] arrays was a fifth
        of a stream's step (benchmark/README.md, third pass)."""
        vocab, blank = self.vocab, self.blank
        parents = self.hyp[0].tolist()  # K x F fields
        cands = []  # per candidate: [score, fields, index, slot, token, source slot, steps]
        first, last = {}, {}  # sequence key -> its first (leader) and last candidate
        for v, i in zip(val[0].tolist(), idx[0].tolist()):
            slot, tok = divmod(i, vocab)
            fields = list(parents[slot])
            if tok != blank:
                fields[LEN] += 1
                fields[HASH1] = (fields[HASH1] * _BASES[0] + tok + 1) % _PRIMES[0]
                fields[HASH2] = (fields[HASH2] * _BASES[1] + tok + 1) % _PRIMES[1]
            if v > NEG_INF:  # an invalid candidate merges with nothing and is no leader
                key = fields[HASH1] * _PRIMES[1] + fields[HASH2]
                first.setdefault(key, len(cands))
                last[key] = len(cands)
            cands.append([v, fields, i, slot, tok, slot, tok != blank])
        for key, lead in first.items():
            part = last[key]
            if part != lead:  # merged: the score of both; a blank member's decoder memory, else one step
                c, p = cands[lead], cands[part]
                c[0] = float(np.logaddexp(c[0], p[0]))
                if p[4] == blank:
                    c[5], c[6] = p[3], False
        leaders = sorted(first.values())
        rest = sorted(set(range(len(cands))) - set(leaders))
        for j in rest:  # not a beam: -inf, no step
            cands[j][0], cands[j][6] = NEG_INF, False
        new = [cands[j] for j in leaders + rest]
        self.scores = np.array([[c[0] for c in new]])  # [1, K] float64
        self.hyp = np.array([[c[1] for c in new]], dtype=np.int64)  # [1, K, F]
        self.history.append(np.array([[c[2] for c in new]], dtype=np.int64))
        self._advance_decoder(*(np.array([[c[j] for c in new]]) for j in (5, 4, 6)))

    def _merge(self, val, slot, blank, same, leader, r) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Merged scores, source slots of the decoder memory and 'needs a prediction-network step' per candidate
        ([N, K] each) when some candidates share a sequence (``same`` [N, K, K]; ``leader``: first of each)."""
        # a sequence has at most two candidates (p + blank, prefix-of-p + last token): the later one is the leader's
        # partner (the last equal candidate; a candidate's own index when it has none)
        partner = self.k_last - same[:, :, ::-1].argmax(2)  # [N, K]
        has_partner = partner != self.k_idx
        merged = np.where(has_partner, np.logaddexp(val, val[r, partner]), val)
        partner_blank = has_partner & blank[r, partner]
        # decoder output: a blank member's (its parent's) when the sequence has one, else one prediction-net step
        src = np.where(partner_blank, slot[r, partner], slot)
        return merged, src, leader > (blank | partner_blank)

    def _advance_decoder(self, src: np.ndarray, tok: np.ndarray, step: np.ndarray) -> None:
        """Decoder outputs/states of the new slots ([N, K] each: the slot whose memory a new slot starts from, its
        token, whether it runs one prediction-network step): copied from their source slot, one batched step where
        needed."""
        flat = (self.row_base[: src.shape[0]] + src).ravel()  # [N*K] flat source slot of each new slot
        rows = step.ravel().nonzero()[0]  # [E] new slots extended by a symbol (flat)
        if not rows.size:
            self.mem = self.memory.select(self.mem, torch.from_numpy(flat).to(self.device))
            return
        parts = (flat, flat[rows], tok.ravel()[rows], rows)  # sources, parents, tokens, stepped slots
        if self.device.type == "cpu":
            flat, parents, tokens, rows = map(torch.from_numpy, parts)
        else:  # one host-to-device copy
            idx = torch.from_numpy(np.concatenate(parts)).to(self.device)
            flat, parents, tokens, rows = idx.split_with_sizes([len(p) for p in parts])
        self.mem = self.memory.gather(self.mem, flat, rows, self.memory.step(self.mem, parents, tokens))

    def final(
        self, fields: Tuple[list, list, list], row0: int, history: Sequence[list], nbest: int, length_norm: bool
    ) -> List[List[Hypothesis]]:
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
                toks, frames = trace_back(history, row0 + r, s, self.blank, self.vocab)
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
    bias = BiasingSlots.open(biasing, batch, running)  # [biasing] graphs in row order; None = no list
    search = BeamSearch(pred, joint, len(running), beam, suppress_mask, span_grammar, device, bias)
    finished: List[Tuple[int, int, tuple]] = []  # (first row, frames, retired fields), traced back at the end
    run_lens, n = [lens[u] for u in running], len(running)  # decreasing
    for t in range(run_lens[0]):
        while run_lens[n - 1] <= t:  # utterances that ended at frame t
            n -= 1
        if n < search.rows:
            finished.append((n, t, search.retire(n)))
        search.step(enc[:n, t])
    finished.append((0, lens[running[0]], search.retire(0)))
    history = [h.tolist() for h in search.history]
    for row0, frames, fields in finished:
        for r, hyps in enumerate(search.final(fields, row0, history[:frames], nbest, length_norm)):
            results[running[row0 + r]] = hyps
    return results


def _check_mask_batch(mask: torch.Tensor, batch: int) -> torch.Tensor:
    if mask.dim() != 2 or mask.size(0) != batch:
        raise ValueError(f"suppress_mask must have shape (batch, vocab) with batch={batch}, got {tuple(mask.shape)}")
    return mask
