"""A model's config.yaml, checked before ESPnet builds anything from it: no code, no file outside, no network.

ESPnet builds the model class by class from the names in config.yaml, and the classes read more of it: S3PRL
``eval``s wav2vec2/HuBERT config strings (``conv_feature_layers``, ``xformers_att_config``, upstream hook paths in
``extra_conf.hooks``), loads checkpoints named by ``path_or_url`` and downloads hub upstreams; the tokenizer and
normalisation open ``bpemodel``, ``token_list``, ``stats_file``. ``check_model_config`` (run on every
``build_model_from_file`` once ``espnet2_ext`` is imported, and by ``extend_model``) refuses, with one line naming the
key and the file:

* class choices we have not audited (``frontend: fused``, ``encoder: beats``, ...); choices that download
  (``whisper``, ``hugging_face_transformers``, fairseq ``wav2vec2``/``hubert`` encoders...) and S3PRL upstreams other
  than a local wav2vec2/HuBERT checkpoint unless the network is allowed (``--allow_network_upstream``,
  ``allow_network=True``, ``TOKENVERSE_ALLOW_NETWORK_UPSTREAM=1``);
* S3PRL strings that would be ``eval``-ed and are not plain layer literals (``utils/config_literal.py``); S3PRL
  ``extra_conf`` keys other than ``feature_selection`` (``hooks`` are ``eval``-ed, ``legacy``/``fairseq`` unpickle
  through fairseq);
* for a packed model (one whose ``meta.yaml`` was checked by ``safe_archive``): file references (``bpemodel``,
  ``token_list``, ``stats_file``, ``path_or_url``, ``non_linguistic_symbols``, ...) outside its unpacked folder.

``TOKENVERSE_TRUST_CONFIG=1`` skips these checks (with a warning), for configs whose source you trust.
``install_s3prl_guards`` also checks ``conv_feature_layers`` inside S3PRL's wav2vec2/HuBERT model classes, for
configs that come from an upstream checkpoint rather than from config.yaml, and hands S3PRL the canonical literal.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional, Set

from espnet2_ext.utils.config_literal import ConfigLiteralError, layer_spec_text, parse_layer_spec
from espnet2_ext.utils.safe_archive import MAX_YAML_BYTES, UnsafeModelError, load_yaml_bytes, packed_root_of

ALLOW_NETWORK_ENV = "TOKENVERSE_ALLOW_NETWORK_UPSTREAM"
TRUST_CONFIG_ENV = "TOKENVERSE_TRUST_CONFIG"
NETWORK_FIX = f"pass --allow_network_upstream (Python: allow_network=True, or {ALLOW_NETWORK_ENV}=1) if you trust it"

# Pure-torch classes: they read no file, download nothing and eval nothing from their *_conf (audited, README).
SAFE_CHOICES = {
    "frontend": {"default", "sliding_window", "wav2vec_cnn", "s3prl", "s3prl_tokenverse"},  # s3prl*: checked below
    "specaug": {"specaug"},
    "normalize": {"global_mvn", "utterance_mvn"},  # global_mvn: np.load(stats_file), no pickle; file checked
    "model": {"espnet", "maskctc", "pit_espnet", "tokenverse", "lm", "lm_multitask"},
    "preencoder": {"sinc", "linear"},
    "encoder": {
        "conformer",
        "transformer",
        "transformer_multispkr",
        "contextual_block_transformer",
        "contextual_block_conformer",
        "vgg_rnn",
        "rnn",
        "branchformer",
        "e_branchformer",
        "multiconv_conformer",
        "identity",
    },
    "postencoder": {"length_adaptor"},
    "decoder": {
        "transformer",
        "lightweight_conv",
        "lightweight_conv2d",
        "dynamic_conv",
        "dynamic_conv2d",
        "rnn",
        "transducer",
        "mlm",
        "s4",
        "linear_decoder",
    },
    "preprocessor": {"default", "multi", "tokenverse"},
    "lm": {"seq_rnn", "transformer"},
}
# Classes that download pretrained weights by name or URL (Hugging Face, Whisper, fairseq checkpoints).
NETWORK_CHOICES = {
    "frontend": {"whisper", "huggingface"},
    "encoder": {"wav2vec2", "hubert", "hubert_pretrain", "torchaudiohubert", "whisper", "avhubert"},
    "postencoder": {"hugging_face_transformers"},
    "decoder": {"whisper", "hugging_face_transformers"},
    "lm": {"transformer_opt"},
}
# Keys naming a file that ESPnet or S3PRL opens, wherever they sit in the config.
FILE_KEYS = {
    "token_list",
    "bpemodel",
    "stats_file",
    "path_or_url",
    "non_linguistic_symbols",
    "rir_scp",
    "noise_scp",
    "download_dir",
}
# S3PRL upstreams that load a local converted wav2vec2/HuBERT checkpoint (torch.load, guarded: weights only).
LOCAL_UPSTREAMS = {"wav2vec2_local", "wav2vec2_custom", "hubert_local", "hubert_custom"}
S3PRL_EXTRA_CONF = {"feature_selection"}
G2P_OFFLINE = {None, "none", "g2p_en", "g2p_en_no_space"}  # g2p_en is imported offline (_offline.py)
# Speech2Text's tokenizer: sentencepiece on bpemodel (file checked), or no file at all; hugging_face downloads.
TOKEN_TYPES = {None, "bpe", "char", "word", "phn"}


# ---- opt-ins -------------------------------------------------------------------------------------------
_network_depth = 0


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def network_allowed() -> bool:
    return _network_depth > 0 or _env_true(ALLOW_NETWORK_ENV)


@contextlib.contextmanager
def network_upstreams_allowed(allow: bool = True) -> Iterator[None]:
    """Within the block, a model config may name upstreams and classes that download (``allow=False``: no-op)."""
    global _network_depth
    _network_depth += int(bool(allow))
    try:
        yield
    finally:
        _network_depth -= int(bool(allow))


class UntrustedConfigWarning(UserWarning):
    """A model config is used without checks because the user said its source is trusted."""


# ---- the checks -----------------------------------------------------------------------------------------
def _refuse(where: str, key: str, why: str, fix: str = "") -> None:
    tail = fix or f"use models only from sources you trust; {TRUST_CONFIG_ENV}=1 skips this check"
    raise UnsafeModelError(f"{where}: {key}: {why}; refusing to build the model: {tail}")


def _one_of(value: Any, allowed) -> bool:
    """Membership that a crafted value (a list, a mapping) cannot turn into a TypeError."""
    return (value is None or isinstance(value, str)) and value in allowed


def _check_choices(config: dict, where: str, network: bool) -> None:
    for key, safe in SAFE_CHOICES.items():
        name = config.get(key)
        if name is None or _one_of(name, safe):
            continue
        if _one_of(name, NETWORK_CHOICES.get(key, ())):
            if not network:
                _refuse(where, key, f"'{name}' downloads pretrained weights from the network", NETWORK_FIX)
            continue
        _refuse(where, key, f"{name!r} is a class whose config handling we have not audited for untrusted models")
    token_type = config.get("token_type")
    if token_type == "hugging_face" and not network:
        _refuse(where, "token_type", "'hugging_face' loads its tokenizer from the Hugging Face hub", NETWORK_FIX)
    elif not _one_of(token_type, TOKEN_TYPES | {"hugging_face"}):
        _refuse(where, "token_type", f"{token_type!r} is a tokenizer we have not audited for untrusted models")
    if not _one_of(config.get("g2p"), G2P_OFFLINE):
        _refuse(where, "g2p", f"{config.get('g2p')!r} is a G2P we have not audited (some download dictionaries)")


def _inside(value: str, root: Path) -> bool:
    """``value`` (absolute, or relative to the working directory as ESPnet opens it) lands inside ``root``.
    Lexically (no link following): unpacking refuses link members, and a hub snapshot's files are links."""
    path = Path(os.path.normpath(os.path.abspath(value)))
    return path == root or root in path.parents


