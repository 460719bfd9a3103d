"""Chunked attention for S3PRL's wav2vec2/XLSR transformer (XLSR-Transducer, arXiv 2407.04439), without copying it.

A frame of chunk c (chunks of ``chunk_frames`` CNN frames, 20 ms each) attends to the frames of its own chunk, of the
``left_chunks`` chunks before it (-1: all of them) and to the first ``sink_frames`` frames of the utterance
(attention sinks) as far as these are not in its future. Positions are absolute frame indices, so the same rule
gives the offline mask (all frames at once) and the streaming one (cached left context + the current chunk).

The other look-ahead inside the transformer is its positional convolution (``pos_conv``, kernel ``conv_pos`` = 128
in XLS-R: +-64 frames = 1.28 s). It is restricted per chunk: the frames of chunk c get the convolution of the
window [chunk start - left reach, chunk end) with zeros after the chunk end, exactly what the unmodified module
computes at an utterance's real end. So the encoder's look-ahead is the chunk itself (plus the CNN's 80 samples).

Everything is applied through call-scoped hooks (``chunked_encoder``): forward pre-hooks on each layer's
``self_attn`` (attention mask, or in streaming the cached keys/values) and a forward hook on ``pos_conv``; they are
removed when the call returns, so no per-batch tensor stays on a module.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

FRAME_MS = 20  # wav2vec2's CNN hop: 320 samples at 16 kHz
SAMPLE_RATE = 16000
FULL = "full"


def chunk_frames_of(value: Union[int, str, None], what: str = "chunk_size_ms") -> Optional[int]:
    """Chunk size in milliseconds (config value) -> CNN frames; None, 0 or 'full' mean full context (None)."""
    if value is None or value == 0 or (isinstance(value, str) and value.lower() == FULL):
        return None
    try:
        ms = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"frontend_conf.{what}: '{value}' is not a number of milliseconds (or 'full')") from None
    if ms < 0 or ms % FRAME_MS:
        raise ValueError(
            f"frontend_conf.{what}: {value} ms is not a positive multiple of the {FRAME_MS} ms frame "
            f"hop; use e.g. 160, 320, 640 or 1280"
        )
    return ms // FRAME_MS


@dataclass(frozen=True)
class ChunkConfig:
    """How one forward call restricts attention. ``chunk_frames`` None = full context (no restriction)."""

    chunk_frames: Optional[int] = None
    left_chunks: int = -1
    sink_frames: int = 0

    def __post_init__(self):
        if self.left_chunks < -1:
            raise ValueError(f"frontend_conf.left_chunks must be -1 (all) or >= 0, got {self.left_chunks}")
        if self.sink_frames < 0:
            raise ValueError(f"frontend_conf.attention_sink_frames must be >= 0, got {self.sink_frames}")

    @property
    def chunked(self) -> bool:
        return self.chunk_frames is not None

    def first_needed(self, chunk_index: int) -> int:
        """First (non-sink) frame the chunk ``chunk_index`` attends to."""
        if self.left_chunks < 0:
            return 0
        return max(0, (chunk_index - self.left_chunks) * self.chunk_frames)


def blocked_keys(q_pos: torch.Tensor, k_pos: torch.Tensor, cfg: ChunkConfig) -> torch.Tensor:
    """(Tq, S) bool, True where query frame q_pos[i] may NOT attend to key frame k_pos[j] (absolute positions)."""
    chunk = q_pos // cfg.chunk_frames
    end = ((chunk + 1) * cfg.chunk_frames)[:, None]
    start = (
        torch.zeros_like(chunk) if cfg.left_chunks < 0 else (chunk - cfg.left_chunks).clamp(min=0) * cfg.chunk_frames
    )
    k = k_pos[None, :]
    allowed = (k < end) & ((k >= start[:, None]) | (k < cfg.sink_frames))
    return ~allowed


def offline_attn_mask(frames: int, lengths: torch.Tensor, cfg: ChunkConfig, num_heads: int) -> torch.Tensor:
    """Attention mask for a padded batch: (B * num_heads, T, T) bool, True = blocked.

    Keys past an utterance's length are blocked; the (discarded) query rows of padding frames see every valid key,
    so no row is empty (an all-blocked row gives NaN, which would leak into later layers through 0 * NaN).
    """
    pos = torch.arange(frames, device=lengths.device)
    blocked = blocked_keys(pos, pos, cfg)[None]  # [1, T, T]
    valid = pos[None, :] < lengths[:, None]  # [B, T]
    key_pad = ~valid[:, None, :]  # [B, 1, T]
    blocked = torch.where(valid[:, :, None], blocked | key_pad, key_pad)  # [B, T, T]
    return blocked.repeat_interleave(num_heads, dim=0)  # [B*H, T, T]


def pos_conv_reach(pos_conv: torch.nn.Module) -> int:
    """Frames to the left the positional convolution(s) look at: sum of kernel // 2 over its Conv1d layers."""
    return sum(m.kernel_size[0] // 2 for m in pos_conv.modules() if isinstance(m, torch.nn.Conv1d))


def pos_conv_windows(pos_conv: torch.nn.Module, x: torch.Tensor, chunk: int, reach: int) -> torch.Tensor:
    """Chunk-restricted positional convolution. x: [B, D, R + n*C] where the first R (= reach) frames are left
    context (zeros at an utterance start) and the rest n whole chunks (zeros past the end). Returns [B, D, n*C]:
    chunk i's frames computed from the window [its start - R, its end) only, through the unmodified module (called
    via its class's forward, so the call-scoped hook that invoked this does not fire again)."""
    b, d, total = x.shape
    n = (total - reach) // chunk
    win = x.unfold(2, reach + chunk, chunk)  # [B, D, n, R + C]
    win = win.permute(0, 2, 1, 3).reshape(b * n, d, reach + chunk)  # [B*n, D, R + C]
    out = type(pos_conv).forward(pos_conv, win)[..., reach:]  # [B*n, D, C]
    return out.reshape(b, n, d, chunk).permute(0, 2, 1, 3).reshape(b, d, n * chunk)


@dataclass
class EncoderStreamState:
    """What the transformer keeps between streaming calls (one utterance): per layer the attention keys/values
    input (the layer's self_attn input) of the frames later chunks may attend to, with their absolute positions,
    and the last ``reach`` frames of the positional-convolution input."""

    next_frame: int = 0
    kv: List[Optional[torch.Tensor]] = field(default_factory=list)  # per layer: [S_cache, 1, D]
    kv_pos: Optional[torch.Tensor] = None  # [S_cache] absolute frame indices
    conv_left: Optional[torch.Tensor] = None  # [1, D, reach]


def _attention_hook(
    cfg: ChunkConfig, lengths: torch.Tensor, stream: Optional[EncoderStreamState], layer: int, new_kv: list
):
    """Forward pre-hook for one layer's fairseq ``MultiheadAttention`` (called as self_attn(query=, key=, value=,
    key_padding_mask=, attn_mask=, need_weights=)); inputs are time-first [T, B, D]."""
    cache: dict = {}

    def hook(module, args, kwargs):
        query = kwargs["query"]  # [T, B, D]
        frames = query.size(0)
        if stream is None:
            if "mask" not in cache:  # same mask for every layer of this call
                cache["mask"] = offline_attn_mask(frames, lengths.to(query.device), cfg, module.num_heads)
            return args, {**kwargs, "attn_mask": cache["mask"], "key_padding_mask": None}
        # Streaming (batch 1): keys = cached frames + this chunk's valid frames; queries = this chunk.
        n_valid = int(lengths[0])
        q_pos = torch.arange(stream.next_frame, stream.next_frame + frames, device=query.device)
        new_kv.append(query[:n_valid])
        cached = stream.kv[layer] if stream.kv else None
        keys = query[:n_valid] if cached is None else torch.cat([cached, query[:n_valid]], dim=0)  # [S, 1, D]
        k_pos = q_pos[:n_valid] if cached is None else torch.cat([stream.kv_pos.to(query.device), q_pos[:n_valid]])
        blocked = blocked_keys(q_pos, k_pos, cfg)  # [T, S]
        blocked[n_valid:] = False  # rows of padding queries (discarded): any key, never an empty row
        return args, {**kwargs, "key": keys, "value": keys, "attn_mask": blocked, "key_padding_mask": None}

    return hook


@contextlib.contextmanager
def chunked_encoder(
    encoder: torch.nn.Module, cfg: ChunkConfig, lengths: torch.Tensor, stream: Optional[EncoderStreamState] = None
) -> Iterator[None]:
    """Make the next forward of S3PRL's wav2vec2 ``TransformerEncoder`` chunk-restricted (hooks live for this
    block only). ``lengths``: (B,) valid frames of the encoder input. With ``stream`` (one utterance, the input
    being the next chunk's frames), attention also covers the cached frames and the state is advanced."""
    if not cfg.chunked:
        yield
        return
    if stream is not None and lengths.numel() != 1:
        raise ValueError("streaming runs one utterance at a time")
    handles = []
    new_kv: List[List[torch.Tensor]] = [[] for _ in encoder.layers]
    pos_conv = getattr(encoder, "pos_conv", None)
    reach = pos_conv_reach(pos_conv) if pos_conv is not None else 0
    chunk = cfg.chunk_frames
    conv_in: list = []

    def conv_hook(module, args, output):
        x = args[0]  # [B, D, T]
        b, d, t = x.shape
        valid = torch.arange(t, device=x.device)[None, None, :] < lengths.to(x.device)[:, None, None]
        x = x.masked_fill(~valid, 0.0)
        if stream is None:
            n = math.ceil(t / chunk)
            windows = F.pad(x, (reach, n * chunk - t))  # [B, D, R + n*C]
            return pos_conv_windows(module, windows, chunk, reach)[..., :t]
        n_valid = int(lengths[0])
        if n_valid > chunk:
            raise ValueError(f"streaming input has {n_valid} frames, more than one chunk ({chunk})")
        left = stream.conv_left if stream.conv_left is not None else x.new_zeros(b, d, reach)
        windows = torch.cat([left, F.pad(x[..., :n_valid], (0, chunk - n_valid))], dim=2)  # [1, D, R + C]
        conv_in.append(windows[..., n_valid : reach + n_valid])  # the next chunk's left context
        out = pos_conv_windows(module, windows, chunk, reach)[..., :n_valid]
        return F.pad(out, (0, t - n_valid))  # [1, D, T]

    try:
        if pos_conv is not None:
            handles.append(pos_conv.register_forward_hook(conv_hook))
        for i, layer in enumerate(encoder.layers):
            attn = getattr(layer, "self_attn", None)
            if attn is None or not hasattr(attn, "num_heads"):
                raise ValueError(
                    f"chunked attention needs wav2vec2 transformer layers with a fairseq self_attn; "
                    f"layer {i} is a {type(layer).__name__}"
                )
            handles.append(
                attn.register_forward_pre_hook(_attention_hook(cfg, lengths, stream, i, new_kv[i]), with_kwargs=True)
            )
        yield
    finally:
        for h in handles:
            h.remove()
    if stream is not None:
        _advance(stream, cfg, new_kv, conv_in, int(lengths[0]))


def _advance(
    stream: EncoderStreamState, cfg: ChunkConfig, new_kv: Sequence[Sequence[torch.Tensor]], conv_in: list, n_valid: int
) -> None:
    """Append the chunk just computed to the caches and drop what no later chunk can attend to."""
    if n_valid == 0 or not all(new_kv):
        return
    first = stream.next_frame
    pos = torch.arange(first, first + n_valid, device=new_kv[0][0].device)
    all_pos = pos if stream.kv_pos is None else torch.cat([stream.kv_pos.to(pos.device), pos])
    keep = (all_pos >= cfg.first_needed(first // cfg.chunk_frames + 1)) | (all_pos < cfg.sink_frames)
    stream.kv = [
        (kv[0] if not stream.kv else torch.cat([stream.kv[i], kv[0]], dim=0))[keep] for i, kv in enumerate(new_kv)
    ]
    stream.kv_pos = all_pos[keep]
    if conv_in:
        stream.conv_left = conv_in[0]
    stream.next_frame = first + n_valid
