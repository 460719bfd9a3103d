"""The biasing evaluation's records, the choice of weight and mode on dev, and ``RESULTS_biasing.md`` (issue #29).

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
TABLE_COLUMNS = (
    ("wer", "WER"),
    ("u_wer", "U-WER"),
    ("b_wer", "B-WER"),
    ("ner_f1", "NER F1"),
    ("unseen_recall", "unseen recall"),
    ("seen_recall", "seen recall"),
    ("phrase_recall", "list-phrase recall"),
    ("fa_rate", "FA % of emitted"),
    ("fa_per_100_utts", "FA / 100 utts"),
    ("rtf", "RTF"),
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


def _stat(records: Iterable[dict], metric: str) -> Stat:
    return Stat(tuple(r["metrics"][metric] for r in records if r["metrics"].get(metric) is not None))


def select(records: Sequence[dict], **key) -> List[dict]:
    return [r for r in records if all(r.get(k) == v for k, v in key.items())]


# ---- choosing the weight and the mode on dev -------------------------------------------------------------
def target_error(records: Sequence[dict]) -> Optional[float]:
    """100 - NER F1 where the set is scored for NER, else its WER (mean over models)."""
    ner, wer = _stat(records, "ner_f1"), _stat(records, "wer")
    if ner.n:
        return 100.0 - ner.mean
    return wer.mean if wer.n else None


def tuning_rows(
    records: Sequence[dict], sets: Sequence[str], kind: str, n: int, max_u_wer_rise: float = 0.5
) -> List[dict]:
    """Per setting (mode, weight) of the tune stage: per set the target error and U-WER rise, allowed, objective."""
    tune = select(records, stage="tune", kind=kind, n=n)
    base = {s: _stat(select(tune, set=s, mode=NONE), "u_wer").mean for s in sets}
    settings = sorted({(r["mode"], float(r["weight"])) for r in tune if r["mode"] != NONE})
    rows = []
    for mode, weight in settings:
        row = {"mode": mode, "weight": weight, "per_set": {}, "allowed": True, "objective": 0.0}
        for s in sets:
            mine = [r for r in select(tune, set=s, mode=mode) if float(r["weight"]) == weight]
            err, u = target_error(mine), _stat(mine, "u_wer").mean
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


# ---- RESULTS_biasing.md --------------------------------------------------------------------------------
def per_seed(records: Sequence[dict], metric: str, **key) -> Dict[int, float]:
    """seed -> value of ``metric`` for the test-stage records matching ``key`` (one per seed)."""
    out: Dict[int, float] = {}
    for r in select(records, stage="test", **key):
        if r["metrics"].get(metric) is not None:
            out.setdefault(r["seed"], r["metrics"][metric])
    return out


def _paired(a: Mapping[int, float], b: Mapping[int, float], op) -> Dict[int, float]:
    return {s: op(a[s], b[s]) for s in sorted(a) if s in b and b[s] is not None}


def verdict(values: Mapping[int, float], target: float, at_least: bool) -> str:
    """'met' / 'missed by X' on the mean over seeds, with how many seeds meet it alone."""
    if not values:
        return "not measured"
    mean = Stat(tuple(values.values())).mean
    ok = (lambda v: v >= target) if at_least else (lambda v: v <= target)
    k = sum(ok(v) for v in values.values())
    head = "met" if ok(mean) else f"missed by {abs(mean - target):.2f}"
    return f"{head} ({k}/{len(values)} seeds)"


def _row(name: str, target: str, values: Mapping[int, float], verdict_text: str) -> List[str]:
    seeds = ", ".join(f"{s}: {fmt(v)}" for s, v in sorted(values.items())) or "-"
    return [name, target, seeds, Stat(tuple(values.values())).fmt(), verdict_text]


def targets_table(records: Sequence[dict], mode: str, n: int = 100, n_large: int = 1000) -> str:
    return md_table(*targets_cells(records, mode, n, n_large))


def targets_cells(records: Sequence[dict], mode: str, n: int = 100, n_large: int = 1000) -> Cells:
    """Issue #29 item 5 at test, per-utterance lists with ``n`` distractors, the chosen ``mode``."""
    at = dict(kind="utt", n=n, mode=mode)
    ratio = _paired(
        per_seed(records, "rtf", set="test", kind="utt", n=n_large, mode=mode),
        per_seed(records, "rtf", set="test", kind="utt", n=n_large, mode=NONE),
        lambda a, b: a / b,
    )
    rise = _paired(
        per_seed(records, "u_wer", set="test", **at),
        per_seed(records, "u_wer", set="test", kind="utt", n=n, mode=NONE),
        lambda a, b: a - b,
    )
    ner = per_seed(records, "ner_f1", set="test", **at)
    unseen = per_seed(records, "unseen_recall", set="test", **at)
    partial = per_seed(records, "wer", set="test_partial", **at)
    ner_large = per_seed(records, "ner_f1", set="test", kind="utt", n=n_large, mode=mode)
    rows = [
        _row("NER F1", ">= 60", ner, verdict(ner, 60, True)),
        _row("unseen-entity exact recall (%)", ">= 50", unseen, verdict(unseen, 50, True)),
        _row("seen-entity exact recall (%)", "(reported)", per_seed(records, "seen_recall", set="test", **at), "-"),
        _row("test_partial WER", "<= 10", partial, verdict(partial, 10, False)),
        _row("U-WER rise over no biasing (absolute)", "<= 0.5", rise, verdict(rise, 0.5, False)),
        _row(f"NER F1 at N = {n_large}", ">= 55", ner_large, verdict(ner_large, 55, True)),
        _row(
            f"decoding time, {n_large}-phrase lists / none (RTF ratio)",
            "<= 1.3",
            ratio,
            verdict(ratio, 1.3, False) + f"; separate decodes: benchmark/{_BENCH.get(mode, 'bench_biasing')}.py's "
            "one-run ratio decides",
        ),
    ]
    return ["measure", "target", "per seed", "mean ± std", "verdict"], rows


