"""Kaldi-style partial labels: ``utt2tasks`` lists, per utterance, the tasks its ``text`` is annotated for.

utt1 asr scd endp ner lid
utt2 asr lid
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Tuple, Union

from espnet2_ext.common import DataError
from espnet2_ext.task_spec import PRIMARY_TASK, TaskSpec
from espnet2_ext.utils.text_io import utf8_errors


def parse_tasks_field(value: str, spec: TaskSpec, where: str) -> Tuple[str, ...]:
    names = value.split()
    if not names:
        raise DataError(f"{where}: no tasks listed; write at least '{PRIMARY_TASK}'")
    try:
        tasks = spec.parse_tasks(names)
    except ValueError as e:
        raise DataError(f"{where}: {e}") from None
    if PRIMARY_TASK not in tasks:
        raise DataError(f"{where}: '{PRIMARY_TASK}' must be listed (every utterance has a transcript)")
    return tasks


def read_utt2tasks(path: Union[str, Path], spec: TaskSpec, utt_ids: Iterable[str] = None) -> Dict[str, Tuple[str, ...]]:
    """Read and validate; when ``utt_ids`` is given every one of them must have an entry."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: missing; write one line '<utt-id> asr [scd endp ner lid]' per utterance "
            f"(every utterance in text) to say which tasks it is annotated for"
        )
    out: Dict[str, Tuple[str, ...]] = {}
    with path.open(encoding="utf-8") as f, utf8_errors(path):
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            utt, rest = (line.split(maxsplit=1) + [""])[:2]  # any whitespace after the id, as read_table
            where = f"{path}:{lineno} ({utt})"
            if utt in out:
                raise DataError(f"{where}: duplicate utterance id; keep one line per utterance")
            out[utt] = parse_tasks_field(rest, spec, where)
    if utt_ids is not None:
        missing = [u for u in utt_ids if u not in out]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise DataError(
                f"{path}: no entry for utterance(s) {', '.join(missing[:3])}{more}; add a line "
                f"'<utt-id> asr ...' for each"
            )
    return out
