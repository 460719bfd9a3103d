"""``RESULTS.md`` of a recipe, from its ``run`` records (``<recipe>/results/``; schema in ``records.py``):
environment, then the ``run`` models (``./run.sh`` and its seeds): config, parameters, checkpoint, commands, Tables
II-V, the targets with mean ± std over seeds and a verdict each. Also the pieces the other files reuse (score
entries, the models table, the header line); those files and ``generate``/``write_all``: ``results_tables.py``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import List, Mapping, Sequence

from espnet2_ext.common import DataError
from espnet2_ext.reporting.markdown import fmt, md_table
from espnet2_ext.reporting.records import Record
from espnet2_ext.reporting.report import (
    ScoreEntry,
    _entry_key,
    table_activations,
    table_main,
    table_per_language,
    table_time,
)

RESULTS_DIR = "results"
GENERATED = (
    "Generated from `results/*.json` by `python -m espnet2_ext.bin.results_tables --recipe <this dir>`; do not edit."
)
STORY = "[docs/experiments.md](../../../docs/experiments.md)"
TARGETS_FILE = "recipe/targets.json"  # [{"test_set", "metric", "goal", "lower_is_better"}]: the main command's goals
CORPUS_FILE = "recipe/corpus_stats.md"  # the recipe's corpus table (stage 7 copies data/corpus_stats.md here)
ALL_ACT = "asr+scd+endp+ner+lid"


# ---- records -> score entries ---------------------------------------------------------------------------------
def entries(records: Sequence[Record]) -> List[ScoreEntry]:
    out = [
        ScoreEntry(r.model, test_set, tuple(act.split("+")), values, r.path)
        for r in records
        for test_set, acts in r.scores.items()
        for act, values in acts.items()
    ]
    return sorted(out, key=_entry_key)


def params_cell(value: object) -> str:
    if value is None:
        return "unknown"
    return f"{value:,}" if isinstance(value, int) else str(value)


def config_cell(conf: Mapping) -> str:
    sha = f" (sha256 `{conf['sha256'][:12]}`)" if conf.get("sha256") else ""
    where = f"[{conf['path']}]({conf['path']})" if not conf.get("inline") else f"`{conf['path']}` (inline in record)"
    return where + sha


# ---- RESULTS.md ---------------------------------------------------------------------------------------------
def models_block(records: Sequence[Record]) -> str:
    rows = [
        [
            f"`{r.model}`",
            config_cell(r.config),
            str(r.train_set or "-"),
            str(r.seed if r.seed is not None else "-"),
            params_cell(r.parameters),
            f"`{r.checkpoint['model_file']}`",
            f"{r.commit or '-'}, {r.date or '-'}",
        ]
        for r in records
    ]
    table = md_table(["model", "config", "train set", "seed", "parameters", "checkpoint", "commit, date"], rows)
    cmds = []
    for r in records:
        for stage in ("train", "decode"):
            if r.commands.get(stage):
                cmds.append(f"- `{r.model}` {stage}: `{r.commands[stage]}`")
    return table + ("\n\n" + "\n".join(cmds) if cmds else "")


def environment_block(records: Sequence[Record]) -> str:
    lines = []
    for r in records:
        env = r.data.get("environment") or {}
        versions = ", ".join(f"{k} {v}" for k, v in sorted(env.items())) or "versions not recorded"
        lines.append(f"- `{r.model}`: {r.date or 'date unknown'}, espnet2_ext {r.commit or 'unknown'}; {versions}")
    return "\n".join(lines)


def _mean_std(xs: Sequence[float]) -> str:
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"{xs[0]:.2f}"
    return f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}"


def targets_block(records: Sequence[Record], targets: Sequence[Mapping]) -> str:
    """One row per goal: each seed's value (all tasks active), mean ± std, and the verdict (every seed / mean)."""
    seeded = [r for r in records if r.seed is not None]
    seeded.sort(key=lambda r: r.seed)
    header = ["test set", "metric", "goal"] + [f"seed {r.seed}" for r in seeded] + ["mean ± std", "verdict"]
    rows = []
    for t in targets:
        vals = [((r.scores.get(t["test_set"]) or {}).get(ALL_ACT) or {}).get(t["metric"]) for r in seeded]
        got = [float(v) for v in vals if v is not None]
        low = bool(t.get("lower_is_better"))
        ok = [(v <= t["goal"]) if low else (v >= t["goal"]) for v in got]
        mean_ok = got and ((statistics.mean(got) <= t["goal"]) if low else (statistics.mean(got) >= t["goal"]))
        if not got:
            verdict = "not scored"
        elif all(ok):
            verdict = "met (every seed)"
        elif mean_ok:
            verdict = f"met on the mean ({sum(ok)} of {len(ok)} seeds)"
        else:
            verdict = f"missed ({sum(ok)} of {len(ok)} seeds)"
        goal = f"{'≤' if low else '≥'} {t['goal']:g}"
        rows.append([t["test_set"], t["metric"], goal] + [fmt(v) for v in vals] + [_mean_std(got), verdict])
    return md_table(header, rows)


def results_md(recipe: Path, records: Sequence[Record], others: Sequence[str] = ()) -> str:
    runs = [r for r in records if r.kind == "run"]
    if not runs:
        raise DataError(f"{recipe / RESULTS_DIR}: no record of kind 'run'; run ./run.sh (stage 7 writes one)")
    ents = entries(runs)
    where = Path(recipe).resolve()  # tokenverse.sh's stage 7 passes "." (the recipe dir it runs in)
    parts = [
        f"# RESULTS: {where.parent.name}/{where.name}\n\n{GENERATED} How each setting was chosen, and the trials "
        f"that were not kept: {STORY}. Other tables: {_others(others)}.",
        "## Environment\n\n" + environment_block(runs),
        "## Models\n\nConfigs are paths in this recipe; the sha256 is of the file at the record's commit.\n\n"
        + models_block(runs),
    ]
    targets = recipe / RESULTS_DIR / TARGETS_FILE
    if targets.is_file():
        goals = json.loads(targets.read_text(encoding="utf-8"))
        parts.append("## Targets (all tasks active, one row per goal)\n\n" + targets_block(runs, goals))
    corpus = recipe / RESULTS_DIR / CORPUS_FILE
    if corpus.is_file():
        parts.append("#" + corpus.read_text(encoding="utf-8").strip("\n").replace("\n#", "\n##"))
    parts.append(
        "## Table II: all tasks active\n\nWER, F1 and accuracy in %; '-' = not active or not annotated.\n\n"
        + table_main(ents)
    )
    parts.append("## Table III: per language (all tasks active)\n\n" + table_per_language(ents))
    per_model = [f"### {m}\n\n{table_activations(ents, m)}" for m in sorted({r.model for r in runs})]
    parts.append(
        "## Table IV: task activation at inference\n\nITT = tokens of inactive tasks in the hypotheses.\n\n"
        + "\n\n".join(per_model)
    )
    timed = table_time(ents)
    if timed:
        parts.append("## Table V: time-based scores\n\nCollars in s, latencies in ms (`time_metrics`).\n\n" + timed)
    figures = [f"![conversation_{r.model}](images/conversation_{r.model}.png)" for r in runs if _figure(recipe, r)]
    if figures:
        parts.append("## A decoded test conversation (`plot_conversation`)\n\n" + "\n\n".join(figures))
    return "\n\n".join(parts) + "\n"


def _figure(recipe: Path, r: Record) -> bool:
    return (recipe / "images" / f"conversation_{r.model}.png").is_file()


def _others(names: Sequence[str]) -> str:
    return ", ".join(f"[{n}]({n})" for n in sorted(names)) or "none"
