"""TokenVerse preprocessor: partial labels -> active tasks -> stripped reference + task mask.

Registered in ESPnet's ``ASRTask`` preprocessor choices as ``tokenverse``. Per utterance it
1. reads the available tasks (``tasks`` field, loaded from the data dir's ``utt2tasks`` as type ``text``),
2. picks the active set with the activation policy (``label`` / ``sample``),
3. removes the tokens of inactive tasks from the text (``espnet2_ext.text.strip_tasks``),
4. lets ESPnet's ``CommonPreprocessor`` tokenize text and process speech as usual,
5. emits ``task_mask`` (0/1 over ``asr, aux_1..aux_K``) for the task-mask collate function.
Without a ``tasks`` field (e.g. plain inference data) the utterance is taken as annotated for ``default_active``
(``TaskSpec.active_tasks``: None = every task of the spec).

At inference this mask is the one decoded with, not rebuilt elsewhere: ``asr/decode_dir`` builds the decode
loader's preprocessor with ``default_active`` = the decode's task selection (``--task_activation``), so an
utterance's mask is its tasks-file entry when a tasks file is given, else that selection; the decode loop hands
``batch["task_mask"]`` to the model as it is.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
from espnet2.train.preprocessor import CommonPreprocessor

from espnet2_ext.common import TASK_MASK, TASKS_NAME, DataError
from espnet2_ext.data.utt2tasks import parse_tasks_field
from espnet2_ext.task_spec import DEFAULT_LANGUAGES, TaskSpec
from espnet2_ext.text.annotation import annotation_error
from espnet2_ext.text.strip_tasks import strip_inactive_tokens
from espnet2_ext.train.activation_policy import POLICIES, choose_active


class TokenVersePreprocessor(CommonPreprocessor):
    def __init__(
        self,
        train: bool,
        tasks: Optional[Sequence[str]] = None,
        languages: Sequence[str] = DEFAULT_LANGUAGES,
        extra_tokens: Optional[Dict] = None,
        policy: str = "sample",
        default_active: Optional[Sequence[str]] = None,
        check_annotation: bool = True,
        seed: Optional[int] = None,
        **kwargs,
    ):
        super().__init__(train=train, **kwargs)
        if policy not in POLICIES:
            raise ValueError(f"preprocessor_conf.policy '{policy}' is unknown: choose one of {', '.join(POLICIES)}")
        self.spec = TaskSpec.build(tasks, languages, extra_tokens)
        # Policies only apply in training; validation/inference uses the labels as given.
        self.policy = policy if train else "label"
        self.default_active = self.spec.active_tasks(default_active or None, "preprocessor_conf.default_active")
        self.check_annotation = check_annotation
        # Without an explicit seed, draw from NumPy's global RNG, which ESPnet's trainer re-seeds every epoch
        # (seed + epoch): the sampled activations are then reproducible, also across --resume.
        self.rng = np.random.default_rng(seed) if seed is not None else np.random

    def __call__(self, uid: str, data: Dict) -> Dict[str, np.ndarray]:
        if TASKS_NAME in data:
            available = parse_tasks_field(str(data.pop(TASKS_NAME)), self.spec, f"utt2tasks ({uid})")
        else:
            available = self.default_active
        if self.text_name in data:
            text = str(data[self.text_name])
            if self.check_annotation:
                err = annotation_error(text, self.spec, available)
                if err:
                    raise DataError(f"text ({uid}): {err}")
            active = choose_active(available, self.policy, self.rng)
            data[self.text_name] = strip_inactive_tokens(text, active, self.spec)
        else:
            active = available
        data = super().__call__(uid, data)
        data[TASK_MASK] = np.asarray(self.spec.mask(active), dtype=np.int64)
        return data
