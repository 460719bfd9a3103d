"""Import conversations transcribed in STM (optionally with an RTTM) as TokenVerse utterances.

STM lines: ``<file> <channel> <speaker> <start> <end> [<label>] transcript`` (``;;`` starts a comment;
``ignore_time_segment_in_scoring`` marks unusable audio). Consecutive segments of a recording are grouped into
chunks of at most ``max_turns`` segments / ``max_duration`` seconds (a gap longer than ``max_gap`` or an
ignored segment starts a new chunk). Each chunk is one utterance cut from the recording with ``segments``::

    [EN] hello [NE] maria [/NE] [ENDP] [SCD] hi how are you [ENDP]

``[ENDP]`` ends every segment, ``[SCD]`` marks a speaker change, ``[NE]`` spans come from inline annotation or
a longest-match entity list. utt2tasks lists only what the source can provide: ``asr scd endp`` + ``ner`` (entity
source) + ``lid`` (``--lang``). The chunker is shared with the JSON-lines importer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from espnet2_ext.common import DataError
from espnet2_ext.data.audio_check import wav_scp_entry, write_dirs
from espnet2_ext.data.kaldi_dir import Utterance, c_sort_key, normalize_words, read_table
from espnet2_ext.data.ref_turns import turns_relative
from espnet2_ext.task_spec import NE_CLOSE, NE_OPEN, language_token

IGNORE = "ignore_time_segment_in_scoring"
AUDIO_EXTENSIONS = (".wav", ".flac", ".sph", ".mp3", ".ogg", ".opus")


@dataclass
class Segment:
    """One turn: words may carry [NE] ... [/NE]. ``words is None`` marks an ignored region (chunk break)."""

    recording: str
    speaker: str
    start: float
    end: float
    words: Optional[List[str]]
    where: str = ""


# ---------------------------------------------------------------------------------------------- chunking
def chunk_segments(
    segs: Sequence[Segment], max_turns: int = 4, max_duration: float = 20.0, max_gap: float = 3.0
) -> List[List[Segment]]:
    """Group time-sorted segments of one recording into chunks (ignored segments only break chunks)."""
    chunks: List[List[Segment]] = []
    cur: List[Segment] = []
    for seg in sorted(segs, key=lambda s: (s.start, s.end)):
        if seg.words is None:
            if cur:
                chunks.append(cur)
            cur = []
            continue
        if cur and (
            len(cur) >= max_turns
            or seg.end - cur[0].start > max_duration
            or seg.start - max(s.end for s in cur) > max_gap
        ):
            chunks.append(cur)
            cur = []
        cur.append(seg)
    if cur:
        chunks.append(cur)
    return chunks


def chunk_reference(chunk: Sequence[Segment], tasks: Sequence[str], lang: Optional[str]) -> str:
    """Reference text with the tokens of ``tasks`` only (tokens of unlisted tasks are left out)."""
    out = [language_token(lang)] if "lid" in tasks and lang else []
    for i, seg in enumerate(chunk):
        if i and "scd" in tasks and seg.speaker != chunk[i - 1].speaker:
            out.append("[SCD]")
        out.extend(w for w in seg.words if "ner" in tasks or w not in (NE_OPEN, NE_CLOSE))
        if "endp" in tasks:
            out.append("[ENDP]")
    return " ".join(out)


def speaker_id(recording: str, speaker: str) -> str:
    """Speakers named per recording (``A``, ``spk1``) are made global by prefixing the recording."""
    spk = re.sub(r"\s", "_", speaker)
    return spk if spk.startswith(recording) else f"{recording}-{spk}"


def chunks_to_utts(
    chunks: Iterable[List[Segment]], wav: Dict[str, str], tasks: Sequence[str], lang: Optional[str]
) -> List[Utterance]:
    utts = []
    for chunk in chunks:
        if not any(w not in (NE_OPEN, NE_CLOSE) for s in chunk for w in s.words):
            continue  # nothing spoken (e.g. only noise markers)
        first = chunk[0]
        start, end = first.start, max(s.end for s in chunk)
        spk = speaker_id(first.recording, first.speaker)
        utt_id = f"{spk}-{first.recording}-{int(round(start * 100)):07d}-{int(round(end * 100)):07d}"
        # Reference turn times (utt2turns) in the utterance's clock; cross-talk is marked as overlapping.
        turns = turns_relative([(s.start, s.end, speaker_id(s.recording, s.speaker)) for s in chunk], start)
        utts.append(
            Utterance(
                utt_id,
                spk,
                chunk_reference(chunk, tasks, lang),
                lang,
                tuple(tasks),
                wav[first.recording],
                start=start,
                end=end,
                recording_id=first.recording,
                turns=turns,
            )
        )
    return utts


# ---------------------------------------------------------------------------------------------- entities
def load_entity_list(path: Path) -> Set[Tuple[str, ...]]:
    """One entity per line (``#`` comments); normalised like transcripts so matching ignores case."""
    out = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            words = tuple(normalize_words(line).split())
            if words:
                out.add(words)
    if not out:
        raise DataError(f"{path}: no entities; write one entity name per line")
    return out


def tag_entities(words: List[str], entities: Set[Tuple[str, ...]]) -> List[str]:
    """Wrap the longest matching entity at each position in [NE] ... [/NE]."""
    longest = max(map(len, entities))
    out, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            if tuple(words[i : i + n]) in entities:
                out += [NE_OPEN, *words[i : i + n], NE_CLOSE]
                i += n
                break
        else:
            out.append(words[i])
            i += 1
    return out


def clean_transcript(text: str, where: str) -> List[str]:
    """Normalised words; noise markers (<unk>, {breath}, (%hesitation)) dropped, (optional) words kept."""
    toks = []
    for tok in text.split():
        if re.fullmatch(r"<[^>]*>|\{[^}]*\}|\(%[^)]*\)|\[[^\]]*\]", tok) and tok.upper() not in (NE_OPEN, NE_CLOSE):
            continue
        toks.append(tok.upper() if tok.upper() in (NE_OPEN, NE_CLOSE) else tok.strip("()"))
    words = normalize_words(" ".join(toks)).split()
    depth = 0
    for w in words:
        if w in (NE_OPEN, NE_CLOSE):
            if (w == NE_OPEN) == bool(depth):
                raise DataError(f"{where}: unbalanced or nested {NE_OPEN}/{NE_CLOSE}; fix the inline annotation")
            depth = 1 - depth
    if depth:
        raise DataError(f"{where}: {NE_OPEN} never closed; add {NE_CLOSE}")
    return words


# ---------------------------------------------------------------------------------------------- STM / RTTM
def read_stm(path: Path) -> List[Segment]:
    segs = []
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";;"):
            continue
        f = line.split()
        where = f"{path}:{lineno}"
        if len(f) < 5:
            raise DataError(f"{where}: expected '<file> <channel> <speaker> <start> <end> [<label>] transcript'")
        try:
            start, end = float(f[3]), float(f[4])
        except ValueError:
            raise DataError(f"{where}: start/end '{f[3]}' '{f[4]}' are not numbers") from None
        if not 0 <= start < end:
            raise DataError(f"{where}: need 0 <= start < end (got {start} {end})")
        rest = f[5:]
        if rest and re.fullmatch(r"<[^>]*>", rest[0]) and ("," in rest[0] or rest[0].upper() == "<NA>"):
            rest = rest[1:]  # the optional <o,f0,male> label
        text = " ".join(rest)
        words = None if IGNORE in text else clean_transcript(text, where)
        segs.append(Segment(f[0], f[2], start, end, words, where))
    if not segs:
        raise DataError(f"{path}: no segments; is this an STM file?")
    return segs


