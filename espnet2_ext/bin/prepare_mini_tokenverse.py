"""Generate the embedded ``mini_tokenverse`` corpus (espeak-ng + sox, seeded, deterministic).

    python -m espnet2_ext.bin.prepare_mini_tokenverse --out_dir data --seed 0 [--size debug|small|default]
        [--nj 2] [--no_partial] [--wav_dir DIR] [--train_read N [--read_names P]] [--dev_read N]
        [--extension qst|it]

Writes data/{train,train_full_only,dev,test,test_partial} Kaldi dirs, wavs under
<out_dir>/../downloads/mini_tokenverse/wav (or --wav_dir) and data/corpus_stats.md; with --train_read N also
data/train_read<N> (train's conversations + N read utterances per language; data/train is unchanged), and with
--read_names P data/train_read<N>_names<100 P> instead (a share P of the read entity slots from open name lists, no
mini_tokenverse entity among them: espnet2_ext/corpora/mini_tokenverse/name_pools.py); with --dev_read N also
data/dev_partial (N read utterances per language drawn like test_partial: a dev set for the read-speech target).
Re-running only synthesises wavs whose recipe or content changed. --extension writes only the data for extending a
trained model (data/qst_{train,dev,test}: asr + questions [Q]; data/it_{train,dev,test}: Italian, asr + lid), never
the default corpus (README "Adding a task or a language").
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import cli_main


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", default="data", help="where the Kaldi data dirs go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--size",
        choices=("debug", "small", "default"),
        default="default",
        help="debug: 3 conversations + 2 read utterances per language and split; small: half of default",
    )
    p.add_argument("--nj", type=int, default=2, help="parallel espeak-ng/sox jobs")
    p.add_argument(
        "--no_partial", action="store_true", help="leave out the read-speech subset annotated only for asr+lid"
    )
    p.add_argument("--wav_dir", default=None, help="default: <out_dir>/../downloads/mini_tokenverse/wav")
    p.add_argument(
        "--train_read",
        type=int,
        default=None,
        metavar="N",
        help="also write <out_dir>/train_read<N>: the train conversations + N read (asr+lid only) "
        "utterances per language (size default: debug 2, small 20, default 40)",
    )
    p.add_argument(
        "--read_names",
        type=float,
        default=0.0,
        metavar="P",
        help="with --train_read N: write <out_dir>/train_read<N>_names<100 P> instead, where a share P "
        "(0 < P <= 1) of the read utterances' entity slots take names from Faker's per-language "
        "lists (never a mini_tokenverse entity), as in a large ASR+LID-only corpus",
    )
    p.add_argument(
        "--dev_read",
        type=int,
        default=None,
        metavar="N",
        help="also write <out_dir>/dev_partial: N read (asr+lid only) utterances per language drawn like "
        "test_partial (half the entities held out of train, the unseen read voice among the "
        "speakers), to tune the read-speech target on dev",
    )
    p.add_argument(
        "--extension",
        choices=("qst", "it"),
        default=None,
        help="write only the extension data: qst (conversations annotated asr + [Q] after questions) or "
        "it (Italian read speech, asr + lid)",
    )
    return p


def run(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    from espnet2_ext.corpora.mini_tokenverse.mini_tokenverse import prepare_extension, prepare_mini_tokenverse

    if args.extension:
        prepare_extension(
            args.out_dir, args.extension, seed=args.seed, size=args.size, nj=args.nj, wav_dir=args.wav_dir
        )
    else:
        prepare_mini_tokenverse(
            args.out_dir,
            seed=args.seed,
            size=args.size,
            nj=args.nj,
            partial=not args.no_partial,
            wav_dir=args.wav_dir,
            train_read=args.train_read,
            read_names=args.read_names,
            dev_read=args.dev_read,
        )


main = cli_main(run, prog="prepare_mini_tokenverse", errors=(RuntimeError, ValueError))

if __name__ == "__main__":
    sys.exit(main())
