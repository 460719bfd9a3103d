"""Kaldi data directories as typed records: write, read, validate, fix, subset.

Replaces the Kaldi ``utils/`` scripts that ESPnet's asr.sh relies on (validate_data_dir.sh, fix_data_dir.sh,
utt2spk_to_spk2utt.pl, subset_data_dir.sh) so recipes run without a Kaldi checkout. Layout of a dir::

    wav.scp    <utt-id> <path or "cmd |">        (<recording-id> ... when segments exists)
    segments   <utt-id> <recording-id> <start> <end>   (optional)
    utt2turns  <utt-id> <start> <end> <speaker> ...    (optional: reference turn times, see ref_turns.py)
    orig_segments <utt-id> <recording-id> <start> <end> (optional: where a dumped utterance was cut from)
    text       <utt-id> [LANG] words [NE] ... [/NE] ... [ENDP] [SCD] ...
    utt2spk / spk2utt / utt2lang / utt2tasks / utt2dur (optional)

Every file is sorted in C-locale byte order; utterance ids start with their speaker id so that sorting by
utterance also groups speakers (what Kaldi checks).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from espnet2_ext.common import DataError, atomic_dir
from espnet2_ext.text.normalize import normalize_words  # noqa: F401  (re-exported: importers use it from here)
from espnet2_ext.utils.kaldi_table import ORIGIN_FILE, TURNS_FILE, Table, c_sort_key, read_table  # noqa: F401  (re-exported)

PathLike = Union[str, Path]
REQUIRED_FILES = ("wav.scp", "text", "utt2spk", "utt2tasks")
HOW_TO_CREATE = {
    "wav.scp": "write '<utt-id> <audio path>' per utterance",
    "text": "write '<utt-id> <transcript>' per utterance",
    "utt2spk": "write '<utt-id> <speaker-id>' per utterance",
    "utt2tasks": "write '<utt-id> asr [scd endp ner lid]' per utterance",
}


@dataclass(frozen=True)
class Utterance:
    """One line in each file of a data dir. ``wav`` is a path or a Kaldi pipe (``sox x.mp3 ... |``); with
    ``recording_id`` set, ``wav`` is the recording's audio and ``start``/``end`` (seconds) cut the utterance."""

    utt_id: str
    speaker: str
    text: str
    lang: Optional[str]
    tasks: Tuple[str, ...]
    wav: str
    start: Optional[float] = None
    end: Optional[float] = None
    recording_id: Optional[str] = None
    duration: Optional[float] = None
    turns: Optional[tuple] = None  # reference turns (ref_turns.RefTurn), in this utterance's clock
    origin: Optional[Tuple[str, float, float]] = None  # (recording, start, end) it was cut from, once dumped

    @property
    def length(self) -> Optional[float]:
        """Seconds: the segment length, else ``duration`` (None when unknown)."""
        if self.start is not None and self.end is not None:
            return self.end - self.start
        return self.duration


# ---------------------------------------------------------------------------------------------- writing


def _check_records(utts: Sequence[Utterance]) -> None:
    seen = set()
    for u in utts:
        if not u.utt_id or any(c.isspace() for c in u.utt_id) or not u.speaker or any(c.isspace() for c in u.speaker):
            raise DataError(f"utterance '{u.utt_id}' (speaker '{u.speaker}'): ids must be non-empty without spaces")
        if u.utt_id in seen:
            raise DataError(f"utterance {u.utt_id}: duplicate utterance id; make ids unique")
        seen.add(u.utt_id)
        if not u.text.strip():
            raise DataError(f"utterance {u.utt_id}: empty text; drop the utterance or give its transcript")
        if not u.tasks:
            raise DataError(f"utterance {u.utt_id}: no tasks; list at least 'asr'")
    if any(u.recording_id is not None for u in utts):
        bad = [u.utt_id for u in utts if u.recording_id is None or u.start is None or u.end is None]
        if bad:
            raise DataError(
                f"utterance {bad[0]}: has no recording_id/start/end while others do; a data dir uses "
                f"segments for all utterances or for none"
            )
        bad = [u.utt_id for u in utts if not (0 <= u.start < u.end)]
        if bad:
            raise DataError(f"utterance {bad[0]}: segment needs 0 <= start < end")
    if any(u.lang is not None for u in utts) and any(u.lang is None for u in utts):
        raise DataError(
            f"utterance {next(u.utt_id for u in utts if u.lang is None)}: no language while others "
            f"have one; give every utterance a language or none"
        )
    prev = None
    for u in utts:  # utts are sorted by id: speakers must come out sorted too (Kaldi's spk2utt invariant)
        if prev is not None and c_sort_key(u.speaker) < c_sort_key(prev.speaker):
            raise DataError(
                f"utterance {u.utt_id} (speaker {u.speaker}) sorts after {prev.utt_id} (speaker "
                f"{prev.speaker}); start every utterance id with its speaker id followed by '-'"
            )
        prev = u


