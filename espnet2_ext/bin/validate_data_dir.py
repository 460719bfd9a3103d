"""Check a Kaldi data dir (files, sorting, utt2tasks, task-token annotation, optionally audio) without changing it.

    python -m espnet2_ext.bin.validate_data_dir data/train [--check_audio] [--languages en,de,es,fr]

Exits 1 with a one-line message naming the file, line and fix on the first problem; prints a summary otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import comma_list


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", help="Kaldi data dir (wav.scp, text, utt2spk, utt2tasks, ...)")
    p.add_argument(
        "--check_audio",
        action="store_true",
        help="also decode every audio file (exists, non-empty, decodable, not truncated) and report "
        "the ones format_data_dir will convert to 16 kHz mono",
    )
    p.add_argument("--languages", default="en,de,es,fr", help="comma-separated language codes of the task spec")
    p.add_argument(
        "--tasks", default=None, help="comma-separated task names of the spec (default: all known: scd,endp,ner,lid)"
    )
    return p


def run(argv: Optional[List[str]] = None):
    args = get_parser().parse_args(argv)
    from espnet2_ext.data.validate_dir import validate_data_dir
    from espnet2_ext.task_spec import TaskSpec

    spec = TaskSpec.build(tasks=comma_list(args.tasks) if args.tasks else None, languages=comma_list(args.languages))
    summary = validate_data_dir(args.data_dir, spec, check_audio=args.check_audio)
    print(summary.format())
    return summary


main = cli_main(run, prog="validate_data_dir", errors=(ValueError,))  # DataError is a ValueError

if __name__ == "__main__":
    sys.exit(main())
