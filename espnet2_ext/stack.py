"""The supported stack: the oldest torch / torchaudio / ESPnet / S3PRL that espnet2_ext runs on.

``import espnet2_ext`` calls ``check_stack()``: below these versions it raises ``UnsupportedStackError`` with one line
naming what was found, what is needed and how to fix it, instead of failing later inside ESPnet or S3PRL. Versions are
read from the installed distributions' metadata, so nothing heavy (torch) is imported here. The numbers are
pyproject.toml's lower bounds (test/test_packaging.py keeps the two equal); a development or local build of the
same release (``2.9.1+cu126``, ``2.9.1a0``) counts as that release.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib import metadata
from typing import List, Optional, Tuple

# distribution -> (oldest supported version, module it provides). ESPnet's is the older release CI runs the unit
# tests against (tools/constraints_espnet202509.txt); the others are the pinned stack's (tools/constraints.txt).
MINIMUM = {
    "torch": ("2.9.1", "torch"),
    "torchaudio": ("2.9.1", "torchaudio"),
    "espnet": ("202509", "espnet2"),
    "espnet-s3prl": ("2026.5.14", "s3prl"),
}
# distribution -> the newest version CI runs (tools/constraints.txt; test_packaging.py keeps them equal):
# check_install marks a newer one untested
TESTED = {"torch": "2.9.1", "torchaudio": "2.9.1", "espnet": "202511", "espnet-s3prl": "2026.5.14"}
SKIP_ENV = "ESPNET2_EXT_SKIP_STACK_CHECK"
README_SECTION = "README 'Add to an existing ESPnet environment'"


class UnsupportedStackError(ImportError):
    """torch, torchaudio, ESPnet or S3PRL is older than espnet2_ext supports (or absent)."""


def installed_version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> Tuple[int, ...]:
    from packaging.version import Version

    return Version(version).release


def stack_problems() -> List[str]:
    """One phrase per distribution below its minimum or missing; empty when the stack is supported."""
    from packaging.version import InvalidVersion

    problems = []
    for dist, (minimum, module) in MINIMUM.items():
        found = installed_version(dist)
        if found is None:
            if dist == "espnet-s3prl" and installed_version("s3prl") is not None:
                problems.append(
                    f"espnet-s3prl>={minimum} (found PyPI's s3prl {installed_version('s3prl')}, which "
                    f"calls torchaudio APIs removed in 2.9: pip uninstall s3prl, then install espnet-s3prl)"
                )
            elif importlib.util.find_spec(module) is None:
                problems.append(f"{dist}>={minimum} (not installed)")
            # else: importable without metadata (a source checkout on PYTHONPATH): its version cannot be told
            continue
        try:
            too_old = _release(found) < _release(minimum)
        except InvalidVersion:  # a custom build's version string: do not block it
            continue
        if too_old:
            problems.append(f"{dist}>={minimum} (found {found})")
    return problems


CHECK_INSTALL = "espnet2_ext.bin.check_install"  # reports the stack itself, so the import must not stop it


def our_cli_module() -> Optional[str]:
    """``espnet2_ext.x.y`` in ``python -m espnet2_ext.x.y`` (the package is imported before that module runs)."""
    argv = getattr(sys, "orig_argv", [])
    for i, a in enumerate(argv[1:-1], 1):
        if a == "-m":
            return argv[i + 1] if argv[i + 1].split(".")[0] == "espnet2_ext" else None
        if a == "-c" or not a.startswith("-"):  # inline code or a script: what follows is its own arguments
            return None
    return None


def check_stack() -> None:
    """Raise ``UnsupportedStackError`` (one line) unless the stack is supported or ``$SKIP_ENV`` is set.
    Under one of our CLIs the line is all the user sees (exit 1, no traceback into the import machinery)."""
    cli = our_cli_module()
    if os.environ.get(SKIP_ENV) or cli == CHECK_INSTALL:
        return
    problems = stack_problems()
    if not problems:
        return
    message = (
        f"espnet2_ext needs {'; '.join(problems)}: upgrade them in this environment (torch and torchaudio "
        f"as a matching pair built for your CUDA; see {README_SECTION}), or set {SKIP_ENV}=1 to try anyway"
    )
    if cli:
        print(message, file=sys.stderr)
        raise SystemExit(1)
    raise UnsupportedStackError(message)
