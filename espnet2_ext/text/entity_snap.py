"""Entity snapping: inside each ``[NE] … [/NE]`` span of a hypothesis, the words become the biasing-list phrase
closest in spelling, when it is close enough.

Why: contextual biasing (``asr/transducer/context_graph.py``) only re-ranks spellings the search already holds.
A small model hears a name it never saw in training as a near-miss (``lufthanser`` for ``lufthansa``), and no token
bonus brings the right spelling into the beam. The entity tags say where a name is; the list says which names
are likely. So the span is matched against the list: the phrase with the smallest normalised Levenshtein distance
(rapidfuzz; spaces ignored, since a misheard name is often split at the wrong place) replaces the span's words if
that distance is at most ``max_distance`` (0 = exact matches only = no change; 1 = always the nearest phrase).
Words outside entity spans are never changed, so the rest of the transcript keeps the model's output. A span runs
from ``[NE]`` to the next tag (its ``[/NE]``, or whatever tag cuts an unclosed span short).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

from espnet2_ext.common import DataError
from espnet2_ext.text.annotation import entity_spans


@dataclass(frozen=True)
class Snap:
    """One replaced span: the hypothesis words, the phrase that replaced them, their distance."""

    heard: str
    phrase: str
    distance: float


def _squeeze(text: str) -> str:
    return text.replace(" ", "")


def check_max_distance(max_distance: float) -> float:
    if not 0.0 <= max_distance <= 1.0:
        raise DataError(f"entity snapping: max distance {max_distance} is outside [0, 1]; give e.g. 0.3")
    return max_distance


def snap_entities(tokens: Sequence[str], phrases: Sequence[str], max_distance: float) -> Tuple[List[str], List[Snap]]:
    """``tokens`` (a hypothesis, tags included) with each entity span replaced by its nearest phrase when the
    distance is at most ``max_distance``; and the replacements made (a span already equal to a phrase is none)."""
    check_max_distance(max_distance)
    out = list(tokens)
    snaps: List[Snap] = []
    if not phrases:
        return out, snaps
    # spans are replaced right to left, so the indices of the spans still to do stay valid
    for start, end in reversed(entity_spans(tokens)):
        heard = " ".join(tokens[start:end])
        best = process.extractOne(
            heard, phrases, scorer=Levenshtein.normalized_distance, processor=_squeeze, score_cutoff=max_distance
        )
        if best is None or best[0] == heard:
            continue
        phrase, distance, _ = best
        out[start:end] = phrase.split()
        snaps.append(Snap(heard, phrase, float(distance)))
    snaps.reverse()
    return out, snaps


def snap_texts(
    texts: Dict[str, Sequence[str]], phrases_of: Dict[str, Sequence[str]], max_distance: float
) -> Tuple[Dict[str, List[str]], Dict[str, List[Snap]]]:
    """``snap_entities`` per utterance; an utterance without a list is kept as it is."""
    out, snaps = {}, {}
    for utt, tokens in texts.items():
        out[utt], made = snap_entities(tokens, phrases_of.get(utt, ()), max_distance)
        if made:
            snaps[utt] = made
    return out, snaps
