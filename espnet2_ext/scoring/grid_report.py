"""The paper's comparisons with seeds: ``run_grid.sh`` cells -> tables (mean ± std over seeds) + claim verdicts.

A *cell* is one exp dir ``<exp>/asr_<config>_<train set>_seed<k>``; what it is comes from its ``config.yaml``
(ESPnet writes the training arguments there: ``config``, ``seed``, the train data path, the frontend's task-vector
strategy/injection), its scores from ``decode_<tasks>/<test set>/score.json`` (``tokenverse_score``). Cells with
the same config and train set form a *group*; a group's numbers are the mean ± sample std (ddof 1) over its seeds,
with n shown.

Verdict rule (stated in the report): a difference between two groups is a finding only when
``|mean_a - mean_b| > max(std_a, std_b)`` and both have n >= 2; otherwise it is "within seed noise". A finding
in the claimed direction is "reproduced", in the other direction "not reproduced". Welch's t-test p is printed for
information. The best TokenVerse++ config is chosen on dev WER (all tasks active), never on test.
"""
from __future__ import annotations

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
from espnet2_ext.scoring.report import PathLike, load_score, md_table

ALL_TASKS = ("asr", "scd", "endp", "ner", "lid")
METRICS = (("wer", "WER"), ("scd_f1", "SCD F1"), ("endp_f1", "ENDP F1"), ("ner_f1", "NER F1"),
           ("lid_acc", "LID acc"))
AUX_METRICS = (("scd_f1", "SCD F1"), ("endp_f1", "ENDP F1"), ("ner_f1", "NER F1"))
BEST_STRATEGY, BEST_INJECTION = "per_task", "feature_encoder"  # the paper's best config (claim c)
CMD_FILE = "grid_cmd.txt"  # written by run_grid.sh: "<date>\t<commit>\t<train|decode>\t<command>" per line


# ---- cells -----------------------------------------------------------------------------------------------
@dataclass
class Cell:
    path: Path
    config: str           # the training config file given to the recipe
    train_set: str
    seed: int
    strategy: str         # task-vector strategy ("none": TokenVerse baseline)
    injection: str
    scores: Dict[Tuple[str, str], Mapping] = field(default_factory=dict)  # (test set, activation tag) -> score

    @property
    def key(self) -> Tuple[str, str]:
        return (Path(self.config).stem, self.train_set)


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
    cell = Cell(exp, str(conf["config"]), Path(speech[0]).parent.name, int(conf["seed"]),
                str(fe.get("task_vector_strategy", "none")), str(fe.get("task_vector_injection", "-")))
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
            raise DataError(f"{exp} and {seen[ident]} are both {cell.key[0]} on {cell.train_set} with seed "
                            f"{cell.seed}; remove one")
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


def compare(a: Stat, b: Stat, lower_is_claimed: bool) -> str:
    """Verdict for the claim "a < b" (``lower_is_claimed``) or "a > b" under the rule in the module doc."""
    if a.n < 2 or b.n < 2:
        return "not enough seeds (n < 2)"
    diff = a.mean - b.mean
    if abs(diff) <= max(a.std, b.std):
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
        return sorted(acts, key=lambda a: (-len(a.split("+")), [ALL_TASKS.index(t) if t in ALL_TASKS else 99
                                                                for t in a.split("+")]))

    def languages(self, test_set: str) -> List[str]:
        act = "+".join(ALL_TASKS)
        return sorted({lang for c in self.cells for lang in ((c.scores.get((test_set, act)) or {})
                                                             .get("per_language") or {})})


def make_groups(cells: Sequence[Cell]) -> List[Group]:
    by_key: Dict[Tuple[str, str], List[Cell]] = defaultdict(list)
    for c in cells:
        by_key[c.key].append(c)
    for (cfg, ts), cs in by_key.items():
        kinds = {(c.strategy, c.injection) for c in cs}
        if len(kinds) > 1:
            raise DataError(f"{cfg} on {ts}: its seeds were trained with different task-vector settings {kinds} "
                            f"({', '.join(str(c.path) for c in cs)}); retrain them with one config")
    return [Group(cfg, ts, cs) for (cfg, ts), cs in by_key.items()]


