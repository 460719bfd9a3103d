"""Every RESULTS*.md of a recipe, generated from its records (``<recipe>/results/``; schema in ``records.py``).

* ``RESULTS.md``: environment, then the ``run`` models (``./run.sh`` and its seeds): config, parameters, checkpoint,
  commands, Tables II-V, the targets with mean ± std over seeds and a verdict each (``results_md.py``).
* ``RESULTS_grid.md``: the ``grid`` models (``run_grid.sh``), rendered by ``grid_report`` (verdicts per claim).
* ``RESULTS_extend.md``: the ``extend`` models (``run_extend.sh``): settings on dev, old tasks before/after over
  seeds with verdicts (``seed_table``), the new task and language; what to compare: ``results/recipe/extend.json``.
* ``RESULTS_biasing.md``: from ``results/biasing/tables.json`` (``run_biasing.sh``'s tables).
* ``RESULTS_long_form.md`` / ``RESULTS_long_form_dev.md``: from ``results/long_form*/`` (``run_long_form.sh``).
* ``RESULTS_streaming.md``: from ``results/streaming/<model>.json`` (``run_streaming.sh``; ``streaming_table``).

A file is written only when its records exist; the text depends on the records alone (no date, no machine), so
regenerating unchanged records gives the same bytes (``test_results_tables`` checks the committed files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2_ext.common import DataError, atomic_write_text
from espnet2_ext.reporting.markdown import fmt, md_table
from espnet2_ext.reporting.records import PathLike, Record, load_records
from espnet2_ext.reporting.report import table_main
from espnet2_ext.reporting.results_md import (
    GENERATED,
    RESULTS_DIR,
    STORY,
    config_cell,
    entries,
    models_block,
    params_cell,
    results_md,
)


# ---- RESULTS_grid.md ------------------------------------------------------------------------------------------
def grid_cells(records: Sequence[Record]):
    from espnet2_ext.reporting.grid_cells import Cell

    cells = []
    for r in records:
        cell = Cell(r.path, r.config["path"], r.train_set, r.seed, r.strategy or "none", r.injection or "-")
        cell.scores = {(t, a): v for t, acts in r.scores.items() for a, v in acts.items()}
        cells.append(cell)
    return cells


def grid_models_table(records: Sequence[Record]) -> str:
    """One row per config and train set (the seeds' records hold the exact commands)."""
    groups: Dict[tuple, List[Record]] = {}
    for r in records:
        groups.setdefault((r.config["path"], r.train_set), []).append(r)
    rows = []
    for (config, train_set), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r.seed)
        params = sorted({params_cell(r.parameters) for r in rs})
        decoded = ", ".join(f"{r.seed}: {r.checkpoint.get('decoded') or '-'}" for r in rs)
        commits = ", ".join(sorted({r.commit or "-" for r in rs}))
        rows.append(
            [
                config_cell(rs[0].config),
                train_set,
                ", ".join(params),
                f"`{rs[0].checkpoint['model_file']}` ({decoded})",
                commits,
            ]
        )
    return md_table(["config", "train set", "parameters", "checkpoint (seed: decoded)", "commits"], rows)


def grid_roles(records: Sequence[Record]):
    """The grid's two train sets, from its records: every config trains on the mixed set (run_grid.sh), only the
    baseline and the best config on the fully annotated one, so the mixed set is the one with the most records."""
    from espnet2_ext.reporting.grid_report import Roles

    counts: Dict[str, int] = {}
    for r in records:
        counts[r.train_set] = counts.get(r.train_set, 0) + 1
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    return Roles(ranked[1] if len(ranked) > 1 else "train_full_only", ranked[0])


def grid_md(recipe: Path, records: Sequence[Record]) -> Optional[str]:
    from espnet2_ext.reporting.grid_report import build_report

    grid = [r for r in records if r.kind == "grid"]
    if not grid:
        return None
    roles = grid_roles(grid)
    models = (
        grid_models_table(grid)
        + "\n\nExact train/decode commands, dates and commits per seed: `results/<model>.json` (`commands`)."
    )
    return build_report(grid_cells(grid), roles, models_md=models, preamble=GENERATED)


