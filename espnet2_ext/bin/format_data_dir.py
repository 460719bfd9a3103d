"""Copy a validated data dir into the dump area, decoding audio that ESPnet's loader cannot read directly.

    python -m espnet2_ext.bin.format_data_dir data/train dump/raw/train

Plain 16 kHz mono wav/flac files are referenced as they are; anything else (mp3/ogg/opus, other rates, several
channels, pipes, ``segments``) is decoded once (soundfile + soxr) into ``<dst>_wav/<utt>.wav`` (what ESPnet's asr.sh
format stage did). The source dir is never modified and the
destination appears only when complete.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.data.audio_check import dump_audio, loader_ready
from espnet2_ext.data.kaldi_dir import read_data_dir, write_data_dir


def format_data_dir(src: str, dst: str) -> Path:
    utts = read_data_dir(src)
    if all(u.start is None and loader_ready(u.wav) for u in utts):
        # Absolute paths: the dump dir is read from other working directories (exp/, packing).
        from dataclasses import replace

        return write_data_dir([replace(u, wav=str(Path(u.wav).resolve())) for u in utts], dst)
    return dump_audio(src, dst, Path(dst).with_name(Path(dst).name + "_wav"))


def run(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src")
    p.add_argument("dst")
    args = p.parse_args(argv)
    print(f"format_data_dir: {args.src} -> {format_data_dir(args.src, args.dst)}")


main = cli_main(run, prog="format_data_dir")

if __name__ == "__main__":
    sys.exit(main())
