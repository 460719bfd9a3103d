"""Benchmark: our batched transducer searches vs ESPnet's ``BeamSearchTransducer`` on the same utterances.

Timing only (random model and random encoder outputs):
    python benchmark/bench_search.py --random --num_utts 16 --frames 200 --vocab 500

Trained model (WER needs data_dir/text; hypotheses are compared on words, task tokens stripped):
    python benchmark/bench_search.py --asr_train_config exp/asr/config.yaml \
        --asr_model_file exp/asr/valid.loss.ave.pth --data_dir data/test --max_utts 100

Before/after a change of the searches, in one run: ``--baseline GIT_REV`` (e.g. ``--baseline e04db31``) also times the
searches as they were at that revision; ``--stream_chunk 32`` also times the streaming searches per chunk.

Prints: machine and versions, the exact command, wall times of our modified beam search (batched) and ESPnet's
``default`` beam search (per utterance) with the same beam, their ratio, the same for greedy search, the share of
utterances where both give the same best tokens, and WERs when references exist. With a model it also prints the
encoder time, to put the decoder + joint cost of greedy search in proportion. Next to each wall time: the process's CPU
time (and the ESPnet/ours ratio of CPU times), which the waits for a core on a shared machine do not inflate.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

import espnet2_ext  # noqa: E402,F401  (first: keeps ESPnet's import offline)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--random", action="store_true", help="random decoder/joint and encoder outputs")
    mode.add_argument("--asr_train_config", help="config.yaml of a trained TokenVerse model")
    p.add_argument("--asr_model_file", help="model .pth (with --asr_train_config)")
    p.add_argument("--data_dir", help="Kaldi-style dir with wav.scp (and text for WER)")
    p.add_argument("--max_utts", type=int, default=50, help="first N utterances of data_dir")
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--batch_size", type=int, default=16, help="utterances per batch for our searches")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (0: torch default). Default 1: every search step is a tiny op, "
        "extra threads only add contention; both searches run under the same setting",
    )
    p.add_argument(
        "--no_length_norm",
        action="store_true",
        help="rank final hypotheses by raw score (default: by score / length, like ESPnet)",
    )
    p.add_argument("--skip_espnet", action="store_true", help="time only our searches")
    p.add_argument(
        "--baseline",
        metavar="GIT_REV",
        help="also time the searches of asr/transducer/ as they were at this git revision (same run, "
        "same data; their modules are read with `git show` into a temporary package)",
    )
    p.add_argument(
        "--stream_chunk",
        type=int,
        default=0,
        metavar="FRAMES",
        help="also time the streaming searches (BeamStream/GreedyStream, one utterance at a time) fed "
        "FRAMES encoder frames per call; prints the time per chunk",
    )
    g = p.add_argument_group("random mode")
    g.add_argument("--num_utts", type=int, default=16)
    g.add_argument("--frames", type=int, default=200, help="longest utterance; lengths are uniform in [T/2, T]")
    g.add_argument("--vocab", type=int, default=500)
    g.add_argument("--enc_dim", type=int, default=1024)
    g.add_argument("--hidden", type=int, default=320, help="prediction network size")
    g.add_argument("--joint_dim", type=int, default=320)
    g.add_argument(
        "--blank_rate",
        type=float,
        default=0.8,
        help="share of frames on which the random joint's argmax is blank (calibrated at start)",
    )
    g.add_argument("--seed", type=int, default=0)
    return p


def print_environment(argv: Sequence[str], device: str) -> None:
    import espnet

    cpu = platform.processor() or "?"
    if Path("/proc/cpuinfo").exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    print(f"command: {' '.join(shlex.quote(a) for a in [sys.executable, sys.argv[0], *argv])}")
    print(
        f"machine: {platform.node()} | {platform.platform()} | CPU: {cpu} x{os.cpu_count()} | "
        f"torch threads: {torch.get_num_threads()}"
    )
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "none used"
    print(
        f"versions: python {platform.python_version()} | torch {torch.__version__} | espnet {espnet.__version__} "
        f"| device {device} ({gpu})"
    )


def timed(fn: Callable, device: str):
    out, wall, _ = timed_cpu(fn, device)
    return out, wall


def timed_cpu(fn: Callable, device: str):
    """(output, wall seconds, CPU seconds of this process). On a CPU shared with other jobs the wall time includes
    the waits for a core, which vary from run to run; the process's CPU time does not."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - start, time.process_time() - cpu


