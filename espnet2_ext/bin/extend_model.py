"""Add task(s) and/or language(s) to a trained TokenVerse++ model; writes a new experiment dir to train from.

    python -m espnet2_ext.bin.extend_model --base exp/asr_train --out_dir exp/asr_train_ext \\
        --add_task 'qst=[Q]' --add_language it [--freeze_old true --also_train joint_network]

``--base``: a trained experiment dir (config.yaml + valid.loss.best.pth, or --model_file), its config.yaml, or a
packed model zip. The new dir holds config.yaml (tasks, languages, token list, bpemodel and init_param updated),
extended.pth, tokens.txt, bpe.model (token_type bpe) and extend.json (what was added, old -> new ids). Train with
the ordinary ``asr_train --config <out_dir>/config.yaml`` (its init_param is extended.pth) on data annotated for
the new task/language; ``--freeze_old true`` writes ``model_conf.freeze_old`` so only the new rows train.
See espnet2_ext/asr/extend.py for how each table grows.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_ext.bin._cli import bool_arg, cli_main
from espnet2_ext.common import DataError, comma_list


def get_parser() -> argparse.ArgumentParser:
    from espnet2_ext.asr.extend import ROW_INITS
    from espnet2_ext.layers.task_vectors import VECTOR_INITS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="trained experiment dir, its config.yaml, or a packed model zip")
    p.add_argument("--model_file", default=None, help="weights in the experiment dir (default valid.loss.best.pth)")
    p.add_argument("--out_dir", required=True, help="the new experiment dir (must not exist)")
    p.add_argument(
        "--add_task",
        action="append",
        default=[],
        metavar="NAME=TOKEN[,TOKEN]",
        help="a new auxiliary task and its tag tokens, e.g. 'qst=[Q]' (repeatable)",
    )
    p.add_argument(
        "--add_language",
        action="append",
        default=[],
        metavar="CODE",
        help="a new language for the lid task, e.g. it (repeatable or comma-separated)",
    )
    p.add_argument(
        "--freeze_old",
        type=bool_arg,
        default=False,
        help="train only the new token rows and task-vector rows (model_conf.freeze_old)",
    )
    p.add_argument(
        "--also_train",
        default="",
        help="with --freeze_old: comma-separated module prefixes trained in full, e.g. joint_network,decoder",
    )
    p.add_argument(
        "--row_init",
        choices=ROW_INITS,
        default="mean",
        help="new token rows: mean of the same task's old token rows, or random",
    )
    p.add_argument(
        "--vector_init",
        choices=VECTOR_INITS,
        default="mean",
        help="per_task: the new task's vector (mean of the old auxiliary rows, zero, random); "
        "per_combination rows always start as their counterpart without the new task",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", type=bool_arg, default=False)
    p.add_argument(
        "--allow_network_upstream",
        action="store_true",
        help="let the base model's config name an S3PRL/hub upstream that downloads (off: refused)",
    )
    return p


def run(argv: Optional[List[str]] = None) -> Path:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from espnet2_ext.asr.extend import parse_task_arg
    from espnet2_ext.tasks.extend_experiment import extend_experiment

    tasks = dict(parse_task_arg(v) for v in args.add_task)
    if len(tasks) != len(args.add_task):
        raise DataError("the same task is given twice with --add_task")
    out = extend_experiment(
        args.base,
        args.out_dir,
        tasks,
        [x for v in args.add_language for x in comma_list(v)],
        model_file=args.model_file,
        freeze_old=args.freeze_old,
        also_train=comma_list(args.also_train),
        row_init=args.row_init,
        vector_init=args.vector_init,
        seed=args.seed,
        overwrite=args.overwrite,
        allow_network=args.allow_network_upstream or None,
    )
    print(out)
    return out


main = cli_main(run, prog="extend_model")

if __name__ == "__main__":
    sys.exit(main())
