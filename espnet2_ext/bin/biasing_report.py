"""The biasing evaluation's bookkeeping for ``run_biasing.sh`` (records and the dev choice:
``reporting/biasing_choice.py``; the report: ``reporting/biasing_tables.py``), three commands (``$O`` =
run_biasing.sh's ``--out``, e.g. exp_biasing/lists_seed0):

    python -m espnet2_ext.bin.biasing_report record --score d/score_utt_n100.json --decode_stats \
        d/decode_stats.json --config exp/asr_train/config.yaml --model train --set test --kind utt --n 100 \
        --mode gated --weight 2 --list_seed 0 --stage test --out $O/records/test/train/test/x.json
    python -m espnet2_ext.bin.biasing_report choose --records $O/records/tune --tune_sets dev,dev_partial \
        --kind utt --n 100 --out $O/chosen.json     # prints "<mode> <weight>" per mode, the chosen one first
    python -m espnet2_ext.bin.biasing_report table --records $O/records --chosen $O/chosen.json \
        --lists $O/lists --out RESULTS_biasing.md
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError, atomic_write_text, comma_list
from espnet2_ext.reporting import biasing_choice as C
from espnet2_ext.reporting import biasing_tables as T


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="one JSON record of a scored decode")
    rec.add_argument("--score", required=True, help="tokenverse_score --out_json of the decode")
    rec.add_argument("--decode_stats", default=None, help="decode_stats.json of the decode (RTF)")
    rec.add_argument("--config", required=True, help="the model's config.yaml (its training seed)")
    rec.add_argument("--model", required=True)
    rec.add_argument("--set", required=True)
    rec.add_argument("--kind", required=True, help="list kind the decode was scored with (utt, conv, lang)")
    rec.add_argument("--n", type=int, required=True, help="distractors per list")
    rec.add_argument("--mode", required=True, help="ungated, gated or none (decoded without a list)")
    rec.add_argument("--weight", type=float, default=None, help="--biasing_weight of the decode")
    rec.add_argument("--list_seed", type=int, default=None)
    rec.add_argument("--stage", required=True, choices=("tune", "test"))
    rec.add_argument("--out", required=True)
    ch = sub.add_parser("choose", help="weight and mode from the tune records")
    ch.add_argument("--records", required=True)
    ch.add_argument("--tune_sets", required=True, help="e.g. dev,dev_partial")
    ch.add_argument("--kind", default="utt")
    ch.add_argument("--n", type=int, default=100)
    ch.add_argument("--max_u_wer_rise", type=float, default=0.5)
    ch.add_argument("--out", required=True, help="JSON: the choice and the tuning rows")
    tb = sub.add_parser("table", help="the markdown report")
    tb.add_argument("--records", required=True)
    tb.add_argument("--chosen", required=True, help="choose's --out")
    tb.add_argument(
        "--lists",
        default=None,
        help="the folder of make_biasing_lists outputs (one per set): their sizes are stated under the heading",
    )
    tb.add_argument("--note", action="append", default=[], help="a paragraph added under the heading")
    tb.add_argument("--out", required=True)
    return p


def run(argv: Optional[Sequence[str]] = None) -> object:
    args = _parser().parse_args(argv)
    if args.command == "record":
        if args.mode != C.NONE and args.weight is None:
            raise DataError(f"--mode {args.mode} needs the --weight the decode used")
        record = C.make_record(
            args.score,
            args.decode_stats,
            args.config,
            model=args.model,
            set=args.set,
            kind=args.kind,
            n=args.n,
            mode=args.mode,
            weight=args.weight,
            list_seed=args.list_seed,
            stage=args.stage,
        )
        atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
        return record
    if args.command == "choose":
        sets = comma_list(args.tune_sets)
        rows = C.tuning_rows(C.load_records(args.records), sets, args.kind, args.n, args.max_u_wer_rise)
        chosen = C.choose(rows)
        out = {
            **chosen,
            "tune_sets": sets,
            "kind": args.kind,
            "n": args.n,
            "rows": rows,
            "table": C.tuning_table(rows, sets, chosen),
        }
        atomic_write_text(args.out, json.dumps(out, indent=1) + "\n")
        print(f"{chosen['mode']} {chosen['weight']:g}")
        for mode, weight in chosen["per_mode"].items():
            if mode != chosen["mode"]:
                print(f"{mode} {weight:g}")
        return out
    chosen = C.load_json(args.chosen, "biasing_report choose --out")
    notes = list(args.note)
    if args.lists:
        notes.append("Lists per set:\n\n" + "\n".join(T.list_notes(args.lists)))
    report = T.build_report(C.load_records(args.records), chosen, chosen.get("table", ""), notes)
    atomic_write_text(args.out, report)
    print(f"wrote {args.out}")
    return report


main = cli_main(run, prog="biasing_report: error", errors=(DataError,))

if __name__ == "__main__":
    sys.exit(main())
