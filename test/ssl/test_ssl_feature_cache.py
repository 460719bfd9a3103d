"""Stage-2 pretraining on cached outputs of a frozen CNN (espnet2_ext/ssl/feature_cache.py), on any device."""

import dataclasses

import numpy as np
import pytest
import torch
from tiny_setup import write_noise_dir

from espnet2_ext.ssl import feature_cache as FC
from espnet2_ext.ssl.objectives import Pretrainer
from espnet2_ext.ssl.pretrain import PretrainConfig, pretrain
from espnet2_ext.ssl.targets import collate, n_frames
from espnet2_ext.upstream.xlsr_standin import build_wav2vec2, model_cfg_for, save_checkpoint


def _audio(n=3, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(6000 + 2300 * i) * 2000).astype("int16") for i in range(n)]


def test_cache_holds_the_cnn_outputs_of_each_utterance_as_in_a_padded_batch():
    w = build_wav2vec2(model_cfg_for("tiny"), seed=3).eval()
    audio = _audio()
    cache = FC.compute(["a", "b", "c"], audio, w)
    wav, pad = collate(audio, [0, 1, 2])
    with torch.no_grad():
        batched = w.feature_extractor(wav).transpose(1, 2)  # [B, T, C]: one padded batch, as training sees it
    for b, x in enumerate(audio):
        lo, hi = cache["offsets"][b], cache["offsets"][b + 1]
        assert hi - lo == n_frames(len(x))
        got = torch.from_numpy(cache["data"][lo:hi].astype(np.float32)) * torch.from_numpy(cache["scales"][b])
        want = batched[b, : hi - lo]
        # int8 with one scale per utterance and channel: within half a step of the scale
        assert torch.all((got - want).abs() <= torch.from_numpy(cache["scales"][b]) * 0.5 + 1e-6)
        assert (got - want).abs().max() < 0.02 * want.abs().max()


def test_load_round_trip_and_refusals(tmp_path):
    w = build_wav2vec2(model_cfg_for("tiny"), seed=3)
    audio = _audio()
    path = FC.save(FC.compute(["a", "b", "c"], audio, w), tmp_path / "c.npz")
    sha = FC.cnn_sha256(w)
    got = FC.load(path, sha, ["c", "a"])  # any order of the data dir
    assert [len(f) for f in got] == [n_frames(len(audio[2])), n_frames(len(audio[0]))]
    other = build_wav2vec2(model_cfg_for("tiny"), seed=4)
    assert FC.cnn_sha256(other) != sha
    with pytest.raises(ValueError, match=r"c\.npz: made by other CNN weights"):
        FC.load(path, FC.cnn_sha256(other), ["a"])
    with pytest.raises(ValueError, match=r"c\.npz: no features for 1 utterance\(s\) .*e\.g\. zz"):
        FC.load(path, sha, ["a", "zz"])
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"junk\.npz: not a feature cache"):
        FC.load(junk, sha, ["a"])
    # an npz that would need pickle to read is refused, not unpickled
    evil = tmp_path / "evil.npz"
    np.savez(
        evil,
        utt_ids=np.array([object()], dtype=object),
        offsets=np.zeros(2, np.int64),
        data=np.zeros((0, 2), np.int8),
        scales=np.zeros((1, 2), np.float32),
        cnn_sha256=np.array(sha),
    )
    with pytest.raises(ValueError, match=r"evil\.npz: not a feature cache"):
        FC.load(evil, sha, ["a"])


def test_cached_features_give_the_logits_of_the_audio_path():
    model = Pretrainer(model_cfg_for("tiny"), n_out=5, seed=0, freeze_feature_encoder=True).eval()
    audio = _audio()
    cache = FC.compute(["a", "b", "c"], audio, model.wav2vec2)
    from espnet2_ext.ssl.sources import batch

    feats = [
        torch.from_numpy(cache["data"][cache["offsets"][i] : cache["offsets"][i + 1]].astype(np.float32))
        * torch.from_numpy(cache["scales"][i])
        for i in range(3)
    ]
    with torch.no_grad():
        wav, pad, _ = batch(audio, [0, 1, 2], torch.device("cpu"), cached=False)
        want, wpad = model(wav, pad, None)
        _, fpad, x = batch(feats, [0, 1, 2], torch.device("cpu"), cached=True)
        got, gpad = model(None, fpad, None, x)
    assert torch.equal(wpad, gpad)
    valid = ~wpad
    assert torch.allclose(got[valid], want[valid], atol=0.05 * want.abs().max().item())


