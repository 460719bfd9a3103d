"""Pretraining of the XLSR-shaped stand-in on the ``ssl_corpus`` (2 CPU cores, hours not days).

Two objectives over the same S3PRL ``Wav2Vec2Model`` (the architecture the frontend loads):

* ``hubert``: HuBERT-style masked prediction (Hsu et al., 2021, iteration 1). Targets are k-means clusters of
  MFCC frames (39-dim, 20 ms shift = the CNN's 320-sample hop); spans of CNN features are replaced by the
  model's own ``mask_emb`` and a linear head predicts the cluster of every masked frame (cross-entropy).
* ``ctc``: supervised multilingual character CTC on the corpus transcripts (a linear head on the last layer),
  the fallback the issue allows when SSL does not reach the targets in the time available.

Only the wav2vec2 weights are exported (:func:`espnet2_ext.ssl.checkpoints.export`): the head is pretraining-only,
as XLS-R's quantiser and projection heads are. Training is resumable: ``<exp>/checkpoint.pt`` is written atomically
every
``save_every`` steps and at the end; running the same command again continues from it. This module is the
configuration and the training loop. The audio, targets, batches and masks come from :mod:`espnet2_ext.ssl.targets`,
what a step reads (audio or cached CNN features) from :mod:`espnet2_ext.ssl.sources`, the model, losses and
held-out scoring from :mod:`espnet2_ext.ssl.objectives`, the checkpoint files (init, export, provenance) from
:mod:`espnet2_ext.ssl.checkpoints`.
"""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from espnet2_ext.common import atomic_write_text
from espnet2_ext.ssl import sources as S
from espnet2_ext.ssl.checkpoints import load_init, save_atomic
from espnet2_ext.ssl.objectives import Pretrainer, ctc_targets, evaluate_ctc, objective_loss
from espnet2_ext.ssl.targets import (
    SAMPLE_RATE,
    char_vocab,
    fit_kmeans,
    load_audio,
    make_batches,
    mfcc_frames,
    n_frames,
    read_data_dir,
    span_mask,
)
from espnet2_ext.upstream.xlsr_standin import _plain, model_cfg_for


@dataclass
class PretrainConfig:
    objective: str = "hubert"  # hubert | ctc
    preset: str = "mini"
    seed: int = 0
    max_steps: int = 3000
    max_minutes: float = 0.0  # > 0: also stop after this much wall time in this run (resume continues)
    batch_seconds: float = 60.0  # audio per batch
    max_utt_seconds: float = 8.0
    lr: float = 2e-3
    warmup_steps: int = 300
    grad_clip: float = 5.0
    threads: int = 2
    n_clusters: int = 100  # hubert
    kmeans_frames: int = 150000  # hubert: frames sampled to fit k-means
    mask_prob: float = 0.65  # hubert: wav2vec2 semantics, ~50 % of frames masked after overlaps
    mask_length: int = 5
    ctc_mask_prob: float = 0.05  # ctc: light masking as augmentation
    save_every: int = 200
    log_every: int = 20
    model_overrides: Dict = field(default_factory=dict)
    # an exported stand-in (wav2vec2_local .pt, e.g. the HuBERT-style one) whose wav2vec2 weights start this run:
    # a second stage on another objective, as XLS-R is fine-tuned; the new head starts from scratch
    init_from: str = ""
    # where the steps run: "cpu" (the 2-core recipe) or a torch device such as "cuda" / "cuda:0". Not part of
    # the experiment's identity: a run started on one device resumes on another.
    device: str = "cpu"
    # keep the CNN feature encoder as it starts (from --init_from), as XLS-R fine-tuning and the mini recipe do
    freeze_feature_encoder: bool = False
    # ctc with a frozen CNN: a directory of its outputs per data dir (<dir>/<data dir name>.npz, made on first use,
    # see feature_cache.py); steps then skip the CNN and need no audio. Implies freeze_feature_encoder.
    feature_cache: str = ""


