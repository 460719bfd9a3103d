"""No module keeps a per-batch tensor between calls: the task mask travels as an argument (#13).

Two different masks go through one model object in alternation, and through a ``copy.deepcopy`` replica (what
``torch.nn.DataParallel`` does to a module, minus the devices): every result must equal what a freshly built
model (same seed) gives for that mask, and after each call no module attribute outside its parameters and
buffers holds a tensor.
"""

import copy

import pytest
import torch
from tiny_setup import build_tiny_model

MASK_A = torch.tensor([[1, 1, 1, 1, 1], [1, 0, 0, 0, 1], [1, 1, 0, 1, 0], [1, 0, 0, 0, 0]])
MASK_B = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [1, 1, 1, 0, 0]])


def _tensors_in(value, depth=0):
    if isinstance(value, torch.Tensor):
        return True
    if depth < 3 and isinstance(value, (list, tuple, set)):
        return any(_tensors_in(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict):
        return any(_tensors_in(v, depth + 1) for v in value.values())
    return False


def tensor_attrs(model: torch.nn.Module):
    """{(module name, attribute): id of the value} for every module attribute that holds a tensor outside the
    module's parameters, buffers and submodules. Constants set at construction (ESPnet's S3prlFrontend keeps
    ``pretrained_params``) are in it from the start; a per-batch tensor would be a new or replaced entry."""
    found = {}
    for name, module in model.named_modules():
        # torch.nn.utils.weight_norm recomputes `weight` from weight_g/weight_v before each forward (parameters
        # only, no batch data): the wav2vec2 positional convolution has it
        derived = {"weight"} if "weight_g" in module._parameters else set()
        for attr, value in vars(module).items():
            if attr not in ("_parameters", "_buffers", "_modules", *derived) and _tensors_in(value):
                found[(name, attr)] = id(value)
    return found


def hooks_of(model: torch.nn.Module):
    return {name: (len(m._forward_pre_hooks), len(m._forward_hooks)) for name, m in model.named_modules()}


def encode(model, batch, mask):
    with torch.no_grad():
        enc, lens = model.encode(batch["speech"], batch["speech_lengths"], mask)
    return enc, lens


def train_loss(model, batch, mask):
    model.train()
    loss, _, _ = model(**{**batch, "task_mask": mask})
    model.eval()
    return float(loss)


@pytest.fixture(scope="module", params=[("per_task", "both"), ("per_combination", "feature_encoder")])
def setup(request, tmp_path_factory):
    strategy, injection = request.param
    root = tmp_path_factory.mktemp("state")
    model, preprocess, collate, items = build_tiny_model(root, strategy, injection)
    fresh, _, _, _ = build_tiny_model(root, strategy, injection)  # same seed: the same weights
    _, batch = collate([(u, preprocess(u, dict(d))) for u, d in items])
    return model.eval(), fresh.eval(), batch


def test_alternating_masks_on_one_model_equal_a_fresh_model(setup):
    model, fresh, batch = setup
    want = {"A": encode(fresh, batch, MASK_A), "B": encode(fresh, batch, MASK_B)}
    assert not torch.allclose(want["A"][0], want["B"][0])  # the masks do condition the encoder
    hooks, attrs = hooks_of(model), tensor_attrs(model)
    for name in "ABBA":
        got = encode(model, batch, MASK_A if name == "A" else MASK_B)
        assert torch.equal(got[1], want[name][1])
        assert torch.allclose(got[0], want[name][0], atol=1e-6), name
        assert tensor_attrs(model) == attrs
        assert hooks_of(model) == hooks  # the call's hook is gone again


def test_training_step_leaves_no_batch_state(setup):
    model, fresh, batch = setup
    attrs = tensor_attrs(model)
    loss_a, loss_b = train_loss(model, batch, MASK_A), train_loss(model, batch, MASK_B)
    assert loss_a != loss_b
    assert tensor_attrs(model) == attrs
    torch.manual_seed(0)
    assert train_loss(fresh, batch, MASK_B) == pytest.approx(loss_b, rel=1e-5)


def test_deepcopy_replica_is_independent(setup):
    """A replica conditioned on B interleaved with the original on A: each equals the fresh model's result."""
    model, fresh, batch = setup
    # A no-grad call first: weight_norm's derived `weight` from a training step is a graph non-leaf, which
    # deepcopy refuses (torch's documented limitation); after a no-grad forward it is a plain tensor.
    encode(model, batch, MASK_A)
    replica = copy.deepcopy(model)
    attrs, replica_attrs = tensor_attrs(model), tensor_attrs(replica)
    want_a, want_b = encode(fresh, batch, MASK_A), encode(fresh, batch, MASK_B)
    for _ in range(2):
        got_a = encode(model, batch, MASK_A)
        got_b = encode(replica, batch, MASK_B)
        assert torch.allclose(got_a[0], want_a[0], atol=1e-6)
        assert torch.allclose(got_b[0], want_b[0], atol=1e-6)
    assert tensor_attrs(replica) == replica_attrs and tensor_attrs(model) == attrs
    # the replica really is a separate module: changing its vectors leaves the original alone
    with torch.no_grad():
        for p in replica.frontend.task_vectors.parameters():
            p.add_(1.0)
    assert torch.allclose(encode(model, batch, MASK_A)[0], want_a[0], atol=1e-6)
    assert not torch.allclose(encode(replica, batch, MASK_A)[0], want_a[0], atol=1e-3)
