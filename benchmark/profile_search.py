"""Profile our batched transducer searches: where the time of a frame goes.

    python benchmark/profile_search.py --search beam --batch_size 8 --frames 290 --vocab 150
    python benchmark/profile_search.py --search greedy --batch_size 8 --mode cprofile

Random decoder/joint of the mini recipe's shapes (LSTM 256, joint 256, vocab 150), blank calibrated as in
``bench_search.py --random`` (``--blank_rate``), or a trained model (``--asr_train_config``/``--asr_model_file``
with ``--data_dir``: the encoder outputs of its first ``--num_utts`` utterances). ``--mode torch`` prints
torch.profiler's operator table (self CPU time, calls); ``--mode cprofile`` prints Python's profile of the search
functions (time in Python loops vs. in torch calls, and ``tolist``/``item`` synchronisations by count).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_search  # noqa: E402
import torch  # noqa: E402

import espnet2_ext  # noqa: E402,F401  (first: keeps ESPnet's import offline)


def get_parser() -> argparse.ArgumentParser:
    p = bench_search.get_parser()
    p.description = __doc__
    p.set_defaults(vocab=150, hidden=256, joint_dim=256, enc_dim=256, frames=290, num_utts=24, batch_size=8)
    p.add_argument("--search", choices=["beam", "greedy", "stream_beam", "stream_greedy"], default="beam")
    p.add_argument("--mode", choices=["torch", "cprofile"], default="torch")
    p.add_argument("--chunk_frames", type=int, default=32, help="stream_*: frames per streaming call")
    p.add_argument("--top", type=int, default=25, help="rows of the table")
    return p


def make_runner(args, decoder, joint, batches):
    from espnet2_ext.asr.transducer.search import greedy_search_batch, modified_beam_search
    from espnet2_ext.asr.transducer.streaming_search import BeamStream, GreedyStream

    def stream(cls, **kw):
        for enc, lens in batches:
            for i in range(enc.size(0)):
                s = cls(decoder, joint, None, enc.device, **kw)
                for t in range(0, int(lens[i]), args.chunk_frames):
                    s.advance(enc[i : i + 1, t : min(t + args.chunk_frames, int(lens[i]))])
                s.nbest(1)

    return {
        "beam": lambda: [modified_beam_search(e, n, decoder, joint, beam=args.beam) for e, n in batches],
        "greedy": lambda: [greedy_search_batch(e, n, decoder, joint) for e, n in batches],
        "stream_beam": lambda: stream(BeamStream, beam=args.beam),
        "stream_greedy": lambda: stream(GreedyStream),
    }[args.search]


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    bench_search.print_environment(list(sys.argv[1:] if argv is None else argv), args.device)
    if args.random:
        decoder, joint, batches = bench_search.random_setup(args)
    else:
        decoder, joint, batches, *_ = bench_search.model_setup(args)
    run = make_runner(args, decoder, joint, batches)
    run()  # warm-up
    steps = sum(int(lens.max()) for _, lens in batches)
    start = time.perf_counter()
    run()
    wall = time.perf_counter() - start
    print(
        f"{args.search}: {wall:.3f} s for {len(batches)} batches, {steps} frame steps "
        f"({1e3 * wall / steps:.3f} ms per frame step)"
    )
    if args.mode == "torch":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    else:
        pr = cProfile.Profile()
        pr.enable()
        run()
        pr.disable()
        out = io.StringIO()
        pstats.Stats(pr, stream=out).sort_stats("tottime").print_stats(args.top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
