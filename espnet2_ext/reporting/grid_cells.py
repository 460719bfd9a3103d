"""``run_grid.sh`` cells and their statistics: reading the exp dirs, grouping seeds, mean ± std, the verdict rule.

A *cell* is one exp dir ``<exp>/asr_<config>_<train set>_seed<k>``; what it is comes from its ``config.yaml``
(ESPnet writes the training arguments there: ``config``, ``seed``, the train data path, the frontend's task-vector
strategy/injection), its scores from ``decode_<tasks>/<test set>/score.json`` (``tokenverse_score``). Cells with
the same config and train set form a *group*; a group's numbers are the mean ± sample std (ddof 1) over its seeds.

Verdict rule (``compare``): a difference between two groups is a finding only when
``|mean_a - mean_b| > max(std_a, std_b)`` and both have n >= 2; otherwise it is "within seed noise". A finding in
the claimed direction is "reproduced", in the other "not reproduced". The best TokenVerse++ config is chosen on dev
WER (``dev_best``; among the configs with >= 2 seeds when there are any), never on test.
``grid_report`` renders them (tables, claim verdicts); this module knows nothing of markdown.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from espnet2_ext.activation import activation_tag
from espnet2_ext.common import DataError, atomic_write_text
from espnet2_ext.reporting.report import PathLike, load_score

ALL_TASKS = ("asr", "scd", "endp", "ner", "lid")
METRICS = (("wer", "WER"), ("scd_f1", "SCD F1"), ("endp_f1", "ENDP F1"), ("ner_f1", "NER F1"), ("lid_acc", "LID acc"))
AUX_METRICS = (("scd_f1", "SCD F1"), ("endp_f1", "ENDP F1"), ("ner_f1", "NER F1"))
BEST_STRATEGY, BEST_INJECTION = "per_task", "feature_encoder"  # the paper's best config (claim c)
CMD_FILE = "grid_cmd.txt"  # written by run_grid.sh: "<date>\t<commit>\t<train|decode>\t<command>" per line
# What the model table needs from the weights ({"model_file", "decoded", "parameters"}), kept beside a cell so the
# table stays whole where the weights are not shipped (a clone of the committed grid): grid_report --save_model_info.
MODEL_INFO_FILE = "model_info.json"


# ---- cells -----------------------------------------------------------------------------------------------
@dataclass
class Cell:
    path: Path
    config: str  # the training config file given to the recipe
    train_set: str
    seed: int
    strategy: str  # task-vector strategy ("none": TokenVerse baseline)
    injection: str
    scores: Dict[Tuple[str, str], Mapping] = field(default_factory=dict)  # (test set, activation tag) -> score

    @property
    def key(self) -> Tuple[str, str]:
        return (Path(self.config).stem, self.train_set)


def model_info(cell_dir: Path, model_file: str) -> Optional[dict]:
    """``{"model_file", "decoded" (the file it resolves to), "parameters"}`` of the checkpoint a cell was decoded
    with: from the weights when present, else from the cell's model_info.json; None when neither is there."""
    path = cell_dir / model_file
    if path.is_file():
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True)  # untrusted file: tensors only
        return {
            "model_file": model_file,
            "decoded": path.resolve().name,
            "parameters": sum(int(v.numel()) for v in state.values() if hasattr(v, "numel")),
        }
    saved = cell_dir / MODEL_INFO_FILE
    if not saved.is_file():
        return None
    fix = f"delete it, or re-run grid_report --save_model_info where the cell's {model_file} is"
    try:
        info = json.loads(saved.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{saved}: not valid JSON ({e}); {fix}") from None
    if not (
        isinstance(info, dict)
        and isinstance(info.get("parameters"), int)
        and isinstance(info.get("decoded"), str)
        and isinstance(info.get("model_file"), str)
    ):
        raise DataError(f'{saved}: expected {{"model_file": str, "decoded": str, "parameters": int}}; {fix}')
    if info["model_file"] != model_file:
        raise DataError(f"{saved}: describes {info['model_file']}, the report asks for {model_file}; {fix}")
    return info


def cell_commands(cell_dir: Path) -> Dict[str, Tuple[str, str, str]]:
    """stage -> (date, commit, command), the last line of each stage in a cell's grid_cmd.txt (run_grid.sh)."""
    out = {}
    path = cell_dir / CMD_FILE
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t", 3)
            if len(parts) == 4:
                out[parts[2]] = (parts[0], parts[1], parts[3].strip())
    return out


def save_model_info(cell_dir: Path, model_file: str) -> Optional[dict]:
    """Write the cell's model_info.json from its weights; None (nothing written) when the weights are absent."""
    if not (cell_dir / model_file).is_file():
        return None
    info = model_info(cell_dir, model_file)
    atomic_write_text(cell_dir / MODEL_INFO_FILE, json.dumps(info, indent=1) + "\n")
    return info


def _read_config(path: Path) -> dict:
    try:
        conf = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML ({e}); retrain the cell or remove its exp dir") from None
    if not isinstance(conf, dict):
        raise DataError(f"{path}: expected the mapping ESPnet writes as config.yaml")
    return conf


def load_cell(exp: Path) -> Cell:
    conf_path = exp / "config.yaml"
    conf = _read_config(conf_path)
    missing = [k for k in ("config", "seed", "train_data_path_and_name_and_type") if conf.get(k) is None]
    if missing:
        raise DataError(f"{conf_path}: no {', '.join(missing)}; not a config.yaml written by asr_train")
    speech = [p for p, name, *_ in conf["train_data_path_and_name_and_type"] if name == "speech"]
    if not speech:
        raise DataError(f"{conf_path}: train_data_path_and_name_and_type has no 'speech' entry")
    fe = conf.get("frontend_conf") or {}
    cell = Cell(
        exp,
        str(conf["config"]),
        Path(speech[0]).parent.name,
        int(conf["seed"]),
        str(fe.get("task_vector_strategy", "none")),
        str(fe.get("task_vector_injection", "-")),
    )
    for path in sorted(exp.glob("decode_*/*/score.json")):
        e = load_score(path)
        cell.scores[(e.test_set, activation_tag(e.activation))] = e.scores
    return cell


def find_cells(exp_dir: PathLike) -> Tuple[List[Cell], List[Path]]:
    """(cells with at least one score, exp dirs still without scores)."""
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise DataError(f"{exp_dir}: no such directory; give the grid's --exp_dir (run_grid.sh: exp_grid)")
    cells, pending, seen = [], [], {}
    for exp in sorted(exp_dir.glob("asr_*")):
        if not (exp / "config.yaml").is_file() or exp.name.startswith("asr_stats_"):
            continue
        cell = load_cell(exp)
        if not cell.scores:
            pending.append(exp)
            continue
        ident = (*cell.key, cell.seed)
        if ident in seen:
            raise DataError(
                f"{exp} and {seen[ident]} are both {cell.key[0]} on {cell.train_set} with seed {cell.seed}; remove one"
            )
        seen[ident] = exp
        cells.append(cell)
    return cells, pending


# ---- statistics ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stat:
    values: Tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> Optional[float]:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> Optional[float]:
        return statistics.stdev(self.values) if self.n >= 2 else None

    def fmt(self, with_n: bool = False) -> str:
        if not self.values:
            return "-"
        s = f"{self.mean:.2f}" + (f" ± {self.std:.2f}" if self.std is not None else "")
        return s + (f" (n={self.n})" if with_n else "")


def welch_p(a: Stat, b: Stat) -> Optional[float]:
    if a.n < 2 or b.n < 2 or (a.std == 0 and b.std == 0):
        return None
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # nearly equal values: scipy warns about precision, p is still printed
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a.values, b.values, equal_var=False).pvalue)
    return None if math.isnan(p) else p  # nan: both groups without any spread


