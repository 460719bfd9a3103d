"""Biasing lists: the phrases a decode is pulled toward (contextual biasing), read from users' files.

A list file (``--biasing_list FILE``) holds one phrase per line, in sherpa-onnx's ``--hotwords-file`` layout:

    # a CRM record                       <- comment (a ``#`` that starts the line)
    john smith                           <- a phrase; its bonus per token is --biasing_weight
    hauptstraße zwölf :2.5               <- " :<number>" at the end: this phrase's own bonus per token

Phrases are normalised as the references are (``normalize_words``: lower case, punctuation dropped), so
``John Smith,`` and ``john smith`` are one phrase. Empty lines and duplicates (after normalisation) are skipped and
counted (``BiasingList.skipped``); a weight that is not a number, or a phrase holding a task tag, is a one-line
``DataError`` naming the file and line.

A data dir's ``utt2biasing`` maps an utterance id, or a recording id when the dir has ``segments``, to a list:

    utt_0001  lists/utt_0001.txt                 <- a list file (relative paths: from utt2biasing's folder)
    rec_0007  | anna berg | café oslo :3.0       <- inline phrases after "|", separated by "|"

An utterance gets its own entry's phrases plus its recording's. A list file named by several lines is read once
and shared (one ``BiasingList`` object), so the biasing graph of a shared list is built once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from espnet2_ext.common import DataError, PathLike
from espnet2_ext.text.normalize import normalize_words
from espnet2_ext.utils.text_io import utf8_errors

INLINE = "|"  # an utt2biasing value starting with this holds inline phrases


@dataclass(frozen=True)
class BiasingPhrase:
    """One normalised phrase; ``weight`` None means the decoder's ``--biasing_weight``; ``where`` = file:line."""

    text: str
    weight: Optional[float] = None
    where: str = ""

    @property
    def words(self) -> Tuple[str, ...]:
        return tuple(self.text.split())


@dataclass(eq=False)
class BiasingList:
    """Phrases in file order, without duplicates. ``skipped``: {"empty": n, "duplicate": n, "comment": n}.

    Compared by identity: two utterances share a graph exactly when they share the object."""

    phrases: List[BiasingPhrase] = field(default_factory=list)
    source: str = ""
    skipped: Dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.phrases)

    @property
    def texts(self) -> List[str]:
        return [p.text for p in self.phrases]


def parse_phrase_line(line: str, where: str) -> Optional[BiasingPhrase]:
    """One list line -> a phrase, or None for an empty/comment line. ``where`` names it in errors."""
    body = line.strip()
    if not body or body.startswith("#"):
        return None
    weight = None
    head, sep, tail = body.rpartition(" :")
    if sep and tail.strip() and " " not in tail.strip():
        try:
            weight = float(tail)
        except ValueError:
            raise DataError(
                f"{where}: weight '{tail.strip()}' is not a number; write 'phrase :2.0' or drop the ' :...' part"
            ) from None
        if not math.isfinite(weight):
            raise DataError(f"{where}: weight '{tail.strip()}' must be a finite number")
        body = head
    elif body.startswith(":") and body[1:].strip() and " " not in body[1:].strip():
        raise DataError(f"{where}: a weight without a phrase; write 'phrase :2.0'")
    text = normalize_words(body)
    tags = [w for w in text.split() if w.startswith("[") and w.endswith("]")]
    if tags:
        raise DataError(f"{where}: phrase holds the task tag {tags[0]}; a biasing phrase is words only")
    return BiasingPhrase(text=text, weight=weight, where=where)


def build_list(lines: Iterable[Tuple[str, str]], source: str) -> BiasingList:
    """A ``BiasingList`` from (line, where) pairs: empty lines, comments and duplicates skipped and counted
    (the first occurrence of a duplicate is kept, with its weight)."""
    out = BiasingList(source=source, skipped={"empty": 0, "duplicate": 0, "comment": 0})
    seen = set()
    for line, where in lines:
        stripped = line.strip()
        if stripped.startswith("#"):
            out.skipped["comment"] += 1
            continue
        phrase = parse_phrase_line(line, where)
        if phrase is None or not phrase.text:
            out.skipped["empty"] += 1
            continue
        if phrase.text in seen:
            out.skipped["duplicate"] += 1
            continue
        seen.add(phrase.text)
        out.phrases.append(phrase)
    return out


