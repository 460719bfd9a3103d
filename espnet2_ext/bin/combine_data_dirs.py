"""Combine Kaldi data dirs (e.g. CommonVoice ASR+LID and conversational corpora) into one, sorted.

    python -m espnet2_ext.bin.combine_data_dirs data/train data/local/cv_de/train data/local/conv_train

Utterance ids must be unique across the inputs (importers prefix them with corpus/speaker). The output appears
only when complete; inputs are never modified.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError
from espnet2_ext.data.kaldi_dir import read_data_dir, write_data_dir


def combine(dst: str, srcs: List[str]) -> Path:
    seen, utts = {}, []
    for src in srcs:
        for u in read_data_dir(src):
            if u.utt_id in seen:
                raise DataError(
                    f"utterance id {u.utt_id} is in both {seen[u.utt_id]} and {src}; make ids unique "
                    f"(e.g. prefix them with the corpus name) before combining"
                )
            seen[u.utt_id] = src
            utts.append(u)
    return write_data_dir(utts, dst)


def run(argv: Optional[List[str]] = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dst")
    p.add_argument("srcs", nargs="+")
    args = p.parse_args(argv)
    out = combine(args.dst, args.srcs)
    print(f"combine_data_dirs: {len(args.srcs)} dirs -> {out}")
    return out


main = cli_main(run, prog="combine_data_dirs")

if __name__ == "__main__":
    sys.exit(main())
