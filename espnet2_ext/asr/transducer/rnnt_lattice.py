"""Log-space forward-backward over the RNN-T lattice, and pruning bounds.

The lattice of one utterance has nodes (t, u), 0 <= t < T_b, 0 <= u <= U_b.
From node (t, u) a path either emits label u+1 (log-prob ``px[b, t, u]``,
moving to (t, u+1)) or emits blank (log-prob ``py[b, t, u]``, moving to
(t+1, u)).  A complete path starts at (0, 0) and ends with the blank out of
(T_b-1, U_b); this is the standard RNN-T topology of Graves (2012), the same
one computed by ``torchaudio.functional.rnnt_loss``.

The recursion is vectorised over the batch and over one anti-diagonal
(t + u = d) at a time, so the Python loop has T + U steps and each step is a
handful of (B, U+1) tensor ops.  Working on anti-diagonals (instead of a
cumulative-sum trick along u) keeps the recursion exact with ``-inf`` entries,
which the pruned lattice is full of.

Gradients are not obtained by autograd through the loop: the custom
``autograd.Function`` runs the backward (beta) recursion itself, and the
derivative of the log-likelihood w.r.t. ``px``/``py`` is the arc occupation
probability.  Those occupation probabilities also give the pruning bounds
(Kuang et al., 2022, "Pruned RNN-T for fast, memory-efficient ASR training").
"""

from typing import Dict, List, Tuple

import numpy as np
import torch

NEG_INF = float("-inf")


def _skew_masked(x: torch.Tensor, t_lens: torch.Tensor, u_lens: torch.Tensor, emit: bool) -> torch.Tensor:
    """(B, T, U1) -> (T+U1-1, B, U1) with out[d, b, u] = x[b, d-u, u].

    Arcs outside utterance b's lattice (t < 0, t >= T_b, u > U_b, and for
    label arcs u = U_b) become -inf, so padding never enters the recursion.
    """
    B, T, U1 = x.shape
    D = T + U1 - 1
    d = torch.arange(D, device=x.device).view(D, 1, 1)  # [D, 1, 1]
    u = torch.arange(U1, device=x.device).view(1, 1, U1)  # [1, 1, U1]
    t = d - u  # (D, 1, U1)
    out = x.reshape(B, T * U1)[:, (t.clamp(0, T - 1) * U1 + u).view(-1)].view(B, D, U1)  # [B, D, U1]
    u_max = u_lens.view(1, B, 1) - (1 if emit else 0)  # [1, B, 1]
    valid = (t >= 0) & (t < t_lens.view(1, B, 1)) & (u <= u_max)  # (D, B, U1)
    return out.permute(1, 0, 2).masked_fill(~valid, NEG_INF).contiguous()  # [D, B, U1]


def _unskew(xs: torch.Tensor, T: int) -> torch.Tensor:
    """(D, B, U1) -> (B, T, U1) with out[b, t, u] = xs[t+u, b, u]."""
    D, B, U1 = xs.shape
    t = torch.arange(T, device=xs.device).view(T, 1)  # [T, 1]
    u = torch.arange(U1, device=xs.device).view(1, U1)  # [1, U1]
    idx = ((t + u) * U1 + u).view(-1)  # [T*U1], flat index of (d=t+u, u)
    return xs.permute(1, 0, 2).reshape(B, D * U1)[:, idx].view(B, T, U1)  # [B, T, U1]


def _forward_alpha(pxs: torch.Tensor, pys: torch.Tensor) -> torch.Tensor:
    """alpha[d, b, u] = log-prob of all partial paths from (0,0) to (d-u, u)."""
    D, B, U1 = pxs.shape
    alpha = pxs.new_full((D, B, U1), NEG_INF)  # [D, B, U1]
    alpha[0, :, 0] = 0.0
    for d in range(1, D):
        prev, cur = alpha[d - 1], alpha[d]  # [B, U1] each; cur is a view into alpha
        torch.add(prev, pys[d - 1], out=cur)  # blank from (t-1, u)
        if U1 > 1:
            emit = prev[:, :-1] + pxs[d - 1, :, :-1]  # label from (t, u-1)
            torch.logaddexp(cur[:, 1:], emit, out=cur[:, 1:])
    return alpha


