"""Audio preparation for decoding: whatever the user hands over (a path, samples at any rate, several channels)
becomes mono samples at the model's rate, and several of them one padded batch.

    prep = AudioPreparer(model_sample_rate(train_args), "resample")
    x = prep(stereo_44k, 44100)            # [T] at the model's rate (soxr), one log line per new input format
    speech, lengths = pad_batch([x, y])    # speech: [B, S], lengths: [B]

``AudioAtModelRate`` is the same conversion as a preprocess step of ESPnet's streaming data loader
(``asr/decode_dir.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from espnet2_ext.common import DataError

AUDIO_MISMATCH = ("resample", "error")  # what to do with audio at another rate / with several channels
_MAX_CHANNELS = 16  # a 2-D array whose smaller side is at most this is (samples, channels) or (channels, samples)


def model_sample_rate(train_args) -> int:
    """The rate the model was trained on: ``frontend_conf.fs`` (ESPnet also accepts ``16k``), default 16 kHz."""
    fs = (getattr(train_args, "frontend_conf", None) or {}).get("fs", 16000)
    if isinstance(fs, str):
        import humanfriendly

        fs = humanfriendly.parse_size(fs)
    return int(fs)


class AudioPreparer:
    """Audio at any rate and channel count -> mono at the model's rate (soxr), one log line per new input format;
    with ``mismatch='error'`` a ``ValueError`` instead."""

    def __init__(self, sample_rate: int, mismatch: str = "resample"):
        if mismatch not in AUDIO_MISMATCH:
            raise ValueError(f"audio_mismatch '{mismatch}' is unknown: choose {' or '.join(AUDIO_MISMATCH)}")
        self.sample_rate, self.mismatch = sample_rate, mismatch
        self._formats_logged: set = set()

    def __call__(self, speech, sample_rate: Optional[int] = None, name: str = "input") -> np.ndarray:
        """``sample_rate=None`` means the model's rate. 2-D input is ``(samples, channels)`` as soundfile returns
        it, or ``(channels, samples)`` as torchaudio does (the smaller side is the channels)."""
        from espnet2_ext.data.audio_io import conform, describe

        x = speech.detach().cpu().numpy() if isinstance(speech, torch.Tensor) else np.asarray(speech)
        rate = int(sample_rate) if sample_rate is not None else self.sample_rate
        if x.ndim == 2 and min(x.shape) <= _MAX_CHANNELS and x.shape[0] != x.shape[1]:
            x = x if x.shape[1] < x.shape[0] else x.T  # x: [T, C]
        elif x.ndim != 1:
            raise ValueError(
                f"{name}: audio of shape {tuple(x.shape)}: give a 1-D array of samples, or 2-D (samples, channels)"
            )
        channels = 1 if x.ndim == 1 else x.shape[1]
        if rate == self.sample_rate and channels == 1:
            return x.reshape(-1)  # x: [T]
        got, want = describe(rate, channels), describe(self.sample_rate, 1)
        if self.mismatch == "error":
            raise ValueError(
                f"{name}: audio is {got} but the model expects {want}; convert it (sox in.wav -r "
                f"{self.sample_rate} -c 1 out.wav) or decode with --audio_mismatch resample"
            )
        if (rate, channels) not in self._formats_logged:
            self._formats_logged.add((rate, channels))
            logging.warning(
                f"{name}: audio is {got}; converting to {want}, the model's rate (soxr; "
                f"--audio_mismatch error refuses such input instead)"
            )
        return conform(x.astype(np.float32, copy=False), rate, self.sample_rate)

    def utterance(self, speech: Union[torch.Tensor, np.ndarray, str, Path], sample_rate: Optional[int] = None):
        """One utterance as a batch of one: (speech [1, S], lengths [1]); ``speech`` may be an audio file path
        (any format soundfile reads; its own rate)."""
        if isinstance(speech, (str, Path)):
            from espnet2_ext.data.audio_io import load_audio

            speech, sample_rate = load_audio(str(speech))
        x = torch.as_tensor(self(speech, sample_rate))  # x: [S]
        return x.view(1, -1), torch.tensor([x.size(-1)])


def pad_batch(wavs: Sequence[torch.Tensor], multiple: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """1-D waveforms -> (speech [B, S], lengths [B]), zero-padded to the longest rounded up to ``multiple``."""
    lengths = torch.tensor([w.numel() for w in wavs])
    width = -(-int(lengths.max()) // multiple) * multiple
    speech = torch.zeros(len(wavs), width)  # speech: [B, S]
    for j, w in enumerate(wavs):
        speech[j, : w.numel()] = w
    return speech, lengths


class AudioAtModelRate:
    """Preprocess step that reads the ``sound`` inputs itself: ESPnet's streaming loader keeps only the samples of
    ``soundfile.read`` (the rate is dropped, so 44.1 kHz audio would pass as 16 kHz, and stereo reaches the model
    as [T, 2]). The loader hands over the wav.scp entry; this decodes it (``audio_io``) and converts it to the
    model's rate and mono (``AudioPreparer``)."""

    def __init__(self, prepare: AudioPreparer, sound: Dict[str, str], preprocess):
        self.prepare, self.sound, self.preprocess = prepare, sound, preprocess  # sound: data name -> wav.scp path

    def __call__(self, uid: str, data: Dict):
        from espnet2_ext.data.audio_io import load_audio

        for name, scp in self.sound.items():
            try:
                x, rate = load_audio(data[name])  # x: [T, C]
                data[name] = self.prepare(x, rate, name=f"{scp} ({uid})")
            except DataError as e:
                raise DataError(f"{scp} ({uid}): {e}") from None
        return self.preprocess(uid, data) if self.preprocess is not None else data