def read_rttm(path: Path) -> Dict[str, List[Tuple[float, float, str]]]:
    turns: Dict[str, List[Tuple[float, float, str]]] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        if len(f) < 8:
            raise DataError(f"{path}:{lineno}: expected 'SPEAKER <file> <chan> <start> <dur> <NA> <NA> <speaker> ...'")
        try:
            start, dur = float(f[3]), float(f[4])
        except ValueError:
            raise DataError(f"{path}:{lineno}: start/duration are not numbers") from None
        turns.setdefault(f[1], []).append((start, start + dur, f[7]))
    return turns


def apply_rttm(segs: List[Segment], rttm: Dict[str, List[Tuple[float, float, str]]]) -> None:
    """Each segment takes the RTTM speaker that overlaps it most (STM speaker kept when none does)."""
    for seg in segs:
        best, best_overlap = None, 0.0
        for s, e, spk in rttm.get(seg.recording, ()):
            overlap = min(e, seg.end) - max(s, seg.start)
            if overlap > best_overlap:
                best, best_overlap = spk, overlap
        if best is not None:
            seg.speaker = best


def audio_entries(recordings: Iterable[str], audio_dir: Optional[Path], wav_scp: Optional[Path]) -> Dict[str, str]:
    out = {}
    table = read_table(wav_scp, strict=False).values if wav_scp else {}
    for rec in sorted(set(recordings), key=c_sort_key):
        if rec in table:
            out[rec] = table[rec]
            continue
        found = [audio_dir / f"{rec}{ext}" for ext in AUDIO_EXTENSIONS] if audio_dir else []
        found = [p for p in found if p.is_file()]
        if not found:
            raise DataError(
                f"no audio for recording '{rec}': put {rec}.wav (or .flac/.sph/.mp3) in --audio_dir or "
                f"a line '{rec} <path>' in --wav_scp"
            )
        out[rec] = wav_scp_entry(found[0].absolute())
    return out