def _backward_beta(pxs: torch.Tensor, pys: torch.Tensor, end_diag: List[int], u_lens: List[int]) -> torch.Tensor:
    """beta[d, b, u] = log-prob of completing a path from (d-u, u).

    Diagonal D (one past the last real one) holds the virtual end node
    (T_b, U_b) reached by the final blank; it is set to 0 (log 1) per utterance
    right after its diagonal has been computed.
    """
    D, B, U1 = pxs.shape
    beta = pxs.new_full((D + 1, B, U1), NEG_INF)  # [D+1, B, U1]
    inject: Dict[int, Tuple[List[int], List[int]]] = {}
    for b, (e, u) in enumerate(zip(end_diag, u_lens)):
        inject.setdefault(e, ([], []))
        inject[e][0].append(b)
        inject[e][1].append(u)

    def _set_end(d: int) -> None:
        if d in inject:
            bs, us = inject[d]
            beta[d, bs, us] = 0.0

    _set_end(D)
    for d in range(D - 1, -1, -1):
        nxt, cur = beta[d + 1], beta[d]  # [B, U1] each; cur is a view into beta
        torch.add(nxt, pys[d], out=cur)  # blank to (t+1, u)
        if U1 > 1:
            emit = nxt[:, 1:] + pxs[d, :, :-1]  # label to (t, u+1)
            torch.logaddexp(cur[:, :-1], emit, out=cur[:, :-1])
        _set_end(d)
    return beta


class _LatticeLogLik(torch.autograd.Function):
    """log p(y|x) over the RNN-T lattice; backward uses occupation probabilities."""

    @staticmethod
    def forward(ctx, px, py, t_lens, u_lens, with_occupancy: bool):  # type: ignore[override]
        B, T, U1 = px.shape  # px, py: [B, T, U1]
        pxs = _skew_masked(px.detach(), t_lens, u_lens, emit=True)  # [D, B, U1], D = T+U1-1
        pys = _skew_masked(py.detach(), t_lens, u_lens, emit=False)  # [D, B, U1]
        alpha = _forward_alpha(pxs, pys)  # [D, B, U1]

        # The final blank leaves (T_b-1, U_b), which lies on diagonal T_b-1+U_b.
        end_d, bidx = t_lens - 1 + u_lens, torch.arange(B, device=px.device)  # [B] each
        loglik = alpha[end_d, bidx, u_lens] + pys[end_d, bidx, u_lens]  # [B]

        if with_occupancy:
            beta = _backward_beta(pxs, pys, (end_d + 1).tolist(), u_lens.tolist())  # [D+1, B, U1]
            # Arc posterior = alpha(source) * arc * beta(target) / total; both
            # targets, (t+1, u) and (t, u+1), lie on the next diagonal.
            fwd = alpha - loglik.view(1, B, 1)  # [D, B, U1]
            occ_py = torch.exp(fwd + pys + beta[1:])  # [D, B, U1]
            occ_px = torch.zeros_like(occ_py)  # [D, B, U1]; last column (u = U1-1) has no label arc
            if U1 > 1:
                occ_px[:, :, :-1] = torch.exp(fwd[:, :, :-1] + pxs[:, :, :-1] + beta[1:, :, 1:])  # [D, B, U1-1]
            occ_px, occ_py = _unskew(occ_px, T), _unskew(occ_py, T)  # [B, T, U1] each
            # An unreachable end (loglik = -inf) would give nan: no gradient there.
            dead = ~torch.isfinite(loglik).view(B, 1, 1)  # [B, 1, 1]
            occ_px = occ_px.masked_fill(dead, 0.0)
            occ_py = occ_py.masked_fill(dead, 0.0)
        else:
            occ_px = occ_py = px.new_zeros(0)  # [0]: no occupancy computed
        ctx.save_for_backward(occ_px, occ_py)
        ctx.mark_non_differentiable(occ_px, occ_py)
        return loglik, occ_px, occ_py

    @staticmethod
    def backward(ctx, g_loglik, _g_px, _g_py):  # type: ignore[override]
        occ_px, occ_py = ctx.saved_tensors
        if occ_px.numel() == 0:
            raise RuntimeError("rnnt_lattice_loglik was run without occupancy; cannot backprop")
        g = g_loglik.view(-1, 1, 1)  # [B, 1, 1]
        return g * occ_px, g * occ_py, None, None, None  # grads of px, py: [B, T, U1] each


