"""Replay subsets: old training utterances relabelled for fewer tasks, mixed into an extension's training data.

When a model grows by a new language (``extend_model --add_language it``), the new language token is trained only
on the new language's data, where it is always right; with the old rows frozen it then outscores the old language
tokens on old-language audio (LID collapses). A replay subset shows it the old languages again:

    replay = select_replay(read_data_dir("dump/raw/train"), per_lang=40, tasks=("asr", "lid"), seed=0)

takes ``per_lang`` utterances per language that are annotated for every task in ``tasks``, drawn at random with
``seed``, and keeps only those tasks: ``utt2tasks`` says ``asr lid`` and the tokens of the other tasks are removed
from ``text`` (the preprocessor would reject them otherwise: a text may only hold tokens of the tasks its
``utt2tasks`` lists). Audio, ids, speakers, languages and turn times are unchanged; the source dir is never
modified and the output dir appears only when complete (``kaldi_dir.write_data_dir``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from espnet2_ext.common import DataError
from espnet2_ext.data.kaldi_dir import Utterance, c_sort_key, read_data_dir, subset, write_data_dir
from espnet2_ext.task_spec import PRIMARY_TASK, TaskSpec
from espnet2_ext.text.annotation import annotation_error
from espnet2_ext.text.strip_tasks import strip_inactive_tokens

PathLike = Union[str, os.PathLike]
DEFAULT_TASKS = ("asr", "lid")


def select_replay(
    utts: Sequence[Utterance],
    per_lang: int,
    tasks: Sequence[str] = DEFAULT_TASKS,
    languages: Optional[Sequence[str]] = None,
    seed: int = 0,
    spec: Optional[TaskSpec] = None,
    where: str = "data dir",
) -> Tuple[List[Utterance], Dict[str, int]]:
    """``per_lang`` utterances per language annotated for all of ``tasks``, relabelled to exactly ``tasks``.

    ``languages``: which languages to draw (default: every language of the eligible utterances). A language with
    fewer eligible utterances than ``per_lang`` gives all it has. ``spec``: the task tokens (default: the default
    tasks with the languages found in ``utts``). Returns (utterances in id order, count per language).
    Raises ``DataError`` (naming ``where``) for utterances without a language, an invalid annotation, a
    requested language with no eligible utterance, or no eligible utterance at all.
    """
    if per_lang < 1:
        raise ValueError(f"per_lang must be >= 1, got {per_lang}")
    tasks = tuple(dict.fromkeys(t.strip() for t in tasks if t.strip()))
    if PRIMARY_TASK not in tasks:
        raise DataError(
            f"replay tasks {' '.join(tasks) or '(none)'}: '{PRIMARY_TASK}' must be one of them "
            f"(every utterance keeps its transcript)"
        )
    no_lang = [u.utt_id for u in utts if not u.lang]
    if no_lang:
        raise DataError(
            f"{where}: utterance {no_lang[0]} has no language (utt2lang); a replay subset is drawn "
            f"per language, so every utterance needs one"
        )
    if spec is None:
        spec = TaskSpec.default(sorted({u.lang for u in utts}))
    try:
        tasks = spec.parse_tasks(tasks)
    except ValueError as e:
        raise DataError(f"replay tasks: {e}") from None
    eligible: Dict[str, List[Utterance]] = {}
    for u in utts:
        err = annotation_error(u.text, spec, u.tasks)
        if err:
            raise DataError(f"{where}/text ({u.utt_id}): {err}")
        if set(tasks) <= set(u.tasks):
            eligible.setdefault(u.lang, []).append(u)
    if not eligible:
        raise DataError(
            f"{where}: no utterance is annotated for all of {' '.join(tasks)} (see its utt2tasks); nothing to replay"
        )
    wanted = list(languages) if languages else sorted(eligible, key=c_sort_key)
    missing = [lang for lang in wanted if lang not in eligible]
    if missing:
        raise DataError(
            f"{where}: no utterance of language(s) {', '.join(missing)} annotated for "
            f"{' '.join(tasks)}; languages there: {', '.join(sorted(eligible))}"
        )
    out: List[Utterance] = []
    counts: Dict[str, int] = {}
    for i, lang in enumerate(wanted):
        # One draw per language from its own stream: a language's pick does not depend on the others.
        picked = subset(eligible[lang], n=per_lang, seed=seed * 1000 + i)
        counts[lang] = len(picked)
        out += [replace(u, text=strip_inactive_tokens(u.text, tasks, spec), tasks=tasks) for u in picked]
    return sorted(out, key=lambda u: c_sort_key(u.utt_id)), counts


def make_replay_subset(
    src: PathLike,
    dst: PathLike,
    per_lang: int,
    tasks: Sequence[str] = DEFAULT_TASKS,
    languages: Optional[Sequence[str]] = None,
    seed: int = 0,
) -> Dict[str, int]:
    """Read the Kaldi dir ``src``, write the replay subset to ``dst`` (atomically); returns the count per language.
    ``dst`` must not be ``src``."""
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise DataError(f"{dst}: the replay subset would overwrite its source; choose another output dir")
    utts = read_data_dir(src)
    picked, counts = select_replay(utts, per_lang, tasks, languages, seed, where=str(src))
    write_data_dir(picked, dst)
    return counts
