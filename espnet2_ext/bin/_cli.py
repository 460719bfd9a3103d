"""How every command-line tool in ``bin/`` ends, and the options the data importers share.

A CLI module has ``run(argv)``: it parses ``argv`` and does the work, returning what it made where Python callers
and tests want it (a report, scores); bad input is an exception. ``main = cli_main(run, prog=...)`` gives
``main(argv) -> int``, the exit status: an expected error is printed as one line ``<prog>: <message>`` on stderr
(no traceback) and gives 1. ``python -m`` runs ``sys.exit(main())``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Optional, Sequence, Tuple, Type

from espnet2_ext.common import DataError

Argv = Optional[Sequence[str]]


def run_cli(
    run: Callable[[Argv], object],
    argv: Argv = None,
    *,
    prog: str,
    errors: Tuple[Type[BaseException], ...] = (DataError,),
) -> int:
    """0 when ``run(argv)`` returns (whatever it returns); 1 and ``<prog>: <message>`` on stderr for ``errors``.
    ``prog`` is the head of the message as the tool's users know it (e.g. ``tokenverse_score: error``)."""
    try:
        run(argv)
    except errors as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    return 0


def cli_main(
    run: Callable[[Argv], object], *, prog: str, errors: Tuple[Type[BaseException], ...] = (DataError,)
) -> Callable[[Argv], int]:
    """The ``main(argv=None) -> int`` of a CLI module whose work is ``run``."""

    def main(argv: Argv = None) -> int:
        return run_cli(run, argv, prog=prog, errors=errors)

    main.__doc__ = f"Exit status of ``run``; {', '.join(e.__name__ for e in errors)} -> '{prog}: <message>', 1."
    return main


# ---- options shared by the importers (import_commonvoice, import_jsonl, import_stm) ---------------------
IMPORT_ERRORS = (DataError, OSError)  # OSError: an unreadable source or audio file


def importer_parser(doc: str, src: str, out_dir: str) -> argparse.ArgumentParser:
    """``--src``, ``--out_dir`` (with these helps), the task spec's languages and the audio dump options."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", required=True, help=src)
    p.add_argument("--out_dir", required=True, help=out_dir)
    p.add_argument("--languages", default="en,de,es,fr", help="languages of the task spec")
    p.add_argument(
        "--dump_wav_dir",
        default=None,
        help="decode every clip (mp3/flac/ogg/opus/wav, any rate or channel count; pipes; segments) "
        "into one 16 kHz mono wav per utterance here, so ESPnet's 'sound' loader can read the dir "
        "(what asr.sh's format_wav_scp did); the data dir appears only if all of them decode",
    )
    p.add_argument(
        "--skip_bad_audio",
        action="store_true",
        help="with --dump_wav_dir: leave clips that cannot be decoded out (counted on stderr) instead of "
        "failing; without it one bad clip fails the import and nothing is written",
    )
    return p


def add_chunking_args(p: argparse.ArgumentParser, pieces: str) -> None:
    """How conversations are cut into utterances; ``pieces``: what an utterance is made of (turns, segments)."""
    p.add_argument("--max_turns", type=int, default=4, help=f"{pieces} per utterance at most")
    p.add_argument("--max_duration", type=float, default=20.0, help="seconds per utterance at most")
    p.add_argument("--max_gap", type=float, default=3.0, help=f"a longer silence between {pieces} starts a new one")


def parse_import_args(p: argparse.ArgumentParser, argv: Argv) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.skip_bad_audio and not args.dump_wav_dir:
        raise DataError("--skip_bad_audio needs --dump_wav_dir (clips are decoded only when dumped)")
    return args


def bool_arg(value: str) -> bool:
    """argparse type for true/false options (``type=bool`` would read "false" as True)."""
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{value}'")