def rnnt_lattice_loglik(
    px: torch.Tensor,
    py: torch.Tensor,
    t_lens: torch.Tensor,
    u_lens: torch.Tensor,
    return_occupancy: bool = False,
):
    """Total log-probability of all alignments, per utterance.

    Args:
        px: (B, T, U+1) log-prob of emitting label u+1 at node (t, u).
        py: (B, T, U+1) log-prob of blank at node (t, u).
        t_lens: (B,) frames per utterance (>= 1).
        u_lens: (B,) labels per utterance (0 <= u_lens <= U).
        return_occupancy: also return (occ_px, occ_py), the posterior
            probability of each arc (= d loglik / d px, d loglik / d py).

    Entries outside each utterance's lattice are ignored (treated as -inf), so
    padding may hold anything finite.  Inputs are upcast to float32 when
    they are half/bfloat16 (the recursion needs the range and precision).

    Returns:
        loglik (B,), or (loglik, (occ_px, occ_py)) with return_occupancy.
    """
    if px.dim() != 3 or py.shape != px.shape:
        raise ValueError(f"px and py must both be (B, T, U+1); got {tuple(px.shape)}, {tuple(py.shape)}")
    B, T, U1 = px.shape
    t_lens = t_lens.to(device=px.device, dtype=torch.long)
    u_lens = u_lens.to(device=px.device, dtype=torch.long)
    if t_lens.shape != (B,) or u_lens.shape != (B,):
        raise ValueError(f"t_lens and u_lens must be shape ({B},)")
    if B and (int(t_lens.min()) < 1 or int(t_lens.max()) > T):
        raise ValueError(f"t_lens must lie in [1, {T}]; got {t_lens.tolist()}")
    if B and (int(u_lens.min()) < 0 or int(u_lens.max()) > U1 - 1):
        raise ValueError(f"u_lens must lie in [0, {U1 - 1}]; got {u_lens.tolist()}")
    if px.dtype in (torch.float16, torch.bfloat16):
        px, py = px.float(), py.float()
    needs_grad = torch.is_grad_enabled() and (px.requires_grad or py.requires_grad)
    loglik, occ_px, occ_py = _LatticeLogLik.apply(  # [B]; occ_px, occ_py: [B, T, U1] or [0]
        px, py, t_lens, u_lens, bool(return_occupancy or needs_grad)
    )
    if return_occupancy:
        return loglik, (occ_px, occ_py)
    return loglik


