"""Long-form tables from the records ``run_long_form.sh`` keeps per set (``<dir>/<set>/``: ``run_long.json`` = the
decode command, wall time, RTF and peak RSS; ``score_long.json`` / ``score_utt.json`` = ``tokenverse_score`` of the
long-form and of the per-utterance decode placed on the recording's clock) and the sets' sizes (``sets.json``:
``{set: {"audio_min": float, "recordings": int}}``, written from the data dirs)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from espnet2_ext.common import DataError
from espnet2_ext.reporting.markdown import md_table

SETS_FILE = "sets.json"
HEAD = [
    "set",
    "audio (min)",
    "recordings",
    "WER utt",
    "WER long",
    "SCD F1 @0.5 s utt",
    "SCD F1 @0.5 s long",
    "ENDP F1 utt",
    "ENDP F1 long",
    "EP50/EP90 utt (ms)",
    "EP50/EP90 long (ms)",
    "LID long",
    "peak RSS (GB)",
    "RTF",
]


def _load(path: Path) -> Optional[Dict]:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}); rerun run_long_form.sh for that set") from None


def _f(x, scale: float = 1.0, nd: int = 2) -> str:
    return "-" if x is None else f"{x * scale:.{nd}f}"


def set_sizes(exp_dir: Path) -> Dict[str, Dict[str, float]]:
    sizes = _load(exp_dir / SETS_FILE)
    if not isinstance(sizes, dict):
        raise DataError(f"{exp_dir / SETS_FILE}: missing or not an object of set -> {{audio_min, recordings}}")
    return sizes


def sizes_from_data(data_root: Path, sets: Sequence[str]) -> Dict[str, Dict[str, float]]:
    out = {}
    for s in sets:
        durs = [float(line.split()[1]) for line in (data_root / s / "utt2dur").read_text().splitlines() if line]
        out[s] = {"audio_min": round(sum(durs) / 60, 3), "recordings": len(durs)}
    return out


def row(exp_dir: Path, s: str, size: Mapping[str, float]) -> List[str]:
    from espnet2_ext.scoring.time_metrics import flat_time_scores

    utt, lf, run = (_load(exp_dir / s / n) for n in ("score_utt.json", "score_long.json", "run_long.json"))
    tu = flat_time_scores((utt or {}).get("time") or {})
    tl = flat_time_scores((lf or {}).get("time") or {})

    def ep(t):
        return f"{_f(t['ep50_ms'], nd=0)}/{_f(t['ep90_ms'], nd=0)}"

    def g(d, k):
        return None if d is None else d.get(k)

    if run is None and (exp_dir / s / "run_long_partial.json").is_file():
        run = _load(exp_dir / s / "run_long_partial.json")
    stopped = run is not None and run.get("returncode") != 0  # e.g. a time limit: RSS so far, no RTF
    rss = _f(g(run, "peak_rss_gb")) + (f" (stopped after {run['wall_s']:.0f} s)" if stopped else "")
    return [
        s,
        f"{size['audio_min']:.1f}",
        str(size["recordings"]),
        _f(g(utt, "wer")),
        _f(g(lf, "wer")),
        _f(tu["scd_f1_0.5"]),
        _f(tl["scd_f1_0.5"]),
        _f(g(utt, "endp_f1")),
        _f(g(lf, "endp_f1")),
        ep(tu),
        ep(tl),
        _f(g(lf, "lid_acc")),
        rss,
        "-" if stopped else _f(g(run, "rtf"), nd=3),
    ]


def table(exp_dir: Path, sets: Sequence[str], sizes: Mapping[str, Mapping[str, float]], title: str) -> str:
    rows = [row(exp_dir, s, sizes[s]) for s in sets]
    return f"## {title}\n\n" + md_table(HEAD, rows) + "\n"


def _option_of(exp_dir: Path, s: str, *flags: str) -> str:
    """The value of the first of ``flags`` in the decode command recorded for set ``s`` ("?" when absent)."""
    run = _load(exp_dir / s / "run_long.json") or {}
    cmd = run.get("command") or []
    for flag in flags:
        if flag in cmd[:-1]:
            return cmd[cmd.index(flag) + 1]
    return "?"


def _test_sets(exp_dir: Path) -> List[str]:
    order = list(set_sizes(exp_dir))
    return [s for s in order if (exp_dir / s / "score_long.json").is_file()]


def sets_table(exp_dir: Path) -> str:
    sets = _test_sets(exp_dir)
    model = _option_of(exp_dir, sets[0], "--model_file", "--asr_model_file")
    rule = _option_of(exp_dir, sets[0], "--cut_rule")  # the rule the decode ran with, not the script's default
    return table(exp_dir, sets, set_sizes(exp_dir), f"Seed 0 ({model}, --long_form segment --cut_rule {rule})")


def _delta(exp_dirs: Sequence[Path], s: str, key: str) -> List[float]:
    from espnet2_ext.scoring.time_metrics import flat_time_scores

    out = []
    for d in exp_dirs:
        utt, lf = _load(d / s / "score_utt.json"), _load(d / s / "score_long.json")
        if not (utt and lf):
            continue
        if key == "scd_time":
            a, b = flat_time_scores(lf.get("time") or {}), flat_time_scores(utt.get("time") or {})
            out.append(a["scd_f1_0.5"] - b["scd_f1_0.5"])
        else:
            out.append(lf[key] - utt[key])
    return out


def seeds_table(results: Path) -> str:
    """The other seeds' tables, then long form minus per utterance, mean ± std over every seed."""
    dirs = [results / "long_form"] + sorted(results.glob("long_form_seed*"))
    parts = []
    sizes = set_sizes(results / "long_form")
    for d in dirs[1:]:
        sets = [s for s in sizes if (d / s / "score_long.json").is_file()]
        model = _option_of(d, sets[0], "--model_file", "--asr_model_file")
        parts.append(table(d, sets, sizes, f"{d.name.replace('long_form_', '').replace('seed', 'Seed ')} ({model})"))
    rows = []
    for s in _test_sets(results / "long_form"):
        cells = []
        for key in ("wer", "scd_time", "endp_f1"):
            xs = _delta(dirs, s, key)
            cells.append(
                f"{statistics.mean(xs):+.2f} ± {statistics.stdev(xs):.2f} (n={len(xs)})" if len(xs) > 1 else "-"
            )
        rows.append([s] + cells)
    parts.append(
        "## Long form minus per utterance (mean ± std over seeds)\n\n"
        + md_table(["set", "WER", "SCD F1 @0.5 s", "ENDP F1"], rows)
        + "\n"
    )
    return "\n".join(parts)


