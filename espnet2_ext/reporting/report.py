"""Markdown result tables (shaped like the TokenVerse++ paper) from ``score.json`` files.

* Table II: models x metrics, each model at its largest task activation.
* Table III: the same rows broken down per language.
* Table IV: per model, every task activation it was decoded with, incl. ITT.
* Table V: time-based scores (SCD at a collar, purity/coverage, endpoint latency), when the test set has
  reference turn times (``utt2turns``) and the decode wrote ``events.jsonl``.

A score file names its model, test set and task activation; missing fields are taken from the path
``<exp>/<model>/decode_<task+task+...>/<test_set>/score.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple, Union

from espnet2_ext.activation import activation_tag, order_tasks, task_rank
from espnet2_ext.common import DataError, atomic_write_text
from espnet2_ext.reporting.markdown import METRIC_COLUMNS, added_f1_columns, fmt, md_table

PathLike = Union[str, Path]
ITT_COLUMN = ("itt", "ITT")
DECODE_PREFIX = "decode_"


# ---- loading -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreEntry:
    model: str
    test_set: str
    activation: Tuple[str, ...]
    scores: Mapping[str, object]
    path: Path


def load_score(path: PathLike) -> ScoreEntry:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}); rerun tokenverse_score for it") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object as written by tokenverse_score")
    decode_dir = path.parent.parent
    from_path = decode_dir.name.startswith(DECODE_PREFIX)
    model = data.get("model") or (decode_dir.parent.name if from_path else None)
    test_set = data.get("test_set") or (path.parent.name if from_path else None)
    activation = data.get("task_activation")
    if isinstance(activation, str):
        activation = activation.replace(",", "+").split("+")
    if not activation and from_path:
        activation = decode_dir.name[len(DECODE_PREFIX) :].split("+")
    if not (model and test_set and activation):
        raise DataError(
            f"{path}: cannot tell model, test set and task activation; write them into the file "
            f"(tokenverse_score --model --test_set) or place it at "
            f"<exp>/<model>/{DECODE_PREFIX}<task+task>/<test_set>/score.json"
        )
    return ScoreEntry(str(model), str(test_set), order_tasks([t for t in activation if t]), data, path)


def find_scores(exp_dirs: Sequence[PathLike], test_sets: Sequence[str] = ()) -> List[ScoreEntry]:
    """Every ``score.json`` under the exp dirs, sorted by model, test set and activation; ``test_sets``: only
    these (e.g. the recipe's test sets, so a dev decode made for choosing a setting stays out of RESULTS.md)."""
    entries: Dict[Tuple[str, str, Tuple[str, ...]], ScoreEntry] = {}
    for exp in exp_dirs:
        exp = Path(exp)
        if not exp.is_dir():
            raise DataError(f"{exp}: no such directory; pass experiment directories with --exp_dir")
        for path in sorted(exp.rglob("score.json")):
            e = load_score(path)
            if test_sets and e.test_set not in test_sets:
                continue
            key = (e.model, e.test_set, e.activation)
            if key in entries:
                raise DataError(
                    f"{path} and {entries[key].path} both score model {e.model} on {e.test_set} with "
                    f"tasks {activation_tag(e.activation)}; remove one or give them different --model"
                )
            entries[key] = e
    if not entries:
        only = f" for test sets {', '.join(test_sets)}" if test_sets else ""
        raise DataError(f"no score.json found under {', '.join(map(str, exp_dirs))}{only}; run tokenverse_score first")
    return sorted(entries.values(), key=_entry_key)


def _entry_key(e: ScoreEntry) -> tuple:
    return (e.model, len(e.activation), [task_rank(t) for t in e.activation], e.activation, e.test_set)


# ---- tables --------------------------------------------------------------------------------------------
def largest_activation(entries: Sequence[ScoreEntry], model: str) -> Tuple[str, ...]:
    """The model's largest task activation (ties: the first in canonical order)."""
    mine = [e for e in entries if e.model == model]
    most = max(len(e.activation) for e in mine)
    return min((e for e in mine if len(e.activation) == most), key=_entry_key).activation


def _models(entries: Sequence[ScoreEntry]) -> List[str]:
    return sorted({e.model for e in entries})


def _lang_key(lang: str) -> tuple:
    return (lang == "unk", lang)


def metric_columns(entries: Sequence[ScoreEntry]) -> List[Tuple[str, str]]:
    """The standard columns, plus those of added tasks."""
    return list(METRIC_COLUMNS) + added_f1_columns([e.scores for e in entries])


def table_main(entries: Sequence[ScoreEntry]) -> str:
    cols = metric_columns(entries)
    header = ["Model", "Test set", "Tasks"] + [name for _, name in cols]
    rows = []
    for model in _models(entries):
        act = largest_activation(entries, model)
        for e in entries:
            if e.model == model and e.activation == act:
                values = [fmt(e.scores.get(k)) for k, _ in cols]
                rows.append([model, e.test_set, activation_tag(act)] + values)
    return md_table(header, rows)


def table_per_language(entries: Sequence[ScoreEntry]) -> str:
    cols = metric_columns(entries)
    header = ["Model", "Test set", "Language"] + [name for _, name in cols]
    rows = []
    for model in _models(entries):
        act = largest_activation(entries, model)
        for e in entries:
            if e.model != model or e.activation != act:
                continue
            per_lang = e.scores.get("per_language") or {}
            for lang in sorted(per_lang, key=_lang_key):
                vals = per_lang[lang] or {}
                rows.append([model, e.test_set, lang] + [fmt(vals.get(k)) for k, _ in cols])
    return md_table(header, rows)


def table_activations(entries: Sequence[ScoreEntry], model: str) -> str:
    cols = metric_columns([e for e in entries if e.model == model]) + [ITT_COLUMN]
    header = ["Tasks", "Test set"] + [name for _, name in cols]
    rows = [
        [activation_tag(e.activation), e.test_set] + [fmt(e.scores.get(k)) for k, _ in cols]
        for e in entries
        if e.model == model
    ]
    return md_table(header, rows)


def table_time(entries: Sequence[ScoreEntry]) -> str:
    """Each model at its largest task activation, test sets with a ``time`` section only ('' when none)."""
    from espnet2_ext.scoring.time_metrics import TIME_COLUMNS, flat_time_scores

    header = ["Model", "Test set", "Tasks"] + [name for _, name in TIME_COLUMNS]
    rows = []
    for model in _models(entries):
        act = largest_activation(entries, model)
        for e in entries:
            if e.model == model and e.activation == act and isinstance(e.scores.get("time"), dict):
                t = e.scores["time"]
                flat = t if "scd_f1_0.5" in t else flat_time_scores(t)  # a record keeps the flat columns
                rows.append([model, e.test_set, activation_tag(act)] + [fmt(flat[k]) for k, _ in TIME_COLUMNS])
    return md_table(header, rows) if rows else ""


def _heading(line: str) -> Tuple[int, str]:
    """(level, title) of a markdown ATX heading line; (0, "") for any other line."""
    hashes = len(line) - len(line.lstrip("#"))
    if 0 < hashes <= 6 and line[hashes : hashes + 1] == " ":
        return hashes, line[hashes:].strip()
    return 0, ""


def nest_markdown(text: str, present: str) -> str:
    """``text`` to sit inside a report: every heading one level deeper, and without the sections whose heading
    the report ``present`` already has (the corpus statistics both files carry are shown once)."""
    have = {_heading(line)[1] for line in present.splitlines()} - {""}
    out: List[str] = []
    skip_below = 0  # > 0: inside a dropped section of this level
    for line in text.splitlines():
        level, title = _heading(line)
        if level and skip_below and level <= skip_below:
            skip_below = 0
        if level and not skip_below and title in have:
            skip_below = level
        if skip_below:
            continue
        out.append("#" + line if level and level < 6 else line)
    return "\n".join(out).strip("\n")


def build_report(
    entries: Sequence[ScoreEntry], prepend: Sequence[str] = (), figures: Sequence[str] = (), append: Sequence[str] = ()
) -> str:
    """The markdown report; ``figures``: image paths (relative to the report) shown after the tables; ``append``:
    markdown texts added at the end, nested (``nest_markdown``)."""
    parts: List[str] = [p.rstrip("\n") for p in prepend]
    parts.append(
        "## Table II: results with all tasks active\n\n"
        "Each model at the largest task activation it was decoded with. WER in %, F1 and accuracy in %; "
        "'-' = task not active or not annotated in the test set.\n\n" + table_main(entries)
    )
    parts.append(
        "## Table III: per-language results\n\nSame task activation as Table II.\n\n" + table_per_language(entries)
    )
    per_model = [f"### {model}\n\n{table_activations(entries, model)}" for model in _models(entries)]
    parts.append(
        "## Table IV: task activation at inference\n\n"
        "ITT = hypothesis tokens of tasks that were not active (inactive-task tokens).\n\n" + "\n\n".join(per_model)
    )
    timed = table_time(entries)
    if timed:
        parts.append(
            "## Table V: time-based scores\n\n"
            "From the reference turn times of the test set (utt2turns) and the emission times of the 1-best "
            "hypothesis (events.jsonl). SCD F1 in % at a collar (pyannote.metrics segmentation "
            "precision/recall on change points); purity/coverage in % (pyannote.metrics); EP50/EP90 = "
            "median/90th-percentile delay of the first [ENDP] after each reference end of speech (negative: "
            "before it); early cutoff = [ENDP] before the end of speech, missed = no [ENDP] for the turn "
            "(% of reference endpoints).\n\n" + timed
        )
    if figures:
        parts.append(
            "## A decoded test conversation\n\n"
            "Waveform, reference turns (utt2turns) vs. hypothesis segments cut at [SCD], reference ends of "
            "speech vs. hypothesis [ENDP], entity spans and words, on the utterance's clock "
            "(`plot_conversation`).\n\n" + "\n\n".join(f"![{Path(f).stem}]({f})" for f in figures)
        )
    for text in append:
        parts.append(nest_markdown(text, "\n\n".join(parts)))
    return "\n\n".join(parts) + "\n"


def _read_all(paths: Sequence[PathLike], option: str) -> List[str]:
    texts = []
    for p in map(Path, paths):
        if not p.is_file():
            raise DataError(f"{p}: no such file (given with {option})")
        texts.append(p.read_text(encoding="utf-8"))
    return texts


def write_report(
    exp_dirs: Sequence[PathLike],
    out: PathLike,
    prepend: Sequence[PathLike] = (),
    figures: Sequence[PathLike] = (),
    test_sets: Sequence[str] = (),
    append: Sequence[PathLike] = (),
) -> str:
    texts = _read_all(prepend, "--prepend")
    appended = _read_all(append, "--append")
    rel = []
    for f in figures:
        if not Path(f).is_file():
            raise DataError(f"{f}: no such file (given with --figure)")
        rel.append(os.path.relpath(Path(f).resolve(), Path(out).resolve().parent))
    report = build_report(find_scores(exp_dirs, test_sets), texts, rel, appended)
    atomic_write_text(out, report)
    return report
