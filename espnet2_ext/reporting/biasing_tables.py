"""``RESULTS_biasing.md`` of the biasing evaluation (issue #29): the targets table, the no-list table, the
N x kind x mode table (``build_report``), and the record ``results_tables`` makes the file from; built on the
records and the dev choice of ``reporting/biasing_choice.py``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from espnet2_ext.common import PathLike
from espnet2_ext.reporting.biasing_choice import (
    NONE,
    Cells,
    load_json,
    load_records,
    metric_stat,
    select,
    tuning_cells,
)
from espnet2_ext.reporting.grid_cells import Stat
from espnet2_ext.reporting.markdown import fmt, md_table

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
            + [metric_stat(rs, k).fmt() for k, _ in TABLE_COLUMNS]
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
