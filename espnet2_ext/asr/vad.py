"""Voice activity for long-form decoding: speech regions of a recording, read block by block.

* ``silero`` (default): silero-vad's shipped TorchScript model (PyPI ``silero-vad``, MIT; its weights are inside
  the package, so nothing is downloaded). The model is stateful and takes 512-sample windows at 16 kHz: we feed
  it the recording block by block (``RecordingReader.blocks``), so only one speech probability per 32 ms is kept
  (112 k floats for an hour). Probabilities become regions with silero's own ``get_speech_timestamps_from_probs``
  (hysteresis thresholds, minimum speech/silence, padding, long regions split at their longest silence).
* ``energy``: a fallback that needs no model: the frame's RMS in dB against the recording's own noise floor
  (10th percentile of frame levels), mapped to a pseudo-probability and cut by the same function. It is measured
  against silero in the recipe's long-form results, not the default.

silero-vad calls ``torch.set_num_threads(1)`` when its package is imported; we load the TorchScript file
directly and restore the thread count around the import of its helper functions.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

VADS = ("silero", "energy")
WINDOW = 512  # silero-vad's window at 16 kHz (32 ms)
SAMPLE_RATE = 16000
_BLOCK_WINDOWS = 64  # 2 s of audio per read (energy VAD)
_LANE_S, _MAX_LANES, _STEP_WINDOWS = 30.0, 32, 64  # silero: one lane per 30 s, at most 32; 2 s per lane per step


@dataclass(frozen=True)
class VADConfig:
    kind: str = "silero"
    threshold: float = 0.5  # speech probability that starts a region (silero's default)
    min_speech_s: float = 0.25
    min_silence_s: float = 0.1  # a gap shorter than this does not end a region
    speech_pad_s: float = 0.03


def _silero_helpers():
    """silero-vad's ``get_speech_timestamps_from_probs`` and the path of its shipped TorchScript model."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "silero-vad is not installed: pip install 'silero-vad==6.2.3' (it ships its weights, no "
            "network needed at run time), or decode with --vad energy"
        )
    jit = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.jit"
    threads = torch.get_num_threads()
    try:
        from silero_vad.utils_vad import get_speech_timestamps_from_probs
    finally:
        torch.set_num_threads(threads)  # the package sets 1 thread for the whole process on import
    if not jit.is_file():
        raise ImportError(f"{jit}: silero-vad's TorchScript model is missing; reinstall silero-vad==6.2.3")
    return get_speech_timestamps_from_probs, jit


_SILERO_MODEL = {}


def silero_model():
    """The shipped TorchScript model, loaded once per process (it is 2 MB and stateless between ``reset_states``)."""
    if "model" not in _SILERO_MODEL:
        _, jit = _silero_helpers()
        model = torch.jit.load(str(jit), map_location="cpu")
        model.eval()
        _SILERO_MODEL["model"] = model
    return _SILERO_MODEL["model"]


@torch.no_grad()
def silero_probs(reader, lanes: Optional[int] = None) -> np.ndarray:
    """Speech probability per 512-sample window of a 16 kHz ``RecordingReader``.

    One model call per window costs ~0.3 ms of Python and TorchScript overhead, an RTF of ~0.05 on its own; so
    the recording is split into ``lanes`` contiguous parts (one per ~``_LANE_S`` s, at most ``_MAX_LANES``) that
    run as one batch, each with its own model state (a state restarts only at a lane's start). Each step reads
    ``_STEP_WINDOWS`` windows per lane, so memory stays bounded. The last window is zero-padded, as silero-vad's
    own loop does. Runs on one intra-op thread."""
    model, threads = silero_model(), torch.get_num_threads()
    torch.set_num_threads(1)  # a 2 MB model: intra-op threads only add overhead (measured 7x slower with 2)
    try:
        return _silero_lanes(model, reader, lanes)
    finally:
        torch.set_num_threads(threads)


