"""Removing the tokens of inactive tasks from a reference (where TokenVerse++ partial labels happen).

Text is whitespace-tokenized, so dropping a token also drops the space next to it. ``[NE]``/``[/NE]`` are
removed as a pair while the entity words stay (they belong to ASR).
"""
from __future__ import annotations

import unicodedata
from typing import Iterable, List, Optional, Sequence

from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, TaskSpec

WORD_BOUNDARY = "\u2581"  # sentencepiece reads it as a space


def strip_inactive_tokens(text: str, active: Iterable[str], spec: TaskSpec) -> str:
    """Keep words and the tokens of active tasks; drop every other task token."""
    active = set(active)
    kept = [w for w in text.split() if (spec.task_of(w) is None or spec.task_of(w) in active)]
    return " ".join(kept)


def strip_all_task_tokens(text: str, spec: TaskSpec) -> str:
    """Words only (what WER is computed on)."""
    return strip_inactive_tokens(text, (), spec)


def hidden_task_token(word: str, spec: TaskSpec) -> Optional[str]:
    """The task token that ``word`` (not itself one) becomes once sentencepiece normalises it, if any.

    ``［SCD］`` (full-width), ``\u2581[SCD]`` or ``\x01[SCD]`` are words to the stripping code but ``[SCD]`` to the
    tokenizer: left in, a tag of an inactive task would reach the model's targets.
    """
    if word.isascii() and word.isprintable():
        return None  # NFKC leaves printable ASCII alone
    norm = "".join(c for c in unicodedata.normalize("NFKC", word) if unicodedata.category(c) not in ("Cc", "Cf"))
    return next((p for p in norm.replace(WORD_BOUNDARY, " ").split() if spec.is_task_token(p)), None)


def annotation_error(text: str, spec: TaskSpec, available: Optional[Sequence[str]] = None) -> Optional[str]:
    """Why ``text`` is not a valid annotation (None when it is).

    Checks: unknown bracketed tags, words that the tokenizer's normalisation turns into a task token, tokens of
    tasks that ``available`` says are not annotated, unbalanced or nested ``[NE]``/``[/NE]``, more than one
    language token.
    """
    words = text.split()
    if not words:
        return "empty text"
    avail = set(available) if available is not None else None
    depth = 0
    n_lang = 0
    for w in words:
        task = spec.task_of(w)
        if task is None:
            if spec.looks_like_tag(w):
                return (f"unknown tag {w} (known task tokens: {' '.join(spec.all_tokens)}); add it to the task "
                        f"spec or remove it")
            hidden = hidden_task_token(w, spec)
            if hidden:
                return (f"word {w!r} turns into the task token {hidden} under the tokenizer's Unicode normalisation "
                        f"(NFKC, control characters dropped, U+2581 read as a space); write {hidden} on its own or "
                        f"remove it")
            continue
        if avail is not None and task not in avail:
            return f"token {w} belongs to task '{task}', which utt2tasks does not list for this utterance"
        if w == NE_OPEN:
            if depth:
                return f"nested {NE_OPEN}: close the previous entity with {NE_CLOSE} first"
            depth = 1
        elif w == NE_CLOSE:
            if not depth:
                return f"{NE_CLOSE} without an opening {NE_OPEN}"
            depth = 0
        elif task == "lid":
            n_lang += 1
    if depth:
        return f"{NE_OPEN} is never closed with {NE_CLOSE}"
    if n_lang > 1:
        return "more than one language token"
    return None


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