def _lr(step: int, cfg: PretrainConfig) -> float:
    warm = max(1, cfg.warmup_steps)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    # cosine to 5 % of the peak over the remaining steps
    progress = min(1.0, (step - warm) / max(1, cfg.max_steps - warm))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def _check_same_settings(cfg_path: Path, cfg: PretrainConfig) -> None:
    """A resumed experiment must run with the settings it was started with (``pretrain_config.json``)."""
    stored = json.loads(cfg_path.read_text()) if cfg_path.is_file() else None
    if stored is None:
        return
    # keys added after an experiment started are at their defaults in it; where its steps run and where the
    # cache lives are not part of what it is
    defaults = asdict(PretrainConfig())
    changed = {
        k
        for k, v in asdict(cfg).items()
        if stored.get(k, defaults[k]) != v
        and k not in ("max_steps", "max_minutes", "threads", "log_every", "device", "feature_cache")
    }
    if changed:
        raise ValueError(
            f"{cfg_path}: this experiment was started with other settings ({', '.join(sorted(changed))}); "
            f"use the same options to resume, or another --exp_dir"
        )


def _objective_targets(
    cfg: PretrainConfig, exp_dir: Path, items, audio: List[np.ndarray], log: Callable[[str], None]
) -> Tuple[list, int, Optional[List[str]]]:
    """Per-utterance targets, the output size and the CTC vocabulary (None for hubert). The k-means centres or the
    vocabulary are fitted once and kept in ``exp_dir`` so a resumed run uses the same ones."""
    aux_path = exp_dir / ("kmeans.json" if cfg.objective == "hubert" else "vocab.json")
    if cfg.objective == "hubert":
        if aux_path.is_file():
            km = json.loads(aux_path.read_text())
            centers = torch.tensor(km["centers"])
        else:
            log(f"pretrain[hubert]: fitting k-means ({cfg.n_clusters} clusters) on MFCC frames")
            km_model = fit_kmeans(audio, cfg.n_clusters, cfg.kmeans_frames, cfg.seed)
            centers = torch.tensor(km_model.cluster_centers_, dtype=torch.float32)
            _write_json(aux_path, {"centers": centers.tolist()})
        log("pretrain[hubert]: labelling every frame with its cluster")
        targets = [torch.cdist(torch.from_numpy(mfcc_frames(a)), centers).argmin(1) for a in audio]
        return targets, centers.shape[0], None
    if cfg.objective == "ctc":
        if aux_path.is_file():
            vocab = json.loads(aux_path.read_text())["vocab"]
        else:
            vocab = char_vocab([t for _, _, t in items])
            _write_json(aux_path, {"vocab": vocab})
        return ctc_targets(items, vocab), len(vocab), vocab
    raise ValueError(f"unknown objective '{cfg.objective}': choose hubert or ctc")


def _start_or_resume(
    cfg: PretrainConfig, model_cfg: Dict, n_out: int, device, exp_dir: Path, log: Callable[[str], None]
) -> Tuple[Pretrainer, torch.optim.Optimizer, Dict]:
    """The model, its optimiser and the run state: from ``checkpoint.pt`` when it exists, else fresh (the
    wav2vec2 part from ``--init_from`` when given)."""
    frozen = cfg.freeze_feature_encoder or bool(cfg.feature_cache)
    model = Pretrainer(model_cfg, n_out, cfg.seed, freeze_feature_encoder=frozen).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.01)
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "history": [], "seconds": 0.0}
    ckpt_path = exp_dir / "checkpoint.pt"
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        state = ck["state"]
        log(f"pretrain[{cfg.objective}]: resumed at step {state['step']} (epoch {state['epoch']})")
    elif cfg.init_from:
        sha = load_init(model.wav2vec2, cfg.init_from, model_cfg)
        log(f"pretrain[{cfg.objective}]: wav2vec2 weights from {cfg.init_from} (sha256 {sha[:12]})")
        _write_json(exp_dir / "init_from.json", {"path": cfg.init_from, "sha256": sha})
    return model, opt, state


