"""Frame-synchronous transducer searches over encoder frames that arrive in pieces (one utterance at a time):
``GreedyStream`` and ``BeamStream`` run the same search objects as ``greedy_search_batch`` / ``modified_beam_search``
(``GreedySearch``, ``BeamSearch``, with a batch of one) and carry their hypotheses, prediction-network states and
outputs between chunks (``asr/streaming.py`` drives them).
"""

from __future__ import annotations

from typing import List, Optional

import torch

from espnet2_ext.asr.transducer.context_graph import BiasingSlots
from espnet2_ext.asr.transducer.greedy_search import GreedySearch
from espnet2_ext.asr.transducer.modified_beam_search import BeamSearch
from espnet2_ext.asr.transducer.search_common import Hypothesis, JointScorer, PredictionNet, SpanGrammar


class GreedyStream:
    """Greedy transducer search over frames arriving in pieces (one utterance); same steps as
    ``greedy_search_batch`` with a batch of one."""

    @torch.inference_mode()
    def __init__(
        self,
        decoder,
        joint_network,
        suppress: Optional[torch.Tensor],
        device,
        max_sym_per_frame: int = 1,
        blank_penalty: float = 0.0,
        span_grammar: Optional[SpanGrammar] = None,
        biasing=None,
    ):
        pred = PredictionNet(decoder, device)
        self.joint = JointScorer(joint_network, pred.blank_id, blank_penalty)
        bias = BiasingSlots.open(biasing, 1)  # [biasing] None = no list
        self.search = GreedySearch(pred, self.joint, 1, max_sym_per_frame, suppress, span_grammar, device, bias=bias)
        self.tokens: List[int] = []
        self.token_frames: List[int] = []  # encoder frame of each emitted token (utterance clock)
        self.t0 = 0  # frames consumed by earlier calls

    @torch.inference_mode()
    def advance(self, encoder_out: torch.Tensor) -> None:
        """encoder_out: [1, T_new, D_enc], the next frames."""
        enc = self.joint.enc(encoder_out)  # [1, T_new, D_joint]
        lens = torch.full((1,), enc.size(1), dtype=torch.long, device=enc.device)
        for _, tok, t in self.search.run(enc, lens, self.t0).tolist():
            self.tokens.append(tok)
            self.token_frames.append(t)
        self.t0 += enc.size(1)

    def nbest(self, n: int) -> List[Hypothesis]:
        return [Hypothesis(yseq=list(self.tokens), score=0.0, frames=list(self.token_frames))]


class BeamStream:
    """Modified beam search (icefall semantics: one symbol per frame at most, equal sequences merged) over frames
    arriving in pieces (one utterance): ``BeamSearch.step`` per frame with a batch of one."""

    @torch.inference_mode()
    def __init__(
        self,
        decoder,
        joint_network,
        suppress: Optional[torch.Tensor],
        device,
        beam: int = 4,
        blank_penalty: float = 0.0,
        span_grammar: Optional[SpanGrammar] = None,
        biasing=None,
    ):
        pred = PredictionNet(decoder, device)
        self.joint = JointScorer(joint_network, pred.blank_id, blank_penalty)
        bias = BiasingSlots.open(biasing, 1)  # [biasing] None = no list
        self.search = BeamSearch(pred, self.joint, 1, beam, suppress, span_grammar, device, bias)
        self.frames = 0
        self._history: List[list] = []  # the search's history as lists, converted up to here

    @torch.inference_mode()
    def advance(self, encoder_out: torch.Tensor) -> None:
        """encoder_out: [1, T_new, D_enc], the next frames."""
        enc = self.joint.enc(encoder_out)  # [1, T_new, D_joint]
        for t in range(enc.size(1)):
            self.search.step(enc[:, t])  # [1, D_joint]
        self.frames += enc.size(1)

    @torch.inference_mode()
    def nbest(self, n: int, length_norm: bool = True) -> List[Hypothesis]:
        if self.frames == 0:
            return [Hypothesis(yseq=[], score=0.0)]
        self._history.extend(h.tolist() for h in self.search.history[len(self._history) :])
        return self.search.final(self.search.fields(), 0, self._history, n, length_norm)[0]
