"""Issue 33: a model's config cannot run code, read outside its folder or reach the network, through any loader.

Each crafted model is the tiny trained model with one change to its config.yaml (or one extra member), packed by
ESPnet's packer; the payloads write a marker file if their code runs.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict

import pytest
import torch
import yaml
from tiny_setup import UTTS

from espnet2_ext.utils.config_guard import (
    ALLOW_NETWORK_ENV,
    TRUST_CONFIG_ENV,
    UntrustedConfigWarning,
    check_model_config,
)
from espnet2_ext.utils.safe_archive import UnsafeModelError

TINY_LAYERS = "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2"
MARKER = "CODE_RAN"


def _skeleton_cfg(config: dict) -> dict:
    return config["frontend_conf"]["upstream_skeleton"]["model_cfg"]


def _no_skeleton(config: dict, **inner) -> None:
    """The frontend then builds its upstream from frontend_conf.frontend_conf (S3PRL's own loading)."""
    config["frontend_conf"].pop("upstream_skeleton")
    config["frontend_conf"]["frontend_conf"] = inner


# case -> (change to the config (config, marker path, outside dir), words expected in the one-line error)
CASES: Dict[str, tuple] = {
    "conv_feature_layers": (
        lambda c, m, o: _skeleton_cfg(c).update(conv_feature_layers=f"{TINY_LAYERS} if open({str(m)!r}, 'w') else []"),
        r"frontend_conf\.upstream_skeleton\.model_cfg\.conv_feature_layers: unexpected [\"'] if open",
    ),
    "xformers_att_config": (
        lambda c, m, o: _skeleton_cfg(c).update(xformers_att_config=f"open({str(m)!r}, 'w') and None"),
        r"model_cfg\.xformers_att_config: must be null",
    ),
    "extra_conf_hooks": (
        lambda c, m, o: c["frontend_conf"]["frontend_conf"].update(
            extra_conf={"hooks": [[f"open({str(m)!r}, 'w')", "print"]]}
        ),
        r"frontend_conf\.frontend_conf\.extra_conf\.hooks: S3PRL passes extra_conf",
    ),
    "extra_conf_legacy": (
        lambda c, m, o: c["frontend_conf"]["frontend_conf"].update(extra_conf={"legacy": True}),
        r"extra_conf\.legacy",
    ),
    "hub_upstream": (
        lambda c, m, o: _no_skeleton(c, upstream="xls_r_300m"),
        r"upstream: 'xls_r_300m' is not a local wav2vec2/HuBERT checkpoint: S3PRL would download it from its hub",
    ),
    "url_upstream": (
        lambda c, m, o: _no_skeleton(c, upstream="wav2vec2_url", path_or_url="https://example.invalid/x.pt"),
        r"would download it from 'https://example\.invalid/x\.pt'.*--allow_network_upstream",
    ),
    "download_dir": (
        lambda c, m, o: c["frontend_conf"].update(download_dir=str(o)),
        r"frontend_conf\.download_dir: sets where S3PRL downloads",
    ),
    "upstream_outside": (
        lambda c, m, o: _no_skeleton(c, upstream="wav2vec2_local", path_or_url=str(o / "upstream.pt")),
        r"frontend_conf\.frontend_conf\.path_or_url: '.*upstream\.pt' is outside the model's folder",
    ),
    "bpemodel_outside": (
        lambda c, m, o: c.update(bpemodel=str(o / "bpe.model")),
        r"bpemodel: '.*bpe\.model' is outside",
    ),
    "token_list_outside": (
        lambda c, m, o: c.update(token_list="../../tokens.txt"),
        r"token_list: '\.\./\.\./tokens\.txt' is outside",
    ),
    "stats_file_outside": (
        lambda c, m, o: c.update(normalize="global_mvn", normalize_conf={"stats_file": str(o / "stats.npz")}),
        r"normalize_conf\.stats_file: '.*stats\.npz' is outside",
    ),
    "nls_outside": (
        lambda c, m, o: c.update(non_linguistic_symbols="/etc/passwd"),
        r"non_linguistic_symbols: '/etc/passwd'",
    ),
    "whisper_frontend": (
        lambda c, m, o: c.update(frontend="whisper", frontend_conf={"whisper_model": "small"}),
        r"frontend: 'whisper' downloads pretrained weights from the network",
    ),
    "hf_postencoder": (
        lambda c, m, o: c.update(
            postencoder="hugging_face_transformers", postencoder_conf={"model_name_or_path": "bert-base"}
        ),
        r"postencoder: 'hugging_face_transformers' downloads",
    ),
    "unaudited_encoder": (
        lambda c, m, o: c.update(encoder="beats", encoder_conf={"beats_ckpt_path": str(o / "beats.pt")}),
        r"encoder: 'beats' is a class whose config handling we have not audited",
    ),
    "g2p": (lambda c, m, o: c.update(g2p="pyopenjtalk"), r"g2p: 'pyopenjtalk' is a G2P we have not audited"),
    "hf_tokenizer": (
        lambda c, m, o: c.update(token_type="hugging_face", bpemodel="bert-base-uncased"),
        r"token_type: 'hugging_face' loads its tokenizer from the Hugging Face hub",
    ),
}


@pytest.fixture(scope="module")
def base_config(tiny_trained) -> dict:
    _, _, out = tiny_trained
    return yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))


