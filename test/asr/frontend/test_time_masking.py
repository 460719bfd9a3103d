"""wav2vec2-style time masking while fine-tuning (frontend_conf.mask_time_prob): where, how much, and only in
training."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_setup import write_standin

import espnet2_ext  # noqa: F401  (offline import guard + registration hook)
from espnet2_ext.asr.frontend.s3prl_upstream import time_mask_spans, transformer_encoder_of
from espnet2_ext.asr.frontend.task_conditioned_s3prl import TaskConditionedS3prlFrontend


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 120), min_size=1, max_size=4),
    prob=st.floats(0.0, 0.9),
    length=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_spans_stay_inside_each_utterance_and_cover_about_prob(lengths, prob, length, seed):
    torch.manual_seed(seed)
    n_frames = max(lengths) + 3
    spans = time_mask_spans(torch.tensor(lengths), n_frames, prob, length)  # [B, T]
    assert spans.shape == (len(lengths), n_frames) and spans.dtype == torch.bool
    for b, n in enumerate(lengths):
        assert not spans[b, n:].any()  # padding is never masked
        n_starts = int(round(prob * n / length)) if n > length else 0
        covered = int(spans[b].sum())
        # overlapping spans cover less than n_starts * length, never less than one span per start
        assert min(n, n_starts * length) >= covered >= (length if n_starts else 0)
        runs = torch.diff(torch.cat([torch.zeros(1), spans[b].float(), torch.zeros(1)])).nonzero().view(-1, 2)
        assert all(int(e - s) >= length for s, e in runs)  # every masked run is at least one whole span


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("standin") / "tiny.pt")


def encoder_inputs(frontend, x, lens):
    """What the transformer encoder receives (after our pre-hook), per call."""
    seen = []
    handle = transformer_encoder_of(frontend.upstream).register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(args[0].detach().clone()), with_kwargs=True
    )
    try:
        frontend(x, lens)
    finally:
        handle.remove()
    return seen[-1]


def test_training_replaces_spans_by_mask_emb_and_eval_does_not(standin):
    conf = {"upstream": "wav2vec2_local", "path_or_url": str(standin)}
    f = TaskConditionedS3prlFrontend(
        frontend_conf=conf, multilayer_feature=True, mask_time_prob=0.5, mask_time_length=3, task_vector_strategy="none"
    )
    x, lens = torch.randn(2, 16000), torch.tensor([16000, 9000])
    f.eval()
    clean = encoder_inputs(f, x, lens)  # [B, T, D]
    assert torch.equal(clean, encoder_inputs(f, x, lens))  # no masking outside training
    f.train()
    torch.manual_seed(1)
    masked = encoder_inputs(f, x, lens)
    emb = f._wav2vec2.mask_emb.detach()
    is_emb = (masked == emb).all(-1)  # [B, T]
    changed = (masked != clean).any(-1)
    assert torch.equal(is_emb, changed) and is_emb.any()  # every change is a mask_emb frame, and there are some
    n_valid = f._wav2vec2._get_feat_extract_output_lengths(lens).tolist()
    assert not is_emb[1, n_valid[1] :].any()  # never on padding
    for b, n in enumerate(n_valid):
        assert 0.2 * n <= int(is_emb[b].sum()) <= 0.5 * n + 3
    torch.manual_seed(1)
    assert torch.equal(masked, encoder_inputs(f, x, lens))  # drawn from torch's seeded generator


def test_bad_masking_options(standin):
    conf = {"upstream": "wav2vec2_local", "path_or_url": str(standin)}
    with pytest.raises(ValueError, match="mask_time_prob must be in"):
        TaskConditionedS3prlFrontend(frontend_conf=conf, mask_time_prob=1.5)
