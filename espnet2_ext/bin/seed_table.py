"""Before/after table over seeds (markdown on stdout), e.g. for RESULTS_extend.md:

    python -m espnet2_ext.bin.seed_table --metrics wer,lid_acc \\
        --before "base seed 0=exp/x/decode_asr+lid/test/score.json" --before "base seed 1=wer:34.41,lid_acc:86.67" \\
        --after "ext seed 0=exp/y/.../score.json" --after "ext seed 1=..." [--show NAME=...] [--delta NAME=...]

See espnet2_ext/reporting/seed_table.py for the columns and the verdict.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import comma_list


def run(argv: Optional[List[str]] = None) -> str:
    from espnet2_ext.reporting.seed_table import parse_column, seed_table

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics", required=True, help="comma-separated score keys, e.g. wer,scd_f1,lid_acc")
    p.add_argument("--before", action="append", default=[], help="NAME=score.json or NAME=metric:value,...")
    p.add_argument("--after", action="append", default=[], help="NAME=score.json or NAME=metric:value,...")
    p.add_argument("--show", action="append", default=[], help="printed after the before columns, not counted")
    p.add_argument("--delta", default=None, help="NAME=...: adds the column 'after mean - NAME'")
    p.add_argument("--no_verdict", action="store_true")
    args = p.parse_args(argv)
    table = seed_table(
        comma_list(args.metrics),
        [parse_column(s) for s in args.before],
        [parse_column(s) for s in args.after],
        [parse_column(s) for s in args.show],
        parse_column(args.delta) if args.delta else None,
        not args.no_verdict,
    )
    print(table)
    return table


main = cli_main(run, prog="seed_table")

if __name__ == "__main__":
    sys.exit(main())