_BENCH = {"rescore": "bench_rescore"}  # the benchmark that times a mode in one run (graph modes: bench_biasing)


def no_list_table(records: Sequence[dict]) -> str:
    return md_table(*no_list_cells(records))


def no_list_cells(records: Sequence[dict]) -> Cells:
    """Issue #29 item 6: every seed without a list, test (all tasks) and test_partial, with the seen/unseen split."""
    cols = (
        ("wer", "WER"),
        ("scd_f1", "SCD F1"),
        ("endp_f1", "ENDP F1"),
        ("ner_f1", "NER F1"),
        ("lid_acc", "LID acc"),
        ("seen_recall", "seen recall"),
        ("unseen_recall", "unseen recall"),
    )
    seeds = sorted({r["seed"] for r in select(records, stage="test", mode=NONE)})
    rows = []
    for seed in seeds:
        test = next(iter(select(records, stage="test", mode=NONE, set="test", seed=seed)), None)
        part = next(iter(select(records, stage="test", mode=NONE, set="test_partial", seed=seed)), None)
        m = test["metrics"] if test else {}
        verdicts = []
        if m.get("wer") is not None:
            verdicts.append("WER <= 15 " + ("met" if m["wer"] <= 15 else f"missed by {m['wer'] - 15:.2f}"))
        if m.get("scd_f1") is not None:
            verdicts.append("SCD F1 >= 90 " + ("met" if m["scd_f1"] >= 90 else f"missed by {90 - m['scd_f1']:.2f}"))
        rows.append(
            [str(seed), test["model"] if test else "-"]
            + [fmt(m.get(k)) for k, _ in cols]
            + [fmt(part["metrics"].get("wer")) if part else "-", "; ".join(verdicts) or "-"]
        )
    return ["seed", "model"] + [f"test {name}" for _, name in cols] + ["test_partial WER", "verdicts"], rows


def grid_table(records: Sequence[dict]) -> str:
    return md_table(*settings_cells(records))


def settings_cells(records: Sequence[dict]) -> Cells:
    """Every (set, kind, N, mode) of the test stage: mean ± std over seeds (n)."""
    groups: Dict[Tuple, List[dict]] = defaultdict(list)
    for r in select(records, stage="test"):
        groups[(r["set"], r["kind"], r["n"], r["mode"])].append(r)
    order = {"utt": 0, "conv": 1, "lang": 2}
    keys = sorted(groups, key=lambda k: (k[0], order.get(k[1], 9), k[2], k[3] != NONE, k[3]))
    rows = []
    for key in keys:
        rs = groups[key]
        weight = {r.get("weight") for r in rs} - {None}
        rows.append(
            [
                key[0],
                key[1],
                str(key[2]),
                key[3],
                ", ".join(fmt(w) for w in sorted(weight)) or "-",
                str(len({r["seed"] for r in rs})),
            ]
            + [_stat(rs, k).fmt() for k, _ in TABLE_COLUMNS]
        )
    return ["set", "list kind", "N", "mode", "weight", "seeds"] + [n for _, n in TABLE_COLUMNS], rows


