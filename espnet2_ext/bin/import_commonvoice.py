"""Import a CommonVoice release folder as ASR + LID Kaldi dirs (one per split).

    python -m espnet2_ext.bin.import_commonvoice --src cv-corpus-17.0/de --out_dir data/cv_de --lang de
        [--splits train,dev,test] [--max_utts 5000] [--dump_wav_dir DIR [--skip_bad_audio]]

Writes <out_dir>/<split> for each <split>.tsv. wav.scp references the clips (soundfile decodes mp3); with
--dump_wav_dir they are decoded into 16 kHz mono wavs (soxr) and the dirs appear only when every clip decodes.
"""
from __future__ import annotations

import argparse
import sys
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
                   help="decode every clip (mp3/flac/ogg/opus/wav, any rate or channel count; pipes; segments) "
                        "into one 16 kHz mono wav per utterance here, so ESPnet's 'sound' loader can read the dir "
                        "(what asr.sh's format_wav_scp did); the data dir appears only if all of them decode")
    p.add_argument("--skip_bad_audio", action="store_true",
                   help="with --dump_wav_dir: leave clips that cannot be decoded out (counted on stderr) instead of "
                        "failing; without it one bad clip fails the import and nothing is written")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    from espnet2_ext.data.commonvoice import import_commonvoice
    from espnet2_ext.data.utt2tasks import DataError

    if args.skip_bad_audio and not args.dump_wav_dir:
        print("import_commonvoice: --skip_bad_audio needs --dump_wav_dir (clips are decoded only when dumped)",
              file=sys.stderr)
        return 1
    try:
        import_commonvoice(args.src, args.out_dir, lang=args.lang,
                           splits=[s.strip() for s in args.splits.split(",") if s.strip()],
                           languages=[x.strip() for x in args.languages.split(",") if x.strip()],
                           max_utts=args.max_utts, dump_wav_dir=args.dump_wav_dir,
                           skip_bad_audio=args.skip_bad_audio)
    except (DataError, OSError) as e:
        print(f"import_commonvoice: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
