"""Import JSON-lines conversations (format: docs/data_formats.md) as a Kaldi data dir with segments.

    python -m espnet2_ext.bin.import_jsonl --src convs.jsonl --out_dir data/convs
        [--max_turns 4] [--max_duration 20] [--max_gap 3] [--dump_wav_dir DIR [--skip_bad_audio]]
        [--languages en,de,es,fr]
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="JSON-lines file, one conversation per line")
    p.add_argument("--out_dir", required=True, help="Kaldi data dir to write")
    p.add_argument("--languages", default="en,de,es,fr", help="languages of the task spec")
    p.add_argument("--dump_wav_dir", default=None,
                   help="decode every clip (mp3/flac/ogg/opus/wav, any rate or channel count; pipes; segments) "
                        "into one 16 kHz mono wav per utterance here, so ESPnet's 'sound' loader can read the dir "
                        "(what asr.sh's format_wav_scp did); the data dir appears only if all of them decode")
    p.add_argument("--skip_bad_audio", action="store_true",
                   help="with --dump_wav_dir: leave clips that cannot be decoded out (counted on stderr) instead of "
                        "failing; without it one bad clip fails the import and nothing is written")
    p.add_argument("--max_turns", type=int, default=4, help="turns per utterance at most")
    p.add_argument("--max_duration", type=float, default=20.0, help="seconds per utterance at most")
    p.add_argument("--max_gap", type=float, default=3.0, help="a longer silence between turns starts a new one")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    from espnet2_ext.data.jsonl_conversations import import_jsonl
    from espnet2_ext.data.utt2tasks import DataError

    if args.skip_bad_audio and not args.dump_wav_dir:
        print("import_jsonl: --skip_bad_audio needs --dump_wav_dir (clips are decoded only when dumped)",
              file=sys.stderr)
        return 1
    try:
        import_jsonl(args.src, args.out_dir, languages=[x.strip() for x in args.languages.split(",") if x.strip()],
                     max_turns=args.max_turns, max_duration=args.max_duration, max_gap=args.max_gap,
                     dump_wav_dir=args.dump_wav_dir, skip_bad_audio=args.skip_bad_audio)
    except (DataError, OSError) as e:
        print(f"import_jsonl: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
