"""Audio sanity checks and ``wav.scp`` entries for Kaldi data dirs.

Only headers are read (``soundfile.info``), so checking a whole corpus is cheap. Relative paths are taken
relative to the current directory, as Kaldi does (run from the recipe directory).
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Dict, Optional, Union

import soundfile as sf

EXPECTED_SAMPLE_RATE = 16000
_ARK_ENTRY = re.compile(r"\.ark:\d+$")


def is_pipe(entry: str) -> bool:
    """A Kaldi extended filename that runs a command (``sox x.mp3 -t wav - |``)."""
    return entry.rstrip().endswith("|")


def is_ark(entry: str) -> bool:
    """An ark offset (``feats.ark:1234``): not a file we can inspect with soundfile."""
    return bool(_ARK_ENTRY.search(entry.strip()))


def is_plain_path(entry: str) -> bool:
    return not is_pipe(entry) and not is_ark(entry)


def sox_pipe(path: Union[str, Path], sample_rate: int = EXPECTED_SAMPLE_RATE) -> str:
    """Pipe entry that decodes any sox-readable file (mp3, 44.1 kHz, stereo) to 16 kHz mono 16-bit wav."""
    return f"sox {shlex.quote(str(path))} -t wav -r {sample_rate} -c 1 -b 16 - |"


def audio_problem(path: Union[str, Path], expected_sr: int = EXPECTED_SAMPLE_RATE) -> Optional[str]:
    """Why ``path`` is not usable 16 kHz mono audio (None when it is)."""
    p = Path(path)
    if not p.exists():
        return "audio file not found; fix the path in wav.scp or restore the file"
    if p.stat().st_size == 0:
        return "audio file is empty (0 bytes); regenerate or remove the utterance (fix_data_dir)"
    try:
        info = sf.info(str(p))
    except Exception as e:  # soundfile raises RuntimeError/LibsndfileError/TypeError depending on the damage
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return f"unreadable audio (corrupt header?: {msg}); regenerate the file or decode it through a sox pipe"
    if info.frames <= 0:
        return "audio file holds no samples; regenerate or remove the utterance"
    if info.samplerate != expected_sr:
        return (f"sample rate {info.samplerate} Hz, expected {expected_sr} Hz; resample "
                f"(sox in.wav -r {expected_sr} out.wav) or use a pipe entry \"{sox_pipe(p)}\"")
    if info.channels != 1:
        return (f"{info.channels} channels, expected mono; downmix (sox in.wav -c 1 out.wav) or use a pipe "
                f"entry \"{sox_pipe(p)}\"")
    return None


def check_wav_table(wav, segments=None) -> Dict[str, float]:
    """Check every plain-file entry of a wav.scp ``Table`` (pipes and ark offsets are skipped: running every
    command would be slow) and that segments end inside their recording; returns id -> duration (s)."""
    from espnet2_ext.data.utt2tasks import DataError

    durations: Dict[str, float] = {}
    for key, entry in wav.values.items():
        if not entry:
            raise DataError(f"{wav.where(key)}: no audio path; write '<id> <path>'")
        if is_plain_path(entry):
            problem = audio_problem(entry)
            if problem:
                raise DataError(f"{wav.where(key)}: {entry}: {problem}")
            durations[key] = audio_duration(entry)
    for utt, value in (segments.values.items() if segments is not None else ()):
        rec, end = value.split()[0], float(value.split()[2])
        if rec in durations and end > durations[rec] + 0.05:
            raise DataError(f"{segments.where(utt)}: ends at {end:.2f} s but recording {rec} lasts "
                            f"{durations[rec]:.2f} s; fix the segment times")
    return durations


def audio_duration(path: Union[str, Path]) -> float:
    """Duration in seconds from the header."""
    info = sf.info(str(path))
    return info.frames / float(info.samplerate)


def wav_scp_entry(path: Union[str, Path], expected_sr: int = EXPECTED_SAMPLE_RATE) -> str:
    """The ``wav.scp`` value for an audio file: the path itself when soundfile reads it as 16 kHz mono,
    otherwise a sox pipe that converts it on the fly (mp3, other rates, stereo)."""
    p = Path(path)
    if p.suffix.lower() in (".wav", ".flac"):
        try:
            info = sf.info(str(p))
        except Exception:
            return sox_pipe(p, expected_sr)
        if info.samplerate == expected_sr and info.channels == 1:
            return str(p)
    return sox_pipe(p, expected_sr)


def _load_entry(entry: str, where: str):
    """(rate, int16/float array) of a wav.scp value: plain files by soundfile, pipes and ark offsets by kaldiio."""
    if is_plain_path(entry):
        x, rate = sf.read(entry, dtype="int16", always_2d=True)
        return rate, x.mean(axis=1).astype("int16") if x.shape[1] > 1 else x[:, 0]
    import kaldiio

    try:
        loaded = kaldiio.load_mat(entry)
    except Exception as e:  # the command failed or did not produce wav
        raise ValueError(f"{where}: could not decode '{entry}' ({type(e).__name__}: {e})") from None
    if not isinstance(loaded, tuple):
        raise ValueError(f"{where}: '{entry}' is not audio (kaldiio returned a matrix)")
    rate, x = loaded
    return rate, x.mean(axis=1).astype(x.dtype) if x.ndim > 1 else x


def dump_audio(src_dir, dst_dir, wav_dir, expected_sr: int = EXPECTED_SAMPLE_RATE):
    """Turn a data dir whose audio needs decoding (pipes, segments) into one with a 16 kHz mono PCM wav file per
    utterance (what asr.sh's format_wav_scp did; ESPnet's ``sound`` loader reads plain files only). Each
    recording is decoded once; ``dst_dir`` may equal ``src_dir`` (replaced atomically)."""
    from dataclasses import replace

    from espnet2_ext.data.kaldi_dir import read_data_dir, write_data_dir
    from espnet2_ext.data.utt2tasks import DataError

    utts = read_data_dir(src_dir)
    wav_dir = Path(wav_dir)
    wav_dir.mkdir(parents=True, exist_ok=True)
    by_audio = {}
    for u in utts:
        by_audio.setdefault(u.wav, []).append(u)
    out = []
    for entry, group in by_audio.items():
        try:
            rate, x = _load_entry(entry, f"{src_dir}/wav.scp ({group[0].recording_id or group[0].utt_id})")
        except ValueError as e:
            raise DataError(str(e)) from None
        if rate != expected_sr:
            raise DataError(f"{src_dir}/wav.scp: '{entry}' is {rate} Hz, expected {expected_sr} Hz; use a pipe "
                            f"entry \"{sox_pipe('<file>')}\" to resample")
        for u in group:
            seg = x if u.start is None else x[int(round(u.start * rate)): int(round(u.end * rate))]
            if seg.size == 0:
                raise DataError(f"utterance {u.utt_id}: no audio in {entry} for {u.start}-{u.end} s")
            path = wav_dir / f"{u.utt_id}.wav"
            tmp = path.with_name(f".{path.name}.tmp.wav")
            sf.write(str(tmp), seg, rate, subtype="PCM_16", format="WAV")
            tmp.replace(path)
            out.append(replace(u, wav=str(path), start=None, end=None, recording_id=None,
                               duration=round(len(seg) / rate, 3)))
    return write_data_dir(out, dst_dir)
