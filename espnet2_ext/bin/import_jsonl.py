"""Import JSON-lines conversations (format: docs/data_formats.md) as a Kaldi data dir with segments.

    python -m espnet2_ext.bin.import_jsonl --src convs.jsonl --out_dir data/convs
        [--max_turns 4] [--max_duration 20] [--max_gap 3] [--dump_wav_dir DIR [--skip_bad_audio]]
        [--languages en,de,es,fr]
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import add_chunking_args, add_import_args, check_import_args, run_cli
from espnet2_ext.common import DataError, comma_list


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="JSON-lines file, one conversation per line")
    p.add_argument("--out_dir", required=True, help="Kaldi data dir to write")
    add_import_args(p)
    add_chunking_args(p, "turns")
    return p


def run(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    check_import_args(args)
    from espnet2_ext.data.jsonl_conversations import import_jsonl

    import_jsonl(args.src, args.out_dir, languages=comma_list(args.languages), max_turns=args.max_turns,
                 max_duration=args.max_duration, max_gap=args.max_gap, dump_wav_dir=args.dump_wav_dir,
                 skip_bad_audio=args.skip_bad_audio)


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(run, argv, prog="import_jsonl", errors=(DataError, OSError))


if __name__ == "__main__":
    sys.exit(main())