@dataclass
class Roles:
    full_set: str         # fully annotated conversations only
    mixed_set: str        # conversations + ASR/LID-only read speech
    dev_set: str = "dev"
    test_set: str = "test"
    partial_test_set: str = "test_partial"


def _order(groups: Sequence[Group], roles: Roles) -> List[Group]:
    def rank(g: Group) -> tuple:
        set_rank = {roles.full_set: 0, roles.mixed_set: 1}.get(g.train_set, 2)
        if g.is_baseline:
            return (0, set_rank, g.config)
        return (1 if g.train_set == roles.mixed_set else 2, g.strategy, g.injection, set_rank, g.config)
    return sorted(groups, key=rank)


def dev_best(groups: Sequence[Group], roles: Roles, train_set: str) -> Optional[Group]:
    """The TokenVerse++ group on ``train_set`` with the lowest mean dev WER (all tasks active)."""
    cands = [g for g in groups if not g.is_baseline and g.train_set == train_set
             and g.stat(roles.dev_set, "wer").n]
    return min(cands, key=lambda g: (g.stat(roles.dev_set, "wer").mean, g.config)) if cands else None


# ---- tables ----------------------------------------------------------------------------------------------
def _name(g: Group) -> str:
    return f"{g.label} (`{g.config}`)"


def table_main(groups: Sequence[Group], roles: Roles) -> str:
    header = ["Model", "Train set", "n", "dev WER"] + [f"test {n}" for _, n in METRICS] + [
        f"{roles.partial_test_set} WER", f"{roles.partial_test_set} LID acc"]
    rows = []
    for g in groups:
        rows.append([_name(g), g.train_set, str(len(g.cells)), g.stat(roles.dev_set, "wer").fmt()]
                    + [g.stat(roles.test_set, k).fmt() for k, _ in METRICS]
                    + [g.stat(roles.partial_test_set, k).fmt() for k in ("wer", "lid_acc")])
    return md_table(header, rows)


def table_languages(groups: Sequence[Group], roles: Roles) -> str:
    langs = sorted({lang for g in groups for t in (roles.test_set, roles.partial_test_set)
                    for lang in g.languages(t)})
    header = ["Model", "Train set", "n"] + [f"{roles.test_set} WER {x}" for x in langs] + [
        f"{roles.partial_test_set} WER {x}" for x in langs]
    rows = [[_name(g), g.train_set, str(len(g.cells))]
            + [g.stat(t, "wer", lang=x).fmt() for t in (roles.test_set, roles.partial_test_set) for x in langs]
            for g in groups]
    return md_table(header, rows)


def table_activations(groups: Sequence[Group], roles: Roles) -> str:
    header = ["Model", "Train set", "Tasks", "n"] + [n for _, n in METRICS] + ["ITT"]
    rows = []
    for g in groups:
        for act in g.activations(roles.test_set):
            st = [g.stat(roles.test_set, k, act) for k, _ in METRICS] + [g.stat(roles.test_set, "itt", act)]
            rows.append([_name(g), g.train_set, act, str(max(s.n for s in st))] + [s.fmt() for s in st])
    return md_table(header, rows)


def _param_count(cell: Cell, model_file: str) -> Optional[int]:
    path = cell.path / model_file
    if not path.is_file():
        return None
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    return sum(int(v.numel()) for v in state.values() if hasattr(v, "numel"))


def _commands(cell: Cell) -> Dict[str, Tuple[str, str, str]]:
    """stage -> (date, commit, command), the last one of each stage in the cell's grid_cmd.txt."""
    out = {}
    path = cell.path / CMD_FILE
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t", 3)
            if len(parts) == 4:
                out[parts[2]] = (parts[0], parts[1], parts[3].strip())
    return out


