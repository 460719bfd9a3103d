"""Shared fixtures. The tiny trained model is built once per test session (ESPnet import + training are slow)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tiny_setup

import espnet2_ext  # noqa: E402,F401  (offline import guard + ESPnet registration hook)

TEST_DIR = Path(__file__).parent

# The `recipe` marker (pyproject.toml), set here and nowhere else: tests that run a whole recipe script (run.sh,
# run_*.sh, local/data.sh) on a tiny config. The default run includes them (CI runs everything); `-m "not recipe"`
# leaves them out (the unit tests against the second ESPnet release, tools/second_espnet.py).
# Everything under these folders of test/:
RECIPE_FOLDERS = {"recipe"}
# and these tests elsewhere (file relative to test/ -> test functions; test_second_espnet.py checks the names exist):
RECIPE_TESTS = {
    "ssl/test_ssl_pretrain.py": {"test_recipe_smoke_resumes_and_exports_a_loadable_checkpoint"},
    "corpora/mini_tokenverse/test_ssl_corpus_asr_lid.py": {
        "test_data_sh_wordlist_read_writes_the_set_and_the_combined_train_set"
    },
    "data/test_audio_formats.py": {"test_commonvoice_import_then_recipe_stages_1_to_4"},
}


def is_recipe_test(relpath: str, function: str) -> bool:
    """Whether test ``function`` of ``relpath`` (a file relative to test/, posix) is a recipe test."""
    return relpath.split("/")[0] in RECIPE_FOLDERS or function in RECIPE_TESTS.get(relpath, ())


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:  # every collected item, also any outside test/ (this hook is not scoped to its folder)
        if item.path.is_relative_to(TEST_DIR) and is_recipe_test(
            item.path.relative_to(TEST_DIR).as_posix(), getattr(item, "originalname", item.name)
        ):
            item.add_marker(pytest.mark.recipe)


TINY_TRAIN_THREADS = 1  # intra-op threads of the tiny model's training: the split the tests were written against


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    """A tiny TokenVerse model trained through the real CLI on 4 utterances (2 fully, 2 partially annotated).

    The XLSR stand-in checkpoint is deleted after training: everything afterwards (reloading, decoding, packing)
    must work from the experiment dir alone, as a packed model must offline.
    """
    import torch
    from tiny_setup import train_args, write_config, write_data_dir, write_standin

    from espnet2_ext.bin.asr_train import main

    # The same model whichever test asks first: a module's one_thread may be active then, and the thread split
    # changes the float sums of training (on an AVX2-only CPU a 1-thread model misses test_inference's WER bound).
    threads = torch.get_num_threads()
    torch.set_num_threads(TINY_TRAIN_THREADS)
    root = tmp_path_factory.mktemp("tiny_trained")
    standin = write_standin(root / "tiny.pt")
    data = write_data_dir(root)
    config = write_config(
        root, standin, max_epoch=30, num_iters_per_epoch=8, num_att_plot=0, tokenverse_conf={"policy": "label"}
    )
    out = root / "exp"
    try:
        main(train_args(root, data, config, out))
    finally:
        torch.set_num_threads(threads)
    standin.unlink()
    return root, data, out


@pytest.fixture(scope="session")
def tiny(tiny_trained):
    """(make, data, out): ``make(**kw)`` builds a ``TokenVerseSpeech2Text`` of the tiny trained model with options
    ``kw``; ``data`` its data dir (``tiny_setup.padded_batch`` reads it), ``out`` its exp dir."""
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    _, data, out = tiny_trained

    def make(**kw):
        return TokenVerseSpeech2Text(
            asr_train_config=out / "config.yaml", asr_model_file=out / "valid.loss.best.pth", **kw
        )

    return make, data, out


@pytest.fixture(scope="module")
def one_thread():
    """Tiny matrices: intra-op threads only add contention (10x slower on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


MULTICHUNK_SIZES = [80, 160]  # ms; test_streaming.SIZES


@pytest.fixture(scope="session")
def multichunk(tiny_trained, tmp_path_factory):
    """The tiny model fine-tuned a few steps with multi-chunk training (sizes 80, 160 ms and full context)."""
    import yaml
    from tiny_setup import train_args, write_config

    from espnet2_ext.bin.asr_train import main

    src_root, data, src = tiny_trained
    root = tmp_path_factory.mktemp("multichunk")
    (root / "tokens.txt").write_text((src_root / "tokens.txt").read_text())
    fc = yaml.safe_load((src / "config.yaml").read_text())["frontend_conf"]
    fc.update(
        wav_normalize=False,
        chunk_size_ms=160,
        left_chunks=1,
        attention_sink_frames=2,
        multichunk_sizes_ms=MULTICHUNK_SIZES + ["full"],
    )
    config = write_config(
        root,
        root / "unused.pt",
        frontend_conf=fc,
        max_epoch=1,
        num_iters_per_epoch=4,
        optim_conf={"lr": 0.001},
        tokenverse_conf={"policy": "label"},
        init_param=[str(src / "valid.loss.best.pth")],
    )
    out = root / "exp"
    main(train_args(root, data, config, out))
    return root, data, out
