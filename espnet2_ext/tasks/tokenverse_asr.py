"""``TokenVerseASRTask``: ESPnet's ``ASRTask`` with partial labels, task masks and task-vector conditioning.

Adds one config group, ``tokenverse_conf`` (``tasks``, ``languages``, ``extra_tokens``, ``policy``), which is
handed to the preprocessor (stripping + activation policy) and the frontend (task-vector layout), an optional
data name ``tasks`` (the data dir's ``utt2tasks``), and the task-mask collate function. Everything else —
options, training loop, samplers, iterators, DDP — is ESPnet's (the trainer subclass only makes
checkpoint writes atomic, see ``train/trainer.py``).
"""

from __future__ import annotations

import argparse
from typing import Callable, Collection, Dict, List, Tuple

import numpy as np
import torch
from espnet2.tasks.asr import ASRTask
from espnet2.utils.nested_dict_action import NestedDictAction

from espnet2_ext.common import TASKS_NAME
from espnet2_ext.registry import register
from espnet2_ext.task_spec import TOKENVERSE_DEFAULTS, task_spec_of, tokenverse_conf_of
from espnet2_ext.train.collate import TaskMaskCollateFn
from espnet2_ext.train.trainer import TokenVerseTrainer

register()

__all__ = ["TokenVerseASRTask", "TOKENVERSE_DEFAULTS", "task_spec_of", "tokenverse_conf_of"]


class TokenVerseASRTask(ASRTask):
    trainer = TokenVerseTrainer  # ESPnet's, with atomic checkpoint writes and repair after a kill

    @classmethod
    def add_task_arguments(cls, parser: argparse.ArgumentParser):
        super().add_task_arguments(parser)
        group = parser.add_argument_group(description="TokenVerse++ related")
        group.add_argument(
            "--tokenverse_conf",
            action=NestedDictAction,
            default=dict(),
            help="tasks (asr first), languages, extra_tokens ({task: [tokens]}) and the training "
            f"activation policy (label|sample). Defaults: {TOKENVERSE_DEFAULTS}",
        )

    @classmethod
    def optional_data_names(cls, train: bool = True, inference: bool = False) -> Tuple[str, ...]:
        return super().optional_data_names(train, inference) + (TASKS_NAME,)

    @classmethod
    def build_collate_fn(
        cls, args: argparse.Namespace, train: bool
    ) -> Callable[[Collection[Tuple[str, Dict[str, np.ndarray]]]], Tuple[List[str], Dict[str, torch.Tensor]]]:
        # int pad -1: ESPnet's convention (0 is the blank)
        return TaskMaskCollateFn(float_pad_value=0.0, int_pad_value=-1)

    @classmethod
    def build_preprocess_fn(cls, args: argparse.Namespace, train: bool):
        if getattr(args, "preprocessor", None) == "tokenverse":
            conf = tokenverse_conf_of(args)
            pconf = dict(args.preprocessor_conf or {})
            for key in ("tasks", "languages", "extra_tokens", "policy"):
                pconf.setdefault(key, conf[key])
            args = argparse.Namespace(**{**vars(args), "preprocessor_conf": pconf})
        return super().build_preprocess_fn(args, train)

    @classmethod
    def build_model(cls, args: argparse.Namespace):
        if getattr(args, "frontend", None) == "s3prl_tokenverse":
            spec = task_spec_of(args)
            # The frontend's mask columns are the spec's tasks; written into config.yaml (frontend_conf) so that
            # ESPnet's own ASRTask, which knows no tokenverse_conf, rebuilds the same layout from it.
            given = (args.frontend_conf or {}).get("aux_tasks")
            if given is not None and list(given) != list(spec.aux_tasks):
                raise ValueError(
                    f"frontend_conf.aux_tasks {list(given)} differs from tokenverse_conf.tasks "
                    f"{list(spec.tasks)}: remove frontend_conf.aux_tasks (it is derived from "
                    f"tokenverse_conf)"
                )
            args.frontend_conf = {**(args.frontend_conf or {}), "aux_tasks": list(spec.aux_tasks)}
        model = super().build_model(args)
        skeleton = getattr(model.frontend, "upstream_skeleton", lambda: None)()
        if skeleton is not None and "upstream_skeleton" not in args.frontend_conf:
            # Dumped into exp/.../config.yaml: rebuilding from it needs no pretrained checkpoint or download.
            args.frontend_conf["upstream_skeleton"] = skeleton
        return model
