"""``mini_tokenverse``: a small synthetic multilingual conversation corpus generated with espeak-ng + sox.

Two subsets, like the paper's mix of fully and partially annotated data:

* conversations (2-4 turns, 1 template sentence per turn, several espeak voices, 0.2-0.5 s pauses), fully
  annotated: ``[EN] hello [NE] maria [/NE] how are you [ENDP] [SCD] i am fine thank you [ENDP]``,
  utt2tasks ``asr scd endp ner lid``;
* read sentences spoken by other voices, annotated for ASR + LID only (``[DE] guten morgen anna``),
  utt2tasks ``asr lid`` (like CommonVoice).

Everything (texts, ids, voices, pauses, audio) is a function of the seed. A share of the entity names and of
the voices is held out of train so test measures generalisation. Audio is 16 kHz mono 16-bit; a wav is only
synthesised again when its recipe (text, voices, pauses, espeak version) or its content changed.

The plans (texts, voices, splits) come from ``mini_tokenverse_plan``; this module renders them with espeak-ng + sox
and writes the Kaldi-style dirs and the corpus statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import soundfile as sf

from espnet2_ext.common import atomic_output, atomic_write_text
from espnet2_ext.corpora.mini_tokenverse import mini_tokenverse_words as W
from espnet2_ext.corpora.mini_tokenverse.mini_tokenverse_plan import (
    PlannedUtt,
    plan_corpus,
    plan_extension,
    read_names_percent,
)

SAMPLE_RATE = 16000


# ------------------------------------------------------------------------------------------------ synthesis
def check_tools() -> str:
    """espeak-ng version string; a clear error when espeak-ng or sox is missing."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found on PATH; install it (apt-get install espeak-ng sox)")
    return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout.strip()


def _tts(args: List[str], text: str) -> np.ndarray:
    """One sentence as int16 at 16 kHz: espeak-ng (22.05 kHz) resampled by sox without dither (deterministic)."""
    wav = subprocess.run(["espeak-ng", *args, "--stdout", text], capture_output=True, check=True).stdout
    raw = subprocess.run(
        [
            "sox",
            "-D",
            "-t",
            "wav",
            "-",
            "-t",
            "raw",
            "-r",
            str(SAMPLE_RATE),
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-c",
            "1",
            "-L",
            "-",
        ],
        input=wav,
        capture_output=True,
        check=True,
    ).stdout
    x = np.frombuffer(raw, dtype="<i2")
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > 300)  # trim espeak's own leading/trailing silence
    if loud.size:
        margin = int(0.02 * SAMPLE_RATE)
        x = x[max(0, loud[0] - margin) : loud[-1] + margin]
    return x


