"""What a valid annotated transcript is: the one place for the task-token rules.

``annotation_error`` is what training checks on every reference (``train/preprocessor.py``);
``transcript_error`` adds the data-dir rules that ``validate_data_dir`` checks (language tokens of the spec, first,
matching utt2lang, not only tags).
"""

from __future__ import annotations

import re
import unicodedata
from typing import List, Optional, Sequence, Tuple

from espnet2_ext.common import WORD_BOUNDARY
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, TaskSpec

# A language token's shape ([EN]): one that the spec lacks is a language to add, not a typo of a task tag.
_LANGUAGE_TOKEN = re.compile(r"\[[A-Z]{2}\]")


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
                return (
                    f"unknown tag {w} (known task tokens: {' '.join(spec.all_tokens)}); add it to the task "
                    f"spec or remove it"
                )
            hidden = hidden_task_token(w, spec)
            if hidden:
                return (
                    f"word {w!r} turns into the task token {hidden} under the tokenizer's Unicode normalisation "
                    f"(NFKC, control characters dropped, U+2581 read as a space); write {hidden} on its own or "
                    f"remove it"
                )
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


def transcript_error(
    text: str, spec: TaskSpec, tasks: Sequence[str], lang: Optional[str] = None, lang_where: str = "utt2lang"
) -> Optional[str]:
    """Why ``text`` is not a valid data-dir transcript for an utterance annotated for ``tasks`` (None when it is):
    ``annotation_error`` plus the language-token rules; ``lang`` is its utt2lang value (``lang_where`` names it)."""
    words = text.split()
    if not words:
        return "empty transcript; add its words or drop the utterance (fix_data_dir)"
    for w in words:
        if _LANGUAGE_TOKEN.fullmatch(w) and not spec.is_task_token(w) and w != NE_OPEN:
            return (
                f"language token {w} is not in the task spec (languages: {', '.join(spec.languages)}); add "
                f"the language (--languages) or fix the text"
            )
    err = annotation_error(text, spec, tasks)
    if err:
        return err
    lang_pos = [i for i, w in enumerate(words) if spec.task_of(w) == "lid"]
    if lang_pos and lang_pos[0] != 0:
        return f"language token {words[lang_pos[0]]} must be the first token"
    if "lid" in tasks and not lang_pos:
        return "utt2tasks lists 'lid' but the text has no language token; put e.g. [EN] first"
    if not any(spec.task_of(w) is None for w in words):
        return "no words, only task tokens; drop the utterance or add its transcript"
    if lang_pos and lang is not None and words[0] != f"[{lang.upper()}]":
        return f"language token {words[0]} disagrees with {lang_where} '{lang}'"
    return None


def is_tag_token(tok: str) -> bool:
    return len(tok) > 2 and tok[0] == "[" and tok[-1] == "]"


def entity_spans(tokens: Sequence, open_tag=NE_OPEN, is_tag=is_tag_token) -> List[Tuple[int, int]]:
    """[start, end) index ranges of the entity spans: the items after each ``open_tag`` up to the next tag
    (``is_tag``). Words by default; token ids with ``open_tag`` = the ``[NE]`` id and a tag-id test
    (``transducer/span_rescore.py``)."""
    spans = []
    i = 0
    while i < len(tokens):
        if tokens[i] == open_tag:
            j = i + 1
            while j < len(tokens) and not is_tag(tokens[j]):
                j += 1
            if j > i + 1:
                spans.append((i + 1, j))
            i = j
        else:
            i += 1
    return spans
