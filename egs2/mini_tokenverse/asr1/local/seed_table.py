#!/usr/bin/env python3
"""Before/after table over seeds from tokenverse_score's score.json files (for RESULTS_extend.md).

    local/seed_table.py --metrics wer,lid_acc \\
        --before "base seed 0=exp/x/decode_asr+lid/test/score.json" --before "base seed 1=wer:34.41,lid_acc:86.67" \\
        --after "ext seed 0=exp/y/.../score.json" --after "ext seed 1=..." [--show NAME=...] [--delta NAME=...] [--no_verdict]

A column is NAME=score.json or NAME=metric:value,... (numbers quoted from elsewhere, e.g. RESULTS.md). Prints a
markdown table: per metric the before columns, their mean ± std and range, the after columns, their mean ± std and
the verdict: whether the after mean lies within the before range [min, max] (the seed spread), else by how much
it lies outside. --show columns (e.g. the model that was actually extended) are printed after the before columns
but take no part in the statistics; --delta NAME=... adds the column 'after mean - NAME'. std = sample standard deviation (n-1); '-' where a metric is missing.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path


def load(spec):
    name, sep, src = spec.partition("=")
    if not sep:
        sys.exit(f"seed_table: '{spec}': give NAME=score.json or NAME=metric:value,...")
    if src.endswith(".json"):
        path = Path(src)
        if not path.is_file():
            sys.exit(f"seed_table: {path}: no such score file (run stage 7 of run_extend.sh)")
        return name, json.loads(path.read_text(encoding="utf-8"))
    values = {}
    for item in src.split(","):
        key, sep, val = item.partition(":")
        try:
            values[key.strip()] = float(val)
        except ValueError:
            sys.exit(f"seed_table: '{item}' in '{spec}': expected metric:number")
    return name, values


def f(x):
    return "-" if x is None else f"{x:.2f}"


def mean_std(xs):
    if not xs:
        return None, None
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def ms(xs):
    m, s = mean_std(xs)
    return "-" if m is None else f(m) + ("" if s is None else f" ± {f(s)}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics", required=True)
    p.add_argument("--before", action="append", default=[])
    p.add_argument("--after", action="append", default=[])
    p.add_argument("--show", action="append", default=[])
    p.add_argument("--delta", default=None)
    p.add_argument("--no_verdict", action="store_true")
    args = p.parse_args(argv)
    before = [load(s) for s in args.before]
    after = [load(s) for s in args.after]
    show = [load(s) for s in args.show]
    delta = load(args.delta) if args.delta else None
    header = ["metric"] + [n for n, _ in before]
    if len(before) > 1:
        header += ["before mean ± std", "before range"]
    header += [n for n, _ in show] + [n for n, _ in after] + ["after mean ± std"]
    if delta:
        header.append(f"after mean − {delta[0]}")
    if not args.no_verdict:
        header.append("verdict (after mean vs before range)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for metric in [m.strip() for m in args.metrics.split(",") if m.strip()]:
        bv = [d.get(metric) for _, d in before]
        av = [d.get(metric) for _, d in after]
        bx = [x for x in bv if x is not None]
        ax = [x for x in av if x is not None]
        row = [metric] + [f(x) for x in bv]
        if len(before) > 1:
            row += [ms(bx), f"[{f(min(bx))}, {f(max(bx))}]" if bx else "-"]
        row += [f(d.get(metric)) for _, d in show] + [f(x) for x in av] + [ms(ax)]
        if delta:
            m, ref = mean_std(ax)[0], delta[1].get(metric)
            row.append("-" if m is None or ref is None else f"{m - ref:+.2f}")
        if not args.no_verdict:
            m, _ = mean_std(ax)
            if m is None or not bx:
                row.append("-")
            elif min(bx) <= m <= max(bx):
                row.append("within")
            else:
                d = min(bx) - m if m < min(bx) else m - max(bx)
                row.append(f"outside: {'below' if m < min(bx) else 'above'} by {f(d)}")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