def _check_files(node: Any, where: str, root: Path, key: str = "", skip: Set[int] = frozenset()) -> None:
    """Every FILE_KEYS string in the config tree resolves inside the unpacked folder ``root``."""
    if id(node) in skip:
        return
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{key}.{k}" if key else str(k)
            if k in FILE_KEYS and isinstance(v, str) and not (k == "path_or_url" and _is_url(v)):
                if not _inside(v, root):
                    _refuse(where, path, f"{v!r} is outside the model's folder {root}")
            else:
                _check_files(v, where, root, path, skip)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_files(v, where, root, f"{key}[{i}]", skip)


def _is_url(value: str) -> bool:
    return "://" in value


def check_skeleton(skeleton: Any, where: str) -> None:
    """``frontend_conf.upstream_skeleton``: the wav2vec2 config our frontend builds the upstream from."""
    key = "frontend_conf.upstream_skeleton"
    if (
        not isinstance(skeleton, dict)
        or not isinstance(skeleton.get("model_cfg"), dict)
        or not isinstance(skeleton.get("task_cfg", {}), dict)
    ):
        _refuse(where, key, "not a {task_cfg, model_cfg} mapping as training writes it")
    cfg = skeleton["model_cfg"]
    if "conv_feature_layers" in cfg:
        parse_layer_spec(cfg["conv_feature_layers"], f"{key}.model_cfg.conv_feature_layers", where)
    if cfg.get("xformers_att_config") is not None:
        _refuse(where, f"{key}.model_cfg.xformers_att_config", "must be null (S3PRL evals it and supports no xformers)")


