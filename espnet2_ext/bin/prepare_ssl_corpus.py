"""Synthesise the XLSR stand-in's pretraining corpus (espeak-ng + wordfreq, disjoint from mini_tokenverse).

    python -m espnet2_ext.bin.prepare_ssl_corpus --out_dir data --hours 4 [--seed 0] [--nj 2] [--wav_dir DIR]

Writes data/{train,dev} (text = plain words) and data/corpus_stats.md; re-running only synthesises missing wavs.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import cli_main


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", default="data")
    p.add_argument("--hours", type=float, default=4.0, help="hours of training speech (all languages)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nj", type=int, default=2, help="parallel espeak-ng/sox jobs")
    p.add_argument("--wav_dir", default=None, help="default: <out_dir>/../downloads/ssl_wav")
    return p


def run(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    from espnet2_ext.data.ssl_corpus import prepare

    prepare(args.out_dir, hours=args.hours, seed=args.seed, nj=args.nj, wav_dir=args.wav_dir)


main = cli_main(run, prog="prepare_ssl_corpus", errors=(RuntimeError, ValueError))

if __name__ == "__main__":
    sys.exit(main())
