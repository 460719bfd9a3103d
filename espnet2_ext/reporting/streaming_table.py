"""Streaming latency / accuracy: the trade-off table of ``run_streaming.sh`` and its record
``<recipe>/results/streaming/<model>.json`` (from which ``results_tables`` generates RESULTS_streaming.md).

Record: ``{"model", "source", "commit", "config", "test_set", "activation", "columns": [...],
"rows": [{column: text}]}``,
one row per decode dir (chunk size), the cells as the table prints them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from espnet2_ext.activation import activation_tag
from espnet2_ext.common import DataError, atomic_write_text
from espnet2_ext.reporting.markdown import METRIC_COLUMNS, fmt, md_table

STREAMING_DIR = "streaming"  # under <recipe>/results/
HEADER = (
    ["Chunk (ms)", "Left chunks", "Sinks", "Algorithmic latency (ms)", "RTF (1 core)"]
    + [name for _, name in METRIC_COLUMNS]
    + ["EP50 (ms)", "EP90 (ms)"]
)


def latency_rows(decode_dirs: Sequence[str]) -> Tuple[List[str], List[List[str]]]:
    """(header, rows) from decode dirs holding ``streaming_stats.json`` (``decode_streaming_to_dir``) and
    ``score.json`` (``tokenverse_score``): chunk, latency, RTF, WER, task F1s, LID accuracy, EP50/EP90 if scored."""
    rows = []
    for d in decode_dirs:
        d = Path(d)
        stats_file, score_file = d / "streaming_stats.json", d / "score.json"
        for f in (stats_file, score_file):
            if not f.is_file():
                raise FileNotFoundError(
                    f"{f}: missing; decode with asr_inference --streaming true and score with "
                    f"tokenverse_score --out_json {score_file} first"
                )
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
        score = json.loads(score_file.read_text(encoding="utf-8"))
        endp = (score.get("time") or {}).get("endp") or {}
        ep = [None if endp.get(k) is None else 1000.0 * endp[k] for k in ("ep50", "ep90")]
        rows.append(
            [
                str(stats["chunk_size_ms"]),
                fmt(stats["left_chunks"]),
                fmt(stats["attention_sink_frames"]),
                fmt(stats["algorithmic_latency_ms"]),
                "-" if stats["rtf"] is None else f"{stats['rtf']:.3f}",
            ]
            + [fmt(score.get(k)) for k, _ in METRIC_COLUMNS]
            + [fmt(x) for x in ep]
        )
    return list(HEADER), rows


def latency_table(decode_dirs: Sequence[str]) -> str:
    """The trade-off table (markdown) of ``latency_rows``."""
    return md_table(*latency_rows(decode_dirs))


def streaming_record(
    decode_dirs: Sequence[str], model: str, config: Optional[str], commit: Optional[str]
) -> Dict[str, object]:
    """The record of one model's streaming decodes (``<...>/decode_<tasks>/<test set>`` per chunk size, all of one
    test set and one activation)."""
    if not decode_dirs:
        raise DataError("no streaming decode dirs given; run_streaming.sh passes one per chunk size")
    dirs = [Path(d) for d in decode_dirs]
    test_sets = sorted({d.name for d in dirs})
    acts = sorted({d.parent.name for d in dirs})
    if len(test_sets) != 1 or len(acts) != 1 or not acts[0].startswith("decode_"):
        raise DataError(
            f"{', '.join(map(str, dirs))}: expected <root>/decode_<tasks>/<test set> dirs of one test set and one "
            "activation (one table per model)"
        )
    header, rows = latency_rows(decode_dirs)
    return {
        "model": model,
        "source": "run_streaming.sh: " + " ".join(map(str, dirs)),
        "commit": commit,
        "config": config,
        "test_set": test_sets[0],
        "activation": activation_tag(acts[0][len("decode_") :].split("+")),
        "columns": header,
        "rows": [dict(zip(header, row)) for row in rows],
    }


def dump_streaming_record(data: Dict[str, object], results_dir: Path) -> Path:
    path = Path(results_dir) / STREAMING_DIR / f"{data['model']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path
