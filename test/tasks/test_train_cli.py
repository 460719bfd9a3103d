"""Tiny end-to-end training through the real CLI (ESPnet trainer, loaders, our registrations)."""

import pytest
import torch
import yaml


@pytest.fixture(scope="module")
def trained(tiny_trained):
    return tiny_trained


def test_training_completes_and_lowers_the_loss(trained):
    _, _, out = trained
    reporter = torch.load(out / "checkpoint.pth", map_location="cpu", weights_only=False)["reporter"]
    stats = reporter["stats"]
    assert sorted(stats) == list(range(1, 31))
    assert stats[30]["train"]["loss"] < 0.1 * stats[1]["train"]["loss"]
    assert (out / "valid.loss.best.pth").exists()


def test_config_is_self_contained(trained):
    _, _, out = trained
    conf = yaml.safe_load((out / "config.yaml").read_text())
    assert conf["frontend"] == "s3prl_tokenverse" and conf["model"] == "tokenverse"
    assert conf["frontend_conf"]["aux_tasks"] == ["scd", "endp", "ner", "lid"]
    assert conf["frontend_conf"]["upstream_skeleton"]["model_cfg"]["encoder_layers"] == 2


def test_task_vectors_reload_bit_exactly_without_the_upstream_checkpoint(trained):
    from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask

    root, _, out = trained
    assert not (root / "tiny.pt").exists()  # rebuilding must not need the pretrained upstream file
    saved = torch.load(out / "valid.loss.best.pth", map_location="cpu")
    model, _ = TokenVerseASRTask.build_model_from_file(out / "config.yaml", out / "valid.loss.best.pth", "cpu")
    loaded = model.state_dict()
    keys = [k for k in saved if "task_vectors" in k]
    assert keys == ["frontend.task_vectors.feature_encoder.weight"]
    init = (
        model.frontend.task_vectors["feature_encoder"].__class__(loaded[keys[0]].size(1), 4, "per_task").weight
    )  # a freshly initialised table, same seed
    assert not torch.equal(saved[keys[0]], init)  # training moved them
    for k, v in saved.items():  # every parameter, upstream included, really restored (ESPnet loads strict=False)
        assert torch.equal(loaded[k], v), k
    assert set(saved) == set(loaded)
