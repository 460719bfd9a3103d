"""Synthesise the XLSR stand-in's pretraining corpus (espeak-ng + wordfreq, disjoint from mini_tokenverse).

    python -m espnet2_ext.bin.prepare_ssl_corpus --out_dir data --hours 4 [--seed 0] [--nj 2] [--wav_dir DIR]

Writes data/{train,dev} (text = plain words) and data/corpus_stats.md; re-running only synthesises missing wavs.

    python -m espnet2_ext.bin.prepare_ssl_corpus --out_dir data/wordlist_read150 --asr_lid_per_lang 150 \
        --charset_from data/train/text [--seed 0] [--wav_dir downloads/ssl_wav]

writes one data dir of ASR+LID-only read speech for fine-tuning instead: the head of the same corpus (same
sentences, voices and wavs), "[EN] words ..." transcripts, only sentences spelled with the letters of
--charset_from (the text the tokenizer is trained on).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from espnet2_ext.bin._cli import cli_main


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", default="data")
    p.add_argument("--hours", type=float, default=4.0, help="hours of training speech (all languages)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nj", type=int, default=2, help="parallel espeak-ng/sox jobs")
    p.add_argument("--wav_dir", default=None, help="default: <out_dir>/../downloads/ssl_wav")
    p.add_argument(
        "--n_words",
        type=int,
        default=None,
        help="draw sentences from each language's N most frequent words (default: the module's 4000)",
    )
    p.add_argument(
        "--asr_lid_per_lang",
        type=int,
        default=None,
        metavar="N",
        help="write an ASR+LID-only fine-tuning set of N utterances per language to --out_dir",
    )
    p.add_argument(
        "--charset_from",
        default=None,
        metavar="TEXT",
        help="with --asr_lid_per_lang: keep only sentences spelled with the letters of this Kaldi text",
    )
    return p


def run(argv: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    from espnet2_ext.corpora.mini_tokenverse import ssl_corpus

    if args.asr_lid_per_lang is None:
        if args.charset_from:
            raise ValueError("--charset_from only goes with --asr_lid_per_lang")
        ssl_corpus.prepare_ssl_corpus(
            args.out_dir,
            hours=args.hours,
            seed=args.seed,
            nj=args.nj,
            wav_dir=args.wav_dir,
            n_words=args.n_words or ssl_corpus.N_WORDS,
        )
        return
    if args.n_words:
        raise ValueError(
            "--n_words goes with the pretraining corpus, not --asr_lid_per_lang (its head of the 4000-word one)"
        )
    charset = ssl_corpus.letters_of_text(args.charset_from) if args.charset_from else None
    ssl_corpus.prepare_asr_lid(
        args.out_dir, args.asr_lid_per_lang, seed=args.seed, charset=charset, nj=args.nj, wav_dir=args.wav_dir
    )


main = cli_main(run, prog="prepare_ssl_corpus", errors=(RuntimeError, ValueError, OSError))

if __name__ == "__main__":
    sys.exit(main())
