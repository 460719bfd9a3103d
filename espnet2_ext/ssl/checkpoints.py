"""Checkpoint files of the stand-in pretraining: atomic saving, starting a stage from an exported stand-in
(``--init_from``), the export in S3PRL's ``wav2vec2_local`` format, and its provenance README.

Split from :mod:`espnet2_ext.ssl.pretrain` (the training loop), which builds on it: nothing here trains.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Dict

import torch

from espnet2_ext.common import atomic_write_bytes


def save_atomic(obj, path: Path) -> None:
    # Serialised in memory: torch.save names the archive after the file, so saving to the random temp name
    # would make every export's bytes (and sha256) different.
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


# architecture keys: an init_from checkpoint must agree on these (masking and dropout settings may differ)
_ARCH_KEYS = (
    "encoder_layers",
    "encoder_embed_dim",
    "encoder_ffn_embed_dim",
    "encoder_attention_heads",
    "conv_feature_layers",
    "extractor_mode",
    "conv_pos",
    "conv_pos_groups",
    "final_dim",
    "layer_norm_first",
)


def load_init(wav2vec2: torch.nn.Module, path, model_cfg: Dict) -> str:
    """Load an exported stand-in's weights (untrusted file: tensors only) into ``wav2vec2``; returns its sha256.
    A different architecture is refused with the keys that differ."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--init_from {path}: no such file (an exported stand-in, e.g. pretrained/xlsr_mini_ssl.pt)"
        )
    raw = path.read_bytes()
    try:
        ck = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        theirs, weights = ck["model_cfg"], ck["model_weight"]
    except Exception as e:  # noqa: BLE001 - any malformed file gets the same one-line answer
        raise ValueError(
            f"--init_from {path}: not an exported stand-in (wav2vec2_local with model_cfg and model_weight): {e}"
        ) from None
    differ = [k for k in _ARCH_KEYS if k in model_cfg and str(theirs.get(k)) != str(model_cfg[k])]
    if differ:
        what = ", ".join(f"{k} {theirs.get(k)!r} vs {model_cfg[k]!r}" for k in differ)
        raise ValueError(f"--init_from {path}: another architecture ({what}); use the --preset it was made with")
    missing, unexpected = wav2vec2.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
    if unexpected or any(not k.startswith(("quantizer.", "project_q.", "final_proj.")) for k in missing):
        raise ValueError(
            f"--init_from {path}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return hashlib.sha256(raw).hexdigest()


def export(ckpt_path, out_path, fp16: bool = True) -> Dict[str, str]:
    """The wav2vec2 weights of a pretraining checkpoint in S3PRL's ``wav2vec2_local`` format (atomic).
    Returns ``{"path", "sha256", "params"}``."""
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    prefix = "wav2vec2."
    weights = {
        k[len(prefix) :]: (v.half() if fp16 and v.is_floating_point() else v)
        for k, v in ck["model"].items()
        if k.startswith(prefix)
    }
    model_cfg = dict(ck["model_cfg"])
    state = {"task_cfg": {"normalize": True}, "model_cfg": model_cfg, "model_weight": weights}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(state, out_path)
    sha = hashlib.sha256(out_path.read_bytes()).hexdigest()
    return {"path": str(out_path), "sha256": sha, "params": str(sum(v.numel() for v in weights.values()))}


def provenance_markdown(
    exp_dir,
    info: Dict[str, str],
    corpus_stats: str = "",
    commit: str = "",
    command: str = "",
    checkpoint: str = "checkpoint.pt",
) -> str:
    """README text for an exported checkpoint: what made it, from what, how long, and its sha256."""
    exp_dir = Path(exp_dir)
    cfg = json.loads((exp_dir / "pretrain_config.json").read_text())
    state = torch.load(exp_dir / checkpoint, map_location="cpu", weights_only=True)["state"]
    hist = state.get("history", [])
    metric = "masked-frame cluster accuracy" if cfg["objective"] == "hubert" else "share of frames predicted blank"
    init = exp_dir / "init_from.json"
    start = "random initialisation"
    if init.is_file():
        i = json.loads(init.read_text())
        start = f"the wav2vec2 weights of `{i['path']}` (sha256 `{i['sha256']}`; its own README gives how it was made)"
    # checkpoints from before the device option ran on the recipe's 2-core CPU machine
    devices = " + ".join(state.get("devices", [])) or "a shared 2-core CPU machine"
    curve = "\n".join(
        f"| {h['step']} | {h['loss']:.3f} | {h['acc']:.3f} | {h['seconds'] / 60:.1f} |"
        for h in hist[:: max(1, len(hist) // 12)] + hist[-1:]
    )
    valid = state.get("valid", [])
    valid_md = ""
    if valid:
        rows = "\n".join(f"| {v['step']} | {v['loss']:.3f} | {v['cer']:.2f} |" for v in valid)
        valid_md = (
            f"Held-out CTC loss and greedy character error rate (the corpus's dev speakers; the exported "
            f"`{checkpoint}` is at step {state['step']}):\n\n| step | loss | CER % |\n|---|---|---|\n{rows}\n"
        )
    return f"""# Pretrained XLSR-shaped stand-in: `{Path(info["path"]).name}`

The mini recipe's encoder, pretrained on its own synthetic corpus (no hub, no mini_tokenverse text or voice),
in S3PRL's `wav2vec2_local` format: the frontend loads it exactly as it loads a converted XLS-R.

| | |
|---|---|
| file | `{Path(info["path"]).name}` ({Path(info["path"]).stat().st_size / 1e6:.2f} MB, fp16 storage) |
| sha256 | `{info["sha256"]}` |
| parameters | {int(info["params"]):,} (wav2vec2 preset `{cfg["preset"]}`) |
| objective | `{cfg["objective"]}` |
| started from | {start} |
| steps / epochs | {state["step"]} / {state["epoch"]} (+{state["batch_in_epoch"]} batches) |
| training time | {state.get("seconds", 0.0) / 60:.1f} min of wall clock on {devices} |
| made at commit | `{commit or "?"}` |

Command (from `egs2/mini_tokenverse/ssl1`): `{command or "./run.sh"}`

Pretraining settings (`exp/pretrain_*/pretrain_config.json`):

```json
{json.dumps(cfg, indent=1)}
```

Training curve (loss, {metric}, minutes):

| step | loss | metric | min |
|---|---|---|---|
{curve}

{valid_md}
{corpus_stats}
"""
