"""Lazy reads of a long recording: any span of it, or all of it block by block, at the model's rate and mono,
without ever holding the whole recording (issue #30: memory must not grow with the recording's length).

soundfile seeks in WAV/FLAC/Ogg/MP3 files, so a span costs only its own samples. A Kaldi pipe or ark entry cannot
be read in parts: it is refused with a message saying how to convert it. Resampling (soxr) of a span reads a few
milliseconds of margin on each side so the filter has its context, then trims it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Tuple, Union

import numpy as np

from espnet2_ext.common import DataError
from espnet2_ext.data.audio_io import _file_problem, _first_line, conform, is_plain_path

_MARGIN_S = 0.01  # resampler context read on each side of a span (soxr HQ's filter is ~1-2 ms long)


class RecordingReader:
    """One audio file read in spans at ``target_rate`` mono float32; times are samples at ``target_rate``.

    ``len(reader)`` is the recording's length in target-rate samples (from the header, the only thing read at
    construction). Errors are ``DataError`` naming the file and the fix."""

    def __init__(self, entry: Union[str, Path], target_rate: int = 16000):
        entry = str(entry)
        if not is_plain_path(entry):
            raise DataError(
                f"'{entry}': a Kaldi pipe/ark entry cannot be read in parts, so long-form decoding "
                f"would hold the whole recording; convert it to a wav/flac file first (e.g. "
                f"'sox in.sph out.wav') and point wav.scp at it"
            )
        import soundfile as sf

        self.path, self.target_rate = Path(entry), int(target_rate)
        problem = _file_problem(self.path)
        if problem:
            raise DataError(f"{self.path}: {problem}")
        try:
            info = sf.info(str(self.path))
        except Exception as e:  # LibsndfileError/RuntimeError depending on the damage
            raise DataError(
                f"{self.path}: cannot decode audio (corrupt, truncated or not audio: "
                f"{_first_line(e)}); re-encode the file or leave it out"
            ) from None
        self.rate, self.channels, self.frames = int(info.samplerate), int(info.channels), int(info.frames)
        if self.rate <= 0:
            raise DataError(f"{self.path}: header gives sample rate {self.rate}; re-encode the file")

    def __len__(self) -> int:
        return int(self.frames * self.target_rate // self.rate)

    @property
    def duration(self) -> float:
        return self.frames / float(self.rate)

    def _native(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) at the file's own rate, [T, C]."""
        import soundfile as sf

        try:
            with sf.SoundFile(str(self.path)) as f:
                f.seek(start)
                x = f.read(stop - start, dtype="float32", always_2d=True)  # x: [T, C]
        except Exception as e:
            raise DataError(
                f"{self.path}: cannot decode audio at {start / self.rate:.2f} s (corrupt or "
                f"truncated: {_first_line(e)}); re-encode the file or leave it out"
            ) from None
        if x.shape[0] < stop - start and stop - start > 0 and x.shape[0] < 0.9 * (stop - start):
            raise DataError(
                f"{self.path}: audio ends at {(start + x.shape[0]) / self.rate:.2f} s but its header "
                f"announces {self.duration:.2f} s (truncated); re-encode the file or leave it out"
            )
        return x

    def read(self, start: int, stop: int) -> np.ndarray:
        """Target-rate mono samples [start, stop) (clipped to the recording); float32 [stop - start]."""
        start, stop = max(0, int(start)), min(len(self), int(stop))
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        if self.rate == self.target_rate:
            return conform(self._native(start, stop), self.rate, self.target_rate)
        margin = int(_MARGIN_S * self.rate)
        a = start * self.rate // self.target_rate
        b = -(-stop * self.rate // self.target_rate)
        lo, hi = max(0, a - margin), min(self.frames, b + margin)
        y = conform(self._native(lo, hi), self.rate, self.target_rate)  # y: [~(hi - lo) * target / rate]
        skip = int(round((a - lo) * self.target_rate / self.rate))
        out = y[skip : skip + (stop - start)]
        return np.pad(out, (0, stop - start - out.size)) if out.size < stop - start else out

    def blocks(self, block: int) -> Iterator[Tuple[int, np.ndarray]]:
        """(start, samples) of consecutive target-rate blocks of ``block`` samples (the last may be shorter)."""
        for start in range(0, len(self), block):
            yield start, self.read(start, start + block)
