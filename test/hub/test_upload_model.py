"""Hub upload folder from an ESPnet packed model: dry run (no network), model card, push preconditions."""

from __future__ import annotations

import socket
import sys
import zipfile
from pathlib import Path
from typing import Dict

import pytest
import yaml

from espnet2_ext.bin import upload_model
from espnet2_ext.bin.upload_model import UploadError
from espnet2_ext.hub.model_card import build_model_card

EXP = "exp/asr_tv_xlsr"
BPE = "data/token_list/bpe_unigram100/bpe.model"
RESULTS = "| test set | WER (%) | SCD F1 |\n|---|---|---|\n| test_a | 12.5 | 81.0 |\n"


def fake_config(**overrides) -> Dict:
    conf = {
        "frontend": "s3prl_tokenverse",
        "frontend_conf": {
            "frontend_conf": {"upstream": "wav2vec2_local", "path_or_url": "exp/xlsr.pt"},
            "task_vector_injection": "feature_encoder",
            "upstream_skeleton": {"model_cfg": {}},
        },
        "encoder": "identity",
        "decoder": "transducer",
        "decoder_conf": {"rnn_type": "lstm", "hidden_size": 256},
        "model": "tokenverse",
        "joint_net_conf": {"joint_space_size": 320},
        "tokenverse_conf": {"tasks": ["asr", "scd", "lid"], "languages": ["en", "de"], "policy": "sample"},
        "token_type": "bpe",
        "bpemodel": BPE,
        "token_list": ["<blank>", "<unk>", "\u2581[SCD]", "<sos/eos>"],
        "optim": "adam",
        "optim_conf": {"lr": 0.0001},
        "batch_type": "numel",
        "batch_bins": 4000000,
        "max_epoch": 30,
    }
    conf.update(overrides)
    return conf


def make_packed_zip(path: Path, config: Dict = None, with_bpe: bool = True, meta: Dict = None) -> Dict[str, bytes]:
    """A zip laid out like espnet2.main_funcs.pack_funcs.pack writes it; returns its members."""
    members = {
        "meta.yaml": yaml.safe_dump(
            meta
            if meta is not None
            else {
                "files": {"asr_model_file": f"{EXP}/valid.loss.ave.pth"},
                "yaml_files": {"asr_train_config": f"{EXP}/config.yaml"},
                "timestamp": 1700000000.0,
                "python": "3.11.7",
                "torch": "2.9.1",
                "espnet": "202511",
            }
        ).encode(),
        f"{EXP}/config.yaml": yaml.safe_dump(config or fake_config(), allow_unicode=True).encode(),
        f"{EXP}/valid.loss.ave.pth": b"\x80\x02fake-weights" * 50,
        f"{EXP}/RESULTS.md": RESULTS.encode(),
        f"{EXP}/images/loss.png": b"\x89PNG fake",
    }
    if with_bpe:
        members[BPE] = b"fake sentencepiece model"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return members


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no_hf_home" / "token"))


def run(tmp_path, *extra, zip_name="model.zip") -> Path:
    out = tmp_path / "hub_upload"
    upload_model.run(
        [
            "--packed_model",
            str(tmp_path / zip_name),
            "--repo_id",
            "someone/tokenverse_xlsr",
            "--out_dir",
            str(out),
            *extra,
        ]
    )
    return out


def test_dry_run_writes_the_zoo_layout_and_card(tmp_path, no_network, capsys):
    members = make_packed_zip(tmp_path / "model.zip")
    out = run(tmp_path)
    printed = capsys.readouterr().out
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == sorted(set(members) | {"README.md"})
    for name, data in members.items():  # unzipped as is: paths in the config stay recipe-relative
        assert (out / name).read_bytes() == data
    assert "would push 7 files" in printed and "dry run: nothing was pushed" in printed
    assert all(f in printed for f in members)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hub_upload")]  # no temp leftovers

    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and yaml.safe_load(card.split("---\n")[1])["library_name"] == "espnet"
    assert yaml.safe_load(card.split("---\n")[1])["language"] == ["en", "de"]
    assert "| `scd` | `[SCD]` |" in card and "| `lid` | `[EN]` `[DE]` |" in card
    assert "`ner`" not in card  # not a task of this model
    assert RESULTS.strip() in card  # the package's RESULTS.md by default
    assert 'Speech2Text.from_pretrained("someone/tokenverse_xlsr")' in card
    assert "python -m espnet2_ext.bin.asr_inference" in card and f"--asr_train_config {EXP}/config.yaml" in card
    assert "batch_bins=`4000000`" in card and "`bpe`, 4 tokens" in card
    assert "arXiv:2508.19856" in card


