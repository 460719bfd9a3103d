"""Reliability: clear errors for bad configs/checkpoints, and a SIGKILLed training run that resumes to the same
model as an uninterrupted one."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from espnet2_ext.asr.rnnt_loss_backends import backend_available, build_rnnt_loss
from tiny_setup import train_args, write_config, write_data_dir, write_standin


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


def _train_cmd(root, out, epochs):
    args = train_args(root, root / "data", root / "train.yaml", out) + ["--max_epoch", str(epochs), "--resume", "true"]
    return [sys.executable, "-m", "espnet2_ext.bin.asr_train"] + args


def test_killed_training_resumes_to_the_same_model(tmp_path):
    standin = write_standin(tmp_path / "tiny.pt")
    write_data_dir(tmp_path)
    write_config(tmp_path, standin, num_att_plot=0, num_iters_per_epoch=6, batch_size=2)
    full = tmp_path / "full"
    subprocess.run(_train_cmd(tmp_path, full, 3), check=True, capture_output=True, timeout=900)

    killed = tmp_path / "killed"
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(_train_cmd(tmp_path, killed, 3), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while time.time() < deadline and "2/3epoch started" not in (tmp_path / "killed.log").read_text():
        time.sleep(0.2)
    time.sleep(1.0)  # mid-epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "3epoch.pth").exists()
    subprocess.run(_train_cmd(tmp_path, killed, 3), check=True, capture_output=True, timeout=900)

    a = torch.load(full / "3epoch.pth", map_location="cpu")
    b = torch.load(killed / "3epoch.pth", map_location="cpu")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
