"""Pretraining of the XLSR-shaped stand-in on the ``ssl_corpus`` (2 CPU cores, hours not days).

Two objectives over the same S3PRL ``Wav2Vec2Model`` (the architecture the frontend loads):

* ``hubert``: HuBERT-style masked prediction (Hsu et al., 2021, iteration 1). Targets are k-means clusters of
  MFCC frames (39-dim, 20 ms shift = the CNN's 320-sample hop); spans of CNN features are replaced by the
  model's own ``mask_emb`` and a linear head predicts the cluster of every masked frame (cross-entropy).
* ``ctc``: supervised multilingual character CTC on the corpus transcripts (a linear head on the last layer),
  the fallback the issue allows when SSL does not reach the targets in the time available.

Only the wav2vec2 weights are exported (:func:`espnet2_ext.ssl.checkpoints.export`): the head is pretraining-only, as XLS-R's
quantiser and projection heads are. Training is resumable: ``<exp>/checkpoint.pt`` is written atomically every
``save_every`` steps and at the end; running the same command again continues from it. The audio, targets, batches
and masks it trains on come from :mod:`espnet2_ext.ssl.targets`; checkpoint files (init, export, provenance)
are :mod:`espnet2_ext.ssl.checkpoints`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from espnet2_ext.common import atomic_write_text
from espnet2_ext.ssl.checkpoints import load_init, save_atomic
from espnet2_ext.ssl.targets import (HOP, SAMPLE_RATE, WIN, char_vocab, collate, fit_kmeans, load_audio,
                                     make_batches, mfcc_frames, n_frames, read_data_dir, span_mask)
from espnet2_ext.upstream.xlsr_standin import _plain, build_wav2vec2, model_cfg_for


@dataclass
class PretrainConfig:
    objective: str = "hubert"          # hubert | ctc
    preset: str = "mini"
    seed: int = 0
    max_steps: int = 3000
    max_minutes: float = 0.0           # > 0: also stop after this much wall time in this run (resume continues)
    batch_seconds: float = 60.0        # audio per batch
    max_utt_seconds: float = 8.0
    lr: float = 2e-3
    warmup_steps: int = 300
    grad_clip: float = 5.0
    threads: int = 2
    n_clusters: int = 100              # hubert
    kmeans_frames: int = 150000        # hubert: frames sampled to fit k-means
    mask_prob: float = 0.65            # hubert: wav2vec2 semantics, ~50 % of frames masked after overlaps
    mask_length: int = 5
    ctc_mask_prob: float = 0.05        # ctc: light masking as augmentation
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


# ------------------------------------------------------------------------------------------------ model
class Pretrainer(torch.nn.Module):
    """wav2vec2 stand-in + a pretraining head (cluster logits or CTC characters)."""

    def __init__(self, model_cfg: Dict, n_out: int, seed: int, freeze_feature_encoder: bool = False):
        super().__init__()
        self.model_cfg = dict(model_cfg)
        self.wav2vec2 = build_wav2vec2(model_cfg, seed)
        # the quantiser/projection of wav2vec2's own contrastive objective are not used here: freeze them so the
        # optimiser state stays small and their weights stay as initialised (the frontend freezes them too)
        used = ("feature_extractor", "layer_norm", "post_extract_proj", "encoder", "mask_emb")
        for name, p in self.wav2vec2.named_parameters():
            top = name.split(".")[0]
            p.requires_grad_(top in used and not (freeze_feature_encoder and top == "feature_extractor"))
        dim = model_cfg["encoder_embed_dim"]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.head = torch.nn.Linear(dim, n_out)

    def forward(self, wav: Optional[torch.Tensor], pad: torch.Tensor, mask_indices: Optional[torch.Tensor],
                cnn_feats: Optional[torch.Tensor] = None):
        """wav: [B, L], pad: [B, L] (True = padding), mask_indices: [B, T] or None
        -> logits [B, T, n_out], frame padding [B, T].
        With ``cnn_feats`` [B, T, C] (cached outputs of the frozen CNN) the CNN is skipped: ``wav`` is unused and
        ``pad`` is the frame padding [B, T].

        The steps of ``Wav2Vec2Model.forward`` up to the transformer, called one by one because its own masking
        path gathers the masked targets with ``.view(B, -1, C)``, which needs the same masked count in every row.
        """
        w = self.wav2vec2
        if cnn_feats is None:
            feats = w.feature_extractor(wav).transpose(1, 2)  # [B, T, C]
            lens = w._get_feat_extract_output_lengths((~pad).sum(-1))  # [B]
        else:
            feats, lens = cnn_feats, (~pad).sum(-1)  # [B, T, C], [B]
        feats = w.layer_norm(feats)
        T = feats.shape[1]
        fpad = torch.arange(T, device=feats.device)[None, :] >= lens[:, None]  # [B, T]
        if w.post_extract_proj is not None:
            feats = w.post_extract_proj(feats)  # [B, T, D]
        if mask_indices is not None:
            feats = torch.where(mask_indices[:, :T, None], w.mask_emb.to(feats.dtype), feats)
        x, _ = w.encoder(feats, padding_mask=fpad if fpad.any() else None)  # [B, T, D]
        return self.head(x), fpad


def _lr(step: int, cfg: PretrainConfig) -> float:
    warm = max(1, cfg.warmup_steps)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    # cosine to 5 % of the peak over the remaining steps
    progress = min(1.0, (step - warm) / max(1, cfg.max_steps - warm))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(data_dir, exp_dir, cfg: PretrainConfig, valid_dir=None, log: Callable[[str], None] = print) -> Path:
    """Run (or continue) pretraining; returns the path of ``checkpoint.pt``."""
    torch.set_num_threads(cfg.threads)
    device = _device(cfg.device)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = exp_dir / "checkpoint.pt"
    cfg_path = exp_dir / "pretrain_config.json"
    stored = json.loads(cfg_path.read_text()) if cfg_path.is_file() else None
    if stored is not None:
        # keys added after an experiment started are at their defaults in it; where its steps run and where the
        # cache lives are not part of what it is
        defaults = asdict(PretrainConfig())
        changed = {k for k, v in asdict(cfg).items() if stored.get(k, defaults[k]) != v
                   and k not in ("max_steps", "max_minutes", "threads", "log_every", "device", "feature_cache")}
        if changed:
            raise ValueError(f"{cfg_path}: this experiment was started with other settings ({', '.join(sorted(changed))}); "
                             f"use the same options to resume, or another --exp_dir")
    if cfg.feature_cache and cfg.objective != "ctc":
        raise ValueError("--feature_cache goes with --objective ctc (hubert's targets are computed from the audio)")
    frozen = cfg.freeze_feature_encoder or bool(cfg.feature_cache)
    items = read_data_dir(Path(data_dir))
    # held-out scoring is CTC's (loss and CER); a hubert run ignores --valid_dir
    valid_items = read_data_dir(Path(valid_dir)) if valid_dir and cfg.objective == "ctc" else []
    model_cfg = model_cfg_for(cfg.preset, mask_prob=cfg.mask_prob if cfg.objective == "hubert" else cfg.ctc_mask_prob,
                              mask_length=cfg.mask_length, **cfg.model_overrides)

    audio: List[np.ndarray] = []
    if not cfg.feature_cache:
        log(f"pretrain[{cfg.objective}]: loading {len(items)} utterances from {data_dir}")
        audio = load_audio(items, cfg.max_utt_seconds)
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
        n_out = centers.shape[0]
        log("pretrain[hubert]: labelling every frame with its cluster")
        targets = [torch.cdist(torch.from_numpy(mfcc_frames(a)), centers).argmin(1) for a in audio]
    elif cfg.objective == "ctc":
        if aux_path.is_file():
            vocab = json.loads(aux_path.read_text())["vocab"]
        else:
            vocab = char_vocab([t for _, _, t in items])
            _write_json(aux_path, {"vocab": vocab})
        n_out = len(vocab)
        targets = ctc_targets(items, vocab)
    else:
        raise ValueError(f"unknown objective '{cfg.objective}': choose hubert or ctc")
    _write_json(cfg_path, asdict(cfg))

    model = Pretrainer(model_cfg, n_out, cfg.seed, freeze_feature_encoder=frozen).to(device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.01)
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "history": [], "seconds": 0.0}
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

    def save(path=ckpt_path):
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state,
                      "model_cfg": {k: _plain(v) for k, v in model_cfg.items()}}, path)

    def validate():
        # a long run on a small corpus can over-fit: the step with the lowest held-out CER is kept beside the
        # last one, as checkpoint_best.pt (export it with --checkpoint checkpoint_best.pt)
        _log_valid(state, valid_eval(), cfg, log)
        if state["valid"][-1]["cer"] <= min(v["cer"] for v in state["valid"]):
            save(exp_dir / "checkpoint_best.pt")

    sources = {}  # data dir -> per-utterance inputs: cached CNN features (tensors on the device) or int16 audio
    for name, d, its in (("train", data_dir, items), ("valid", valid_dir, valid_items)):
        if name == "valid" and not its:
            continue
        if cfg.feature_cache:
            sources[name] = _cached_features(cfg, model.wav2vec2, d, its, device, log)
        else:
            sources[name] = audio if name == "train" else load_audio(its, cfg.max_utt_seconds)
    lengths = _sample_lengths(sources["train"], bool(cfg.feature_cache))
    valid_eval = None
    if valid_items:
        valid_targets = ctc_targets(valid_items, vocab)

        def valid_eval():
            return _evaluate_ctc(model, sources["valid"], valid_targets, vocab, int(cfg.batch_seconds * SAMPLE_RATE),
                                 device, bool(cfg.feature_cache))

    # which machines the steps ran on (the provenance README says so): a run may resume on another device
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {cfg.threads} thread(s)"
    if where not in state.setdefault("devices", []):
        state["devices"].append(where)
    batch_samples = int(cfg.batch_seconds * SAMPLE_RATE)
    gen = torch.Generator()
    t0, run_t0, run_loss = time.time(), time.time(), []
    model.train()
    while state["step"] < cfg.max_steps:
        batches = make_batches(lengths, batch_samples, cfg.seed, state["epoch"])
        while state["batch_in_epoch"] < len(batches) and state["step"] < cfg.max_steps:
            idx = batches[state["batch_in_epoch"]]
            gen.manual_seed(cfg.seed * 1_000_003 + state["step"])
            wav, pad, cnn_feats = _batch(sources["train"], idx, device, bool(cfg.feature_cache))
            frame_lens = [min(n_frames(lengths[i]), len(targets[i]) if cfg.objective == "hubert" else 10**9)
                          for i in idx]
            T = n_frames(wav.shape[1]) if cnn_feats is None else cnn_feats.shape[1]
            prob = cfg.mask_prob if cfg.objective == "hubert" else cfg.ctc_mask_prob
            mask = span_mask((len(idx), T), frame_lens, prob, cfg.mask_length, gen) if prob > 0 else None
            for g in opt.param_groups:
                g["lr"] = _lr(state["step"], cfg)
            mask = mask.to(device, non_blocking=True) if mask is not None else None
            logits, fpad = model(wav, pad, mask, cnn_feats)  # logits: [B, T, n_out]
            loss, acc = _loss(cfg.objective, logits, fpad, mask, [targets[i] for i in idx], frame_lens)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            state["step"] += 1
            state["batch_in_epoch"] += 1
            run_loss.append((loss.item(), acc))
            if state["step"] % cfg.log_every == 0:
                el = time.time() - t0
                state["seconds"] += el
                t0 = time.time()
                ml = float(np.mean([l for l, _ in run_loss]))
                ma = float(np.mean([a for _, a in run_loss]))
                state["history"].append({"step": state["step"], "loss": ml, "acc": ma, "seconds": state["seconds"]})
                run_loss = []
                rate = cfg.log_every / max(el, 1e-6)
                eta = (cfg.max_steps - state["step"]) / max(rate, 1e-9)
                log(f"pretrain[{cfg.objective}] step {state['step']}/{cfg.max_steps} epoch {state['epoch']} "
                    f"loss {ml:.3f} {'acc' if cfg.objective == 'hubert' else 'frame-err'} {ma:.3f} "
                    f"lr {_lr(state['step'], cfg):.2e} {rate:.2f} steps/s ETA {eta / 60:.0f} min")
            if state["step"] % cfg.save_every == 0:
                if valid_eval is not None:
                    validate()
                save()
            if cfg.max_minutes > 0 and time.time() - run_t0 > cfg.max_minutes * 60:
                save()
                log(f"pretrain[{cfg.objective}]: --max_minutes {cfg.max_minutes} reached at step {state['step']}; "
                    f"run the same command again to continue")
                return ckpt_path
        if state["batch_in_epoch"] >= len(batches):
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    if valid_eval is not None and (not state.get("valid") or state["valid"][-1]["step"] != state["step"]):
        validate()
    save()
    log(f"pretrain[{cfg.objective}]: done, {state['step']} steps, {state['seconds'] / 60:.1f} min")
    return ckpt_path


def ctc_targets(items, vocab: List[str]) -> List[torch.Tensor]:
    """Character ids of each transcript (space = ``|``); characters outside ``vocab`` are left out."""
    index = {c: i for i, c in enumerate(vocab)}
    return [torch.tensor([index[c] for c in t.replace(" ", "|") if c in index], dtype=torch.long)
            for _, _, t in items]


def _cached_features(cfg: PretrainConfig, wav2vec2: torch.nn.Module, data_dir, items, device: torch.device,
                     log: Callable[[str], None]) -> List[torch.Tensor]:
    """The frozen CNN's outputs for ``items`` ([T, C] each, on ``device``), computed into the cache first if absent."""
    from espnet2_ext.ssl import feature_cache

    path = Path(cfg.feature_cache) / f"{Path(data_dir).name}.npz"
    utt_ids = [u for u, _, _ in items]
    if path.is_file():
        cache = feature_cache.read(path)
    else:
        log(f"pretrain[{cfg.objective}]: computing the frozen CNN's features of {data_dir} into {path}")
        audio = load_audio(items, cfg.max_utt_seconds)
        path.parent.mkdir(parents=True, exist_ok=True)
        cache = feature_cache.compute(utt_ids, audio, wav2vec2, device)
        feature_cache.save(cache, path)
        wav2vec2.train()
    feats = feature_cache.features(cache, path, feature_cache.cnn_sha256(wav2vec2), utt_ids)
    log(f"pretrain[{cfg.objective}]: {len(feats)} utterances of cached CNN features from {path}")
    return [f.to(device) for f in feats]