def table_models(groups: Sequence[Group], model_file: str) -> str:
    """icefall-style provenance: parameters, config, exact commands, decoded checkpoint, date/commit per seed."""
    blocks = []
    for g in groups:
        lines = [f"### {g.label}, `{g.config}`, train set `{g.train_set}`", ""]
        params = {_param_count(c, model_file) for c in g.cells} - {None}
        lines.append(f"- parameters: {', '.join(f'{p:,}' for p in sorted(params)) or 'unknown (no model file)'}; "
                     f"config: `{g.cells[0].config}`; seeds: {', '.join(map(str, g.seeds))}")
        for c in sorted(g.cells, key=lambda c: c.seed):
            target = (c.path / model_file)
            decoded = target.resolve().name if target.exists() else "missing"
            cmds = _commands(c)
            lines.append(f"- seed {c.seed} (`{c.path.name}`): decoded `{model_file}` = `{decoded}`")
            for stage in ("train", "decode"):
                if stage in cmds:
                    date, commit, cmd = cmds[stage]
                    lines.append(f"  - {stage} ({date}, commit {commit}): `{cmd}`")
            if not cmds:
                lines.append(f"  - commands: not recorded ({CMD_FILE} missing)")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ---- claims ----------------------------------------------------------------------------------------------
def _comparison(a_name: str, a: Stat, b_name: str, b: Stat, verdict: str) -> str:
    p = welch_p(a, b)
    diff = f"{a.mean - b.mean:+.2f}" if a.n and b.n else "n/a"
    spread = max((s.std for s in (a, b) if s.std is not None), default=None)
    return (f"{a_name} {a.fmt(True)} vs {b_name} {b.fmt(True)}; difference {diff}, "
            f"seed spread {'n/a' if spread is None else f'{spread:.2f}'}"
            f"{'' if p is None else f', Welch p={p:.3f}'} → **{verdict}**")


def _line(claim: str, what: str, a_name: str, a: Stat, b_name: str, b: Stat, verdict: str) -> str:
    return f"- **({claim})** {what}: {_comparison(a_name, a, b_name, b, verdict)}"


def _missing(claim: str, what: str, needs: str) -> str:
    return f"- **({claim})** {what}: not evaluated, the grid has no {needs} yet"