def pack_crafted(tiny_trained, config: dict, work: Path, extra: Dict[str, bytes] = None) -> Path:
    """config.yaml + the tiny model's weights (+ extra members by name), packed by ESPnet's packer."""
    from espnet2.main_funcs.pack_funcs import pack

    _, _, out = tiny_trained
    (work / "exp").mkdir(parents=True, exist_ok=True)
    (work / "exp" / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (work / "exp" / "model.pth").write_bytes((out / "valid.loss.best.pth").read_bytes())
    files = {"asr_model_file": "exp/model.pth"}
    for name, data in (extra or {}).items():
        (work / name).write_bytes(data)
        files[Path(name).stem] = name
    cwd = os.getcwd()
    os.chdir(work)
    try:
        pack(files=files, yaml_files={"asr_train_config": "exp/config.yaml"}, outpath="crafted.zip")
    finally:
        os.chdir(cwd)
    return work / "crafted.zip"


@pytest.fixture
def network_log(monkeypatch):
    """Every attempt to connect is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:2])
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def loaders(tiny_trained, tmp_path) -> Dict[str, Callable[[Path], object]]:
    """Every entry point that builds a model from a packed model's config."""
    from espnet2.bin.asr_inference import Speech2Text
    from espnet_model_zoo.downloader import ModelDownloader

    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text
    from espnet2_ext.bin import asr_inference
    from espnet2_ext.tasks.extend_experiment import extend_experiment

    _, data, _ = tiny_trained
    return {
        "from_pretrained": lambda z: TokenVerseSpeech2Text.from_pretrained(str(z)),
        "asr_inference": lambda z: asr_inference.run(
            [
                "--model_file",
                str(z),
                "--output_dir",
                str(tmp_path / "dec"),
                "--data_path_and_name_and_type",
                f"{data / 'wav.scp'},speech,sound",
            ]
        ),
        # ESPnet's Speech2Text.from_pretrained is exactly this, with the model zoo's cache in its package dir
        "espnet_from_pretrained": lambda z, **kw: Speech2Text(
            **{
                k: v
                for k, v in ModelDownloader(cachedir=tmp_path / "zoo").download_and_unpack(str(z)).items()
                if k.startswith("asr_")
            },
            **kw,
        ),
        "extend_model": lambda z: extend_experiment(z, tmp_path / "extended", {"qst": ["[Q]"]}),
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_config_is_refused_by_every_loader_without_a_trace(
    tiny_trained, base_config, tmp_path, case, network_log
):
    change, expected = CASES[case]
    config, marker, outside = copy.deepcopy(base_config), tmp_path / MARKER, tmp_path / "outside"
    outside.mkdir()
    for name in ("upstream.pt", "bpe.model", "stats.npz", "beats.pt"):
        (outside / name).write_bytes(b"not for this model")
    change(config, marker, outside)
    crafted = pack_crafted(tiny_trained, config, tmp_path / "craft")
    for how, load in loaders(tiny_trained, tmp_path).items():
        with pytest.raises(UnsafeModelError, match=expected) as err:
            load(crafted)
        assert "\n" not in str(err.value) and "config.yaml: " in str(err.value), (how, str(err.value))
        assert not marker.exists() and not network_log, how
    assert not (tmp_path / "dec").exists() and not (tmp_path / "extended").exists()


def test_crafted_upstream_checkpoint_inside_the_model_is_refused(tiny_trained, base_config, tmp_path, network_log):
    """path_or_url to a checkpoint packed with the model passes the folder check; S3PRL then loads it: a pickle
    payload is refused by weights-only loading, an eval payload in its model_cfg by the S3PRL model guard."""
    import io

    from espnet2_ext.upstream.xlsr_standin import build_wav2vec2, model_cfg_for

    marker = tmp_path / MARKER

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    cfg = model_cfg_for("tiny")
    weights = build_wav2vec2(cfg).state_dict()
    variants = {
        "pickle": (
            {"task_cfg": {}, "model_cfg": cfg, "model_weight": weights, "x": Payload()},
            r"upstream\.pt: refused to load: .*GLOBAL io\.open",
        ),
        "eval": (
            {
                "task_cfg": {},
                "model_weight": weights,
                "model_cfg": {**cfg, "conv_feature_layers": f"{TINY_LAYERS} if open({str(marker)!r}, 'w') else 0"},
            },
            r"upstream\.pt: model_cfg\.conv_feature_layers: unexpected [\"'] if open",
        ),
    }
    for variant, (state, expected) in variants.items():
        buf = io.BytesIO()
        torch.save({**state, "task_cfg": {"normalize": True}}, buf)
        config = copy.deepcopy(base_config)
        _no_skeleton(config, upstream="wav2vec2_local", path_or_url="exp/upstream.pt")  # rewritten by unpack
        crafted = pack_crafted(tiny_trained, config, tmp_path / variant, {"exp/upstream.pt": buf.getvalue()})
        for how, load in loaders(tiny_trained, tmp_path / variant).items():
            with pytest.raises(UnsafeModelError, match=expected) as err:
                load(crafted)
            assert "\n" not in str(err.value), (how, str(err.value))
            assert not marker.exists() and not network_log, (variant, how)


def test_clis_report_a_crafted_model_in_one_line(tiny_trained, base_config, tmp_path, capsys):
    from espnet2_ext.bin import asr_inference, extend_model

    _, data, _ = tiny_trained
    config, marker = copy.deepcopy(base_config), tmp_path / MARKER
    CASES["conv_feature_layers"][0](config, marker, tmp_path)
    crafted = pack_crafted(tiny_trained, config, tmp_path / "craft")
    runs = {
        "asr_inference": lambda: asr_inference.main(
            [
                "--model_file",
                str(crafted),
                "--output_dir",
                str(tmp_path / "dec"),
                "--data_path_and_name_and_type",
                f"{data / 'wav.scp'},speech,sound",
            ]
        ),
        "extend_model": lambda: extend_model.main(
            ["--base", str(crafted), "--out_dir", str(tmp_path / "ext"), "--add_task", "qst=[Q]"]
        ),
    }
    for prog, run in runs.items():
        capsys.readouterr()
        assert run() == 1, prog
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert (
            last.startswith(prog)
            and "config.yaml: frontend_conf.upstream_skeleton.model_cfg.conv_feature_layers: unexpected" in last
        ), last
    assert not marker.exists() and not (tmp_path / "dec").exists() and not (tmp_path / "ext").exists()


def test_the_eval_payload_is_a_real_attack_on_plain_s3prl(tmp_path):
    """S3PRL's own model class, unguarded (the __wrapped__ original), runs the conv_feature_layers payload used
    above and builds a working model: the refusals matter. (xformers_att_config is eval-ed by S3PRL's attention
    class, but no config reaches it: Wav2Vec2Config has no such field, and merge_with_parent drops unknown keys.)"""
    import espnet2.tasks.asr  # noqa: F401  (installs the guards)
    from s3prl.upstream.utils import merge_with_parent
    from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Config, Wav2Vec2Model

    from espnet2_ext.upstream.xlsr_standin import model_cfg_for

    marker = tmp_path / MARKER
    cfg = merge_with_parent(
        Wav2Vec2Config,
        {
            **model_cfg_for("tiny"),
            "xformers_att_config": "x",
            "conv_feature_layers": f"{TINY_LAYERS} if open({str(marker)!r}, 'w') else []",
        },
    )
    assert not hasattr(cfg, "xformers_att_config")
    model = Wav2Vec2Model.__new__(Wav2Vec2Model)
    Wav2Vec2Model.__init__.__wrapped__(model, cfg)
    assert marker.exists() and len(model.feature_extractor.conv_layers) == 7
    marker.unlink()
    with pytest.raises(UnsafeModelError, match="conv_feature_layers"):  # the guarded class refuses it
        Wav2Vec2Model(cfg)
    assert not marker.exists()


def test_s3prl_hubert_model_is_guarded_too(tmp_path):
    """hubert_local checkpoints: S3PRL's HubertModel evals the same key; refused before its body runs."""
    import espnet2.tasks.asr  # noqa: F401  (installs the guards)
    from s3prl.upstream.hubert.hubert_model import HubertConfig, HubertModel, HubertPretrainingConfig
    from s3prl.upstream.utils import merge_with_parent

    marker = tmp_path / MARKER
    payload = f"{TINY_LAYERS} if open({str(marker)!r}, 'w') else []"
    cfg = merge_with_parent(HubertConfig, {"label_rate": 50, "conv_feature_layers": payload})
    with pytest.raises(UnsafeModelError, match="model_cfg.conv_feature_layers: unexpected"):
        HubertModel(cfg, HubertPretrainingConfig(), [])
    assert not marker.exists()


def test_network_upstream_needs_the_explicit_option(base_config, tmp_path, monkeypatch):
    config = copy.deepcopy(base_config)
    _no_skeleton(config, upstream="xls_r_300m")
    with pytest.raises(UnsafeModelError, match="--allow_network_upstream"):
        check_model_config(config, "c.yaml", tmp_path)
    check_model_config(config, "c.yaml", tmp_path, allow_network=True)  # then allowed
    monkeypatch.setenv(ALLOW_NETWORK_ENV, "1")
    check_model_config(config, "c.yaml", tmp_path)
    config["frontend_conf"]["frontend_conf"]["extra_conf"] = {"hooks": []}  # never allowed: not a network matter
    with pytest.raises(UnsafeModelError, match="extra_conf.hooks"):
        check_model_config(config, "c.yaml", tmp_path)


def test_allow_network_option_reaches_the_check(tiny_trained, base_config, tmp_path, network_log):
    """--allow_network_upstream / allow_network=True get past the check, and S3PRL then tries to download
    (refused here by the socket patch): the option is what stood between the config and the network."""
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text
    from espnet2_ext.bin import asr_inference

    _, data, _ = tiny_trained
    config = copy.deepcopy(base_config)
    _no_skeleton(config, upstream="wav2vec2_url", path_or_url="https://example.invalid/x.pt")
    crafted = pack_crafted(tiny_trained, config, tmp_path / "craft")
    with pytest.raises(UnsafeModelError, match="would download"):
        TokenVerseSpeech2Text.from_pretrained(str(crafted))
    assert not network_log
    with pytest.raises(Exception) as err:
        TokenVerseSpeech2Text.from_pretrained(str(crafted), allow_network=True)
    assert not isinstance(err.value, UnsafeModelError)
    with pytest.raises(Exception) as err:
        asr_inference.run(
            [
                "--model_file",
                str(crafted),
                "--output_dir",
                str(tmp_path / "dec"),
                "--allow_network_upstream",
                "--data_path_and_name_and_type",
                f"{data / 'wav.scp'},speech,sound",
            ]
        )
    assert not isinstance(err.value, UnsafeModelError)


def test_trusted_config_opt_in_skips_the_check_with_a_warning(base_config, tmp_path, monkeypatch):
    config = copy.deepcopy(base_config)
    config["bpemodel"] = "/etc/passwd"
    with pytest.raises(UnsafeModelError, match="bpemodel"):
        check_model_config(config, "c.yaml", tmp_path)
    monkeypatch.setenv(TRUST_CONFIG_ENV, "1")
    with pytest.warns(UntrustedConfigWarning, match="unchecked"):
        check_model_config(config, "c.yaml", tmp_path)


def test_class_choices_are_checked_for_the_audited_tasks_only():
    """ESPnet's other tasks (here enhancement, whose encoder 'stft' is no ASR encoder) keep loading; ASR and LM
    configs get the class check."""
    from espnet2.tasks.asr import ASRTask
    from espnet2.tasks.enh import EnhancementTask
    from espnet2.tasks.lm import LMTask

    from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask
    from espnet2_ext.utils.config_guard import _audited_task

    assert [_audited_task(t) for t in (ASRTask, TokenVerseASRTask, LMTask, EnhancementTask)] == [True] * 3 + [False]
    enh = {"encoder": "stft", "decoder": "stft", "separator": "rnn"}
    check_model_config(enh, "enh/config.yaml", classes=False)
    with pytest.raises(UnsafeModelError, match="encoder: 'stft' is a class whose config handling"):
        check_model_config(enh, "enh/config.yaml")
    with pytest.raises(UnsafeModelError, match="bpemodel"):  # the file check still applies to every task
        check_model_config({**enh, "bpemodel": "/etc/passwd"}, "enh/config.yaml", root=Path("/tmp/x"), classes=False)


def test_own_experiment_config_files_are_the_users(base_config, tmp_path):
    """A config given by path (not from a packed model) may name the user's files anywhere; eval strings and
    network upstreams are still refused."""
    config = copy.deepcopy(base_config)
    config["bpemodel"] = "/data/bpe.model"
    check_model_config(config, "exp/config.yaml", root=None)
    _skeleton_cfg(config)["conv_feature_layers"] = "__import__('os')"
    with pytest.raises(UnsafeModelError, match="conv_feature_layers"):
        check_model_config(config, "exp/config.yaml", root=None)


def test_frame_geometry_uses_the_parser(tiny_trained, tmp_path):
    """(receptive field, hop) of the CNN from the parser; a payload put into the live config is refused there."""
    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    root, _, out = tiny_trained
    fe = TokenVerseSpeech2Text(str(out / "config.yaml"), str(out / "valid.loss.best.pth")).asr_model.frontend
    assert fe.frame_geometry == (400, 320)  # wav2vec2's CNN: 25 ms field, 20 ms hop at 16 kHz
    marker = tmp_path / MARKER
    fe._wav2vec2.cfg.conv_feature_layers = f"{TINY_LAYERS} if open({str(marker)!r}, 'w') else []"
    with pytest.raises(UnsafeModelError, match="conv_feature_layers: unexpected [\"'] if open"):
        fe.frame_geometry
    assert not marker.exists()


# ---- real models still load and decode identically ---------------------------------------------------------
def test_packed_tiny_model_decodes_as_its_experiment_dir(tiny_trained, tmp_path, network_log):
    """The README's main-command model (packed by ESPnet's packer) passes every check and decodes the same tokens
    through every loader as the experiment dir it came from; extend_model accepts it."""
    import soundfile as sf

    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text

    root, data, out = tiny_trained
    packed = pack_crafted(tiny_trained, yaml.safe_load((out / "config.yaml").read_text()), tmp_path / "pack")
    x, _ = sf.read(data / "wav" / f"{UTTS[0][0]}.wav", dtype="float32")
    reference = TokenVerseSpeech2Text(
        str(out / "config.yaml"),
        str(out / "valid.loss.best.pth"),
        beam_size=1,
        transducer_conf={"search_type": "greedy"},
    )(x)[0][2]
    built = loaders(tiny_trained, tmp_path)
    ours = TokenVerseSpeech2Text.from_pretrained(str(packed), beam_size=1, transducer_conf={"search_type": "greedy"})
    theirs = built["espnet_from_pretrained"](packed, beam_size=1)
    assert ours(x)[0][2] == reference and theirs(x)[0][2] == reference
    assert built["extend_model"](packed).is_dir()
    assert not network_log


@pytest.mark.parametrize(
    "ckpt",
    [
        "egs2/mini_tokenverse/ssl1/pretrained/xlsr_mini_ssl.pt",
        "egs2/mini_tokenverse/ssl1/pretrained_ctc/xlsr_mini_ssl_ctc.pt",
    ],
)
def test_committed_checkpoints_load_identically_under_the_guards(ckpt, monkeypatch):
    """The committed upstream checkpoints load through the guarded S3PRL path (weights only, checked
    conv_feature_layers) and give the same features as S3PRL's unguarded classes."""
    from s3prl.nn import S3PRLUpstream
    from s3prl.upstream.wav2vec2.wav2vec2_model import Wav2Vec2Model

    from espnet2_ext.utils.safe_load import weights_only_loading

    path = Path(__file__).resolve().parents[2] / ckpt
    wav = [torch.randn(16000, generator=torch.Generator().manual_seed(0))]
    with weights_only_loading():
        guarded = S3PRLUpstream("wav2vec2_local", path_or_url=str(path)).eval()
    monkeypatch.setattr(Wav2Vec2Model, "__init__", Wav2Vec2Model.__init__.__wrapped__)
    plain = S3PRLUpstream("wav2vec2_local", path_or_url=str(path)).eval()
    with torch.no_grad():
        a = guarded(wav[0][None], torch.tensor([16000]))[0]
        b = plain(wav[0][None], torch.tensor([16000]))[0]
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_guards_are_active_in_a_fresh_interpreter_for_espnets_loader(tiny_trained, base_config, tmp_path):
    """A fresh interpreter, as a new user's script: import espnet2_ext, then ESPnet's Speech2Text.from_pretrained
    on a crafted model (the model zoo's cache folder moved to tmp)."""
    config = copy.deepcopy(base_config)
    marker = tmp_path / MARKER
    _skeleton_cfg(config)["conv_feature_layers"] = f"{TINY_LAYERS} if open({str(marker)!r}, 'w') else []"
    crafted = pack_crafted(tiny_trained, config, tmp_path / "craft")
    code = (
        "import espnet2_ext\nfrom espnet2.bin.asr_inference import Speech2Text\n"
        "from espnet_model_zoo.downloader import ModelDownloader\n"
        "init = ModelDownloader.__init__  # only the cache folder moved: the venv's package dir stays untouched\n"
        f"ModelDownloader.__init__ = lambda self, cachedir=None: init(self, {str(tmp_path / 'zoo')!r})\n"
        "from espnet2_ext.utils.safe_archive import UnsafeModelError\n"
        f"try:\n    Speech2Text.from_pretrained(model_tag={str(crafted)!r})\n"
        "except UnsafeModelError as e:\n    print('REFUSED', str(e))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert r.stdout.strip().splitlines()[-1].startswith("REFUSED "), (r.stdout[-1000:], r.stderr[-2000:])
    assert "conv_feature_layers" in r.stdout and not marker.exists()