def prune_bounds(
    occ_px: torch.Tensor,
    occ_py: torch.Tensor,
    t_lens: torch.Tensor,
    u_lens: torch.Tensor,
    prune_range: int,
) -> torch.Tensor:
    """Per-frame window starts s_t for the pruned lattice, shape (B, T).

    The window [s_t, s_t + prune_range) at frame t is placed where the nodes'
    occupation probability (simple-loss posterior) is largest, then adjusted so
    a complete path stays possible:

    * 0 <= s_t <= max(0, U_b - prune_range + 1), so windows stay inside [0, U_b]
      whenever U_b >= prune_range - 1;
    * s_0 = 0 (paths start at node (0, 0)) and s_{T_b-1} is the upper limit,
      so the last window contains U_b; s_t <= t * (prune_range - 1);
    * s_t is non-decreasing and s_{t+1} - s_t <= prune_range - 1, so the blank
      out of frame t lands in frame t+1's window.

    When U_b > T_b * (prune_range - 1) no such bounds exist (the pruned loss
    of that utterance is +inf); bounds are then still monotone and in range.
    Frames t >= T_b repeat the upper limit.
    """
    if prune_range < 2:
        raise ValueError(f"prune_range must be >= 2 (a window of 1 can emit no label); got {prune_range}")
    B, T, U1 = occ_px.shape  # occ_px, occ_py: [B, T, U1]
    device = occ_px.device
    t_lens = t_lens.to(device=device, dtype=torch.long)
    u_lens = u_lens.to(device=device, dtype=torch.long)
    upper = (u_lens - prune_range + 1).clamp(min=0).view(B, 1)  # [B, 1]
    # node: [B, T, U1]
    node = (occ_px + occ_py).detach()  # prob. that a path passes node (t, u)
    n_start = max(U1 - prune_range + 1, 1)
    if U1 > prune_range:
        csum = torch.nn.functional.pad(node.cumsum(dim=2), (1, 0))  # [B, T, U1+1]
        window = csum[:, :, prune_range:] - csum[:, :, :-prune_range]  # (B, T, n_start)
        starts = torch.arange(n_start, device=device).view(1, 1, n_start)  # [1, 1, n_start]
        window = window.masked_fill(starts > upper.unsqueeze(2), NEG_INF)  # [B, T, n_start]
        s = window.argmax(dim=2)  # [B, T]
    else:
        s = torch.zeros(B, T, dtype=torch.long, device=device)  # [B, T]
    # Clamp to the nodes a path can use: at most t*(R-1) labels by frame t, and
    # enough by frame t to still reach U_b at frame T_b-1.  Both limits rise
    # with t, so the cummax below keeps them; frames t >= T_b end up at `upper`.
    t = torch.arange(T, device=device).view(1, T)  # [1, T]
    step = (prune_range - 1) * t  # [1, T]
    hi = torch.minimum(step, upper)  # [B, T]
    lo = (upper - (prune_range - 1) * (t_lens.view(B, 1) - 1) + step).clamp(min=0)  # [B, T]
    lo = torch.minimum(lo, upper)
    s = torch.maximum(torch.minimum(s, hi), lo)  # [B, T]
    s = torch.cummax(s, dim=1).values  # monotone non-decreasing
    # s_t >= s_{t'} - (t'-t)(R-1) for all t' > t (no gap between windows): a
    # reverse running max of s_t - t(R-1), mapped back.  Raising s_t this way
    # keeps it monotone and below both t(R-1) and `upper`.
    shifted = s - step  # [B, T]
    s = torch.flip(torch.cummax(torch.flip(shifted, [1]), dim=1).values, [1]) + step  # [B, T]
    return s


def lattice_loglik_host(px: np.ndarray, py: np.ndarray, u_lens: np.ndarray) -> np.ndarray:
    """``rnnt_lattice_loglik`` in numpy for rows that share their frames (a span's candidates): px, py [N, W, U+1]
    log-probabilities of the label / blank arc out of node (t, u), u_lens [N] -> [N], every alignment ending with
    the blank out of (W-1, U_n). One vectorised step per anti-diagonal d = t + u, as there, without torch's
    per-call cost (~20 small calls a diagonal there, a handful here). Nodes past a row's U_n need no masking:
    paths never return to a lower u, so they never reach (W-1, U_n)."""
    N, W, U1 = px.shape
    D = W + U1 - 1
    u = np.arange(U1)
    t_node = np.arange(D)[:, None] - u  # t_node: [D, U+1], the frame of node (d, u)
    on_lattice = (t_node >= 0) & (t_node < W)
    # into node (t, u): the blank out of (t-1, u), the label out of (t, u-1)
    blank_in = py[:, np.clip(t_node - 1, 0, W - 1), u]  # blank_in: [N, D, U+1]
    blank_in[:, ~(on_lattice & (t_node >= 1))] = -np.inf
    label_in = np.full((N, D, U1), -np.inf, dtype=px.dtype)  # label_in: [N, D, U+1]
    label_in[:, :, 1:] = px[:, np.clip(t_node[:, 1:], 0, W - 1), u[:-1]]
    label_in[:, ~on_lattice] = -np.inf
    alpha = np.full((N, U1), -np.inf)  # alpha: [N, U+1], the current diagonal
    alpha[:, 0] = 0.0
    end = W - 1 + u_lens  # end: [N], the diagonal of (W-1, U_n)
    out = np.full(N, -np.inf)
    rows = np.arange(N)
    for d in range(D):
        if d:
            new = alpha + blank_in[:, d]
            new[:, 1:] = np.logaddexp(new[:, 1:], alpha[:, :-1] + label_in[:, d, 1:])
            alpha = new
        done = rows[end == d]
        if done.size:
            out[done] = alpha[done, u_lens[done]] + py[done, W - 1, u_lens[done]]
    return out
