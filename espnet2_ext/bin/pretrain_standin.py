"""Pretrain the XLSR-shaped stand-in (HuBERT-style masked prediction or character CTC), resumably, and export it.

    python -m espnet2_ext.bin.pretrain_standin --data_dir data/train --exp_dir exp/pretrain_hubert \\
        --objective hubert --max_steps 3000 [--max_minutes 60] [--threads 2]
    python -m espnet2_ext.bin.pretrain_standin --exp_dir exp/pretrain_hubert --export out.pt [--fp32]
    # a CTC stage on a GPU, on cached outputs of the starting checkpoint's frozen CNN, with held-out CER:
    python -m espnet2_ext.bin.pretrain_standin --data_dir data/train --valid_dir data/dev --exp_dir exp/ctc_gpu \
        --objective ctc --init_from first_stage.pt --feature_cache exp/fc --device cuda --batch_seconds 240
    python -m espnet2_ext.bin.pretrain_standin --exp_dir exp/ctc_gpu --export out.pt --checkpoint checkpoint_best.pt

Training writes <exp_dir>/checkpoint.pt atomically every --save_every steps; the same command continues it.
The export is the wav2vec2 weights only, in S3PRL's wav2vec2_local format (what the frontend loads).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import List, Optional

from espnet2_ext.bin._cli import bool_arg, cli_main


def get_parser() -> argparse.ArgumentParser:
    from espnet2_ext.ssl.pretrain import PretrainConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", help="Kaldi dir with wav.scp and text (training)")
    p.add_argument(
        "--valid_dir",
        default=None,
        help="held-out Kaldi dir: with --objective ctc, its CTC loss and greedy CER at every save",
    )
    p.add_argument("--exp_dir", required=True)
    p.add_argument("--export", default=None, help="write the wav2vec2 weights of exp_dir/checkpoint.pt here and stop")
    p.add_argument(
        "--checkpoint",
        default="checkpoint.pt",
        help="with --export: which checkpoint of exp_dir (checkpoint_best.pt: the lowest valid CER)",
    )
    p.add_argument("--fp32", action="store_true", help="export in fp32 (default fp16 storage)")
    p.add_argument("--readme", default=None, help="with --export: write the provenance README here")
    p.add_argument("--corpus_stats", default=None, help="with --readme: corpus_stats.md to include")
    p.add_argument("--commit", default="", help="with --readme: the git commit that made it")
    p.add_argument("--command", default="", help="with --readme: the command that made it")
    p.add_argument("--notes", default=None, help="with --readme: a markdown file appended as it is (history, choices)")
    for f in fields(PretrainConfig):
        if f.name == "model_overrides":
            p.add_argument(
                "--model_overrides",
                type=json.loads,
                default={},
                help="JSON dict of wav2vec2 config overrides on top of the preset",
            )
            continue
        if isinstance(f.default, bool):
            p.add_argument(f"--{f.name}", type=bool_arg, default=f.default, metavar="true|false")
            continue
        p.add_argument(f"--{f.name}", type=type(f.default), default=f.default)
    return p


def run(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    from espnet2_ext.ssl.checkpoints import export
    from espnet2_ext.ssl.pretrain import PretrainConfig, pretrain

    if args.export:
        info = export(f"{args.exp_dir}/{args.checkpoint}", args.export, fp16=not args.fp32)
        if args.readme:
            from pathlib import Path

            from espnet2_ext.common import atomic_write_text
            from espnet2_ext.ssl.checkpoints import provenance_markdown

            stats = Path(args.corpus_stats).read_text() if args.corpus_stats else ""
            notes = Path(args.notes).read_text() if args.notes else ""
            atomic_write_text(
                args.readme,
                provenance_markdown(args.exp_dir, info, stats, args.commit, args.command, args.checkpoint)
                + (f"\n{notes}" if notes else ""),
            )
        print(json.dumps(info))
        return
    if not args.data_dir:
        raise ValueError("--data_dir is required for training")
    cfg = PretrainConfig(**{f.name: getattr(args, f.name) for f in fields(PretrainConfig)})
    pretrain(args.data_dir, args.exp_dir, cfg, valid_dir=args.valid_dir)


main = cli_main(run, prog="pretrain_standin", errors=(RuntimeError, ValueError, FileNotFoundError))

if __name__ == "__main__":
    sys.exit(main())
