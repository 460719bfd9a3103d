"""Import a CommonVoice release folder as ASR + LID Kaldi dirs (one per split).

    python -m espnet2_ext.bin.import_commonvoice --src cv-corpus-17.0/de --out_dir data/cv_de --lang de
        [--splits train,dev,test] [--max_utts 5000] [--dump_wav_dir DIR [--skip_bad_audio]]

Writes <out_dir>/<split> for each <split>.tsv. wav.scp references the clips (soundfile decodes mp3); with
--dump_wav_dir they are decoded into 16 kHz mono wavs (soxr) and the dirs appear only when every clip decodes.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import IMPORT_ERRORS, cli_main, importer_parser, parse_import_args
from espnet2_ext.common import comma_list


def get_parser() -> argparse.ArgumentParser:
    p = importer_parser(
        __doc__, src="release folder with clips/ and <split>.tsv", out_dir="Kaldi dirs are written to <out_dir>/<split>"
    )
    p.add_argument("--lang", default=None, help="language code; default: the tsv 'locale' column")
    p.add_argument("--splits", default="train,dev,test", help="comma-separated tsv names (e.g. validated)")
    p.add_argument("--max_utts", type=int, default=None, help="keep the first N usable rows per split")
    return p


def run(argv: Optional[List[str]] = None) -> None:
    args = parse_import_args(get_parser(), argv)
    from espnet2_ext.corpora.importers.commonvoice import import_commonvoice

    import_commonvoice(
        args.src,
        args.out_dir,
        lang=args.lang,
        splits=comma_list(args.splits),
        languages=comma_list(args.languages),
        max_utts=args.max_utts,
        dump_wav_dir=args.dump_wav_dir,
        skip_bad_audio=args.skip_bad_audio,
    )


main = cli_main(run, prog="import_commonvoice", errors=IMPORT_ERRORS)

if __name__ == "__main__":
    sys.exit(main())