def test_results_md_option_and_rerun_replace_the_folder(tmp_path, no_network):
    make_packed_zip(tmp_path / "model.zip")
    other = tmp_path / "OTHER.md"
    other.write_text("| test set | WER (%) |\n|---|---|\n| test_b | 9.9 |\n")
    out = run(tmp_path)
    (out / "stale.txt").write_text("from an older run")
    run(tmp_path, "--results_md", str(other))
    assert not (out / "stale.txt").exists()
    card = (out / "README.md").read_text()
    assert "test_b | 9.9" in card and "test_a" not in card
    with pytest.raises(UploadError, match="no such file"):
        run(tmp_path, "--results_md", str(tmp_path / "missing.md"))


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path, no_network):
    make_packed_zip(tmp_path / "model.zip")
    (tmp_path / "hub_upload").mkdir()
    (tmp_path / "hub_upload" / "notes.txt").write_text("keep me")
    with pytest.raises(UploadError, match="not an upload folder"):
        run(tmp_path)
    assert (tmp_path / "hub_upload" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "case, match",
    [
        ("no_bpe", r"bpemodel .* not in the package: repack with --option"),
        ("no_meta", "no meta.yaml"),
        ("not_asr", "no asr_train_config"),
        ("not_zip", "not a zip file"),
    ],
)
def test_bad_packages_fail_clearly(tmp_path, no_network, case, match):
    if case == "no_bpe":
        make_packed_zip(tmp_path / "model.zip", with_bpe=False)
    elif case == "no_meta":
        with zipfile.ZipFile(tmp_path / "model.zip", "w") as z:
            z.writestr(f"{EXP}/config.yaml", "a: 1\n")
    elif case == "not_asr":
        make_packed_zip(
            tmp_path / "model.zip", meta={"files": {"model_file": "m.pth"}, "yaml_files": {"train_config": "c.yaml"}}
        )
    else:
        (tmp_path / "model.zip").write_text("not a zip")
    with pytest.raises(UploadError, match=match):
        run(tmp_path)
    assert not (tmp_path / "hub_upload").exists()


def test_bad_repo_id(tmp_path):
    make_packed_zip(tmp_path / "model.zip")
    with pytest.raises(UploadError, match="user/name"):
        upload_model.run(
            ["--packed_model", str(tmp_path / "model.zip"), "--repo_id", "no-slash", "--out_dir", str(tmp_path / "o")]
        )


def test_push_without_token_fails_before_any_work(tmp_path, no_network, no_token):
    make_packed_zip(tmp_path / "model.zip")
    with pytest.raises(UploadError, match="needs a Hugging Face token.*HF_TOKEN.*hf auth login"):
        run(tmp_path, "--push")
    assert not (tmp_path / "hub_upload").exists()


def test_push_without_huggingface_hub(tmp_path, monkeypatch, no_network):
    make_packed_zip(tmp_path / "model.zip")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # makes `import huggingface_hub` fail
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    with pytest.raises(UploadError, match="pip install huggingface_hub"):
        run(tmp_path, "--push")


def test_push_with_token_uploads_the_folder(tmp_path, monkeypatch, no_network):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create_repo", repo_id, kw.get("private")))

        def upload_folder(self, folder_path, repo_id, **kw):
            calls.append(("upload_folder", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    make_packed_zip(tmp_path / "model.zip")
    run(tmp_path, "--push", "--private")
    assert calls == [
        ("init", "hf_test_token"),
        ("create_repo", "someone/tokenverse_xlsr", True),
        ("upload_folder", "someone/tokenverse_xlsr", ["README.md", "data", "exp", "meta.yaml"]),
    ]


def test_card_defaults_for_a_config_without_tokenverse_conf():
    conf = fake_config()
    del conf["tokenverse_conf"]
    card = build_model_card("a/b", conf, ["meta.yaml"], results_md=None)
    assert "| `ner` | `[NE]` `[/NE]` |" in card and "`[FR]`" in card  # ESPnet defaults: every task
    assert "No results were given" in card


def test_exp_dir_is_packed_with_espnets_packer(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)  # the recipe dir: paths in the config are relative to it
    exp = Path(EXP)
    (exp / "images").mkdir(parents=True)
    (exp / "config.yaml").write_text(yaml.safe_dump(fake_config(), allow_unicode=True))
    (exp / "2epoch.pth").write_bytes(b"weights")
    (exp / "valid.loss.ave.pth").symlink_to("2epoch.pth")  # as ESPnet's averaging leaves it for 1 best
    (exp / "RESULTS.md").write_text(RESULTS)
    (exp / "images" / "loss.png").write_bytes(b"png")
    Path(BPE).parent.mkdir(parents=True)
    Path(BPE).write_bytes(b"spm")
    upload_model.run(["--exp_dir", EXP, "--repo_id", "someone/tv", "--out_dir", "exp/hub_upload"])
    out = Path("exp/hub_upload")
    meta = yaml.safe_load((out / "meta.yaml").read_text())
    assert meta["files"] == {"asr_model_file": f"{EXP}/2epoch.pth"}  # ESPnet's packer resolves the symlink
    assert meta["yaml_files"] == {"asr_train_config": f"{EXP}/config.yaml"}
    assert (out / BPE).read_bytes() == b"spm" and (out / EXP / "images" / "loss.png").exists()
    assert yaml.safe_load((out / EXP / "config.yaml").read_text())["bpemodel"] == BPE
    assert RESULTS.strip() in (out / "README.md").read_text()