@torch.no_grad()
def calibrate_blank(decoder, joint, args) -> None:
    """Bias the random joint's blank logit so that blank wins the argmax on ~blank_rate of the frames (a trained
    model emits blank on most frames; an unbiased random one would emit a symbol almost every frame)."""
    n = 2048
    enc = torch.randn(n, args.enc_dim)
    state = decoder.init_state(n)
    tokens = torch.randint(1, args.vocab, (n, 1))  # decoder outputs after a random symbol
    dec_out, _ = decoder.rnn_forward(decoder.embed(tokens), state)
    logits = joint(enc, dec_out[:, 0])
    margin = logits[:, 1:].max(dim=-1).values - logits[:, 0]
    joint.lin_out.bias[0] += float(torch.quantile(margin, args.blank_rate))


def random_setup(args) -> Tuple[torch.nn.Module, torch.nn.Module, List[Tuple[torch.Tensor, torch.Tensor]]]:
    from espnet2.asr.decoder.transducer_decoder import TransducerDecoder
    from espnet2.asr_transducer.joint_network import JointNetwork

    torch.manual_seed(args.seed)
    decoder = TransducerDecoder(args.vocab, hidden_size=args.hidden).eval()
    joint = JointNetwork(args.vocab, args.enc_dim, args.hidden, joint_space_size=args.joint_dim).eval()
    calibrate_blank(decoder, joint, args)
    decoder.to(args.device)
    decoder.set_device(torch.device(args.device))
    joint.to(args.device)
    lens = torch.randint(args.frames // 2, args.frames + 1, (args.num_utts,))
    enc = torch.randn(args.num_utts, args.frames, args.enc_dim)
    batches = [
        (
            enc[i : i + args.batch_size, : int(lens[i : i + args.batch_size].max())].to(args.device),
            lens[i : i + args.batch_size].to(args.device),
        )
        for i in range(0, args.num_utts, args.batch_size)
    ]
    return decoder, joint, batches


def model_setup(args):
    """Load the model, encode data_dir in batches; returns decoder, joint, batches, refs, id->text, encoder s."""
    try:
        from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask, task_spec_of
    except ImportError as e:
        raise SystemExit(f"model mode needs espnet2_ext.tasks.tokenverse_asr ({e}); use --random meanwhile")
    import numpy as np
    from espnet2.fileio.sound_scp import SoundScpReader
    from espnet2.text.build_tokenizer import build_tokenizer
    from espnet2.text.token_id_converter import TokenIDConverter

    from espnet2_ext.text.strip_tasks import strip_all_task_tokens

    if not args.asr_model_file or not args.data_dir:
        raise SystemExit("--asr_train_config needs --asr_model_file and --data_dir")
    wav_scp = Path(args.data_dir) / "wav.scp"
    if not wav_scp.exists():
        raise SystemExit(f"{wav_scp} not found: --data_dir must be a Kaldi-style dir with wav.scp")
    model, train_args = TokenVerseASRTask.build_model_from_file(args.asr_train_config, args.asr_model_file, args.device)
    model.eval()
    spec = task_spec_of(train_args)
    tokenizer = build_tokenizer(token_type=train_args.token_type, bpemodel=train_args.bpemodel)
    converter = TokenIDConverter(token_list=model.token_list)

    def to_words(ids: List[int]) -> str:
        return strip_all_task_tokens(tokenizer.tokens2text(converter.ids2tokens(ids)), spec)

    reader = SoundScpReader(str(wav_scp), dtype=np.float32)
    keys = list(reader.keys())[: args.max_utts]
    refs: Dict[str, str] = {}
    text = Path(args.data_dir) / "text"
    if text.exists():
        for line in text.read_text(encoding="utf-8").splitlines():
            utt, _, ref = line.partition(" ")
            refs[utt] = strip_all_task_tokens(ref, spec)
    batches, enc_time = [], 0.0
    for i in range(0, len(keys), args.batch_size):
        wavs = [torch.from_numpy(np.asarray(reader[k][1], dtype=np.float32)) for k in keys[i : i + args.batch_size]]
        lens = torch.tensor([w.numel() for w in wavs])
        speech = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True).to(args.device)
        with torch.no_grad():
            (enc, enc_lens), dt = timed(lambda: model.encode(speech, lens.to(args.device)), args.device)
        enc_time += dt
        batches.append((enc, enc_lens))
    return model.decoder, model.joint_network, batches, keys, refs, to_words, enc_time


def run_ours(decoder, joint, batches, beam: int, length_norm: bool, device: str, searches=None):
    from espnet2_ext.asr.transducer.search import greedy_search_batch, modified_beam_search

    if searches is not None:  # a baseline's
        greedy_search_batch, modified_beam_search = searches

    def greedy():
        return [seq for enc, lens in batches for seq in greedy_search_batch(enc, lens, decoder, joint)]

    def mbs():
        return [
            h[0].yseq
            for enc, lens in batches
            for h in modified_beam_search(enc, lens, decoder, joint, beam=beam, length_norm=length_norm)
        ]

    warm = [(enc[:1, :8], lens[:1].clamp(max=8)) for enc, lens in batches[:1]]  # first-call costs off the clock
    greedy_search_batch(*warm[0], decoder, joint)
    modified_beam_search(*warm[0], decoder, joint, beam=beam)
    g, g_time, g_cpu = timed_cpu(greedy, device)
    b, b_time, b_cpu = timed_cpu(mbs, device)
    return g, g_time, b, b_time, (g_cpu, b_cpu)


