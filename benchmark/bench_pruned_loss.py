"""Benchmark: pruned RNN-T loss (ours, pure PyTorch) vs torchaudio's full RNN-T loss.

Each variant runs forward + backward of the whole transducer loss head, from
encoder/decoder outputs (both requiring grad) to the scalar loss:

* ``pruned``: ``PrunedRNNTLoss`` = simple-joiner loss + pruning bounds +
  ESPnet ``JointNetwork`` on a (B, T, prune_range, J) region + pruned loss;
* ``full``:   ``JointNetwork`` on the whole (B, T, U+1, J) lattice +
  ``torchaudio.functional.rnnt_loss``.

Each variant is measured in two fresh subprocesses, one for memory and one
for time.  Peak memory:

* CPU: the process' resident-set high-water mark (VmHWM in /proc/self/status)
  during one measured iteration, minus the resident set just before it.  The
  high-water mark is reset (``echo 5 > /proc/self/clear_refs``) after a warm-up
  iteration, and the subprocess runs with ``MALLOC_MMAP_THRESHOLD_=65536`` so
  glibc gives large freed blocks back to the OS (otherwise the warm-up's freed
  heap would be reused and hide the peak).  If clear_refs is unavailable the
  measured iteration is the first one and ``ru_maxrss`` is used.
* CUDA: ``torch.cuda.max_memory_allocated()`` minus the allocation before the
  iteration.

Time is the median wall time of ``--repeats`` forward+backward iterations
after ``--warmup`` ones, with the default allocator settings.
Usage: ``python benchmark/bench_pruned_loss.py [--device cuda]``.
"""

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def _status_kb(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_variant(args: argparse.Namespace) -> Dict[str, float]:
    """Build inputs, run one variant, return {'time_s', 'peak_mib', 'loss'}."""
    import torch
    from espnet2.asr_transducer.joint_network import JointNetwork

    import espnet2_ext  # noqa: F401
    from espnet2_ext.asr.transducer.pruned_rnnt_loss import PrunedRNNTLoss, full_rnnt_loss_torchaudio

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    B, T, U, V = args.batch, args.frames, args.labels, args.vocab
    jn = JointNetwork(V, args.encoder_dim, args.decoder_dim, joint_space_size=args.joint_dim).to(device)
    loss_mod = PrunedRNNTLoss(args.encoder_dim, args.decoder_dim, V, prune_range=args.prune_range).to(device)
    enc = torch.randn(B, T, args.encoder_dim, device=device, requires_grad=True)
    dec = torch.randn(B, U + 1, args.decoder_dim, device=device, requires_grad=True)
    targets = torch.randint(1, V, (B, U), device=device)
    t_lens = torch.full((B,), T, device=device, dtype=torch.long)
    u_lens = torch.full((B,), U, device=device, dtype=torch.long)
    params = list(jn.parameters()) + list(loss_mod.parameters()) + [enc, dec]

    def step() -> float:
        for p in params:
            p.grad = None
        if args.variant == "pruned":
            loss = loss_mod(enc, t_lens, dec, targets, u_lens, jn)
        else:
            logits = jn(enc.unsqueeze(2), dec.unsqueeze(1))  # ESPnet's full-lattice call
            loss = full_rnnt_loss_torchaudio(logits, targets, t_lens, u_lens, 0, "mean")
        loss.backward()
        return float(loss)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    if args.measure == "memory":
        return _measure_memory(step, sync, device.type)
    times: List[float] = []
    for _ in range(args.warmup):
        step()
    for _ in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        loss_value = step()
        sync()
        times.append(time.perf_counter() - t0)
    return {
        "time_s": statistics.median(times),
        "time_min_s": min(times),
        "loss": loss_value,
        "threads": torch.get_num_threads(),
    }


def _measure_memory(step, sync, device_type: str) -> Dict[str, float]:
    """Peak extra memory of one iteration, after a warm-up where the OS allows."""
    import torch

    if device_type == "cuda":
        step()
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        sync()
        return {
            "peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20,
            "memory_method": "torch.cuda.max_memory_allocated() delta, after a warm-up",
        }
    can_reset = _reset_hwm()
    if can_reset:
        step()
        _reset_hwm()
    rss_before = _status_kb("VmRSS") or 0
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    if can_reset:
        peak_kb = (_status_kb("VmHWM") or 0) - rss_before
        method = "VmHWM delta (clear_refs reset after a warm-up), MALLOC_MMAP_THRESHOLD_=65536"
    else:
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_kb = maxrss - rss_before
        method = "ru_maxrss delta, first iteration" + (" (lower bound)" if maxrss <= maxrss_before else "")
    return {"peak_mib": peak_kb / 1024, "memory_method": method}


def _machine_info(device: str) -> str:
    import torch
    import torchaudio

    info = [
        f"CPU: {_cpu_name()} ({os.cpu_count()} logical cores)",
        f"torch {torch.__version__}, torchaudio {torchaudio.__version__}, Python {platform.python_version()}",
    ]
    if device == "cuda" and torch.cuda.is_available():
        info.append(f"GPU: {torch.cuda.get_device_name(0)}")
    return "\n".join(info)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--labels", type=int, default=60)
    p.add_argument("--vocab", type=int, default=500)
    p.add_argument("--joint-dim", type=int, default=512)
    p.add_argument("--encoder-dim", type=int, default=256)
    p.add_argument("--decoder-dim", type=int, default=256)
    p.add_argument("--prune-range", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--variant", choices=["pruned", "full"], help=argparse.SUPPRESS)
    p.add_argument("--measure", choices=["time", "memory"], help=argparse.SUPPRESS)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.variant:  # child process: one variant, JSON on the last stdout line
        print(json.dumps(run_variant(args)))
        return 0

    argv = sys.argv[1:] if argv is None else list(argv)
    load_before = os.getloadavg()[0]
    results: Dict[str, Dict] = {}
    for variant in ("pruned", "full"):
        results[variant] = {}
        for measure in ("memory", "time"):
            env = dict(os.environ)
            if measure == "memory":  # freed large blocks go back to the OS at once
                env["MALLOC_MMAP_THRESHOLD_"] = "65536"
            cmd = [sys.executable, os.path.abspath(__file__), *argv, "--variant", variant, "--measure", measure]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"{variant}/{measure} run failed (exit {proc.returncode})")
            results[variant].update(json.loads(proc.stdout.strip().splitlines()[-1]))

    pr, fu = results["pruned"], results["full"]
    print(_machine_info(args.device))
    print(
        f"torch threads used: {pr['threads']}; 1-min load average before/after: "
        f"{load_before:.2f}/{os.getloadavg()[0]:.2f} (other processes skew CPU timings)"
    )
    print(
        f"device {args.device}; B={args.batch} T={args.frames} U={args.labels} V={args.vocab} "
        f"joint_dim={args.joint_dim} enc_dim={args.encoder_dim} dec_dim={args.decoder_dim} "
        f"prune_range={args.prune_range}; median of {args.repeats} fwd+bwd after {args.warmup} warm-up"
    )
    print(f"memory method: {pr['memory_method']}")
    print(f"{'variant':<28}{'time (s)':>10}{'peak (MiB)':>12}{'loss':>12}")
    for name, r in [(f"pruned (ours, range {args.prune_range})", pr), ("full (torchaudio)", fu)]:
        print(f"{name:<28}{r['time_s']:>10.4f}{r['peak_mib']:>12.1f}{r['loss']:>12.3f}")
    print(f"speed-up (full / pruned time): {fu['time_s'] / pr['time_s']:.2f}x")
    if pr["peak_mib"] >= 1.0:
        print(f"memory ratio (full / pruned peak): {fu['peak_mib'] / pr['peak_mib']:.2f}x")
    else:
        print("memory ratio: n/a (pruned peak below the 1 MiB resolution of this method)")
    print("reproduce: " + shlex.join(["python", "benchmark/bench_pruned_loss.py", *argv]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
