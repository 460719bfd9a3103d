"""What the stand-in's pretraining learns from: the corpus audio, its frame-level targets and its batches.

MFCC frames (39-dim, 20 ms shift = the CNN's 320-sample hop) clustered with scikit-learn's k-means give the
HuBERT-style targets; ``char_vocab`` gives the character CTC alternative's; ``make_batches``/``collate`` batch the
corpus by audio length, seeded per epoch; ``span_mask`` draws wav2vec2-style masked spans. ``pretrain`` trains on
them; nothing here holds model weights.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
HOP, WIN = 320, 400  # the stand-in CNN: total stride 320 samples, receptive field 400 (20 ms / 25 ms)


def read_data_dir(data_dir: Path) -> List[Tuple[str, str, str]]:
    """(utt_id, wav path, text) from a Kaldi dir with ``wav.scp`` and ``text`` (plain wav paths)."""
    wavs = dict(line.split(maxsplit=1) for line in (data_dir / "wav.scp").read_text().splitlines() if line.strip())
    texts = {}
    for line in (data_dir / "text").read_text(encoding="utf-8").splitlines():
        utt, _, txt = line.partition(" ")
        texts[utt] = txt.strip()
    return [(u, wavs[u], texts[u]) for u in sorted(wavs)]


def load_audio(items: Sequence[Tuple[str, str, str]], max_seconds: float) -> List[np.ndarray]:
    out = []
    for utt, path, _ in items:
        x, sr = sf.read(path, dtype="int16")
        if sr != SAMPLE_RATE or x.ndim != 1:
            raise ValueError(f"{path} ({utt}): expected 16 kHz mono, got {sr} Hz with shape {x.shape}")
        out.append(x[: int(max_seconds * SAMPLE_RATE)])
    return out


def n_frames(num_samples: int) -> int:
    return 1 + (num_samples - WIN) // HOP if num_samples >= WIN else 0


def mfcc_frames(x_int16: np.ndarray) -> np.ndarray:
    """39-dim MFCC + deltas, one row per CNN frame (25 ms window, 20 ms shift, snip_edges: same count)."""
    import torchaudio

    wav = torch.from_numpy(x_int16.astype(np.float32)).unsqueeze(0)
    m = torchaudio.compliance.kaldi.mfcc(
        wav, sample_frequency=SAMPLE_RATE, frame_length=25.0, frame_shift=20.0, num_ceps=13, dither=0.0, snip_edges=True
    )  # [T, 13]
    d1 = torchaudio.functional.compute_deltas(m.T.unsqueeze(0)).squeeze(0).T
    d2 = torchaudio.functional.compute_deltas(d1.T.unsqueeze(0)).squeeze(0).T
    feats = torch.cat([m, d1, d2], dim=1)  # [T, 39]
    feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-5)  # per-utterance CMVN: speaker-independent targets
    return feats.numpy()


def fit_kmeans(audio: Sequence[np.ndarray], n_clusters: int, max_frames: int, seed: int):
    from sklearn.cluster import MiniBatchKMeans

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(audio))
    feats, total = [], 0
    for i in order:
        f = mfcc_frames(audio[i])
        feats.append(f)
        total += len(f)
        if total >= max_frames:
            break
    km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, batch_size=4096, n_init=3, max_iter=100)
    km.fit(np.concatenate(feats))
    return km


def char_vocab(texts: Sequence[str]) -> List[str]:
    chars = sorted({c for t in texts for c in t.replace(" ", "|")})
    return ["<blank>"] + chars


def make_batches(lengths: Sequence[int], batch_samples: int, seed: int, epoch: int) -> List[List[int]]:
    """Length-sorted buckets of at most ``batch_samples`` padded samples, shuffled per epoch (seeded)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, cur = [], []
    for i in order:
        if cur and lengths[i] * (len(cur) + 1) > batch_samples:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    random.Random(f"{seed}-{epoch}").shuffle(batches)
    return batches


def collate(audio: Sequence[np.ndarray], idx: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-utterance normalised waveforms (S3PRL's ``normalize: True``), zero-padded.
    Returns wav [B, L] and padding_mask [B, L] (True = padding)."""
    lens = [len(audio[i]) for i in idx]
    wav = torch.zeros(len(idx), max(lens))
    for b, i in enumerate(idx):
        x = torch.from_numpy(audio[i].astype(np.float32))
        wav[b, : lens[b]] = F.layer_norm(x, x.shape)
    pad = torch.arange(wav.shape[1])[None, :] >= torch.tensor(lens)[:, None]
    return wav, pad


def span_mask(
    shape: Tuple[int, int], frame_lens: Sequence[int], prob: float, length: int, gen: torch.Generator
) -> torch.Tensor:
    """[B, T] bool: spans of ``length`` frames starting at a ``prob`` share of the valid frames."""
    B, T = shape
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, n in enumerate(frame_lens):
        if n <= length:
            continue
        k = max(1, int(round(prob * n / length)))  # span starts (wav2vec2's mask_prob semantics; spans may overlap)
        starts = torch.randperm(n - length, generator=gen)[:k]
        for s in starts.tolist():
            mask[b, s : s + length] = True
    return mask