def _silero_lanes(model, reader, lanes: Optional[int]) -> np.ndarray:
    n = len(reader)
    n_win = -(-n // WINDOW)
    if lanes is None:
        lanes = max(1, min(_MAX_LANES, int(n / (_LANE_S * SAMPLE_RATE))))
    per_lane = -(-n_win // lanes)  # windows per lane
    out = np.zeros(lanes * per_lane, dtype=np.float32)
    model.reset_states()
    for w0 in range(0, per_lane, _STEP_WINDOWS):
        k = min(_STEP_WINDOWS, per_lane - w0)
        x = np.zeros((lanes, k * WINDOW), dtype=np.float32)  # x: [lanes, k * 512]
        for i in range(lanes):
            a = (i * per_lane + w0) * WINDOW
            y = reader.read(a, a + k * WINDOW)
            x[i, : y.size] = y
        xt = torch.from_numpy(x)
        for j in range(k):
            p = model(xt[:, j * WINDOW : (j + 1) * WINDOW], SAMPLE_RATE)  # p: [lanes, 1]
            out[np.arange(lanes) * per_lane + w0 + j] = p.view(-1).numpy()
    model.reset_states()
    return out[:n_win]


def energy_probs(blocks, n_samples: int) -> np.ndarray:
    """Pseudo speech probability per 512-sample window from its level above the recording's noise floor: 0 at
    the floor + 6 dB or below, 1 at the floor + 18 dB or above (linear in between)."""
    db = np.full(-(-n_samples // WINDOW), -100.0, dtype=np.float32)
    for start, x in blocks:
        n = -(-x.size // WINDOW)
        frames = np.pad(x, (0, n * WINDOW - x.size)).reshape(n, WINDOW)  # frames: [n, 512]
        rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
        db[start // WINDOW : start // WINDOW + n] = 20 * np.log10(rms)
    floor = float(np.percentile(db, 10)) if db.size else -100.0
    return np.clip((db - floor - 6.0) / 12.0, 0.0, 1.0)


def speech_regions(reader, config: VADConfig, max_region_s: float) -> List[Tuple[int, int]]:
    """(start, end) sample spans of speech in ``reader`` (a ``RecordingReader`` at 16 kHz), each at most
    ``max_region_s`` long (longer speech is split at its longest inner silence, else cut)."""
    if config.kind not in VADS:
        raise ValueError(f"VAD '{config.kind}' is unknown: choose {' or '.join(VADS)}")
    if reader.target_rate != SAMPLE_RATE:
        raise ValueError(f"the VAD works at {SAMPLE_RATE} Hz; the model's rate is {reader.target_rate} Hz")
    n = len(reader)
    if config.kind == "silero":
        probs = silero_probs(reader)  # probs: [ceil(n / 512)]
    else:
        probs = energy_probs(reader.blocks(WINDOW * _BLOCK_WINDOWS), n)
    return regions_from_probs(probs, n, config, max_region_s)


def regions_from_probs(
    probs: np.ndarray, n_samples: int, config: VADConfig, max_region_s: float
) -> List[Tuple[int, int]]:
    get_from_probs, _ = _silero_helpers()
    stamps = get_from_probs(
        [float(p) for p in probs],
        sampling_rate=SAMPLE_RATE,
        threshold=config.threshold,
        min_speech_duration_ms=int(config.min_speech_s * 1000),
        max_speech_duration_s=max_region_s,
        min_silence_duration_ms=int(config.min_silence_s * 1000),
        speech_pad_ms=int(config.speech_pad_s * 1000),
        audio_length_samples=n_samples,
    )
    regions = [(int(s["start"]), min(int(s["end"]), n_samples)) for s in stamps]
    logging.debug(f"VAD ({config.kind}): {len(regions)} speech regions in {n_samples / SAMPLE_RATE:.1f} s")
    return [(a, b) for a, b in regions if b > a]


def config_of(kind: Optional[str]) -> VADConfig:
    return VADConfig(kind=kind or "silero")
