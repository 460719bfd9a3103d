"""Kaldi table files (``<key> <value...>`` lines in C-locale order): the reader every layer shares.

It sits below ``text/`` and ``data/`` so that ``text/time_outputs.py`` (reading ``segments``/``orig_segments``)
and ``data/kaldi_dir.py`` (whole data dirs) both import down; ``data/kaldi_dir.py`` re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Union

from espnet2_ext.common import DataError
from espnet2_ext.utils.text_io import utf8_errors

PathLike = Union[str, Path]
TURNS_FILE, ORIGIN_FILE = "utt2turns", "orig_segments"  # optional, may list a subset of the utterances


def c_sort_key(s: str) -> bytes:
    """``LC_ALL=C sort`` order."""
    return s.encode("utf-8")


@dataclass
class Table:
    """A Kaldi table file: key -> value with the line number of each key."""

    path: Path
    values: Dict[str, str]
    lines: Dict[str, int]

    def where(self, key: str) -> str:
        return f"{self.path}:{self.lines[key]} ({key})"

    def number(self, key: str, field: str) -> float:
        """``field`` (a column of ``key``'s line) as a float; a DataError naming the line otherwise."""
        try:
            return float(field)
        except ValueError:
            raise DataError(f"{self.where(key)}: '{field}' is not a number") from None


def read_table(path: PathLike, strict: bool = True) -> Table:
    """Parse ``<key> <value...>`` lines. ``strict``: blank lines, duplicate keys and unsorted keys raise
    ``DataError``; otherwise blank lines are skipped and the first of duplicate keys wins."""
    path = Path(path)
    values: Dict[str, str] = {}
    lines: Dict[str, int] = {}
    prev = None
    with path.open(encoding="utf-8") as f, utf8_errors(path):
        for lineno, line in enumerate(f, 1):
            parts = line.strip().split(maxsplit=1)
            if not parts:
                if strict:
                    raise DataError(f"{path}:{lineno}: empty line; remove it")
                continue
            key, value = parts[0], (parts[1] if len(parts) > 1 else "")
            if key in values:
                if strict:
                    raise DataError(
                        f"{path}:{lineno} ({key}): duplicate id (first on line {lines[key]}); keep "
                        f"one line per id (fix_data_dir keeps the first)"
                    )
                continue
            if strict and prev is not None and c_sort_key(key) < c_sort_key(prev):
                raise DataError(
                    f"{path}:{lineno} ({key}): not sorted (comes after {prev}); sort with "
                    f"'LC_ALL=C sort' or run fix_data_dir"
                )
            values[key], lines[key], prev = value, lineno, key
    return Table(path, values, lines)
