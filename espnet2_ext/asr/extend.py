"""Grow a trained TokenVerse++ model by new auxiliary task(s) and/or language(s) without losing the old ones.

The model-level surgery; ``espnet2_ext.tasks.extend_experiment.extend_experiment(src, out_dir, new_tasks={"qst":
["[Q]"]}, new_languages=["it"])`` applies it to a trained experiment (``config.yaml`` + model file, or a packed
``model.zip``) and writes a new experiment dir:

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

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from espnet2_ext.common import WORD_BOUNDARY, DataError, PathLike
from espnet2_ext.layers.task_vectors import grow_task_vectors
from espnet2_ext.task_spec import PRIMARY_TASK, TaskSpec, language_token

log = logging.getLogger(__name__)
SOS_EOS = "<sos/eos>"
MODEL_FILE = "extended.pth"
# Parameters with one row per token (module path inside TokenVerseASRModel).
VOCAB_PARAMS = (
    "decoder.embed.weight",
    "joint_network.lin_out.weight",
    "joint_network.lin_out.bias",
    "ctc.ctc_lo.weight",
    "ctc.ctc_lo.bias",
    "criterion_transducer.simple_am_proj.weight",
    "criterion_transducer.simple_am_proj.bias",
    "criterion_transducer.simple_lm_proj.weight",
    "criterion_transducer.simple_lm_proj.bias",
)
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
            raise DataError(
                f"cannot add language '{lang}': the model has no 'lid' task (its tasks: "
                f"{', '.join(spec.tasks)}); add lid as a task first"
            )
        if lang.lower() in spec.languages:
            raise DataError(f"language '{lang}' already exists in the model (languages: {', '.join(spec.languages)})")
        owner = spec.task_of(tok)
        if owner is not None:
            raise DataError(
                f"language '{lang}' would use the token {tok}, which is already a token of task "
                f"'{owner}': that language cannot be added to this model under this code"
            )
        aux["lid"] = aux["lid"] + (tok,)
    for name, tokens in new_tasks.items():
        if name == PRIMARY_TASK or name in aux:
            raise DataError(
                f"task '{name}' already exists in the model (tasks: {', '.join(spec.tasks)}); choose a new name"
            )
        for tok in tokens:
            if not spec.looks_like_tag(tok) or any(c.isspace() for c in tok) or WORD_BOUNDARY in tok:
                raise DataError(
                    f"task '{name}': token '{tok}' is not a tag; task tokens look like [Q] (brackets, no spaces)"
                )
            owner = next((t for t, toks in aux.items() if tok in toks), None)
            if owner == "lid":
                raise DataError(
                    f"task '{name}': token {tok} clashes with the language token of "
                    f"'{tok[1:-1].lower()}' (task lid); choose another token"
                )
            if owner is not None:
                raise DataError(
                    f"task '{name}': token {tok} is already a token of task '{owner}'; choose another token"
                )
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
        raise DataError(
            f"token(s) {', '.join(clash)} are already in the model's token list (as words); choose other task tokens"
        )
    if tokens and tokens[-1] == SOS_EOS:
        return tokens[:-1] + list(added) + [SOS_EOS]
    return tokens + list(added)


# ---- tokenizer ------------------------------------------------------------------------------------------
def check_tag_aware(
    token_type: str, token_list: Sequence[str], spec: TaskSpec, bpemodel: Optional[PathLike], where: str
) -> None:
    """Every old task token must be one token (``[SCD]`` or ``▁[SCD]``); otherwise new tags could not be atomic
    either and the token list would not describe the model's tags."""
    tokens = set(token_list)
    if token_type == "word":
        missing = []  # whitespace-split: every tag is one token (or <unk> if the data never had it)
    elif token_type == "bpe":
        import sentencepiece as spm

        if not bpemodel or not Path(bpemodel).is_file():
            raise DataError(
                f"{where}: bpemodel '{bpemodel}' not found: the model's sentencepiece model is needed "
                f"to extend its tokenizer"
            )
        sp = spm.SentencePieceProcessor(model_file=str(bpemodel))
        missing = [
            t
            for t in spec.all_tokens
            if sp.encode(f"a {t} a", out_type=str)[1:2] not in ([WORD_BOUNDARY + t], [t])
            or not ({WORD_BOUNDARY + t, t} & tokens)
        ]
    else:
        missing = list(spec.all_tokens)
    if missing:
        raise DataError(
            f"{where}: the model's tokenizer (token_type {token_type}) is not tag-aware: task token(s) "
            f"{', '.join(missing[:5])} are not single tokens, so new tags could not be added as atomic "
            f"symbols; train the base model with a tokenizer from espnet2_ext.bin.train_tokenizer "
            f"(token_type bpe) or token_type word"
        )


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


def grow_state_dict(
    old: Mapping[str, torch.Tensor],
    template: Mapping[str, torch.Tensor],
    growth: Growth,
    strategy: str,
    row_init: str = "mean",
    vector_init: str = "mean",
    seed: int = 0,
) -> Dict[str, torch.Tensor]:
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
            raise RuntimeError(
                f"{key}: base model has {tuple(old[key].shape)}, the extended model needs "
                f"{tuple(ref.shape)}; this parameter is not one extend_model knows how to grow"
            )
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
        raise ValueError(
            f"model_conf.freeze_old: unknown key(s) {sorted(unknown)}; valid: new_token_ids, "
            f"new_vector_rows, also_train"
        )
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
            raise ValueError(
                f"model_conf.freeze_old: row {max(rows)} does not exist in {name} "
                f"{tuple(param.shape)}: the config does not belong to this model"
            )
        keep[rows] = True
        shape = (-1,) + (1,) * (param.dim() - 1)
        # Called on every backward: the mask is a constant of the parameter, not per-batch state.
        param.register_hook(lambda g, keep=keep.view(shape): g * keep.to(g.device, g.dtype))
        masked.append(name)
    return masked
