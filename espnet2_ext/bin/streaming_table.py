"""Print (or write) the streaming latency / accuracy table of decode dirs, without touching the records.

    python -m espnet2_ext.bin.streaming_table DIR... [--out FILE]

run_streaming.sh keeps the table as a record instead (``results_tables --streaming_dirs``);
see ``espnet2_ext/reporting/streaming_table.py``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from espnet2_ext.bin._cli import cli_main


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("decode_dirs", nargs="+", help="<root>/decode_<tasks>/<test set> dirs, one per chunk size")
    p.add_argument("--out", default=None, help="write the table here (atomically) instead of printing it")
    return p


def run(argv: Optional[Sequence[str]] = None) -> str:
    from espnet2_ext.common import atomic_write_text
    from espnet2_ext.reporting.streaming_table import latency_table

    args = get_parser().parse_args(argv)
    table = latency_table(args.decode_dirs)
    if args.out:
        atomic_write_text(args.out, table + "\n")
    else:
        print(table)
    return table


main = cli_main(run, prog="streaming_table: error", errors=(FileNotFoundError, ValueError, KeyError))

if __name__ == "__main__":
    sys.exit(main())
