"""Loading model files made by someone else: no code from them runs (archives: ``utils/safe_archive.py``).

ESPnet's ``build_model_from_file``, trainer resume and ``--init_param`` call ``torch.load(weights_only=False)``, so a
crafted ``model.pth`` runs arbitrary code. Our models hold only tensors and plain config, so we refuse that:

* ``load_model_file`` / ``weights_only_loading()``: ``torch.load(weights_only=True)``; what it refuses is a one-line
  ``UnsafeModelError`` naming the file and the refused type. Full unpickling only on explicit opt-in
  (``TOKENVERSE_TRUST_PICKLE=1`` or ``with trusted_pickle_loading():``), with a warning each time.
* ``install_espnet_guards``: wraps ESPnet's loaders (``pack_funcs.unpack``, ``get_dict_from_cache``, the model
  zoo's copies of them and its Hugging Face path, ``build_model_from_file``, ``Trainer.resume``,
  ``load_pretrained_model``) with these and ``safe_archive``'s checks, and ``build_model_from_file`` with
  ``config_guard``'s check of the config (issue 33); run by ``registry.register`` when ESPnet's ASR task is imported.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Iterator

from espnet2_ext.utils.config_guard import config_checked, install_s3prl_guards
from espnet2_ext.utils.safe_archive import (  # noqa: F401  (UnsafeModelError: the error of both modules)
    MAX_YAML_BYTES,
    UnsafeModelError,
    check_meta_entries,
    checked_dict_from_cache,
    load_yaml_bytes,
    safe_unpack,
)

TRUST_PICKLE_ENV = "TOKENVERSE_TRUST_PICKLE"


class UnsafeLoadWarning(UserWarning):
    """A file is being loaded with full unpickling because the user opted in."""


warnings.filterwarnings("always", category=UnsafeLoadWarning)  # one per file, not one per call site


# ---- torch.load ----------------------------------------------------------------------------------------
_trusted_depth = 0


def pickle_trusted() -> bool:
    """Whether the user opted in to full unpickling (``TOKENVERSE_TRUST_PICKLE=1`` or ``trusted_pickle_loading``)."""
    return _trusted_depth > 0 or os.environ.get(TRUST_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


@contextlib.contextmanager
def trusted_pickle_loading() -> Iterator[None]:
    """Within the block, model files are fully unpickled (old files holding more than tensors). Runs their code."""
    global _trusted_depth
    _trusted_depth += 1
    try:
        yield
    finally:
        _trusted_depth -= 1


def _torch_load():
    import torch

    return getattr(torch.load, "_tokenverse_original", torch.load)


def plain_globals() -> list:
    """Plain value types ESPnet's checkpoints hold besides tensors: the reporter's numpy scalars and timedeltas.

    Allowed only inside ``load_model_file`` (``torch.serialization.safe_globals``), not process-wide; none of them
    can call anything while being unpickled.
    """
    import datetime

    import numpy as np

    core = getattr(np, "_core", None) or np.core  # numpy 2 / 1
    dtypes = [
        getattr(np.dtypes, n) for n in dir(np.dtypes) if re.fullmatch(r"(Bool|U?Int\d+|Float\d+|Complex\d+)DType", n)
    ]
    return [core.multiarray.scalar, np.dtype, *dtypes, datetime.timedelta]


def _refused_detail(e: Exception) -> str:
    text = str(e)
    m = re.search(r"(Unsupported global: GLOBAL [^\s]+|unsupported GLOBAL [^\n]+|Unsupported operand [^\n]+)", text)
    if m:
        return m.group(1).rstrip(". ")
    lines = [
        ln.strip()
        for ln in text.splitlines()
        if ln.strip() and not ln.startswith(("Weights only load failed", "Check the documentation"))
    ]
    return (lines[0] if lines else type(e).__name__)[:200]


def load_model_file(f, *args, **kwargs):
    """``torch.load`` that never runs code from the file (``weights_only=True``, whatever the caller asked).

    A file that needs more than tensors and plain types is a one-line ``UnsafeModelError``; with the opt-in
    (``TOKENVERSE_TRUST_PICKLE=1``) it is fully unpickled, with an ``UnsafeLoadWarning``.
    """
    kwargs.pop("weights_only", None)
    load = _torch_load()
    if pickle_trusted():
        warnings.warn(
            f"{f}: loading with full unpickling because {TRUST_PICKLE_ENV}=1 (or trusted_pickle_loading)"
            f": any code in this file runs now",
            UnsafeLoadWarning,
            stacklevel=2,
        )
        return load(f, *args, weights_only=False, **kwargs)
    import torch

    try:
        with torch.serialization.safe_globals(plain_globals()):
            return load(f, *args, weights_only=True, **kwargs)
    except pickle.UnpicklingError as e:
        raise UnsafeModelError(
            f"{f}: refused to load: it holds more than tensors and plain values ({_refused_detail(e)}), and "
            f"unpickling it could run code from the file. If you trust its source, set {TRUST_PICKLE_ENV}=1 to "
            f"load it with full unpickling"
        ) from None


@contextlib.contextmanager
def weights_only_loading() -> Iterator[None]:
    """Within the block, every ``torch.load`` is ``load_model_file`` (ESPnet calls ``torch.load`` inline, so
    wrapping it is the only way short of copying its functions). Nested use is fine."""
    import torch

    if getattr(torch.load, "_tokenverse_original", None) is not None:
        yield
        return
    original = torch.load

    @functools.wraps(original)
    def load(f, *args, **kwargs):
        return load_model_file(f, *args, **kwargs)

    load._tokenverse_original = original  # type: ignore[attr-defined]
    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def _guarded(func):
    """``func`` run inside ``weights_only_loading``; marked so that it is wrapped once."""
    if getattr(func, "_tokenverse_guard", False):
        return func

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with weights_only_loading():
            return func(*args, **kwargs)

    wrapper._tokenverse_guard = True  # type: ignore[attr-defined]
    return wrapper


# ---- ESPnet's loaders ----------------------------------------------------------------------------------
def _mark(func, original):
    func.__wrapped__ = original
    func._tokenverse_guard = True
    return func


def _guard_hf_snapshot(downloader_cls) -> None:
    """The model zoo's Hugging Face path rewrites the YAML files ``meta.yaml`` names: check the names first."""
    original = downloader_cls.__dict__["_unpack_cache_dir_for_huggingfase"].__func__
    if getattr(original, "_tokenverse_guard", False):
        return

    @functools.wraps(original)
    def hf_unpack(cache_dir):
        meta = Path(cache_dir) / "meta.yaml"
        if meta.is_file():  # snapshot files are links into the hub's blob store: check names, not link targets
            check_meta_entries(
                load_yaml_bytes(meta.read_bytes()[: MAX_YAML_BYTES + 1], str(meta)),
                Path(cache_dir),
                str(meta),
                resolve=False,
            )
        return original(cache_dir)

    downloader_cls._unpack_cache_dir_for_huggingfase = staticmethod(_mark(hf_unpack, original))


