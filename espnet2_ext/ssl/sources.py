"""What the pretraining steps read, per utterance: int16 audio, or the cached outputs of a frozen CNN.

Both kinds batch the same way (:func:`sample_lengths` gives the sample count a cached utterance stands for), so the
training loop and the held-out scoring take either; :func:`batch` returns the model's inputs for each kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, List

import torch

from espnet2_ext.ssl import feature_cache
from espnet2_ext.ssl.targets import HOP, WIN, collate, load_audio


def cached_features(
    cache_dir,
    wav2vec2: torch.nn.Module,
    data_dir,
    items,
    device: torch.device,
    max_utt_seconds: float,
    log: Callable[[str], None] = print,
) -> List[torch.Tensor]:
    """The frozen CNN's outputs for ``items`` ([T, C] each, on ``device``) from ``<cache_dir>/<data dir name>.npz``,
    computed into it first if absent."""
    path = Path(cache_dir) / f"{Path(data_dir).name}.npz"
    utt_ids = [u for u, _, _ in items]
    if path.is_file():
        cache = feature_cache.read(path)
    else:
        log(f"pretrain[ctc]: computing the frozen CNN's features of {data_dir} into {path}")
        audio = load_audio(items, max_utt_seconds)
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = feature_cache.compute(utt_ids, audio, wav2vec2, device)
        feature_cache.save(cache, path)
        wav2vec2.train()
    feats = feature_cache.features(cache, path, feature_cache.cnn_sha256(wav2vec2), utt_ids)
    log(f"pretrain[ctc]: {len(feats)} utterances of cached CNN features from {path}")
    return [f.to(device) for f in feats]


def sample_lengths(source, cached: bool) -> List[int]:
    """Samples per utterance, for batching; for cached features, the sample count that gives their frame count."""
    return [len(a) * HOP + WIN - HOP if cached else len(a) for a in source]


def batch(source, idx: List[int], device: torch.device, cached: bool):
    """(wav [B, L] or None, padding [B, L] or frame padding [B, T], cached CNN features [B, T, C] or None)."""
    if not cached:
        wav, pad = collate(source, idx)
        return wav.to(device, non_blocking=True), pad.to(device, non_blocking=True), None
    feats = torch.nn.utils.rnn.pad_sequence([source[i] for i in idx], batch_first=True)  # [B, T, C]
    lens = torch.tensor([len(source[i]) for i in idx], device=device)
    pad = torch.arange(feats.shape[1], device=device)[None, :] >= lens[:, None]  # [B, T]
    return None, pad, feats