def within_noise(a: Stat, b: Stat) -> Optional[bool]:
    """The rule in the module doc: ``|mean_a - mean_b| <= max(std_a, std_b)``; None when either has n < 2."""
    if a.n < 2 or b.n < 2:
        return None
    return abs(a.mean - b.mean) <= max(a.std, b.std)


def compare(a: Stat, b: Stat, lower_is_claimed: bool) -> str:
    """Verdict for the claim "a < b" (``lower_is_claimed``) or "a > b" under the rule in the module doc."""
    noise = within_noise(a, b)
    if noise is None:
        return "not enough seeds (n < 2)"
    diff = a.mean - b.mean
    if noise:
        return "within seed noise"
    return "reproduced" if (diff < 0) == lower_is_claimed else "not reproduced"


# ---- groups ----------------------------------------------------------------------------------------------
@dataclass
class Group:
    config: str
    train_set: str
    cells: List[Cell]

    @property
    def strategy(self) -> str:
        return self.cells[0].strategy

    @property
    def injection(self) -> str:
        return self.cells[0].injection

    @property
    def is_baseline(self) -> bool:
        return self.strategy == "none"

    @property
    def label(self) -> str:
        if self.is_baseline:
            return "TokenVerse baseline"
        return f"TokenVerse++ {self.strategy} @ {self.injection}"

    @property
    def seeds(self) -> List[int]:
        return sorted(c.seed for c in self.cells)

    def stat(self, test_set: str, metric: str, act: str = "+".join(ALL_TASKS), lang: Optional[str] = None) -> Stat:
        vals = []
        for c in sorted(self.cells, key=lambda c: c.seed):
            s = c.scores.get((test_set, act))
            if s is None:
                continue
            if lang is not None:
                s = (s.get("per_language") or {}).get(lang) or {}
            v = s.get(metric)
            if v is not None:
                vals.append(float(v))
        return Stat(tuple(vals))

    def activations(self, test_set: str) -> List[str]:
        acts = {a for c in self.cells for (t, a) in c.scores if t == test_set}
        return sorted(
            acts,
            key=lambda a: (-len(a.split("+")), [ALL_TASKS.index(t) if t in ALL_TASKS else 99 for t in a.split("+")]),
        )

    def languages(self, test_set: str) -> List[str]:
        act = "+".join(ALL_TASKS)
        return sorted(
            {lang for c in self.cells for lang in ((c.scores.get((test_set, act)) or {}).get("per_language") or {})}
        )


