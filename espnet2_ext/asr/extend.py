"""Grow a trained TokenVerse++ model by new auxiliary task(s) and/or language(s) without losing the old ones.

``extend_experiment(src, out_dir, new_tasks={"qst": ["[Q]"]}, new_languages=["it"])`` reads a trained experiment
(``config.yaml`` + model file, or a packed ``model.zip``) and writes a new experiment dir:

* the token list keeps every old id; the new task/language tokens go in before ``<sos/eos>`` (ESPnet keeps it
  last), so only ``<sos/eos>`` moves. A sentencepiece model gets the tokens appended as ``USER_DEFINED`` pieces
  with the word boundary (``▁[Q]``), like ``train_tokenizer`` makes them: old text encodes to the same pieces;
* every vocabulary-sized tensor (decoder embedding, joint output layer, CTC, pruned-loss projections) keeps its
  old rows (moved with their token) and gets new rows (the mean of the rows of the same task's old tokens, or of
  all old task tokens for a new task);
* task-vector tables: ``per_task`` gets one row per new task (default: the mean of the old auxiliary rows);
  ``per_combination`` goes from 2^K to 2^(K+n): new tasks take the highest bits, so row r < 2^K is the old row r
  and row r >= 2^K starts as its K-task counterpart ``r mod 2^K``;
* ``tokenverse_conf`` (tasks, languages, extra_tokens), ``frontend_conf.aux_tasks``, ``token_list``,
  ``bpemodel`` and ``init_param`` are rewritten; ``model_conf.freeze_old`` (see ``freeze_old_rows``) makes
  training update only what is new.

With the new tasks inactive and constrained decoding, the extended model decodes exactly like the base model
(their tokens are suppressed and every old row is unchanged).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import yaml

from espnet2_ext.data.utt2tasks import DataError
from espnet2_ext.layers.task_vectors import VECTOR_INITS, grow_task_vectors, new_vector_rows
from espnet2_ext.task_spec import PRIMARY_TASK, TaskSpec, language_token

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
WORD_BOUNDARY = "\u2581"
SOS_EOS = "<sos/eos>"
MODEL_FILE = "extended.pth"
# Parameters with one row per token (module path inside TokenVerseASRModel).
VOCAB_PARAMS = ("decoder.embed.weight", "joint_network.lin_out.weight", "joint_network.lin_out.bias",
                "ctc.ctc_lo.weight", "ctc.ctc_lo.bias",
                "criterion_transducer.simple_am_proj.weight", "criterion_transducer.simple_am_proj.bias",
                "criterion_transducer.simple_lm_proj.weight", "criterion_transducer.simple_lm_proj.bias")
ROW_INITS = ("mean", "random")


# ---- what is added -------------------------------------------------------------------------------------
@dataclass
class Growth:
    """The old -> new layout: token ids and task-vector rows."""

    old_tokens: List[str]
    new_tokens: List[str]
    old_spec: TaskSpec
    new_spec: TaskSpec
    added_tokens: List[str] = field(default_factory=list)

    @property
    def old_to_new(self) -> List[int]:
        """new id of every old token id"""
        index = {t: i for i, t in enumerate(self.new_tokens)}
        return [index[t] for t in self.old_tokens]

    @property
    def new_token_ids(self) -> List[int]:
        old = set(self.old_tokens)
        return [i for i, t in enumerate(self.new_tokens) if t not in old]

    @property
    def n_old_aux(self) -> int:
        return len(self.old_spec.aux_tasks)

    @property
    def n_new_aux(self) -> int:
        return len(self.new_spec.aux_tasks)


def parse_task_arg(value: str) -> Tuple[str, Tuple[str, ...]]:
    """``qst=[Q]`` or ``tone=[HAPPY],[SAD]`` -> (name, tokens)."""
    name, sep, toks = value.partition("=")
    tokens = tuple(t.strip() for t in toks.replace(",", " ").split())
    if not sep or not name.strip() or not tokens:
        raise DataError(f"--add_task '{value}': give NAME=TOKEN[,TOKEN...], e.g. --add_task 'qst=[Q]'")
    return name.strip(), tokens


def grow_spec(spec: TaskSpec, new_tasks: Mapping[str, Sequence[str]], new_languages: Sequence[str]) -> TaskSpec:
    """The old spec with new tasks appended (in the given order) and new languages appended to ``lid``.

    Raises ``DataError`` for a task that exists, a token that is already a task/language token, a malformed
    token, and a language for a model without ``lid``."""
    aux = {t: tuple(toks) for t, toks in spec.aux_tokens.items()}
    for lang in new_languages:
        tok = language_token(lang)
        if "lid" not in aux:
            raise DataError(f"cannot add language '{lang}': the model has no 'lid' task (its tasks: "
                            f"{', '.join(spec.tasks)}); add lid as a task first")
        if lang.lower() in spec.languages:
            raise DataError(f"language '{lang}' already exists in the model (languages: {', '.join(spec.languages)})")
        owner = spec.task_of(tok)
        if owner is not None:
            raise DataError(f"language '{lang}' would use the token {tok}, which is already a token of task "
                            f"'{owner}': that language cannot be added to this model under this code")
        aux["lid"] = aux["lid"] + (tok,)
    for name, tokens in new_tasks.items():
        if name == PRIMARY_TASK or name in aux:
            raise DataError(f"task '{name}' already exists in the model (tasks: {', '.join(spec.tasks)}); "
                            f"choose a new name")
        for tok in tokens:
            if not spec.looks_like_tag(tok) or any(c.isspace() for c in tok) or WORD_BOUNDARY in tok:
                raise DataError(f"task '{name}': token '{tok}' is not a tag; task tokens look like [Q] "
                                f"(brackets, no spaces)")
            owner = next((t for t, toks in aux.items() if tok in toks), None)
            if owner == "lid":
                raise DataError(f"task '{name}': token {tok} clashes with the language token of "
                                f"'{tok[1:-1].lower()}' (task lid); choose another token")
            if owner is not None:
                raise DataError(f"task '{name}': token {tok} is already a token of task '{owner}'; choose "
                                f"another token")
        aux[name] = tuple(tokens)
    try:
        return TaskSpec(aux)
    except ValueError as e:  # e.g. the same token twice in the new tasks
        raise DataError(f"new tasks: {e}") from None


def grow_token_list(tokens: Sequence[str], added: Sequence[str]) -> List[str]:
    """Old tokens keep their ids; ``added`` go before a final ``<sos/eos>`` (ESPnet expects it last)."""
    tokens = list(tokens)
    clash = sorted(set(tokens) & set(added))
    if clash:
        raise DataError(f"token(s) {', '.join(clash)} are already in the model's token list (as words); "
                        f"choose other task tokens")
    if tokens and tokens[-1] == SOS_EOS:
        return tokens[:-1] + list(added) + [SOS_EOS]
    return tokens + list(added)


# ---- tokenizer ------------------------------------------------------------------------------------------
def check_tag_aware(token_type: str, token_list: Sequence[str], spec: TaskSpec, bpemodel: Optional[PathLike],
                    where: str) -> None:
    """Every old task token must be one token (``[SCD]`` or ``▁[SCD]``); otherwise new tags could not be atomic
    either and the token list would not describe the model's tags."""
    tokens = set(token_list)
    if token_type == "word":
        missing = []  # whitespace-split: every tag is one token (or <unk> if the data never had it)
    elif token_type == "bpe":
        import sentencepiece as spm

        if not bpemodel or not Path(bpemodel).is_file():
            raise DataError(f"{where}: bpemodel '{bpemodel}' not found: the model's sentencepiece model is needed "
                            f"to extend its tokenizer")
        sp = spm.SentencePieceProcessor(model_file=str(bpemodel))
        missing = [t for t in spec.all_tokens
                   if sp.encode(f"a {t} a", out_type=str)[1:2] not in ([WORD_BOUNDARY + t], [t])
                   or not ({WORD_BOUNDARY + t, t} & tokens)]
    else:
        missing = list(spec.all_tokens)
    if missing:
        raise DataError(f"{where}: the model's tokenizer (token_type {token_type}) is not tag-aware: task token(s) "
                        f"{', '.join(missing[:5])} are not single tokens, so new tags could not be added as atomic "
                        f"symbols; train the base model with a tokenizer from espnet2_ext.bin.train_tokenizer "
                        f"(token_type bpe) or token_type word")