def install_espnet_guards() -> None:
    """Route ESPnet's unpacking and model loading through the checks above (idempotent)."""
    from espnet2.main_funcs import pack_funcs
    from espnet2.tasks import abs_task
    from espnet2.train.trainer import Trainer

    if not getattr(pack_funcs.unpack, "_tokenverse_guard", False):
        # safe_unpack / checked_dict_from_cache reach ESPnet's originals through __wrapped__
        pack_funcs.unpack = _mark(
            functools.wraps(pack_funcs.unpack)(lambda *a, **k: safe_unpack(*a, **k)), pack_funcs.unpack
        )
        pack_funcs.get_dict_from_cache = _mark(
            functools.wraps(pack_funcs.get_dict_from_cache)(lambda meta: checked_dict_from_cache(meta)),
            pack_funcs.get_dict_from_cache,
        )
    try:  # Speech2Text.from_pretrained imports it lazily; it bound pack_funcs' names at its own import
        from espnet_model_zoo import downloader
    except ImportError:
        downloader = None
    if downloader is not None:
        downloader.unpack, downloader.get_dict_from_cache = pack_funcs.unpack, pack_funcs.get_dict_from_cache
        _guard_hf_snapshot(downloader.ModelDownloader)
    build = abs_task.AbsTask.__dict__["build_model_from_file"].__func__
    if not getattr(build, "_tokenverse_guard", False):  # config checked (issue 33), then weights-only loading
        abs_task.AbsTask.build_model_from_file = classmethod(_guarded(config_checked(build)))
    Trainer.resume = staticmethod(_guarded(Trainer.__dict__["resume"].__func__))
    abs_task.load_pretrained_model = _guarded(abs_task.load_pretrained_model)  # --init_param
    install_s3prl_guards()  # conv_feature_layers checked inside S3PRL's wav2vec2/HuBERT models too
