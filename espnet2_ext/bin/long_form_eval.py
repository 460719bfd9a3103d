"""The long-form evaluation of the mini recipe (``egs2/mini_tokenverse/asr1/run_long_form.sh``, issue #30).

    python -m espnet2_ext.bin.long_form_eval make --src data/test --out_root data --wav_dir downloads/long_form
    python -m espnet2_ext.bin.long_form_eval measure --out_json run.json -- python -m espnet2_ext.bin.asr_inference ...
    python -m espnet2_ext.bin.long_form_eval place --ref_segments data/lf_conv/ref_segments \
        --utt_decode exp/lf/utt_test --out_dir exp/lf/lf_conv/per_utt
    python -m espnet2_ext.bin.long_form_eval table --exp_dir exp/long_form --sets lf_conv,lf_10min \
        --out RESULTS_long_form.md

``make``: the sets (``data/long_form_set.py``). ``measure`` (run it as its own process: the peak is over every
child it has waited for): runs a command and writes its wall seconds and the peak resident memory of the
process tree's largest process (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) as JSON.
``place``: a per-utterance decode moved into the recordings' clock. ``table``: the markdown table from the
score JSONs (``tokenverse_score``) and the ``measure`` records.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.common import DataError, atomic_write_text, comma_list


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="build lf_conv and lf_<N>min from a conversation set")
    m.add_argument("--src", required=True)
    m.add_argument("--out_root", required=True)
    m.add_argument("--wav_dir", required=True)
    m.add_argument("--minutes", default="10,60", help="stress recordings' lengths in minutes")
    m.add_argument("--prefix", default="", help="prefix of the set names (e.g. dev_)")
    m.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("measure", help="run a command; write wall seconds and peak RSS")
    r.add_argument("--out_json", required=True)
    r.add_argument("--audio_s", type=float, default=None, help="audio seconds decoded (for the RTF)")
    r.add_argument("command", nargs=argparse.REMAINDER)
    q = sub.add_parser("place", help="a per-utterance decode in the recordings' clock")
    q.add_argument("--ref_segments", required=True)
    q.add_argument("--utt_decode", required=True)
    q.add_argument("--out_dir", required=True)
    t = sub.add_parser("table", help="markdown table of the long-form results")
    t.add_argument("--exp_dir", required=True)
    t.add_argument("--sets", required=True)
    t.add_argument("--data_root", default="data")
    t.add_argument("--out", required=True)
    t.add_argument("--title", default="Long-form decoding")
    return p


def measure(command: List[str], out_json: str, audio_s: Optional[float]) -> Dict:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ValueError("measure: give the command after --")
    t0 = time.perf_counter()
    rc = subprocess.call(command)
    wall = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB, largest child process
    rec = {
        "command": command,
        "returncode": rc,
        "wall_s": round(wall, 2),
        "peak_rss_gb": round(peak_kb / 2**20, 3),
        "audio_s": audio_s,
        "rtf": round(wall / audio_s, 4) if audio_s else None,
    }
    atomic_write_text(out_json, json.dumps(rec, indent=1) + "\n")
    if rc != 0:
        raise DataError(f"measure: '{' '.join(command[:3])} ...' exited with {rc}")
    return rec


def table(exp_dir: Path, sets: Sequence[str], data_root: Path, title: str) -> str:
    from espnet2_ext.reporting.long_form import sizes_from_data
    from espnet2_ext.reporting.long_form import table as long_form_table

    return long_form_table(exp_dir, sets, sizes_from_data(data_root, sets), title)


def run(argv: Optional[Sequence[str]] = None):
    args = get_parser().parse_args(argv)
    if args.cmd == "make":
        from espnet2_ext.data.long_form_set import make_sets

        minutes = [int(m) for m in comma_list(args.minutes)]
        made = make_sets(
            Path(args.src), Path(args.out_root), Path(args.wav_dir), minutes, args.seed, prefix=args.prefix
        )
        print("\n".join(str(d) for d in made))
        return made
    if args.cmd == "measure":
        return measure(args.command, args.out_json, args.audio_s)
    if args.cmd == "place":
        from espnet2_ext.data.long_form_set import place_utterance_decode

        return place_utterance_decode(Path(args.ref_segments), Path(args.utt_decode), Path(args.out_dir))
    text = table(Path(args.exp_dir), comma_list(args.sets), Path(args.data_root), args.title)
    atomic_write_text(args.out, text)
    print(text)
    return text


main = cli_main(run, prog="long_form_eval: error", errors=(ValueError, FileNotFoundError))

if __name__ == "__main__":
    sys.exit(main())
