"""Frame-synchronous transducer searches over encoder frames that arrive in pieces (one utterance at a time):
``GreedyStream`` and ``BeamStream`` follow ``greedy_search_batch`` / ``modified_beam_search`` step by step and
carry their hypotheses, prediction-network states and outputs between chunks (``asr/streaming.py`` drives them).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch

from espnet2_ext.asr.transducer.context_graph import BiasingBeams
from espnet2_ext.asr.transducer.modified_beam_search import (NextBeams, add_candidates, advance_decoder,
                                                              finalize_nbest)
from espnet2_ext.asr.transducer.search_common import (Hypothesis, JointScorer, PredictionNet, SpanGrammar,
                                                      masked_log_probs, prepare_suppress_mask)


class GreedyStream:
    """Greedy transducer search over frames arriving in pieces (one utterance); same steps as
    ``greedy_search_batch`` with a batch of one."""

    def __init__(self, decoder, joint_network, suppress: Optional[torch.Tensor], device, max_sym_per_frame: int = 1,
                 blank_penalty: float = 0.0, span_grammar: Optional[SpanGrammar] = None, biasing=None):
        self.pred = PredictionNet(decoder, device)
        self.bias = BiasingBeams.open(biasing, 1, [0])  # [biasing] None = no list
        self.joint = JointScorer(joint_network, self.pred.blank_id, blank_penalty)
        dec_out, self.state = self.pred.start(1)
        self.dec = self.joint.dec(dec_out)                            # [1, D_joint]
        self.suppress, self.mask, self.max_sym = suppress, None, max_sym_per_frame
        self.span_grammar = span_grammar
        self.tokens: List[int] = []
        self.token_frames: List[int] = []  # encoder frame of each emitted token (utterance clock)
        self.t0 = 0  # frames consumed by earlier calls

    def advance(self, encoder_out: torch.Tensor) -> None:
        """encoder_out: [1, T_new, D_enc], the next frames."""
        enc = self.joint.enc(encoder_out)                             # [1, T_new, D_joint]
        blank = self.pred.blank_id
        for t in range(enc.size(1)):
            for _ in range(self.max_sym):
                logits = self.joint.logits(enc[:, t], self.dec)       # [1, V]
                if self.suppress is not None and self.mask is None:
                    self.mask = prepare_suppress_mask(self.suppress, 1, logits.size(-1), blank, logits.device)
                mask = self.mask
                if self.span_grammar is not None:
                    mask = self.span_grammar.restrict(mask, [self.tokens], logits.size(-1), logits.device)  # [1, V]
                if mask is not None:
                    logits = logits.masked_fill(mask, float("-inf"))
                if self.bias is not None:  # [biasing]
                    logits = logits + self.bias.bonus_at([0], logits.size(-1), logits.device).to(logits.dtype)
                token = logits.argmax(dim=-1)
                if int(token) == blank:
                    break
                self.tokens.append(int(token))
                self.token_frames.append(self.t0 + t)
                if self.bias is not None:  # [biasing]
                    self.bias.step_at([0], [int(token)])
                out, self.state = self.pred.step(token, self.state)
                self.dec = self.joint.dec(out)
        self.t0 += enc.size(1)

    def nbest(self, n: int) -> List[Hypothesis]:
        return [Hypothesis(yseq=list(self.tokens), score=0.0, frames=list(self.token_frames))]


class BeamStream:
    """Modified beam search (icefall semantics: one symbol per frame at most, equal sequences merged) over frames
    arriving in pieces (one utterance): the per-frame step of ``modified_beam_search`` (``add_candidates``,
    ``advance_decoder``) with a batch of one."""

    def __init__(self, decoder, joint_network, suppress: Optional[torch.Tensor], device, beam: int = 4,
                 blank_penalty: float = 0.0, span_grammar: Optional[SpanGrammar] = None, biasing=None):
        self.bias = BiasingBeams.open(biasing, 1, [0])  # [biasing] None = no list
        self.pred, self.beam, self.device = PredictionNet(decoder, device), beam, device
        self.joint = JointScorer(joint_network, self.pred.blank_id, blank_penalty)
        dec_out, self.state = self.pred.start(1)
        self.dec = self.joint.dec(dec_out)                            # [H, D_joint]
        self.ys: List[Tuple[int, ...]] = [()]
        self.fr: List[Tuple[int, ...]] = [()]  # emission frame of each token of ys
        self.scores: List[float] = [0.0]
        self.suppress, self.mask, self.frames = suppress, None, 0
        self.span_grammar = span_grammar

    def advance(self, encoder_out: torch.Tensor) -> None:
        enc = self.joint.enc(encoder_out)                             # [1, T_new, D_joint]
        blank = self.pred.blank_id
        for t in range(enc.size(1)):
            self.frames += 1
            hyp_utt = torch.zeros(len(self.ys), dtype=torch.long, device=self.device)
            logits = self.joint.logits(enc[hyp_utt, t], self.dec)     # [H, V]
            vocab = logits.size(-1)
            if self.suppress is not None and self.mask is None:
                self.mask = prepare_suppress_mask(self.suppress, 1, vocab, blank, self.device)
            hyp_mask = None if self.mask is None else self.mask[hyp_utt]  # [H, V]
            if self.span_grammar is not None:
                hyp_mask = self.span_grammar.restrict(hyp_mask, self.ys, vocab, self.device)  # [H, V]
            logp = masked_log_probs(logits, hyp_mask)  # [H, V]
            cand = logp + torch.tensor(self.scores, dtype=torch.float64, device=self.device).unsqueeze(1)
            if self.bias is not None:  # [biasing]
                cand = cand + self.bias.bonus([0] * len(self.ys), vocab, self.device)  # [H, V]
            top_val, top_idx = cand.view(1, -1).topk(min(self.beam, cand.numel()), dim=1)  # [1, k] each
            nxt = NextBeams()
            add_candidates(nxt, top_val[0].tolist(), top_idx[0].tolist(), 0, vocab, blank, self.frames - 1,
                           self.ys, self.fr, [0] * len(self.ys))
            self.dec, self.state = advance_decoder(self.pred, self.joint, self.dec, self.state, nxt, self.device)
            if self.bias is not None:  # [biasing]
                self.bias.advance(nxt.parent, nxt.token, nxt.utt)
            self.ys, self.fr, self.scores = nxt.ys, nxt.fr, nxt.scores

    def nbest(self, n: int, length_norm: bool = True) -> List[Hypothesis]:
        if self.frames == 0:
            return [Hypothesis(yseq=[], score=0.0)]
        scores = self.scores if self.bias is None else self.bias.final_scores(self.scores, [0] * len(self.ys))
        return finalize_nbest(self.ys, scores, self.fr, n, length_norm, self.span_grammar)  # [biasing] ^
