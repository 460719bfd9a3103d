"""The paper's comparisons with seeds: ``run_grid.sh`` cells -> tables (mean ± std over seeds) + claim verdicts.

Cells, groups and their statistics come from ``grid_cells`` (which reads the exp dirs); this module renders them:
Tables II-IV shaped like the paper's, the model table (parameters, commands, checkpoint) and one verdict line per
claim, with n shown.

Verdict rule (stated in the report): a difference between two groups is a finding only when
``|mean_a - mean_b| > max(std_a, std_b)`` and both have n >= 2; otherwise it is "within seed noise". A finding
in the claimed direction is "reproduced", in the other direction "not reproduced". Welch's t-test p is printed for
information. The best TokenVerse++ config is chosen on dev WER (all tasks active), never on test.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2_ext.common import DataError, atomic_write_text
from espnet2_ext.reporting.grid_cells import (
    ALL_TASKS,
    AUX_METRICS,
    BEST_INJECTION,
    BEST_STRATEGY,
    CMD_FILE,
    METRICS,
    Cell,
    Group,
    Roles,
    Stat,
    cell_commands,
    compare,
    dev_best,
    find_cells,
    make_groups,
    model_info,
    order_groups,
    save_model_info,
    welch_p,
)
from espnet2_ext.reporting.markdown import md_table
from espnet2_ext.reporting.report import PathLike


# ---- tables ----------------------------------------------------------------------------------------------
def _name(g: Group) -> str:
    return f"{g.label} (`{g.config}`)"


def table_main(groups: Sequence[Group], roles: Roles) -> str:
    header = (
        ["Model", "Train set", "n", "dev WER"]
        + [f"test {n}" for _, n in METRICS]
        + [f"{roles.partial_test_set} WER", f"{roles.partial_test_set} LID acc"]
    )
    rows = []
    for g in groups:
        rows.append(
            [_name(g), g.train_set, str(len(g.cells)), g.stat(roles.dev_set, "wer").fmt()]
            + [g.stat(roles.test_set, k).fmt() for k, _ in METRICS]
            + [g.stat(roles.partial_test_set, k).fmt() for k in ("wer", "lid_acc")]
        )
    return md_table(header, rows)


def table_languages(groups: Sequence[Group], roles: Roles) -> str:
    langs = sorted({lang for g in groups for t in (roles.test_set, roles.partial_test_set) for lang in g.languages(t)})
    header = (
        ["Model", "Train set", "n"]
        + [f"{roles.test_set} WER {x}" for x in langs]
        + [f"{roles.partial_test_set} WER {x}" for x in langs]
    )
    rows = [
        [_name(g), g.train_set, str(len(g.cells))]
        + [g.stat(t, "wer", lang=x).fmt() for t in (roles.test_set, roles.partial_test_set) for x in langs]
        for g in groups
    ]
    return md_table(header, rows)


def table_activations(groups: Sequence[Group], roles: Roles) -> str:
    header = ["Model", "Train set", "Tasks", "n"] + [n for _, n in METRICS] + ["ITT"]
    rows = []
    for g in groups:
        for act in g.activations(roles.test_set):
            st = [g.stat(roles.test_set, k, act) for k, _ in METRICS] + [g.stat(roles.test_set, "itt", act)]
            rows.append([_name(g), g.train_set, act, str(max(s.n for s in st))] + [s.fmt() for s in st])
    return md_table(header, rows)


def table_models(groups: Sequence[Group], model_file: str, known: Optional[Dict[Path, Optional[dict]]] = None) -> str:
    """icefall-style provenance: parameters, config, exact commands, decoded checkpoint, date/commit per seed."""
    blocks = []
    for g in groups:
        lines = [f"### {g.label}, `{g.config}`, train set `{g.train_set}`", ""]
        infos = {c.seed: (known or {}).get(c.path) or model_info(c.path, model_file) for c in g.cells}
        params = {i["parameters"] for i in infos.values() if i}
        lines.append(
            f"- parameters: {', '.join(f'{p:,}' for p in sorted(params)) or 'unknown (no model file)'}; "
            f"config: `{g.cells[0].config}`; seeds: {', '.join(map(str, g.seeds))}"
        )
        for c in sorted(g.cells, key=lambda c: c.seed):
            decoded = infos[c.seed]["decoded"] if infos[c.seed] else "missing"
            cmds = cell_commands(c.path)
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
    return (
        f"{a_name} {a.fmt(True)} vs {b_name} {b.fmt(True)}; difference {diff}, "
        f"seed spread {'n/a' if spread is None else f'{spread:.2f}'}"
        f"{'' if p is None else f', Welch p={p:.3f}'} → **{verdict}**"
    )


def _line(claim: str, what: str, a_name: str, a: Stat, b_name: str, b: Stat, verdict: str) -> str:
    return f"- **({claim})** {what}: {_comparison(a_name, a, b_name, b, verdict)}"


def _missing(claim: str, what: str, needs: str) -> str:
    return f"- **({claim})** {what}: not evaluated, the grid has no {needs} yet"


def verdicts(groups: Sequence[Group], roles: Roles) -> List[str]:
    """One markdown line per paper claim (a)-(d), each with its verdict."""
    base_full, base_mixed = (
        next((g for g in groups if g.is_baseline and g.train_set == ts), None)
        for ts in (roles.full_set, roles.mixed_set)
    )
    best_mixed = dev_best(groups, roles, roles.mixed_set)
    tv_pair = _tv_pair(groups, roles, best_mixed)
    return [
        *_claim_a(roles, best_mixed, base_full),
        *_claim_b(roles, base_full, base_mixed, tv_pair),
        *_claim_c(groups, roles, best_mixed),
        *_claim_d(roles, tv_pair),
    ]


def _claim_a(roles: Roles, best_mixed: Optional[Group], base_full: Optional[Group]) -> List[str]:
    """(a): TokenVerse++ on the mixed data (its dev-best config) against the baseline on the fully labelled data."""
    t = roles.test_set
    out: List[str] = []
    what = f"TokenVerse++ with partial data has lower {t} WER than the TokenVerse baseline (all tasks active)"
    if best_mixed and base_full:
        out.append(
            _line(
                "a",
                what,
                f"{best_mixed.label} on {best_mixed.train_set} (dev-best)",
                best_mixed.stat(t, "wer"),
                f"baseline on {base_full.train_set}",
                base_full.stat(t, "wer"),
                compare(best_mixed.stat(t, "wer"), base_full.stat(t, "wer"), True),
            )
        )
    else:
        out.append(
            _missing("a", what, f"TokenVerse++ on {roles.mixed_set} with dev scores and baseline on {roles.full_set}")
        )

    return out


def _tv_pair(groups: Sequence[Group], roles: Roles, best_mixed: Optional[Group]):
    """(full, mixed): one TokenVerse++ config trained on both sets (the dev-best config when it is one), or None."""
    tv_full = [g for g in groups if not g.is_baseline and g.train_set == roles.full_set]
    tv_pair = None
    for g in tv_full:
        mixed = next((m for m in groups if m.config == g.config and m.train_set == roles.mixed_set), None)
        if mixed and (tv_pair is None or g.config == (best_mixed.config if best_mixed else None)):
            tv_pair = (g, mixed)
    return tv_pair


def _claim_b(roles: Roles, base_full, base_mixed, tv_pair) -> List[str]:
    """(b): same config, full vs mixed: the baseline should lose aux F1, TokenVerse++ should not."""
    t = roles.test_set
    out: List[str] = []
    for key, name in AUX_METRICS:
        what = (
            f"trained on mixed partial data, the baseline loses {name} on {t} while TokenVerse++ does not "
            f"(all tasks active)"
        )
        if not (base_full and base_mixed and tv_pair):
            out.append(
                _missing(
                    "b",
                    what,
                    f"baseline on both {roles.full_set} and {roles.mixed_set}, or one TokenVerse++ config on both",
                )
            )
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
        # compare() says whether "mixed < full"; a half without seeds says so once, in the line's verdict
        moved = {"reproduced": "drops", "not reproduced": "rises", "not enough seeds (n < 2)": "n < 2"}
        tv_text = _comparison(f"on {roles.mixed_set}", tm, f"on {roles.full_set}", tf, moved.get(tv_v, tv_v))
        base_text = _comparison(
            f"baseline on {roles.mixed_set}", bm, f"on {roles.full_set}", bf, moved.get(base_v, base_v)
        )
        out.append(f"- **(b)** {what}: {base_text}; TokenVerse++ `{tv_pair[0].config}` {tv_text} → **{verdict}**")

    return out


def _claim_c(groups: Sequence[Group], roles: Roles, best_mixed: Optional[Group]) -> List[str]:
    """(c): per-task vectors at the feature encoder beat every other TokenVerse++ config."""
    t = roles.test_set
    out: List[str] = []
    what = (
        f"per-task vectors at the feature encoder are the best TokenVerse++ config ({t} WER, all tasks, "
        f"{roles.mixed_set})"
    )
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
        runner = min(others, key=lambda g: g.stat(t, "wer").mean if g.stat(t, "wer").n else math.inf)
        line = _line("c", what, claimed.label, c, f"best other ({runner.label})", runner.stat(t, "wer"), verdict)
        detail = "; ".join(f"vs {g.strategy}@{g.injection}: {v}" for g, v in per)
        chosen = f"dev-best config: {best_mixed.label} (`{best_mixed.config}`)" if best_mixed else "no dev scores"
        out.append(f"{line} ({detail}; {chosen})")
    else:
        out.append(
            _missing("c", what, f"per_task@feature_encoder and another TokenVerse++ config on {roles.mixed_set}")
        )

    return out


def _claim_d(roles: Roles, tv_pair) -> List[str]:
    """(d): the same TokenVerse++ config with and without the ASR+LID-only data, per language."""
    t, all_act = roles.test_set, "+".join(ALL_TASKS)
    what_all = "adding ASR+LID-only data lowers TokenVerse++ WER"
    if tv_pair is None:
        return [_missing("d", what_all, f"TokenVerse++ config trained on both {roles.full_set} and {roles.mixed_set}")]
    out: List[str] = []
    full, mixed = tv_pair
    targets = [
        (t, None),
        *((t, lang) for lang in mixed.languages(t)),
        (roles.partial_test_set, None),
        *((roles.partial_test_set, lang) for lang in mixed.languages(roles.partial_test_set)),
    ]
    for test_set, lang in targets:
        a, b = mixed.stat(test_set, "wer", all_act, lang), full.stat(test_set, "wer", all_act, lang)
        if not (a.n or b.n):
            continue
        what = f"{what_all} on {test_set}{f' ({lang})' if lang else ' (all languages)'}, `{full.config}`"
        out.append(
            _line("d", what, f"with ({mixed.train_set})", a, f"without ({full.train_set})", b, compare(a, b, True))
        )
    return out


# ---- report ----------------------------------------------------------------------------------------------
RULE = (
    "Numbers are mean ± sample standard deviation (ddof 1) over seeds, n = seeds scored. A difference is a "
    "finding only when |mean_a − mean_b| > max(std_a, std_b) with n ≥ 2 on both sides; otherwise it is "
    '"within seed noise". Welch\'s t-test p is shown for information, it does not decide. The best '
    "TokenVerse++ config is chosen on dev WER (all tasks active; among the configs with ≥ 2 seeds when there "
    "are any), never on test."
)


def build_report(
    cells: Sequence[Cell],
    roles: Roles,
    pending: Sequence[Path] = (),
    model_file: str = "valid.loss.best.pth",
    append: Sequence[str] = (),
    known_info: Optional[Dict[Path, Optional[dict]]] = None,
    models_md: Optional[str] = None,
    preamble: str = "Made by `./run_grid.sh` (`espnet2_ext.bin.grid_report`).",
) -> str:
    """``known_info``: cell dir -> model info already read (``save_model_info``), so no checkpoint is loaded twice;
    ``models_md``: the model section's body when the cells are records, not exp dirs (``results_tables``)."""
    if not cells:
        raise DataError("no scored grid cell found; run ./run_grid.sh (its cells write decode_*/*/score.json)")
    groups = order_groups(make_groups(cells), roles)
    best = dev_best(groups, roles, roles.mixed_set)
    parts = [
        "# RESULTS_grid: the paper's comparisons with seeds\n\n"
        f"{preamble} Train sets: `{roles.full_set}` = fully "
        f"annotated conversations only, `{roles.mixed_set}` = the same conversations + ASR/LID-only read "
        f"speech. {RULE}"
    ]
    parts.append("## Verdicts (one line per paper claim)\n\n" + "\n".join(verdicts(groups, roles)))
    if best:
        parts[-1] += (
            f"\n\nDev-best TokenVerse++ config on `{roles.mixed_set}`: {best.label} (`{best.config}`, "
            f"dev WER {best.stat(roles.dev_set, 'wer').fmt(True)})."
        )
        on_full = sorted({g.config for g in groups if not g.is_baseline and g.train_set == roles.full_set})
        if on_full and best.config not in on_full:
            parts[-1] += (
                f" The TokenVerse++ config trained on `{roles.full_set}` ({', '.join(on_full)}) is not "
                f"the dev-best: rerun `./run_grid.sh --best {best.cells[0].config}` for claims "
                f"(b) and (d)."
            )
    parts.append(
        f"## Table II: all tasks active ({roles.dev_set}, {roles.test_set}, {roles.partial_test_set})\n\n"
        "WER in %, F1 and accuracy in %, '-' = not annotated or not decoded. The baseline has no task "
        "vectors: it is decoded once with every task token allowed (what it learned to emit).\n\n"
        + table_main(groups, roles)
    )
    parts.append("## Table III: WER per language (all tasks active)\n\n" + table_languages(groups, roles))
    parts.append(
        f"## Table IV: task activation at inference ({roles.test_set})\n\n"
        "ITT = tokens of inactive tasks in the hypotheses (0 under constrained decoding).\n\n"
        + table_activations(groups, roles)
    )
    parts.append(
        "## Models (parameters, config, commands, decoded checkpoint, date/commit)\n\n"
        + (models_md if models_md is not None else table_models(groups, model_file, known_info))
    )
    if pending:
        parts.append("## Cells not scored yet\n\n" + "\n".join(f"- `{p}`" for p in pending))
    parts += [p.rstrip("\n") for p in append]
    return "\n\n".join(parts) + "\n"


def write_grid_report(
    exp_dir: PathLike,
    out: PathLike,
    roles: Roles,
    model_file: str = "valid.loss.best.pth",
    append: Sequence[PathLike] = (),
    save_info: bool = False,
) -> str:
    """``save_info``: first write each scored cell's model_info.json from its weights (where they are)."""
    texts = []
    for p in append:
        if not Path(p).is_file():
            raise DataError(f"{p}: no such file (given with --append)")
        texts.append(Path(p).read_text(encoding="utf-8"))
    cells, pending = find_cells(exp_dir)
    saved: Dict[Path, Optional[dict]] = {}
    if save_info:
        for c in cells:
            saved[c.path] = save_model_info(c.path, model_file)  # each checkpoint read once
    report = build_report(cells, roles, pending, model_file, texts, saved)
    atomic_write_text(out, report)
    return report