# ---- long form, streaming ------------------------------------------------------------------------------------
def long_form_md(recipe: Path) -> Dict[str, str]:
    """RESULTS_long_form.md (seed 0 per set + the other seeds) and RESULTS_long_form_dev.md (cut rules on dev)."""
    from espnet2_ext.reporting.long_form import dev_table, seeds_table, sets_table

    root = recipe / RESULTS_DIR
    out = {}
    if (root / "long_form" / "sets.json").is_file():
        out["RESULTS_long_form.md"] = "\n".join(
            [
                f"# Long-form decoding\n\n{GENERATED} The story: {STORY}.\n",
                sets_table(root / "long_form"),
                seeds_table(root),
            ]
        )
        dev = dev_table(root / "long_form")
        if dev:
            out["RESULTS_long_form_dev.md"] = dev
    return out


def streaming_md(recipe: Path) -> Optional[str]:
    """One table per record of ``results/streaming/`` (``run_streaming.sh``; ``reporting/streaming_table.py``)."""
    found = sorted((recipe / RESULTS_DIR / "streaming").glob("*.json"))
    if not found:
        return None
    parts = []
    for path in found:
        data = json.loads(path.read_text(encoding="utf-8"))
        try:
            cols, rows = data["columns"], [[r[c] for c in data["columns"]] for r in data["rows"]]
            about = (
                f"Model `{data['model']}` (`{data['config']}`), `{data['test_set']}`, tasks {data['activation']}, "
                f"commit {data['commit']}."
            )
        except (KeyError, TypeError) as e:
            raise DataError(
                f"{path}: missing field {e}; expected model, config, test_set, activation, commit, columns, rows"
            )
        intro = (
            f"# Streaming: latency / accuracy\n\n{GENERATED} {about} The story: {STORY}."
            if not parts
            else f"## `{data['model']}`\n\n{about}"
        )
        parts.append(intro + "\n\n" + md_table(cols, rows) + "\n")
    return "\n".join(parts)


# ---- all ----------------------------------------------------------------------------------------------------
def generate(recipe: PathLike) -> Dict[str, str]:
    """RESULTS file name -> text, for every file whose records exist."""
    recipe = Path(recipe)
    records = load_records(recipe / RESULTS_DIR)
    out: Dict[str, str] = {}
    grid = grid_md(recipe, records)
    if grid:
        out["RESULTS_grid.md"] = grid
    ext = extend_md(recipe, records)
    if ext:
        out["RESULTS_extend.md"] = ext
    bias = biasing_md(recipe)
    if bias:
        out["RESULTS_biasing.md"] = bias
    out.update(long_form_md(recipe))
    stream = streaming_md(recipe)
    if stream:
        out["RESULTS_streaming.md"] = stream
    return {"RESULTS.md": results_md(recipe, records, list(out)), **out}


def write_all(
    recipe: PathLike, out_dir: Optional[PathLike] = None, results_md: Optional[PathLike] = None
) -> List[Path]:
    """Write every generated file into ``out_dir`` (default: the recipe); ``results_md``: RESULTS.md's path instead."""
    texts = generate(recipe)
    target = Path(out_dir) if out_dir else Path(recipe)
    written = []
    for name, text in texts.items():
        path = Path(results_md) if results_md and name == "RESULTS.md" else target / name
        atomic_write_text(path, text)
        written.append(path)
    return written


# ---- RESULTS_extend.md ---------------------------------------------------------------------------------------
EXTEND_FILE = "recipe/extend.json"  # settings (group -> description), shipped, compare, old_metrics, dev, new


def _values(r: Record, test_set: str, act: str) -> Dict[str, float]:
    vals = (r.scores.get(test_set) or {}).get(act) or {}
    return {k: v for k, v in vals.items() if isinstance(v, (int, float))}


def _by_seed(rs: Sequence[Record]) -> List[Record]:
    return sorted(rs, key=lambda r: (r.seed is None, r.seed or 0, r.model))