# ---- tensors --------------------------------------------------------------------------------------------
def grow_rows(old: torch.Tensor, growth: Growth, init: str = "mean", seed: int = 0) -> torch.Tensor:
    """A vocabulary-sized tensor (rows = token ids) in the new layout: old rows moved with their token, new rows
    initialised as the mean of the rows of their task's old tokens (``init='mean'``) or N(0, std of old rows)."""
    if init not in ROW_INITS:
        raise ValueError(f"unknown row init '{init}': choose one of {', '.join(ROW_INITS)}")
    new = old.new_zeros((len(growth.new_tokens),) + tuple(old.shape[1:]))  # [V', ...]
    new[torch.tensor(growth.old_to_new)] = old
    gen = torch.Generator().manual_seed(seed)
    tags = [j for j, tok in enumerate(growth.old_tokens) if growth.old_spec.is_task_token(_surface(tok))]
    for i in growth.new_token_ids:
        if init == "random":
            new[i] = torch.randn(old.shape[1:], generator=gen).to(old.dtype) * old.float().std().to(old.dtype)
            continue
        task = growth.new_spec.task_of(_surface(growth.new_tokens[i]))
        same = [j for j, tok in enumerate(growth.old_tokens) if growth.old_spec.task_of(_surface(tok)) == task]
        rows = same or tags or list(range(len(growth.old_tokens)))
        new[i] = old[torch.tensor(rows)].mean(dim=0)
    return new


