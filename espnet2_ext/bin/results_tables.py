"""Regenerate every RESULTS*.md of a recipe from its records (``<recipe>/results/*.json``), or write one record.

    python -m espnet2_ext.bin.results_tables --recipe egs2/mini_tokenverse/asr1 [--out_dir /tmp/x]
    python -m espnet2_ext.bin.results_tables --recipe . --record exp/asr_train --kind run \\
        --model_file valid.loss.ave.pth --commit "$(git rev-parse --short HEAD)" --test_sets "test test_partial"

First write the records the options name, then regenerate; every recipe script keeps its numbers this way:

* ``--record`` (repeatable): ``results/<tag>.json`` from each exp dir (tokenverse.sh stage 7, kind run;
  run_extend.sh stage 7, kind extend with ``--group``/``--label``); ``--grid_dir``: one per scored cell (run_grid.sh).
* ``--streaming_dirs``: ``results/streaming/<model>.json`` (run_streaming.sh; ``reporting/streaming_table.py``).
* ``--biasing_out``: ``results/biasing/tables.json`` (run_biasing.sh stage 5; ``reporting/biasing_tables.py``).
* ``--long_form``: ``results/<--long_form_name>/`` (run_long_form.sh stages 4-5; ``reporting/long_form.py``).

Record schema: ``espnet2_ext/reporting/records.py``; the tables: ``reporting/results_tables.py`` (RESULTS.md:
``reporting/results_md.py``).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import comma_list


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, help="recipe dir holding results/ and the RESULTS*.md")
    p.add_argument("--out_dir", default="", help="write the RESULTS files here instead of the recipe dir")
    p.add_argument("--results_md", default="", help="write RESULTS.md's text to this path instead (tokenverse.sh)")
    g = p.add_argument_group("writing a record first")
    g.add_argument(
        "--record", action="append", default=[], help="exp dir of a scored model (<expdir>/asr_<tag>; repeatable)"
    )
    g.add_argument(
        "--grid_dir",
        default="",
        help="a run_grid.sh exp dir: a record (kind grid, whatever --kind) for each of its scored cells",
    )
    g.add_argument("--kind", default="run", choices=("run", "grid", "extend"))
    g.add_argument(
        "--group", default="", help="the comparison the model belongs to (extend: before, untrained, a setting)"
    )
    g.add_argument("--label", default="", help="its column name there; {seed} = the model's training seed")
    g.add_argument("--decode_root", default="", help="where the decode_<tasks>/<set> dirs are (default: --record)")
    g.add_argument("--model", default="", help="the model's tag (default: the exp dir's name without asr_)")
    g.add_argument("--model_file", default="valid.loss.ave.pth", help="the checkpoint the decodes used")
    g.add_argument("--commit", default="", help="espnet2_ext commit the model was scored at")
    g.add_argument("--date", default="", help="day the model was scored (YYYY-MM-DD)")
    g.add_argument("--train_command", default="", help="recipe command that trained it (default: from train.log)")
    g.add_argument("--decode_command", default="", help="recipe command that decoded it")
    g.add_argument("--test_sets", default="", help="only these test sets (commas or spaces)")
    g.add_argument(
        "--streaming_dirs",
        default="",
        help="run_streaming.sh's decode dirs (<root>/decode_<tasks>/<test set>, one per chunk size): write "
        "results/streaming/<--model>.json",
    )
    g.add_argument("--config", default="", help="the training config of --streaming_dirs' model")
    g.add_argument("--long_form", default="", help="run_long_form.sh's exp dir: write results/<--long_form_name>/")
    g.add_argument("--long_form_name", default="long_form", help="records folder: long_form, long_form_seed<k>")
    g.add_argument("--long_form_sets", default="", help="its long-form test sets, in table order")
    g.add_argument("--long_form_dev_rules", default="", help="the cut rules measured on dev (dev_rule_<rule>/)")
    g.add_argument("--data_root", default="data", help="where the long-form sets' data dirs are (their sizes)")
    g.add_argument(
        "--biasing_out", default="", help="run_biasing.sh's --out (records/, chosen.json, lists/): results/biasing/"
    )
    g.add_argument("--biasing_command", action="append", default=[], help="command shown for it (repeatable)")
    g.add_argument("--corpus_stats", default="", help="corpus table to keep beside the records (results/)")
    return p


def run(argv: Optional[Sequence[str]] = None) -> List[str]:
    from pathlib import Path

    from espnet2_ext.reporting.records import dump_record, environment, record_from_exp
    from espnet2_ext.reporting.results_md import CORPUS_FILE, RESULTS_DIR
    from espnet2_ext.reporting.results_tables import write_all

    args = get_parser().parse_args(argv)
    recipe = Path(args.recipe)
    exps = [(exp, args.kind) for exp in args.record]
    if args.grid_dir:
        from espnet2_ext.reporting.grid_cells import find_cells

        exps += [(str(cell.path), "grid") for cell in find_cells(args.grid_dir)[0]]
    if args.model and len(exps) > 1:
        raise ValueError("--model names one record: give it with a single --record")
    for exp, kind in exps:
        rec = record_from_exp(
            exp,
            kind,
            recipe,
            args.model or None,
            args.model_file,
            args.commit or None,
            args.date or None,
            {"train": args.train_command, "decode": args.decode_command},
            comma_list(args.test_sets),
            decode_root=args.decode_root or None,
        )
        if args.group:
            rec["group"] = args.group
        if args.label:
            rec["label"] = args.label.format(seed=rec["seed"])
        rec["environment"] = environment()
        print(f"wrote {dump_record(rec, recipe / RESULTS_DIR)}")
    if args.streaming_dirs:
        from espnet2_ext.reporting.streaming_table import dump_streaming_record, streaming_record

        if not args.model:
            raise ValueError("--streaming_dirs needs --model (the streaming model's tag)")
        rec = streaming_record(comma_list(args.streaming_dirs), args.model, args.config or None, args.commit or None)
        print(f"wrote {dump_streaming_record(rec, recipe / RESULTS_DIR)}")
    if args.long_form:
        from espnet2_ext.reporting.long_form import write_records

        for path in write_records(
            Path(args.long_form),
            recipe / RESULTS_DIR / args.long_form_name,
            Path(args.data_root),
            comma_list(args.long_form_sets),
            comma_list(args.long_form_dev_rules),
        ):
            print(f"wrote {path}")
    if args.biasing_out:
        import json

        from espnet2_ext.common import atomic_write_text
        from espnet2_ext.reporting.biasing_tables import TABLES_RECORD, tables_record

        data = tables_record(args.biasing_out, args.commit or None, args.date or None, args.biasing_command)
        atomic_write_text(recipe / RESULTS_DIR / TABLES_RECORD, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {recipe / RESULTS_DIR / TABLES_RECORD}")
    if args.corpus_stats and Path(args.corpus_stats).is_file():
        (recipe / RESULTS_DIR / CORPUS_FILE).parent.mkdir(parents=True, exist_ok=True)
        (recipe / RESULTS_DIR / CORPUS_FILE).write_text(Path(args.corpus_stats).read_text(encoding="utf-8"))
    written = [str(p) for p in write_all(recipe, args.out_dir or None, args.results_md or None)]
    print("wrote " + " ".join(written))
    return written


main = cli_main(run, prog="results_tables: error", errors=(ValueError, FileNotFoundError))  # DataError is a ValueError

if __name__ == "__main__":
    sys.exit(main())
