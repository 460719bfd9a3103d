"""Distributed training on ESPnet's own DDP engine, proved on CPU.

ESPnet's spawning mode (``--ngpu N --multiprocessing_distributed true``) gives one GPU to each process, so it
cannot start CPU processes; its external-launcher mode (``--multiprocessing_distributed false`` with
RANK/WORLD_SIZE set by ``torchrun``) runs the same trainer, DDP wrapper, batch sharding and stats all-reduce on
CPU with gloo. That is what is tested here: 2 processes x 2 utterances must follow the 1-process x 4 utterances
loss curve and end at the same model.
"""

import multiprocessing
import re
import subprocess
import sys

import pytest
import torch
from tiny_setup import train_args, write_config, write_data_dir, write_standin

EPOCHS = 3


def _train_loss_curve(exp):
    from espnet2.train.reporter import Reporter

    reporter = Reporter()
    reporter.load_state_dict(torch.load(exp / "checkpoint.pth", map_location="cpu", weights_only=False)["reporter"])
    return [reporter.get_value("train", "loss", epoch=e) for e in range(1, EPOCHS + 1)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    standin = write_standin(root / "tiny.pt")
    write_data_dir(root)
    # Deterministic per utterance (no dropout in the stand-in, labels decide the task mask), so the only
    # difference between the runs is how the global batch of 4 is split over processes.
    write_config(
        root,
        standin,
        num_att_plot=0,
        num_iters_per_epoch=4,
        batch_size=4,
        max_epoch=EPOCHS,
        tokenverse_conf={"policy": "label"},
    )
    return root


def test_two_process_gloo_ddp_matches_one_process(tiny_dir):
    root = tiny_dir
    args = lambda out: train_args(root, root / "data", root / "train.yaml", root / out)  # noqa: E731
    one = subprocess.run(
        [sys.executable, "-m", "espnet2_ext.bin.asr_train"] + args("one"), capture_output=True, text=True, timeout=900
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "espnet2_ext.bin.asr_train",
        ]
        + args("two")
        + ["--multiprocessing_distributed", "false", "--dist_backend", "gloo"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert re.search(r":0/2\] ", two.stderr), "ESPnet did not run in distributed mode (log prefix host:rank/size)"

    curve_one, curve_two = _train_loss_curve(root / "one"), _train_loss_curve(root / "two")
    assert curve_one[-1] < curve_one[0]  # it trains
    torch.testing.assert_close(torch.tensor(curve_two), torch.tensor(curve_one), rtol=1e-3, atol=1e-3)

    # Same model: compared as one vector, because Adam turns the float noise of gradients that are zero in exact
    # arithmetic (e.g. attention key biases, which softmax ignores) into full-size steps of random sign.
    a = torch.load(root / "one" / f"{EPOCHS}epoch.pth", map_location="cpu")
    b = torch.load(root / "two" / f"{EPOCHS}epoch.pth", map_location="cpu")
    assert a.keys() == b.keys()
    flat = lambda sd: torch.cat([v.flatten().double() for v in sd.values() if v.is_floating_point()])  # noqa: E731
    assert (flat(a) - flat(b)).norm() / flat(a).norm() < 1e-3


def test_registration_in_a_spawned_worker(tiny_dir):
    """ESPnet's GPU mode spawns ``TokenVerseASRTask.main_worker`` with the 'spawn' start method: a fresh
    interpreter must find our registered classes (frontend, encoder, model, preprocessor) by their config names."""
    from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask

    root = tiny_dir
    args = TokenVerseASRTask.get_parser().parse_args(
        train_args(root, root / "data", root / "train.yaml", root / "unused")
    )
    proc = multiprocessing.get_context("spawn").Process(target=TokenVerseASRTask.build_model, args=(args,))
    proc.start()
    proc.join(600)
    assert proc.exitcode == 0