def extend_md(recipe: Path, records: Sequence[Record]) -> Optional[str]:
    from espnet2_ext.reporting.seed_table import seed_table

    ext = [r for r in records if r.kind == "extend"]
    spec_path = recipe / RESULTS_DIR / EXTEND_FILE
    if not ext or not spec_path.is_file():
        return None
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    groups: Dict[str, List[Record]] = {}
    for r in ext:
        groups.setdefault(r.data.get("group") or "", []).append(r)
    before = _by_seed(groups.get("before", []))
    untrained = groups.get("untrained", [])
    parts = [
        f"# RESULTS_extend: growing the model by a task and a language (`run_extend.sh`)\n\n{GENERATED} "
        f"The story and the settings' reasons: {STORY}.",
        "## Models\n\n" + models_block(_by_seed(ext)),
    ]
    rows = []
    for group, desc in spec["settings"].items():
        rs = _by_seed(groups.get(group, []))
        cells = [" / ".join(fmt(_values(r, t, a).get(m)) for r in rs) for t, a, m, _ in spec["dev"]]
        rows.append([desc, ", ".join(str(r.seed) for r in rs)] + cells)
    parts.append(
        "## Settings compared on dev (one value per seed)\n\n"
        + md_table(["setting", "seeds"] + [name for *_, name in spec["dev"]], rows)
    )
    all_old = "+".join(("asr", "scd", "endp", "ner", "lid"))
    rerun = next((r for r in before if r.data.get("label", "").endswith("rerun (extended here)")), None)
    for group in spec["compare"]:
        after = [(r.data.get("label") or r.model, _values(r, "test", all_old)) for r in _by_seed(groups.get(group, []))]
        cols = [(r.data.get("label") or r.model, _values(r, "test", all_old)) for r in before]
        delta = (rerun.data.get("label"), _values(rerun, "test", all_old)) if rerun else None
        parts.append(
            f"## Old tasks before and after: {spec['settings'][group]} (test, all old tasks)\n\n"
            + seed_table(spec["old_metrics"], cols, after, delta=delta)
        )
    shipped = _by_seed(groups.get(spec["shipped"], []))
    for test_set, act, metrics in spec["new"]:
        show = [(r.data.get("label") or r.model, _values(r, test_set, act)) for r in untrained]
        after = [(r.data.get("label") or r.model, _values(r, test_set, act)) for r in shipped]
        parts.append(
            f"## New: `{test_set}`, tasks {act} ({spec['settings'][spec['shipped']]})\n\n"
            + seed_table(metrics, [], after, show=show, with_verdict=False)
        )
    parts.append(
        "## Table II: all tasks active\n\n"
        + table_main(entries([r for r in ext if r.data.get("group") != "before" or r is rerun]))
    )
    return "\n\n".join(parts) + "\n"


# ---- RESULTS_biasing.md --------------------------------------------------------------------------------------
def biasing_md(recipe: Path) -> Optional[str]:
    """From ``results/biasing/tables.json``: the report's sections (title, intro lines, columns, rows) as they were
    computed by ``biasing_report`` (the per-decode scores of ``exp_biasing/`` are not kept)."""
    path = recipe / RESULTS_DIR / "biasing" / "tables.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    try:
        parts = [
            f"# RESULTS_biasing: {data['title']}\n\n{GENERATED} Models {', '.join(data['models'])}, "
            f"commits {data['commit']}, {data['date']}. The story: {STORY}.\n\n{data['intro']}",
            "## Commands\n\n" + "\n".join(f"- `{c}`" for c in data["commands"]),
        ]
        for s in data["sections"]:
            body = "\n".join(s["intro"])
            if s["columns"]:
                body += ("\n\n" if body else "") + md_table(s["columns"], s["rows"])
            parts.append(f"## {s['title']}\n\n{body}")
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: missing field {e}; expected title, models, commit, date, intro, commands, sections")
    return "\n\n".join(parts) + "\n"
