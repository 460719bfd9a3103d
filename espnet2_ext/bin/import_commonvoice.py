"""Import a CommonVoice release folder as ASR + LID Kaldi dirs (one per split).

    python -m espnet2_ext.bin.import_commonvoice --src cv-corpus-17.0/de --out_dir data/cv_de --lang de
        [--splits train,dev,test] [--max_utts 5000] [--dump_wav_dir DIR]

Writes <out_dir>/<split> for each <split>.tsv; mp3 clips are decoded by sox pipes in wav.scp.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help="release folder with clips/ and <split>.tsv")
    p.add_argument("--out_dir", required=True, help="Kaldi dirs are written to <out_dir>/<split>")
    p.add_argument("--lang", default=None, help="language code; default: the tsv 'locale' column")
    p.add_argument("--splits", default="train,dev,test", help="comma-separated tsv names (e.g. validated)")
    p.add_argument("--max_utts", type=int, default=None, help="keep the first N usable rows per split")
    p.add_argument("--languages", default="en,de,es,fr", help="languages of the task spec")
    p.add_argument("--dump_wav_dir", default=None,
                   help="decode pipes and cut segments into one 16 kHz wav per utterance here, so ESPnet's "
                        "'sound' loader can read the dir (what asr.sh's format_wav_scp did)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    from espnet2_ext.data.commonvoice import import_commonvoice
    from espnet2_ext.data.audio_check import dump_audio
    from espnet2_ext.data.utt2tasks import DataError

    try:
        dirs = import_commonvoice(args.src, args.out_dir, lang=args.lang,
                           splits=[s.strip() for s in args.splits.split(",") if s.strip()],
                           languages=[x.strip() for x in args.languages.split(",") if x.strip()],
                           max_utts=args.max_utts)
        if args.dump_wav_dir:
            for split, d in dirs.items():
                dump_audio(d, d, Path(args.dump_wav_dir) / split)
    except (DataError, OSError) as e:
        print(f"import_commonvoice: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