def _render(utts: Sequence[Utterance]) -> Dict[str, List[str]]:
    files: Dict[str, List[str]] = {
        "text": [f"{u.utt_id} {u.text.strip()}" for u in utts],
        "utt2spk": [f"{u.utt_id} {u.speaker}" for u in utts],
        "utt2tasks": [f"{u.utt_id} {' '.join(u.tasks)}" for u in utts],
    }
    spk2utt: Dict[str, List[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.speaker, []).append(u.utt_id)
    files["spk2utt"] = [f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt, key=c_sort_key)]
    if utts and utts[0].lang is not None:
        files["utt2lang"] = [f"{u.utt_id} {u.lang}" for u in utts]
    if utts and utts[0].recording_id is not None:
        files["segments"] = [f"{u.utt_id} {u.recording_id} {u.start:.3f} {u.end:.3f}" for u in utts]
        rec2wav: Dict[str, str] = {}
        for u in utts:
            if rec2wav.setdefault(u.recording_id, u.wav) != u.wav:
                raise DataError(f"utterance {u.utt_id}: recording {u.recording_id} has two different audio entries")
        files["wav.scp"] = [f"{r} {rec2wav[r]}" for r in sorted(rec2wav, key=c_sort_key)]
    else:
        files["wav.scp"] = [f"{u.utt_id} {u.wav}" for u in utts]
    if utts and all(u.length is not None for u in utts):
        files["utt2dur"] = [f"{u.utt_id} {u.length:.3f}" for u in utts]
    # Optional per-utterance files that may cover a subset (e.g. conversations with turn times next to read speech).
    from espnet2_ext.data.ref_turns import FILE_NAME as TURNS_FILE
    from espnet2_ext.data.ref_turns import format_turns

    if any(u.turns for u in utts):
        files[TURNS_FILE] = [f"{u.utt_id} {format_turns(u.turns)}" for u in utts if u.turns]
    if any(u.origin for u in utts):
        files[ORIGIN_FILE] = [f"{u.utt_id} {u.origin[0]} {u.origin[1]:.3f} {u.origin[2]:.3f}" for u in utts if u.origin]
    return files


def write_data_dir(utts: Iterable[Utterance], out_dir: PathLike) -> Path:
    """Write a complete, sorted data dir. It is built in a temporary sibling dir and renamed into place, so
    ``out_dir`` is never half-written; an existing ``out_dir`` is replaced."""
    utts = sorted(utts, key=lambda u: c_sort_key(u.utt_id))
    if not utts:
        raise DataError(f"{out_dir}: no utterances to write")
    _check_records(utts)
    files = _render(utts)
    with atomic_dir(out_dir) as tmp:
        for name, lines in files.items():
            with open(tmp / name, "w", encoding="utf-8", newline="\n") as f:
                f.writelines(line + "\n" for line in lines)
    return Path(out_dir)


# ---------------------------------------------------------------------------------------------- reading


