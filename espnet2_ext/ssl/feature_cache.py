"""Outputs of a frozen CNN feature encoder, computed once per corpus and stored compactly.

When the wav2vec2 CNN is frozen (as in XLS-R fine-tuning, and in a second pretraining stage that keeps the first
stage's CNN), its output for an utterance never changes: computing it once instead of every step removes most of
a step's compute, and a corpus of hours fits in tens of MB (int8 with one scale per utterance and channel), small
enough to move to another machine (a GPU) instead of the audio.

File format: a NumPy ``.npz`` read with ``allow_pickle=False`` (the file may come from elsewhere):
``utt_ids`` [N] str, ``offsets`` [N+1] int64, ``data`` [sum T, C] int8, ``scales`` [N, C] float32 and
``cnn_sha256`` (of the CNN weights that made it). A cache made by other CNN weights is refused when loaded.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from espnet2_ext.common import atomic_write_bytes


def cnn_sha256(wav2vec2: torch.nn.Module) -> str:
    """sha256 over the feature encoder's tensors (names, shapes and fp32 bytes, in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(wav2vec2.feature_extractor.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@torch.no_grad()
def compute(
    utt_ids: Sequence[str],
    audio: Sequence[np.ndarray],
    wav2vec2: torch.nn.Module,
    device: torch.device = torch.device("cpu"),
) -> Dict[str, np.ndarray]:
    """Quantised CNN outputs of each int16 waveform, normalised per utterance as ``targets.collate`` does.

    One utterance at a time: the CNN has no cross-frame normalisation, so its valid frames do not depend on the
    padding of a batch (tested)."""
    extractor = wav2vec2.feature_extractor.to(device).eval()
    data: List[np.ndarray] = []
    scales: List[np.ndarray] = []
    offsets = [0]
    for x in audio:
        wav = torch.from_numpy(x.astype(np.float32)).to(device)
        wav = F.layer_norm(wav, wav.shape)[None]  # [1, L]
        feats = extractor(wav)[0].T  # [T, C]
        scale = feats.abs().amax(0).clamp_min(1e-8) / 127.0  # [C]
        q = torch.round(feats / scale).clamp(-127, 127).to(torch.int8)  # [T, C]
        data.append(q.cpu().numpy())
        scales.append(scale.float().cpu().numpy())
        offsets.append(offsets[-1] + q.shape[0])
    channels = data[0].shape[1] if data else 0
    return {
        "utt_ids": np.array(list(utt_ids), dtype=str),
        "offsets": np.array(offsets, dtype=np.int64),
        "data": np.concatenate(data) if data else np.zeros((0, channels), np.int8),
        "scales": np.stack(scales) if scales else np.zeros((0, channels), np.float32),
        "cnn_sha256": np.array(cnn_sha256(wav2vec2)),
    }


def save(cache: Dict[str, np.ndarray], path) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, **cache)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read(path) -> Dict[str, np.ndarray]:
    """The arrays of a cache file; a file that is not a cache (or would need pickle) is refused."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in ("utt_ids", "offsets", "data", "scales", "cnn_sha256")}
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: not a feature cache ({e}); delete it and run again to recompute it") from None


def features(cache: Dict[str, np.ndarray], path, expect_cnn_sha256: str, utt_ids: Sequence[str]) -> List[torch.Tensor]:
    """The features of ``utt_ids`` (in that order) as float32 [T, C] tensors. Refuses a cache (``path`` names it in
    the error) made by other CNN weights or lacking one of the utterances."""
    if str(cache["cnn_sha256"]) != expect_cnn_sha256:
        raise ValueError(
            f"{path}: made by other CNN weights (sha256 {str(cache['cnn_sha256'])[:12]} vs "
            f"{expect_cnn_sha256[:12]} of this model's); delete it to recompute, or start from the "
            f"--init_from that made it"
        )
    index = {u: i for i, u in enumerate(cache["utt_ids"].tolist())}
    missing = [u for u in utt_ids if u not in index]
    if missing:
        raise ValueError(
            f"{path}: no features for {len(missing)} utterance(s) of the data dir (e.g. {missing[0]}); "
            f"delete it to recompute"
        )
    offsets, data, scales = cache["offsets"], cache["data"], cache["scales"]
    out = []
    for u in utt_ids:
        i = index[u]
        q = torch.from_numpy(data[offsets[i] : offsets[i + 1]].astype(np.float32))  # [T, C]
        out.append(q * torch.from_numpy(scales[i])[None, :])
    return out


def load(path, expect_cnn_sha256: str, utt_ids: Sequence[str]) -> List[torch.Tensor]:
    """:func:`read` then :func:`features`."""
    return features(read(path), path, expect_cnn_sha256, utt_ids)
