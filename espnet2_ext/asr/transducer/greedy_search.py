"""Batched greedy search for an ESPnet RNN-Transducer.

Same result as frame-synchronous greedy decoding (per frame: up to ``max_sym_per_frame`` symbols, each the
argmax of the joint given the prediction network's output after the symbols emitted so far), computed faster:

* Utterances do not depend on each other, so each keeps its own frame pointer. Between two emissions the
  prediction-network output of an utterance is fixed, so the joint for its next ``window`` frames is computed in
  one call ([N, window] rows) and the utterance jumps to its first non-blank frame. One loop iteration costs a
  fixed number of tensor operations for the whole batch; the loop runs about max(emissions + frames / window)
  times instead of once per frame.
* The prediction network runs once per iteration, batched over the utterances that emitted a symbol
  (``PredictionNet``: cached first-layer input gates per label, no per-call ``nn.LSTM`` set-up).
* Emitted (utterance, token, frame) triples stay tensors until the end (one synchronisation per iteration: which
  utterances still run and which emitted).

Contextual biasing (``context_graph.py``, lines marked ``[biasing]``): each utterance carries a graph state
(``bias_state``) and each argmax is taken over logits + the bonus of every token in that state. The state changes
only when the utterance emits, and the look-ahead window ends at the first emission, so one bonus row per utterance
serves its whole window: the window does not change biased results (no fallback to a window of 1 is needed).
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch

from espnet2_ext.asr.transducer.context_graph import BiasingSlots
from espnet2_ext.asr.transducer.decoder_memory import DecoderMemory
from espnet2_ext.asr.transducer.search_common import (
    JointScorer,
    PredictionNet,
    SpanGrammar,
    check_inputs,
    frame_masks,
)

WINDOW = 8  # frames of look-ahead per iteration (see benchmark/README.md for the choice)


class GreedySearch:
    """Greedy search state of N utterances (prediction-network output and state, span flag), advanced over
    frames by ``run``; used by ``greedy_search_batch`` (once) and ``streaming_search.GreedyStream`` (per chunk)."""

    def __init__(
        self,
        pred: PredictionNet,
        joint: JointScorer,
        n: int,
        max_sym: int,
        suppress_mask: Optional[torch.Tensor],
        span_grammar: Optional[SpanGrammar],
        device: torch.device,
        window: int = WINDOW,
        bias: Optional[BiasingSlots] = None,
    ):
        self.pred, self.joint, self.max_sym, self.device, self.window = pred, joint, max_sym, device, window
        self.blank, self.grammar = pred.blank_id, span_grammar
        self.suppress_in, self.suppress, self.forbid, self.vocab = suppress_mask, None, None, None
        self.memory = DecoderMemory(pred, joint)
        self.mem = self.memory.start(n)  # decoder output ([N, D_joint], until the next emission) and state
        self.inside = torch.zeros(n, dtype=torch.bool, device=device)  # [N] inside an entity span
        self.bias = bias  # [biasing] None = no list
        self.bias_state = None if bias is None else bias.start(1)[:, 0]  # [N] int64 graph state per utterance

    def run(self, enc: torch.Tensor, lens: torch.Tensor, t0: int = 0) -> torch.Tensor:
        """Decode frames ``enc`` [N, T, D_joint] (projected; ``lens`` [N] valid frames each). Returns the emissions
        [E, 3] as (utterance, token, frame + t0), in emission order per utterance."""
        n, total = enc.shape[:2]
        t = torch.zeros(n, dtype=torch.long, device=self.device)  # [N] next frame of each utterance
        nsym = torch.zeros(n, dtype=torch.long, device=self.device)  # [N] symbols already emitted at frame t
        offsets = torch.arange(self.window, device=self.device)  # [W]
        out: List[torch.Tensor] = []
        while True:
            act = (t < lens).nonzero().squeeze(1)  # [A] utterances with frames left
            if act.numel() == 0:
                break
            frames = t[act].unsqueeze(1) + offsets  # [A, W]
            ok = frames < lens[act].unsqueeze(1)  # [A, W]
            e = enc[act.unsqueeze(1), frames.clamp(max=total - 1)]  # [A, W, D_joint]
            logits = self.joint.logits(e, self.memory.dec(self.mem)[act].unsqueeze(1))  # [A, W, V]
            if self.vocab is None:
                self._prepare_masks(logits.size(-1))
            mask = self._mask(act)  # [A, 1, V] or None
            if mask is not None:
                logits = logits.masked_fill(mask, float("-inf"))
            if self.bias is not None:  # [biasing] state fixed until the first emission: one row for the window
                logits = logits + self._bonus(act, logits.size(-1)).to(logits.dtype)  # [A, W, V]
            tokens = logits.argmax(dim=-1)  # [A, W]
            hit = (tokens != self.blank) & ok  # [A, W]
            first = hit.long().argmax(dim=1)  # [A] first emitting frame (0 if none)
            emits = hit.any(dim=1)  # [A]
            # emitted at frame t + first: stay there unless max_sym symbols were emitted there; else skip W frames
            count = torch.where(first == 0, nsym[act], 0) + 1  # [A]
            full = count >= self.max_sym
            t[act] = torch.where(emits, t[act] + first + full.long(), t[act] + self.window)
            nsym[act] = torch.where(emits & ~full, count, 0)
            rows = act[emits]  # [E] (synchronises)
            if rows.numel():
                tok = tokens[emits].gather(1, first[emits].unsqueeze(1)).squeeze(1)  # [E]
                out.append(
                    torch.stack([rows, tok, frames[emits].gather(1, first[emits].unsqueeze(1)).squeeze(1) + t0], dim=1)
                )  # [E, 3]
                self._emit(rows, tok)
        return torch.cat(out) if out else torch.zeros(0, 3, dtype=torch.long, device=self.device)

    def _emit(self, rows: torch.Tensor, tok: torch.Tensor) -> None:
        """Prediction-network step for the utterances ``rows`` that emitted ``tok`` ([E] each)."""
        self.memory.assign(self.mem, rows, self.memory.step(self.mem, rows, tok))
        if self.grammar is not None:
            self.inside[rows] = self.grammar.next_inside(self.inside[rows], tok)
        if self.bias is not None:  # [biasing]
            r = rows.cpu().numpy()
            self.bias_state[r] = self.bias.advance(self.bias_state[r, None], tok.cpu().numpy()[:, None], r)[:, 0]

    def _bonus(self, act: torch.Tensor, vocab: int) -> torch.Tensor:
        """[A, 1, V] float64: every token's bonus for the utterances ``act`` in their current graph states."""
        a = act.cpu().numpy()
        return self.bias.bonus(self.bias_state[a, None], vocab, self.device, a)

    def _prepare_masks(self, vocab: int) -> None:
        self.vocab = vocab
        self.suppress, self.forbid = frame_masks(self.suppress_in, self.grammar, vocab, self.blank, self.device)

    def _mask(self, act: torch.Tensor) -> Optional[torch.Tensor]:
        mask = None if self.suppress is None else self.suppress[act]  # [A, V]
        if self.forbid is not None:
            rule = self.forbid[self.inside[act].long()]  # [A, V]
            mask = rule if mask is None else mask | rule
        return None if mask is None else mask.unsqueeze(1)  # [A, 1, V]


@torch.inference_mode()
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
    if suppress_mask is not None and (suppress_mask.dim() != 2 or suppress_mask.size(0) != batch):
        raise ValueError(
            f"suppress_mask must have shape (batch, vocab) with batch={batch}, got {tuple(suppress_mask.shape)}"
        )
    pred = PredictionNet(decoder, device)
    joint = JointScorer(joint_network, pred.blank_id, blank_penalty)
    bias = BiasingSlots.open(biasing, batch)  # [biasing] None = no list
    search = GreedySearch(pred, joint, batch, max_sym_per_frame, suppress_mask, span_grammar, device, bias=bias)
    emitted = search.run(joint.enc(encoder_out), torch.tensor(lens, device=device))  # [E, 3]
    for utt, tok, t in emitted.tolist():
        hyps[utt].append(tok)
        frames[utt].append(t)
    return (hyps, frames) if return_frames else hyps
