"""Tests for the pure-PyTorch pruned RNN-T loss (espnet2_ext.asr.transducer)."""

import logging
import math

import pytest
import torch
from espnet2.asr_transducer.joint_network import JointNetwork

import espnet2_ext  # noqa: F401  (offline guards before any espnet2 import)
from espnet2_ext.asr.transducer.pruned_rnnt_loss import (
    PrunedRNNTLoss,
    full_rnnt_loss_torchaudio,
    simple_rnnt_logprobs,
    simple_rnnt_loss,
)
from espnet2_ext.asr.transducer.rnnt_lattice import prune_bounds, rnnt_lattice_loglik

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _batch(B, T, U, V, t_lens, u_lens, seed, device="cpu", pad_value=-1):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(1, V, (B, U), generator=g)
    u_lens_t = torch.tensor(u_lens)
    targets = targets.masked_fill(torch.arange(U) >= u_lens_t.view(-1, 1), pad_value)
    return targets.to(device), torch.tensor(t_lens, device=device), u_lens_t.to(device), g


def _reference_loglik(px, py, t_lens, u_lens):
    """Plain double loop over the lattice, one utterance at a time (float64)."""
    out = []
    for b in range(px.shape[0]):
        T, U = int(t_lens[b]), int(u_lens[b])
        a = [[-math.inf] * (U + 1) for _ in range(T)]
        a[0][0] = 0.0
        for t in range(T):
            for u in range(U + 1):
                terms = [a[t][u]] if (t, u) == (0, 0) else []
                if t > 0:
                    terms.append(a[t - 1][u] + float(py[b, t - 1, u]))
                if u > 0:
                    terms.append(a[t][u - 1] + float(px[b, t, u - 1]))
                m = max(terms)
                a[t][u] = m if m == -math.inf else m + math.log(sum(math.exp(x - m) for x in terms))
        out.append(a[T - 1][U] + float(py[b, T - 1, U]))
    return torch.tensor(out, dtype=torch.float64)


