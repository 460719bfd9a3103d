"""Write a replay subset of an old training set: N utterances per language, relabelled to fewer tasks.

    python -m espnet2_ext.bin.make_replay_subset dump/raw/train dump/raw/replay_train --per_lang 40 \\
        [--tasks asr,lid | --tasks_of_config exp/asr_train/config.yaml] [--languages en,de] [--seed 0]

Only utterances annotated for every task in --tasks are drawn; their utt2tasks becomes exactly --tasks and the
tokens of the other tasks are removed from text (see espnet2_ext/data/replay.py). --tasks_of_config keeps every
task of a trained model (its config's tokenverse_conf), as run_extend.sh replays by default. The source dir is never
modified; the output appears only when complete.
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError, comma_list


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="Kaldi data dir to draw from (e.g. the base model's training set)")
    p.add_argument("dst", help="output data dir")
    p.add_argument("--per_lang", type=int, required=True, help="utterances per language (all there are if fewer)")
    tasks = p.add_mutually_exclusive_group()
    tasks.add_argument(
        "--tasks", default=None, help="tasks the replayed utterances keep (comma-separated; default asr,lid)"
    )
    tasks.add_argument(
        "--tasks_of_config",
        default=None,
        metavar="CONFIG_YAML",
        help="keep every task of this model config's tokenverse_conf (e.g. exp/asr_train/config.yaml)",
    )
    p.add_argument("--languages", default="", help="languages to draw (default: all of src)")
    p.add_argument("--seed", type=int, default=0)
    return p


def tasks_of_config(path: str) -> List[str]:
    """Every task of the model whose training config is ``path`` (its ``tokenverse_conf``, defaults filled in)."""
    import yaml

    from espnet2_ext.task_spec import task_spec_of

    try:
        with open(path, encoding="utf-8") as f:
            conf = yaml.safe_load(f)
        if not isinstance(conf, dict):
            raise ValueError("not a mapping")
        return list(task_spec_of(conf).tasks)
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError) as e:
        raise DataError(
            f"--tasks_of_config {path}: cannot read the model's tasks ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else e!r}); give a trained model's config.yaml "
            f"or --tasks"
        ) from None


def run(argv: Optional[List[str]] = None) -> Dict[str, int]:
    args = get_parser().parse_args(argv)
    from espnet2_ext.data.replay import DEFAULT_TASKS, make_replay_subset

    if args.per_lang < 1:
        raise DataError(f"--per_lang {args.per_lang}: give at least 1 (to replay nothing, do not run this)")
    if args.tasks_of_config:
        tasks = tasks_of_config(args.tasks_of_config)
    else:
        tasks = comma_list(args.tasks) if args.tasks is not None else list(DEFAULT_TASKS)
    counts = make_replay_subset(args.src, args.dst, args.per_lang, tasks, comma_list(args.languages) or None, args.seed)
    per = ", ".join(f"{lang} {n}" for lang, n in counts.items())
    short = [lang for lang, n in counts.items() if n < args.per_lang]
    note = f" (fewer than {args.per_lang} available: {', '.join(short)})" if short else ""
    print(
        f"make_replay_subset: {args.src} -> {args.dst}: {sum(counts.values())} utterances ({per}), tasks "
        f"{','.join(tasks)}{note}"
    )
    return counts


main = cli_main(run, prog="make_replay_subset")

if __name__ == "__main__":
    sys.exit(main())
