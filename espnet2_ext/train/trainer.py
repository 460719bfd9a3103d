"""ESPnet's ``Trainer`` made safe to kill at any moment (SIGKILL, OOM killer, a pre-empted cluster job).

ESPnet writes ``checkpoint.pth`` and then ``{N}epoch.pth`` in place and relinks ``latest.pth`` and
``{phase}.{key}.best.pth`` by unlink + symlink. A kill during a write leaves a truncated checkpoint that ``--resume``
cannot load; a kill between the two writes leaves a checkpoint whose epoch has no model file or best link, and the
resumed run then fails at the end when it averages the n-best epochs. This subclass changes neither the training
loop nor its results:

* every ``torch.save`` to a path during ``run`` goes to a temporary sibling first and is renamed into place;
* on resume, the epoch files and links of the checkpoint's last epoch are restored when a kill left them missing;
* an unreadable checkpoint is a one-line error that says what to do;
* checkpoints are read with ``torch.load(weights_only=True)`` (``utils/safe_load.py``): resuming never runs code.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator

import torch
from espnet2.train.reporter import Reporter
from espnet2.train.trainer import Trainer

from espnet2_ext.common import atomic_output
from espnet2_ext.utils.safe_load import UnsafeModelError, load_model_file, weights_only_loading


@contextlib.contextmanager
def atomic_torch_save() -> Iterator[None]:
    """Within the block, ``torch.save(obj, path)`` writes ``path`` atomically (temp file + ``os.replace``).

    ESPnet's trainer calls ``torch.save`` inline, so wrapping it is the only way short of copying ``Trainer.run``.
    """
    original = torch.save

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return original(obj, f, *args, **kwargs)
        # ".tmp", not ".tmp.pth": a temp file left by a kill must not look like a model file
        with atomic_output(f, suffix=".tmp") as tmp:
            original(obj, tmp, *args, **kwargs)

    torch.save = save
    try:
        yield
    finally:
        torch.save = original


def load_checkpoint(path: Path) -> dict:
    try:
        return load_model_file(path, map_location="cpu")  # weights_only: a checkpoint never runs code
    except UnsafeModelError:
        raise
    except Exception as e:  # truncated zip, bad pickle, empty file: all mean the same to the user
        raise RuntimeError(
            f"{path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120]}): it was cut "
            f"off while being written; delete it to restart training from epoch 1, or restore a "
            f"copy"
        ) from None


def _relink(link: Path, target: str) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def repair_last_epoch(output_dir: Path, best_model_criterion) -> None:
    """Restore what ESPnet writes after ``checkpoint.pth`` for its epoch, if a kill left it missing."""
    states = load_checkpoint(output_dir / "checkpoint.pth")
    reporter = Reporter()
    reporter.load_state_dict(states["reporter"])
    epoch = reporter.get_epoch()
    if epoch < 1:
        return
    epoch_file = output_dir / f"{epoch}epoch.pth"
    if not epoch_file.exists():
        logging.warning(f"{epoch_file.name} is missing (training was killed after checkpoint.pth): rewriting it")
        with atomic_torch_save():
            torch.save(states["model"], epoch_file)
    if not (output_dir / "latest.pth").exists():
        _relink(output_dir / "latest.pth", epoch_file.name)
    for phase, key, mode in best_model_criterion:
        if not reporter.has(phase, key):
            continue
        best = reporter.get_best_epoch(phase, key, mode)
        link = output_dir / f"{phase}.{key}.best.pth"
        if (output_dir / f"{best}epoch.pth").exists() and not link.exists():
            logging.warning(f"{link.name} is missing (training was killed while relinking it): relinking")
            _relink(link, f"{best}epoch.pth")


class TokenVerseTrainer(Trainer):
    @classmethod
    def run(
        cls,
        model,
        optimizers,
        schedulers,
        train_iter_factory,
        valid_iter_factory,
        plot_attention_iter_factory,
        trainer_options,
        distributed_option,
    ) -> None:
        output_dir = Path(trainer_options.output_dir)
        rank0 = not distributed_option.distributed or distributed_option.dist_rank == 0
        if rank0 and trainer_options.resume and (output_dir / "checkpoint.pth").exists():
            repair_last_epoch(output_dir, trainer_options.best_model_criterion)
        with atomic_torch_save(), weights_only_loading():  # resume and n-best averaging load model files
            super().run(
                model=model,
                optimizers=optimizers,
                schedulers=schedulers,
                train_iter_factory=train_iter_factory,
                valid_iter_factory=valid_iter_factory,
                plot_attention_iter_factory=plot_attention_iter_factory,
                trainer_options=trainer_options,
                distributed_option=distributed_option,
            )
