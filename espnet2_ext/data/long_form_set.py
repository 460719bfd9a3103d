"""A long-form evaluation set made from a conversation test set (issue #30): its conversations laid end to end as
whole recordings, with reference turn times known from the generator (``utt2turns``).

* ``lf_conv``: one recording per language, that language's conversations in id order, a pause of
  ``pause_s`` (uniform, seeded) of the corpus's noise floor between two conversations (turns inside a conversation
  keep their own pauses);
* ``lf_<N>min``: every conversation in id order (languages switch between conversations), repeated until the
  recording lasts ``N`` minutes (the stress recordings: 10 and 60 min). Made by concatenation, no new synthesis.

Each set is a Kaldi dir: ``wav.scp`` (one wav per recording), ``text`` (the conversations' references joined: a
language token where the language changes, ``[SCD]`` between two conversations when the speaker changes),
``utt2turns`` (turns in the recording's clock), ``utt2lang``, ``utt2spk``/``spk2utt``, ``utt2tasks``, ``utt2dur``
and ``ref_segments`` (``<utt-id> <recording-id> <start> <end>``: where each source utterance lies, so a
per-utterance decode can be placed in the same clock with ``place_utterance_decode``; not named ``segments`` so
no tool cuts the recording along it). Audio is written as it is read, one utterance at a time, atomically.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from espnet2_ext.common import DataError, atomic_dir, atomic_output
from espnet2_ext.data.kaldi_dir import c_sort_key, read_table
from espnet2_ext.data.ref_turns import RefTurn, format_turns, parse_turns

SAMPLE_RATE = 16000
NOISE_STD = 4.0  # the corpus's noise floor in 16-bit LSBs (mini_tokenverse_plan.NOISE_STD)
SCD = "[SCD]"
REPEAT = "__r"  # <utt>__r<k>: the k-th repetition of an utterance in a stress recording


@dataclass
class SourceUtt:
    utt: str
    wav: str
    text: List[str]
    turns: Tuple[RefTurn, ...]
    lang: str


def read_source(src: Path) -> List[SourceUtt]:
    tables = {
        name: read_table(src / name, strict=False)
        for name in ("wav.scp", "text", "utt2turns", "utt2lang")
        if (src / name).is_file()
    }
    missing = {"wav.scp", "text", "utt2turns", "utt2lang"} - set(tables)
    if missing:
        raise DataError(f"{src}: needs {', '.join(sorted(missing))} (a mini_tokenverse conversation set has them)")
    out = []
    for utt in sorted(tables["wav.scp"].values, key=c_sort_key):
        if utt not in tables["utt2turns"].values:
            continue  # read speech without turn times: not a conversation
        out.append(
            SourceUtt(
                utt,
                tables["wav.scp"].values[utt],
                tables["text"].values[utt].split(),
                parse_turns(tables["utt2turns"].values[utt], tables["utt2turns"].where(utt)),
                tables["utt2lang"].values[utt],
            )
        )
    if not out:
        raise DataError(f"{src}/utt2turns: no utterance with turn times; make the set from a conversation set")
    return out


def join_texts(utts: Sequence[SourceUtt], lang_tokens: Sequence[str]) -> List[str]:
    """References joined: a language token only where it changes, ``[SCD]`` where the speaker changes across a
    conversation boundary."""
    out: List[str] = []
    lang, speaker = None, None
    for u in utts:
        words = list(u.text)
        first = words[0] if words and words[0] in lang_tokens else None
        body = words[1:] if first else words
        if first and first != lang:
            out.append(first)
            lang = first
        if speaker is not None and u.turns and u.turns[0].speaker != speaker and body[:1] != [SCD]:
            out.append(SCD)
        out += body
        speaker = u.turns[-1].speaker if u.turns else speaker
    return out


def write_recording(path: Path, utts: Sequence[SourceUtt], rng, pause_s: Tuple[float, float], root: Path):
    """Write the utterances end to end with noise pauses between them; returns [(utt, start, end)] in seconds."""
    import soundfile as sf

    placed, pos = [], 0
    with atomic_output(path) as tmp, sf.SoundFile(str(tmp), "w", SAMPLE_RATE, 1, "PCM_16", format="WAV") as f:
        for k, u in enumerate(utts):
            if k:
                n = int(round(rng.uniform(*pause_s) * SAMPLE_RATE))
                f.write(np.clip(np.round(rng.normal(0.0, NOISE_STD, n)), -32768, 32767).astype(np.int16))
                pos += n
            wav = Path(u.wav) if Path(u.wav).is_absolute() else root / u.wav
            x, rate = sf.read(str(wav), dtype="int16")
            if rate != SAMPLE_RATE or x.ndim != 1:
                raise DataError(f"{wav}: expected 16 kHz mono (the corpus's format), got {rate} Hz, shape {x.shape}")
            f.write(x)
            placed.append((u.utt, pos / SAMPLE_RATE, (pos + len(x)) / SAMPLE_RATE))
            pos += len(x)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
    return placed


def write_set(
    out: Path,
    wav_dir: Path,
    recordings: Dict[str, List[SourceUtt]],
    lang_tokens,
    seed: int,
    pause_s: Tuple[float, float],
    root: Path,
) -> None:
    rng = np.random.default_rng(seed)
    lines: Dict[str, List[str]] = {
        k: []
        for k in (
            "wav.scp",
            "text",
            "utt2turns",
            "utt2lang",
            "utt2spk",
            "spk2utt",
            "utt2tasks",
            "utt2dur",
            "ref_segments",
        )
    }
    for rec in sorted(recordings, key=c_sort_key):
        utts = recordings[rec]
        wav = (wav_dir / f"{rec}.wav").absolute()
        placed = write_recording(wav, utts, rng, pause_s, root)
        turns = [
            RefTurn(round(t.start + s, 3), round(t.end + s, 3), t.speaker)
            for u, (_, s, _) in zip(utts, placed)
            for t in u.turns
        ]
        langs = sorted({u.lang for u in utts})
        lines["wav.scp"].append(f"{rec} {wav}")
        lines["text"].append(f"{rec} {' '.join(join_texts(utts, lang_tokens))}")
        lines["utt2turns"].append(f"{rec} {format_turns(turns)}")
        lines["utt2lang"].append(f"{rec} {langs[0] if len(langs) == 1 else 'mixed'}")
        lines["utt2spk"].append(f"{rec} {rec}")
        lines["spk2utt"].append(f"{rec} {rec}")
        lines["utt2tasks"].append(f"{rec} asr scd endp ner lid")
        lines["utt2dur"].append(f"{rec} {placed[-1][2]:.3f}")
        seen: Dict[str, int] = {}
        for utt, s, e in placed:  # a stress recording repeats utterances: <utt>__r<k> from the second time on
            k = seen[utt] = seen.get(utt, -1) + 1
            lines["ref_segments"].append(f"{utt if k == 0 else f'{utt}{REPEAT}{k}'} {rec} {s:.3f} {e:.3f}")
    with atomic_dir(out) as tmp:
        for name, rows in lines.items():
            (tmp / name).write_text("".join(r + "\n" for r in rows), encoding="utf-8")


def make_sets(
    src: Path,
    out_root: Path,
    wav_dir: Path,
    minutes: Sequence[int] = (10, 60),
    seed: int = 0,
    pause_s: Tuple[float, float] = (0.5, 1.5),
    root: Path = Path("."),
    prefix: str = "",
) -> List[Path]:
    """``lf_conv`` and ``lf_<N>min`` under ``out_root`` from the conversation set ``src``; returns the dirs."""
    from espnet2_ext.task_spec import TaskSpec

    utts = read_source(src)
    lang_tokens = TaskSpec.default().aux_tokens["lid"]
    wav_dir.mkdir(parents=True, exist_ok=True)
    by_lang: Dict[str, List[SourceUtt]] = {}
    for u in utts:
        by_lang.setdefault(u.lang, []).append(u)
    made = [out_root / f"{prefix}lf_conv"]
    write_set(
        made[0], wav_dir, {f"{prefix}lf-{lang}": us for lang, us in by_lang.items()}, lang_tokens, seed, pause_s, root
    )
    avg = float(np.mean([u.turns[-1].end + 0.25 for u in utts])) + sum(pause_s) / 2  # seconds per utterance
    for m in minutes:
        n = int(np.ceil(m * 60.0 / avg))
        cycle = [utts[i % len(utts)] for i in range(n)]
        made.append(out_root / f"{prefix}lf_{m}min")
        write_set(made[-1], wav_dir, {f"{prefix}lf-mix-{m}min": cycle}, lang_tokens, seed + m, pause_s, root)
    return made


def place_utterance_decode(ref_segments: Path, utt_decode: Path, out_dir: Path) -> None:
    """A per-utterance decode (``<utt_decode>/1best_recog/{text,events.jsonl}``) placed in the recordings' clock
    of a long-form set: ``<out_dir>/1best_recog/{text,events.jsonl,ctm,rttm}``, one line per recording, so the
    per-utterance and the long-form decodes of the same audio are scored alike."""
    table = read_table(ref_segments, strict=False)
    hyp = read_table(utt_decode / "1best_recog" / "text", strict=False).values
    events = {}
    with (utt_decode / "1best_recog" / "events.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                events[r["utt"]] = r
    texts: Dict[str, List[str]] = {}
    tokens: Dict[str, List[str]] = {}
    times: Dict[str, List[float]] = {}
    ends: Dict[str, float] = {}
    shift = 0.02
    for utt_r, value in table.values.items():
        rec, start, end = value.split()[0], float(value.split()[1]), float(value.split()[2])
        src = utt_r.split(REPEAT)[0]
        if src not in hyp or src not in events:
            raise DataError(
                f"{table.where(utt_r)}: utterance {src} missing from {utt_decode}/1best_recog; "
                f"decode the source set first"
            )
        r = events[src]
        shift = float(r["frame_shift"])
        texts.setdefault(rec, []).append(hyp[src])
        tokens.setdefault(rec, []).extend(r["tokens"])
        times.setdefault(rec, []).extend(t - float(r.get("offset", 0.0)) + start for t in r["token_times"])
        ends[rec] = max(ends.get(rec, 0.0), end)
    from espnet2_ext.task_spec import TaskSpec
    from espnet2_ext.text.time_outputs import TimedUtterance, write_time_outputs

    with atomic_dir(out_dir / "1best_recog") as tmp:
        (tmp / "text").write_text(
            "".join(f"{rec} {' '.join(texts[rec])}\n" for rec in sorted(texts, key=c_sort_key)), encoding="utf-8"
        )
        utts = [TimedUtterance(rec, tokens[rec], times[rec], shift, ends[rec]) for rec in texts]
        write_time_outputs(tmp, utts, TaskSpec.default())