def test_ctc_stage_on_the_cache_keeps_the_cnn_validates_and_keeps_the_best(tmp_path):
    train, dev = write_noise_dir(tmp_path, "train", n=4), write_noise_dir(tmp_path, "dev", n=2, seed=5)
    init = save_checkpoint(str(tmp_path / "init.pt"), model_cfg_for("tiny"), seed=7)
    cnn = {
        k: v
        for k, v in torch.load(init, weights_only=True)["model_weight"].items()
        if k.startswith("feature_extractor.")
    }
    cfg = PretrainConfig(
        objective="ctc",
        preset="tiny",
        max_steps=4,
        threads=1,
        init_from=str(init),
        save_every=2,
        batch_seconds=2.0,
        warmup_steps=1,
        lr=0.01,
        feature_cache=str(tmp_path / "cache"),
    )
    lines = []
    pretrain(train, tmp_path / "exp", cfg, valid_dir=dev, log=lines.append)
    assert (tmp_path / "cache" / "train.npz").is_file() and (tmp_path / "cache" / "dev.npz").is_file()
    assert any("computing the frozen CNN's features" in s for s in lines)
    ck = torch.load(tmp_path / "exp" / "checkpoint.pt", weights_only=True)
    for k, v in cnn.items():  # frozen: the CNN is the one it started from
        assert torch.equal(ck["model"][f"wav2vec2.{k}"], v), k
    assert not torch.equal(
        ck["model"]["wav2vec2.encoder.layers.0.fc1.weight"],
        torch.load(init, weights_only=True)["model_weight"]["encoder.layers.0.fc1.weight"],
    )
    valid = ck["state"]["valid"]
    assert [v["step"] for v in valid] == [2, 4] and all(v["cer"] >= 0 and v["loss"] > 0 for v in valid)
    best = torch.load(tmp_path / "exp" / "checkpoint_best.pt", weights_only=True)
    assert best["state"]["step"] == min(valid, key=lambda v: (v["cer"], -v["step"]))["step"]
    assert ck["state"]["devices"] == ["CPU, 1 thread(s)"]

    # the second run reads the cache (no audio); where the cache lives and which device runs are not settings
    lines = []
    moved = tmp_path / "cache2"
    (tmp_path / "cache").rename(moved)
    for f in train.glob("*.wav"):
        f.unlink()
    pretrain(
        train,
        tmp_path / "exp",
        dataclasses.replace(cfg, max_steps=5, feature_cache=str(moved)),
        valid_dir=dev,
        log=lines.append,
    )
    assert any("resumed at step 4" in s for s in lines) and not any("computing" in s for s in lines)

    from espnet2_ext.ssl.checkpoints import export, provenance_markdown

    info = export(tmp_path / "exp" / "checkpoint_best.pt", tmp_path / "out" / "x.pt")
    readme = provenance_markdown(tmp_path / "exp", info, checkpoint="checkpoint_best.pt")
    assert "| step | loss | CER % |" in readme and "CPU, 1 thread(s)" in readme

    with pytest.raises(ValueError, match="--feature_cache goes with --objective ctc"):
        pretrain(train, tmp_path / "exp_h", dataclasses.replace(cfg, objective="hubert"), log=lambda s: None)


def test_device_option_is_checked():
    from espnet2_ext.ssl.pretrain import resolve_device

    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="only cpu and cuda"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device; use --device cpu"):
            resolve_device("cuda")


def test_cli_reads_booleans_as_words():
    from espnet2_ext.bin.pretrain_standin import get_parser

    p = get_parser()
    assert p.parse_args(["--exp_dir", "x", "--freeze_feature_encoder", "false"]).freeze_feature_encoder is False
    assert p.parse_args(["--exp_dir", "x", "--freeze_feature_encoder", "true"]).freeze_feature_encoder is True
    with pytest.raises(SystemExit):
        p.parse_args(["--exp_dir", "x", "--freeze_feature_encoder", "maybe"])


@pytest.mark.parametrize("freeze", [True, False])
def test_freeze_feature_encoder_on_audio(tmp_path, freeze):
    train = write_noise_dir(tmp_path, "train", n=4)
    init = save_checkpoint(str(tmp_path / "init.pt"), model_cfg_for("tiny"), seed=7)
    want = torch.load(init, weights_only=True)["model_weight"]["feature_extractor.conv_layers.0.0.weight"]
    cfg = PretrainConfig(
        objective="ctc",
        preset="tiny",
        max_steps=2,
        threads=1,
        init_from=str(init),
        batch_seconds=2.0,
        warmup_steps=1,
        lr=0.01,
        freeze_feature_encoder=freeze,
    )
    ck = torch.load(pretrain(train, tmp_path / "exp", cfg, log=lambda s: None), weights_only=True)
    assert torch.equal(ck["model"]["wav2vec2.feature_extractor.conv_layers.0.0.weight"], want) is freeze


def test_hubert_ignores_the_valid_dir(tmp_path):
    train, dev = write_noise_dir(tmp_path, "train", n=4), write_noise_dir(tmp_path, "dev", n=2, seed=5)
    cfg = PretrainConfig(
        objective="hubert",
        preset="tiny",
        max_steps=2,
        threads=1,
        save_every=1,
        batch_seconds=2.0,
        n_clusters=4,
        kmeans_frames=500,
        warmup_steps=1,
    )
    ck = torch.load(pretrain(train, tmp_path / "exp", cfg, valid_dir=dev, log=lambda s: None), weights_only=True)
    assert ck["state"]["step"] == 2 and "valid" not in ck["state"]
    assert not (tmp_path / "exp" / "checkpoint_best.pt").exists()
