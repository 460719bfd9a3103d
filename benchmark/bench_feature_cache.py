"""A CTC pretraining step of the stand-in on audio vs on the frozen CNN's cached outputs (``--feature_cache``).

Both variants train the same model (CNN frozen) on the same batch of synthetic utterances; the audio variant runs
the CNN forward every step, the cached one reads its int8 outputs. Prints the median step time of each and their
ratio, measured in one run:

    python benchmark/bench_feature_cache.py [--preset mini] [--batch_seconds 60] [--steps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="mini")
    p.add_argument("--batch_seconds", type=float, default=60.0)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    from espnet2_ext.ssl import feature_cache
    from espnet2_ext.ssl.objectives import Pretrainer, objective_loss
    from espnet2_ext.ssl.pretrain import resolve_device
    from espnet2_ext.ssl.sources import batch
    from espnet2_ext.upstream.xlsr_standin import model_cfg_for

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rng = np.random.default_rng(0)
    # utterances of 2-5 s (the ssl corpus averages 3.7 s) filling one batch
    audio, total = [], 0
    while total < args.batch_seconds * 16000:
        n = int(rng.uniform(2, 5) * 16000)
        audio.append((rng.standard_normal(n) * 2000).astype("int16"))
        total += n
    idx = list(range(len(audio)))
    model = Pretrainer(model_cfg_for(args.preset), n_out=40, seed=0, freeze_feature_encoder=True).to(device)
    cache = feature_cache.compute([str(i) for i in idx], audio, model.wav2vec2, device)
    ids = [str(i) for i in idx]
    feats = [f.to(device) for f in feature_cache.features(cache, "(in memory)", cache["cnn_sha256"].item(), ids)]
    targets = [torch.randint(1, 40, (max(1, len(f) // 4),)) for f in feats]
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)

    def step(cached: bool) -> float:
        t0 = time.perf_counter()
        wav, pad, x = batch(feats if cached else audio, idx, device, cached)
        logits, fpad = model(wav, pad, None, x)  # [B, T, V]
        loss, _ = objective_loss("ctc", logits, fpad, None, targets, [])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times = {}
    for cached in (False, True):
        step(cached)  # warm-up
        times[cached] = statistics.median(step(cached) for _ in range(args.steps))
    print(
        f"preset {args.preset}, {len(idx)} utterances ({total / 16000:.0f} s of audio) per batch, "
        f"{args.threads} thread(s), {device}"
    )
    print(
        f"audio (CNN every step): {times[False]:.3f} s/step; cached CNN outputs: {times[True]:.3f} s/step; "
        f"speed-up {times[False] / times[True]:.2f}x"
    )


if __name__ == "__main__":
    main()