SEARCH_MODULES = ("search_common", "greedy_search", "modified_beam_search", "streaming_search", "search")
OPTIONAL_MODULES = ("context_graph", "decoder_memory")  # imported by the searches of later revisions only


def load_baseline(rev: str):
    """The searches of ``espnet2_ext/asr/transducer/`` at git revision ``rev`` as a separate package
    (``greedy_search_batch``, ``modified_beam_search``, ``BeamStream``, ``GreedyStream``)."""
    import importlib
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    pkg = Path(tempfile.mkdtemp(prefix="bench_search_baseline_")) / "baseline_transducer"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in SEARCH_MODULES + OPTIONAL_MODULES:
        src = subprocess.run(
            ["git", "show", f"{rev}:espnet2_ext/asr/transducer/{name}.py"], cwd=root, capture_output=True, text=True
        )
        if src.returncode != 0 and name in OPTIONAL_MODULES:
            continue
        if src.returncode != 0:
            raise SystemExit(
                f"--baseline {rev}: cannot read espnet2_ext/asr/transducer/{name}.py ({src.stderr.strip()})"
            )
        (pkg / f"{name}.py").write_text(src.stdout.replace("espnet2_ext.asr.transducer.", "baseline_transducer."))
    sys.path.insert(0, str(pkg.parent))
    search = importlib.import_module("baseline_transducer.search")
    streaming = importlib.import_module("baseline_transducer.streaming_search")
    return search.greedy_search_batch, search.modified_beam_search, streaming.BeamStream, streaming.GreedyStream


def run_stream(decoder, joint, batches, beam: int, chunk: int, device: str, classes) -> Tuple[float, float, int]:
    """Streaming searches, one utterance at a time, ``chunk`` frames per call: (beam s, greedy s, chunks)."""
    beam_cls, greedy_cls = classes
    pieces = [
        (enc[i : i + 1], [(t, min(t + chunk, int(lens[i]))) for t in range(0, int(lens[i]), chunk)])
        for enc, lens in batches
        for i in range(enc.size(0))
    ]

    def stream(cls, **kw):
        with torch.no_grad():
            for enc, spans in pieces:
                s = cls(decoder, joint, None, torch.device(device), **kw)
                for a, b in spans:
                    s.advance(enc[:, a:b])
                    s.nbest(1)  # the running hypothesis after each chunk, as asr/streaming.py reports it

    stream(beam_cls, beam=beam)  # warm-up
    _, b_time = timed(lambda: stream(beam_cls, beam=beam), device)
    _, g_time = timed(lambda: stream(greedy_cls), device)
    return b_time, g_time, sum(len(spans) for _, spans in pieces)


def run_espnet(decoder, joint, batches, beam: int, length_norm: bool, device: str):
    from espnet2.asr.transducer.beam_search_transducer import BeamSearchTransducer

    def search(size: int):
        s = BeamSearchTransducer(
            decoder=decoder, joint_network=joint, beam_size=size, search_type="default", score_norm=length_norm
        )
        with torch.no_grad():
            return [s(enc[i, : int(lens[i])])[0].yseq[1:] for enc, lens in batches for i in range(enc.size(0))]

    enc0, _ = batches[0]  # first-call costs off the clock
    with torch.no_grad():
        BeamSearchTransducer(decoder=decoder, joint_network=joint, beam_size=beam)(enc0[0, :8])
    g, g_time, g_cpu = timed_cpu(lambda: search(1), device)
    b, b_time, b_cpu = timed_cpu(lambda: search(beam), device)
    return g, g_time, b, b_time, (g_cpu, b_cpu)


