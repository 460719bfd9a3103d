"""Randomly initialised wav2vec2/XLSR-shaped checkpoints in S3PRL's local format.

No model hub is reachable here, so tests and the mini recipe use these stand-ins. The file is what S3PRL's
``wav2vec2_local`` upstream loads (``{task_cfg, model_cfg, model_weight}``); real users point the same configs at
``upstream: xls_r_300m`` / ``xlsr_53`` or at their own converted checkpoint instead.

The same helpers rebuild an upstream *skeleton* (architecture only) from a stored ``model_cfg``: that is how a
packed model is reloaded offline, its weights coming from the model file rather than from a download.
"""

from __future__ import annotations

import enum
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from espnet2_ext.common import atomic_output
from espnet2_ext.utils.config_literal import layer_spec_text, parse_layer_spec

# Architecture presets. "tiny" is for tests (~100k params); "mini" is what the mini recipe trains from
# scratch; "base" matches wav2vec2-base (95M) and "xlsr_300m" XLS-R 300M (317M), for benchmarks.
_CONV_STANDARD = "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2"
PRESETS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(
        encoder_layers=2,
        encoder_embed_dim=64,
        encoder_ffn_embed_dim=128,
        encoder_attention_heads=2,
        conv_feature_layers="[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
        conv_pos=16,
        conv_pos_groups=4,
        final_dim=32,
    ),
    "mini": dict(
        encoder_layers=4,
        encoder_embed_dim=128,
        encoder_ffn_embed_dim=256,
        encoder_attention_heads=4,
        conv_feature_layers="[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
        conv_pos=32,
        conv_pos_groups=8,
        final_dim=64,
    ),
    "base": dict(
        encoder_layers=12,
        encoder_embed_dim=768,
        encoder_ffn_embed_dim=3072,
        encoder_attention_heads=12,
        conv_feature_layers=_CONV_STANDARD,
        conv_pos=128,
        conv_pos_groups=16,
        final_dim=256,
    ),
    "xlsr_300m": dict(
        encoder_layers=24,
        encoder_embed_dim=1024,
        encoder_ffn_embed_dim=4096,
        encoder_attention_heads=16,
        conv_feature_layers=_CONV_STANDARD,
        conv_pos=128,
        conv_pos_groups=16,
        final_dim=768,
    ),
}
# XLS-R style: layer-norm feature extractor, pre-LN transformer, no dropout for deterministic tests.
_COMMON = dict(
    extractor_mode="layer_norm",
    layer_norm_first=True,
    dropout=0.0,
    attention_dropout=0.0,
    activation_dropout=0.0,
    dropout_input=0.0,
    dropout_features=0.0,
    encoder_layerdrop=0.0,
    feature_grad_mult=1.0,
)


def _plain(value: Any) -> Any:
    """Config values as YAML-safe builtins (S3PRL's choice enums are str subclasses)."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def model_cfg_for(preset: str = "tiny", **overrides) -> Dict[str, Any]:
    if preset not in PRESETS:
        raise ValueError(f"unknown stand-in preset '{preset}': choose one of {', '.join(PRESETS)}")
    return {**_COMMON, **PRESETS[preset], **overrides}


def build_wav2vec2(model_cfg: Dict[str, Any], seed: int = 0) -> torch.nn.Module:
    from s3prl.upstream.utils import merge_with_parent
    from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

    model_cfg = dict(model_cfg)
    if "conv_feature_layers" in model_cfg:  # S3PRL evals it: hand it the checked literal (utils/config_literal.py)
        model_cfg["conv_feature_layers"] = layer_spec_text(
            parse_layer_spec(model_cfg["conv_feature_layers"], "model_cfg.conv_feature_layers", "the wav2vec2 config")
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Wav2Vec2Model(merge_with_parent(Wav2Vec2Config, model_cfg))


def save_checkpoint(path: str, model_cfg: Dict[str, Any], normalize: bool = True, seed: int = 0) -> Path:
    """Write a randomly initialised checkpoint loadable by S3PRL's ``wav2vec2_local`` upstream (atomically)."""
    model = build_wav2vec2(model_cfg, seed)
    state = {
        "task_cfg": {"normalize": normalize},
        "model_cfg": {k: _plain(v) for k, v in model_cfg.items()},
        "model_weight": model.state_dict(),
    }
    with atomic_output(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def skeleton_of(upstream_expert: torch.nn.Module) -> Optional[Dict[str, Any]]:
    """``{task_cfg, model_cfg}`` of a loaded wav2vec2-family S3PRL upstream, or None for other upstreams."""
    model = getattr(upstream_expert, "model", None)
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "__dataclass_fields__"):
        return None
    model_cfg = {k: _plain(getattr(cfg, k)) for k in cfg.__dataclass_fields__}
    return {"task_cfg": {"normalize": bool(getattr(upstream_expert, "wav_normalize", False))}, "model_cfg": model_cfg}


def write_skeleton_checkpoint(skeleton: Dict[str, Any], directory: Optional[str] = None) -> str:
    """Temporary local checkpoint with random weights for ``skeleton``: weights are to be overwritten."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="s3prl_skeleton_", suffix=".pt")
    os.close(fd)
    model = build_wav2vec2(skeleton["model_cfg"])
    torch.save(
        {
            "task_cfg": dict(skeleton.get("task_cfg", {})),
            "model_cfg": dict(skeleton["model_cfg"]),
            "model_weight": model.state_dict(),
        },
        tmp,
    )
    return tmp
