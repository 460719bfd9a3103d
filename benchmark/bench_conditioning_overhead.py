"""Training-step time of the task-conditioned model vs the same model without task vectors (one run, ratio).

    python benchmark/bench_conditioning_overhead.py [--preset mini] [--steps 10] [--batch 8] [--seconds 4]

Both models share the architecture (XLSR stand-in + transducer); the only difference is
``task_vector_strategy: per_task`` (vectors at the feature encoder and the encoder output) vs ``none``. Steps of
the two are interleaved so machine noise hits both alike. Goal: ratio <= 1.02.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import espnet2_ext  # noqa: F401


def build(standin: Path, strategy: str, vocab: int):
    from espnet2.asr.ctc import CTC
    from espnet2.asr.decoder.transducer_decoder import TransducerDecoder
    from espnet2.asr_transducer.joint_network import JointNetwork

    from espnet2_ext.asr.encoder.identity_encoder import IdentityEncoder
    from espnet2_ext.asr.frontend.task_conditioned_s3prl import TaskConditionedS3prlFrontend
    from espnet2_ext.asr.tokenverse_model import TokenVerseASRModel

    torch.manual_seed(0)
    fe = TaskConditionedS3prlFrontend(
        frontend_conf={"upstream": "wav2vec2_local", "path_or_url": str(standin)},
        multilayer_feature=True,
        task_vector_strategy=strategy,
        task_vector_injection="both",
    )
    enc = IdentityEncoder(fe.output_size())
    dec = TransducerDecoder(vocab, hidden_size=256)
    joint = JointNetwork(vocab, enc.output_size(), 256, joint_space_size=256)
    tokens = ["<blank>"] + [f"t{i}" for i in range(vocab - 2)] + ["<sos/eos>"]
    return TokenVerseASRModel(
        vocab,
        tokens,
        fe,
        None,
        None,
        None,
        enc,
        None,
        dec,
        CTC(vocab, enc.output_size()),
        joint,
        rnnt_loss="pruned",
        ctc_weight=0.0,
        report_cer=False,
        report_wer=False,
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="mini")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--vocab", type=int, default=150)
    args = p.parse_args(argv)
    from espnet2_ext.upstream.xlsr_standin import model_cfg_for, save_checkpoint

    standin = save_checkpoint(str(Path(tempfile.mkdtemp()) / "standin.pt"), model_cfg_for(args.preset))
    models = {s: build(standin, s, args.vocab) for s in ("none", "per_task")}
    opts = {s: torch.optim.Adam(m.parameters(), 1e-4) for s, m in models.items()}
    n = int(16000 * args.seconds)
    g = torch.Generator().manual_seed(0)
    speech = torch.randn(args.batch, n, generator=g)
    lens = torch.full((args.batch,), n)
    text = torch.randint(1, args.vocab - 1, (args.batch, int(args.seconds * 8)), generator=g)
    tlens = torch.full((args.batch,), text.size(1))
    mask = torch.randint(0, 2, (args.batch, 5), generator=g)
    mask[:, 0] = 1
    times = {s: [] for s in models}
    for step in range(args.steps + 1):
        order = list(models) if step % 2 else list(models)[::-1]  # alternate, so order effects cancel
        for s in order:
            m = models[s]
            t = time.perf_counter()
            loss, _, _ = m(speech, lens, text.clone(), tlens, task_mask=mask)
            opts[s].zero_grad()
            loss.backward()
            opts[s].step()
            if step:  # the first step warms up allocators
                times[s].append(time.perf_counter() - t)
    med = {s: sorted(v)[len(v) // 2] for s, v in times.items()}
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, python {platform.python_version()}"
    )
    print(f"command: python {' '.join(sys.argv)}")
    print(f"median step time without task vectors: {med['none'] * 1000:.1f} ms")
    print(f"median step time with task vectors   : {med['per_task'] * 1000:.1f} ms")
    print(f"ratio (with / without): {med['per_task'] / med['none']:.3f}  (goal <= 1.02)")


if __name__ == "__main__":
    main()
