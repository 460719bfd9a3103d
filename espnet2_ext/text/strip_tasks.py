"""Removing the tokens of inactive tasks from a reference (where TokenVerse++ partial labels happen).

What a valid annotation is (checked before anything is stripped) is ``text/annotation.py``.

Text is whitespace-tokenized, so dropping a token also drops the space next to it. ``[NE]``/``[/NE]`` are
removed as a pair while the entity words stay (they belong to ASR).
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence

from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, TaskSpec


def strip_inactive_tokens(text: str, active: Iterable[str], spec: TaskSpec) -> str:
    """Keep words and the tokens of active tasks; drop every other task token."""
    active = set(active)
    kept = [w for w in text.split() if (spec.task_of(w) is None or spec.task_of(w) in active)]
    return " ".join(kept)


def strip_all_task_tokens(text: str, spec: TaskSpec) -> str:
    """Words only (what WER is computed on)."""
    return strip_inactive_tokens(text, (), spec)


def entities(words: Sequence[str]) -> List[str]:
    """Entity strings between ``[NE]`` and ``[/NE]``; an unclosed ``[NE]`` runs to the end."""
    out: List[str] = []
    cur: Optional[List[str]] = None
    for w in words:
        if w == NE_OPEN:
            if cur is not None:
                out.append(" ".join(cur))
            cur = []
        elif w == NE_CLOSE:
            if cur is not None:
                out.append(" ".join(cur))
            cur = None
        elif cur is not None:
            cur.append(w)
    if cur is not None:
        out.append(" ".join(cur))
    return out
