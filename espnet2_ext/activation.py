"""The tag of a task-activation set (``asr+scd+lid``): the ``decode_<tag>`` dir names and the report rows.

One definition for Python (decode_activation_sets, the reports) and the recipe's shell (``bin/activation_tag``), so
the dir a decode writes is the dir scoring looks in. Cheap to import: no torch, no espnet2.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

from espnet2_ext.common import comma_list
from espnet2_ext.task_spec import DEFAULT_TASKS

TASK_ORDER = DEFAULT_TASKS  # canonical order for display and sorting; unknown tasks go last


def task_rank(task: str) -> Tuple[int, str]:
    """Sort key: the canonical tasks in their order, then any other (added) task alphabetically."""
    return (TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER), task)


def order_tasks(tasks: Sequence[str]) -> Tuple[str, ...]:
    """Canonical order (asr, scd, endp, ner, lid, then others alphabetically), duplicates removed."""
    return tuple(sorted(set(tasks), key=task_rank))


def activation_tag(tasks: Union[str, Sequence[str]]) -> str:
    """``"lid, asr"`` or ``["lid", "asr"]`` -> ``"asr+lid"``: the same set always gives the same tag."""
    return "+".join(order_tasks(comma_list(tasks)))
