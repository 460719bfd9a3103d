"""Decode several test sets under several task-activation sets with one model load (the recipe's stage 6).

    python -m espnet2_ext.bin.decode_activation_sets --asr_train_config exp/a/config.yaml \
        --asr_model_file exp/a/valid.loss.best.pth --test_dirs dump/raw/test dump/raw/test_partial \
        --activation_sets asr,scd,endp,ner,lid asr asr,lid --output_root exp/a [any asr_inference option]

Writes ``<output_root>/decode_<tasks joined by +>/<test set>/1best_recog/...`` exactly as one
``asr_inference`` call per (activation set, test set) would; each decode dir is written under a temporary name and
moved into place when complete, and existing complete dirs newer than the model are kept. Each decode dir also
gets ``decode_stats.json``: the decode's wall time (model loading excluded), the test set's audio seconds and
their ratio, the real-time factor (``rtf``; null where the durations are unknown).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

from espnet2_ext.activation import activation_tag
from espnet2_ext.asr.decode_dir import decode_to_dir
from espnet2_ext.bin._asr_inference_args import get_parser
from espnet2_ext.bin._cli import cli_main
from espnet2_ext.bin.asr_inference import build_speech2text
from espnet2_ext.common import DataError, atomic_dir
from espnet2_ext.tasks.tokenverse_asr import TokenVerseASRTask

STATS_NAME = "decode_stats.json"


def decode_stats(test_dir: str, wall_s: float) -> dict:
    """Wall seconds, audio seconds of ``test_dir`` (segments, utt2dur or the audio headers) and the RTF."""
    from espnet2_ext.data.kaldi_dir import read_data_dir, with_durations

    try:
        audio_s = sum(u.length for u in with_durations(read_data_dir(test_dir)))
    except (DataError, OSError) as e:
        logging.warning(f"{test_dir}: audio duration unknown ({e}); no RTF in {STATS_NAME}")
        audio_s = None
    return {
        "wall_s": round(wall_s, 3),
        "audio_s": None if audio_s is None else round(audio_s, 3),
        "rtf": round(wall_s / audio_s, 4) if audio_s else None,
    }


def run(cmd: Optional[List[str]] = None) -> None:
    parser = get_parser()
    parser.add_argument("--test_dirs", nargs="+", required=True, help="formatted data dirs with wav.scp")
    parser.add_argument("--activation_sets", nargs="+", required=True, help="e.g. asr,scd,lid asr")
    parser.add_argument("--output_root", required=True)
    for action in parser._actions:  # output_dir and data paths come from --output_root/--test_dirs
        if action.dest in ("output_dir", "data_path_and_name_and_type"):
            action.required = False
    args = parser.parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    s2t = build_speech2text(args)
    model_time = Path(args.asr_model_file).stat().st_mtime if args.asr_model_file else 0
    # each set's task mask [1, 1+K], resolved here, once: an unknown task fails before anything is decoded
    masks = {act: s2t.task_mask(act) for act in args.activation_sets}
    for act in args.activation_sets:
        for test_dir in args.test_dirs:
            out = Path(args.output_root) / f"decode_{activation_tag(act)}" / Path(test_dir).name
            done = out / "1best_recog" / "text"
            if done.exists() and done.stat().st_mtime > model_time:
                print(f"  {out}: already decoded")
                continue
            print(f"  decoding {test_dir} with tasks {act} -> {out}", flush=True)
            args.data_path_and_name_and_type = [(f"{test_dir}/wav.scp", "speech", "sound")]
            with atomic_dir(out) as tmp:
                start = time.perf_counter()
                decode_to_dir(s2t, args, str(tmp), masks[act], TokenVerseASRTask)
                stats = decode_stats(test_dir, time.perf_counter() - start)
                (tmp / STATS_NAME).write_text(json.dumps(stats) + "\n", encoding="utf-8")


main = cli_main(run, prog="decode_activation_sets: error", errors=(ValueError, FileNotFoundError))

if __name__ == "__main__":
    sys.exit(main())