def list_notes(lists_root: PathLike) -> List[str]:
    """One line per test set's lists (``make_biasing_lists``' manifest.json): sizes, skipped kinds, borrowed names."""
    lines = []
    for path in sorted(Path(lists_root).glob("*/manifest.json")):
        m = load_json(path, "make_biasing_lists manifest")
        parts = [f"{m['n_utts']} utterances, {m['n_reference_entities']} reference entities"]
        if m.get("utts_without_entity_annotation"):
            parts.append(f"{m['utts_without_entity_annotation']} utterances without entity annotation")
        for kind, info in m.get("kinds", {}).items():
            if "skipped" in info:
                parts.append(f"no {kind} lists ({info['skipped']})")
            borrowed = {k[len("borrowed_n") :]: v for k, v in info.items() if k.startswith("borrowed_n") and v}
            if borrowed:
                parts.append(
                    f"{kind} lists: "
                    + ", ".join(f"{v} distractors from another language's pool at N = {n}" for n, v in borrowed.items())
                )
        lines.append(f"- `{path.parent.name}` (list seed {m['seed']}): " + "; ".join(parts) + ".")
    return lines


INTRO = (
    'Made by `run_biasing.sh` (README, "Evaluating biasing"). Lists: reference entities + N distractors '
    "(Le et al. 2021), per utterance (utt), per conversation (conv) and per-language catalogue (lang). U-WER / "
    "B-WER: reference words outside / inside the list phrases of the utterance (insertions of the utterance's "
    "biasing words count toward B-WER, other insertions toward U-WER, as Le et al.); FA = list phrases emitted "
    "beyond the reference. Mean ± sample std over training seeds; mode `none` = decoded without a list, "
    "scored against that row's lists."
)


def choice_text(chosen: Mapping) -> str:
    guard = (
        ""
        if chosen.get("guard_met", True)
        else (" No setting kept the dev U-WER within 0.5 of the no-list decode: the lowest objective was taken anyway.")
    )
    return (
        f"Chosen: mode **{chosen['mode']}**, weight **{fmt(chosen['weight'])}** (per mode: "
        + ", ".join(f"{m} {fmt(w)}" for m, w in chosen["per_mode"].items())
        + ")."
        + guard
        + " Error = 100 - NER F1 on a set annotated for NER, its WER otherwise; U-WER rise against the no-list "
        "decode; allowed = rise <= 0.5 on every tune set; objective = the sum of the errors."
    )


def build_report(records: Sequence[dict], chosen: Mapping, tuning_md: str, notes: Sequence[str] = ()) -> str:
    mode, n = chosen["mode"], chosen.get("n", 100)  # n: the lists the choice used
    parts = [
        "# RESULTS: contextual biasing (issue #29)",
        INTRO,
        *notes,
        f"## Choice on dev\n\n{choice_text(chosen)}\n\n" + tuning_md,
        f"## Targets (test, per-utterance lists, N = {n}, mode {mode})\n\n" + targets_table(records, mode, n),
        "## Without lists, every seed\n\n" + no_list_table(records),
        "## Every list kind, N and mode (test sets)\n\n" + grid_table(records),
    ]
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


# ---- the record results_tables makes RESULTS_biasing.md from (<recipe>/results/biasing/tables.json) ----------
TABLES_RECORD = "biasing/tables.json"  # under <recipe>/results/


def tables_record(
    out: PathLike, commit: Optional[str], date: Optional[str], commands: Sequence[str]
) -> Dict[str, object]:
    """The report's sections (title, intro lines, columns, rows) from run_biasing.sh's ``--out`` folder (records/,
    chosen.json, lists/); the per-decode records stay there (not tracked)."""
    out = Path(out)
    records = load_records(out / "records")
    chosen = load_json(out / "chosen.json", "biasing_report choose --out (run_biasing.sh stage 3)")
    mode, n = chosen["mode"], chosen.get("n", 100)
    tuning = tuning_cells(chosen.get("rows", []), chosen.get("tune_sets", []), chosen)

    def section(title: str, intro: Sequence[str], cells: Optional[Cells] = None) -> dict:
        cols, rows = cells or ([], [])
        return {"title": title, "intro": list(intro), "columns": cols, "rows": rows}

    sections = []
    if (out / "lists").is_dir():
        sections.append(section("Lists per set", list_notes(out / "lists")))
    sections += [
        section("Choice on dev", [choice_text(chosen)], tuning),
        section(f"Targets (test, per-utterance lists, N = {n}, mode {mode})", [], targets_cells(records, mode, n)),
        section("Without lists, every seed", [], no_list_cells(records)),
        section("Every list kind, N and mode (test sets)", [], settings_cells(records)),
    ]
    return {
        "title": "Contextual biasing (`run_biasing.sh`)",
        "source": f"run_biasing.sh: {out}/records (per-decode scores), {out}/chosen.json, {out}/lists",
        "models": sorted({r["model"] for r in select(records, stage="test")}),
        "commit": commit,
        "date": date,
        "commands": list(commands),
        "intro": INTRO,
        "sections": sections,
    }
