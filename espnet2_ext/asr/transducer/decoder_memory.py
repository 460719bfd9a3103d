"""Per-hypothesis prediction-network memory of the batched transducer searches (``DecoderMemory``): each
hypothesis's joint-projected decoder output and RNN state, gathered and stepped as a batch every frame.
"""

from __future__ import annotations

import weakref
from typing import Optional

import numpy as np
import torch

from espnet2_ext.asr.transducer.search_common import JointScorer, PredictionNet, assign_state, index_state, on_host

# Per-hypothesis decoder memory of a batch (``DecoderMemory``): a [N, W] tensor (fused layout) or
# (dec [N, D_joint], (h, c) [L, N, H]) (generic layout).
Memory = object


class DecoderMemory:
    """What the searches keep per hypothesis of the prediction network: its joint-projected output (read by the
    joint every frame) and its RNN state, for a batch of hypotheses; ``step`` advances any subset by one label.

    Fused layout, for a single-layer LSTM in eval mode and ESPnet's ``JointNetwork``: one [N, D_joint + 4H + H]
    tensor holding per hypothesis ``lin_dec(h)``, ``W_hh @ h`` (the recurrent half of its next step's gates) and
    the cell ``c``. Both halves that read ``h`` come from one matrix product when ``h`` is made, so a step is one
    gather of the parents' rows, the gate arithmetic and one matrix product, and ``h`` itself is never stored
    (a parent with two symbol children is multiplied once, not twice). Otherwise (GRU,
    several layers, another joint) the generic layout uses ``PredictionNet.step`` and ``JointScorer.dec``.
    """

    def __init__(self, pred: PredictionNet, joint: "JointScorer"):
        self.pred, self.joint = pred, joint
        self.fused = _fused_weights(pred, joint)  # (W [D_joint + 4H, H], b [D_joint + 4H]) or None
        self.host = None
        if self.fused is not None:
            self.d_joint = joint.joint.lin_dec.weight.size(0)
            self.hidden = pred.layers[0].hidden_size
            self.parts = (self.d_joint, 4 * self.hidden, self.hidden)  # the columns of a memory row
            # float32 on the CPU: the gate arithmetic and the row copies in numpy (``_host_step``)
            self.host = _host_tables(pred, joint, self.fused) if on_host(self.fused[0]) else None

    def start(self, n: int) -> Memory:
        """Memory after the start symbol (blank) for ``n`` hypotheses."""
        out, state = self.pred.start(1)  # out: [1, D_dec]; state: [L, 1, H] each
        if self.fused is None:
            dec = self.joint.dec(out).expand(n, -1).contiguous()  # [n, D_joint]
            h, c = state
            return dec, (h.expand(-1, n, -1).contiguous(), None if c is None else c.expand(-1, n, -1).contiguous())
        row = torch.cat([self._project(out), state[1][0]], dim=1)  # [1, W]
        return row.expand(n, -1).contiguous()  # [n, W]

    def dec(self, mem: Memory) -> torch.Tensor:
        """[N, D_joint] joint-projected decoder outputs (a view in the fused layout)."""
        return mem[0] if self.fused is None else mem[:, : self.d_joint]

    def head(self, mem: Memory, m: int) -> Memory:
        """The first ``m`` hypotheses."""
        if self.fused is None:
            dec, (h, c) = mem
            return dec[:m], (h[:, :m], None if c is None else c[:, :m])
        return mem[:m]

    def step(self, mem: Memory, parents: torch.Tensor, tokens: torch.Tensor) -> Memory:
        """Memory of the hypotheses ``parents`` ([E] rows of ``mem``) each extended by ``tokens`` ([E])."""
        if self.fused is None:
            dec, state = mem
            out, new_state = self.pred.step(tokens, index_state(state, parents))  # out: [E, D_dec]
            return self.joint.dec(out), new_state
        if self.host is not None:
            return self._host_step(mem, parents, tokens)
        _, hw, c_prev = mem.index_select(0, parents).split_with_sizes(
            self.parts, dim=1
        )  # [E, D_joint], [E, 4H], [E, H]
        g4 = self.pred.input_gates.index_select(0, tokens).add_(hw).view(-1, 4, self.hidden)  # [E, 4, H]: i, f, g, o
        i, f, _, o = torch.sigmoid(g4).unbind(1)  # [E, H] each (the cell slot is unused)
        c = torch.addcmul(f * c_prev, i, torch.tanh(g4.select(1, 2)))  # [E, H]
        return torch.cat([self._project(o * torch.tanh(c)), c], dim=1)  # [E, W]

    def _host_step(self, mem: torch.Tensor, parents: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``step`` of the fused layout in numpy, for float32 on the CPU: the same equations, where a numpy call on
        these small arrays costs about a third of a torch call (dispatch); the product stays torch's (MKL, under
        torch's thread setting)."""
        d, g, hid = self.parts
        weight_t, bias, gates = self.host  # [H, D_joint + 4H], [D_joint + 4H], [V, 4H]
        rows = mem.numpy()[parents.numpy()]  # [E, W]: the parents' lin_dec(h), W_hh @ h, c
        pre = gates[tokens.numpy()]  # [E, 4H]: input gates of the tokens (a copy)
        pre += rows[:, d : d + g]
        act = np.exp(np.negative(pre))
        act += 1.0
        np.reciprocal(act, out=act)  # sigmoid of the four gate blocks i, f, g, o (the cell block is unused)
        c = act[:, hid : 2 * hid] * rows[:, d + g :]  # f * c_prev
        c += act[:, :hid] * np.tanh(pre[:, 2 * hid : 3 * hid])  # + i * tanh(g)
        h = act[:, 3 * hid :] * np.tanh(c)  # [E, H]
        out = torch.empty(len(h), d + g + hid)  # [E, W]
        torch.addmm(bias, torch.from_numpy(h), weight_t, out=out[:, : d + g])  # [lin_dec(h), W_hh @ h]
        out.numpy()[:, d + g :] = c
        return out

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        """[lin_dec(h), W_hh @ h]: [E, H] -> [E, D_joint + 4H]."""
        return torch.nn.functional.linear(h, *self.fused)

    def gather(self, mem: Memory, src: torch.Tensor, rows: torch.Tensor, new: Memory) -> Memory:
        """The next frame's memory: rows ``src`` of ``mem``, then ``new`` written over the rows ``rows`` (one copy of
        the kept rows, not a concatenation of old and new first)."""
        if self.host is not None:  # numpy: a third of torch's per-call cost
            out = mem.numpy()[src.numpy()]
            out[rows.numpy()] = new.numpy()
            return torch.from_numpy(out)
        out = self.select(mem, src)
        self.assign(out, rows, new)
        return out

    def select(self, mem: Memory, idx: torch.Tensor) -> Memory:
        """Rows ``idx`` of ``mem`` (a copy)."""
        if self.fused is None:
            dec, state = mem
            return dec.index_select(0, idx), index_state(state, idx)
        if self.host is not None:
            return torch.from_numpy(mem.numpy()[idx.numpy()])
        return mem.index_select(0, idx)

    def assign(self, mem: Memory, rows: torch.Tensor, new: Memory) -> None:
        """Write ``new`` into the rows ``rows`` of ``mem`` in place."""
        if self.fused is None:
            mem[0].index_copy_(0, rows, new[0])
            assign_state(mem[1], rows, new[1])
        else:
            mem.index_copy_(0, rows, new)


_FUSED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _fused_weights(pred: PredictionNet, joint: "JointScorer") -> Optional[tuple]:
    """([lin_dec.weight; W_hh] [D_joint + 4H, H], [lin_dec.bias; 0]) for the fused ``DecoderMemory`` layout, or None
    when it does not apply (not one plain LSTM layer, or not ESPnet's JointNetwork); cached per joint network until
    the weights change."""
    if len(pred.layers) != 1 or not joint.plain:
        return None
    lin, lstm = joint.joint.lin_dec, pred.layers[0]
    tensors = (lin.weight, lstm.weight_hh_l0) + (() if lin.bias is None else (lin.bias,))
    key = (lstm, tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in tensors))
    hit = _FUSED.get(joint.joint)
    if hit is not None and hit[0] == key:
        return hit[1]
    with torch.inference_mode(False), torch.no_grad():  # cached across calls: plain tensors, usable anywhere
        weight = torch.cat([lin.weight, lstm.weight_hh_l0])  # [D_joint + 4H, H]
        bias = torch.zeros(weight.size(0), dtype=weight.dtype, device=weight.device)
        if lin.bias is not None:
            bias[: lin.weight.size(0)] = lin.bias
        fused = (weight, bias)
    _FUSED[joint.joint] = (key, fused)
    return fused


_HOST: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _host_tables(pred: PredictionNet, joint: "JointScorer", fused: tuple) -> tuple:
    """(W^T [H, D_joint + 4H] contiguous (torch), bias (torch), input gates [V, 4H] (numpy)) for
    ``DecoderMemory._host_step``; cached per joint network with the fused weights and gate table they are made from."""
    weight, bias = fused
    hit = _HOST.get(joint.joint)
    if hit is None or hit[0] is not weight or hit[1] is not pred.input_gates:
        with torch.inference_mode(False), torch.no_grad():
            hit = (weight, pred.input_gates, weight.t().contiguous())
        _HOST[joint.joint] = hit
    return hit[2], bias, pred.input_gates.numpy()
