"""Result records: one small JSON file per model, ``<recipe>/results/<model>.json``, from which every RESULTS table
of a recipe is generated (``results_tables``). Logs, decodes and weights stay in ``exp*/`` (not tracked).

Schema (``"schema": "espnet2_ext.results/1"``; ``null`` where unknown):

* ``model`` (str): the model's tag (``--asr_tag``); the file name is ``<model>.json``.
* ``kind`` (str): which RESULTS file shows it: ``run`` (``./run.sh`` and its seeds: RESULTS.md), ``grid``
  (``run_grid.sh``: RESULTS_grid.md), ``extend`` (``run_extend.sh``: RESULTS_extend.md).
* ``group``, ``label`` (str, optional): the comparison a model belongs to (e.g. ``before``, a replay setting) and
  its column name in that comparison's table.
* ``source`` (str): where the numbers were read from (an exp dir, or a committed table when the raw score files are
  not in git).
* ``commit``, ``date`` (str): the espnet2_ext commit and the day the model was decoded and scored.
* ``config``: ``{"path": the training config given to the recipe, "sha256": of that file at ``commit`` (null when
  unknown), "inline": its text when the file is no longer in the recipe's ``conf/`` (else null)}``.
* ``train_set`` (str), ``seed`` (int), ``strategy`` / ``injection`` (str: the task-vector strategy and where it is
  added; ``none`` / ``-`` for the TokenVerse baseline).
* ``commands``: ``{"train": str, "decode": str}``, the exact commands (recipe-level where known).
* ``parameters`` (int): parameter count of the decoded checkpoint (a string such as ``"1.41 M"``, ESPnet's
  train.log summary, where the weights are gone).
* ``checkpoint``: ``{"model_file": the file given to decoding (e.g. valid.loss.ave.pth), "decoded": what it
  resolved to (e.g. 13epoch.pth)}``.
* ``scores``: ``{test set: {activation tag (asr+scd+...): {metric: value}}}``; metrics as ``tokenverse_score``
  writes them (``wer``, ``scd_f1``, ``endp_f1``, ``ner_f1``, ``lid_acc``, ``itt``, any added ``<task>_f1``), plus
  ``per_language`` ({lang: {metric: value}}) and ``time`` (the flat columns of ``time_metrics.TIME_COLUMNS``) at the
  model's largest activation (what Tables III and V show). Values are in % (ITT: a count), unrounded.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

from espnet2_ext.activation import activation_tag
from espnet2_ext.common import DataError, atomic_write_text

PathLike = Union[str, Path]
SCHEMA = "espnet2_ext.results/1"
KINDS = ("run", "grid", "extend")
METRIC_KEYS = ("wer", "scd_f1", "endp_f1", "ner_f1", "lid_acc", "itt")
_STR_OR_NULL = ("source", "commit", "date", "train_set", "strategy", "injection", "group", "label")


@dataclass(frozen=True)
class Record:
    path: Path
    data: Mapping

    def __getattr__(self, name: str):
        if name in ("path", "data"):
            raise AttributeError(name)
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None


def _fail(path: Path, field: str, what: str) -> DataError:
    return DataError(f"{path}: field '{field}' {what}; fix the record (schema: espnet2_ext/reporting/records.py)")


def _check_number_map(path: Path, field: str, values: object) -> None:
    if not isinstance(values, dict):
        raise _fail(path, field, "must be an object of metric -> number")
    for k, v in values.items():
        if k in ("per_language", "time"):
            if not isinstance(v, dict):
                raise _fail(path, f"{field}.{k}", "must be an object")
            for sub, subv in v.items():
                if k == "per_language":
                    _check_number_map(path, f"{field}.{k}.{sub}", subv)
                elif subv is not None and not isinstance(subv, (int, float)):
                    raise _fail(path, f"{field}.{k}.{sub}", f"must be a number or null, not {subv!r}")
        elif v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise _fail(path, f"{field}.{k}", f"must be a number or null, not {v!r}")


def validate(data: object, path: Path) -> Mapping:
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object (a result record; schema: espnet2_ext/reporting/records.py)")
    if data.get("schema") != SCHEMA:
        raise _fail(path, "schema", f"must be {SCHEMA!r}, not {data.get('schema')!r}")
    if not isinstance(data.get("model"), str) or not data["model"]:
        raise _fail(path, "model", "must be the model's tag (a non-empty string)")
    if path.suffix == ".json" and path.stem != data["model"]:
        raise _fail(path, "model", f"is {data['model']!r} but the file is {path.name}: name it {data['model']}.json")
    if data.get("kind") not in KINDS:
        raise _fail(path, "kind", f"must be one of {', '.join(KINDS)}, not {data.get('kind')!r}")
    for key in _STR_OR_NULL:
        if data.get(key) is not None and not isinstance(data[key], str):
            raise _fail(path, key, "must be a string or null")
    if data.get("seed") is not None and not isinstance(data["seed"], int):
        raise _fail(path, "seed", "must be an integer or null")
    params = data.get("parameters")
    if params is not None and (isinstance(params, bool) or not isinstance(params, (int, str))):
        raise _fail(path, "parameters", "must be an integer, a summary string such as '1.41 M', or null")
    for key, inner in (("config", ("path", "sha256", "inline")), ("commands", ("train", "decode"))):
        block = data.get(key)
        if not isinstance(block, dict):
            raise _fail(path, key, f"must be an object with {', '.join(inner)}")
        for k in inner:
            if block.get(k) is not None and not isinstance(block[k], str):
                raise _fail(path, f"{key}.{k}", "must be a string or null")
    ck = data.get("checkpoint")
    if not isinstance(ck, dict) or not isinstance(ck.get("model_file"), str):
        raise _fail(path, "checkpoint", 'must be {"model_file": str, "decoded": str or null}')
    scores = data.get("scores")
    if not isinstance(scores, dict) or not scores:
        raise _fail(path, "scores", "must map test set -> activation tag -> metrics (at least one)")
    for test_set, acts in scores.items():
        if not isinstance(acts, dict) or not acts:
            raise _fail(path, f"scores.{test_set}", "must map activation tag -> metrics")
        for act, values in acts.items():
            if act != activation_tag(act.split("+")):
                raise _fail(
                    path, f"scores.{test_set}.{act}", f"is not a canonical tag (use {activation_tag(act.split('+'))})"
                )
            _check_number_map(path, f"scores.{test_set}.{act}", values)
    return data


def load_record(path: PathLike) -> Record:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}); fix or rewrite the record") from None
    return Record(path, validate(data, path))


def load_records(results_dir: PathLike, kind: Optional[str] = None) -> List[Record]:
    """Every ``*.json`` record directly in ``results_dir`` (sub-folders hold other evaluations), sorted by model."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(f"{results_dir}: no such directory; records live in <recipe>/results/")
    records = [load_record(p) for p in sorted(results_dir.glob("*.json"))]
    return [r for r in records if kind is None or r.kind == kind]


