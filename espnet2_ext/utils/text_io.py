"""Reading users' UTF-8 text files: bytes that are not UTF-8 are a one-line ``DataError``, never a traceback."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Union

from espnet2_ext.common import DataError


def not_utf8_error(path: Union[str, os.PathLike]):
    """The ``DataError`` for a file that does not decode as UTF-8, naming the line and the first bad byte."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
        return DataError(f"{path}: not UTF-8 text; convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8)")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        return DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); convert "
            f"the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        )


@contextlib.contextmanager
def utf8_errors(path: Union[str, os.PathLike]) -> Iterator[None]:
    """Within the block (reading ``path`` as UTF-8), a ``UnicodeDecodeError`` becomes ``not_utf8_error(path)``."""
    try:
        yield
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
