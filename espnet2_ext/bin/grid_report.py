"""Tables with mean ± std over seeds and one verdict line per paper claim, from the cells of ``run_grid.sh``.

    python -m espnet2_ext.bin.grid_report --exp_dir exp_grid --out RESULTS_grid.md \
        --full_set train_full_only --mixed_set train_read400 [--append data/corpus_stats.md]

See ``espnet2_ext/reporting/grid_cells.py`` for the cell layout and the verdict rule.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.reporting.grid_report import Roles, write_grid_report


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--exp_dir", required=True, help="the grid's experiment dir (cells: asr_<tag>/)")
    p.add_argument("--out", required=True, help="markdown file to write")
    p.add_argument("--full_set", default="train_full_only", help="train set of fully annotated conversations only")
    p.add_argument("--mixed_set", required=True, help="train set of conversations + ASR/LID-only read speech")
    p.add_argument("--dev_set", default="dev", help="the set the best config is chosen on")
    p.add_argument("--test_set", default="test")
    p.add_argument("--partial_test_set", default="test_partial")
    p.add_argument("--model_file", default="valid.loss.best.pth", help="the checkpoint the cells were decoded with")
    p.add_argument(
        "--save_model_info",
        action="store_true",
        help="first write each cell's model_info.json (parameters, decoded epoch) from its weights, so "
        "the model table stays whole where the weights are not kept",
    )
    p.add_argument(
        "--append",
        action="append",
        default=[],
        help="markdown copied in at the end, e.g. the corpus statistics (repeatable)",
    )
    return p


def run(argv: Optional[Sequence[str]] = None) -> str:
    args = get_parser().parse_args(argv)
    roles = Roles(args.full_set, args.mixed_set, args.dev_set, args.test_set, args.partial_test_set)
    report = write_grid_report(args.exp_dir, args.out, roles, args.model_file, args.append, args.save_model_info)
    print(f"wrote {args.out}")
    return report


main = cli_main(run, prog="grid_report: error", errors=(ValueError,))  # DataError is a ValueError

if __name__ == "__main__":
    sys.exit(main())
