"""Validating a Kaldi data dir without changing it: files, sorting, utt2tasks, task-token annotation, audio.

``validate_data_dir`` raises ``DataError`` with one line naming the file, line / utt-id and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from espnet2_ext.common import DataError
from espnet2_ext.data.kaldi_dir import PathLike, Table, c_sort_key, check_consistent, read_tables


@dataclass
class DataDirSummary:
    path: str
    n_utts: int
    n_speakers: int
    task_counts: Dict[str, int]
    languages: Dict[str, int]
    hours: Optional[float]
    n_audio_checked: int = 0
    n_pipes: int = 0
    to_convert: Optional[Dict[str, str]] = None  # wav.scp key -> "44100 Hz stereo mp3" (not yet 16 kHz mono wav)

    def format(self) -> str:
        tasks = " ".join(f"{t}={n}" for t, n in self.task_counts.items())
        langs = " ".join(f"{lang}={n}" for lang, n in sorted(self.languages.items())) or "-"
        hours = f"{self.hours:.3f}" if self.hours is not None else "unknown (no utt2dur; use --check_audio)"
        return (
            f"{self.path}: OK: {self.n_utts} utterances, {self.n_speakers} speakers, hours {hours}; "
            f"tasks: {tasks}; languages: {langs}"
            + (f"; audio checked: {self.n_audio_checked} files" if self.n_audio_checked else "")
            + (
                f"; {self.n_pipes} pipe/ark entries (not checked; ESPnet's 'sound' loader needs files: run "
                f"dump_audio / --dump_wav_dir)"
                if self.n_pipes
                else ""
            )
            + (
                f"; {len(self.to_convert)} files not 16 kHz mono wav/flac (e.g. {next(iter(self.to_convert))}: "
                f"{next(iter(self.to_convert.values()))}): format_data_dir (stage 2) / --dump_wav_dir converts "
                f"them with soxr"
                if self.to_convert
                else ""
            )
        )


def _check_text(table: Table, utt: str, tasks: Tuple[str, ...], spec, utt2lang: Optional[Table]) -> Optional[str]:
    """The language/annotation problem of one transcript, or None."""
    from espnet2_ext.text.annotation import transcript_error

    lang = utt2lang.values[utt] if utt2lang is not None else None
    return transcript_error(table.values[utt], spec, tasks, lang, utt2lang.where(utt) if utt2lang is not None else "")


def _check_turns(tables: Dict[str, Table], audio_dur: Dict[str, float]) -> None:
    """utt2turns: well-formed, sorted, non-overlapping unless marked, within the utterance's audio (its segment,
    utt2dur, or the decoded audio with --check_audio)."""
    from espnet2_ext.data.kaldi_dir import TURNS_FILE
    from espnet2_ext.data.ref_turns import parse_turns, turns_problem

    if TURNS_FILE not in tables:
        return
    turns = tables[TURNS_FILE]
    for utt, value in turns.values.items():
        duration = None
        if "segments" in tables:
            f = tables["segments"].values[utt].split()
            duration = tables["segments"].number(utt, f[2]) - tables["segments"].number(utt, f[1])
        elif "utt2dur" in tables:
            duration = tables["utt2dur"].number(utt, tables["utt2dur"].values[utt])
        elif utt in audio_dur:
            duration = audio_dur[utt]
        err = turns_problem(parse_turns(value, turns.where(utt)), duration)
        if err:
            raise DataError(f"{turns.where(utt)}: {err}")


def _check_speakers(tables: Dict[str, Table]) -> None:
    """One speaker id per utterance, utterances grouped by speaker (Kaldi's sort rule), spk2utt agreeing."""
    utt2spk = tables["utt2spk"]
    prev = None
    for utt, spk in utt2spk.values.items():
        if not spk or len(spk.split()) != 1:
            raise DataError(f"{utt2spk.where(utt)}: expected exactly one speaker id")
        if prev is not None and c_sort_key(spk) < c_sort_key(utt2spk.values[prev]):
            raise DataError(
                f"{utt2spk.where(utt)}: speaker {spk} sorts before that of {prev}; start each utterance "
                f"id with its speaker id followed by '-'"
            )
        prev = utt
    if "spk2utt" in tables:
        expect: Dict[str, List[str]] = {}
        for utt, spk in utt2spk.values.items():
            expect.setdefault(spk, []).append(utt)
        got = {s: v.split() for s, v in tables["spk2utt"].values.items()}
        if got != expect:
            bad = next(iter(s for s in set(got) | set(expect) if got.get(s) != expect.get(s)))
            raise DataError(
                f"{tables['spk2utt'].path}: speaker {bad} disagrees with utt2spk; rebuild spk2utt (fix_data_dir)"
            )


def _check_languages(tables: Dict[str, Table], spec) -> None:
    """Every utt2lang language is one of the task spec's."""
    if "utt2lang" not in tables:
        return
    for utt, lang in tables["utt2lang"].values.items():
        if lang not in spec.languages:
            raise DataError(
                f"{tables['utt2lang'].where(utt)}: language '{lang}' not in the task spec "
                f"({', '.join(spec.languages)}); add it (--languages) or fix the line"
            )


def _listed_hours(tables: Dict[str, Table]) -> Optional[float]:
    """Hours from utt2dur, else from segments (None when neither lists them)."""
    hours: Optional[float] = None
    if "utt2dur" in tables:
        hours = sum(tables["utt2dur"].number(k, v) for k, v in tables["utt2dur"].values.items()) / 3600
    elif "segments" in tables:
        seg = tables["segments"]
        hours = (
            sum(
                seg.number(k, v.split()[2]) - seg.number(k, v.split()[1])
                for k, v in seg.values.items()
                if len(v.split()) == 3
            )
            / 3600
        )
    return hours


def validate_data_dir(data_dir: PathLike, spec=None, check_audio: bool = False) -> DataDirSummary:
    """Check a data dir without modifying it; the first problem raises ``DataError`` with a one-line
    message naming the file, line/utterance and the fix. Returns a summary on success."""
    from espnet2_ext.data.audio_check import check_wav_table, is_plain_path
    from espnet2_ext.data.utt2tasks import read_utt2tasks
    from espnet2_ext.task_spec import TaskSpec

    spec = spec or TaskSpec.default()
    tables = read_tables(data_dir, strict=True)
    check_consistent(tables)
    text, utt2spk = tables["text"], tables["utt2spk"]
    _check_speakers(tables)
    utt2tasks = read_utt2tasks(tables["utt2tasks"].path, spec, utt_ids=list(text.values))
    for utt in text.values:
        err = _check_text(text, utt, utt2tasks[utt], spec, tables.get("utt2lang"))
        if err:
            raise DataError(f"{text.where(utt)}: {err}")
    _check_languages(tables, spec)
    hours = _listed_hours(tables)
    n_pipes = sum(not is_plain_path(v) for v in tables["wav.scp"].values.values())
    n_checked, to_convert, rec_dur = 0, None, {}
    if check_audio:
        checked = check_wav_table(tables["wav.scp"], tables.get("segments"))
        rec_dur, to_convert = checked.durations, checked.to_convert
        n_checked = len(rec_dur)
        if hours is None and n_checked == len(tables["wav.scp"].values):
            hours = sum(rec_dur.values()) / 3600
    _check_turns(tables, rec_dur if check_audio else {})
    task_counts = {t: sum(t in ts for ts in utt2tasks.values()) for t in spec.tasks}
    langs: Dict[str, int] = {}
    for utt in text.values:
        first = text.values[utt].split()[0]
        if spec.task_of(first) == "lid":
            langs[first[1:-1].lower()] = langs.get(first[1:-1].lower(), 0) + 1
    return DataDirSummary(
        str(data_dir),
        len(text.values),
        len(set(utt2spk.values.values())),
        task_counts,
        langs,
        hours,
        n_checked,
        n_pipes,
        to_convert,
    )
