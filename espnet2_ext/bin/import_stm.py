"""Import STM conversations (+ optional RTTM, entity list) as TokenVerse utterances with segments.

python -m espnet2_ext.bin.import_stm --src dev.stm --out_dir data/conv_dev --audio_dir wav/
    [--wav_scp rec.scp] [--rttm dev.rttm] [--entities names.txt] [--lang en]
    [--max_turns 4] [--max_duration 20] [--max_gap 3] [--dump_wav_dir DIR [--skip_bad_audio]]
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import IMPORT_ERRORS, add_chunking_args, cli_main, importer_parser, parse_import_args
from espnet2_ext.common import DataError, comma_list


def get_parser() -> argparse.ArgumentParser:
    p = importer_parser(__doc__, src="STM file", out_dir="Kaldi data dir to write")
    p.add_argument("--audio_dir", default=None, help="folder with <file>.wav/.flac/.sph/.mp3 per STM file id")
    p.add_argument("--wav_scp", default=None, help="'<file> <path or pipe>' lines (overrides --audio_dir)")
    p.add_argument("--rttm", default=None, help="speaker turns; each segment takes the most-overlapping speaker")
    p.add_argument("--entities", default=None, help="entity names, one per line: tagged [NE] ... [/NE]")
    p.add_argument("--lang", default=None, help="language code: adds the language token and the lid task")
    add_chunking_args(p, "segments")
    return p


def run(argv: Optional[List[str]] = None) -> None:
    args = parse_import_args(get_parser(), argv)
    if not args.audio_dir and not args.wav_scp:
        raise DataError("give --audio_dir or --wav_scp to locate the recordings")
    from espnet2_ext.corpora.importers.stm_conversations import import_stm

    import_stm(
        args.src,
        args.out_dir,
        audio_dir=args.audio_dir,
        wav_scp=args.wav_scp,
        rttm=args.rttm,
        entity_list=args.entities,
        lang=args.lang,
        languages=comma_list(args.languages),
        max_turns=args.max_turns,
        max_duration=args.max_duration,
        max_gap=args.max_gap,
        dump_wav_dir=args.dump_wav_dir,
        skip_bad_audio=args.skip_bad_audio,
    )


main = cli_main(run, prog="import_stm", errors=IMPORT_ERRORS)

if __name__ == "__main__":
    sys.exit(main())