def _check_s3prl(config: dict, where: str, network: bool) -> Set[int]:
    """The S3PRL frontends' conf; returns ids of sub-trees whose file keys are not used (skeleton replaces them)."""
    outer = config.get("frontend_conf") or {}
    if not isinstance(outer, dict):
        _refuse(where, "frontend_conf", "not a mapping")
    inner = outer.get("frontend_conf") or {}
    if not isinstance(inner, dict):
        _refuse(where, "frontend_conf.frontend_conf", "not a mapping")
    extra = inner.get("extra_conf") or {}
    bad = sorted(
        str(k) for k in (extra if isinstance(extra, dict) else {"<not a mapping>": 0}) if k not in S3PRL_EXTRA_CONF
    )
    if bad:
        _refuse(
            where,
            f"frontend_conf.frontend_conf.extra_conf.{bad[0]}",
            "S3PRL passes extra_conf to the upstream "
            "(hooks are eval-ed, legacy/fairseq unpickle with fairseq); only feature_selection is allowed",
        )
    if outer.get("download_dir") is not None and not network:
        _refuse(where, "frontend_conf.download_dir", "sets where S3PRL downloads upstreams", NETWORK_FIX)
    if config.get("frontend") == "s3prl_tokenverse" and outer.get("upstream_skeleton") is not None:
        check_skeleton(outer["upstream_skeleton"], where)
        return {id(inner)}  # upstream and path_or_url are replaced by the skeleton's local file
    name, url = inner.get("upstream"), inner.get("path_or_url")
    local = _one_of(name, LOCAL_UPSTREAMS) and isinstance(url, str) and not _is_url(url)
    if not local and not network:
        source = f"'{url}'" if isinstance(url, str) else "its hub"
        _refuse(
            where,
            "frontend_conf.frontend_conf.upstream",
            f"{name!r} is not a local wav2vec2/HuBERT checkpoint: S3PRL would download it from {source}",
            NETWORK_FIX,
        )
    return set()


def check_model_config(
    config: Any, where: str, root: Optional[Path] = None, allow_network: Optional[bool] = None, classes: bool = True
) -> None:
    """Refuse (one-line ``UnsafeModelError``) a config that would run code, read outside ``root`` (the unpacked
    folder of a packed model; None: a config the user gave by path, whose files are the user's) or download.
    ``classes``: also check the class choices, token type and G2P (ASR and LM configs, the ones audited)."""
    if _env_true(TRUST_CONFIG_ENV):
        warnings.warn(
            f"{where}: model config used unchecked because {TRUST_CONFIG_ENV}=1", UntrustedConfigWarning, stacklevel=2
        )
        return
    if not isinstance(config, dict):
        raise UnsafeModelError(
            f"{where}: not a config mapping (got {type(config).__name__}); not a config ESPnet wrote"
        )
    network = network_allowed() if allow_network is None else allow_network
    if classes:
        _check_choices(config, where, network)
    skip: Set[int] = set()
    if _one_of(config.get("frontend"), ("s3prl", "s3prl_tokenverse")):
        skip = _check_s3prl(config, where, network)
    if root is not None:
        _check_files(config, where, Path(os.path.normpath(os.path.abspath(root))), skip=skip)


