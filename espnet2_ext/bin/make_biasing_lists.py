"""Write the evaluation biasing lists of a data dir (Le et al. 2021's protocol;
``corpora/mini_tokenverse/biasing_lists.py``).

    python -m espnet2_ext.bin.make_biasing_lists --data_dir dump/raw/test --out_dir exp_biasing/lists/test \
        --seed 0 --distractors 0,100,500,1000 --kinds utt,conv,lang [--corpus_seed 0]

Writes ``<out_dir>/<kind>_n<N>/{utt2biasing,lists/}`` and ``<out_dir>/manifest.json``; decode with
``asr_inference --utt2biasing <out_dir>/utt_n100/utt2biasing`` and score with ``tokenverse_score --utt2biasing``
the same file. ``--corpus_seed``: mini_tokenverse read speech (no ``[NE]`` spans in its text) takes its entities
from the corpus plan of that seed. Prints the kinds written, one per line (``<kind>_n<N>``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError, comma_list
from espnet2_ext.corpora.mini_tokenverse.biasing_lists import DEFAULT_DISTRACTORS, KINDS, make_lists


def _counts(value: str):
    try:
        return [int(v) for v in comma_list(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}': give whole numbers, e.g. 0,100,500,1000") from None


def run(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="Kaldi data dir (text with [NE] ... [/NE], utt2tasks)")
    p.add_argument("--out_dir", required=True, help="replaced as a whole when complete")
    p.add_argument("--seed", type=int, default=0, help="seed of the distractor draws")
    p.add_argument(
        "--distractors", type=_counts, default=list(DEFAULT_DISTRACTORS), help="distractors per list, comma-separated"
    )
    p.add_argument("--kinds", default=",".join(KINDS), help=f"list kinds out of {', '.join(KINDS)}")
    p.add_argument(
        "--corpus_seed",
        type=int,
        default=None,
        help="mini_tokenverse: utterances not annotated for ner take their entities from the corpus "
        "plan of this seed (the --seed of local/data.sh)",
    )
    args = p.parse_args(argv)
    manifest = make_lists(
        args.data_dir, args.out_dir, args.seed, args.distractors, comma_list(args.kinds), args.corpus_seed
    )
    if manifest["utts_without_entity_annotation"]:
        print(
            f"warning: {manifest['utts_without_entity_annotation']} utterances of {args.data_dir} carry no entity "
            f"annotation: their lists hold distractors only (mini_tokenverse read speech: give --corpus_seed)",
            file=sys.stderr,
        )
    for kind, info in manifest["kinds"].items():
        if "skipped" in info:
            print(f"note: no {kind} lists: {info['skipped']}", file=sys.stderr)
            continue
        for n in manifest["distractors"]:
            print(f"{kind}_n{n}")
    return manifest


main = cli_main(run, prog="make_biasing_lists: error", errors=(DataError,))

if __name__ == "__main__":
    sys.exit(main())
