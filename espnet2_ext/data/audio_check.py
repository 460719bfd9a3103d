"""Audio checks of Kaldi data dirs, ``wav.scp`` entries, and dumping audio into 16 kHz mono PCM wavs.

All decoding goes through ``audio_io`` (soundfile + soxr). ``wav.scp`` may reference any file libsndfile reads
(WAV/FLAC/Ogg/Opus/MP3) at any rate and channel count: ``format_data_dir`` (recipe stage 2) and the importers'
``--dump_wav_dir`` turn them into the 16 kHz mono wavs that ESPnet's ``sound`` loader reads as they are. Relative
paths are taken relative to the current directory, as Kaldi does (run from the recipe directory).
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import soundfile as sf

from espnet2_ext.common import DataError, fresh_temp_sibling, move_dir_into_place
from espnet2_ext.data.audio_io import (
    TARGET_SAMPLE_RATE,
    conform,
    describe,
    is_pipe,  # noqa: F401
    is_plain_path,
    load_audio,
    to_pcm16,
)
from espnet2_ext.data.kaldi_dir import read_data_dir, write_data_dir

EXPECTED_SAMPLE_RATE = TARGET_SAMPLE_RATE
# What ESPnet's ``sound`` loader can take as it is (no decoding of compressed formats in every epoch).
_LOADER_FORMATS = ("WAV", "FLAC")


def loader_ready(entry: str, expected_sr: int = EXPECTED_SAMPLE_RATE) -> bool:
    """True for a plain WAV/FLAC file at ``expected_sr``, mono: ESPnet's loader reads it without conversion."""
    if not is_plain_path(entry):
        return False
    try:
        info = sf.info(entry)
    except Exception:  # unreadable: the dump (or validation) will name the problem
        return False
    return info.format in _LOADER_FORMATS and info.samplerate == expected_sr and info.channels == 1


def audio_problem(path: Union[str, Path]) -> Optional[str]:
    """Why ``path`` cannot be decoded (None when it can). Any rate and channel count is fine: it is converted."""
    try:
        load_audio(Path(path))
    except DataError as e:
        return str(e).split(": ", 1)[1] if str(e).startswith(f"{path}: ") else str(e)
    return None


@dataclass
class WavCheck:
    """What ``check_wav_table`` found: recording -> seconds, and the entries that need converting."""

    durations: Dict[str, float] = field(default_factory=dict)
    to_convert: Dict[str, str] = field(default_factory=dict)  # key -> "8000 Hz mono mp3"


def check_wav_table(wav, segments=None, expected_sr: int = EXPECTED_SAMPLE_RATE) -> WavCheck:
    """Decode every plain-file entry of a wav.scp ``Table`` with ``audio_io`` (pipes and ark offsets are skipped:
    running every command would be slow) and check that segments end inside their recording."""
    out = WavCheck()
    for key, entry in wav.values.items():
        if not entry:
            raise DataError(f"{wav.where(key)}: no audio path; write '<id> <path>'")
        if is_plain_path(entry):
            try:
                x, rate = load_audio(Path(entry))  # x: [T, C]
            except DataError as e:
                raise DataError(f"{wav.where(key)}: {e}") from None
            out.durations[key] = x.shape[0] / float(rate)
            if not loader_ready(entry, expected_sr):
                out.to_convert[key] = f"{describe(rate, x.shape[1])} {Path(entry).suffix.lstrip('.') or 'file'}"
    for utt, value in segments.values.items() if segments is not None else ():
        rec, end = value.split()[0], float(value.split()[2])
        if rec in out.durations and end > out.durations[rec] + 0.05:
            raise DataError(
                f"{segments.where(utt)}: ends at {end:.2f} s but recording {rec} lasts "
                f"{out.durations[rec]:.2f} s; fix the segment times"
            )
    return out


def wav_scp_entry(path: Union[str, Path]) -> str:
    """The ``wav.scp`` value for an audio file: its path, whatever its format, rate or channel count (soundfile
    decodes it; ``format_data_dir`` / ``--dump_wav_dir`` convert it to 16 kHz mono for ESPnet's loader)."""
    return str(path)


