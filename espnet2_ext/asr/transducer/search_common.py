"""Pieces shared by the batched transducer searches (greedy and modified beam search).

``PredictionNet`` steps ESPnet's recurrent ``TransducerDecoder`` one label at a time for any subset of a batch of
hypotheses; ``JointScorer`` splits ESPnet's ``JointNetwork`` so the encoder projection runs once per utterance
and the decoder projection once per new decoder output, instead of once per (frame, hypothesis) pair.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

# ESPnet decoder state: (h, c) with shapes (num_layers, N, hidden); c is None for a GRU.
DecState = Tuple[torch.Tensor, Optional[torch.Tensor]]


@dataclass
class Hypothesis:
    """One search result: ``yseq`` holds the emitted tokens (no leading blank); ``score`` is the log-probability
    (summed over the merged alignments in modified beam search); ``frames[i]`` is the encoder frame at which
    ``yseq[i]`` was emitted (on a merge, the frames of the best-scoring alignment are kept)."""

    yseq: List[int]
    score: float
    frames: List[int] = field(default_factory=list)


def index_state(state: DecState, idx: torch.Tensor) -> DecState:
    """States of the hypotheses ``idx`` (a copy)."""
    h, c = state  # [num_layers, N, hidden] each (c may be None)
    return h.index_select(1, idx), (c.index_select(1, idx) if c is not None else None)  # [num_layers, len(idx), hidden]


def assign_state(state: DecState, idx: torch.Tensor, new: DecState) -> None:
    """Write ``new`` into the rows ``idx`` of ``state`` in place."""
    state[0].index_copy_(1, idx, new[0])  # new[0]: [num_layers, len(idx), hidden]
    if state[1] is not None:
        state[1].index_copy_(1, idx, new[1])


class PredictionNet:
    """Single-label steps of an ESPnet ``TransducerDecoder`` (embedding + stacked RNN) on a batch.

    For an LSTM decoder in eval mode the step is computed here from the decoder's own weights (the same LSTM
    equations), which avoids the per-call setup of ``nn.LSTM`` (oneDNN: ~1 ms per call for a handful of rows,
    measured; see benchmark/README.md). The part of the first layer that depends on the label alone,
    ``W_ih @ embed(label) + b_ih``, is cached per label for the whole vocabulary (``input_gates``): the
    prediction network's output itself depends on the whole label history, so that is the only cache a
    recurrent decoder allows. Other decoders (GRU, training mode with dropout) use ESPnet's ``rnn_forward``.
    """

    def __init__(self, decoder: torch.nn.Module, device: torch.device):
        self.decoder = decoder
        # ESPnet's decoder allocates its states on ``decoder.device``; its own search sets it the same way.
        if hasattr(decoder, "set_device"):
            decoder.set_device(device)
        self.blank_id = int(decoder.blank_id)
        self.device = device
        self.layers = _plain_lstm_layers(decoder)
        self.input_gates = _input_gate_table(decoder, self.layers[0]) if self.layers else None  # [V, 4H]
        self.w_hh_t = [m.weight_hh_l0.t() for m in self.layers]  # [H, 4H] views, made once

    def start(self, n: int) -> Tuple[torch.Tensor, DecState]:
        """Decoder output and state after the start symbol (blank) for ``n`` hypotheses (computed once)."""
        tokens = torch.full((1,), self.blank_id, dtype=torch.long, device=self.device)  # [1]
        out, (h, c) = self.step(tokens, self.decoder.init_state(1))  # out: [1, D_dec]
        return out.expand(n, -1).contiguous(), (
            h.expand(-1, n, -1).contiguous(),
            None if c is None else c.expand(-1, n, -1).contiguous(),
        )

    def step(self, tokens: torch.Tensor, state: DecState) -> Tuple[torch.Tensor, DecState]:
        """Feed one label per hypothesis: tokens (N,) -> output (N, D_dec), new state."""
        if self.layers:
            return self._lstm_step(tokens, state)
        emb = self.decoder.embed(tokens.unsqueeze(1))  # [N, 1, D_emb]
        out, new_state = self.decoder.rnn_forward(emb, state)  # out: [N, 1, D_dec]
        return out[:, 0], new_state  # [N, D_dec]

    def _lstm_step(self, tokens: torch.Tensor, state: DecState) -> Tuple[torch.Tensor, DecState]:
        h, c = state  # [L, N, H] each
        hs, cs = [], []
        x = None
        for i, lstm in enumerate(self.layers):
            if i == 0:
                gates = self.input_gates[tokens]  # [N, 4H], cached W_ih @ embed(token) + b_ih + b_hh
            else:
                gates = torch.nn.functional.linear(x, lstm.weight_ih_l0, lstm.bias_ih_l0).add_(lstm.bias_hh_l0)
            gates = torch.addmm(gates, h[i], self.w_hh_t[i])  # [N, 4H]
            g4 = gates.view(gates.size(0), 4, -1)  # [N, 4, H]: input, forget, cell, output gates
            act = torch.sigmoid(g4)  # [N, 4, H] (the cell slot is unused)
            c_new = torch.addcmul(act[:, 1] * c[i], act[:, 0], torch.tanh(g4[:, 2]))  # [N, H]
            x = act[:, 3] * torch.tanh(c_new)  # [N, H]
            hs.append(x)
            cs.append(c_new)
        if len(hs) == 1:
            return x, (x.unsqueeze(0), c_new.unsqueeze(0))  # out: [N, H]; state: [1, N, H] each
        return x, (torch.stack(hs), torch.stack(cs))  # out: [N, H]; state: [L, N, H] each


def _plain_lstm_layers(decoder: torch.nn.Module) -> List[torch.nn.LSTM]:
    """The decoder's single-layer ``nn.LSTM`` modules when the fast step reproduces ``rnn_forward`` (LSTM, eval
    mode, no projection, biases present, batch_first); [] otherwise."""
    layers = getattr(decoder, "decoder", None)
    if getattr(decoder, "dtype", None) != "lstm" or decoder.training or layers is None:
        return []
    ok = all(
        isinstance(m, torch.nn.LSTM)
        and m.num_layers == 1
        and m.bias
        and not m.bidirectional
        and m.proj_size == 0
        and m.batch_first
        for m in layers
    )
    return list(layers) if ok and len(layers) > 0 else []


_GATE_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _input_gate_table(decoder: torch.nn.Module, lstm: torch.nn.LSTM) -> torch.Tensor:
    """[V, 4H] first-layer input gates per label plus the recurrent bias, cached per decoder until its weights
    change."""
    tensors = (decoder.embed.weight, lstm.weight_ih_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    key = tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)
    hit = _GATE_TABLES.get(decoder)
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.no_grad():
        table = torch.nn.functional.linear(decoder.embed.weight, lstm.weight_ih_l0, lstm.bias_ih_l0)  # [V, 4H]
        table += lstm.bias_hh_l0
    _GATE_TABLES[decoder] = (key, table)
    return table


class JointScorer:
    """Joint network with the encoder/decoder projections hoisted out of the per-frame loop when possible.

    Works with ``espnet2.asr_transducer.joint_network.JointNetwork`` (projections ``lin_enc``/``lin_dec`` and
    ``forward(..., no_projection=True)``); any other module is called as ``joint(enc, dec)`` each step.
    """

    def __init__(self, joint_network: torch.nn.Module, blank_id: int = 0, blank_penalty: float = 0.0):
        self.joint = joint_network
        self.split = all(hasattr(joint_network, a) for a in ("lin_enc", "lin_dec", "lin_out"))
        # ESPnet's JointNetwork itself: its forward is act(enc + dec) -> lin_out, called here without the three
        # module dispatches per frame (tanh inline when that is the activation)
        self.plain = (
            self.split and type(joint_network).__name__ == "JointNetwork" and hasattr(joint_network, "joint_activation")
        )
        act = getattr(joint_network, "joint_activation", None)
        self.act = torch.tanh if isinstance(act, torch.nn.Tanh) else act
        self.out_host = None
        if self.plain:  # looked up once, not through nn.Module.__getattr__ every frame
            self.out = (joint_network.lin_out.weight, joint_network.lin_out.bias)
            w, b = (None if t is None else t.detach() for t in self.out)
            if self.act is torch.tanh and b is not None and on_host(w, b):  # float32 on the CPU: see ``_host_logits``
                self.out_host = (w.t().contiguous().numpy(), b.numpy(), w, b)  # [D_joint, V], [V]; as torch
        self.blank_id, self.blank_penalty = int(blank_id), check_blank_penalty(blank_penalty)

    def enc(self, enc_out: torch.Tensor) -> torch.Tensor:
        return self.joint.lin_enc(enc_out) if self.split else enc_out  # [B, T, D_enc] -> [B, T, D_joint] if split

    def dec(self, dec_out: torch.Tensor) -> torch.Tensor:
        if self.plain:
            lin = self.joint.lin_dec
            return torch.nn.functional.linear(dec_out, lin.weight, lin.bias)  # [N, D_dec] -> [N, D_joint]
        return self.joint.lin_dec(dec_out) if self.split else dec_out  # [N, D_dec] -> [N, D_joint] if split

    def logits(self, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        if self.out_host is not None and on_host(enc, dec):
            return self._host_logits(enc, dec)
        if self.plain:
            hidden = (enc + dec).tanh_() if self.act is torch.tanh else self.act(enc + dec)  # [..., D_joint]
            out = torch.nn.functional.linear(hidden, *self.out)  # [..., V]
            if self.blank_penalty:
                out[..., self.blank_id] -= self.blank_penalty  # a fresh tensor: in place is safe
            return out
        if self.split:
            out = self.joint(enc, dec, no_projection=True)  # [N, D_joint] x 2 -> [N, V]
        else:
            out = self.joint(enc, dec)  # [N, V]
        if self.blank_penalty:
            # icefall's blank_penalty: a model that over-predicts blank deletes words; lowering the blank logit
            # before the softmax trades those deletions for insertions (tuned on dev)
            out = out.clone()
            out[..., self.blank_id] -= self.blank_penalty
        return out

    def _host_logits(self, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        """``logits`` of ESPnet's tanh joint on the CPU: tanh(enc + dec) in numpy (torch 2.9's float32 tanh takes ~2.6
        ns per element on this AMD CPU, numpy's ~0.4 ns); the output product too for a few rows (a stream's beam),
        where MKL's small-row sgemm through torch costs about twice numpy's OpenBLAS (benchmark/README.md, third
        pass). Both kernels are within an ulp or two of each other."""
        w, b, w_t, b_t = self.out_host
        hidden = np.add(enc.numpy(), dec.numpy())  # [..., D_joint]
        np.tanh(hidden, out=hidden)
        rows = hidden.reshape(-1, hidden.shape[-1])  # [rows, D_joint]
        if rows.size * b.size <= ONE_THREAD_GEMM:
            out = rows @ w  # [rows, V]
            out += b
        else:  # torch's product, under torch's thread setting
            out = torch.nn.functional.linear(torch.from_numpy(rows), w_t, b_t).numpy()  # [rows, V]
        if self.blank_penalty:
            out[:, self.blank_id] -= self.blank_penalty
        return torch.from_numpy(out.reshape(hidden.shape[:-1] + (-1,)))


# Whether the searches may compute on small CPU arrays with numpy instead of torch (``on_host``); False: torch
# throughout, as on a GPU (the tests run both)
HOST_NUMPY = True


def on_host(*tensors: torch.Tensor) -> bool:
    """Whether numpy may compute on these tensors in place of torch: float32 on the CPU, outside autograd. A numpy
    call on the searches' small arrays costs about a third of a torch call (torch's dispatch), and some of numpy's
    kernels are faster on this CPU (benchmark/README.md, third pass)."""
    if not HOST_NUMPY:
        return False
    for t in tensors:
        if not t.is_cpu or t.dtype != torch.float32 or t.requires_grad:
            return False
    return True


# OpenBLAS runs a product of m * n * k <= 65536 * 4 multiply-adds on one thread whatever its thread setting
# (interface/gemm.c: SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD); numpy takes the products below it only, so
# numpy's BLAS threads never compete with torch's
ONE_THREAD_GEMM = 65536 * 4


@dataclass(frozen=True)
class SpanGrammar:
    """Well-formed entity spans for a search: ``open_id`` ([NE]) only outside a span, ``close_id`` ([/NE]) only
    inside one, and the ``closing`` tokens ([ENDP], [SCD], ...) only outside one, so every span a hypothesis
    opens is closed before the turn ends. A hypothesis is inside a span when its last open/close token is
    ``open_id``."""

    open_id: int
    close_id: int
    closing: Tuple[int, ...] = ()

    def inside(self, ys: Sequence[int]) -> bool:
        for tok in reversed(ys):
            if tok == self.open_id:
                return True
            if tok == self.close_id:
                return False
        return False

    def forbid_table(self, vocab: int, device: torch.device) -> torch.Tensor:
        """[2, V] bool: the tokens forbidden outside a span (row 0) and inside one (row 1)."""
        out = torch.zeros(2, vocab, dtype=torch.bool, device=device)  # [2, V]
        out[0, self.close_id] = True
        out[1, [self.open_id, *self.closing]] = True
        return out

    def next_inside(self, inside: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Whether each hypothesis is inside a span after emitting ``tokens`` (any shape; -1 or blank = none)."""
        return torch.where(tokens == self.open_id, True, torch.where(tokens == self.close_id, False, inside))

    def forbid(self, hyps: Sequence[Sequence[int]], vocab: int, device: torch.device) -> torch.Tensor:
        """[H, V] bool: True where hypothesis h may not emit the token."""
        inside = torch.tensor([self.inside(y) for y in hyps], dtype=torch.long, device=device)  # [H]
        return self.forbid_table(vocab, device)[inside]  # [H, V]


