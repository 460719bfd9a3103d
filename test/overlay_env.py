"""Fresh virtualenvs that reuse chosen distributions of the running (recipe) environment, for the packaging tests.

The recipe venv holds the pinned stack (torch alone is ~7 GB). ``expose`` links the files of chosen installed
distributions, one symlink per file of their RECORD, into a folder outside the new venv; ``overlay_venv`` makes a
venv whose ``.pth`` puts that folder on ``sys.path``. pip in the new venv then sees exactly those distributions as
installed, downloads nothing, and never uninstalls them (they lie outside its prefix, and a per-file link moved away
leaves its target alone). ``requirement_closure`` picks the distributions: what a requirement list needs, transitively,
as this environment satisfies it.
"""

from __future__ import annotations

import email.parser
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Dict, Iterable, List, Set

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def wheel_requires(wheel: Path) -> List[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(name).decode("utf-8"))
    return meta.get_all("Requires-Dist") or []


def _applies(req: Requirement, extras: Set[str]) -> bool:
    return req.marker is None or any(req.marker.evaluate({"extra": e}) for e in {"", *extras})


def own_requirements(requires: Iterable[str], name: str, extras: Iterable[str]) -> List[Requirement]:
    """``requires`` of package ``name`` installed with ``extras``, self-references (``name[a,b]``) expanded."""
    reqs = [Requirement(r) for r in requires]
    me, extras = canonicalize_name(name), set(extras)
    grown = True
    while grown:
        added = {e for r in reqs if canonicalize_name(r.name) == me and _applies(r, extras) for e in r.extras}
        grown = not added <= extras
        extras |= added
    return [r for r in reqs if canonicalize_name(r.name) != me and _applies(r, extras)]


def requirement_closure(requirements: Iterable[Requirement]) -> Dict[str, metadata.Distribution]:
    """Installed distributions (canonical name -> distribution) that ``requirements`` need, transitively.
    A requirement this environment does not satisfy raises (the declared set would not install here)."""
    todo, extras_done = list(requirements), {}  # type: List[Requirement], Dict[str, Set[str]]
    dists: Dict[str, metadata.Distribution] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in extras_done and set(req.extras) <= extras_done[name]:
            continue
        extras = extras_done.setdefault(name, set())
        extras |= set(req.extras)
        dist = metadata.distribution(req.name)
        if not req.specifier.contains(dist.version, prereleases=True):
            raise RuntimeError(f"{req} is declared but this environment has {req.name} {dist.version}")
        dists[name] = dist
        todo += [r for r in map(Requirement, dist.requires or []) if _applies(r, extras)]
    return dists


def expose(dists: Iterable[metadata.Distribution], folder: Path) -> int:
    """Symlink every installed file of ``dists`` into ``folder`` at its site-packages-relative path; the count."""
    n = 0
    for dist in dists:
        if dist.files is None:
            raise RuntimeError(f"{dist.metadata['Name']} has no RECORD: its files cannot be exposed")
        for f in dist.files:
            if f.parts[0] == "..":  # console scripts in bin/: not needed for imports
                continue
            src, dst = Path(dist.locate_file(f)), folder / f
            if not src.exists() or dst.exists():
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src, dst)
            n += 1
    return n


def overlay_venv(path: Path, folder: Path) -> Path:
    """A venv without pip at ``path`` whose sys.path also holds ``folder``; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "_exposed_stack.pth").write_text(f"{folder}\n", encoding="utf-8")
    return python


def pip_for(python: Path) -> List[str]:
    """This environment's pip acting on the venv of ``python`` (the overlay venvs have no pip of their own)."""
    return [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