def _train_step(model, opt, state: Dict, cfg: PretrainConfig, train, targets, lengths, idx, gen, device, cached):
    """One optimiser step on the batch ``idx`` (masked spans seeded by the step); returns (loss, acc)."""
    gen.manual_seed(cfg.seed * 1_000_003 + state["step"])
    wav, pad, cnn_feats = S.batch(train, idx, device, cached)
    frame_lens = [min(n_frames(lengths[i]), len(targets[i]) if cfg.objective == "hubert" else 10**9) for i in idx]
    T = n_frames(wav.shape[1]) if cnn_feats is None else cnn_feats.shape[1]
    prob = cfg.mask_prob if cfg.objective == "hubert" else cfg.ctc_mask_prob
    mask = span_mask((len(idx), T), frame_lens, prob, cfg.mask_length, gen) if prob > 0 else None
    for g in opt.param_groups:
        g["lr"] = _lr(state["step"], cfg)
    mask = mask.to(device, non_blocking=True) if mask is not None else None
    logits, fpad = model(wav, pad, mask, cnn_feats)  # logits: [B, T, n_out]
    loss, acc = objective_loss(cfg.objective, logits, fpad, mask, [targets[i] for i in idx], frame_lens)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    state["step"] += 1
    state["batch_in_epoch"] += 1
    return loss.item(), acc


def _log_progress(state: Dict, run_loss: List[Tuple[float, float]], elapsed: float, cfg: PretrainConfig, log) -> None:
    """Add the mean loss/accuracy of the last ``log_every`` steps to the history and log them with the ETA."""
    state["seconds"] += elapsed
    ml = float(np.mean([loss for loss, _ in run_loss]))
    ma = float(np.mean([a for _, a in run_loss]))
    state["history"].append({"step": state["step"], "loss": ml, "acc": ma, "seconds": state["seconds"]})
    rate = cfg.log_every / max(elapsed, 1e-6)
    eta = (cfg.max_steps - state["step"]) / max(rate, 1e-9)
    log(
        f"pretrain[{cfg.objective}] step {state['step']}/{cfg.max_steps} epoch {state['epoch']} "
        f"loss {ml:.3f} {'acc' if cfg.objective == 'hubert' else 'frame-err'} {ma:.3f} "
        f"lr {_lr(state['step'], cfg):.2e} {rate:.2f} steps/s ETA {eta / 60:.0f} min"
    )


def _sources(cfg: PretrainConfig, model, device, dirs, train_audio: List[np.ndarray], log) -> Dict[str, list]:
    """data dir name -> per-utterance inputs: cached CNN features (tensors on the device) or int16 audio."""
    sources = {}
    for name, d, its in dirs:
        if name == "valid" and not its:
            continue
        if cfg.feature_cache:
            sources[name] = S.cached_features(
                cfg.feature_cache, model.wav2vec2, d, its, device, cfg.max_utt_seconds, log
            )
        else:
            sources[name] = train_audio if name == "train" else load_audio(its, cfg.max_utt_seconds)
    return sources


def _run_steps(model, opt, state: Dict, cfg: PretrainConfig, data, save, checkpoint, log) -> bool:
    """Train until ``max_steps`` (True) or until ``max_minutes`` pass (False: saved; the same command continues),
    with ``checkpoint()`` every ``save_every`` steps."""
    train, targets, lengths, batch_samples, device, cached = data
    gen = torch.Generator()
    t0, run_t0, run_loss = time.time(), time.time(), []
    model.train()
    while state["step"] < cfg.max_steps:
        batches = make_batches(lengths, batch_samples, cfg.seed, state["epoch"])
        while state["batch_in_epoch"] < len(batches) and state["step"] < cfg.max_steps:
            idx = batches[state["batch_in_epoch"]]
            run_loss.append(_train_step(model, opt, state, cfg, train, targets, lengths, idx, gen, device, cached))
            if state["step"] % cfg.log_every == 0:
                elapsed, t0 = time.time() - t0, time.time()
                _log_progress(state, run_loss, elapsed, cfg, log)
                run_loss = []
            if state["step"] % cfg.save_every == 0:
                checkpoint()
            if cfg.max_minutes > 0 and time.time() - run_t0 > cfg.max_minutes * 60:
                save()
                log(
                    f"pretrain[{cfg.objective}]: --max_minutes {cfg.max_minutes} reached at step {state['step']}; "
                    f"run the same command again to continue"
                )
                return False
        if state["batch_in_epoch"] >= len(batches):
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    return True