def _surface(token: str) -> str:
    return token[1:] if token.startswith(WORD_BOUNDARY) else token


def grow_state_dict(old: Mapping[str, torch.Tensor], template: Mapping[str, torch.Tensor], growth: Growth,
                    strategy: str, row_init: str = "mean", vector_init: str = "mean",
                    seed: int = 0) -> Dict[str, torch.Tensor]:
    """The base model's weights in the shapes of ``template`` (the extended model's own state dict)."""
    old = {k: v for k, v in old.items() if not k.startswith("frontend._wav2vec2.")}  # see load_state_dict
    missing = sorted(set(template) - set(old))
    if missing:
        raise DataError(f"the base model file has no {', '.join(missing[:5])}: it does not match its config.yaml")
    out: Dict[str, torch.Tensor] = {}
    for i, (key, ref) in enumerate(template.items()):
        value = old[key]
        if key in VOCAB_PARAMS:
            value = grow_rows(value, growth, row_init, seed + i)
        elif "task_vectors" in key:
            value = grow_task_vectors(value, strategy, growth.n_old_aux, growth.n_new_aux, vector_init, seed + i)
        if value.shape != ref.shape:
            raise RuntimeError(f"{key}: base model has {tuple(old[key].shape)}, the extended model needs "
                               f"{tuple(ref.shape)}; this parameter is not one extend_model knows how to grow")
        out[key] = value.to(ref.dtype)
    return out


