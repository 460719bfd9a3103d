"""Shared fixtures. The tiny trained model is built once per test session (ESPnet import + training are slow)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tiny_setup

import espnet2_ext  # noqa: E402,F401  (offline import guard + ESPnet registration hook)


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """A tiny TokenVerse model trained through the real CLI on 4 utterances (2 fully, 2 partially annotated).

    The XLSR stand-in checkpoint is deleted after training: everything afterwards (reloading, decoding, packing)
    must work from the experiment dir alone, as a packed model must offline.
    """
    from espnet2_ext.bin.asr_train import main
    from tiny_setup import train_args, write_config, write_data_dir, write_standin

    root = tmp_path_factory.mktemp("tiny_trained")
    standin = write_standin(root / "tiny.pt")
    data = write_data_dir(root)
    config = write_config(
        root, standin, max_epoch=30, num_iters_per_epoch=8, num_att_plot=0, tokenverse_conf={"policy": "label"}
    )
    out = root / "exp"
    main(train_args(root, data, config, out))
    standin.unlink()
    return root, data, out


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matrices: intra-op threads only add contention (10x slower on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
