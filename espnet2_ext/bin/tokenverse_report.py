"""Collect every score.json under experiment directories into markdown result tables (paper Tables II-IV).

python -m espnet2_ext.bin.tokenverse_report --exp_dir exp --out RESULTS.md [--prepend corpus_stats.md]
    [--test_sets "test test_partial"] [--append RESULTS_grid.md]
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import comma_list
from espnet2_ext.reporting.report import write_report


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--exp_dir",
        action="append",
        required=True,
        help="experiment directory searched recursively for score.json (repeatable)",
    )
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument(
        "--prepend",
        action="append",
        default=[],
        help="markdown file copied in before the tables, e.g. corpus statistics (repeatable)",
    )
    p.add_argument(
        "--test_sets", default="", help="only these test sets (commas or spaces; default: every score.json found)"
    )
    p.add_argument(
        "--append",
        action="append",
        default=[],
        help="markdown file added at the end, headings one level deeper, sections the report already "
        "has left out, e.g. the grid's RESULTS_grid.md (repeatable)",
    )
    p.add_argument(
        "--figure", action="append", default=[], help="PNG shown at the end, e.g. from plot_conversation (repeatable)"
    )
    return p


def run(argv: Optional[Sequence[str]] = None) -> str:
    args = get_parser().parse_args(argv)
    report = write_report(args.exp_dir, args.out, args.prepend, args.figure, comma_list(args.test_sets), args.append)
    print(f"wrote {args.out}")
    return report


main = cli_main(run, prog="tokenverse_report: error", errors=(ValueError,))  # DataError is a ValueError

if __name__ == "__main__":
    sys.exit(main())