def pretrain(data_dir, exp_dir, cfg: PretrainConfig, valid_dir=None, log: Callable[[str], None] = print) -> Path:
    """Run (or continue) pretraining; returns the path of ``checkpoint.pt``."""
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = exp_dir / "checkpoint.pt"
    cfg_path = exp_dir / "pretrain_config.json"
    _check_same_settings(cfg_path, cfg)
    if cfg.feature_cache and cfg.objective != "ctc":
        raise ValueError("--feature_cache goes with --objective ctc (hubert's targets are computed from the audio)")
    items = read_data_dir(Path(data_dir))
    # held-out scoring is CTC's (loss and CER); a hubert run ignores --valid_dir
    valid_items = read_data_dir(Path(valid_dir)) if valid_dir and cfg.objective == "ctc" else []
    model_cfg = model_cfg_for(
        cfg.preset,
        mask_prob=cfg.mask_prob if cfg.objective == "hubert" else cfg.ctc_mask_prob,
        mask_length=cfg.mask_length,
        **cfg.model_overrides,
    )

    audio: List[np.ndarray] = []
    if not cfg.feature_cache:
        log(f"pretrain[{cfg.objective}]: loading {len(items)} utterances from {data_dir}")
        audio = load_audio(items, cfg.max_utt_seconds)
    targets, n_out, vocab = _objective_targets(cfg, exp_dir, items, audio, log)
    _write_json(cfg_path, asdict(cfg))
    model, opt, state = _start_or_resume(cfg, model_cfg, n_out, device, exp_dir, log)

    def save(path=ckpt_path):
        save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "state": state,
                "model_cfg": {k: _plain(v) for k, v in model_cfg.items()},
            },
            path,
        )

    def validate():
        # a long run on a small corpus can over-fit: the step with the lowest held-out CER is kept beside the
        # last one, as checkpoint_best.pt (export it with --checkpoint checkpoint_best.pt)
        _log_valid(state, valid_eval(), cfg, log)
        if state["valid"][-1]["cer"] <= min(v["cer"] for v in state["valid"]):
            save(exp_dir / "checkpoint_best.pt")

    sources = _sources(cfg, model, device, (("train", data_dir, items), ("valid", valid_dir, valid_items)), audio, log)
    cached = bool(cfg.feature_cache)
    batch_samples = int(cfg.batch_seconds * SAMPLE_RATE)
    lengths = S.sample_lengths(sources["train"], cached)
    valid_eval = None
    if valid_items:
        valid_eval = functools.partial(
            evaluate_ctc, model, sources["valid"], ctc_targets(valid_items, vocab), vocab, batch_samples, device, cached
        )

    # which machines the steps ran on (the provenance README says so): a run may resume on another device
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {cfg.threads} thread(s)"
    if where not in state.setdefault("devices", []):
        state["devices"].append(where)

    def checkpoint():
        if valid_eval is not None:
            validate()
        save()

    data = (sources["train"], targets, lengths, batch_samples, device, cached)
    if not _run_steps(model, opt, state, cfg, data, save, checkpoint, log):
        return ckpt_path
    if valid_eval is not None and (not state.get("valid") or state["valid"][-1]["step"] != state["step"]):
        validate()
    save()
    log(f"pretrain[{cfg.objective}]: done, {state['step']} steps, {state['seconds'] / 60:.1f} min")
    return ckpt_path


def _log_valid(state: Dict, result: Dict[str, float], cfg: PretrainConfig, log: Callable[[str], None]) -> None:
    state.setdefault("valid", []).append({"step": state["step"], **result})
    log(f"pretrain[{cfg.objective}] step {state['step']} valid: loss {result['loss']:.3f} CER {result['cer']:.2f} %")


def resolve_device(name: str) -> torch.device:
    """``--device`` as a torch device; a CUDA device that is not there is a one-line error, not a stack trace."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"--device {name!r}: not a torch device ({e}); use cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: this machine has no CUDA device; use --device cpu")
        # fp32 matmuls through TF32 (wav2vec2's own fine-tuning recipes train in reduced precision too)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: only cpu and cuda are supported")
    return device


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj))