def check_blank_penalty(value) -> float:
    """A finite float >= 0 (0 = off); anything else is refused with the option's name."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"transducer_conf.blank_penalty must be a number >= 0, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"transducer_conf.blank_penalty must be a finite number >= 0 (0 = off), got {value!r}")
    return v


def check_inputs(encoder_out: torch.Tensor, encoder_lens: torch.Tensor) -> List[int]:
    """Validate (B, T, D) encoder output and (B,) lengths; returns the lengths as a list."""
    if encoder_out.dim() != 3:
        raise ValueError(f"encoder_out must be (B, T, D), got shape {tuple(encoder_out.shape)}")
    lens = [int(x) for x in torch.as_tensor(encoder_lens).reshape(-1).tolist()]
    if len(lens) != encoder_out.size(0):
        raise ValueError(f"encoder_lens has {len(lens)} entries but encoder_out has batch size {encoder_out.size(0)}")
    bad = [(i, n) for i, n in enumerate(lens) if n < 0 or n > encoder_out.size(1)]
    if bad:
        i, n = bad[0]
        raise ValueError(f"encoder_lens[{i}]={n} is outside [0, {encoder_out.size(1)}] (the padded length)")
    return lens


def frame_masks(
    suppress_in: Optional[torch.Tensor],
    grammar: Optional["SpanGrammar"],
    vocab: int,
    blank_id: int,
    device: torch.device,
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """What a search masks every frame, made once the vocabulary is known: (suppress [N, V] bool or None, the span
    grammar's forbid table [2, V] (outside / inside a span) or None)."""
    suppress = (
        None
        if suppress_in is None
        else prepare_suppress_mask(suppress_in, suppress_in.size(0), vocab, blank_id, device)
    )
    return suppress, None if grammar is None else grammar.forbid_table(vocab, device)


def prepare_suppress_mask(
    suppress_mask: Optional[torch.Tensor], batch: int, vocab: int, blank_id: int, device: torch.device
) -> Optional[torch.Tensor]:
    """Validated (B, V) bool mask on ``device`` with the blank column cleared; None when nothing is suppressed."""
    if suppress_mask is None:
        return None
    if suppress_mask.dtype != torch.bool:
        raise ValueError(f"suppress_mask must be a bool tensor, got {suppress_mask.dtype}")
    if tuple(suppress_mask.shape) != (batch, vocab):
        raise ValueError(
            f"suppress_mask must have shape (batch, vocab)=({batch}, {vocab}), got {tuple(suppress_mask.shape)}"
        )
    mask = suppress_mask.to(device=device, copy=True)  # [B, V] bool
    mask[:, blank_id] = False  # blank must stay available, otherwise a frame could have no way forward
    return mask if bool(mask.any()) else None


def masked_log_probs(logits: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """log_softmax over the allowed tokens only, in float64 (scores sum thousands of these): suppressed tokens
    (``mask`` True) leave the softmax, as ESPnet's searches see them through the masked joint, so an extended
    model with its new tasks off scores exactly like its base. logits: [H, V], mask: [H, V] or None."""
    return masked_log_softmax(logits, mask).double()  # [H, V] float64


def masked_log_softmax(logits: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """``masked_log_probs`` still in float32: adding it to float64 scores gives the same float64 sums (the
    conversion is exact) without a separate conversion of the [H, V] array."""
    logits = logits.float()
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))  # [H, V]
    return torch.log_softmax(logits, dim=-1)  # [H, V] float32
