"""S3PRL wav2vec2 upstream details the conditioning frontend relies on, apart from the conditioning itself:
the transformer encoder module (where X + v(c) goes), the exact padding mask, the pretraining heads that
fine-tuning never uses, wav2vec2's time masking, and S3PRL's hooks on a copied model.
"""

from __future__ import annotations

from typing import List, Optional

import torch

# wav2vec2/HuBERT self-supervised pretraining heads: never used when the upstream extracts features (S3PRL
# calls extract_features with mask=False), so they never get a gradient. Left trainable they make PyTorch DDP stop
# with "parameters that were not used in producing loss"; fairseq's fine-tuning drops them for the same reason.
PRETRAINING_ONLY = (
    "mask_emb",
    "project_q",
    "final_proj",
    "quantizer",
    "input_quantizer",
    "project_inp",
    "target_glu",
    "label_embs_concat",
)


def freeze_pretraining_heads(model: Optional[torch.nn.Module]) -> List[str]:
    """Set ``requires_grad=False`` on the pretraining-only parameters of a wav2vec2-style model (they stay in the
    state dict, so checkpoints load unchanged); returns their names."""
    frozen = []
    for name, param in model.named_parameters() if model is not None else ():
        if name.split(".")[0] in PRETRAINING_ONLY and param.requires_grad:
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def time_mask_spans(frame_lengths: torch.Tensor, n_frames: int, prob: float, length: int) -> torch.Tensor:
    """wav2vec2's span masking: per utterance, ``round(prob * frames / length)`` span starts drawn (without
    replacement) among its valid frames, each masking ``length`` frames (spans may overlap, so a little less than
    ``prob`` of the frames ends up masked); torch's global generator, seeded by the trainer. Returns [B, T] bool."""
    spans = torch.zeros(len(frame_lengths), n_frames, dtype=torch.bool)
    for b, n in enumerate(frame_lengths.tolist()):
        n_starts = int(round(prob * n / length))
        if n_starts == 0 or n <= length:
            continue
        starts = torch.randperm(n - length + 1)[:n_starts]  # starts: [S]
        idx = (starts[:, None] + torch.arange(length)[None, :]).reshape(-1)  # idx: [S * length]
        spans[b, idx] = True
    return spans


def transformer_encoder_of(upstream) -> torch.nn.Module:
    """The wav2vec2/XLSR transformer encoder module inside an ``S3PRLUpstream`` (input = CNN features + proj)."""
    model = getattr(getattr(upstream, "upstream", None), "model", None)
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "layers"):
        raise ValueError(
            f"task_vector_injection 'feature_encoder' needs a wav2vec2/XLSR-style S3PRL upstream "
            f"(got {type(getattr(upstream, 'upstream', upstream)).__name__}); use "
            f"task_vector_injection: encoder_output for other upstreams"
        )
    return encoder


def exact_padding_mask(frame_lengths: torch.Tensor, n_frames: int, device: torch.device) -> torch.Tensor:
    """[B, T] True on padding frames: frames at or beyond the CNN's exact output length of each utterance.

    S3PRL marks a frame as padding only when *all* its samples are padding, so in a padded batch the frame that
    straddles an utterance's end stays visible to attention and the positional convolution; this mask makes a
    batched utterance's output equal its one-utterance output."""
    frames = torch.arange(n_frames, device=device)  # frames: [T]
    return frames[None, :] >= frame_lengths.to(device)[:, None]


def rebind_s3prl_hooks(upstream) -> None:
    """S3PRL's ``UpstreamBase`` collects hidden states with forward hooks whose closures hold the upstream's
    ``_hook_hiddens`` list; in a deep copy they still append to the original's list (and the copy finds no hidden
    states). Drop the copied hooks and register them again on the copy."""
    hooks = getattr(upstream, "hooks", None)
    if not hooks:
        return
    stale = {h.handler.id for h in hooks if h.handler is not None}
    for module in upstream.modules():
        for key in [k for k in module._forward_hooks if k in stale]:
            del module._forward_hooks[key]
    for hook in hooks:
        hook.handler = None
        upstream._register_hook_handler(hook)