def import_stm(
    stm,
    out_dir,
    audio_dir=None,
    wav_scp=None,
    rttm=None,
    entity_list=None,
    lang: Optional[str] = None,
    languages: Sequence[str] = ("en", "de", "es", "fr"),
    max_turns: int = 4,
    max_duration: float = 20.0,
    max_gap: float = 3.0,
    dump_wav_dir=None,
    skip_bad_audio: bool = False,
) -> List[Utterance]:
    """STM (+ RTTM, entity list) -> Kaldi dir ``out_dir`` with segments. Returns the utterances written.

    ``dump_wav_dir``: cut every utterance into a 16 kHz mono wav there instead (no segments); nothing is written
    unless every recording decodes (``skip_bad_audio``: undecodable recordings are left out, counted)."""
    if lang is not None and lang not in languages:
        raise DataError(f"--lang {lang} is not one of {', '.join(languages)}; add it with --languages")
    segs = read_stm(Path(stm))
    if rttm:
        apply_rttm(segs, read_rttm(Path(rttm)))
    inline = any(w == NE_OPEN for s in segs if s.words for w in s.words)
    if entity_list:
        ents = load_entity_list(Path(entity_list))
        for s in segs:
            if s.words and NE_OPEN not in s.words:  # inline annotation wins over the list
                s.words = tag_entities(s.words, ents)
    tasks = ["asr", "scd", "endp"] + (["ner"] if entity_list or inline else []) + (["lid"] if lang else [])
    wav = audio_entries(
        (s.recording for s in segs), Path(audio_dir) if audio_dir else None, Path(wav_scp) if wav_scp else None
    )
    by_rec: Dict[str, List[Segment]] = {}
    for s in segs:
        by_rec.setdefault(s.recording, []).append(s)
    chunks = [
        c
        for rec in sorted(by_rec, key=c_sort_key)
        for c in chunk_segments(by_rec[rec], max_turns, max_duration, max_gap)
    ]
    utts = chunks_to_utts(chunks, wav, tasks, lang)
    if not utts:
        raise DataError(f"{stm}: no usable segments (all ignored or empty)")
    utts = write_dirs([(utts, out_dir, dump_wav_dir)], skip_bad_audio, log_name="import_stm")[0]
    print(f"import_stm: {stm}: {len(segs)} segments -> {len(utts)} utterances in {out_dir} (tasks: {' '.join(tasks)})")
    return utts
