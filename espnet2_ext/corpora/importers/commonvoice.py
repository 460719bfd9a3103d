"""Import a Mozilla CommonVoice release folder as ASR + LID data (the paper's partially annotated set).

A release holds ``clips/*.mp3`` and ``train.tsv``/``dev.tsv``/``test.tsv``/``validated.tsv``. Columns are read
by name because releases differ (``accent`` vs ``accents``, optional ``sentence_id``/``locale``); only
``client_id``, ``path`` and ``sentence`` are required. Each split becomes a Kaldi dir ``<out_dir>/<split>``
with text ``[DE] normalised words``, utt2tasks ``asr lid`` and one speaker per ``client_id``. wav.scp references
the clips (mp3 and any other format soundfile reads); with ``dump_wav_dir`` every clip is decoded into a 16 kHz
mono wav first and no split is written unless all of them decode (or ``skip_bad_audio`` leaves bad clips out).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2_ext.common import DataError
from espnet2_ext.data.audio_check import wav_scp_entry, write_dirs
from espnet2_ext.data.kaldi_dir import Utterance, normalize_words
from espnet2_ext.task_spec import DEFAULT_LANGUAGES, language_token

REQUIRED_COLUMNS = ("client_id", "path", "sentence")
TASKS = ("asr", "lid")


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", s)


def locale_to_lang(locale: str) -> str:
    """``es``, ``es-ES`` or ``fr_FR`` -> ``es``/``fr``."""
    return re.split(r"[-_]", locale.strip())[0].lower()


def read_cv_tsv(
    tsv: Path, clips_dir: Path, lang: Optional[str], languages: Sequence[str], max_utts: Optional[int] = None
) -> List[Utterance]:
    """Utterances of one CommonVoice tsv; rows whose clip is missing or whose sentence normalises to nothing are
    skipped (counted in the printed summary)."""
    csv.field_size_limit(1 << 24)
    utts: List[Utterance] = []
    seen = set()
    skipped: Dict[str, int] = {"missing clip": 0, "empty sentence": 0, "duplicate path": 0}
    with tsv.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if not header:
            raise DataError(f"{tsv}: empty file; expected a CommonVoice tsv with a header line")
        col = {name.strip(): i for i, name in enumerate(header)}
        missing = [c for c in REQUIRED_COLUMNS if c not in col]
        if missing:
            raise DataError(
                f"{tsv}: missing column(s) {', '.join(missing)}; found columns: {', '.join(header)} "
                f"(a CommonVoice tsv needs {', '.join(REQUIRED_COLUMNS)})"
            )
        if lang is None and "locale" not in col:
            raise DataError(f"{tsv}: no 'locale' column to take the language from; give it with --lang")
        for lineno, row in enumerate(reader, 2):
            if not any(x.strip() for x in row):
                continue
            if len(row) < len(header):
                row = row + [""] * (len(header) - len(row))
            get = lambda c: row[col[c]].strip()  # noqa: E731
            row_lang = lang or locale_to_lang(get("locale"))
            if row_lang not in languages:
                raise DataError(
                    f"{tsv}:{lineno}: language '{row_lang}' is not one of {', '.join(languages)}; "
                    f"add it with --languages or pass --lang"
                )
            name = get("path")
            if not name or not get("client_id"):
                raise DataError(f"{tsv}:{lineno}: empty 'path' or 'client_id'; fix or delete the row")
            if name in seen:
                skipped["duplicate path"] += 1
                continue
            seen.add(name)
            clip = clips_dir / name
            if not clip.is_file() and (clips_dir / f"{name}.mp3").is_file():  # early releases left out ".mp3"
                clip = clips_dir / f"{name}.mp3"
            if not clip.is_file():
                skipped["missing clip"] += 1
                continue
            words = normalize_words(get("sentence").replace("[", " ").replace("]", " "))
            if not words:
                skipped["empty sentence"] += 1
                continue
            spk = f"cv-{_safe(get('client_id'))[:16]}"
            utts.append(
                Utterance(
                    f"{spk}-{_safe(Path(name).stem)}",
                    spk,
                    f"{language_token(row_lang)} {words}",
                    row_lang,
                    TASKS,
                    wav_scp_entry(clip.absolute()),
                )
            )
            if max_utts is not None and len(utts) >= max_utts:
                break
    print(
        f"commonvoice: {tsv}: {len(utts)} utterances"
        + "".join(f", skipped {n} ({why})" for why, n in skipped.items() if n)
    )
    return utts


def import_commonvoice(
    src,
    out_dir,
    lang: Optional[str] = None,
    splits: Sequence[str] = ("train", "dev", "test"),
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    max_utts: Optional[int] = None,
    dump_wav_dir=None,
    skip_bad_audio: bool = False,
) -> Dict[str, Path]:
    """Write ``<out_dir>/<split>`` for each ``<split>.tsv`` of the release ``src``; returns split -> dir.

    ``dump_wav_dir``: decode every clip into ``<dump_wav_dir>/<split>/<utt>.wav`` (16 kHz mono) first; nothing is
    written unless every clip of every split decodes (``skip_bad_audio``: undecodable clips are left out, counted).
    """
    src, out_dir = Path(src), Path(out_dir)
    clips = src / "clips"
    if not clips.is_dir():
        raise DataError(f"{clips}: missing; --src must be a CommonVoice release folder (clips/ and *.tsv)")
    if lang is not None and lang not in languages:
        raise DataError(f"--lang {lang} is not one of {', '.join(languages)}; add it with --languages")
    todo = [s for s in splits if (src / f"{s}.tsv").is_file()]
    if not todo:
        raise DataError(
            f"{src}: none of {', '.join(f'{s}.tsv' for s in splits)} found; pick --splits from the tsv files there"
        )
    jobs = []
    for split in todo:
        utts = read_cv_tsv(src / f"{split}.tsv", clips, lang, languages, max_utts)
        if not utts:
            raise DataError(f"{src / f'{split}.tsv'}: no usable utterances (clips missing or sentences empty)")
        jobs.append((utts, out_dir / split, Path(dump_wav_dir) / split if dump_wav_dir else None))
    write_dirs(jobs, skip_bad_audio, log_name="import_commonvoice")
    return {split: out_dir / split for split in todo}
