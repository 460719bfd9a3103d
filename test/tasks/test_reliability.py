"""Reliability: clear errors for bad configs/checkpoints, and a SIGKILLed training run that resumes to the same
model as an uninterrupted one."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from tiny_setup import train_args, write_config, write_data_dir, write_standin

from espnet2_ext.asr.rnnt_loss_backends import backend_available, build_rnnt_loss


@pytest.mark.parametrize("backend", ["warp_rnnt", "k2"])
def test_missing_loss_backend_is_a_clear_error(backend):
    if backend_available(backend):
        pytest.skip(f"{backend} is installed here")
    with pytest.raises(ImportError, match=f"rnnt_loss '{backend}' needs .* choose rnnt_loss: torchaudio or pruned"):
        build_rnnt_loss(backend, 0, 8, 8, 10)
    with pytest.raises(ValueError, match="rnnt_loss 'warprnnt' is unknown"):
        build_rnnt_loss("warprnnt", 0, 8, 8, 10)


def test_checkpoint_from_another_task_set(tiny_trained, tmp_path):
    import yaml

    from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask

    _, _, out = tiny_trained
    conf = yaml.safe_load((out / "config.yaml").read_text())
    conf["tokenverse_conf"]["tasks"] = ["asr", "scd", "lid"]
    conf["frontend_conf"].pop("aux_tasks")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(ValueError, match="trained with another task set or strategy"):
        TokenVerseASRTask.build_model_from_file(tmp_path / "config.yaml", out / "valid.loss.best.pth", "cpu")


def test_checkpoint_listing_the_upstream_twice_still_loads(tiny_trained, tmp_path):
    """Models trained before the frontend stopped registering its wav2vec2 twice carry frontend._wav2vec2.* copies."""
    from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask

    _, _, out = tiny_trained
    sd = torch.load(out / "valid.loss.best.pth", map_location="cpu")
    prefix = "frontend.upstream.upstream.model."
    old = {**sd, **{"frontend._wav2vec2." + k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}}
    assert len(old) > len(sd)
    torch.save(old, tmp_path / "old.pth")
    model, _ = TokenVerseASRTask.build_model_from_file(out / "config.yaml", tmp_path / "old.pth", "cpu")
    assert model.state_dict().keys() == sd.keys()


def _train_cmd(root, out, epochs):
    args = train_args(root, root / "data", root / "train.yaml", out) + ["--max_epoch", str(epochs), "--resume", "true"]
    return [sys.executable, "-m", "espnet2_ext.bin.asr_train"] + args


@pytest.fixture(scope="module")
def killed_and_full(tmp_path_factory):
    """The same 3-epoch training twice: uninterrupted, and SIGKILLed mid-epoch 2 then re-run with --resume."""
    root = tmp_path_factory.mktemp("resume")
    standin = write_standin(root / "tiny.pt")
    write_data_dir(root)
    write_config(root, standin, num_att_plot=0, num_iters_per_epoch=6, batch_size=2)
    full = root / "full"
    subprocess.run(_train_cmd(root, full, 3), check=True, capture_output=True, timeout=900)

    killed = root / "killed"
    log = open(root / "killed.log", "w")
    proc = subprocess.Popen(_train_cmd(root, killed, 3), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while time.time() < deadline and "2/3epoch started" not in (root / "killed.log").read_text():
        time.sleep(0.2)
    time.sleep(1.0)  # mid-epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "3epoch.pth").exists()
    subprocess.run(_train_cmd(root, killed, 3), check=True, capture_output=True, timeout=900)
    return root, full, killed


def _assert_same_model(a_file, b_file):
    a = torch.load(a_file, map_location="cpu")
    b = torch.load(b_file, map_location="cpu")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_killed_training_resumes_to_the_same_model(killed_and_full):
    _, full, killed = killed_and_full
    _assert_same_model(full / "3epoch.pth", killed / "3epoch.pth")
    assert not list(killed.glob(".*.tmp"))  # atomic checkpoint writes leave no temp files behind


def test_kill_between_checkpoint_and_epoch_file_is_repaired(killed_and_full, tmp_path):
    """ESPnet writes checkpoint.pth, then 3epoch.pth, then relinks latest/best: a kill in between must not leave
    a run that can never finish (the final n-best averaging needs 3epoch.pth)."""
    root, full, _ = killed_and_full
    exp = tmp_path / "exp"
    shutil.copytree(full, exp, symlinks=True)
    reference = torch.load(full / "3epoch.pth", map_location="cpu")
    for name in ("3epoch.pth", "latest.pth", "valid.loss.best.pth"):
        (exp / name).unlink()
    r = subprocess.run(_train_cmd(root, exp, 3), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "3epoch.pth is missing" in r.stderr
    _assert_same_model(full / "3epoch.pth", exp / "3epoch.pth")
    assert os.readlink(exp / "latest.pth") == "3epoch.pth"
    assert os.readlink(exp / "valid.loss.best.pth") == os.readlink(full / "valid.loss.best.pth")
    assert torch.load(exp / "valid.loss.best.pth").keys() == reference.keys()


def test_truncated_checkpoint_is_a_clear_error(killed_and_full, tmp_path):
    root, full, _ = killed_and_full
    exp = tmp_path / "exp"
    shutil.copytree(full, exp, symlinks=True)
    data = (exp / "checkpoint.pth").read_bytes()
    (exp / "checkpoint.pth").write_bytes(data[: len(data) // 2])
    r = subprocess.run(_train_cmd(root, exp, 4), capture_output=True, text=True, timeout=900)
    assert r.returncode != 0
    assert "checkpoint.pth cannot be read" in r.stderr and "delete it to restart training" in r.stderr
    assert (exp / "checkpoint.pth").stat().st_size == len(data) // 2  # left for the user to decide