def read_biasing_list(path: PathLike) -> BiasingList:
    """Read a list file (see the module doc); logs one line with the counts of what was skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: biasing list not found; give a file with one phrase per line")
    with utf8_errors(path):
        lines = path.read_text(encoding="utf-8").splitlines()
    out = build_list(((line, f"{path}:{i}") for i, line in enumerate(lines, 1)), str(path))
    if out.skipped["empty"] or out.skipped["duplicate"]:
        logging.info(
            f"{path}: {len(out)} phrases; skipped {out.skipped['empty']} empty and "
            f"{out.skipped['duplicate']} duplicate lines"
        )
    return out


def phrases_list(phrases: Sequence[str], source: str = "<phrases>") -> BiasingList:
    """A list from Python strings (the API's ``biasing=["john smith", ...]``); same rules as a file."""
    return build_list(((p, f"{source}[{i}]") for i, p in enumerate(phrases)), source)


def read_utt2biasing(path: PathLike) -> Dict[str, BiasingList]:
    """``utt2biasing`` -> {id: list}; list files named twice are read once and shared."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: utt2biasing not found")
    files: Dict[Path, BiasingList] = {}
    out: Dict[str, BiasingList] = {}
    with utf8_errors(path):
        lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines, 1):
        where = f"{path}:{i}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.strip().partition(" ")
        value = value.strip()
        if key in out:
            raise DataError(f"{where}: id '{key}' is listed twice; give each utterance or recording one line")
        if not value:
            raise DataError(f"{where}: '{key}' has no list; write '<id> <list file>' or '<id> | phrase | ...'")
        if value.startswith(INLINE):
            parts = value[len(INLINE) :].split(INLINE)
            out[key] = build_list(((p, f"{where} phrase {j}") for j, p in enumerate(parts, 1)), where)
            continue
        file = (path.parent / value) if not Path(value).is_absolute() else Path(value)
        if not file.is_file():
            raise DataError(
                f"{where}: list file '{value}' not found (relative paths start at {path.parent}); "
                f"or write inline phrases after '|'"
            )
        key_file = file.resolve()
        if key_file not in files:
            files[key_file] = read_biasing_list(file)
        out[key] = files[key_file]
    return out


def lists_per_utterance(
    utt2biasing: Mapping[str, BiasingList],
    utt_ids: Sequence[str],
    utt2rec: Optional[Mapping[str, str]] = None,
    source: str = "utt2biasing",
) -> Dict[str, BiasingList]:
    """{utt: list} for the utterances ``utt_ids``: each one's own entry plus its recording's (``utt2rec`` from the
    data dir's ``segments``). An entry naming neither a known utterance nor a known recording is a ``DataError``.
    Utterances with no entry are absent (no biasing)."""
    utt2rec = dict(utt2rec or {})
    known = set(utt_ids) | set(utt2rec.values())
    unknown = [k for k in utt2biasing if k not in known]
    if unknown:
        raise DataError(
            f"{source}: id '{unknown[0]}' is neither an utterance nor a recording of the data "
            f"({len(unknown)} such ids); fix the id or drop the line"
        )
    out: Dict[str, BiasingList] = {}
    for utt in utt_ids:
        own, rec = utt2biasing.get(utt), utt2biasing.get(utt2rec.get(utt, ""))
        if own is not None and rec is not None and own is not rec:
            merged = build_list(
                (
                    (p.text + (f" :{p.weight}" if p.weight is not None else ""), p.where)
                    for p in rec.phrases + own.phrases
                ),
                f"{rec.source}+{own.source}",
            )
            out[utt] = merged
        elif own is not None or rec is not None:
            out[utt] = own if own is not None else rec
    return out


def read_lists_for(utt2biasing: PathLike, utt_ids: Sequence[str]) -> Dict[str, BiasingList]:
    """{utt: list} for the utterances ``utt_ids`` from an ``utt2biasing`` file; when its folder holds ``segments``
    (or ``orig_segments``), its ids may also be recording ids (``lists_per_utterance``)."""
    from espnet2_ext.text.time_outputs import read_origins

    origins = read_origins(Path(utt2biasing).parent)  # utt -> (recording, start)
    utt2rec = {u: rec for u, (rec, _) in origins.items()}
    return lists_per_utterance(read_utt2biasing(utt2biasing), utt_ids, utt2rec, source=str(utt2biasing))
