"""Small things every layer shares: batch field names, the bad-input error, atomic writes, list options.

The lowest module of the package: it imports nothing from ``espnet2_ext`` (so any module may import it without
a circle) and nothing heavy (no torch, no espnet2).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

PathLike = Union[str, os.PathLike]

# ---- batch field names --------------------------------------------------------------------------------
# Data name of the data dir's utt2tasks (the tasks an utterance is annotated for), read as type ``text``.
TASKS_NAME = "tasks"
# (B, 1 + K) 0/1 tensor over the task spec's tasks (primary first): made by the preprocessor, stacked by the
# task-mask collate function, passed as an argument down to the frontend that adds v(c).
TASK_MASK = "task_mask"
# sentencepiece's "▁": it reads it as a space, and tag-aware pieces start with it
WORD_BOUNDARY = "\u2581"


class DataError(ValueError):
    """Bad input data; the message names the file/line or utterance and says how to fix it."""


# ---- atomic writes ------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_output(path: PathLike, suffix: Optional[str] = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds, otherwise it is
    removed. Parent directories are created. The temporary name ends in ``suffix`` (default ``.tmp`` + the
    suffix of ``path``, for writers that pick the format by the name, e.g. matplotlib)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".tmp" + path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: PathLike, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_dir(out_dir: PathLike, mode: Optional[int] = 0o755) -> Iterator[Path]:
    """Yield a temporary sibling directory ``.<name>.tmp``; if the block succeeds it becomes ``out_dir`` (an
    existing ``out_dir`` is replaced), otherwise it is removed, so ``out_dir`` is never half-written.

    The name is fixed (one writer per ``out_dir``), so what a killed writer left is cleared by the next run
    instead of piling up next to the result."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = fresh_temp_sibling(out_dir)
    try:
        yield tmp
        move_dir_into_place(tmp, out_dir, mode)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def fresh_temp_sibling(out_dir: PathLike) -> Path:
    """An empty directory ``.<name>.tmp`` beside ``out_dir`` (what a killed writer left there is removed first);
    for writers that commit it with ``move_dir_into_place``."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def move_dir_into_place(tmp: PathLike, out_dir: PathLike, mode: Optional[int] = 0o755) -> None:
    """Rename the finished directory ``tmp`` (a sibling of ``out_dir``) to ``out_dir``, replacing an existing one;
    for writers that cannot hold an ``atomic_dir`` block open (several dirs committed together)."""
    tmp, out_dir = Path(tmp), Path(out_dir)
    if mode is not None:
        os.chmod(tmp, mode)  # mkdtemp would make it 0700; umask may too
    if out_dir.exists():
        # POSIX cannot swap two directories in one call: move the old one aside, then the new one in.
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


# ---- options ------------------------------------------------------------------------------------------
def comma_list(value: Union[str, Sequence[str], None]) -> List[str]:
    """``"a, b,,c"`` or ``"a b"`` -> ``["a", "b", "c"]``: names separated by commas and/or whitespace (no task,
    language, split, metric or module name has either; shell users write both); a sequence is stripped the same
    way; None or "" -> ``[]``. The one list parser of the CLIs and of ``TaskSpec.active_tasks``."""
    if value is None:
        return []
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    return [str(s).strip() for s in items if str(s).strip()]