# ---- training only what is new -------------------------------------------------------------------------
def freeze_old_rows(model: torch.nn.Module, conf: Mapping) -> List[str]:
    """``model_conf.freeze_old``: train only the new token rows and task-vector rows (+ ``also_train`` modules).

    Whole tensors are shared between old and new rows, so those tensors keep ``requires_grad`` and a gradient
    hook zeroes the old rows' gradient (with Adam/SGD without weight decay the old rows then never move); every
    other parameter is frozen unless its name starts with an ``also_train`` prefix (e.g. ``joint_network``,
    ``decoder``). Returns the names of the row-masked parameters.
    """
    unknown = set(conf) - {"new_token_ids", "new_vector_rows", "also_train"}
    if unknown:
        raise ValueError(f"model_conf.freeze_old: unknown key(s) {sorted(unknown)}; valid: new_token_ids, "
                         f"new_vector_rows, also_train")
    token_rows = [int(i) for i in conf.get("new_token_ids") or []]
    vector_rows = [int(i) for i in conf.get("new_vector_rows") or []]
    also = tuple(conf.get("also_train") or ())
    masked = []
    for name, param in model.named_parameters():
        if also and name.startswith(also):
            continue
        rows = token_rows if name in VOCAB_PARAMS else vector_rows if "task_vectors" in name else None
        if rows is None or not rows:
            param.requires_grad_(False)
            continue
        keep = torch.zeros(param.size(0), dtype=torch.bool)
        if max(rows) >= param.size(0):
            raise ValueError(f"model_conf.freeze_old: row {max(rows)} does not exist in {name} "
                             f"{tuple(param.shape)}: the config does not belong to this model")
        keep[rows] = True
        shape = (-1,) + (1,) * (param.dim() - 1)
        # Called on every backward: the mask is a constant of the parameter, not per-batch state.
        param.register_hook(lambda g, keep=keep.view(shape): g * keep.to(g.device, g.dtype))
        masked.append(name)
    return masked


# ---- experiment dirs ------------------------------------------------------------------------------------
def _resolve_source(src: PathLike, model_file: Optional[PathLike], work: Path) -> Tuple[Path, Path, Dict]:
    """(config.yaml, model file, extra files by key) of an experiment dir, a config.yaml, or a packed zip."""
    src = Path(src)
    if src.is_file() and src.suffix in (".zip", ".tgz", ".gz", ".tar"):
        from espnet2_ext.utils.safe_load import safe_unpack

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


