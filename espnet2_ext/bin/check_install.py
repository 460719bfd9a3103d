"""What this environment gives espnet2_ext (in the spirit of ESPnet's tools/check_install.py).

    python -m espnet2_ext.bin.check_install

Prints the versions of Python, torch, torchaudio, ESPnet and S3PRL (against the oldest supported and tested ones),
the GPU, every declared dependency of the core and of each extra (scoring, corpus, zoo, hub, longform, test) as
importable or not, with what a missing one disables, the optional RNN-T loss backends, and whether espeak-ng and sox
are on PATH. Exit status 0 when the core works (every core dependency imports, the stack is supported and
espnet2_ext's classes register in ESPnet's ASR task); otherwise 1 with one line saying what to install.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
from dataclasses import dataclass
from importlib import metadata
from typing import List, Optional, Sequence

from espnet2_ext.bin._cli import cli_main
from espnet2_ext.stack import MINIMUM, TESTED, stack_problems


@dataclass(frozen=True)
class Part:
    dist: str  # distribution name as pyproject.toml declares it
    module: str  # what is imported to prove it works
    extra: str  # "" for the core
    serves: str  # what does not work without it


# Every dependency pyproject.toml declares, in its core or an extra (test/test_packaging.py keeps the two equal).
PARTS = (
    Part("torch", "torch", "", "everything"),
    Part("torchaudio", "torchaudio", "", "the default RNN-T loss (rnnt_loss: torchaudio) and the pretraining's MFCCs"),
    Part("espnet", "espnet2.tasks.asr", "", "training, decoding, packing (ESPnet's ASR task)"),
    Part("espnet-s3prl", "s3prl", "", "the XLSR frontend"),
    Part("sentencepiece", "sentencepiece", "", "the tokenizer"),
    Part("soundfile", "soundfile", "", "reading audio"),
    Part("soxr", "soxr", "", "resampling audio that is not at the model's rate"),
    Part("kaldiio", "kaldiio", "", "Kaldi ark and pipe entries in wav.scp"),
    Part("jiwer", "jiwer", "", "WER scoring"),
    Part("rapidfuzz", "rapidfuzz", "", "entity snapping to a biasing list (snap_entities)"),
    Part("numpy", "numpy", "", "everything"),
    Part("scipy", "scipy.stats", "", "grid_report's t-tests"),
    Part("PyYAML", "yaml", "", "configs"),
    Part("matplotlib", "matplotlib", "", "plots (plot_conversation, task_vector_analysis)"),
    Part("humanfriendly", "humanfriendly", "", "sample rates written as '16k' in model configs"),
    Part("packaging", "packaging.version", "", "the version check of `import espnet2_ext`"),
    Part("pyannote.core", "pyannote.core", "scoring", "time-based SCD/ENDP metrics of tokenverse_score"),
    Part(
        "pyannote.metrics",
        "pyannote.metrics.segmentation",
        "scoring",
        "time-based SCD/ENDP metrics of tokenverse_score",
    ),
    Part("faker", "faker", "corpus", "the read subset's name lists (prepare_mini_tokenverse --read_names)"),
    Part("wordfreq", "wordfreq", "corpus", "the word lists of the pretraining corpus (prepare_ssl_corpus)"),
    Part("scikit-learn", "sklearn.cluster", "corpus", "k-means targets of the encoder pretraining (pretrain_standin)"),
    Part(
        "espnet_model_zoo",
        "espnet_model_zoo.downloader",
        "zoo",
        "Speech2Text.from_pretrained with a packed model (zip) or a model name",
    ),
    Part("huggingface_hub", "huggingface_hub", "hub", "upload_model --push"),
    Part("silero-vad", "silero_vad", "longform", "voice-activity segmentation of long recordings"),
    Part("pytest", "pytest", "test", "the test suite"),
    Part("hypothesis", "hypothesis", "test", "the property tests"),
    Part("ruff", "ruff", "test", "the formatter and linter CI runs (.ci/run)"),
)
# Imported when present, never declared (no CPU wheel, or wheels that replace torch).
OPTIONAL = (
    Part("warp-rnnt", "warp_rnnt", "", "model_conf.rnnt_loss: warp_rnnt"),
    Part("k2", "k2", "", "model_conf.rnnt_loss: k2"),
)
TOOLS = {"espeak-ng": "the mini corpus synthesis (recipe stage 1)", "sox": "the mini corpus synthesis (recipe stage 1)"}
STACK_NAMES = {"torch": "torch", "torchaudio": "torchaudio", "espnet": "ESPnet", "espnet-s3prl": "S3PRL"}


class CoreBroken(RuntimeError):
    """A core dependency is missing or too old: espnet2_ext cannot train or decode here."""


@dataclass
class Probe:
    part: Part
    version: Optional[str]
    error: Optional[str]  # None: imports

    @property
    def ok(self) -> bool:
        return self.error is None


def probe(part: Part) -> Probe:
    """Import ``part.module``; any failure (absent, broken build, missing shared library) counts as missing."""
    try:
        version = metadata.version(part.dist)
    except metadata.PackageNotFoundError:
        version = None
    try:
        importlib.import_module(part.module)
    except Exception as e:  # ImportError, OSError (a shared library), anything a broken install raises
        first = (str(e).strip().splitlines() or [""])[0]
        return Probe(part, version, f"{type(e).__name__}: {first}"[:160])
    return Probe(part, version, None)


def registered() -> Optional[str]:
    """None when ESPnet's ASR task lists our classes (the import hook ran); else what is wrong."""
    try:
        from espnet2.tasks import asr
    except Exception as e:
        return f"espnet2.tasks.asr does not import: {type(e).__name__}: {e}"
    if "s3prl_tokenverse" not in asr.frontend_choices.classes:
        return "espnet2_ext's classes are not registered in ESPnet's ASR task"
    return None