def _build(d: Path, tables: Dict[str, Table], ids: Sequence[str]) -> List[Utterance]:
    utts = []
    for utt in ids:
        kw = dict(
            utt_id=utt,
            speaker=tables["utt2spk"].values[utt],
            text=tables["text"].values[utt],
            lang=tables["utt2lang"].values[utt] if "utt2lang" in tables else None,
            tasks=tuple(tables["utt2tasks"].values[utt].split()),
        )
        if "segments" in tables:
            fields = tables["segments"].values[utt].split()
            if len(fields) != 3:
                raise DataError(f"{tables['segments'].where(utt)}: expected '<utt-id> <recording-id> <start> <end>'")
            rec = fields[0]
            kw.update(
                recording_id=rec,
                wav=tables["wav.scp"].values[rec],
                start=tables["segments"].number(utt, fields[1]),
                end=tables["segments"].number(utt, fields[2]),
            )
        else:
            kw["wav"] = tables["wav.scp"].values[utt]
        if "utt2dur" in tables:
            kw["duration"] = tables["utt2dur"].number(utt, tables["utt2dur"].values[utt])
        if TURNS_FILE in tables and utt in tables[TURNS_FILE].values:
            from espnet2_ext.data.ref_turns import parse_turns

            kw["turns"] = parse_turns(tables[TURNS_FILE].values[utt], tables[TURNS_FILE].where(utt))
        if ORIGIN_FILE in tables and utt in tables[ORIGIN_FILE].values:
            f = tables[ORIGIN_FILE].values[utt].split()
            if len(f) != 3:
                raise DataError(f"{tables[ORIGIN_FILE].where(utt)}: expected '<utt-id> <recording-id> <start> <end>'")
            kw["origin"] = (f[0], tables[ORIGIN_FILE].number(utt, f[1]), tables[ORIGIN_FILE].number(utt, f[2]))
        utts.append(Utterance(**kw))
    return utts


def _utt_files(tables: Dict[str, Table]) -> List[str]:
    names = ["text", "utt2spk", "utt2tasks", "utt2lang", "utt2dur", "segments"]
    if "segments" not in tables:
        names.append("wav.scp")
    return [n for n in names if n in tables]


def read_tables(data_dir: PathLike, strict: bool) -> Dict[str, Table]:
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"{d}: not a directory; create the data dir first")
    for name in REQUIRED_FILES:
        if not (d / name).is_file():
            raise DataError(f"{d / name}: missing required file; {HOW_TO_CREATE[name]}")
    names = (
        "wav.scp",
        "text",
        "utt2spk",
        "utt2tasks",
        "utt2lang",
        "utt2dur",
        "segments",
        "spk2utt",
        TURNS_FILE,
        ORIGIN_FILE,
    )
    return {n: read_table(d / n, strict) for n in names if (d / n).is_file()}


def check_consistent(tables: Dict[str, Table]) -> None:
    """Every per-utterance file has exactly the utterances of ``text``; segments point at wav.scp."""
    text = tables["text"]
    for name in _utt_files(tables):
        other = tables[name]
        for key in other.values:
            if key not in text.values:
                raise DataError(
                    f"{other.where(key)}: utterance not in {text.path}; remove the line or run fix_data_dir"
                )
        for key in text.values:
            if key not in other.values:
                raise DataError(
                    f"{text.where(key)}: utterance missing from {other.path}; add it there or run "
                    f"fix_data_dir (drops it)"
                )
    for name in (TURNS_FILE, ORIGIN_FILE):  # may cover a subset of the utterances, never more
        if name in tables:
            for key in tables[name].values:
                if key not in text.values:
                    raise DataError(
                        f"{tables[name].where(key)}: utterance not in {text.path}; remove the line or run fix_data_dir"
                    )
    if "segments" in tables:
        seg, wav = tables["segments"], tables["wav.scp"]
        for key, value in seg.values.items():
            fields = value.split()
            if len(fields) != 3 or not 0 <= seg.number(key, fields[1]) < seg.number(key, fields[2]):
                raise DataError(
                    f"{seg.where(key)}: expected '<utt-id> <recording-id> <start> <end>' with 0 <= start < end"
                )
            rec = fields[0]
            if rec not in wav.values:
                raise DataError(f"{seg.where(key)}: recording '{rec}' not in {wav.path}; add its audio there")


