"""The conditioning frontend: where the task vector goes, what it changes and what it must not."""

import pytest
import torch
from espnet2.asr.frontend.s3prl import S3prlFrontend
from tiny_setup import write_standin

import espnet2_ext  # noqa: F401  (offline import guard + registration hook)
from espnet2_ext.asr.frontend.task_conditioned_s3prl import TaskConditionedS3prlFrontend


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return write_standin(tmp_path_factory.mktemp("standin") / "tiny.pt")


def make(standin, **kw):
    torch.manual_seed(0)
    conf = {"upstream": "wav2vec2_local", "path_or_url": str(standin)}
    return TaskConditionedS3prlFrontend(frontend_conf=conf, multilayer_feature=True, **kw).eval()


def wavs(b=3, n=8000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, generator=g), torch.full((b,), n, dtype=torch.long)


MASKS = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 0, 1]])


def hidden_states(frontend, x, lens, mask):
    """Upstream hidden states (the inputs of every transformer layer + the encoder output) of one frontend call
    with ``mask``, caught by a forward hook on the upstream; ``mask`` None with the vectors zeroed = no vector."""
    got = []
    handle = frontend.upstream.register_forward_hook(lambda m, i, o: got.append([h.clone() for h in o[0]]))
    try:
        with torch.no_grad():
            frontend(x, lens, task_mask=mask)
    finally:
        handle.remove()
    return got[0]


def test_zero_vectors_reproduce_plain_frontend(standin):
    f = make(standin, task_vector_injection="both")
    with torch.no_grad():
        for tv in f.task_vectors.values():
            tv.weight.zero_()
    torch.manual_seed(0)
    plain = S3prlFrontend(
        frontend_conf={"upstream": "wav2vec2_local", "path_or_url": str(standin)}, multilayer_feature=True
    ).eval()
    plain.featurizer.load_state_dict(f.featurizer.state_dict())
    x, lens = wavs()
    with torch.no_grad():
        y, ylens = f(x, lens, task_mask=MASKS)
        y0, y0lens = plain(x, lens)
    # same frames, except S3PRL's filler frame past the CNN's exact output length, which we leave out
    assert torch.equal(ylens, y0lens - 1)
    assert torch.equal(y, y0[:, : y.size(1)])


def test_feature_encoder_injection_changes_every_layer_input(standin):
    f = make(standin, task_vector_injection="feature_encoder")
    x, lens = wavs()
    cond = hidden_states(f, x, lens, MASKS)
    saved = f.task_vectors["feature_encoder"].weight.detach().clone()
    with torch.no_grad():
        f.task_vectors["feature_encoder"].weight.zero_()
    base = hidden_states(f, x, lens, MASKS)
    with torch.no_grad():
        f.task_vectors["feature_encoder"].weight.copy_(saved)
    # S3PRL's hidden states are the inputs of every transformer layer (+ the encoder output): all must change
    assert len(base) == 3
    for h0, h1 in zip(base, cond):
        assert (h0 - h1).abs().amax() > 1e-4


def test_encoder_output_injection_changes_only_the_output(standin):
    f = make(standin, task_vector_injection="encoder_output")
    x, lens = wavs()
    with torch.no_grad():
        y_plain, _ = f(x, lens)  # no mask: all tasks active
        y, ylens = f(x, lens, task_mask=MASKS)
    hs_plain, hs_cond = hidden_states(f, x, lens, None), hidden_states(f, x, lens, MASKS)
    for a, b in zip(hs_plain, hs_cond):
        assert torch.equal(a, b)
    v = f.task_vectors["encoder_output"](MASKS)
    v_all = f.task_vectors["encoder_output"](torch.ones_like(MASKS))
    assert torch.allclose(y - y_plain, (v - v_all).unsqueeze(1).expand_as(y), atol=1e-5)


def test_padding_frames_stay_zero(standin):
    f = make(standin, task_vector_injection="encoder_output")
    x, _ = wavs(n=16000)
    lens = torch.tensor([16000, 9000, 4000])
    with torch.no_grad():
        y, ylens = f(x, lens, task_mask=MASKS)
    for i, n in enumerate(ylens.tolist()):
        assert n < y.size(1) or i == 0
        assert torch.count_nonzero(y[i, n:]) == 0
        assert torch.count_nonzero(y[i, :n].abs().sum(-1)) == n