def verdicts(groups: Sequence[Group], roles: Roles) -> List[str]:
    base_full, base_mixed = (next((g for g in groups if g.is_baseline and g.train_set == ts), None)
                             for ts in (roles.full_set, roles.mixed_set))
    best_mixed = dev_best(groups, roles, roles.mixed_set)
    t, all_act = roles.test_set, "+".join(ALL_TASKS)
    out: List[str] = []

    what = f"TokenVerse++ with partial data has lower {t} WER than the TokenVerse baseline (all tasks active)"
    if best_mixed and base_full:
        out.append(_line("a", what, f"{best_mixed.label} on {best_mixed.train_set} (dev-best)",
                         best_mixed.stat(t, "wer"), f"baseline on {base_full.train_set}", base_full.stat(t, "wer"),
                         compare(best_mixed.stat(t, "wer"), base_full.stat(t, "wer"), True)))
    else:
        out.append(_missing("a", what, f"TokenVerse++ on {roles.mixed_set} with dev scores and baseline on "
                                       f"{roles.full_set}"))

    # (b): same config, full vs mixed: the baseline should lose aux F1, TokenVerse++ should not.
    tv_full = [g for g in groups if not g.is_baseline and g.train_set == roles.full_set]
    tv_pair = None
    for g in tv_full:
        mixed = next((m for m in groups if m.config == g.config and m.train_set == roles.mixed_set), None)
        if mixed and (tv_pair is None or g.config == (best_mixed.config if best_mixed else None)):
            tv_pair = (g, mixed)
    for key, name in AUX_METRICS:
        what = (f"trained on mixed partial data, the baseline loses {name} on {t} while TokenVerse++ does not "
                f"(all tasks active)")
        if not (base_full and base_mixed and tv_pair):
            out.append(_missing("b", what, f"baseline on both {roles.full_set} and {roles.mixed_set}, or one "
                                           f"TokenVerse++ config on both"))
            continue
        bm, bf = base_mixed.stat(t, key), base_full.stat(t, key)
        tm, tf = tv_pair[1].stat(t, key), tv_pair[0].stat(t, key)
        base_v, tv_v = compare(bm, bf, True), compare(tm, tf, True)
        if base_v.startswith("not enough") or tv_v.startswith("not enough"):
            verdict = "not enough seeds (n < 2)"
        elif base_v == "reproduced" and tv_v != "reproduced":
            verdict = "reproduced"
        elif base_v == "within seed noise":
            verdict = "within seed noise"
        else:
            verdict = "not reproduced"
        moved = {"reproduced": "drops", "not reproduced": "rises"}  # compare() says whether "mixed < full"
        tv_text = _comparison(f"on {roles.mixed_set}", tm, f"on {roles.full_set}", tf, moved.get(tv_v, tv_v))
        base_text = _comparison(f"baseline on {roles.mixed_set}", bm, f"on {roles.full_set}", bf,
                                moved.get(base_v, base_v))
        out.append(f"- **(b)** {what}: {base_text}; TokenVerse++ `{tv_pair[0].config}` {tv_text} → "
                   f"**{verdict}**")

    what = (f"per-task vectors at the feature encoder are the best TokenVerse++ config ({t} WER, all tasks, "
            f"{roles.mixed_set})")
    mixed_tv = [g for g in groups if not g.is_baseline and g.train_set == roles.mixed_set]
    claimed = next((g for g in mixed_tv if (g.strategy, g.injection) == (BEST_STRATEGY, BEST_INJECTION)), None)
    others = [g for g in mixed_tv if g is not claimed]
    if claimed and others:
        c = claimed.stat(t, "wer")
        per = [(g, compare(c, g.stat(t, "wer"), True)) for g in others]
        if any(v.startswith("not enough") for _, v in per):
            verdict = "not enough seeds (n < 2)"
        elif any(v == "not reproduced" for _, v in per):
            verdict = "not reproduced"
        elif all(v == "reproduced" for _, v in per):
            verdict = "reproduced"
        else:
            verdict = "within seed noise"
        runner = min(others, key=lambda g: (g.stat(t, "wer").mean if g.stat(t, "wer").n else math.inf))
        line = _line("c", what, claimed.label, c, f"best other ({runner.label})", runner.stat(t, "wer"), verdict)
        detail = "; ".join(f"vs {g.strategy}@{g.injection}: {v}" for g, v in per)
        chosen = f"dev-best config: {best_mixed.label} (`{best_mixed.config}`)" if best_mixed else "no dev scores"
        out.append(f"{line} ({detail}; {chosen})")
    else:
        out.append(_missing("c", what, f"per_task@feature_encoder and another TokenVerse++ config on "
                                       f"{roles.mixed_set}"))

    # (d): the same TokenVerse++ config with and without the ASR+LID-only data, per language.
    what_all = "adding ASR+LID-only data lowers TokenVerse++ WER"
    if tv_pair is None:
        out.append(_missing("d", what_all, f"TokenVerse++ config trained on both {roles.full_set} and "
                                           f"{roles.mixed_set}"))
        return out
    full, mixed = tv_pair
    targets = [(t, None), *((t, lang) for lang in mixed.languages(t)), (roles.partial_test_set, None),
               *((roles.partial_test_set, lang) for lang in mixed.languages(roles.partial_test_set))]
    for test_set, lang in targets:
        a, b = mixed.stat(test_set, "wer", all_act, lang), full.stat(test_set, "wer", all_act, lang)
        if not (a.n or b.n):
            continue
        what = f"{what_all} on {test_set}{f' ({lang})' if lang else ' (all languages)'}, `{full.config}`"
        out.append(_line("d", what, f"with ({mixed.train_set})", a, f"without ({full.train_set})", b,
                         compare(a, b, True)))
    return out


