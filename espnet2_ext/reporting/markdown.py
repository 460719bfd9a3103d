"""Markdown pieces every table writer shares: number formatting, a pipe table, the metric columns of a score."""

from __future__ import annotations

from typing import List, Mapping, Sequence, Tuple

METRIC_COLUMNS = (
    ("wer", "WER (%)"),
    ("scd_f1", "SCD F1"),
    ("endp_f1", "ENDP F1"),
    ("ner_f1", "NER F1"),
    ("lid_acc", "LID acc"),
)


def fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def added_f1_columns(scores: Sequence[Mapping[str, object]]) -> List[Tuple[str, str]]:
    """An F1 column for each task added to a model that the score dicts hold (e.g. ``qst_f1`` -> 'QST F1')."""
    known = {k for k, _ in METRIC_COLUMNS}
    extra: List[str] = []
    for score in scores:
        extra += [k for k in score if k.endswith("_f1") and k not in known and k not in extra]
    return [(k, f"{k[:-3].upper()} F1") for k in extra]
