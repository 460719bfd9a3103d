"""Benchmark: the cost of biasing mode ``rescore`` (issue #29's "decoding time with a 1000-phrase list <= 1.3x
without"). One run, same encoder outputs, alternating order, median of --repeats, process CPU time (the machine may
be shared): our modified beam search without a list vs the same search + entity-span rescoring against each
utterance's list, for each --top_k (0: every phrase scored by the transducer). Each round prepares every list
(tokenising, tables) as one decode of the set does, unless --cached_lists. Ratios are printed for the search alone
and for whole decoding (encoder + search), since the encoder is part of what a user waits for.

    python benchmark/bench_rescore.py --asr_train_config exp/asr_train/config.yaml \
        --asr_model_file exp/asr_train/valid.loss.ave.pth --data_dir dump/raw/test \
        --utt2biasing exp_biasing/lists_seed0/lists/test/utt_n1000/utt2biasing --top_k 16 0
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_search's helpers

import torch  # noqa: E402
from bench_search import print_environment, timed_cpu  # noqa: E402

import espnet2_ext  # noqa: E402,F401  (first: keeps ESPnet's import offline)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--asr_train_config", required=True)
    p.add_argument("--asr_model_file", required=True)
    p.add_argument("--data_dir", required=True, help="Kaldi-style dir with wav.scp")
    p.add_argument("--utt2biasing", required=True, help="per-utterance lists (text/biasing_list.py's format)")
    p.add_argument("--top_k", type=int, nargs="+", default=[16, 0], help="prefilter sizes to time (0: none)")
    p.add_argument("--bonus", type=float, default=10.0)
    p.add_argument("--max_utts", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--cached_lists",
        action="store_true",
        help="keep the lists' candidates between rounds (before 2026-12-08 the default: list preparation untimed)",
    )
    return p


def load(args):
    """The decoder in mode rescore, and the data's first --max_utts utterances in batches with their lists."""
    import numpy as np
    from espnet2.fileio.sound_scp import SoundScpReader

    from espnet2_ext.asr.speech2text import TokenVerseSpeech2Text
    from espnet2_ext.text.biasing_list import read_lists_for

    s2t = TokenVerseSpeech2Text(
        asr_train_config=args.asr_train_config,
        asr_model_file=args.asr_model_file,
        beam_size=args.beam,
        transducer_conf={"search_type": "modified_beam_search", "blank_penalty": 2.0},
        biasing_mode="rescore",
        biasing_rescore_bonus=args.bonus,
    )
    reader = SoundScpReader(str(Path(args.data_dir) / "wav.scp"), dtype=np.float32)
    every = list(reader.keys())
    lists = read_lists_for(args.utt2biasing, every)
    keys = every[: args.max_utts]
    batches = []
    for i in range(0, len(keys), args.batch_size):
        ks = keys[i : i + args.batch_size]
        wavs = [torch.from_numpy(np.asarray(reader[k][1], dtype=np.float32)) for k in ks]
        lens = torch.tensor([w.numel() for w in wavs])
        batches.append((torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), lens, [lists.get(k) for k in ks]))
    return s2t, batches


@torch.no_grad()
def main(argv=None) -> None:
    from espnet2_ext.asr import search_driver

    args = get_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    print_environment(sys.argv[1:] if argv is None else list(argv), "cpu")
    s2t, batches = load(args)
    encoded, enc_cpu = [], 0.0
    for speech, lens, lists in batches:
        mask = s2t.task_mask(None, speech.size(0))  # every task active: task_mask [B, 1+K]
        (enc, enc_lens), _, cpu = timed_cpu(lambda: s2t.asr_model.encode(speech, lens, task_mask=mask), "cpu")
        encoded.append((enc, enc_lens, mask, lists))
        enc_cpu += cpu
    n_phrases = statistics.median(len(lst.phrases) for *_, lists in encoded for lst in lists if lst)

    def run(top_k):
        s2t.biasing.conf["rescore_top_k"] = top_k if top_k is not None else 0
        if not args.cached_lists:  # each round prepares every utterance's list, as one decode of the set does
            s2t.biasing.forget()
        return [
            search_driver.search(s2t, enc, lens, mask, None, rescore_lists=None if top_k is None else lists)
            for enc, lens, mask, lists in encoded
        ]

    settings = [None] + list(args.top_k)  # None: no list
    cpu = {k: [] for k in settings}
    for r in range(args.repeats + 1):  # the first round warms up and is not counted
        for k in settings if r % 2 else settings[::-1]:
            _, _, c = timed_cpu(lambda: run(k), "cpu")
            if r:
                cpu[k].append(c)
    base = statistics.median(cpu[None])
    print(
        f"{len(batches)} batches of <= {args.batch_size}, median list {n_phrases:g} phrases, bonus {args.bonus:g}, "
        f"list preparation {'not ' if args.cached_lists else ''}timed; "
        f"encoder {enc_cpu:.3f} s CPU; search without a list {base:.3f} s CPU (median of {args.repeats})"
    )
    for k in args.top_k:
        t = statistics.median(cpu[k])
        print(
            f"top_k {k}: search + rescoring {t:.3f} s CPU = {t / base:.2f}x the search; whole decoding "
            f"(encoder + search) {(enc_cpu + t) / (enc_cpu + base):.2f}x"
        )


if __name__ == "__main__":
    main()
