"""Write a randomly initialised XLSR-shaped checkpoint in S3PRL's local format (no download).

    python -m espnet2_ext.bin.make_xlsr_standin --preset tiny --out downloads/xlsr_tiny.pt

Use it with ``frontend_conf: {frontend_conf: {upstream: wav2vec2_local, path_or_url: <out>}}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.upstream.xlsr_standin import PRESETS, model_cfg_for, save_checkpoint


def run(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output .pt path")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder_layers", type=int, help="override the preset's number of transformer layers")
    p.add_argument("--encoder_embed_dim", type=int, help="override the preset's embedding dim")
    args = p.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("encoder_layers", "encoder_embed_dim") if getattr(args, k)}
    cfg = model_cfg_for(args.preset, **overrides)
    path = save_checkpoint(args.out, cfg, seed=args.seed)
    import torch

    n = sum(v.numel() for v in torch.load(path, map_location="cpu", weights_only=True)["model_weight"].values())
    print(f"wrote {path} (preset {args.preset}, {n / 1e6:.2f}M parameters)")
    return path


main = cli_main(run, prog="make_xlsr_standin", errors=(ValueError,))

if __name__ == "__main__":
    sys.exit(main())
