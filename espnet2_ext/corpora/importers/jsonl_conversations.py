"""Import conversations from the JSON-lines annotation format (documented in docs/data_formats.md).

One conversation per line::

    {"id": "conv1", "audio": "conv1.wav", "language": "en",
     "turns": [{"speaker": "A", "start": 0.0, "end": 2.1, "text": "hello maria",
                "entities": [{"start": 6, "end": 11, "type": "PER"}]}],
     "tasks": ["asr", "scd", "endp", "ner", "lid"]}

Entity spans are character offsets into the turn's raw ``text`` and must cover whole words. ``audio`` is
relative to the JSON-lines file unless absolute. Without ``tasks``, a conversation is annotated for
``asr scd endp``, plus ``ner`` when any of its turns has an ``entities`` key (turns without it have none) and
``lid`` when ``language`` is given. Conversations are cut into chunks like STM imports (shared chunker).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

from espnet2_ext.common import DataError
from espnet2_ext.corpora.importers.stm_conversations import Segment, chunk_segments, chunks_to_utts
from espnet2_ext.data.audio_check import wav_scp_entry, write_dirs
from espnet2_ext.data.kaldi_dir import Utterance, c_sort_key, normalize_words
from espnet2_ext.data.utt2tasks import parse_tasks_field
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, TaskSpec


def _is_boundary(text: str, i: int) -> bool:
    """Offset ``i`` lies between words: at an end of the text or next to a non-alphanumeric character."""
    return i <= 0 or i >= len(text) or not text[i - 1].isalnum() or not text[i].isalnum()


def turn_words(turn: Dict[str, Any], where: str) -> List[str]:
    """Normalised words of a turn with [NE] ... [/NE] inserted at the entity spans."""
    text = turn["text"]
    spans = []
    for k, ent in enumerate(turn.get("entities") or []):
        w = f"{where}, entity {k}"
        if not isinstance(ent, dict) or not isinstance(ent.get("start"), int) or not isinstance(ent.get("end"), int):
            raise DataError(f'{w}: expected {{"start": <int>, "end": <int>, "type": ...}} (character offsets)')
        s, e = ent["start"], ent["end"]
        if not 0 <= s < e <= len(text):
            raise DataError(
                f"{w}: span {s}-{e} outside the text (length {len(text)}); offsets count characters "
                f"of 'text' from 0, end exclusive"
            )
        if not (_is_boundary(text, s) and _is_boundary(text, e)):
            raise DataError(f"{w}: span {s}-{e} ('{text[s:e]}') cuts a word; make it cover whole words")
        spans.append((s, e))
    spans.sort()
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        if s2 < e1:
            raise DataError(f"{where}: entity spans {s1}-{e1} and {s2}-{e2} overlap; entities cannot nest")
    words, pos = [], 0
    for s, e in spans:
        inner = normalize_words(text[s:e].replace("[", " ").replace("]", " ")).split()
        if not inner:
            raise DataError(f"{where}: entity span {s}-{e} ('{text[s:e]}') holds no words")
        words += normalize_words(text[pos:s].replace("[", " ").replace("]", " ")).split()
        words += [NE_OPEN, *inner, NE_CLOSE]
        pos = e
    words += normalize_words(text[pos:].replace("[", " ").replace("]", " ")).split()
    return words


def _conversation(obj: Any, where: str, base: Path, spec: TaskSpec):
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object per line")
    for key, typ in (("id", str), ("audio", str), ("turns", list)):
        if not isinstance(obj.get(key), typ) or not obj.get(key):
            raise DataError(f"{where}: '{key}' missing or not a non-empty {typ.__name__}")
    conv_id = obj["id"]
    if any(c.isspace() for c in conv_id):
        raise DataError(f"{where}: id '{conv_id}' contains whitespace")
    lang = obj.get("language")
    if lang is not None and lang not in spec.languages:
        raise DataError(
            f"{where}: language '{lang}' is not one of {', '.join(spec.languages)}; add it with --languages"
        )
    audio = Path(obj["audio"]) if Path(obj["audio"]).is_absolute() else base / obj["audio"]
    if not audio.is_file():
        raise DataError(f"{where}: audio file {audio} not found (relative paths start at the JSON-lines file)")
    segs = []
    for t, turn in enumerate(obj["turns"]):
        w = f"{where}, turn {t}"
        if not isinstance(turn, dict) or not isinstance(turn.get("text"), str) or not turn.get("speaker"):
            raise DataError(f"{w}: needs 'speaker', 'start', 'end' and 'text'")
        if (
            not all(isinstance(turn.get(k), (int, float)) for k in ("start", "end"))
            or not 0 <= turn["start"] < turn["end"]
        ):
            raise DataError(f"{w}: needs numeric 0 <= start < end (seconds), got {turn.get('start')} {turn.get('end')}")
        segs.append(
            Segment(conv_id, str(turn["speaker"]), float(turn["start"]), float(turn["end"]), turn_words(turn, w), w)
        )
    if "tasks" in obj:
        if not isinstance(obj["tasks"], list):
            raise DataError(f'{where}: \'tasks\' must be a list such as ["asr", "lid"]')
        tasks = list(parse_tasks_field(" ".join(map(str, obj["tasks"])), spec, where))
    else:
        has_ner = any("entities" in t for t in obj["turns"])
        tasks = [
            t
            for t in spec.tasks
            if t in ("asr", "scd", "endp") or (t == "ner" and has_ner) or (t == "lid" and lang is not None)
        ]
    if "lid" in tasks and lang is None:
        raise DataError(f"{where}: tasks include 'lid' but 'language' is missing")
    return conv_id, lang, tasks, wav_scp_entry(audio.absolute()), segs


def import_jsonl(
    src,
    out_dir,
    languages: Sequence[str] = ("en", "de", "es", "fr"),
    max_turns: int = 4,
    max_duration: float = 20.0,
    max_gap: float = 3.0,
    dump_wav_dir=None,
    skip_bad_audio: bool = False,
) -> List[Utterance]:
    """JSON-lines conversations -> Kaldi dir ``out_dir`` (segments into the recordings; with ``dump_wav_dir``,
    16 kHz mono wavs per utterance, all-or-nothing as for ``import_stm``)."""
    src = Path(src)
    spec = TaskSpec.default(languages)
    utts: List[Utterance] = []
    seen: Dict[str, int] = {}
    with src.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{src}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
            conv_id, lang, tasks, wav, segs = _conversation(obj, where, src.parent, spec)
            if conv_id in seen:
                raise DataError(f"{where}: id '{conv_id}' already used on line {seen[conv_id]}; ids must be unique")
            seen[conv_id] = lineno
            chunks = chunk_segments(segs, max_turns, max_duration, max_gap)
            utts += chunks_to_utts(chunks, {conv_id: wav}, tasks, lang)
    if not utts:
        raise DataError(f"{src}: no conversations with words")
    if len({u.lang is None for u in utts}) > 1:
        raise DataError(f"{src}: some conversations give 'language' and others do not; give it for all or none")
    utts = write_dirs(
        [(sorted(utts, key=lambda u: c_sort_key(u.utt_id)), out_dir, dump_wav_dir)],
        skip_bad_audio,
        log_name="import_jsonl",
    )[0]
    print(f"import_jsonl: {src}: {len(seen)} conversations -> {len(utts)} utterances in {out_dir}")
    return utts