def make_groups(cells: Sequence[Cell]) -> List[Group]:
    by_key: Dict[Tuple[str, str], List[Cell]] = defaultdict(list)
    for c in cells:
        by_key[c.key].append(c)
    for (cfg, ts), cs in by_key.items():
        kinds = {(c.strategy, c.injection) for c in cs}
        if len(kinds) > 1:
            raise DataError(
                f"{cfg} on {ts}: its seeds were trained with different task-vector settings {kinds} "
                f"({', '.join(str(c.path) for c in cs)}); retrain them with one config"
            )
    return [Group(cfg, ts, cs) for (cfg, ts), cs in by_key.items()]


@dataclass
class Roles:
    full_set: str  # fully annotated conversations only
    mixed_set: str  # conversations + ASR/LID-only read speech
    dev_set: str = "dev"
    test_set: str = "test"
    partial_test_set: str = "test_partial"


def order_groups(groups: Sequence[Group], roles: Roles) -> List[Group]:
    def rank(g: Group) -> tuple:
        set_rank = {roles.full_set: 0, roles.mixed_set: 1}.get(g.train_set, 2)
        if g.is_baseline:
            return (0, set_rank, g.config)
        return (1 if g.train_set == roles.mixed_set else 2, g.strategy, g.injection, set_rank, g.config)

    return sorted(groups, key=rank)


def dev_best(groups: Sequence[Group], roles: Roles, train_set: str) -> Optional[Group]:
    """The TokenVerse++ group on ``train_set`` with the lowest mean dev WER (all tasks active), among the groups
    with >= 2 dev-scored seeds when there are any: a one-seed mean is not comparable with a mean over seeds (one
    lucky seed would win), and a claim on a one-seed choice could never get a verdict under the rule above."""
    cands = [g for g in groups if not g.is_baseline and g.train_set == train_set and g.stat(roles.dev_set, "wer").n]
    seeded = [g for g in cands if g.stat(roles.dev_set, "wer").n >= 2]
    return min(seeded or cands, key=lambda g: (g.stat(roles.dev_set, "wer").mean, g.config)) if cands else None