def dev_table(exp_dir: Path) -> Optional[str]:
    """The cut rules compared on dev (``dev_rule_<rule>/<dev set>``)."""
    parts = []
    for d in sorted(
        exp_dir.glob("dev_rule_*"),
        key=lambda p: ("none", "scd", "context").index(p.name[9:]) if p.name[9:] in ("none", "scd", "context") else 9,
    ):
        sizes = set_sizes(d)
        parts.append(table(d, list(sizes), sizes, f"dev, --cut_rule {d.name[len('dev_rule_') :]}"))
    return "\n".join(parts) if parts else None


# ---- records: what run_long_form.sh keeps of exp/long_form in <recipe>/results/long_form*/ --------------------
RECORD_FILES = ("run_long.json", "run_long_partial.json", "score_utt.json", "score_long.json")


def _copy_set(src: Path, dst: Path) -> None:
    """One set's records: the scores as they are, the decode's per-recording stats (``long/long_form.json``), and
    the measured command with the interpreter's machine path cut to ``python``."""
    from espnet2_ext.common import atomic_write_text

    if not (src / "score_long.json").is_file():
        raise DataError(f"{src / 'score_long.json'}: missing; run run_long_form.sh's decoding and scoring first")
    dst.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if not (src / name).is_file():
            continue
        text = (src / name).read_text(encoding="utf-8")
        data = _load(src / name)
        cmd = data.get("command") if isinstance(data, dict) else None
        if isinstance(cmd, list) and cmd and Path(cmd[0]).name.startswith("python") and cmd[0] != "python":
            text = json.dumps({**data, "command": ["python"] + cmd[1:]}, indent=1) + "\n"  # as measure writes it
        atomic_write_text(dst / name, text)
    stats = src / "long" / "long_form.json"
    if stats.is_file():
        atomic_write_text(dst / "long_form.json", stats.read_text(encoding="utf-8"))


def write_records(
    exp_dir: Path, out_dir: Path, data_root: Path, sets: Sequence[str] = (), dev_rules: Sequence[str] = ()
) -> List[Path]:
    """``out_dir/sets.json`` + ``out_dir/<set>/`` for the long-form test sets (in table order), and
    ``out_dir/dev_rule_<rule>/`` (its own sets.json + the dev set) for each cut rule measured on dev."""
    from espnet2_ext.common import atomic_write_text

    written = []
    if sets:
        for s in sets:
            _copy_set(exp_dir / s, out_dir / s)
        atomic_write_text(out_dir / SETS_FILE, json.dumps(sizes_from_data(data_root, sets), indent=1) + "\n")
        written.append(out_dir)
    for rule in dev_rules:
        src = exp_dir / f"dev_rule_{rule}"
        dev_sets = sorted(p.parent.name for p in src.glob("*/score_long.json"))
        if not dev_sets:
            raise DataError(
                f"{src}: no <dev set>/score_long.json; run run_long_form.sh's stage 5 for --cut_rule {rule}"
            )
        for s in dev_sets:
            _copy_set(src / s, out_dir / src.name / s)
        atomic_write_text(
            out_dir / src.name / SETS_FILE, json.dumps(sizes_from_data(data_root, dev_sets), indent=1) + "\n"
        )
        written.append(out_dir / src.name)
    return written