def _sample_lengths(source, cached: bool) -> List[int]:
    """Samples per utterance, for batching; for cached features, the sample count that gives their frame count."""
    return [len(a) * HOP + WIN - HOP if cached else len(a) for a in source]


def _batch(source, idx: List[int], device: torch.device, cached: bool):
    """(wav [B, L] or None, padding [B, L] or frame padding [B, T], cached CNN features [B, T, C] or None)."""
    if not cached:
        wav, pad = collate(source, idx)
        return wav.to(device, non_blocking=True), pad.to(device, non_blocking=True), None
    feats = torch.nn.utils.rnn.pad_sequence([source[i] for i in idx], batch_first=True)  # [B, T, C]
    lens = torch.tensor([len(source[i]) for i in idx], device=device)
    pad = torch.arange(feats.shape[1], device=device)[None, :] >= lens[:, None]  # [B, T]
    return None, pad, feats


@torch.no_grad()
def _evaluate_ctc(model: "Pretrainer", source, targets: List[torch.Tensor], vocab: List[str], batch_samples: int,
                  device: torch.device, cached: bool) -> Dict[str, float]:
    """CTC loss per character and greedy character error rate (jiwer) on a held-out set, without masking."""
    import jiwer

    model.eval()
    lengths = _sample_lengths(source, cached)
    refs, hyps, loss_sum, chars = [], [], 0.0, 0
    for idx in make_batches(lengths, batch_samples, 0, 0):
        wav, pad, feats = _batch(source, idx, device, cached)
        logits, fpad = model(wav, pad, None, feats)  # [B, T, V]
        tgts = [targets[i] for i in idx]
        loss, _ = _loss("ctc", logits, fpad, None, tgts, [])
        n = sum(len(t) for t in tgts)
        loss_sum, chars = loss_sum + loss.item() * n, chars + n
        best = logits.argmax(-1).cpu()  # [B, T]
        for b, t in enumerate(tgts):
            ids = torch.unique_consecutive(best[b][: int((~fpad[b]).sum())]).tolist()
            hyps.append("".join(vocab[i] for i in ids if i != 0).replace("|", " ").strip())
            refs.append("".join(vocab[i] for i in t.tolist()).replace("|", " ").strip())
    model.train()
    return {"loss": loss_sum / max(chars, 1), "cer": 100.0 * jiwer.cer(refs, hyps)}