def extend_experiment(src: PathLike, out_dir: PathLike, new_tasks: Optional[Mapping[str, Sequence[str]]] = None,
                      new_languages: Sequence[str] = (), model_file: Optional[PathLike] = None,
                      freeze_old: bool = False, also_train: Sequence[str] = (), row_init: str = "mean",
                      vector_init: str = "mean", seed: int = 0, overwrite: bool = False) -> Path:
    """Write the extended experiment dir (config.yaml, extended.pth, tokens.txt, [bpe.model], extend.json) and
    return it. The dir appears only when complete."""
    from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask, task_spec_of, tokenverse_conf_of
    from espnet2_ext.utils.safe_load import load_model_file

    new_tasks = dict(new_tasks or {})
    new_languages = [lang.strip().lower() for lang in new_languages if lang.strip()]
    if not new_tasks and not new_languages:
        raise DataError("nothing to add: give --add_task NAME=TOKEN and/or --add_language CODE")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise DataError(f"{out_dir} exists; choose a new --out_dir (or --overwrite true)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp_", dir=out_dir.parent))
    try:
        config_path, weights, files = _resolve_source(src, model_file, tmp)
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        if not isinstance(config, dict) or not config.get("token_list"):
            raise DataError(f"{config_path}: not an ESPnet training config.yaml (no token_list)")
        if config.get("frontend") != "s3prl_tokenverse":
            raise DataError(f"{config_path}: frontend '{config.get('frontend')}' has no task vectors; extend_model "
                            f"grows TokenVerse++ models (frontend: s3prl_tokenverse)")
        args = argparse.Namespace(**config)
        old_spec = task_spec_of(args)
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
        growth = Growth(list(token_list), grow_token_list(token_list, added_pieces), old_spec, new_spec, added)

        # ---- config
        strategy = (config.get("frontend_conf") or {}).get("task_vector_strategy", "per_task")
        conf = tokenverse_conf_of(args)
        extra = dict(conf.get("extra_tokens") or {})
        extra.update({t: list(toks) for t, toks in new_tasks.items()})
        config["tokenverse_conf"] = {**(config.get("tokenverse_conf") or {}), "tasks": list(new_spec.tasks),
                                     "languages": list(conf["languages"]) + new_languages,
                                     "extra_tokens": extra or None}
        pconf = dict(config.get("preprocessor_conf") or {})
        for key in ("tasks", "languages", "extra_tokens"):  # explicit values there win over tokenverse_conf
            if key in pconf:
                pconf[key] = config["tokenverse_conf"][key]
        config["preprocessor_conf"] = pconf
        config["frontend_conf"] = {**config["frontend_conf"], "aux_tasks": list(new_spec.aux_tasks)}
        config["token_list"] = growth.new_tokens
        if token_type == "bpe":
            config["bpemodel"] = str(out_dir / "bpe.model")
        config["init_param"] = [str(out_dir / MODEL_FILE)]
        config["output_dir"] = None
        for key in ("config", "required", "version", "distributed"):  # written by ESPnet, not training options
            config.pop(key, None)
        for key in ("train_data_path_and_name_and_type", "valid_data_path_and_name_and_type",
                    "train_shape_file", "valid_shape_file"):
            config[key] = []  # the base model's data: the new training names its own
        model_conf = dict(config.get("model_conf") or {})
        model_conf.pop("freeze_old", None)
        if freeze_old:
            model_conf["freeze_old"] = {
                "new_token_ids": growth.new_token_ids,
                "new_vector_rows": new_vector_rows(strategy, growth.n_old_aux, growth.n_new_aux),
                "also_train": list(also_train)}
        config["model_conf"] = model_conf
        if freeze_old and float((config.get("optim_conf") or {}).get("weight_decay", 0) or 0) > 0:
            log.warning("optim_conf.weight_decay > 0: the optimizer decays the old rows too (their gradient is zero, "
                        "the decay is not); set weight_decay: 0 in %s to keep them exactly", out_dir / "config.yaml")

        # ---- weights: the extended model's own layout, filled from the base model
        build_conf = dict(config, model_conf={k: v for k, v in model_conf.items() if k != "freeze_old"})
        if token_type == "bpe":
            build_conf["bpemodel"] = str(tmp / "bpe.model")
        model = TokenVerseASRTask.build_model(argparse.Namespace(**build_conf))
        old_state = load_model_file(str(weights), map_location="cpu")
        state = grow_state_dict(old_state, model.state_dict(), growth, strategy, row_init, vector_init, seed)
        model.load_state_dict(state, strict=True)  # checks every key and shape
        torch.save(state, tmp / MODEL_FILE)
        config["frontend_conf"] = build_conf["frontend_conf"]  # with upstream_skeleton, if it was added now

        (tmp / "tokens.txt").write_text("".join(t + "\n" for t in growth.new_tokens), encoding="utf-8")
        record = {
            "base": str(src), "base_model_file": str(weights) if files == {} else "(packed)",
            "added_tasks": {t: list(v) for t, v in new_tasks.items()}, "added_languages": new_languages,
            "added_tokens": added_pieces, "new_token_ids": growth.new_token_ids,
            "old_to_new_token_ids": growth.old_to_new, "task_vector_strategy": strategy,
            "new_task_vector_rows": new_vector_rows(strategy, growth.n_old_aux, growth.n_new_aux),
            "tasks": list(new_spec.tasks), "row_init": row_init, "vector_init": vector_init, "seed": seed,
            "freeze_old": bool(freeze_old)}
        (tmp / "extend.json").write_text(  # one key a line, lists on one line
            "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in record.items()) + "\n}\n",
            encoding="utf-8")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
                                         encoding="utf-8")
        shutil.rmtree(tmp / "unpacked", ignore_errors=True)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("extended model: %s (tasks %s)", out_dir, " ".join(new_spec.tasks))
    return out_dir
