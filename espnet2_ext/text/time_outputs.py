"""Timed decoding results as files people already read: a CTM of words, an RTTM of segments cut at ``[SCD]``, and
one JSON-lines record per utterance with endpoints, speaker changes and entity spans (``events.jsonl``).

Input per utterance: the hypothesis tokens and the time (seconds from the utterance start) each was emitted at.

* words: task tokens are left out; sentencepiece pieces are merged into words (a piece starting with ``▁``, or
  any token after a task token, starts a word); a word starts at its first piece's time and ends one frame shift
  after its last piece's;
* segments: the words between two ``[SCD]`` tokens, from the first word's start to the last word's end. An
  ``[SCD]`` is a *change* of speaker, not an identity: ``labels="alternate"`` names the segments ``A``/``B``
  alternately (two-party calls), ``labels="segment"`` gives every segment its own label;
* with a recording id and offset (utterances cut from a recording with ``segments``), every time is written in
  the recording's clock and the segment labels continue across the utterances of that recording (a chunk
  boundary is not a speaker change; only an ``[SCD]`` is).

Formats (NIST): CTM ``<file> 1 <start> <dur> <word>``; RTTM ``SPEAKER <file> 1 <start> <dur> <NA> <NA> <label>
<NA> <NA>``; both sorted by file and start. ``events.jsonl``: see ``docs/data_formats.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from espnet2_ext.common import DataError, atomic_write_text
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, TaskSpec
from espnet2_ext.utils.kaldi_table import ORIGIN_FILE, c_sort_key, read_table

SPM_SPACE = "\u2581"
SCD, ENDP = "[SCD]", "[ENDP]"
LABEL_MODES = ("alternate", "segment")
SKIPPED = ("<blank>", "<sos/eos>")  # never words
CTM_NAME, RTTM_NAME, EVENTS_NAME = "ctm", "rttm", "events.jsonl"


@dataclass
class Word:
    text: str
    start: float
    end: float
    turn: int  # number of [SCD] tokens before it in the utterance
    entity: Optional[int]  # index of the [NE] span it belongs to


@dataclass
class TimedUtterance:
    """One decoded utterance. ``times`` are seconds from the utterance start; ``recording``/``offset`` place it
    in its recording (``recording`` = the utterance id and offset 0 when it was not cut from one)."""

    utt: str
    tokens: List[str]
    times: List[float]
    frame_shift: float
    duration: float
    recording: Optional[str] = None
    offset: float = 0.0
    words: List[Word] = field(default_factory=list)

    def __post_init__(self):
        if len(self.tokens) != len(self.times):
            raise ValueError(f"utterance {self.utt}: {len(self.tokens)} tokens but {len(self.times)} times")
        if self.recording is None:
            self.recording = self.utt


def surface(token: str) -> str:
    return token[1:] if token.startswith(SPM_SPACE) else token


def timed_words(
    tokens: Sequence[str], times: Sequence[float], shift: float, spec: TaskSpec, subword: bool = True
) -> List[Word]:
    """Words with start/end (utterance clock) from tokens and their emission times; task tokens excluded."""
    words: List[Word] = []
    turn, entity, n_entities, after_tag = 0, None, 0, True
    for tok, t in zip(tokens, times):
        s = surface(tok)
        if spec.is_task_token(s):
            if s == SCD:
                turn += 1
            elif s == NE_OPEN:
                entity, n_entities = n_entities, n_entities + 1
            elif s == NE_CLOSE:
                entity = None
            after_tag = True
            continue
        if tok in SKIPPED or not s:
            if not s:  # a lone "▁" piece: the next piece starts a word
                after_tag = True
            continue
        if words and subword and not tok.startswith(SPM_SPACE) and not after_tag:
            words[-1].text += s
            words[-1].end = round(t + shift, 6)
        else:
            words.append(Word(s, round(t, 6), round(t + shift, 6), turn, entity))
        after_tag = False
    return words


def tag_times(tokens: Sequence[str], times: Sequence[float], tag: str) -> List[float]:
    return [round(t, 6) for tok, t in zip(tokens, times) if surface(tok) == tag]


def entity_spans(words: Sequence[Word]) -> List[Tuple[str, float, float]]:
    spans: Dict[int, List[Word]] = {}
    for w in words:
        if w.entity is not None:
            spans.setdefault(w.entity, []).append(w)
    return [(" ".join(w.text for w in ws), ws[0].start, ws[-1].end) for _, ws in sorted(spans.items())]


def turn_segments(words: Sequence[Word]) -> List[Tuple[float, float, int]]:
    """(start, end, turn index) of the word runs between [SCD] tokens; turns without words are skipped."""
    out: List[Tuple[float, float, int]] = []
    for w in words:
        if out and out[-1][2] == w.turn:
            out[-1] = (out[-1][0], max(out[-1][1], w.end), w.turn)
        else:
            out.append((w.start, w.end, w.turn))
    return out


def _label(mode: str, index: int) -> str:
    return "AB"[index % 2] if mode == "alternate" else f"seg{index:03d}"


def build(utts: Iterable[TimedUtterance], spec: TaskSpec, subword: bool = True, labels: str = "alternate"):
    """CTM lines, RTTM lines and JSON records of ``utts`` (times in the recording clock)."""
    if labels not in LABEL_MODES:
        raise ValueError(f"RTTM labels '{labels}' unknown: choose {' or '.join(LABEL_MODES)}")
    by_rec: Dict[str, List[TimedUtterance]] = {}
    for u in utts:
        by_rec.setdefault(u.recording, []).append(u)
    ctm: List[Tuple[bytes, float, str]] = []
    rttm: List[Tuple[bytes, float, str]] = []
    records: List[Tuple[bytes, dict]] = []
    for rec in sorted(by_rec, key=c_sort_key):
        turn_base = 0  # speaker-turn counter continued across the utterances of a recording
        for u in sorted(by_rec[rec], key=lambda x: (x.offset, c_sort_key(x.utt))):
            off = u.offset
            words = u.words = timed_words(u.tokens, u.times, u.frame_shift, spec, subword)
            for w in words:
                ctm.append(
                    (c_sort_key(rec), w.start + off, f"{rec} 1 {w.start + off:.3f} {w.end - w.start:.3f} {w.text}")
                )
            segs = []
            n_scd = sum(1 for t in u.tokens if surface(t) == SCD)
            for s, e, turn in turn_segments(words):
                lab = _label(labels, turn_base + turn)
                segs.append([round(s + off, 3), round(e + off, 3), lab])
                rttm.append(
                    (c_sort_key(rec), s + off, f"SPEAKER {rec} 1 {s + off:.3f} {e - s:.3f} <NA> <NA> {lab} <NA> <NA>")
                )
            turn_base += n_scd
            shifted = lambda ts: [round(t + off, 3) for t in ts]  # noqa: E731
            records.append(
                (
                    c_sort_key(u.utt),
                    {
                        "utt": u.utt,
                        "recording": rec,
                        "offset": round(off, 3),
                        "duration": round(u.duration, 3),
                        "frame_shift": u.frame_shift,
                        "tokens": list(u.tokens),
                        "token_times": shifted(u.times),
                        "words": [[w.text, round(w.start + off, 3), round(w.end + off, 3)] for w in words],
                        "speaker_changes": shifted(tag_times(u.tokens, u.times, SCD)),
                        "endpoints": shifted(tag_times(u.tokens, u.times, ENDP)),
                        "entities": [
                            {"text": t, "start": round(s + off, 3), "end": round(e + off, 3)}
                            for t, s, e in entity_spans(words)
                        ],
                        "segments": segs,
                    },
                )
            )
    ctm.sort(key=lambda x: (x[0], x[1]))
    rttm.sort(key=lambda x: (x[0], x[1]))
    records.sort(key=lambda x: x[0])
    return [x[2] for x in ctm], [x[2] for x in rttm], [r for _, r in records]


def write_time_outputs(
    out_dir: Union[str, Path],
    utts: Iterable[TimedUtterance],
    spec: TaskSpec,
    subword: bool = True,
    labels: str = "alternate",
) -> Dict[str, Path]:
    """Write ``ctm``, ``rttm`` and ``events.jsonl`` into ``out_dir`` (each atomically)."""
    ctm, rttm, records = build(utts, spec, subword, labels)
    out_dir = Path(out_dir)
    paths = {CTM_NAME: out_dir / CTM_NAME, RTTM_NAME: out_dir / RTTM_NAME, EVENTS_NAME: out_dir / EVENTS_NAME}
    atomic_write_text(paths[CTM_NAME], "".join(line + "\n" for line in ctm))
    atomic_write_text(paths[RTTM_NAME], "".join(line + "\n" for line in rttm))
    atomic_write_text(paths[EVENTS_NAME], "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return paths


@dataclass
class UttEvents:
    """What the scorer needs from one ``events.jsonl`` record, in the utterance clock."""

    utt: str
    duration: float
    frame_shift: float
    words: List[Tuple[str, float, float]]
    speaker_changes: List[float]
    endpoints: List[float]
    recording: str = ""
    offset: float = 0.0


def read_events(path: Union[str, Path]) -> Dict[str, UttEvents]:
    """``events.jsonl`` -> utt -> events with times moved back to the utterance clock."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such file; decode with espnet2_ext.bin.asr_inference, which writes it next to 1best_recog/text"
        )
    out: Dict[str, UttEvents] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                r = json.loads(line)
                off = float(r.get("offset", 0.0))
                ev = UttEvents(
                    str(r["utt"]),
                    float(r["duration"]),
                    float(r["frame_shift"]),
                    [(str(w), float(s) - off, float(e) - off) for w, s, e in r["words"]],
                    [float(t) - off for t in r["speaker_changes"]],
                    [float(t) - off for t in r["endpoints"]],
                    str(r.get("recording", r["utt"])),
                    off,
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise DataError(
                    f"{where}: not an events.jsonl record ({type(e).__name__}: {e}); re-decode to rewrite the file"
                ) from None
            if ev.utt in out:
                raise DataError(f"{where}: duplicate utterance {ev.utt}; keep one record per utterance")
            out[ev.utt] = ev
    return out


def read_origins(data_dir: Union[str, Path]) -> Dict[str, Tuple[str, float]]:
    """utt -> (recording, start) from a data dir's ``segments`` or ``orig_segments`` (empty when it has neither)."""
    d = Path(data_dir)
    for name in ("segments", ORIGIN_FILE):
        if (d / name).is_file():
            table = read_table(d / name, strict=False)
            out = {}
            for utt, value in table.values.items():
                f = value.split()
                try:
                    out[utt] = (f[0], float(f[1]))
                except (IndexError, ValueError):
                    raise DataError(f"{table.where(utt)}: expected '<utt-id> <recording-id> <start> <end>'") from None
            return out
    return {}