# (B, T, U, V, t_lens, u_lens)
SIZES = [
    (1, 5, 0, 4, [5], [0]),  # B=1, empty target
    (1, 6, 3, 5, [6], [3]),
    (4, 9, 5, 7, [9, 4, 7, 1], [5, 0, 2, 1]),  # ragged, incl. U=0 and T=1
    (3, 12, 6, 11, [12, 12, 8], [6, 3, 6]),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", SIZES)
def test_simple_loss_matches_torchaudio(size, device):
    B, T, U, V, t_lens, u_lens = size
    targets, t_lens, u_lens, g = _batch(B, T, U, V, t_lens, u_lens, seed=sum(size[:4]), device=device)
    am = torch.randn(B, T, V, generator=g).mul(2).to(device).requires_grad_()
    lm = torch.randn(B, U + 1, V, generator=g).mul(2).to(device).requires_grad_()

    ours = simple_rnnt_loss(am, lm, targets, t_lens, u_lens, blank_id=0, reduction="none")
    g_ours = torch.autograd.grad(ours.sum(), [am, lm])
    ref = full_rnnt_loss_torchaudio(am[:, :, None, :] + lm[:, None, :, :], targets, t_lens, u_lens, 0, "none")
    g_ref = torch.autograd.grad(ref.sum(), [am, lm])

    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_smoothed_components_match_torchaudio():
    """lm_scale=1 is the LM-only lattice, am_scale=1 the AM + unigram-prior lattice."""
    B, T, U, V = 3, 8, 4, 6
    targets, t_lens, u_lens, g = _batch(B, T, U, V, [8, 5, 6], [4, 2, 0], seed=3)
    am, lm = torch.randn(B, T, V, generator=g), torch.randn(B, U + 1, V, generator=g)

    lm_only = simple_rnnt_loss(am, lm, targets, t_lens, u_lens, lm_scale=1.0, reduction="none")
    ref = full_rnnt_loss_torchaudio(lm[:, None].expand(B, T, U + 1, V), targets, t_lens, u_lens, 0, "none")
    torch.testing.assert_close(lm_only, ref, rtol=1e-4, atol=1e-5)

    real = (torch.arange(U + 1).view(1, -1, 1) <= u_lens.view(-1, 1, 1)).float()
    unigram = (lm.softmax(-1) * real).sum((0, 1)) / real.sum()
    am_only = simple_rnnt_loss(am, lm, targets, t_lens, u_lens, am_scale=1.0, reduction="none")
    logits = (am[:, :, None, :] + unigram.log()).expand(B, T, U + 1, V)
    ref = full_rnnt_loss_torchaudio(logits, targets, t_lens, u_lens, 0, "none")
    torch.testing.assert_close(am_only, ref, rtol=1e-4, atol=1e-5)

    # A mixture is the same interpolation of the three arc log-probs.
    mix = simple_rnnt_logprobs(am, lm, targets, u_lens, 0, lm_scale=0.25, am_scale=0.1)
    parts = [simple_rnnt_logprobs(am, lm, targets, u_lens, 0, *s) for s in [(0, 0), (1.0, 0), (0, 1.0)]]
    for k in range(2):
        expect = 0.65 * parts[0][k] + 0.25 * parts[1][k] + 0.1 * parts[2][k]
        torch.testing.assert_close(mix[k], expect, rtol=1e-5, atol=1e-5)


def test_lattice_matches_double_loop_with_pruned_inf_entries():
    B, T, U1 = 3, 6, 5
    g = torch.Generator().manual_seed(7)
    px = torch.randn(B, T, U1, generator=g, dtype=torch.float64)
    py = torch.randn(B, T, U1, generator=g, dtype=torch.float64)
    keep = torch.rand(B, T, U1, generator=g) > 0.3  # holes like a pruned lattice
    px, py = px.masked_fill(~keep, -math.inf), py.masked_fill(~keep.roll(1, 2), -math.inf)
    py[:, :, -1] = 0.1  # keep the end reachable for at least some utterances
    t_lens, u_lens = torch.tensor([6, 3, 5]), torch.tensor([4, 2, 0])
    ours = rnnt_lattice_loglik(px, py, t_lens, u_lens)
    torch.testing.assert_close(ours, _reference_loglik(px, py, t_lens, u_lens))


def test_lattice_gradcheck_float64():
    B, T, U1 = 3, 4, 4
    g = torch.Generator().manual_seed(1)
    px = torch.randn(B, T, U1, generator=g, dtype=torch.float64, requires_grad=True)
    py = torch.randn(B, T, U1, generator=g, dtype=torch.float64, requires_grad=True)
    t_lens, u_lens = torch.tensor([4, 2, 3]), torch.tensor([3, 3, 0])
    assert torch.autograd.gradcheck(lambda a, b: rnnt_lattice_loglik(a, b, t_lens, u_lens), (px, py))


def test_occupancy_is_a_posterior():
    """Every complete path crosses each frame once by blank, and emits U labels."""
    B, T, U1 = 2, 7, 5
    g = torch.Generator().manual_seed(2)
    px, py = torch.randn(B, T, U1, generator=g), torch.randn(B, T, U1, generator=g)
    t_lens, u_lens = torch.tensor([7, 4]), torch.tensor([4, 2])
    _, (occ_px, occ_py) = rnnt_lattice_loglik(px, py, t_lens, u_lens, return_occupancy=True)
    torch.testing.assert_close(occ_py.sum(2)[0], torch.ones(T))
    torch.testing.assert_close(occ_py.sum(2)[1], torch.tensor([1.0] * 4 + [0.0] * 3))
    torch.testing.assert_close(occ_px.sum((1, 2)), u_lens.float())


def _check_bounds(s, t_lens, u_lens, R):
    upper = (u_lens - R + 1).clamp(min=0)
    assert (s >= 0).all() and (s <= upper.view(-1, 1)).all()
    assert (s[:, 1:] >= s[:, :-1]).all(), "bounds must be non-decreasing in t"
    assert (s[:, 1:] - s[:, :-1] <= R - 1).all(), "a gap would disconnect the lattice"
    assert (s[:, 0] == 0).all()
    last = s.gather(1, (t_lens - 1).view(-1, 1)).squeeze(1)
    assert torch.equal(last, upper), "last frame's window must contain U"
    assert ((s + R - 1) <= torch.maximum(u_lens, torch.full_like(u_lens, R - 1)).view(-1, 1)).all()


@pytest.mark.parametrize("R", [2, 3, 5, 40])
def test_prune_bounds_are_valid(R):
    B, T, U, V = 4, 30, 20, 9
    targets, t_lens, u_lens, g = _batch(B, T, U, V, [30, 30, 17, 11], [20, 7, 17, 0], seed=R)
    am, lm = torch.randn(B, T, V, generator=g) * 3, torch.randn(B, U + 1, V, generator=g) * 3
    _, (occ_px, occ_py) = simple_rnnt_loss(am, lm, targets, t_lens, u_lens, reduction="none", return_occupancy=True)
    _check_bounds(prune_bounds(occ_px, occ_py, t_lens, u_lens, R), t_lens, u_lens, R)
    # An uninformative posterior (all windows tie at the lowest start) must
    # still give bounds that reach U_b by the last frame.
    zeros = torch.zeros_like(occ_px)
    _check_bounds(prune_bounds(zeros, zeros, t_lens, u_lens, R), t_lens, u_lens, R)


def test_prune_bounds_follow_a_sharp_alignment():
    T, U, R = 16, 6, 3
    occ_px, occ_py = torch.zeros(1, T, U + 1), torch.zeros(1, T, U + 1)
    path_u = [min(U, t // 2) for t in range(T)]  # label k emitted at frame 2k
    for t, u in enumerate(path_u):
        occ_py[0, t, u] = 1.0
        if t % 2 == 0 and u < U:
            occ_px[0, t, u] = 1.0
    s = prune_bounds(occ_px, occ_py, torch.tensor([T]), torch.tensor([U]), R)[0]
    for t in range(T):
        nodes = [u for u in range(U + 1) if occ_px[0, t, u] + occ_py[0, t, u] > 0]
        assert all(int(s[t]) <= u < int(s[t]) + R for u in nodes), (t, nodes, s.tolist())


def _model(enc_dim, dec_dim, V, joint_dim, R, seed, **kw):
    torch.manual_seed(seed)
    jn = JointNetwork(V, enc_dim, dec_dim, joint_space_size=joint_dim)
    return PrunedRNNTLoss(enc_dim, dec_dim, V, prune_range=R, **kw), jn


def _full_loss(jn, enc, dec, targets, t_lens, u_lens):
    logits = jn(jn.lin_enc(enc)[:, :, None], jn.lin_dec(dec)[:, None], no_projection=True)
    return full_rnnt_loss_torchaudio(logits, targets, t_lens, u_lens, 0, "none")


@pytest.mark.parametrize("device", DEVICES)
def test_pruned_loss_equals_full_loss_with_wide_range(device):
    B, T, U, V = 4, 10, 6, 12
    targets, t_lens, u_lens, g = _batch(B, T, U, V, [10, 6, 9, 3], [6, 6, 0, 2], seed=11, device=device)
    loss_mod, jn = _model(8, 6, V, 16, R=U + 1, seed=0)
    loss_mod, jn = loss_mod.to(device), jn.to(device)
    enc = torch.randn(B, T, 8, generator=g).to(device).requires_grad_()
    dec = torch.randn(B, U + 1, 6, generator=g).to(device).requires_grad_()

    _, pruned = loss_mod.compute_losses(enc, t_lens, dec, targets, u_lens, jn)
    g_pruned = torch.autograd.grad(pruned.sum(), [enc, dec])
    full = _full_loss(jn, enc, dec, targets, t_lens, u_lens)
    g_full = torch.autograd.grad(full.sum(), [enc, dec])
    torch.testing.assert_close(pruned, full, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_pruned, g_full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("R", [2, 3, 4])
def test_narrow_pruning_only_removes_paths(R):
    B, T, U, V = 3, 14, 8, 10
    targets, t_lens, u_lens, g = _batch(B, T, U, V, [14, 9, 12], [8, 5, 8], seed=R)
    loss_mod, jn = _model(8, 6, V, 16, R=R, seed=R)
    enc, dec = torch.randn(B, T, 8, generator=g), torch.randn(B, U + 1, 6, generator=g)
    enc.requires_grad_()
    with torch.no_grad():
        full = _full_loss(jn, enc, dec, targets, t_lens, u_lens)
    _, pruned = loss_mod.compute_losses(enc, t_lens, dec, targets, u_lens, jn)
    assert torch.isfinite(pruned).all()
    assert (pruned >= full - 1e-4).all(), (pruned, full)
    assert (pruned > full + 1e-3).any(), "a narrow window should drop some probability mass"
    (grad,) = torch.autograd.grad(pruned.sum(), [enc])
    assert torch.isfinite(grad).all()


def test_infeasible_utterance_gets_zero_pruned_loss(caplog):
    B, T, U, V = 2, 2, 5, 7
    targets, t_lens, u_lens, g = _batch(B, T, U, V, [2, 2], [5, 1], seed=5)
    loss_mod, jn = _model(4, 4, V, 8, R=2, seed=5)
    enc = torch.randn(B, T, 4, generator=g).requires_grad_()
    dec = torch.randn(B, U + 1, 4, generator=g)
    with caplog.at_level(logging.WARNING):
        simple, pruned = loss_mod.compute_losses(enc, t_lens, dec, targets, u_lens, jn)
    assert pruned[0] == 0 and pruned[1] > 0 and torch.isfinite(simple).all()
    assert "pruned loss is set to 0" in caplog.text
    s = prune_bounds(torch.rand(B, T, U + 1), torch.rand(B, T, U + 1), t_lens, u_lens, 2)
    assert (s[:, 1:] >= s[:, :-1]).all() and (s >= 0).all() and (s <= (u_lens - 1).view(-1, 1)).all()
    (grad,) = torch.autograd.grad((simple + pruned).sum(), [enc])
    assert torch.isfinite(grad).all()


def test_module_warmup_reduction_and_step_buffer():
    B, T, U, V = 3, 9, 4, 8
    targets, t_lens, u_lens, g = _batch(B, T, U, V, [9, 7, 5], [4, 1, 0], seed=9)
    loss_mod, jn = _model(6, 5, V, 12, R=3, seed=9, warmup_steps=10, simple_loss_scale=0.5)
    enc, dec = torch.randn(B, T, 6, generator=g), torch.randn(B, U + 1, 5, generator=g)

    assert loss_mod.loss_scales(0) == (1.0, 0.1)
    s, p = loss_mod.loss_scales(5)
    assert math.isclose(s, 0.75) and math.isclose(p, 0.55)
    assert loss_mod.loss_scales(10) == (0.5, 1.0) and loss_mod.loss_scales(1000) == (0.5, 1.0)

    simple, pruned = loss_mod.compute_losses(enc, t_lens, dec, targets, u_lens, jn)
    loss_mod.train()
    loss_mod.step.fill_(5)
    per_utt = 0.75 * simple + 0.55 * pruned
    loss_mod.reduction = "none"
    out = loss_mod(enc, t_lens, dec, targets, u_lens, jn)
    assert out.shape == (B,) and int(loss_mod.step) == 6
    torch.testing.assert_close(out, per_utt)
    torch.testing.assert_close(loss_mod.last_simple_loss, simple.detach())

    loss_mod.eval()
    loss_mod.step.fill_(5)
    for reduction, expect in [("sum", per_utt.sum()), ("mean", per_utt.mean())]:
        loss_mod.reduction = reduction
        torch.testing.assert_close(loss_mod(enc, t_lens, dec, targets, u_lens, jn), expect)
    assert int(loss_mod.step) == 5, "eval forwards must not advance the warm-up"

    state = loss_mod.state_dict()
    assert int(state["step"]) == 5
    fresh, _ = _model(6, 5, V, 12, R=3, seed=0, warmup_steps=10)
    fresh.load_state_dict(state)
    assert int(fresh.step) == 5

    with pytest.raises(ValueError, match="reduction"):
        PrunedRNNTLoss(6, 5, V, reduction="avg")
    with pytest.raises(ValueError, match="prune_range"):
        PrunedRNNTLoss(6, 5, V, prune_range=1)


def test_bf16_autocast_is_upcast():
    B, T, U, V = 2, 10, 4, 9
    targets, t_lens, u_lens, g = _batch(B, T, U, V, [10, 8], [4, 3], seed=4)
    loss_mod, jn = _model(6, 5, V, 12, R=3, seed=4)
    enc, dec = torch.randn(B, T, 6, generator=g), torch.randn(B, U + 1, 5, generator=g)
    ref = loss_mod(enc, t_lens, dec, targets, u_lens, jn)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss_mod(enc, t_lens, dec, targets, u_lens, jn)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=5e-2, atol=0.0)
    px = torch.randn(1, 3, 2).bfloat16()
    assert rnnt_lattice_loglik(px, px, torch.tensor([3]), torch.tensor([1])).dtype == torch.float32
