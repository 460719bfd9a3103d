"""Before/after over seeds: per metric the runs before a change, their mean ± std and range (the seed spread), the
runs after it, their mean ± std, and two verdicts (RESULTS_extend.md's tables; ``bin/seed_table`` is the CLI):
- range: whether the after mean lies within [min, max] of the before runs, else by how much it lies outside;
- seed noise: the grid's rule (``grid_cells.within_noise``): a before/after difference is a finding only when
  ``|mean_after - mean_before| > max(std_before, std_after)``, with n >= 2 on both sides.

A column is ``NAME=path/score.json`` (tokenverse_score's output) or ``NAME=metric:value,...`` (numbers quoted from
elsewhere, e.g. RESULTS.md). std is the sample standard deviation (n - 1); '-' where a metric is missing.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_ext.common import DataError
from espnet2_ext.reporting.grid_cells import Stat, within_noise
from espnet2_ext.reporting.markdown import fmt, md_table

Column = Tuple[str, Dict[str, float]]


def parse_column(spec: str) -> Column:
    name, sep, src = spec.partition("=")
    if not sep or not name:
        raise DataError(f"'{spec}': give NAME=score.json or NAME=metric:value,...")
    if src.endswith(".json"):
        path = Path(src)
        if not path.is_file():
            raise DataError(f"{path}: no such score file (run the scoring stage first)")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e}); rerun tokenverse_score for it") from None
        return name, {k: float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    values = {}
    for item in src.split(","):
        key, _, val = item.partition(":")
        try:
            values[key.strip()] = float(val)
        except ValueError:
            raise DataError(f"'{item}' in '{spec}': expected metric:number") from None
    return name, values


def mean_std(xs: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    if not xs:
        return None, None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def _mean_std_text(xs: Sequence[float]) -> str:
    m, s = mean_std(xs)
    return "-" if m is None else fmt(m) + ("" if s is None else f" ± {fmt(s)}")


def verdict(before: Sequence[float], after_mean: Optional[float]) -> str:
    """'within' when ``after_mean`` lies in [min(before), max(before)], else 'outside: below/above by X'."""
    if after_mean is None or not before:
        return "-"
    lo, hi = min(before), max(before)
    if lo <= after_mean <= hi:
        return "within"
    return (
        f"outside: below by {fmt(lo - after_mean)}" if after_mean < lo else f"outside: above by {fmt(after_mean - hi)}"
    )


def noise_verdict(before: Sequence[float], after: Sequence[float]) -> str:
    """'within seed noise', or 'differs by X (> max std Y)' with X = after mean - before mean; '-' if n < 2."""
    a, b = Stat(tuple(after)), Stat(tuple(before))
    noise = within_noise(a, b)
    if noise is None:
        return "-"
    if noise:
        return "within seed noise"
    return f"differs by {a.mean - b.mean:+.2f} (> max std {fmt(max(a.std, b.std))})"


def seed_table(
    metrics: Sequence[str],
    before: Sequence[Column],
    after: Sequence[Column],
    show: Sequence[Column] = (),
    delta: Optional[Column] = None,
    with_verdict: bool = True,
) -> str:
    """The markdown table; ``show`` columns are printed after the before columns but take no part in the
    statistics; ``delta`` adds the column 'after mean − NAME'."""
    header: List[str] = ["metric"] + [n for n, _ in before]
    if len(before) > 1:
        header += ["before mean ± std", "before range"]
    header += [n for n, _ in show] + [n for n, _ in after] + ["after mean ± std"]
    if delta:
        header.append(f"after mean − {delta[0]}")
    if with_verdict:
        header += ["verdict (after mean vs before range)", "verdict (seed noise)"]
    rows = []
    for metric in metrics:
        bv = [d.get(metric) for _, d in before]
        bx = [x for x in bv if x is not None]
        ax = [x for x in (d.get(metric) for _, d in after) if x is not None]
        row = [metric] + [fmt(x) for x in bv]
        if len(before) > 1:
            row += [_mean_std_text(bx), f"[{fmt(min(bx))}, {fmt(max(bx))}]" if bx else "-"]
        row += [fmt(d.get(metric)) for _, d in show] + [fmt(d.get(metric)) for _, d in after] + [_mean_std_text(ax)]
        after_mean = mean_std(ax)[0]
        if delta:
            ref = delta[1].get(metric)
            row.append("-" if after_mean is None or ref is None else f"{after_mean - ref:+.2f}")
        if with_verdict:
            row += [verdict(bx, after_mean), noise_verdict(bx, ax)]
        rows.append(row)
    return md_table(header, rows)