def report_wer(name: str, keys: List[str], hyps: List[str], refs: Dict[str, str]) -> None:
    import jiwer

    pairs = [(refs[k], h) for k, h in zip(keys, hyps) if refs.get(k, "").strip()]
    if not pairs:
        print(f"WER {name}: no non-empty references")
        return
    print(
        f"WER {name}: {100 * jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]):.2f}% "
        f"({len(pairs)} utterances with references)"
    )


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print_environment(argv, args.device)
    length_norm = not args.no_length_norm

    enc_time = None
    if args.random:
        decoder, joint, batches = random_setup(args)
        keys, refs, to_words = None, {}, None
    else:
        decoder, joint, batches, keys, refs, to_words, enc_time = model_setup(args)
    n_utts = sum(enc.size(0) for enc, _ in batches)
    n_frames = sum(int(lens.sum()) for _, lens in batches)
    print(
        f"data: {n_utts} utterances, {n_frames} encoder frames, batch size {args.batch_size}, beam {args.beam}, "
        f"length norm {length_norm}"
    )

    g_ours, tg_ours, b_ours, tb_ours, cpu_ours = run_ours(decoder, joint, batches, args.beam, length_norm, args.device)
    print(f"ours   greedy (batched):              {tg_ours:8.3f} s   (CPU {cpu_ours[0]:.3f} s)")
    print(f"ours   modified beam search (batched): {tb_ours:8.3f} s   (CPU {cpu_ours[1]:.3f} s)")
    print(f"emitted symbols per frame (ours, beam): {sum(map(len, b_ours)) / max(n_frames, 1):.3f}")
    if enc_time is not None:
        print(
            f"encoder:                              {enc_time:8.3f} s; greedy decoder+joint / encoder = "
            f"{tg_ours / enc_time:.3f}"
        )
    base = load_baseline(args.baseline) if args.baseline else None
    if base is not None:
        g_base, tg_base, b_base, tb_base, _ = run_ours(
            decoder, joint, batches, args.beam, length_norm, args.device, base[:2]
        )
        print(
            f"baseline {args.baseline} greedy:            {tg_base:8.3f} s"
            f"   ratio baseline/ours {tg_base / tg_ours:6.2f}"
        )
        print(
            f"baseline {args.baseline} modified beam:     {tb_base:8.3f} s"
            f"   ratio baseline/ours {tb_base / tb_ours:6.2f}"
        )
        print(
            f"identical best outputs vs baseline: "
            f"greedy {100 * sum(a == b for a, b in zip(g_ours, g_base)) / n_utts:.1f}%"
            f" | beam {100 * sum(a == b for a, b in zip(b_ours, b_base)) / n_utts:.1f}%"
        )
        if enc_time is not None:
            print(f"baseline greedy decoder+joint / encoder = {tg_base / enc_time:.3f}")
    if args.stream_chunk > 0:
        from espnet2_ext.asr.transducer.streaming_search import BeamStream, GreedyStream

        sb, sg, chunks = run_stream(
            decoder, joint, batches, args.beam, args.stream_chunk, args.device, (BeamStream, GreedyStream)
        )
        print(
            f"ours   streaming ({args.stream_chunk} frames/chunk, {chunks} chunks): "
            f"beam {1e3 * sb / chunks:.2f} ms/chunk, "
            f"greedy {1e3 * sg / chunks:.2f} ms/chunk"
        )
        if base is not None:
            bb, bg, _ = run_stream(decoder, joint, batches, args.beam, args.stream_chunk, args.device, base[2:])
            print(
                f"baseline streaming: beam {1e3 * bb / chunks:.2f} ms/chunk (baseline/ours {bb / sb:.2f}), "
                f"greedy {1e3 * bg / chunks:.2f} ms/chunk (baseline/ours {bg / sg:.2f})"
            )
    if not args.skip_espnet:
        g_esp, tg_esp, b_esp, tb_esp, cpu_esp = run_espnet(decoder, joint, batches, args.beam, length_norm, args.device)
        print(
            f"ESPnet greedy (per utterance):        {tg_esp:8.3f} s   ratio ESPnet/ours {tg_esp / tg_ours:6.2f}"
            f"   (CPU {cpu_esp[0]:.3f} s, CPU ratio {cpu_esp[0] / cpu_ours[0]:6.2f})"
        )
        print(
            f"ESPnet default beam (per utterance):  {tb_esp:8.3f} s   ratio ESPnet/ours {tb_esp / tb_ours:6.2f}"
            f"   (CPU {cpu_esp[1]:.3f} s, CPU ratio {cpu_esp[1] / cpu_ours[1]:6.2f})"
        )
        if base is not None:
            print(
                f"baseline {args.baseline}: ratio ESPnet/baseline greedy {tg_esp / tg_base:6.2f} | "
                f"beam {tb_esp / tb_base:6.2f}"
            )
        if args.stream_chunk > 0:
            print(
                f"ESPnet default beam (per utterance) per {args.stream_chunk}-frame chunk: "
                f"{1e3 * tb_esp / chunks:.2f} ms"
                f"   ratio ESPnet/ours streaming beam {tb_esp / sb:6.2f}"
            )
    if to_words is not None and refs:
        report_wer("ours modified beam", keys, [to_words(y) for y in b_ours], refs)
        if not args.skip_espnet:
            report_wer("ESPnet default beam", keys, [to_words(y) for y in b_esp], refs)
        report_wer("ours greedy", keys, [to_words(y) for y in g_ours], refs)


if __name__ == "__main__":
    main()