def dump_record(data: Mapping, results_dir: PathLike) -> Path:
    path = Path(results_dir) / f"{data['model']}.json"
    validate(dict(data), path)
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path


# ---- making a record from an exp dir -------------------------------------------------------------------------
_PYTHON_TRAIN = re.compile(r"^\S*python3?\S* \S*espnet2_ext/bin/(\w+)\.py ")


def train_command(train_log: Path) -> Optional[str]:
    """The training command from ESPnet's train.log (its first command line), with the machine's paths cut off."""
    if not train_log.is_file():
        return None
    with train_log.open(encoding="utf-8", errors="replace") as f:
        for _, line in zip(range(20), f):
            m = _PYTHON_TRAIN.match(line)
            if m:
                return f"python -m espnet2_ext.bin.{m.group(1)} " + line[m.end() :].strip()
    return None


def logged_parameters(train_log: Path) -> Optional[str]:
    """ESPnet's rounded parameter count from train.log ('1.41 M'), for a model whose weights are gone."""
    if train_log.is_file():
        m = re.search(r"Total Number of model parameters: ([\d.]+ ?[KMG]?)", train_log.read_text(errors="replace"))
        if m:
            return m.group(1)
    return None


def scores_of(score: Mapping) -> Dict[str, object]:
    """The part of a ``tokenverse_score`` score.json that the tables show."""
    from espnet2_ext.scoring.time_metrics import flat_time_scores

    out: Dict[str, object] = {k: score.get(k) for k in METRIC_KEYS if k in score}
    out.update({k: v for k, v in score.items() if k.endswith("_f1") and k not in out})
    per_lang = score.get("per_language")
    if isinstance(per_lang, dict):
        out["per_language"] = {
            lang: {k: v for k, v in (vals or {}).items() if k != "n_utts" and not isinstance(v, dict)}
            for lang, vals in sorted(per_lang.items())
        }
    if isinstance(score.get("time"), dict):
        out["time"] = flat_time_scores(score["time"])
    return out


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_file(commit: str, path: str, cwd: PathLike) -> Optional[bytes]:
    """The bytes of ``path`` (relative to ``cwd``) at ``commit``; None when git or the file at that commit is absent."""
    try:
        out = subprocess.run(
            ["git", "show", f"{commit}:./{path}"], cwd=str(cwd), capture_output=True, check=False, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def config_entry(config: str, recipe: PathLike, commit: Optional[str] = None) -> Dict[str, Optional[str]]:
    """``config`` block: path + sha256 of the file (at ``commit`` when given and git has it, else as it is now);
    the text inline when the file is no longer in the recipe."""
    recipe = Path(recipe)
    now = recipe / config
    at_commit = git_file(commit, config, recipe) if commit else None
    if now.is_file():
        data = at_commit if at_commit is not None else now.read_bytes()
        return {"path": config, "sha256": hashlib.sha256(data).hexdigest(), "inline": None}
    if at_commit is not None:
        return {"path": config, "sha256": hashlib.sha256(at_commit).hexdigest(), "inline": at_commit.decode("utf-8")}
    return {"path": config, "sha256": None, "inline": None}


def collect_scores(exp: Path, test_sets: Sequence[str] = ()) -> Dict[str, Dict[str, dict]]:
    from espnet2_ext.reporting.report import load_score

    scores: Dict[str, Dict[str, dict]] = {}
    for path in sorted(exp.glob("decode_*/*/score.json")):
        e = load_score(path)
        if test_sets and e.test_set not in test_sets:
            continue
        scores.setdefault(e.test_set, {})[activation_tag(e.activation)] = scores_of(e.scores)
    return slim({t: dict(sorted(a.items(), key=lambda kv: _act_key(kv[0]))) for t, a in sorted(scores.items())})


def slim(scores: Dict[str, Dict[str, dict]]) -> Dict[str, Dict[str, dict]]:
    """``per_language`` and ``time`` only at the model's largest activation, the one Tables III and V show."""
    acts = {a for per_set in scores.values() for a in per_set}
    if not acts:
        return scores
    most = max(len(a.split("+")) for a in acts)
    top = min((a for a in acts if len(a.split("+")) == most), key=_act_key)
    return {
        t: {
            a: (v if a == top else {k: x for k, x in v.items() if k not in ("per_language", "time")})
            for a, v in per_set.items()
        }
        for t, per_set in scores.items()
    }


def _act_key(tag: str) -> tuple:
    from espnet2_ext.activation import task_rank

    tasks = tag.split("+")
    return (len(tasks), [task_rank(t) for t in tasks], tag)


def record_from_exp(
    exp: PathLike,
    kind: str,
    recipe: PathLike = ".",
    model: Optional[str] = None,
    model_file: str = "valid.loss.ave.pth",
    commit: Optional[str] = None,
    date: Optional[str] = None,
    commands: Optional[Mapping[str, Optional[str]]] = None,
    test_sets: Sequence[str] = (),
    source: Optional[str] = None,
    decode_root: Optional[PathLike] = None,
) -> Dict[str, object]:
    """A record from an exp dir ``<exp>/asr_<tag>``: its config.yaml, decode_*/<set>/score.json, the decoded
    checkpoint (or the model_info.json kept in its place), train.log (the training command) or a grid cell's
    grid_cmd.txt (its commands, date and commit); ``decode_root``:
    where the decode dirs are when not in the exp dir (tokenverse.sh --decode_root)."""
    from espnet2_ext.reporting.grid_cells import cell_commands, load_cell, model_info

    exp = Path(exp)
    if not (exp / "config.yaml").is_file():
        raise DataError(f"{exp}: no config.yaml; give the exp dir of a trained model (<expdir>/asr_<tag>)")
    cell = load_cell(exp)
    decodes = Path(decode_root) if decode_root else exp
    scores = collect_scores(decodes, test_sets)
    if not scores:
        raise DataError(f"{decodes}: no decode_*/<test set>/score.json; run the scoring stage (7) first")
    info = model_info(exp, model_file) or {"parameters": logged_parameters(exp / "train.log")}
    cmds = {"train": train_command(exp / "train.log"), "decode": None}
    logged = cell_commands(exp)
    cmds.update({stage: cmd for stage, (_, _, cmd) in logged.items() if stage in cmds})
    cmds.update({k: v for k, v in (commands or {}).items() if v})
    if "decode" in logged:  # a grid cell: decoded and scored at the date and commit its decode line names
        date = date or logged["decode"][0][:10]
        commit = commit or logged["decode"][1]
    tag = model or (exp.name[len("asr_") :] if exp.name.startswith("asr_") else exp.name)
    return {
        "schema": SCHEMA,
        "model": tag,
        "kind": kind,
        "source": source or f"{exp} (config.yaml, train.log), {decodes}/decode_*/*/score.json",
        "commit": commit,
        "date": date,
        "config": config_entry(cell.config, recipe, commit),
        "train_set": cell.train_set,
        "seed": cell.seed,
        "strategy": cell.strategy,
        "injection": cell.injection,
        "commands": cmds,
        "parameters": info.get("parameters"),
        "checkpoint": {"model_file": model_file, "decoded": info.get("decoded")},
        "scores": scores,
    }


def environment() -> Dict[str, str]:
    """Versions of what produced a record (ESPnet's README environment block)."""
    import platform
    from importlib import metadata

    env = {"python": platform.python_version()}
    for dist in ("torch", "espnet"):
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return env
