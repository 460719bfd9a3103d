"""Reference turn times of an utterance: the optional data-dir file ``utt2turns``.

One line per utterance, its turns as ``<start> <end> <speaker>`` triples in the utterance's own clock (seconds from
the start of the utterance's audio, so they stay valid when a segment is dumped into its own wav)::

    en-c01-test-c0003 0.150 1.720 en-c01 2.010 3.480 en-c04 3.800 5.020 en-c04
    rec1-A-rec1-0000000-0001200 0.000 4.100 rec1-A +3.900 7.200 rec1-B

Turns are sorted by start and do not overlap; a turn that is meant to overlap the previous one (cross-talk in a
real call) is marked by writing its start with a leading ``+`` (``+3.900``), which any float parser still reads.
Consecutive turns of the same speaker (a pause in one speaker's speech) are separate turns: each ends with an
``[ENDP]`` in the reference text, and only a speaker change carries ``[SCD]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from espnet2_ext.common import DataError

FILE_NAME = "utt2turns"
OVERLAP_MARK = "+"
TOLERANCE_S = 0.05  # times may pass the audio end by this much (rounding of durations)


@dataclass(frozen=True)
class RefTurn:
    start: float
    end: float
    speaker: str
    overlap: bool = False  # explicitly allowed to start before the previous turn ended


def format_turns(turns: Sequence[RefTurn]) -> str:
    return " ".join(f"{OVERLAP_MARK if t.overlap else ''}{t.start:.3f} {t.end:.3f} {t.speaker}" for t in turns)


def parse_turns(value: str, where: str) -> Tuple[RefTurn, ...]:
    """Turns of one ``utt2turns`` line (its value after the utterance id); ``where`` names file:line (utt)."""
    f = value.split()
    if not f or len(f) % 3:
        raise DataError(
            f"{where}: expected '<start> <end> <speaker>' triples after the utterance id, got {len(f)} fields"
        )
    out = []
    for i in range(0, len(f), 3):
        start_s, end_s, spk = f[i : i + 3]
        try:
            start, end = float(start_s), float(end_s)
        except ValueError:
            raise DataError(f"{where}: turn {i // 3 + 1}: start/end '{start_s}' '{end_s}' are not numbers") from None
        out.append(RefTurn(start, end, spk, start_s.startswith(OVERLAP_MARK)))
    return tuple(out)


def turns_problem(turns: Sequence[RefTurn], duration: Optional[float]) -> Optional[str]:
    """Why the turns are not valid (None when they are): 0 <= start < end, sorted by start, within the audio
    (``duration`` seconds, unknown: None), no overlap with the previous turn unless marked."""
    prev: Optional[RefTurn] = None
    for k, t in enumerate(turns, 1):
        if not 0 <= t.start < t.end:
            return f"turn {k}: need 0 <= start < end, got {t.start} {t.end}"
        if duration is not None and t.end > duration + TOLERANCE_S:
            return f"turn {k}: ends at {t.end:.3f} s but the audio lasts {duration:.3f} s; fix the turn times"
        if prev is not None:
            if t.start < prev.start:
                return f"turn {k}: starts at {t.start:.3f} s, before turn {k - 1} ({prev.start:.3f} s); sort by start"
            if t.start < prev.end and not t.overlap:
                return (
                    f"turn {k}: starts at {t.start:.3f} s, before turn {k - 1} ends ({prev.end:.3f} s); fix "
                    f"the times or mark the overlap with '{OVERLAP_MARK}{t.start:.3f}'"
                )
        prev = t
    return None


def turns_relative(segments: Sequence[Tuple[float, float, str]], origin: float) -> Tuple[RefTurn, ...]:
    """Turns of (start, end, speaker) segments in a recording, moved into the clock of an utterance starting at
    ``origin``; a turn starting before the previous ends is marked as overlapping."""
    out: List[RefTurn] = []
    for s, e, spk in sorted(segments, key=lambda x: (x[0], x[1])):
        overlap = bool(out) and s - origin < out[-1].end - 1e-9
        out.append(RefTurn(round(max(0.0, s - origin), 3), round(e - origin, 3), spk, overlap))
    return tuple(out)