def gpu_line() -> str:
    try:
        import torch
    except Exception:
        return "unknown (torch does not import)"
    build = f"torch built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only torch build"
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"{torch.cuda.device_count()} CUDA device(s): {names} ({build})"
    return f"none: training and decoding run on the CPU ({build})"


def stack_line(dist: str, probes: Sequence[Probe]) -> str:
    version = next((p.version for p in probes if p.part.dist == dist), None) or "not installed"
    minimum = MINIMUM[dist][0]
    note = f"supported >= {minimum}"
    if version != "not installed":
        from packaging.version import InvalidVersion, Version

        try:
            if Version(version).release > Version(TESTED[dist]).release:
                note += f"; newer than the tested {TESTED[dist]}: untested"
        except InvalidVersion:  # a custom build's version string
            note += "; version not comparable"
    return f"{STACK_NAMES[dist]:<11} {version} ({note})"


def part_line(p: Probe) -> str:
    if p.ok:
        return f"  [ok]      {p.part.dist} {p.version or '(version unknown)'}"
    return f"  [MISSING] {p.part.dist}: {p.error} -> disables: {p.part.serves}"


def report_lines(
    probes: Sequence[Probe],
    optional: Sequence[Probe],
    tools: dict,
    gpu: str,
    problems: Sequence[str],
    registration: Optional[str],
) -> List[str]:
    lines = ["espnet2_ext environment check", f"{'Python':<11} {sys.version.split()[0]} ({sys.executable})"]
    lines += [stack_line(dist, probes) for dist in MINIMUM]
    lines += [f"{'GPU':<11} {gpu}", "", "core:"]
    lines += [part_line(p) for p in probes if not p.part.extra]
    lines.append(
        f"  [{'ok' if registration is None else 'FAILED'}]      espnet2_ext registered in ESPnet's ASR task"
        + (f": {registration}" if registration else "")
    )
    for extra in dict.fromkeys(p.part.extra for p in probes if p.part.extra):
        members = [p for p in probes if p.part.extra == extra]
        state = "ok" if all(p.ok for p in members) else f'incomplete: pip install "espnet2_ext[{extra}]"'
        lines.append(f"extra {extra}: {state}")
        lines += [part_line(p) for p in members]
    lines.append("optional RNN-T loss backends (not declared):")
    lines += [
        f"  [{'ok' if p.ok else 'absent'}]  {p.part.dist}" + ("" if p.ok else f" -> unavailable: {p.part.serves}")
        for p in optional
    ]
    lines.append("system tools:")
    lines += [
        f"  [{'ok' if path else 'MISSING'}]  {tool}" + (f" {path}" if path else f" -> disables: {TOOLS[tool]}")
        for tool, path in tools.items()
    ]
    lines += [f"stack: {p}" for p in problems]
    return lines


def get_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)


def run(argv: Optional[List[str]] = None) -> List[Probe]:
    """Print the report; the probes of ``PARTS`` for callers. ``CoreBroken`` (exit 1) when the core does not work."""
    get_parser().parse_args(argv)
    probes = [probe(p) for p in PARTS]
    missing_core = [p.part.dist for p in probes if not p.part.extra and not p.ok]
    registration = registered() if not missing_core else "(core incomplete)"
    problems = stack_problems()
    print(
        "\n".join(
            report_lines(
                probes,
                [probe(p) for p in OPTIONAL],
                {t: shutil.which(t) for t in TOOLS},
                gpu_line(),
                problems,
                registration,
            )
        )
    )
    if missing_core or problems or registration:
        reasons = (
            [f"missing {', '.join(missing_core)} (pip install espnet2_ext installs them)"]
            if missing_core
            else [registration]
            if registration
            else []
        ) + problems
        raise CoreBroken(
            f"the core does not work here: {'; '.join(reasons)}; see README 'Add to an existing ESPnet environment'"
        )
    missing = sorted({p.part.extra for p in probes if p.part.extra and not p.ok})
    print(
        "result: the core works; " + (f"extras incomplete: {', '.join(missing)}" if missing else "every extra imports")
    )
    return probes


main = cli_main(run, prog="check_install", errors=(CoreBroken,))

if __name__ == "__main__":
    sys.exit(main())