def synthesize(recipe: dict, out_path: Path, turn_bounds: Optional[list] = None) -> int:
    """Render one utterance to ``out_path`` (written atomically); returns the number of samples. ``turn_bounds``,
    when given, receives each turn's [start, end] in seconds (where its speech starts and ends in the wav)."""
    zeros = lambda s: np.zeros(int(round(s * SAMPLE_RATE)), dtype=np.int16)  # noqa: E731
    pieces = [zeros(recipe["lead"])]
    pos = len(pieces[0])
    for turn in recipe["turns"]:
        speech = _tts(turn["args"], turn["text"])
        if turn_bounds is not None:
            turn_bounds.append([round(pos / SAMPLE_RATE, 3), round((pos + len(speech)) / SAMPLE_RATE, 3)])
        pieces += [speech, zeros(turn["pause"])]
        pos += len(speech) + len(pieces[-1])
    pieces.append(zeros(recipe["tail"]))
    x = np.concatenate(pieces).astype(np.float64)
    x += np.random.default_rng(recipe["noise_seed"]).normal(0.0, recipe["noise"], x.shape)
    x = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    with atomic_output(out_path) as tmp:
        sf.write(str(tmp), x, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return len(x)


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def render_all(
    plans: Sequence[PlannedUtt],
    wav_dir: Path,
    nj: int = 2,
    log: Callable[[str], None] = print,
    turn_times: Optional[Dict[str, list]] = None,
) -> Dict[str, float]:
    """Synthesise every planned wav not already present with the same recipe and content; returns
    utt_id -> duration (s). ``wav_dir/manifest.json`` records recipe hash, content hash, length and each turn's
    [start, end] (s), which ``turn_times`` (utt_id -> list) receives when given."""
    version = check_tools()
    wav_dir.mkdir(parents=True, exist_ok=True)
    # A run killed with SIGKILL cannot clean up its temporary wavs (synthesize's finally never runs): drop them.
    for stale in wav_dir.glob(".*.tmp.wav"):
        stale.unlink()
    manifest_path = wav_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    todo, durations = [], {}
    for p in plans:
        rh = hashlib.sha1(json.dumps([version, p.recipe()], sort_keys=True).encode()).hexdigest()
        path = wav_dir / f"{p.utt_id}.wav"
        m = manifest.get(path.name)
        # Manifests written before turn times were recorded lack "turns": such wavs are rendered again.
        if m and m.get("recipe") == rh and "turns" in m and path.is_file() and _sha1(path) == m.get("sha1"):
            durations[p.utt_id] = m["samples"] / SAMPLE_RATE
            if turn_times is not None:
                turn_times[p.utt_id] = m["turns"]
        else:
            todo.append((p, rh, path))
    log(
        f"mini_tokenverse: {len(plans)} wavs, {len(plans) - len(todo)} up to date, synthesising {len(todo)} "
        f"with {nj} jobs"
    )
    step = max(1, len(todo) // 10)
    with ThreadPoolExecutor(max_workers=max(1, nj)) as pool:  # each job drives espeak-ng/sox subprocesses
        bounds: Dict[str, list] = {p.utt_id: [] for p, _, _ in todo}
        futures = {pool.submit(synthesize, p.recipe(), path, bounds[p.utt_id]): (p, rh, path) for p, rh, path in todo}
        for k, fut in enumerate(as_completed(futures), 1):
            p, rh, path = futures[fut]
            n = fut.result()
            manifest[path.name] = {"recipe": rh, "sha1": _sha1(path), "samples": n, "turns": bounds[p.utt_id]}
            durations[p.utt_id] = n / SAMPLE_RATE
            if turn_times is not None:
                turn_times[p.utt_id] = bounds[p.utt_id]
            if k % step == 0 or k == len(todo):  # checkpoint: an interrupted run resumes from here
                atomic_write_text(manifest_path, json.dumps(manifest, indent=0, sort_keys=True))
                log(f"mini_tokenverse: synthesised {k}/{len(todo)} ({100 * k // len(todo)}%)")
    atomic_write_text(manifest_path, json.dumps(manifest, indent=0, sort_keys=True))
    return durations


# ------------------------------------------------------------------------------------------------ outputs
def _row(
    name: str,
    subset: str,
    plans: Sequence[PlannedUtt],
    durations: Dict[str, float],
    train_voices: set,
    train_entities: set,
) -> str:
    voices = {t.voice.speaker_id for p in plans for t in p.turns}
    refs = [p.reference().split() for p in plans]
    ents = [(p.lang, e) for p in plans for e in p.entities()]
    conv = subset == "conversations"
    unseen_ent = "-"
    if conv and name != "train" and ents:
        unseen_ent = f"{100.0 * sum(e not in train_entities for e in ents) / len(ents):.0f}"
    langs = ", ".join(lang for lang in W.LANGUAGES if any(p.lang == lang for p in plans))
    tasks = " ".join(plans[0].tasks)
    hours = sum(durations[p.utt_id] for p in plans) / 3600
    na = lambda n: str(n) if conv else "n/a"  # noqa: E731  (not annotated in read speech)
    return (
        f"| {name} | {subset} | {tasks} | {len(plans)} | {len(voices)} ({len(voices - train_voices)}) | "
        f"{hours:.3f} | {na(sum(r.count('[SCD]') for r in refs))} | {na(sum(r.count('[ENDP]') for r in refs))} | "
        f"{na(len(ents))} | {unseen_ent} | {langs} |"
    )


def corpus_stats(splits: Dict[str, List[PlannedUtt]], durations: Dict[str, float], seed: int, size: str) -> str:
    """Markdown table in the spirit of the paper's Table I."""
    train = splits["train"]
    train_voices = {t.voice.speaker_id for p in train for t in p.turns}
    train_entities = {(p.lang, e) for p in train for e in p.entities()}
    lines = [
        f"# mini_tokenverse corpus statistics (seed {seed}, size {size})",
        "",
        "| split | subset | tasks | #utts | #speakers (unseen in train) | hours | #SCD | #ENDP | #entities | "
        "% entities unseen in train | languages |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, plans in splits.items():
        for subset, key in (("conversations", "conv"), ("read", "read")):
            part = [p for p in plans if p.subset == key]
            if part:
                lines.append(_row(name, subset, part, durations, train_voices, train_entities))
    total = sum(durations[p.utt_id] for p in train) / 3600
    vocab = {
        lang: {w for p in train if p.lang == lang for t in p.turns for w in t.spoken.split()}
        for lang in W.LANGUAGES
        if any(p.lang == lang for p in train)
    }
    lines += [
        "",
        f"train total: {len(train)} utterances, {total:.3f} h; `train_full_only` = the conversations "
        f"of train (fully annotated baseline).",
        "",
        "Vocabulary (distinct words in train references, tags excluded): "
        + ", ".join(f"{lang} {len(words)}" for lang, words in vocab.items()),
        "",
    ]
    return "\n".join(lines)


def ref_turns(plan: PlannedUtt, bounds: Sequence[Sequence[float]]) -> tuple:
    """The reference turns of a planned utterance (``utt2turns``) from the synthesised turn bounds."""
    from espnet2_ext.data.ref_turns import RefTurn

    if len(bounds) != len(plan.turns):
        raise RuntimeError(
            f"{plan.utt_id}: {len(bounds)} turn times for {len(plan.turns)} turns; delete its wav "
            f"and re-run to synthesise it again"
        )
    return tuple(RefTurn(float(s), float(e), t.voice.speaker_id) for (s, e), t in zip(bounds, plan.turns))


def prepare_mini_tokenverse(
    out_dir,
    seed: int = 0,
    size: str = "default",
    nj: int = 2,
    partial: bool = True,
    wav_dir=None,
    log: Callable[[str], None] = print,
    train_read: Optional[int] = None,
    read_names: float = 0.0,
    dev_read: Optional[int] = None,
) -> Dict[str, list]:
    """Generate the corpus: wavs, Kaldi dirs ``train``, ``train_full_only``, ``dev``, ``test``
    (+ ``test_partial``) under ``out_dir`` and ``out_dir/corpus_stats.md``. Returns dir name -> utterances.

    ``train_read`` N additionally writes ``train_read<N>``: the conversations of train + N read utterances per
    language (a larger ASR+LID-only subset); ``train`` and every other dir stay exactly what they are without it.
    ``read_names`` P (with ``train_read``) writes ``train_read<N>_names<100 P>`` instead of ``train_read<N>``: the
    same conversations and read templates, with a share P of the read entity slots filled from open name lists
    (``name_pools``; no mini_tokenverse entity among them). ``dev_read`` N also writes ``dev_partial``: N read
    utterances per language drawn like ``test_partial``, a dev set for the read-speech target.

    Wavs go to ``<wav_dir>/<size>-seed<seed>/`` (default ``wav_dir``: ``<out_dir>/../downloads/mini_tokenverse/
    wav``) so corpora of other sizes/seeds never overwrite each other's audio. Paths in wav.scp are written as
    given: relative to the current directory when ``wav_dir`` is relative, as Kaldi recipes expect.
    """
    from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir

    out_dir = Path(out_dir)
    wav_dir = (
        Path(wav_dir) if wav_dir else Path(os.path.normpath(out_dir / ".." / "downloads" / "mini_tokenverse" / "wav"))
    )
    wav_dir = wav_dir / f"{size}-seed{seed}"
    if dev_read and not partial:
        raise ValueError("dev_read adds read speech (dev_partial): it cannot go with partial=False (--no_partial)")
    splits = plan_corpus(seed, size, partial, dev_read=dev_read)
    if train_read is not None and not partial:
        raise ValueError(
            "train_read sets the size of the read-speech subset: it cannot go with partial=False (--no_partial)"
        )
    if read_names and train_read is None:
        raise ValueError("read_names is a share of the train_read<N> subset's entity slots: give train_read too")
    if train_read is not None:  # same utt ids as in train are the same plans (same stream): synthesised once
        name = f"train_read{train_read}" + (f"_names{read_names_percent(read_names)}" if read_names else "")
        splits[name] = plan_corpus(seed, size, partial, train_read=train_read, read_names=read_names)["train"]
    unique = {p.utt_id: p for ps in splits.values() for p in ps}
    times: Dict[str, list] = {}
    durations = render_all(list(unique.values()), wav_dir, nj, log, turn_times=times)

    def utts(plans):
        return [
            Utterance(
                p.utt_id,
                p.speaker,
                p.reference(),
                p.lang,
                p.tasks,
                str(wav_dir / f"{p.utt_id}.wav"),
                duration=round(durations[p.utt_id], 3),
                turns=ref_turns(p, times[p.utt_id]),
            )
            for p in plans
        ]

    dirs = {name: utts(plans) for name, plans in splits.items()}
    dirs["train_full_only"] = utts([p for p in splits["train"] if p.subset == "conv"])
    for name, records in dirs.items():
        write_data_dir(records, out_dir / name)
    atomic_write_text(out_dir / "corpus_stats.md", corpus_stats(splits, durations, seed, size))
    log(f"mini_tokenverse: wrote {', '.join(str(out_dir / n) for n in dirs)} and {out_dir / 'corpus_stats.md'}")
    return dirs


def prepare_extension(
    out_dir,
    extension: str,
    seed: int = 0,
    size: str = "default",
    nj: int = 2,
    wav_dir=None,
    log: Callable[[str], None] = print,
) -> Dict[str, list]:
    """Write the Kaldi dirs of ``plan_extension`` under ``out_dir`` (wavs beside the default corpus's, same
    ``<wav_dir>/<size>-seed<seed>/``; their utt ids never collide). Returns dir name -> utterances."""
    from espnet2_ext.data.kaldi_dir import Utterance, write_data_dir

    out_dir = Path(out_dir)
    wav_dir = (
        Path(wav_dir) if wav_dir else Path(os.path.normpath(out_dir / ".." / "downloads" / "mini_tokenverse" / "wav"))
    )
    wav_dir = wav_dir / f"{size}-seed{seed}"
    splits = plan_extension(extension, seed, size)
    times: Dict[str, list] = {}
    durations = render_all([p for ps in splits.values() for p in ps], wav_dir, nj, log, turn_times=times)
    dirs = {
        name: [
            Utterance(
                p.utt_id,
                p.speaker,
                p.reference(),
                p.lang,
                p.tasks,
                str(wav_dir / f"{p.utt_id}.wav"),
                duration=round(durations[p.utt_id], 3),
                turns=ref_turns(p, times[p.utt_id]),
            )
            for p in plans
        ]
        for name, plans in splits.items()
    }
    for name, records in dirs.items():
        write_data_dir(records, out_dir / name)
    log(f"mini_tokenverse: wrote {', '.join(str(out_dir / n) for n in dirs)} (extension {extension})")
    return dirs