@pytest.mark.parametrize("injection", ["feature_encoder", "encoder_output", "both"])
def test_padding_does_not_change_an_utterance(standin, injection):
    """Ragged batch vs one utterance at a time: identical valid frames (exact padding mask, filler frame dropped)."""
    f = make(standin, task_vector_injection=injection)
    x, _ = wavs(n=16000)
    lens = torch.tensor([16000, 11111, 5003])
    with torch.no_grad():
        y, ylens = f(x, lens, task_mask=MASKS)
    for i in range(3):
        with torch.no_grad():
            yi, yilens = f(x[i : i + 1, : lens[i]], lens[i : i + 1], task_mask=MASKS[i : i + 1])
        assert int(yilens) == int(ylens[i])
        assert torch.allclose(y[i, : ylens[i]], yi[0], atol=1e-5)


@pytest.mark.parametrize("injection", ["feature_encoder", "encoder_output", "both"])
def test_batch_independence(standin, injection):
    f = make(standin, task_vector_injection=injection)
    x, lens = wavs()
    with torch.no_grad():
        y, _ = f(x, lens, task_mask=MASKS)
        y_alone, _ = f(x[:1], lens[:1], task_mask=MASKS[:1])
        other = MASKS.clone()
        other[1:] = torch.tensor([1, 1, 0, 0, 0])
        y_other, _ = f(x, lens, task_mask=other)
    assert torch.allclose(y[0], y_alone[0], atol=1e-5)
    assert torch.allclose(y[0], y_other[0], atol=1e-5)
    assert not torch.allclose(y[1], y_other[1], atol=1e-5)


@pytest.mark.parametrize("strategy", ["per_task", "per_combination"])
def test_vectors_live_outside_upstream_and_get_gradients_only_when_active(standin, strategy):
    f = make(standin, task_vector_strategy=strategy, task_vector_injection="feature_encoder")
    names = [n for n, _ in f.named_parameters() if "task_vectors" in n]
    assert names == ["task_vectors.feature_encoder.weight"]
    for p in f.upstream.parameters():  # what ESPnet's freeze_param "frontend.upstream" does
        p.requires_grad_(False)
    x, lens = wavs(b=1)
    mask = torch.tensor([[1, 1, 0, 0, 1]])
    y, _ = f(x, lens, task_mask=mask)
    y.pow(2).sum().backward()
    grad = f.task_vectors["feature_encoder"].weight.grad
    rows = (grad.abs().sum(1) > 0).nonzero().flatten().tolist()
    assert rows == ([0, 1, 4] if strategy == "per_task" else [0b1001])


def test_every_trainable_parameter_gets_a_gradient_and_is_listed_once(standin):
    """What PyTorch DDP needs (no 'parameters that were not used in producing loss'): the wav2vec2 pretraining
    heads are frozen, and the upstream is not registered a second time under another name."""
    f = make(standin, task_vector_strategy="per_task", task_vector_injection="both").train()
    sd = f.state_dict()
    assert len({v.data_ptr() for v in sd.values() if v.numel()}) == len([v for v in sd.values() if v.numel()])
    frozen = {n.replace("upstream.upstream.model.", "") for n, p in f.named_parameters() if not p.requires_grad}
    assert frozen == {"mask_emb", "project_q.weight", "project_q.bias", "final_proj.weight", "final_proj.bias"}
    x, lens = wavs(b=2)
    y, _ = f(x, lens, task_mask=torch.tensor([[1, 0, 1, 0, 1], [1, 1, 1, 1, 1]]))
    y.pow(2).sum().backward()
    unused = [n for n, p in f.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


def test_skeleton_rebuild_needs_no_checkpoint(tmp_path):
    from espnet2_ext.upstream.xlsr_standin import model_cfg_for, save_checkpoint

    trained = save_checkpoint(str(tmp_path / "seed7.pt"), model_cfg_for("tiny"), seed=7)
    f = make(trained, task_vector_injection="both")
    skeleton = f.upstream_skeleton()
    rebuilt = TaskConditionedS3prlFrontend(
        frontend_conf={"upstream": "wav2vec2_local", "path_or_url": str(tmp_path / "does-not-exist.pt")},
        multilayer_feature=True,
        task_vector_injection="both",
        upstream_skeleton=skeleton,
    ).eval()
    x, lens = wavs()
    with torch.no_grad():
        assert not torch.equal(f(x, lens)[0], rebuilt(x, lens)[0])  # random weights before loading
        rebuilt.load_state_dict(f.state_dict())
        assert torch.equal(f(x, lens)[0], rebuilt(x, lens)[0])


def test_bad_options(standin):
    with pytest.raises(ValueError, match="task_vector_injection 'middle' is unknown"):
        make(standin, task_vector_injection="middle")
    f = make(standin)
    x, lens = wavs()
    with pytest.raises(ValueError, match="task_mask must be"):
        f(x, lens, task_mask=torch.ones(3, 2, dtype=torch.long))
