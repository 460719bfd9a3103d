"""The encoder pretraining recipe (egs2/mini_tokenverse/ssl1): disjoint corpus, both objectives, resume, export."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_setup import write_noise_dir

from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_plan as P
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W
from espnet2_ext.corpora.mini_tokenverse import ssl_corpus as S

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "ESPNET2_EXT_VENV": sys.prefix}


def test_plan_is_disjoint_from_mini_tokenverse():
    plans = S.plan(hours=0.3, seed=0)
    S.check_disjoint(plans)
    mini = P.plan_corpus(seed=0, size="default")
    mini_voices = {t.voice.espeak for ps in mini.values() for p in ps for t in p.turns}
    ssl_voices = {p.turns[0].voice.espeak for ps in plans.values() for p in ps}
    assert not mini_voices & ssl_voices
    entity_words = S.mini_entity_words()
    assert {"maria", "siemens", "münchen"} <= entity_words
    for ps in plans.values():
        for p in ps:
            assert not entity_words & set(p.turns[0].tokens)
    # every language, train and dev, dev speakers unseen in train
    assert {p.lang for p in plans["train"]} == set(W.LANGUAGES)
    assert not {p.speaker for p in plans["dev"]} & {p.speaker for p in plans["train"]}
    assert S.plan(hours=0.3, seed=0)["train"][5] == plans["train"][5]  # a function of the seed
    assert S.plan(hours=0.3, seed=1)["train"][5] != plans["train"][5]


def test_check_disjoint_catches_each_rule():
    base = S.plan(hours=0.05, seed=0)["train"][0]
    voice = base.turns[0].voice

    def with_turn(tokens, espeak=voice.espeak):
        v = dataclasses.replace(voice, espeak=espeak)
        return {"train": [dataclasses.replace(base, turns=(P.Turn(v, tuple(tokens), 0.0),))]}

    assert ("how", "are", "you") in S.template_runs()
    with pytest.raises(ValueError, match="mini_tokenverse voice"):
        S.check_disjoint(with_turn(base.turns[0].tokens, espeak="en-us+m3"))
    with pytest.raises(ValueError, match="entity"):
        S.check_disjoint(with_turn(["we", "saw", "maria"]))
    with pytest.raises(ValueError, match="template phrase"):
        S.check_disjoint(with_turn(["well", "hello", "how", "are", "you", "today"]))


def test_span_mask_and_frames():
    from espnet2_ext.ssl.targets import n_frames, span_mask

    assert n_frames(16000) == 49 and n_frames(399) == 0
    g = torch.Generator().manual_seed(0)
    m = span_mask((2, 50), [50, 20], prob=0.5, length=5, gen=g)
    assert m.shape == (2, 50) and not m[1, 20:].any()  # never inside padding
    assert 0.2 < m[0].float().mean() < 0.6


def _recipe(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(
        REPO / "egs2",
        tmp_path / "egs2",
        symlinks=True,
        ignore=shutil.ignore_patterns("data", "dump", "exp", "exp_grid", "downloads", "RESULTS.md", "*.pt"),
    )
    return tmp_path / "egs2" / "mini_tokenverse" / "ssl1"


SMOKE = [
    "--hours",
    "0.01",
    "--tag",
    "smoke",
    "--out",
    "pretrained_smoke/x.pt",
    "--batch_seconds",
    "6",
    "--pretrain_args",
    "--n_clusters 8 --kmeans_frames 3000 --save_every 2 --log_every 1 --warmup_steps 2",
]


@pytest.mark.parametrize("objective", ["hubert", "ctc"])
def test_recipe_smoke_resumes_and_exports_a_loadable_checkpoint(tmp_path, objective):
    recipe = _recipe(tmp_path)

    def run(*extra):
        cmd = ["./run.sh", "--objective", objective, *SMOKE, *extra]
        return subprocess.run(cmd, cwd=recipe, env=ENV, capture_output=True, text=True, timeout=600)

    r = run("--max_steps", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"pretrain[{objective}] step 3/3" in r.stdout
    r = run("--stage", "2", "--max_steps", "5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed at step 3" in r.stdout and "step 5/5" in r.stdout
    ck = torch.load(recipe / "exp/pretrain_smoke/checkpoint.pt", weights_only=True)
    assert ck["state"]["step"] == 5
    # other settings than the stored ones: refused with a clear message, nothing changed
    r = run("--stage", "2", "--stop_stage", "2", "--max_steps", "6", "--seed", "3")
    assert r.returncode != 0 and "other settings (seed)" in r.stderr

    # the export is what S3PRL's wav2vec2_local upstream loads, through our frontend, with the trained weights
    from espnet2_ext.asr.frontend.task_conditioned_s3prl import TaskConditionedS3prlFrontend

    path = recipe / "pretrained_smoke/x.pt"
    exported_bytes = path.read_bytes()
    exported = torch.load(path, weights_only=True)
    assert exported["task_cfg"] == {"normalize": True}
    w = exported["model_weight"]["encoder.layers.0.fc1.weight"]
    assert w.dtype == torch.float16
    assert torch.equal(w.float(), ck["model"]["wav2vec2.encoder.layers.0.fc1.weight"].half().float())
    fe = TaskConditionedS3prlFrontend(
        frontend_conf={"upstream": "wav2vec2_local", "path_or_url": str(path)}, multilayer_feature=True
    )
    loaded = dict(fe.upstream.upstream.model.named_parameters())["encoder.layers.0.fc1.weight"]
    assert torch.equal(loaded.detach(), w.float())
    readme = (recipe / "pretrained_smoke/README.md").read_text()
    import hashlib

    assert hashlib.sha256(path.read_bytes()).hexdigest() in readme and f"`{objective}`" in readme
    feats, lens = fe(torch.randn(1, 16000), torch.tensor([16000]))
    assert feats.shape[:2] == (1, 49) and lens.tolist() == [49]
    # exporting again gives the same bytes (the README's sha256 stays true); notes are appended to the README
    (recipe / "local").mkdir(exist_ok=True)
    (recipe / "local" / "notes_smoke.md").write_text("## History\nmade by the smoke test\n")
    r = run("--stage", "3", "--max_steps", "5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert path.read_bytes() == exported_bytes
    readme = (recipe / "pretrained_smoke/README.md").read_text()
    assert readme.rstrip().endswith("made by the smoke test") and hashlib.sha256(exported_bytes).hexdigest() in readme
    if objective != "hubert":
        return
    # the shipped second stage: CTC from the exported weights, through the recipe (its README says what it started
    # from, and its command names the tag and output, so re-running it cannot overwrite the first stage)
    second = [
        "--objective",
        "ctc",
        "--hours",
        "0.01",
        "--tag",
        "smoke_ctc",
        "--out",
        "pretrained_smoke_ctc/y.pt",
        "--batch_seconds",
        "6",
        "--max_steps",
        "2",
        "--stage",
        "2",
        "--pretrain_args",
        "--init_from pretrained_smoke/x.pt --log_every 1 --warmup_steps 1",
    ]
    r = subprocess.run(["./run.sh", *second], cwd=recipe, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "wav2vec2 weights from pretrained_smoke/x.pt" in r.stdout
    readme = (recipe / "pretrained_smoke_ctc/README.md").read_text()
    assert f"`pretrained_smoke/x.pt` (sha256 `{hashlib.sha256(exported_bytes).hexdigest()}`" in readme
    assert "--tag smoke_ctc --out pretrained_smoke_ctc/y.pt" in readme
    assert path.read_bytes() == exported_bytes  # the first stage's file is untouched


def test_init_from_starts_a_second_stage_from_exported_weights(tmp_path):
    """--init_from: the exported wav2vec2 weights start a CTC stage (head new); resuming ignores it; another
    architecture and a non-checkpoint file are refused with the file's name."""
    from espnet2_ext.ssl.pretrain import PretrainConfig, pretrain
    from espnet2_ext.upstream.xlsr_standin import model_cfg_for, save_checkpoint

    data = write_noise_dir(tmp_path)
    init = save_checkpoint(str(tmp_path / "init.pt"), model_cfg_for("tiny"), seed=7)
    want = torch.load(init, weights_only=True)["model_weight"]
    cfg = PretrainConfig(objective="ctc", preset="tiny", max_steps=0, threads=1, init_from=str(init))
    ck = torch.load(pretrain(data, tmp_path / "exp", cfg, log=lambda s: None), weights_only=True)
    for k, v in want.items():
        assert torch.equal(ck["model"][f"wav2vec2.{k}"], v.float()), k
    fresh = PretrainConfig(objective="ctc", preset="tiny", max_steps=0, threads=1)
    ck0 = torch.load(pretrain(data, tmp_path / "exp0", fresh, log=lambda s: None), weights_only=True)
    assert not torch.equal(ck0["model"]["wav2vec2.encoder.layers.0.fc1.weight"], want["encoder.layers.0.fc1.weight"])

    # one step, then resume: the trained weights continue, the init file is not read again
    lines = []
    cfg1 = dataclasses.replace(cfg, max_steps=1, batch_seconds=2.0)
    with pytest.raises(ValueError, match="other settings"):  # max_steps may change, batch_seconds may not
        pretrain(data, tmp_path / "exp", cfg1, log=lines.append)
    cfg1 = dataclasses.replace(cfg, max_steps=1)
    pretrain(data, tmp_path / "exp", cfg1, log=lines.append)
    assert any("resumed at step 0" in s for s in lines) and not any("weights from" in s for s in lines)
    stepped = torch.load(tmp_path / "exp" / "checkpoint.pt", weights_only=True)
    assert stepped["state"]["step"] == 1
    assert not torch.equal(
        stepped["model"]["wav2vec2.encoder.layers.0.fc1.weight"], want["encoder.layers.0.fc1.weight"].float()
    )

    # the provenance README names the file it started from, with its sha256
    import hashlib

    from espnet2_ext.ssl.checkpoints import export, provenance_markdown

    info = export(tmp_path / "exp" / "checkpoint.pt", tmp_path / "out" / "x.pt")
    readme = provenance_markdown(tmp_path / "exp", info)
    assert f"`{init}` (sha256 `{hashlib.sha256(init.read_bytes()).hexdigest()}`" in readme
    assert "random initialisation" in provenance_markdown(tmp_path / "exp0", info)

    with pytest.raises(ValueError, match=r"init\.pt: another architecture \(encoder_layers"):
        pretrain(data, tmp_path / "exp_mini", dataclasses.replace(cfg, preset="mini"), log=lambda s: None)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: not an exported stand-in"):
        pretrain(data, tmp_path / "exp_junk", dataclasses.replace(cfg, init_from=str(junk)), log=lambda s: None)
    with pytest.raises(FileNotFoundError, match="missing.pt: no such file"):
        pretrain(
            data,
            tmp_path / "exp_none",
            dataclasses.replace(cfg, init_from=str(tmp_path / "missing.pt")),
            log=lambda s: None,
        )


def test_n_words_widens_the_word_list_and_names_its_own_wav_folder():
    small = {w for p in S.plan(hours=0.3, seed=0)["train"] for w in p.turns[0].tokens}
    wide_plan = S.plan(hours=0.3, seed=0, n_words=20000)
    S.check_disjoint(wide_plan)  # the disjointness rules hold for any word list
    wide = {w for p in wide_plan["train"] for w in p.turns[0].tokens}
    top = {lang: set(S.word_list(lang)[0]) for lang in W.LANGUAGES}
    assert small <= set().union(*top.values())
    assert len(wide - set().union(*top.values())) > len(wide) // 3  # mostly words past each 4000-word list
    assert S.corpus_name(4, 0) == "h4-seed0" and S.corpus_name(6, 0, 20000) == "h6-seed0-w20000"
    with pytest.raises(ValueError, match="n_words must be at least 100"):
        S.plan(hours=0.1, n_words=10)
    from espnet2_ext.bin.prepare_ssl_corpus import main

    assert main(["--out_dir", "/nonexistent", "--asr_lid_per_lang", "3", "--n_words", "20000"]) != 0