# ------------------------------------------------------------------------------------------------ dumping
class _WavDump:
    """Per-utterance 16 kHz mono PCM wavs written into a hidden sibling of ``wav_dir``; ``commit`` moves them into
    place, ``abort`` removes them, so a failed import leaves no partial wav dir."""

    def __init__(self, wav_dir, expected_sr: int):
        self.wav_dir, self.sr = Path(wav_dir), expected_sr
        self.made = [d for d in [self.wav_dir.parent, *self.wav_dir.parent.parents] if not d.exists()]
        self.wav_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = fresh_temp_sibling(self.wav_dir)  # as atomic_dir: a killed dump's leftovers are cleared

    def run(self, utts: Sequence, skip_bad: bool, bad: List[Tuple[str, str]]) -> list:
        by_audio: Dict[str, list] = {}
        for u in utts:
            by_audio.setdefault(u.wav, []).append(u)
        out = []
        for entry, group in by_audio.items():
            try:
                x = conform(*load_audio(entry), self.sr)  # x: [T] at self.sr
            except DataError as e:
                what = f"recording {group[0].recording_id}" if group[0].recording_id else f"utterance {group[0].utt_id}"
                if not skip_bad:
                    raise DataError(
                        f"{e} ({what}); nothing was written: fix or remove this clip, or pass "
                        f"--skip_bad_audio to leave undecodable clips out"
                    ) from None
                bad.append((entry, f"{e} ({what})"))
                continue
            for u in group:
                seg = x if u.start is None else x[int(round(u.start * self.sr)) : int(round(u.end * self.sr))]
                if seg.size == 0:
                    raise DataError(
                        f"utterance {u.utt_id}: no audio in {entry} for {u.start}-{u.end} s; fix the segment times"
                    )
                sf.write(str(self.tmp / f"{u.utt_id}.wav"), to_pcm16(seg), self.sr, subtype="PCM_16", format="WAV")
                # origin keeps the recording clock (orig_segments) for timed decoding outputs
                out.append(
                    replace(
                        u,
                        wav=str(self.wav_dir / f"{u.utt_id}.wav"),
                        start=None,
                        end=None,
                        recording_id=None,
                        duration=round(len(seg) / self.sr, 3),
                        origin=(u.recording_id, u.start, u.end) if u.recording_id else u.origin,
                    )
                )
        return out

    def commit(self) -> None:
        move_dir_into_place(self.tmp, self.wav_dir)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        for d in self.made:  # parents this dump created, innermost first
            try:
                d.rmdir()
            except OSError:  # not empty (another split's dump) or gone
                pass


def write_dirs(
    jobs: Sequence[Tuple[Sequence, Union[str, Path], Optional[Union[str, Path]]]],
    skip_bad_audio: bool = False,
    expected_sr: int = EXPECTED_SAMPLE_RATE,
    log_name: str = "import",
):
    """Write data dirs all-or-nothing. ``jobs``: ``(utterances, out_dir, wav_dir or None)``; with a wav dir the
    audio of every job is decoded into 16 kHz mono wavs first, and no data dir or wav dir appears unless all of it
    decodes (with ``skip_bad_audio``: undecodable clips are left out and counted). Returns the written dirs'
    utterance lists in job order."""
    dumps: List[Optional[_WavDump]] = []
    bad: List[Tuple[str, str]] = []
    results = []
    try:
        for utts, out_dir, wav_dir in jobs:
            if wav_dir is None:
                dumps.append(None)
                results.append(list(utts))
                continue
            dumps.append(_WavDump(wav_dir, expected_sr))
            kept = dumps[-1].run(utts, skip_bad_audio, bad)
            if not kept:
                raise DataError(f"{out_dir}: no clip could be decoded (first: {bad[0][1] if bad else '-'})")
            results.append(kept)
        if bad:
            print(
                f"{log_name}: skipped {len(bad)} undecodable clip(s) (--skip_bad_audio); first: {bad[0][1]}",
                file=sys.stderr,
            )
        for d in dumps:
            if d is not None:
                d.commit()
    except BaseException:
        for d in dumps:
            if d is not None:
                d.abort()
        raise
    for (_, out_dir, _), utts in zip(jobs, results):
        write_data_dir(utts, out_dir)
    return results


def dump_audio(src_dir, dst_dir, wav_dir, expected_sr: int = EXPECTED_SAMPLE_RATE, skip_bad_audio: bool = False):
    """Turn a data dir whose audio needs decoding (compressed files, other rates or channel counts, pipes,
    segments) into one with a 16 kHz mono PCM wav per utterance (what asr.sh's format_wav_scp did; ESPnet's
    ``sound`` loader reads files as they are). Each recording is decoded once; ``dst_dir`` may equal ``src_dir``
    (replaced atomically); nothing is written when a recording cannot be decoded."""
    write_dirs([(read_data_dir(src_dir), dst_dir, wav_dir)], skip_bad_audio, expected_sr, log_name=str(src_dir))
    return Path(dst_dir)
