"""Import JSON-lines conversations (format: docs/data_formats.md) as a Kaldi data dir with segments.

python -m espnet2_ext.bin.import_jsonl --src convs.jsonl --out_dir data/convs
    [--max_turns 4] [--max_duration 20] [--max_gap 3] [--dump_wav_dir DIR [--skip_bad_audio]]
    [--languages en,de,es,fr]
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import IMPORT_ERRORS, add_chunking_args, cli_main, importer_parser, parse_import_args
from espnet2_ext.common import comma_list


def get_parser() -> argparse.ArgumentParser:
    p = importer_parser(__doc__, src="JSON-lines file, one conversation per line", out_dir="Kaldi data dir to write")
    add_chunking_args(p, "turns")
    return p


def run(argv: Optional[List[str]] = None) -> None:
    args = parse_import_args(get_parser(), argv)
    from espnet2_ext.corpora.importers.jsonl_conversations import import_jsonl

    import_jsonl(
        args.src,
        args.out_dir,
        languages=comma_list(args.languages),
        max_turns=args.max_turns,
        max_duration=args.max_duration,
        max_gap=args.max_gap,
        dump_wav_dir=args.dump_wav_dir,
        skip_bad_audio=args.skip_bad_audio,
    )


main = cli_main(run, prog="import_jsonl", errors=IMPORT_ERRORS)

if __name__ == "__main__":
    sys.exit(main())
