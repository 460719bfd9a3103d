"""Builders shared by tests: a tiny XLSR stand-in, a tiny Kaldi data dir with partial labels, a tiny config."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile as sf
import yaml

# (utt-id, text, utt2tasks): 2 fully annotated utterances, 2 with ASR + LID only.
UTTS = [
    ("spk1-u1", "[EN] hello [NE] maria [/NE] [ENDP] [SCD] fine thanks [ENDP]", "asr scd endp ner lid"),
    ("spk1-u2", "[DE] guten tag [NE] berlin [/NE] [ENDP]", "asr scd endp ner lid"),
    ("spk2-u3", "[EN] hello fine", "asr lid"),
    ("spk2-u4", "[DE] guten thanks", "asr lid"),
]


def write_standin(path: Path) -> Path:
    from espnet2_ext.upstream.xlsr_standin import model_cfg_for, save_checkpoint

    return save_checkpoint(str(path), model_cfg_for("tiny"))


def write_data_dir(root: Path, seed: int = 0) -> Path:
    """Audio a tiny model can learn quickly: every token of the reference (word or tag) is a 0.1 s tone of its
    own frequency, so the alignment is local (a toy stand-in for speech)."""
    rng = np.random.default_rng(seed)
    d = root / "data"
    (d / "wav").mkdir(parents=True, exist_ok=True)
    vocab = token_list()
    seg = int(16000 * 0.1)
    t = np.arange(seg) / 16000
    scp, text, tasks, utt2spk, shape = [], [], [], [], []
    for utt, txt, tsk in UTTS:
        parts = [np.zeros(seg // 2)]
        for w in txt.split():
            parts += [0.3 * np.sin(2 * np.pi * (250 + 90 * vocab.index(w)) * t) * np.hanning(seg), np.zeros(seg // 4)]
        wav = np.concatenate(parts) + 0.005 * rng.standard_normal(sum(len(p) for p in parts))
        p = d / "wav" / f"{utt}.wav"
        sf.write(p, wav.astype(np.float32), 16000, subtype="PCM_16")
        scp.append(f"{utt} {p}")
        text.append(f"{utt} {txt}")
        tasks.append(f"{utt} {tsk}")
        utt2spk.append(f"{utt} {utt.split('-')[0]}")
        shape.append(f"{utt} {len(wav)}")
    for name, lines in (
        ("wav.scp", scp),
        ("text", text),
        ("utt2tasks", tasks),
        ("utt2spk", utt2spk),
        ("speech_shape", shape),
    ):
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def write_noise_dir(root: Path, name: str = "data", n: int = 3, seed: int = 0) -> Path:
    """A Kaldi dir (wav.scp + text) of ``n`` 16 kHz noise utterances of growing length, each transcribed "ab ba":
    what the stand-in pretraining needs to run its steps (nothing to learn)."""
    d = root / name
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    with open(d / "wav.scp", "w") as scp, open(d / "text", "w") as text:
        for i in range(n):
            path = d / f"u{i}.wav"
            sf.write(path, (rng.standard_normal(8000 + 1600 * i) * 3000).astype("int16"), 16000)
            scp.write(f"u{i} {path}\n")
            text.write(f"u{i} ab ba\n")
    return d


def token_list() -> List[str]:
    words = sorted({w for _, txt, _ in UTTS for w in txt.split()})
    return ["<blank>", "<unk>"] + words + ["<sos/eos>"]


def write_config(root: Path, standin: Path, **overrides) -> Path:
    conf: Dict = {
        "frontend": "s3prl_tokenverse",
        "frontend_conf": {
            "frontend_conf": {"upstream": "wav2vec2_local", "path_or_url": str(standin)},
            "multilayer_feature": True,
            "task_vector_strategy": "per_task",
            "task_vector_injection": "feature_encoder",
        },
        "normalize": None,
        "encoder": "identity",
        "decoder": "transducer",
        "decoder_conf": {"rnn_type": "lstm", "num_layers": 1, "hidden_size": 32},
        "joint_net_conf": {"joint_space_size": 32},
        "model": "tokenverse",
        "model_conf": {
            "ctc_weight": 0.3,
            "report_cer": False,
            "report_wer": False,
            "extract_feats_in_collect_stats": False,
        },
        "preprocessor": "tokenverse",
        "tokenverse_conf": {"policy": "sample"},
        "token_type": "word",
        "optim": "adam",
        "optim_conf": {"lr": 0.01},
        "batch_type": "unsorted",
        "batch_size": 4,
        "max_epoch": 2,
        "num_iters_per_epoch": 4,
        "num_workers": 0,
        "seed": 0,
        "best_model_criterion": [["valid", "loss", "min"]],
        "keep_nbest_models": 1,
    }
    for k, v in overrides.items():
        conf[k] = v
    p = root / "train.yaml"
    p.write_text(yaml.safe_dump(conf), encoding="utf-8")
    tl = root / "tokens.txt"
    tl.write_text("\n".join(token_list()) + "\n", encoding="utf-8")
    return p


def train_args(root: Path, data: Path, config: Path, out: Path) -> List[str]:
    args = [
        "--config",
        str(config),
        "--output_dir",
        str(out),
        "--token_list",
        str(root / "tokens.txt"),
        "--ngpu",
        "0",
        "--use_tensorboard",
        "false",
    ]
    for split in ("train", "valid"):
        for f, name, typ in (("wav.scp", "speech", "sound"), ("text", "text", "text"), ("utt2tasks", "tasks", "text")):
            args += [f"--{split}_data_path_and_name_and_type", f"{data / f},{name},{typ}"]
        args += [f"--{split}_shape_file", str(data / "speech_shape")]
    return args


def build_tiny_model(
    root: Path, strategy: str = "per_task", injection: str = "feature_encoder", seed: int = 0, policy: str = "sample"
):
    """A tiny TokenVerse model built by the task's own builders, with its preprocessor, collate function and the
    four utterances (id, {speech, text, tasks}) of ``UTTS``; torch and NumPy seeded with ``seed`` first."""
    import numpy as np
    import soundfile as sf
    import torch

    from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask

    root.mkdir(parents=True, exist_ok=True)
    standin = root / "tiny.pt"
    if not standin.exists():
        write_standin(standin)
    data = write_data_dir(root)
    fconf = {
        "frontend_conf": {"upstream": "wav2vec2_local", "path_or_url": str(standin)},
        "multilayer_feature": True,
        "task_vector_strategy": strategy,
        "task_vector_injection": injection,
    }
    config = write_config(root, standin, frontend_conf=fconf, tokenverse_conf={"policy": policy})
    args = TokenVerseASRTask.get_parser().parse_args(train_args(root, data, config, root / "exp"))
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = TokenVerseASRTask.build_model(args)
    preprocess = TokenVerseASRTask.build_preprocess_fn(args, train=True)
    collate = TokenVerseASRTask.build_collate_fn(args, train=True)
    items = []
    for utt, text, tasks in UTTS:
        wav, _ = sf.read(data / "wav" / f"{utt}.wav", dtype="float32")
        items.append((utt, {"speech": wav, "text": text, "tasks": tasks}))
    return model, preprocess, collate, items


def padded_batch(data: Path):
    """The data dir's utterances (``UTTS`` order) as a padded batch: speech [B, S] float32, lengths [B]."""
    import torch

    xs = [torch.from_numpy(sf.read(data / "wav" / f"{u}.wav", dtype="float32")[0]) for u, _, _ in UTTS]
    return torch.nn.utils.rnn.pad_sequence(xs, batch_first=True), torch.tensor([len(x) for x in xs])


def pack_model(
    root: Path, zip_path: Path, config: str = "exp/config.yaml", model_file: str = "exp/valid.loss.best.pth"
) -> Path:
    """ESPnet's packer (``python -m espnet2.bin.pack asr``) run from ``root``, as the recipe runs it (``config`` and
    ``model_file`` relative to ``root``, so the zip holds relative paths), into ``zip_path``."""
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "espnet2.bin.pack",
            "asr",
            "--asr_train_config",
            config,
            "--asr_model_file",
            model_file,
            "--outpath",
            str(zip_path),
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return zip_path
