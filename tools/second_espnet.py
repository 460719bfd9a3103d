"""The unit tests against a second ESPnet release (issue 34): the recipe venv's stack with ESPnet swapped.

    tools/venv/bin/python tools/second_espnet.py [PYTEST_ARGS...]        (.ci/run calls it after the main suite)

1. installs the pins of tools/constraints_espnet202509.txt (only what differs from tools/constraints.txt) with
   ``pip install --no-deps --target`` into tools/second_espnet/ (once: a stamp holds the pin file's hash);
2. checks, with that folder first on ``sys.path``, that the recipe venv satisfies every requirement of what was
   installed, transitively (espnet with the extras pyproject.toml requests): nothing else is installed, no torch
   is downloaded, and a requirement the stack does not meet stops the run with one line naming it and the pin file;
3. runs ``pytest -m "not recipe"`` on test/ (or on PYTEST_ARGS) with ``PYTHONPATH=<folder>:<repository>`` and
   ``$ESPNET2_EXT_SECOND_PINS`` naming the pin file (test_packaging.py then checks the overlay is what runs; set
   beforehand, it picks another pin file).

test/test_wheel.py is left out: it resolves the package under tools/constraints.txt in a fresh venv (packaging, not
ESPnet's behaviour, and it would link the overlay's espnet as if it were the pinned one).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "tools" / "constraints_espnet202509.txt"
MAIN_PINS = ROOT / "tools" / "constraints.txt"
PYTEST = ["-m", "not recipe", "--ignore=test/test_wheel.py"]
PINS_ENV = "ESPNET2_EXT_SECOND_PINS"  # set for the tests: test_packaging.py checks the overlay took effect


def read_pins(path: Path) -> Dict[str, str]:
    """``name==version`` lines (comments and blank lines skipped) -> {name: version}; anything else is an error."""
    from packaging.utils import canonicalize_name

    out = {}
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#")[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip() or any(c in line for c in "[];<>!~ "):
            raise ValueError(f"{path}:{n}: {raw.strip()!r} is not 'name==version' (one exact pin per line, no extras)")
        out[canonicalize_name(name.strip())] = version.strip()
    return out


def requested_extras() -> Dict[str, List[str]]:
    """pyproject.toml's core requirements -> the extras it requests of each (``espnet[train]`` -> ["train"])."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {canonicalize_name(r.name): sorted(r.extras) for r in map(Requirement, project["dependencies"])}


def requirements(pins: Dict[str, str]) -> List[str]:
    """The pins as requirements with the extras pyproject.toml requests (what their own dependencies must meet)."""
    extras = requested_extras()
    return [
        f"{name}[{','.join(extras[name])}]=={v}" if extras.get(name) else f"{name}=={v}" for name, v in pins.items()
    ]


def overlay_dir(pins_file: Path) -> Path:
    """Where the pins are installed: ``tools/second_espnet/<pin file's stem>`` (ignored by git, beside tools/venv)."""
    return ROOT / "tools" / "second_espnet" / pins_file.stem


def install(pins_file: Path, target: Path) -> None:
    key = hashlib.sha1(pins_file.read_bytes()).hexdigest()[:12]
    stamp = target / ".stamp"
    if stamp.exists() and stamp.read_text().strip() == key:
        print(f"[second_espnet] {target}: installed ({key})")
        return
    pins = read_pins(pins_file)
    print(f"[second_espnet] installing {' '.join(f'{k}=={v}' for k, v in pins.items())} (--no-deps) into {target}")
    shutil.rmtree(target, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    subprocess.run(pip + ["--target", str(target)] + [f"{k}=={v}" for k, v in pins.items()], check=True)
    stamp.write_text(key + "\n")


# Run with the overlay first on sys.path: the closure of the pinned requirements as this environment meets it
# (test/overlay_env.py raises on the first unmet one), and where espnet2 is imported from.
CHECK = """
import importlib.util, sys
from packaging.requirements import Requirement
from overlay_env import requirement_closure
target, reqs = sys.argv[1], sys.argv[2:]
try:
    dists = requirement_closure(map(Requirement, reqs))
except Exception as e:
    sys.exit(f"{e}")
origin = importlib.util.find_spec("espnet2").origin
if not origin.startswith(target):
    sys.exit(f"espnet2 is imported from {origin}, not from the overlay {target}")
print(f"[second_espnet] {len(dists)} distributions meet {' '.join(reqs)}; espnet2 from {origin}")
"""


def overlay_env(target: Path, pins_file: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env[PINS_ENV] = str(pins_file)
    return env


def check(target: Path, pins_file: Path) -> None:
    env = overlay_env(target, pins_file)
    env["PYTHONPATH"] += os.pathsep + str(ROOT / "test")
    reqs = requirements(read_pins(pins_file))
    r = subprocess.run([sys.executable, "-c", CHECK, str(target), *reqs], env=env, stdout=None, stderr=subprocess.PIPE)
    if r.returncode:
        why = (r.stderr.decode().strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(
            f"second_espnet: the recipe venv does not meet what {pins_file.name} installs: {why}: "
            f"pin a version that fits in {pins_file} (or in {MAIN_PINS.name} for the whole stack)"
        )


def main(argv: List[str]) -> int:
    pins_file = Path(os.environ.get(PINS_ENV) or PINS).resolve()
    target = overlay_dir(pins_file)
    install(pins_file, target)
    check(target, pins_file)
    cmd = [sys.executable, "-m", "pytest", *PYTEST, *(argv or ["-q", "test/"])]
    print(f"[second_espnet] PYTHONPATH={target}:{ROOT} {shlex.join(cmd[1:])}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=overlay_env(target, pins_file)).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