def read_data_dir(data_dir: PathLike) -> List[Utterance]:
    """All utterances of a data dir, in file order. Raises ``DataError`` when files disagree."""
    tables = read_tables(data_dir, strict=False)
    check_consistent(tables)
    return _build(Path(data_dir), tables, list(tables["text"].values))


def fix_data_dir(src: PathLike, dst: PathLike, verbose: bool = True) -> List[Utterance]:
    """Like Kaldi's fix_data_dir.sh but into a new dir: keep utterances present in every file with a
    non-empty text, sort, rebuild spk2utt. ``src`` is not modified."""
    tables = read_tables(src, strict=False)
    keep = [k for k in tables["text"].values if tables["text"].values[k].strip()]
    for name in _utt_files(tables):
        keep = [k for k in keep if k in tables[name].values]
    if "segments" in tables:
        wav = tables["wav.scp"].values
        keep = [k for k in keep if (tables["segments"].values[k].split() or [""])[0] in wav]
    dropped = len(set().union(*(set(tables[n].values) for n in _utt_files(tables)))) - len(keep)
    utts = sorted(_build(Path(src), tables, keep), key=lambda u: c_sort_key(u.utt_id))
    write_data_dir(utts, dst)
    if verbose:
        print(
            f"fix_data_dir: {src} -> {dst}: kept {len(keep)} utterances, dropped {dropped} (missing from a "
            f"file or empty text)"
        )
    return utts


# ---------------------------------------------------------------------------------------------- subsets
def with_durations(utts: Iterable[Utterance]) -> List[Utterance]:
    """Fill ``duration`` from the audio header where neither segments nor utt2dur give it (plain paths)."""
    from espnet2_ext.data.audio_io import audio_duration, is_plain_path  # here: audio_io imports numpy

    out = []
    for u in utts:
        if u.length is None:
            if not is_plain_path(u.wav):
                raise DataError(f"utterance {u.utt_id}: duration unknown for pipe entry '{u.wav}'; write utt2dur")
            u = replace(u, duration=audio_duration(u.wav))
        out.append(u)
    return out


def filter_by_duration(utts: Iterable[Utterance], min_s: float = 0.0, max_s: float = float("inf")) -> List[Utterance]:
    """Utterances with ``min_s <= length <= max_s`` (lengths from segments, utt2dur or the audio header)."""
    return [u for u in with_durations(utts) if min_s <= u.length <= max_s]


def subset(
    utts: Sequence[Utterance],
    ids: Optional[Iterable[str]] = None,
    speakers: Optional[Iterable[str]] = None,
    n: Optional[int] = None,
    seed: Optional[int] = None,
) -> List[Utterance]:
    """Select by utterance ids and/or speakers, then ``n`` of them: the first ``n`` in id order, or ``n``
    drawn at random with ``seed``."""
    out = list(utts)
    if ids is not None:
        wanted = set(ids)
        out = [u for u in out if u.utt_id in wanted]
    if speakers is not None:
        spk = set(speakers)
        out = [u for u in out if u.speaker in spk]
    out.sort(key=lambda u: c_sort_key(u.utt_id))
    if n is not None and n < len(out):
        out = (
            sorted(random.Random(seed).sample(out, n), key=lambda u: c_sort_key(u.utt_id))
            if seed is not None
            else out[:n]
        )
    return out


def split_by_speaker(utts: Sequence[Utterance], n: int) -> List[List[Utterance]]:
    """``n`` parts with no speaker in two parts, balanced by utterance count (greedy, largest speakers first)."""
    by_spk: Dict[str, List[Utterance]] = {}
    for u in utts:
        by_spk.setdefault(u.speaker, []).append(u)
    if n < 1 or n > len(by_spk):
        raise ValueError(f"cannot split {len(by_spk)} speakers into {n} parts")
    parts: List[List[Utterance]] = [[] for _ in range(n)]
    for spk in sorted(by_spk, key=lambda s: (-len(by_spk[s]), c_sort_key(s))):
        min(parts, key=len).extend(by_spk[spk])
    return [sorted(p, key=lambda u: c_sort_key(u.utt_id)) for p in parts]
