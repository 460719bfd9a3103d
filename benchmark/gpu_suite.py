"""GPU suite (issue #32): what the project costs at the scale its users train. Run by ``benchmark/gpu_suite.sh``.

Sections (each prints its rows; a failing section prints its error and the others still run):

1. fine-tuning step of an XLS-R-300M-shaped model (``xlsr_standin`` preset ``xlsr_300m``: S3PRL wav2vec2 large
   config, random weights) with task vectors (``per_task``), the transducer and our pruned loss, bf16 autocast,
   AdamW: step time and peak memory at a fixed batch, and the largest batch (seconds of audio, utterances of
   ``--utt_seconds``) that fits in 80 GB (or the card, if smaller), with and without a frozen CNN;
2. our pruned RNN-T loss vs torchaudio's ``rnnt_loss`` (full lattice), forward + backward, at B 16, T 500,
   U 100, V 500 (``bench_pruned_loss.run_variant``): time and peak memory;
3. batched modified beam search (beam 4) throughput at batch 64 (random decoder/joint, vocab 500);
4. DDP (``torch.nn.parallel.DistributedDataParallel``, NCCL, one process per GPU) of the fine-tuning step when
   the machine has more than one GPU: step time per GPU vs one.

``--tiny``: the same code at tiny sizes on the CPU (``test/benchmark/test_gpu_suite.py`` runs it), so the suite
cannot rot.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import espnet2_ext  # noqa: E402,F401  (first: keeps ESPnet's import offline)

CAP_BYTES = 80 * 10**9  # "largest batch at 80 GB"
Row = List[str]


def largest_fitting(fits: Callable[[int], bool], start: int, limit: int) -> int:
    """Largest n in [1, limit] with ``fits(n)`` (assumed monotone), by doubling from ``start`` then bisection;
    0 if not even 1 fits."""
    lo, hi = 0, None  # lo fits (0 trivially), hi does not
    n = max(1, min(start, limit))
    while hi is None:
        if fits(n):
            lo = n
            if n >= limit:
                return n
            n = min(2 * n, limit)
        else:
            hi = n
    while hi - lo > max(1, lo // 16):  # within ~6 %: each probe is a full training step
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def bf16_autocast_runs(device: torch.device) -> bool:
    """Whether bf16 autocast can run the model here: on a GPU, yes. On a CPU it needs oneDNN's bf16 kernels (AVX-512
    BF16 or AMX): without them oneDNN cannot create the LSTM primitive at all, so a CPU without them runs in float32."""
    if device.type != "cpu":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class FineTune:
    """The task-conditioned transducer on an XLSR stand-in, one AdamW step at a time in bf16 autocast (float32 on a
    CPU without bf16 kernels: ``bf16_autocast_runs``)."""

    def __init__(self, preset: str, device: torch.device, vocab: int):
        from bench_conditioning_overhead import build

        from espnet2_ext.upstream.xlsr_standin import model_cfg_for, save_checkpoint

        ckpt = save_checkpoint(str(Path(tempfile.mkdtemp(prefix="gpu_suite_")) / "standin.pt"), model_cfg_for(preset))
        self.model = build(ckpt, "per_task", vocab).to(device)
        self.device, self.vocab = device, vocab
        self.bf16 = bf16_autocast_runs(device)
        self.ssl = self.model.frontend._wav2vec2  # the S3PRL wav2vec2 model under the frontend
        self.opt: Optional[torch.optim.Optimizer] = None

    def freeze_cnn(self, frozen: bool) -> None:
        """Frozen CNN as in fine-tuning recipes: no gradients and no stored activations for the conv stack."""
        self.ssl.feature_extractor.requires_grad_(not frozen)
        self.ssl.feature_grad_mult = 0.0 if frozen else 1.0
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=1e-5)

    def step(self, n_utts: int, seconds: float) -> None:
        g = torch.Generator(device="cpu").manual_seed(n_utts)
        samples = int(16000 * seconds)
        speech = torch.randn(n_utts, samples, generator=g).to(self.device)  # [B, S]
        lens = torch.full((n_utts,), samples, dtype=torch.long, device=self.device)
        n_tok = max(2, int(seconds * 4))  # ~4 labels per second, a transcript's rate with task tags
        text = torch.randint(1, self.vocab - 1, (n_utts, n_tok), generator=g).to(self.device)
        tlens = torch.full((n_utts,), n_tok, dtype=torch.long, device=self.device)
        mask = torch.ones(n_utts, 5, dtype=torch.long, device=self.device)  # all tasks on
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            loss, _, _ = self.model(speech, lens, text, tlens, task_mask=mask)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed_steps(ft: FineTune, n_utts: int, seconds: float, steps: int) -> Dict[str, float]:
    ft.step(n_utts, seconds)  # warm-up (allocator, cuDNN choices)
    if ft.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        _sync(ft.device)
        t0 = time.perf_counter()
        ft.step(n_utts, seconds)
        _sync(ft.device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if ft.device.type == "cuda" else float("nan")
    return {"step_s": sorted(times)[len(times) // 2], "peak_gib": peak}


def fits_on_card(ft: FineTune, seconds: float) -> Callable[[int], bool]:
    def fits(n: int) -> bool:
        try:
            ft.step(n, seconds)
            _sync(ft.device)
            return True
        except torch.cuda.OutOfMemoryError:
            ft.opt.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            return False

    return fits


def section_finetune(args, device) -> List[Row]:
    rows = []
    ft = FineTune(args.preset, device, args.vocab)
    n_params = sum(p.numel() for p in ft.model.parameters()) / 1e6
    for frozen in (False, True):
        ft.freeze_cnn(frozen)
        r = timed_steps(ft, args.batch, args.utt_seconds, args.steps)
        what = f"fine-tune {args.preset} ({n_params:.0f} M), CNN {'frozen' if frozen else 'trained'}"
        audio = args.batch * args.utt_seconds
        rows.append(
            [
                what,
                f"batch {args.batch} x {args.utt_seconds:g} s",
                f"{r['step_s']:.3f} s/step",
                f"{r['peak_gib']:.1f} GiB peak" if device.type == "cuda" else "peak n/a (CPU)",
                f"{audio / r['step_s']:.0f} s audio/s",
            ]
        )
        if device.type == "cuda":
            total = torch.cuda.get_device_properties(0).total_memory
            torch.cuda.set_per_process_memory_fraction(min(1.0, CAP_BYTES / total))
            n = largest_fitting(fits_on_card(ft, args.utt_seconds), args.batch, args.max_utts)
            rows.append(
                [
                    what,
                    f"largest batch at {min(CAP_BYTES, total) / 1e9:.0f} GB",
                    f"{n} x {args.utt_seconds:g} s = {n * args.utt_seconds:.0f} s audio",
                    "",
                    "",
                ]
            )
            torch.cuda.set_per_process_memory_fraction(1.0)
            torch.cuda.empty_cache()
    return rows


def section_loss(args, device) -> List[Row]:
    import bench_pruned_loss

    B, T, U, V = (16, 500, 100, 500) if not args.tiny else (2, 20, 5, 20)
    base = [
        "--device",
        device.type,
        "--batch",
        str(B),
        "--frames",
        str(T),
        "--labels",
        str(U),
        "--vocab",
        str(V),
        "--repeats",
        str(args.steps),
        "--warmup",
        "1",
    ]
    rows, res = [], {}
    for variant in ("pruned", "full"):
        a = bench_pruned_loss.build_parser().parse_args(base + ["--variant", variant, "--measure", "time"])
        res[variant] = bench_pruned_loss.run_variant(a)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            a.measure = "memory"
            res[variant].update(bench_pruned_loss.run_variant(a))
        name = "ours (pruned)" if variant == "pruned" else "torchaudio rnnt_loss (full)"
        peak = res[variant].get("peak_mib")
        rows.append(
            [
                f"RNN-T loss fwd+bwd: {name}",
                f"B {B} T {T} U {U} V {V}",
                f"{res[variant]['time_s']:.4f} s",
                f"{peak:.0f} MiB peak" if peak is not None and device.type == "cuda" else "peak n/a (CPU)",
                "",
            ]
        )
    ratio = res["pruned"]["time_s"] / res["full"]["time_s"]
    rows.append(["RNN-T loss: ours / torchaudio time", "", f"{ratio:.2f}", "", ""])
    return rows


def section_beam(args, device) -> List[Row]:
    import bench_search

    from espnet2_ext.asr.transducer.search import modified_beam_search

    batch, frames, vocab = (64, 500, 500) if not args.tiny else (4, 20, 20)
    p = bench_search.get_parser()
    a = p.parse_args(
        [
            "--random",
            "--num_utts",
            str(2 * batch),
            "--frames",
            str(frames),
            "--vocab",
            str(vocab),
            "--batch_size",
            str(batch),
            "--device",
            device.type,
            "--threads",
            "0",
        ]
    )
    dec, joint, batches = bench_search.random_setup(a)
    modified_beam_search(*batches[0], dec, joint, beam=4)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for enc, lens in batches:
        modified_beam_search(enc, lens, dec, joint, beam=4)
    _sync(device)
    dt = time.perf_counter() - t0
    n = sum(enc.size(0) for enc, _ in batches)
    frames_total = sum(int(lens.sum()) for _, lens in batches)
    return [
        [
            f"modified beam search, beam 4, batch {batch}",
            f"V {vocab}, {frames} frames max",
            f"{n / dt:.1f} utt/s",
            f"{frames_total / dt:.0f} frames/s",
            f"{dt:.2f} s for {n} utts",
        ]
    ]


def _ddp_worker(rank: int, world: int, args, out) -> None:
    import os

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.distributed.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    ft = FineTune(args.preset, torch.device("cuda", rank), args.vocab)
    ft.model = torch.nn.parallel.DistributedDataParallel(ft.model, device_ids=[rank], find_unused_parameters=True)
    ft.opt = torch.optim.AdamW([p for p in ft.model.parameters() if p.requires_grad], lr=1e-5)
    r = timed_steps(ft, args.batch, args.utt_seconds, args.steps)
    if rank == 0:
        out.put(r["step_s"])
    torch.distributed.destroy_process_group()


def section_ddp(args, device, single_step: Optional[float]) -> List[Row]:
    world = torch.cuda.device_count() if device.type == "cuda" else 1
    if world < 2:
        return [["DDP", f"{world} GPU", "not run (needs > 1 GPU)", "", ""]]
    import torch.multiprocessing as mp

    q = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_ddp_worker, args=(world, args, q), nprocs=world)
    step = q.get()
    rel = f"{step / single_step:.2f} x one GPU's step" if single_step else ""
    return [["DDP fine-tune (CNN trained)", f"{world} GPUs x batch {args.batch}", f"{step:.3f} s/step", rel, ""]]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny sizes on the CPU (the test)")
    p.add_argument("--sections", default="finetune,loss,beam,ddp")
    p.add_argument("--preset", default=None, help="stand-in preset (default xlsr_300m; tiny with --tiny)")
    p.add_argument("--batch", type=int, default=None, help="utterances per step (default 8; 2 with --tiny)")
    p.add_argument("--utt_seconds", type=float, default=None, help="seconds per utterance (default 15; 1 tiny)")
    p.add_argument("--max_utts", type=int, default=512, help="largest-batch search stops here")
    p.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 5; 2 tiny)")
    p.add_argument("--vocab", type=int, default=500)
    return p


def main(argv=None) -> List[Row]:
    args = get_parser().parse_args(argv)
    tiny = args.tiny
    args.preset = args.preset or ("tiny" if tiny else "xlsr_300m")
    args.batch = args.batch or (2 if tiny else 8)
    args.utt_seconds = args.utt_seconds or (1.0 if tiny else 15.0)
    args.steps = args.steps or (2 if tiny else 5)
    args.vocab = 20 if tiny else args.vocab
    device = torch.device("cpu" if tiny or not torch.cuda.is_available() else "cuda")
    card = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({platform.processor() or 'x86'})"
    precision = "bf16" if bf16_autocast_runs(device) else "float32"
    print(
        f"# GPU suite {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC | card: {card} | torch {torch.__version__} | "
        f"{'tiny sizes' if tiny else 'full sizes'} | fine-tuning in {precision}"
    )
    rows: List[Row] = []
    single = None
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        try:
            if name == "finetune":
                got = section_finetune(args, device)
                single = float(got[0][2].split()[0])
            elif name == "loss":
                got = section_loss(args, device)
            elif name == "beam":
                got = section_beam(args, device)
            elif name == "ddp":
                got = section_ddp(args, device, single)
            else:
                raise ValueError(f"unknown section '{name}' (choose from finetune, loss, beam, ddp)")
        except Exception as e:  # one broken section must not hide the others' numbers
            got = [[name, "FAILED", f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}", "", ""]]
        rows.extend(got)
        print(f"# section {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(f"| measure | setting | result | | | card: {card} |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " | |")
    return rows


if __name__ == "__main__":
    main()
