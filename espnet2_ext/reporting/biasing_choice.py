"""The biasing evaluation's records and the choice of weight and mode on dev (issue #29); the report's tables built
on them: ``reporting/biasing_tables.py``.

A *record* is one small JSON per decode and list (``run_biasing.sh`` writes them through ``bin/biasing_report
record``): what was decoded (model, its training seed, set, list kind, N distractors, mode, weight, list seed,
``stage`` tune|test) and its numbers, flattened from ``tokenverse_score``'s JSON and the decode's
``decode_stats.json``. Decodes without a list have mode ``none``; they are scored against every list, so each
(kind, N) has its no-biasing U-WER / B-WER.

Choice (``choose``), on the tune sets only (dev, dev_partial), each setting the mean over the tune models:
a setting (mode, weight) is *allowed* when on every tune set its U-WER is at most ``max_u_wer_rise`` (0.5, the
issue's U-WER target) above the no-list decode's; among the allowed ones (all, flagged, when none is) the lowest
sum over the tune sets of their target error wins: 100 - NER F1 where the set is annotated for NER (dev), else
the WER (dev_partial, read speech). Ties: the smaller weight, then the mode's name. Per mode the best weight, and
the default mode.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

from espnet2_ext.common import DataError, PathLike
from espnet2_ext.reporting.grid_cells import Stat
from espnet2_ext.reporting.markdown import fmt, md_table

NONE = "none"
METRICS = (
    "wer",
    "scd_f1",
    "endp_f1",
    "ner_f1",
    "lid_acc",
    "u_wer",
    "b_wer",
    "fa_rate",
    "fa_per_100_utts",
    "phrase_recall",
    "seen_recall",
    "unseen_recall",
    "rtf",
    "wall_s",
    "audio_s",
)


# ---- records -------------------------------------------------------------------------------------------
def load_json(path: PathLike, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file ({what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}); write it again ({what})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object ({what})")
    return data


def training_seed(config: PathLike) -> int:
    """The ``seed`` of an ESPnet training config.yaml (ESPnet's default 0 when absent)."""
    path = Path(config)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the model's config.yaml (exp/asr_<tag>/config.yaml)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    seed = data.get("seed", 0) if isinstance(data, dict) else None
    if not isinstance(seed, int):
        raise DataError(f"{path}: 'seed' is not a whole number")
    return seed


def flatten_scores(score: Mapping, stats: Optional[Mapping]) -> Dict[str, Optional[float]]:
    """The record's metrics from a ``tokenverse_score`` JSON (+ its ``biasing`` and ``ner_by_seen`` sections) and
    a ``decode_stats.json``."""
    out: Dict[str, Optional[float]] = {k: score.get(k) for k in ("wer", "scd_f1", "endp_f1", "ner_f1", "lid_acc")}
    b = score.get("biasing") or {}
    out.update({k: b.get(k) for k in ("u_wer", "b_wer", "fa_rate", "fa_per_100_utts", "phrase_recall")})
    seen = score.get("ner_by_seen") or {}
    for kind in ("seen", "unseen"):
        out[f"{kind}_recall"] = 100.0 * seen[f"{kind}_found"] / seen[kind] if seen.get(kind) else None
    stats = stats or {}
    out.update({k: stats.get(k) for k in ("rtf", "wall_s", "audio_s")})
    return out


def make_record(score_json: PathLike, decode_stats: Optional[PathLike], config: PathLike, **key) -> dict:
    """One record: ``key`` = model, set, kind, n, mode, weight, list_seed, stage; the seed from ``config``."""
    score = load_json(score_json, "tokenverse_score output")
    stats = load_json(decode_stats, "decode_stats.json of the decode") if decode_stats else None
    if key.get("mode") != NONE and "biasing" not in score:
        raise DataError(f"{score_json}: no 'biasing' section; score the decode with tokenverse_score --utt2biasing")
    return {
        **key,
        "seed": training_seed(config),
        "metrics": flatten_scores(score, stats),
        "score_json": str(score_json),
    }


def load_records(root: PathLike) -> List[dict]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such directory of records; run run_biasing.sh's decoding stages first")
    records = [load_json(p, "biasing record") for p in sorted(root.rglob("*.json"))]
    if not records:
        raise DataError(f"{root}: no records found; run run_biasing.sh's decoding stages first")
    models: Dict[int, set] = defaultdict(set)
    for r in records:
        models[r["seed"]].add(r["model"])
    shared = {seed: sorted(m) for seed, m in models.items() if len(m) > 1}
    if shared:
        seed, names = next(iter(shared.items()))
        raise DataError(
            f"{root}: models {', '.join(names)} were all trained with seed {seed}: statistics over seeds "
            f"need one model per seed (train them with --asr_args '--seed N')"
        )
    return records


def metric_stat(records: Iterable[dict], metric: str) -> Stat:
    return Stat(tuple(r["metrics"][metric] for r in records if r["metrics"].get(metric) is not None))


def select(records: Sequence[dict], **key) -> List[dict]:
    return [r for r in records if all(r.get(k) == v for k, v in key.items())]


# ---- choosing the weight and the mode on dev -------------------------------------------------------------
def target_error(records: Sequence[dict]) -> Optional[float]:
    """100 - NER F1 where the set is scored for NER, else its WER (mean over models)."""
    ner, wer = metric_stat(records, "ner_f1"), metric_stat(records, "wer")
    if ner.n:
        return 100.0 - ner.mean
    return wer.mean if wer.n else None


def tuning_rows(
    records: Sequence[dict], sets: Sequence[str], kind: str, n: int, max_u_wer_rise: float = 0.5
) -> List[dict]:
    """Per setting (mode, weight) of the tune stage: per set the target error and U-WER rise, allowed, objective."""
    tune = select(records, stage="tune", kind=kind, n=n)
    base = {s: metric_stat(select(tune, set=s, mode=NONE), "u_wer").mean for s in sets}
    settings = sorted({(r["mode"], float(r["weight"])) for r in tune if r["mode"] != NONE})
    rows = []
    for mode, weight in settings:
        row = {"mode": mode, "weight": weight, "per_set": {}, "allowed": True, "objective": 0.0}
        for s in sets:
            mine = [r for r in select(tune, set=s, mode=mode) if float(r["weight"]) == weight]
            err, u = target_error(mine), metric_stat(mine, "u_wer").mean
            if err is None:
                raise DataError(f"no tune record for set {s}, mode {mode}, weight {weight}; decode it (stage 2)")
            rise = None if u is None or base[s] is None else u - base[s]
            row["per_set"][s] = {"error": err, "u_wer_rise": rise}
            row["allowed"] &= rise is None or rise <= max_u_wer_rise
            row["objective"] += err
        rows.append(row)
    if not rows:
        raise DataError(f"no tune records with a list (kind {kind}, N {n}); run run_biasing.sh stage 2 first")
    return rows


def choose(rows: Sequence[dict]) -> Dict[str, object]:
    """{"mode", "weight", "per_mode": {mode: weight}, "guard_met": bool} from ``tuning_rows``."""

    def best(cands):
        pool = [r for r in cands if r["allowed"]] or list(cands)
        return min(pool, key=lambda r: (r["objective"], r["weight"])), any(r["allowed"] for r in cands)

    per_mode = {m: best([r for r in rows if r["mode"] == m])[0]["weight"] for m in sorted({r["mode"] for r in rows})}
    winner, met = best(rows)
    return {"mode": winner["mode"], "weight": winner["weight"], "per_mode": per_mode, "guard_met": met}


def tuning_table(rows: Sequence[dict], sets: Sequence[str], chosen: Mapping) -> str:
    return md_table(*tuning_cells(rows, sets, chosen))


Cells = Tuple[List[str], List[List[str]]]  # (header, rows) of a table, for md_table or a record


def tuning_cells(rows: Sequence[dict], sets: Sequence[str], chosen: Mapping) -> Cells:
    header = ["mode", "weight"] + [f"{s}: error / U-WER rise" for s in sets] + ["allowed", "objective", ""]
    body = []
    for r in rows:
        cells = [f"{fmt(r['per_set'][s]['error'])} / {fmt(r['per_set'][s]['u_wer_rise'])}" for s in sets]
        mark = (
            "**chosen**"
            if (r["mode"], r["weight"]) == (chosen["mode"], chosen["weight"])
            else ("best of its mode" if chosen["per_mode"].get(r["mode"]) == r["weight"] else "")
        )
        body.append(
            [r["mode"], fmt(r["weight"])] + cells + ["yes" if r["allowed"] else "no", fmt(r["objective"]), mark]
        )
    return header, body
