"""The one place audio is decoded: importers, ``dump_audio``, ``validate_data_dir --check_audio`` and decoding.

Decoding is soundfile (libsndfile 1.2: WAV/FLAC/Ogg Vorbis/Opus/MP3, so CommonVoice's ``clips/*.mp3`` need no
extra system package; Debian's sox has no MP3 handler without ``libsox-fmt-mp3``), resampling is ``soxr`` (a
band-limited resampler, the one sox itself uses). Kaldi pipe/ark entries of a ``wav.scp`` still go through kaldiio.
Every failure is a ``DataError`` whose message says what is wrong and how to fix it; callers prefix where it came
from (``data/train/wav.scp:3 (u3)``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Tuple, Union

import numpy as np

from espnet2_ext.common import DataError

TARGET_SAMPLE_RATE = 16000
_ARK_ENTRY = re.compile(r"\.ark:\d+$")
# A decoded stream shorter than this share of the length in its header was cut off (MP3 headers estimate the
# length from the Xing frame count, so exact equality is not expected).
_TRUNCATED_SHARE = 0.9


def is_pipe(entry: str) -> bool:
    """A Kaldi extended filename that runs a command (``sph2pipe -f wav x.sph |``)."""
    return entry.rstrip().endswith("|")


def is_ark(entry: str) -> bool:
    """An ark offset (``feats.ark:1234``)."""
    return bool(_ARK_ENTRY.search(entry.strip()))


def is_plain_path(entry: str) -> bool:
    return not is_pipe(entry) and not is_ark(entry)


def audio_duration(path: Union[str, Path]) -> float:
    """Duration in seconds from the header."""
    import soundfile as sf

    info = sf.info(str(path))
    return info.frames / float(info.samplerate)


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def _file_problem(p: Path) -> str:
    if not p.exists():
        return "audio file not found; fix the path in wav.scp or restore the file"
    if not p.is_file():
        return "not a regular file; point wav.scp at an audio file"
    if p.stat().st_size == 0:
        return "audio file is empty (0 bytes); regenerate or remove the utterance (fix_data_dir)"
    return ""


def load_audio(entry: Union[str, Path]) -> Tuple[np.ndarray, int]:
    """Decode a file (any format libsndfile reads) or a Kaldi pipe/ark entry, as it is stored.

    Returns ``(x, rate)`` with ``x`` float32 in [-1, 1], shape ``[samples, channels]``.
    """
    entry_s = str(entry)
    if isinstance(entry, Path) or is_plain_path(entry_s):
        import soundfile as sf

        p = Path(entry_s)
        problem = _file_problem(p)
        if problem:
            raise DataError(f"{p}: {problem}")
        try:
            with sf.SoundFile(str(p)) as f:
                declared, rate = f.frames, f.samplerate
                x = f.read(dtype="float32", always_2d=True)  # x: [T, C]
        except Exception as e:  # LibsndfileError/RuntimeError/TypeError depending on the damage
            why = _first_line(e).replace(f"Error opening {str(p)!r}: ", "")
            if "does not exist or is not a regular file" in why:  # libsndfile's words for "no format matched"
                why = "no audio format recognised in its bytes"
            raise DataError(
                f"{p}: cannot decode audio (corrupt, truncated or not audio: {why}); "
                f"re-download or re-encode the file, or leave it out"
            ) from None
        if x.shape[0] == 0:
            raise DataError(f"{p}: audio file holds no samples; regenerate or remove the utterance")
        if 0 < declared and x.shape[0] < _TRUNCATED_SHARE * declared:
            raise DataError(
                f"{p}: audio is truncated (decoded {x.shape[0] / rate:.2f} s of the "
                f"{declared / rate:.2f} s its header announces); re-download or re-encode the file, "
                f"or leave it out"
            )
        return x, int(rate)
    import kaldiio

    try:
        loaded = kaldiio.load_mat(entry_s)
    except Exception as e:  # the command failed or did not produce wav
        raise DataError(
            f"could not decode '{entry_s}' ({type(e).__name__}: {_first_line(e)}); run the command "
            f"by hand to see why, or point wav.scp at the audio file"
        ) from None
    if not isinstance(loaded, tuple):
        raise DataError(f"'{entry_s}' is not audio (kaldiio returned a feature matrix); wav.scp needs audio")
    rate, x = loaded
    x = np.asarray(x)
    if x.dtype.kind == "i":  # kaldiio returns the PCM integers
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = x.astype(np.float32).reshape(x.shape[0], -1)  # x: [T, C]
    if x.shape[0] == 0:
        raise DataError(f"'{entry_s}' produced no samples")
    return x, int(rate)


def to_mono(x: np.ndarray) -> np.ndarray:
    """``[T, C]`` or ``[T]`` -> ``[T]`` (channel average)."""
    return x if x.ndim == 1 else (x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32))


def resample(x: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling with soxr (high quality); ``x``: ``[T]`` or ``[T, C]``."""
    if rate == target_rate:
        return x
    import soxr

    return soxr.resample(x, rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def conform(x: np.ndarray, rate: int, target_rate: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Downmix to mono, then resample to ``target_rate``: ``[T, C]`` at ``rate`` -> float32 ``[T']``."""
    return resample(to_mono(np.asarray(x, dtype=np.float32)), rate, target_rate)


def describe(rate: int, channels: int) -> str:
    """``44100 Hz stereo`` / ``8000 Hz mono`` / ``48000 Hz 6 channels``."""
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")
    return f"{rate} Hz {layout}"


def read_audio(entry: Union[str, Path], target_sr: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Decode ``entry`` and return float32 mono ``[T]`` at ``target_sr`` (downmixed and resampled as needed).

    Raises ``DataError`` naming the file and the fix when it cannot be decoded.
    """
    x, rate = load_audio(entry)
    return conform(x, rate, target_sr)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    """float [-1, 1] -> int16, clipped (a resampler may overshoot full scale slightly; libsndfile would wrap)."""
    return (np.clip(x, -1.0, 32767 / 32768) * 32768).round().astype(np.int16)
