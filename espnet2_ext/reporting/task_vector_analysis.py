"""What the learnt task vectors look like: L2 norm of each vector and pairwise cosine similarities.

Tables are the parameters ``...task_vectors.<point>.weight`` (``<point>`` = ``feature_encoder`` or
``encoder_output``) of an ESPnet checkpoint; row labels come from the config's task-vector strategy and task
list. Writes ``task_vectors.md``, ``task_vectors.json`` and one heat-map PNG per table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import torch
import yaml

from espnet2_ext.common import DataError, atomic_output, atomic_write_text
from espnet2_ext.layers.task_vectors import vector_labels
from espnet2_ext.reporting.markdown import md_table
from espnet2_ext.task_spec import PRIMARY_TASK
from espnet2_ext.utils.safe_load import load_model_file

PathLike = Union[str, Path]
_TABLE_RE = re.compile(r"(?:^|\.)task_vectors\.([^.]+)\.weight$")
_POINT_ORDER = ("feature_encoder", "encoder_output")


def analyze(weight: torch.Tensor, labels: Sequence[str]) -> Dict[str, object]:
    """Norms and cosine similarities of the rows of an (N, D) table. A zero row has cosine 0 with everything."""
    if weight.dim() != 2:
        raise ValueError(f"task-vector table must be 2-D (N, D), got shape {tuple(weight.shape)}")
    if weight.size(0) != len(labels):
        raise ValueError(
            f"task-vector table has {weight.size(0)} rows but {len(labels)} labels ({', '.join(labels)})"
            f"; the config's strategy/tasks do not match the checkpoint"
        )
    w = weight.detach().cpu().to(torch.float64)
    norms = w.norm(dim=1)
    unit = w / norms.clamp_min(torch.finfo(torch.float64).tiny).unsqueeze(1)
    cosine = unit @ unit.T
    return {"labels": list(labels), "shape": list(w.shape), "norms": norms.tolist(), "cosine": cosine.tolist()}


# ---- inputs --------------------------------------------------------------------------------------------
def load_state_dict(path: PathLike) -> Mapping[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such model file; give a .pth saved by ESPnet (e.g. valid.acc.ave.pth)")
    state = load_model_file(path, map_location="cpu")  # weights only; checkpoint.pth's numpy scalars allowed
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # ESPnet checkpoint.pth
        state = state["model"]
    if not isinstance(state, dict):
        raise DataError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def find_tables(state: Mapping[str, torch.Tensor], where: str = "model") -> Dict[str, torch.Tensor]:
    """Injection point -> (N, D) table; the full parameter name is used if a point occurs twice."""
    found: List[Tuple[str, str]] = [(m.group(1), k) for k in state for m in [_TABLE_RE.search(k)] if m]
    if not found:
        raise DataError(
            f"{where}: this model has no task vectors (trained without conditioning?); no parameter "
            f"name ends in task_vectors.<point>.weight"
        )
    points = [p for p, _ in found]
    named = {(p if points.count(p) == 1 else k): state[k] for p, k in found}
    rank = {p: i for i, p in enumerate(_POINT_ORDER)}
    return {n: named[n] for n in sorted(named, key=lambda n: (rank.get(n, len(rank)), n))}


def labels_from_config(config_path: PathLike) -> Tuple[str, List[str]]:
    """(strategy, row labels) from an ESPnet training config."""
    config_path = Path(config_path)
    if not config_path.is_file():
        raise DataError(f"{config_path}: no such config; give the config.yaml next to the model file")
    with config_path.open(encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    strategy = (conf.get("frontend_conf") or {}).get("task_vector_strategy")
    tasks = (conf.get("tokenverse_conf") or {}).get("tasks")
    if not strategy:
        raise DataError(f"{config_path}: frontend_conf.task_vector_strategy is missing (per_task or per_combination)")
    if not tasks:
        raise DataError(f"{config_path}: tokenverse_conf.tasks is missing (e.g. [asr, scd, endp, ner, lid])")
    aux = [t for t in tasks if t != PRIMARY_TASK]
    try:
        return strategy, vector_labels(strategy, aux)
    except ValueError as e:
        raise DataError(f"{config_path}: {e}") from None


# ---- outputs -------------------------------------------------------------------------------------------
def to_markdown(results: Mapping[str, Mapping[str, object]], strategy: str) -> str:
    parts = [f"# Task vectors\n\nStrategy: `{strategy}`."]
    for name, res in results.items():
        labels: List[str] = res["labels"]  # type: ignore[assignment]
        n, d = res["shape"]  # type: ignore[misc]
        norms = md_table(["Vector", "L2 norm"], [[lab, f"{v:.4f}"] for lab, v in zip(labels, res["norms"])])
        cos = md_table(
            ["cosine"] + labels, [[lab] + [f"{v:.3f}" for v in row] for lab, row in zip(labels, res["cosine"])]
        )
        parts.append(f"## {name} ({n} x {d})\n\n{norms}\n\nPairwise cosine similarity:\n\n{cos}")
    return "\n\n".join(parts) + "\n"


def plot_heatmap(res: Mapping[str, object], title: str, path: PathLike) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    labels: List[str] = res["labels"]  # type: ignore[assignment]
    cos = res["cosine"]
    n = len(labels)
    size = max(4.0, 0.6 * n + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    try:
        im = ax.imshow(cos, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
        ax.set_xticks(range(n), labels, rotation=45, ha="right")
        ax.set_yticks(range(n), labels)
        ax.set_xlabel("task vector")
        ax.set_ylabel("task vector")
        ax.set_title(title)
        if n <= 16:  # numbers stay readable only for small tables
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, f"{cos[i][j]:.2f}", ha="center", va="center", fontsize=8)  # type: ignore
        fig.colorbar(im, ax=ax, label="cosine similarity")
        fig.tight_layout()
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)


def run_analysis(model_file: PathLike, config: PathLike, out_dir: PathLike) -> Dict[str, Dict[str, object]]:
    strategy, labels = labels_from_config(config)
    tables = find_tables(load_state_dict(model_file), where=str(model_file))
    results: Dict[str, Dict[str, object]] = {}
    for name, weight in tables.items():
        try:
            results[name] = analyze(weight, labels)
        except ValueError as e:
            raise DataError(f"{model_file} ({name}): {e}") from None
    out_dir = Path(out_dir)
    for name, res in results.items():
        plot_heatmap(res, f"Task-vector cosine similarity: {name} ({strategy})", out_dir / f"task_vectors_{name}.png")
    atomic_write_text(
        out_dir / "task_vectors.json", json.dumps({"strategy": strategy, "tables": results}, indent=2) + "\n"
    )
    atomic_write_text(out_dir / "task_vectors.md", to_markdown(results, strategy))
    return results