def check_config_file(path: os.PathLike, allow_network: Optional[bool] = None, classes: bool = True) -> dict:
    """``check_model_config`` of a config.yaml (read with bounded ``yaml.safe_load``); the folder of the packed
    model it was unpacked from, if any, bounds its files. Returns the config."""
    path = Path(path)
    data = path.read_bytes()[: MAX_YAML_BYTES + 1]
    if len(data) > MAX_YAML_BYTES:
        raise UnsafeModelError(f"{path}: config larger than {MAX_YAML_BYTES} bytes; not a config ESPnet wrote")
    config = load_yaml_bytes(data, str(path))
    check_model_config(config, str(path), packed_root_of(path), allow_network, classes)
    return config


def _audited_task(cls) -> bool:
    """ASR and LM tasks: their class choices are the ones audited. ESPnet's other tasks (TTS, enhancement, ...)
    get the S3PRL, file and network checks only, so their models keep loading after ``import espnet2_ext``."""
    from espnet2.tasks.asr import ASRTask
    from espnet2.tasks.lm import LMTask

    return isinstance(cls, type) and issubclass(cls, (ASRTask, LMTask))


def config_checked(build):
    """``AbsTask.build_model_from_file`` that checks the config first (ESPnet's own argument handling)."""

    @functools.wraps(build)
    def wrapper(cls, config_file=None, model_file=None, *args, **kwargs):
        path = (
            Path(config_file)
            if config_file is not None
            else (Path(model_file).parent / "config.yaml" if model_file is not None else None)
        )
        if path is not None and path.is_file():
            check_config_file(path, classes=_audited_task(cls))
        return build(cls, config_file, model_file, *args, **kwargs)

    return wrapper


# ---- inside S3PRL -----------------------------------------------------------------------------------------
_source = "S3PRL upstream checkpoint"


def canonical_layers(cfg, where: str) -> None:
    """Check ``cfg.conv_feature_layers`` (a dataclass or dict) and replace it by its canonical literal text."""
    get = cfg.get if isinstance(cfg, dict) else functools.partial(getattr, cfg)
    value = get("conv_feature_layers", None)
    if value is None:
        return
    text = layer_spec_text(parse_layer_spec(value, "model_cfg.conv_feature_layers", where))
    if isinstance(cfg, dict):
        cfg["conv_feature_layers"] = text
    else:
        cfg.conv_feature_layers = text
    if get("xformers_att_config", None) is not None:
        raise ConfigLiteralError(f"{where}: model_cfg.xformers_att_config must be null (S3PRL would eval it)")


def _checked_init(init):
    if getattr(init, "_tokenverse_guard", False):
        return init

    @functools.wraps(init)
    def wrapper(self, cfg, *args, **kwargs):
        canonical_layers(cfg, _source)
        return init(self, cfg, *args, **kwargs)

    wrapper._tokenverse_guard = True  # type: ignore[attr-defined]
    return wrapper


def _named_loader(load):
    if getattr(load, "_tokenverse_guard", False):
        return load

    @functools.wraps(load)
    def wrapper(ckpt, *args, **kwargs):
        global _source
        previous, _source = _source, str(ckpt)
        try:
            return load(ckpt, *args, **kwargs)
        finally:
            _source = previous

    wrapper._tokenverse_guard = True  # type: ignore[attr-defined]
    return wrapper


def install_s3prl_guards() -> None:
    """S3PRL's wav2vec2/HuBERT models check ``conv_feature_layers`` before their ``eval`` (idempotent); errors name
    the checkpoint being loaded."""
    try:
        from s3prl.upstream.hubert import expert as hubert_expert
        from s3prl.upstream.hubert.hubert_model import HubertModel
        from s3prl.upstream.wav2vec2 import expert as w2v_expert
        from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Model
    except ImportError:  # no S3PRL installed: nothing of it can be built
        return

    for cls in (Wav2Vec2Model, HubertModel):
        cls.__init__ = _checked_init(cls.__init__)
    for module in (w2v_expert, hubert_expert):
        module.load_converted_model = _named_loader(module.load_converted_model)
