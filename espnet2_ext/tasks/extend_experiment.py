"""Extend a trained experiment by new task(s) / language(s): ``asr/extend.py``'s surgery applied to an
experiment dir, its ``config.yaml`` or a packed model, written as a new experiment dir that ESPnet's ``asr_train``
(``--init_param``) trains and ``asr_inference`` decodes. Here, not in ``asr/``, because it builds the model with
the task (``TokenVerseASRTask.build_model``) and layers only point down.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import yaml

from espnet2_ext.asr.extend import MODEL_FILE, Growth, check_tag_aware, grow_spec, grow_state_dict, grow_token_list
from espnet2_ext.common import WORD_BOUNDARY, DataError, PathLike, atomic_dir
from espnet2_ext.layers.task_vectors import new_vector_rows
from espnet2_ext.task_spec import task_spec_of, tokenverse_conf_of
from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask

log = logging.getLogger(__name__)


# ---- experiment dirs ------------------------------------------------------------------------------------
def _resolve_source(src: PathLike, model_file: Optional[PathLike], work: Path) -> Tuple[Path, Path, Dict]:
    """(config.yaml, model file, extra files by key) of an experiment dir, a config.yaml, or a packed zip."""
    src = Path(src)
    if src.is_file() and src.suffix in (".zip", ".tgz", ".gz", ".tar"):
        from espnet2_ext.utils.safe_archive import safe_unpack

        files = safe_unpack(src, work / "unpacked", use_cache=False)
        if "asr_train_config" not in files or "asr_model_file" not in files:
            raise DataError(f"{src}: not a packed ASR model (no asr_train_config/asr_model_file in its meta.yaml)")
        return Path(files["asr_train_config"]), Path(files["asr_model_file"]), files
    config = src / "config.yaml" if src.is_dir() else src
    if not config.is_file():
        raise DataError(f"{src}: no config.yaml: give a trained experiment dir, its config.yaml or a packed model zip")
    if model_file is None:
        base = config.parent
        for name in ("valid.loss.best.pth", "valid.acc.best.pth", "valid.loss.ave.pth"):
            if (base / name).is_file():
                model_file = base / name
                break
        else:
            raise DataError(f"{base}: no valid.loss.best.pth: name the weights with --model_file")
    model_file = Path(model_file)
    if not model_file.is_file():
        raise DataError(f"{model_file}: no such model file")
    return config, model_file, {}


def _base_config(config_path: Path, allow_network: Optional[bool]) -> Dict:
    """The base experiment's training config, checked (issue 33: no code, files, network from it) and required to
    be a TokenVerse++ one (task vectors to grow)."""
    from espnet2_ext.utils.config_guard import check_config_file

    config = check_config_file(config_path, allow_network)
    if not isinstance(config, dict) or not config.get("token_list"):
        raise DataError(f"{config_path}: not an ESPnet training config.yaml (no token_list)")
    if config.get("frontend") != "s3prl_tokenverse":
        raise DataError(
            f"{config_path}: frontend '{config.get('frontend')}' has no task vectors; extend_model "
            f"grows TokenVerse++ models (frontend: s3prl_tokenverse)"
        )
    return config


def _grow_tokens(
    config: Dict, config_path: Path, new_tasks: Mapping[str, Sequence[str]], new_languages: Sequence[str], tmp: Path
) -> Tuple[Growth, List[str]]:
    """The old -> new token layout and the added pieces; a BPE tokenizer gets the new tags as atomic symbols
    (written to ``tmp/bpe.model``)."""
    old_spec = task_spec_of(argparse.Namespace(**config))
    token_list = config["token_list"]
    if isinstance(token_list, str):
        token_list = [ln.strip() for ln in Path(token_list).read_text(encoding="utf-8").splitlines() if ln.strip()]
    token_type = config.get("token_type", "bpe")
    check_tag_aware(token_type, token_list, old_spec, config.get("bpemodel"), str(config_path))

    new_spec = grow_spec(old_spec, new_tasks, new_languages)
    added = [t for t in new_spec.all_tokens if not old_spec.is_task_token(t)]
    if token_type == "bpe":
        from espnet2_ext.text.tag_aware_bpe import append_tag_symbols

        added_pieces = [WORD_BOUNDARY + t for t in added]
        (tmp / "bpe.model").write_bytes(append_tag_symbols(config["bpemodel"], added))
    else:
        added_pieces = list(added)
    return Growth(list(token_list), grow_token_list(token_list, added_pieces), old_spec, new_spec, added), added_pieces


def _extend_config(
    config: Dict,
    growth: Growth,
    new_tasks: Mapping[str, Sequence[str]],
    new_languages: Sequence[str],
    out_dir: Path,
    freeze_old: bool,
    also_train: Sequence[str],
) -> Tuple[Dict, str]:
    """The training config of the extended experiment (tasks, languages, tokens, init_param, freeze_old; no data
    of the base model), changed in place; returns it and the task-vector strategy."""
    new_spec = growth.new_spec
    strategy = (config.get("frontend_conf") or {}).get("task_vector_strategy", "per_task")
    conf = tokenverse_conf_of(argparse.Namespace(**config))
    extra = dict(conf.get("extra_tokens") or {})
    extra.update({t: list(toks) for t, toks in new_tasks.items()})
    config["tokenverse_conf"] = {
        **(config.get("tokenverse_conf") or {}),
        "tasks": list(new_spec.tasks),
        "languages": list(conf["languages"]) + list(new_languages),
        "extra_tokens": extra or None,
    }
    pconf = dict(config.get("preprocessor_conf") or {})
    for key in ("tasks", "languages", "extra_tokens"):  # explicit values there win over tokenverse_conf
        if key in pconf:
            pconf[key] = config["tokenverse_conf"][key]
    config["preprocessor_conf"] = pconf
    config["frontend_conf"] = {**config["frontend_conf"], "aux_tasks": list(new_spec.aux_tasks)}
    config["token_list"] = growth.new_tokens
    if config.get("token_type", "bpe") == "bpe":
        config["bpemodel"] = str(out_dir / "bpe.model")
    config["init_param"] = [str(out_dir / MODEL_FILE)]
    config["output_dir"] = None
    for key in ("config", "required", "version", "distributed"):  # written by ESPnet, not training options
        config.pop(key, None)
    for key in (
        "train_data_path_and_name_and_type",
        "valid_data_path_and_name_and_type",
        "train_shape_file",
        "valid_shape_file",
    ):
        config[key] = []  # the base model's data: the new training names its own
    model_conf = dict(config.get("model_conf") or {})
    model_conf.pop("freeze_old", None)
    if freeze_old:
        model_conf["freeze_old"] = {
            "new_token_ids": growth.new_token_ids,
            "new_vector_rows": new_vector_rows(strategy, growth.n_old_aux, growth.n_new_aux),
            "also_train": list(also_train),
        }
    config["model_conf"] = model_conf
    if freeze_old and float((config.get("optim_conf") or {}).get("weight_decay", 0) or 0) > 0:
        log.warning(
            "optim_conf.weight_decay > 0: the optimizer decays the old rows too (their gradient is zero, "
            "the decay is not); set weight_decay: 0 in %s to keep them exactly",
            out_dir / "config.yaml",
        )
    return config, strategy


def _grow_weights(
    config: Dict, weights: Path, growth: Growth, strategy: str, tmp: Path, row_init: str, vector_init: str, seed: int
) -> None:
    """``tmp/extended.pth``: the extended model's own layout, filled from the base model's weights. Sets
    ``config["frontend_conf"]`` to the built one (with upstream_skeleton, if building added it)."""
    from espnet2_ext.utils.safe_load import load_model_file, weights_only_loading

    model_conf = config["model_conf"]
    build_conf = dict(config, model_conf={k: v for k, v in model_conf.items() if k != "freeze_old"})
    if config.get("token_type", "bpe") == "bpe":
        build_conf["bpemodel"] = str(tmp / "bpe.model")
    with weights_only_loading():  # S3PRL torch.loads a path_or_url checkpoint
        model = TokenVerseASRTask.build_model(argparse.Namespace(**build_conf))
    old_state = load_model_file(str(weights), map_location="cpu")
    state = grow_state_dict(old_state, model.state_dict(), growth, strategy, row_init, vector_init, seed)
    model.load_state_dict(state, strict=True)  # checks every key and shape
    torch.save(state, tmp / MODEL_FILE)
    config["frontend_conf"] = build_conf["frontend_conf"]


def _write_record(tmp: Path, record: Mapping[str, object]) -> None:
    """``extend.json``: one key a line, lists on one line."""
    (tmp / "extend.json").write_text(
        "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items()) + "\n}\n",
        encoding="utf-8",
    )


def extend_experiment(
    src: PathLike,
    out_dir: PathLike,
    new_tasks: Optional[Mapping[str, Sequence[str]]] = None,
    new_languages: Sequence[str] = (),
    model_file: Optional[PathLike] = None,
    freeze_old: bool = False,
    also_train: Sequence[str] = (),
    row_init: str = "mean",
    vector_init: str = "mean",
    seed: int = 0,
    overwrite: bool = False,
    allow_network: Optional[bool] = None,
) -> Path:
    """Write the extended experiment dir (config.yaml, extended.pth, tokens.txt, [bpe.model], extend.json) and
    return it. The dir appears only when complete. ``allow_network``: the base config may name upstreams that
    download (``utils/config_guard.py``; None: ``TOKENVERSE_ALLOW_NETWORK_UPSTREAM``)."""
    new_tasks = dict(new_tasks or {})
    new_languages = [lang.strip().lower() for lang in new_languages if lang.strip()]
    if not new_tasks and not new_languages:
        raise DataError("nothing to add: give --add_task NAME=TOKEN and/or --add_language CODE")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise DataError(f"{out_dir} exists; choose a new --out_dir (or --overwrite true)")
    with atomic_dir(out_dir) as tmp:
        config_path, weights, files = _resolve_source(src, model_file, tmp)
        config = _base_config(config_path, allow_network)
        growth, added_pieces = _grow_tokens(config, config_path, new_tasks, new_languages, tmp)
        config, strategy = _extend_config(config, growth, new_tasks, new_languages, out_dir, freeze_old, also_train)
        _grow_weights(config, weights, growth, strategy, tmp, row_init, vector_init, seed)

        (tmp / "tokens.txt").write_text("".join(t + "\n" for t in growth.new_tokens), encoding="utf-8")
        _write_record(
            tmp,
            {
                "base": str(src),
                "base_model_file": str(weights) if files == {} else "(packed)",
                "added_tasks": {t: list(v) for t, v in new_tasks.items()},
                "added_languages": new_languages,
                "added_tokens": added_pieces,
                "new_token_ids": growth.new_token_ids,
                "old_to_new_token_ids": growth.old_to_new,
                "task_vector_strategy": strategy,
                "new_task_vector_rows": new_vector_rows(strategy, growth.n_old_aux, growth.n_new_aux),
                "tasks": list(growth.new_spec.tasks),
                "row_init": row_init,
                "vector_init": vector_init,
                "seed": seed,
                "freeze_old": bool(freeze_old),
            },
        )
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
        shutil.rmtree(tmp / "unpacked", ignore_errors=True)
    log.info("extended model: %s (tasks %s)", out_dir, " ".join(growth.new_spec.tasks))
    return out_dir