# ---- report ----------------------------------------------------------------------------------------------
RULE = ("Numbers are mean ± sample standard deviation (ddof 1) over seeds, n = seeds scored. A difference is a "
        "finding only when |mean_a − mean_b| > max(std_a, std_b) with n ≥ 2 on both sides; otherwise it is "
        "\"within seed noise\". Welch's t-test p is shown for information, it does not decide. The best "
        "TokenVerse++ config is chosen on dev WER (all tasks active), never on test.")


def build_report(cells: Sequence[Cell], roles: Roles, pending: Sequence[Path] = (), model_file: str =
                 "valid.loss.best.pth", append: Sequence[str] = ()) -> str:
    if not cells:
        raise DataError("no scored grid cell found; run ./run_grid.sh (its cells write decode_*/*/score.json)")
    groups = _order(make_groups(cells), roles)
    best = dev_best(groups, roles, roles.mixed_set)
    parts = ["# RESULTS_grid: the paper's comparisons with seeds\n\n"
             f"Made by `./run_grid.sh` (`espnet2_ext.bin.grid_report`). Train sets: `{roles.full_set}` = fully "
             f"annotated conversations only, `{roles.mixed_set}` = the same conversations + ASR/LID-only read "
             f"speech. {RULE}"]
    parts.append("## Verdicts (one line per paper claim)\n\n" + "\n".join(verdicts(groups, roles)))
    if best:
        parts[-1] += (f"\n\nDev-best TokenVerse++ config on `{roles.mixed_set}`: {best.label} (`{best.config}`, "
                      f"dev WER {best.stat(roles.dev_set, 'wer').fmt(True)}).")
        on_full = sorted({g.config for g in groups if not g.is_baseline and g.train_set == roles.full_set})
        if on_full and best.config not in on_full:
            parts[-1] += (f" The TokenVerse++ config trained on `{roles.full_set}` ({', '.join(on_full)}) is not "
                          f"the dev-best: rerun `./run_grid.sh --best {best.cells[0].config}` for claims "
                          f"(b) and (d).")
    parts.append(f"## Table II: all tasks active ({roles.dev_set}, {roles.test_set}, {roles.partial_test_set})\n\n"
                 "WER in %, F1 and accuracy in %, '-' = not annotated or not decoded. The baseline has no task "
                 "vectors: it is decoded once with every task token allowed (what it learned to emit).\n\n"
                 + table_main(groups, roles))
    parts.append("## Table III: WER per language (all tasks active)\n\n" + table_languages(groups, roles))
    parts.append(f"## Table IV: task activation at inference ({roles.test_set})\n\n"
                 "ITT = tokens of inactive tasks in the hypotheses (0 under constrained decoding).\n\n"
                 + table_activations(groups, roles))
    parts.append("## Models (parameters, config, commands, decoded checkpoint, date/commit)\n\n"
                 + table_models(groups, model_file))
    if pending:
        parts.append("## Cells not scored yet\n\n" + "\n".join(f"- `{p}`" for p in pending))
    parts += [p.rstrip("\n") for p in append]
    return "\n\n".join(parts) + "\n"


def write_grid_report(exp_dir: PathLike, out: PathLike, roles: Roles, model_file: str = "valid.loss.best.pth",
                      append: Sequence[PathLike] = ()) -> str:
    texts = []
    for p in append:
        if not Path(p).is_file():
            raise DataError(f"{p}: no such file (given with --append)")
        texts.append(Path(p).read_text(encoding="utf-8"))
    cells, pending = find_cells(exp_dir)
    report = build_report(cells, roles, pending, model_file, texts)
    atomic_write_text(out, report)
    return report
