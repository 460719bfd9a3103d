"""Benchmark: contextual biasing cost (issue #29). Two measurements, each printed with the exact command:

1. decoding time with a 1000-phrase list vs without, same encoder outputs, same run, alternating order
   (median of --repeats); target: ratio <= 1.3. Random model (timing only):
       python benchmark/bench_biasing.py --random --num_utts 16 --frames 200 --vocab 500
   or a trained model on a data dir, with its own list file (phrases tokenised by the model's tokenizer):
       python benchmark/bench_biasing.py --asr_train_config exp/asr/config.yaml --asr_model_file \
           exp/asr/valid.loss.ave.pth --data_dir data/test --biasing_list lists/n1000.txt
2. building the graph of a 100,000-phrase list (--build_phrases), tokenised by a sentencepiece model trained here
   on the generated names (vocabulary --build_vocab): seconds for tokenising + building, nodes, resident memory.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_search's helpers

import torch  # noqa: E402
from bench_search import model_setup, print_environment, random_setup, timed  # noqa: E402

import espnet2_ext  # noqa: E402,F401  (first: keeps ESPnet's import offline)
from espnet2_ext.asr.transducer.context_graph import ContextGraph, build_context_graph  # noqa: E402
from espnet2_ext.asr.transducer.search import greedy_search_batch, modified_beam_search  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--random", action="store_true", help="random decoder/joint and encoder outputs (default)")
    mode.add_argument("--asr_train_config", help="config.yaml of a trained TokenVerse model")
    p.add_argument("--asr_model_file")
    p.add_argument("--data_dir")
    p.add_argument("--biasing_list", help="model mode: the list file (one phrase per line)")
    p.add_argument("--max_utts", type=int, default=50)
    p.add_argument("--phrases", type=int, default=1000, help="random mode: phrases in the list")
    p.add_argument("--weight", type=float, default=2.0)
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--build_phrases", type=int, default=100_000, help="phrases of the build benchmark (0: skip)")
    p.add_argument("--build_vocab", type=int, default=500)
    g = p.add_argument_group("random mode")
    g.add_argument("--num_utts", type=int, default=16)
    g.add_argument("--frames", type=int, default=200)
    g.add_argument("--vocab", type=int, default=500)
    g.add_argument("--enc_dim", type=int, default=1024)
    g.add_argument("--hidden", type=int, default=320)
    g.add_argument("--joint_dim", type=int, default=320)
    g.add_argument("--blank_rate", type=float, default=0.8)
    g.add_argument("--seed", type=int, default=0)
    return p


def random_phrases(n: int, vocab: int, seed: int) -> List[Tuple[List[int], float]]:
    rng = random.Random(seed)
    return [([rng.randrange(1, vocab) for _ in range(rng.randint(2, 6))], 2.0) for _ in range(n)]


def model_graph(args, vocab: int, weight=None) -> ContextGraph:
    import yaml
    from espnet2.text.build_tokenizer import build_tokenizer
    from espnet2.text.token_id_converter import TokenIDConverter

    from espnet2_ext.text.biasing_list import read_biasing_list

    conf = yaml.safe_load(Path(args.asr_train_config).read_text(encoding="utf-8"))
    tokenizer = build_tokenizer(token_type=conf["token_type"], bpemodel=conf.get("bpemodel"))
    converter = TokenIDConverter(token_list=conf["token_list"])
    graph, stats = build_context_graph(
        read_biasing_list(args.biasing_list).phrases,
        lambda t: converter.tokens2ids(tokenizer.text2tokens(t)),
        converter.unk_id,
        vocab,
        args.weight if weight is None else weight,
    )
    print(f"list: {args.biasing_list}: {stats}")
    return graph


def decode_ratio(args) -> None:
    if args.asr_train_config:
        if not args.biasing_list:
            raise SystemExit("model mode needs --biasing_list")
        decoder, joint, batches, *_ = model_setup(args)
        graph = model_graph(args, int(joint.lin_out.out_features))
        idle = model_graph(args, int(joint.lin_out.out_features), weight=0.0)
    else:
        decoder, joint, batches = random_setup(args)
        phrases = random_phrases(args.phrases, args.vocab, args.seed)
        graph = ContextGraph([(p, args.weight) for p, _ in phrases], args.vocab)
        idle = ContextGraph([(p, 0.0) for p, _ in phrases], args.vocab)
        print(f"list: {args.phrases} random phrases of 2-6 tokens")
    searches = {
        "modified_beam_search": lambda enc, lens, g: modified_beam_search(
            enc, lens, decoder, joint, beam=args.beam, length_norm=True, biasing=g
        ),
        "greedy": lambda enc, lens, g: greedy_search_batch(enc, lens, decoder, joint, biasing=g),
    }
    # "weight 0": the same list with no bonus: every state, row and step is computed, the output is that of no
    # list, so its ratio is the machinery's cost alone; with the weight, the output (and the number of emitted
    # tokens, each one a prediction-network step) changes too
    graphs = {"no list": None, "weight 0": idle, f"weight {args.weight:g}": graph}
    for name, search in searches.items():
        runs = {label: [] for label in graphs}
        emitted = {}
        for r in range(args.repeats + 1):  # the first round warms up (row cache, allocator) and is not counted
            for label in list(graphs) if r % 2 else list(graphs)[::-1]:
                out, dt = timed(lambda: [search(enc, lens, graphs[label]) for enc, lens in batches], args.device)
                emitted[label] = sum(
                    len(h[0].yseq if isinstance(h, list) and h and hasattr(h[0], "yseq") else h)
                    for batch in out
                    for h in batch
                )
                if r:
                    runs[label].append(dt)
        base = statistics.median(runs["no list"])
        parts = [
            f"{label} {statistics.median(t):.3f} s ({emitted[label]} tokens, {statistics.median(t) / base:.2f}x)"
            for label, t in runs.items()
        ]
        print(f"{name}, {graph.num_phrases}-phrase list, median of {args.repeats}: " + " | ".join(parts))


def build_benchmark(args) -> None:
    import sentencepiece as spm

    from espnet2_ext.task_spec import TaskSpec
    from espnet2_ext.text.biasing_list import phrases_list
    from espnet2_ext.text.tag_aware_bpe import espnet_token_list, train_tag_aware_bpe

    rng = random.Random(args.seed)
    syll = [c + v for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "an", "er", "os")]
    names = set()
    while len(names) < args.build_phrases:
        names.add(
            " ".join("".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) for _ in range(rng.randint(1, 3)))
        )
    names = sorted(names)
    with tempfile.TemporaryDirectory() as tmp:
        model = train_tag_aware_bpe(
            [f"u{i} {n}" for i, n in enumerate(names[:20000])], TaskSpec.default(), args.build_vocab, tmp
        )
        sp = spm.SentencePieceProcessor(model_file=str(model))
        tokens = espnet_token_list(str(model))
    ids = {t: i for i, t in enumerate(tokens)}
    lst = phrases_list(names)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    graph, stats = build_context_graph(
        lst.phrases, lambda t: [ids.get(p, 1) for p in sp.encode(t, out_type=str)], 1, len(tokens), args.weight
    )
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"build: {stats['phrases']} phrases ({stats['unspellable']} unspellable), {len(graph.parent)} nodes, "
        f"vocabulary {len(tokens)}: tokenise + build {stats['seconds']:.2f} s; peak resident memory +"
        f"{(rss1 - rss0) / 1024:.0f} MiB"
    )


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print_environment(sys.argv[1:] if argv is None else list(argv), args.device)
    decode_ratio(args)
    if args.build_phrases:
        build_benchmark(args)


if __name__ == "__main__":
    main()
