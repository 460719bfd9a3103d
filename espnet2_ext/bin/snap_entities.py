"""Snap the entity spans of a decode to the biasing list (``text/entity_snap.py``), after ``asr_inference``.

    python -m espnet2_ext.bin.snap_entities --hyp exp/asr/decode/test/1best_recog/text \
        --utt2biasing lists/utt_n100/utt2biasing --max_distance 0.3 --out exp/asr/decode_snap/test/text

Inside each ``[NE] … [/NE]`` span the words become the list phrase nearest in spelling when its normalised
Levenshtein distance is at most ``--max_distance`` (choose it on dev). The same lists as the decode:
``--utt2biasing`` (per utterance or recording) or ``--biasing_list`` (one list for every utterance). Writes
``--out`` (a Kaldi text; the decode's own text is never rewritten) and, with ``--log``, one JSON line per
utterance with a replacement. Score the result with ``tokenverse_score --hyp <out>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError, atomic_write_text
from espnet2_ext.scoring.metrics import read_text
from espnet2_ext.text.biasing_list import read_biasing_list, read_lists_for
from espnet2_ext.text.entity_snap import check_max_distance, snap_texts


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hyp", required=True, help="the decode's Kaldi text (<n>best_recog/text)")
    lists = p.add_mutually_exclusive_group(required=True)
    lists.add_argument("--utt2biasing", help="per-utterance/recording lists (README, 'Contextual biasing')")
    lists.add_argument("--biasing_list", help="one list file for every utterance")
    p.add_argument("--max_distance", type=float, required=True, help="0..1, normalised Levenshtein distance")
    p.add_argument("--out", required=True, help="the snapped Kaldi text")
    p.add_argument("--log", default=None, help="JSON lines: {utt, snaps: [{heard, phrase, distance}]}")
    return p


def run(argv: Optional[Sequence[str]] = None) -> dict:
    args = get_parser().parse_args(argv)
    check_max_distance(args.max_distance)
    if Path(args.out).resolve() == Path(args.hyp).resolve():
        raise DataError(f"--out {args.out} is the decode's own text; write the snapped text elsewhere")
    texts = read_text(args.hyp)
    if args.utt2biasing:
        phrases_of = {
            u: [p.text for p in bl.phrases] for u, bl in read_lists_for(args.utt2biasing, list(texts)).items()
        }
    else:
        one = [p.text for p in read_biasing_list(args.biasing_list).phrases]
        phrases_of = {u: one for u in texts}
    snapped, snaps = snap_texts(texts, phrases_of, args.max_distance)
    atomic_write_text(args.out, "".join(" ".join([u, *toks]) + "\n" for u, toks in snapped.items()))
    if args.log:
        lines = (
            json.dumps({"utt": u, "snaps": [s.__dict__ for s in made]}, ensure_ascii=False) for u, made in snaps.items()
        )
        atomic_write_text(args.log, "".join(line + "\n" for line in lines))
    n = sum(len(v) for v in snaps.values())
    print(f"snapped {n} entity spans in {len(snaps)} of {len(texts)} utterances -> {args.out}")
    return {"spans": n, "utterances": len(snaps)}


main = cli_main(run, prog="snap_entities")

if __name__ == "__main__":
    raise SystemExit(main())
