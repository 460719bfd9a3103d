"""Recipe stage 3: train the tag-aware sentencepiece model and ESPnet token list, and measure tag pieces.

    python -m espnet2_ext.bin.train_tokenizer --text data/train/text \
        --out_dir data/token_list/bpe_unigram100 --vocab_size 100 [--model_type unigram] \
        [--languages en,de,es,fr] [--tasks asr,scd,endp,ner,lid] [--compare_plain]

Writes ``bpe.model``, ``bpe.vocab``, ``tokens.txt`` to ``--out_dir`` and prints how many pieces the tags cost.
``--compare_plain`` also trains (in a temporary folder) the same model with unprefixed tag symbols and prints
its numbers next to ours.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import comma_list
from espnet2_ext.task_spec import DEFAULT_LANGUAGES, TaskSpec
from espnet2_ext.text.tag_aware_bpe import (
    DEFAULT_INPUT_SENTENCE_SIZE,
    MODEL_TYPES,
    VocabSizeError,
    read_texts,
    tag_piece_stats,
    train_tag_aware_bpe,
)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", nargs="+", required=True, help="Kaldi text file(s): '<utt-id> <transcript>'")
    p.add_argument("--out_dir", required=True, help="gets bpe.model, bpe.vocab, tokens.txt")
    p.add_argument("--vocab_size", type=int, required=True)
    p.add_argument("--model_type", default="bpe", choices=MODEL_TYPES)
    p.add_argument("--character_coverage", type=float, default=1.0)
    p.add_argument("--input_sentence_size", type=int, default=DEFAULT_INPUT_SENTENCE_SIZE)
    p.add_argument("--num_threads", type=int, default=1, help="1 keeps the model independent of the machine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--languages", default=",".join(DEFAULT_LANGUAGES), help="comma-separated, e.g. en,de,es,fr")
    p.add_argument("--tasks", default=None, help="comma-separated task names (default: all known tasks)")
    p.add_argument(
        "--compare_plain",
        action="store_true",
        help="also measure a model with unprefixed tag symbols trained on the same text",
    )
    return p


def _spec(args: argparse.Namespace) -> TaskSpec:
    languages = comma_list(args.languages)
    if not languages:
        raise ValueError("--languages is empty; give e.g. en,de,es,fr")
    return TaskSpec.build(comma_list(args.tasks) if args.tasks else None, languages)


def _train_plain(texts: List[str], spec: TaskSpec, args: argparse.Namespace) -> Tuple[Dict, int]:
    """Stats of the unprefixed model; its vocab may need to shrink (plain tags leave fewer mergeable pieces)."""
    vocab = args.vocab_size
    with tempfile.TemporaryDirectory(prefix="plain_spm_") as tmp:
        for _ in range(2):
            try:
                model = train_tag_aware_bpe(
                    texts,
                    spec,
                    vocab,
                    tmp,
                    args.model_type,
                    args.character_coverage,
                    args.input_sentence_size,
                    args.num_threads,
                    args.seed,
                    kaldi=False,
                    prefix_tags=False,
                )
                return tag_piece_stats(model, texts, spec, kaldi=False), vocab
            except VocabSizeError as e:
                vocab = e.limit
        raise RuntimeError("plain model: sentencepiece rejected the vocabulary size twice")


def format_table(rows: List[Tuple[str, int, Dict]]) -> str:
    head = ("model", "vocab", "pieces", "pieces/utt", "tags", "split_tags", "lone_\u2581_before_tag")
    lines = [head] + [
        (
            name,
            str(v),
            str(s["pieces"]),
            f"{s['pieces_per_utt']:.2f}",
            str(s["tags"]),
            str(s["split_tags"]),
            str(s["lone_boundary_before_tag"]),
        )
        for name, v, s in rows
    ]
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


def run(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    spec = _spec(args)
    texts = read_texts([Path(t) for t in args.text])
    model = train_tag_aware_bpe(
        texts,
        spec,
        args.vocab_size,
        args.out_dir,
        args.model_type,
        args.character_coverage,
        args.input_sentence_size,
        args.num_threads,
        args.seed,
        kaldi=False,
    )
    ours = tag_piece_stats(model, texts, spec, kaldi=False)
    rows = [("tag-aware (\u2581[TAG])", args.vocab_size, ours)]
    if args.compare_plain:
        plain, plain_vocab = _train_plain(texts, spec, args)
        rows.append(("plain ([TAG])", plain_vocab, plain))
    print(f"wrote {model}, {model.parent / 'bpe.vocab'}, {model.parent / 'tokens.txt'}")
    print(format_table(rows))
    if args.compare_plain:
        saved = plain["pieces"] - ours["pieces"]
        print(f"pieces saved by prefixed tags: {saved} ({100.0 * saved / max(plain['pieces'], 1):.1f}% of plain)")


main = cli_main(run, prog="train_tokenizer", errors=(ValueError,))  # DataError, VocabSizeError: ValueErrors

if __name__ == "__main__":
    sys.exit(main())