def _log_valid(state: Dict, result: Dict[str, float], cfg: PretrainConfig, log: Callable[[str], None]) -> None:
    state.setdefault("valid", []).append({"step": state["step"], **result})
    log(f"pretrain[{cfg.objective}] step {state['step']} valid: loss {result['loss']:.3f} CER {result['cer']:.2f} %")


def _device(name: str) -> torch.device:
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


def _loss(objective: str, logits: torch.Tensor, fpad: torch.Tensor, mask: Optional[torch.Tensor],
          targets: List[torch.Tensor], frame_lens: List[int]) -> Tuple[torch.Tensor, float]:
    B, T, V = logits.shape
    if objective == "hubert":
        # masked frames only (HuBERT's alpha = 1): predicting unmasked frames is nearly copying MFCC
        tgt = torch.full((B, T), -100, dtype=torch.long)
        for b in range(B):
            n = min(frame_lens[b], T, len(targets[b]))
            tgt[b, :n] = targets[b][:n]
        tgt = tgt.to(logits.device)
        sel = mask & (tgt >= 0) & ~fpad  # [B, T]
        loss = F.cross_entropy(logits[sel], tgt[sel])
        acc = (logits[sel].argmax(-1) == tgt[sel]).float().mean().item()
        return loss, acc
    logp = logits.log_softmax(-1).transpose(0, 1)  # [T, B, V]
    in_lens = (~fpad).sum(1)
    tgt_lens = torch.tensor([len(t) for t in targets])
    # the lengths stay on the CPU (what both CTC kernels accept); the targets go where the logits are
    loss = F.ctc_loss(logp, torch.cat(targets).to(logits.device), in_lens.cpu(), tgt_lens, blank=0,
                      zero_infinity=True)
    # greedy frame-level proxy: share of frames predicted blank (falls as the head learns characters)
    err = (logits.argmax(-1)[~fpad] == 0).float().mean().item()
    return loss, err


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj))
